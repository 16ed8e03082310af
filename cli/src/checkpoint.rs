//! `checkpoint` and `keygen`: write the chain's head down outside the database, signed if
//! a key is given, and make the key pair to sign with.

use std::io::Write;
use std::path::{Path, PathBuf};

use reasonkit_audit::{Checkpoint, SignerKey};

use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sign with this signer key file (from `keygen`)
    #[arg(long, value_name = "KEYFILE")]
    sign: Option<PathBuf>,
    /// Also append the checkpoint to this file (created if missing), for a series
    #[arg(long, value_name = "FILE")]
    append: Option<PathBuf>,
}

pub fn run(path: &Path, args: &Args) -> Result<Outcome, Failure> {
    // With the tree heads evidence bundles are proven against, so that a bundle made later
    // can prove it extends this checkpoint.
    let (database_id, head, trees) = reasonkit_audit::evidence::tree_heads(path)?;
    let mut checkpoint = Checkpoint::of_head(&database_id, &head).with_trees(&trees);
    if let Some(file) = &args.sign {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read signer key {}: {e}", file.display()))?;
        let key =
            SignerKey::parse(&text).map_err(|e| format!("signer key {}: {e}", file.display()))?;
        checkpoint = checkpoint.signed(&key);
    }
    print!("{checkpoint}");
    if let Some(file) = &args.append {
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| format!("cannot open checkpoint file {}: {e}", file.display()))?;
        writeln!(out, "{checkpoint}")
            .and_then(|()| out.sync_all())
            .map_err(|e| format!("cannot write checkpoint file {}: {e}", file.display()))?;
    }
    Ok(Outcome::Done)
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// The key's name, written in every signature (a host or team name: no spaces or '+')
    name: String,
    /// Write the signer key to PREFIX.key (readable by you only) and the verifier key to
    /// PREFIX.pub; neither may exist yet
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
}

pub fn keygen(args: &KeygenArgs) -> Result<Outcome, Failure> {
    let key = SignerKey::generate(&args.name)?;
    let secret = args.out.with_extension("key");
    let public = args.out.with_extension("pub");
    write_new(&secret, &format!("{}\n", key.to_secret_string()), 0o600)?;
    write_new(&public, &format!("{}\n", key.verifier()), 0o644)?;
    println!(
        "signer key    {} (keep it secret, off this host if you can)",
        secret.display()
    );
    println!(
        "verifier key  {} (give it to whoever verifies)",
        public.display()
    );
    println!("{}", key.verifier());
    Ok(Outcome::Done)
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        format!(
            "cannot create {}: {e} (it must not exist yet)",
            path.display()
        )
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}
