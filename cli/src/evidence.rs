//! `evidence` and `verify --evidence`: a verifiable, complete export of sessions that an
//! auditor checks offline (docs/chain.md, "Evidence bundles"; docs/compliance.md).

use std::io::Write;
use std::path::{Path, PathBuf};

use reasonkit_audit::evidence::{
    self, BuildOptions, Bundle, CheckOptions, FindingClass, Scope, Verdict,
};
use reasonkit_audit::read::Reader;
use reasonkit_audit::{Checkpoint, SignerKey};

use crate::since::Since;
use crate::{Failure, Outcome, read};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A session to take (an id or an unambiguous beginning of one). May be given several
    /// times
    #[arg(long = "session", value_name = "ID", required_unless_present_any = ["since", "profile"])]
    sessions: Vec<String>,
    /// Take every session of this profile (of the period, with --since/--until), each other
    /// session of the period proven to be of another profile with its content withheld
    #[arg(long, value_name = "PROFILE", conflicts_with = "sessions")]
    profile: Option<String>,
    /// Take every session first recorded at or after this time (`2026-07-01`, `24h`, …),
    /// with the proof that none of the period is left out
    #[arg(long, value_name = "TIME", conflicts_with = "sessions")]
    since: Option<Since>,
    /// With --since or --profile: the period's end, exclusive [default: the chain's head]
    #[arg(long, value_name = "TIME")]
    until: Option<Since>,
    /// Write the bundle here (a new file, or `-` for standard output)
    #[arg(short, long, value_name = "FILE")]
    out: PathBuf,
    /// Sign the bundle's checkpoint with this signer key file (from `keygen`)
    #[arg(long, value_name = "KEYFILE")]
    sign: Option<PathBuf>,
    /// Earlier checkpoints (a file from `checkpoint`): the bundle proves the store still
    /// extends each of them that carries tree heads. May be given several times
    #[arg(long, value_name = "FILE")]
    checkpoint: Vec<PathBuf>,
}

/// `evidence` on a file, or on the PostgreSQL store `url` names.
pub fn run(path: &Path, url: Option<&str>, args: &Args) -> Result<Outcome, Failure> {
    let reader = Reader::open(path)?;
    let mut ids = Vec::new();
    for given in &args.sessions {
        match reader.resolve(given)? {
            Some(id) => ids.push(id),
            None => return Err(format!("no session {given} in {}", path.display()).into()),
        }
    }
    drop(reader);
    let mut options = BuildOptions::default();
    if let Some(file) = &args.sign {
        options.sign = Some(
            SignerKey::parse(&read(file, "signer key")?)
                .map_err(|e| format!("signer key {}: {e}", file.display()))?,
        );
    }
    for file in &args.checkpoint {
        let all = Checkpoint::parse_all(&read(file, "checkpoint file")?)
            .map_err(|e| format!("checkpoint file {}: {e}", file.display()))?;
        let (with_trees, without): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|c| c.tree_heads().is_some());
        if !without.is_empty() {
            eprintln!(
                "note: {} checkpoint(s) of {} carry no tree heads (written by the layer, or \
                 before this release) and cannot be proven offline; take them with \
                 `reasonkit-audit checkpoint`",
                without.len(),
                file.display()
            );
        }
        options.extends.extend(with_trees);
    }
    if args.until.is_some() && args.since.is_none() && args.profile.is_none() {
        return Err("--until ends a period: give --since (or --profile) with it".into());
    }
    let until = args.until.as_ref().map(|u| u.0.clone());
    let scope = match (&args.profile, &args.since) {
        (Some(profile), since) => {
            Scope::profile(profile.clone(), since.as_ref().map(|s| s.0.clone()), until)
        }
        (None, Some(since)) => Scope::period(since.0.clone(), until),
        (None, None) => Scope::sessions(ids),
    };
    let bundle = match url {
        Some(url) => reasonkit_audit::postgres::evidence(url, &scope, &options)?,
        None => evidence::build(path, &scope, &options)?,
    };
    let text = serde_json::to_string_pretty(&bundle)? + "\n";
    if args.out.as_os_str() == "-" {
        std::io::stdout().write_all(text.as_bytes())?;
    } else {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&args.out)
            .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
        let counts = &bundle.manifest.counts;
        eprintln!(
            "{}: {} session(s), {} step(s), {} decision(s), {} chain entries with their proofs, \
             against the chain's head at {} entries{}{} ({} bytes)",
            args.out.display(),
            counts.sessions,
            counts.steps,
            counts.decisions,
            counts.entries,
            Checkpoint::parse_all(&bundle.checkpoint)
                .ok()
                .and_then(|c| c.first().map(|c| c.size))
                .unwrap_or(0),
            if options.sign.is_some() {
                ", signed"
            } else {
                ", unsigned"
            },
            if bundle.extends.is_empty() {
                String::new()
            } else {
                format!(", extending {} earlier checkpoint(s)", bundle.extends.len())
            },
            text.len()
        );
    }
    Ok(Outcome::Done)
}

/// `verify --evidence FILE`: check a bundle, offline.
pub fn verify(file: &Path, options: CheckOptions, json: bool) -> Result<Outcome, Failure> {
    let text = read(file, "evidence bundle")?;
    let bundle: Bundle = match serde_json::from_str(&text) {
        Ok(bundle) => bundle,
        Err(e) => {
            return Err(format!("{} is not an evidence bundle: {e}", file.display()).into());
        }
    };
    let report = evidence::check(&bundle, &options);
    let verdict = report.verdict();
    if json {
        let findings: Vec<_> = report
            .findings
            .iter()
            .map(|f| serde_json::json!({"class": format!("{:?}", f.class), "message": f.message}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "intact_and_complete": verdict == Verdict::IntactAndComplete,
                "verdict": format!("{verdict:?}"),
                "findings": findings,
                "notes": report.notes,
                "size": report.size,
                "sessions": report.sessions,
                "rows": report.rows,
                "entries": report.entries,
                "erased": report.erased,
                "signed_by": report.signed_by,
                "extends": report.extends,
            })
        );
    } else {
        println!(
            "{}: {} session(s), {} row(s), {} chain entries against a checkpoint at {} entries",
            file.display(),
            report.sessions,
            report.rows,
            report.entries,
            report.size
        );
        let scope = &bundle.manifest.scope;
        match &scope.since {
            Some(since) => println!(
                "  scope: every session{} first committed from {} to {}: {} session(s)",
                scope
                    .profile
                    .as_ref()
                    .map(|p| format!(" of profile {p}"))
                    .unwrap_or_default(),
                if since.is_empty() { "the start" } else { since },
                scope.until.as_deref().unwrap_or("the checkpoint"),
                bundle
                    .sessions
                    .iter()
                    .filter(|s| s.other_profile.is_none())
                    .count()
            ),
            None => println!("  scope: sessions {}", scope.sessions.join(", ")),
        }
        if !report.signed_by.is_empty() {
            println!("  signed by {}", report.signed_by.join(", "));
        }
        if report.erased > 0 {
            println!(
                "  {} row(s) whose content a chained erasure replaced (the rest of each is proven)",
                report.erased
            );
        }
        if !report.extends.is_empty() {
            println!(
                "  extends the checkpoints at sizes {}",
                report
                    .extends
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for note in &report.notes {
            println!("  note: {note}");
        }
        for finding in &report.findings {
            let class = match finding.class {
                FindingClass::Tampered => "TAMPERED",
                FindingClass::Omitted => "OMITTED",
                FindingClass::Unusable => "UNUSABLE",
            };
            println!("  {class}: {}", finding.message);
        }
        println!(
            "{}",
            match verdict {
                Verdict::IntactAndComplete =>
                    "intact and complete: every row is what the audit layer committed, and none of the scope is missing",
                Verdict::Tampered => "NOT INTACT: evidence of tampering or omission",
                Verdict::Unusable => "UNUSABLE: the bundle could not be checked as asked",
            }
        );
    }
    Ok(match verdict {
        Verdict::IntactAndComplete => Outcome::Done,
        Verdict::Tampered => Outcome::Evidence,
        Verdict::Unusable => Outcome::Unusable,
    })
}
