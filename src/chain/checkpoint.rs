//! Checkpoints: the chain's head, written down outside the database, optionally signed.
//!
//! A chain inside the file proves that nothing in the middle changed, but whoever can
//! write the file can also cut its tail, recompute the whole chain, or put back an older
//! copy. A checkpoint kept elsewhere (another machine, a ticket, a WORM bucket) is what
//! catches those: [`verify_with`](crate::verify_with) checks that the chain still extends
//! every checkpoint it is given.
//!
//! The format is the C2SP `tlog-checkpoint` signed note, as Certificate Transparency logs
//! and Sigstore's Rekor publish them:
//!
//! ```text
//! reasonkit-audit/<database id>
//! <size: the number of chain entries>
//! <base64 of the chain head: the link at seq = size>
//! time 2026-12-01T09:00:00.000000Z
//!
//! — <key name> <base64 of key id (4 bytes) ‖ Ed25519 signature>
//! ```
//!
//! The fourth line is an extension line with the time the checkpoint was taken: C2SP
//! allows extension lines, and a series of checkpoints with times (one an hour, even when
//! idle) makes a gap in the series evidence in itself. The signature block (a blank line
//! and one `—` line per signature) is present only when the checkpoint is signed. Keys use
//! the signed-note key formats: `PRIVATE+KEY+<name>+<id>+<base64>` for the signer,
//! `<name>+<id>+<base64>` for the verifier, key id = the first 4 bytes of
//! SHA-256(name ‖ `\n` ‖ `0x01` ‖ public key).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The first part of every checkpoint's origin line; the database id follows.
pub const ORIGIN_PREFIX: &str = "reasonkit-audit/";

/// The signature algorithm byte of signed-note keys: Ed25519.
const ED25519: u8 = 0x01;

/// The dash that opens a signature line of a signed note: U+2014 and a space.
const SIGNATURE_LINE: &str = "\u{2014} ";

/// The chain's head at one moment, as a C2SP checkpoint (a signed note):
///
/// ```text
/// reasonkit-audit/<database id>
/// <size: the number of chain entries>
/// <base64 of the chain head: the link at seq = size>
/// time 2026-12-01T09:00:00.000000Z
///
/// — <key name> <base64 of key id (4 bytes) ‖ Ed25519 signature>
/// ```
///
/// The signature block is there only when the checkpoint is signed; `docs/chain.md` has
/// the whole format. [`verify_with`](crate::verify_with) checks that the chain still
/// extends a checkpoint.
///
/// ```
/// use reasonkit_audit::{Checkpoint, SignerKey};
///
/// let key = SignerKey::generate("ops.example")?;
/// let checkpoint = Checkpoint::new("0123abcd", 42, [7; 32], None).signed(&key);
/// assert_eq!(Checkpoint::parse_all(&checkpoint.to_string())?, vec![checkpoint.clone()]);
/// assert!(checkpoint.check_signature(&key.verifier()).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// `reasonkit-audit/<database id>`.
    pub origin: String,
    /// The number of chain entries covered.
    pub size: u64,
    /// The link at `seq = size` (the genesis value when `size` is 0).
    pub hash: [u8; 32],
    /// Extension lines after the hash (this crate writes `time <RFC 3339>`).
    pub extensions: Vec<String>,
    /// Signatures, in the order they appear.
    pub signatures: Vec<NoteSignature>,
}

/// One signature line of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The signer's key name.
    pub name: String,
    /// The signer's key id: the first 4 bytes of SHA-256(name ‖ `\n` ‖ `0x01` ‖ public key).
    pub key_id: [u8; 4],
    /// The Ed25519 signature over the checkpoint's text.
    pub signature: Vec<u8>,
}

/// The two tree heads a checkpoint can carry beside the chain's head, which evidence
/// bundles are proven against (docs/chain.md, "Evidence bundles").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHeads {
    /// The RFC 6962 head of the tree over the chain's entries 1..=size.
    pub entries: [u8; 32],
    /// How many sessions have entries in those `size` entries.
    pub sessions: u64,
    /// The RFC 6962 head of the tree over their heads, sorted by first entry time, then id.
    pub heads: [u8; 32],
}

/// Why a checkpoint or key could not be read or a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckpointError(pub String);

fn bad(message: impl Into<String>) -> CheckpointError {
    CheckpointError(message.into())
}

impl Checkpoint {
    /// A checkpoint of the database with this id, at `size` entries with head `hash`,
    /// with a `time` extension line when `time` is given.
    pub fn new(database_id: &str, size: u64, hash: [u8; 32], time: Option<String>) -> Self {
        Checkpoint {
            origin: format!("{ORIGIN_PREFIX}{database_id}"),
            size,
            hash,
            extensions: time.map(|t| format!("time {t}")).into_iter().collect(),
            signatures: Vec::new(),
        }
    }

    /// A checkpoint of `head`, stamped with the current UTC time.
    pub fn of_head(database_id: &str, head: &crate::chain::ChainHead) -> Self {
        let time = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        Checkpoint::new(database_id, head.size, head.hash, Some(time))
    }

    /// The database id named in the origin line, if it is one of ours.
    pub fn database_id(&self) -> Option<&str> {
        self.origin.strip_prefix(ORIGIN_PREFIX)
    }

    /// The `time` extension line's value, if any.
    pub fn time(&self) -> Option<&str> {
        self.extensions.iter().find_map(|e| e.strip_prefix("time "))
    }

    /// This checkpoint with the two tree heads an evidence bundle is checked against
    /// (docs/chain.md, "Evidence bundles"): `tree <base64>`, the RFC 6962 head of the
    /// chain's entries up to `size`, and `sessions <count> <base64>`, the head of the
    /// sorted tree of per-session heads. Added before signing.
    #[must_use]
    pub fn with_trees(mut self, trees: &TreeHeads) -> Self {
        self.extensions
            .retain(|line| !line.starts_with("tree ") && !line.starts_with("sessions "));
        self.extensions
            .push(format!("tree {}", BASE64.encode(trees.entries)));
        self.extensions.push(format!(
            "sessions {} {}",
            trees.sessions,
            BASE64.encode(trees.heads)
        ));
        self
    }

    /// The tree heads of the `tree` and `sessions` extension lines, when the checkpoint
    /// carries both, well formed.
    pub fn tree_heads(&self) -> Option<TreeHeads> {
        let hash = |text: &str| -> Option<[u8; 32]> { BASE64.decode(text).ok()?.try_into().ok() };
        let entries = self
            .extensions
            .iter()
            .find_map(|e| e.strip_prefix("tree "))
            .and_then(hash)?;
        let (count, heads) = self
            .extensions
            .iter()
            .find_map(|e| e.strip_prefix("sessions "))?
            .split_once(' ')?;
        Some(TreeHeads {
            entries,
            sessions: count.parse().ok()?,
            heads: hash(heads)?,
        })
    }

    /// The signed text: origin, size, hash and extension lines, each ending in `\n`.
    pub fn body(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.hash)
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// This checkpoint with one more signature, by `key`.
    pub fn signed(mut self, key: &SignerKey) -> Self {
        let signature = key.key.sign(self.body().as_bytes());
        self.signatures.push(NoteSignature {
            name: key.name.clone(),
            key_id: key.key_id,
            signature: signature.to_bytes().to_vec(),
        });
        self
    }

    /// Checks the signature by `key`.
    ///
    /// # Errors
    /// When the checkpoint has no signature by that key (name and key id), or the
    /// signature does not verify: the checkpoint cannot be trusted.
    pub fn check_signature(&self, key: &VerifierKey) -> Result<(), CheckpointError> {
        let found = self
            .signatures
            .iter()
            .find(|s| s.name == key.name && s.key_id == key.key_id)
            .ok_or_else(|| {
                bad(format!(
                    "checkpoint at size {} is not signed by key {}",
                    self.size, key.name
                ))
            })?;
        let signature = ed25519_dalek::Signature::from_slice(&found.signature)
            .map_err(|_| bad("a signature line does not hold an Ed25519 signature"))?;
        key.key
            .verify_strict(self.body().as_bytes(), &signature)
            .map_err(|_| {
                bad(format!(
                    "the signature by {} on the checkpoint at size {} does not verify: the \
                     checkpoint was altered or signed by another key",
                    key.name, self.size
                ))
            })
    }

    /// Reads every checkpoint in `text`: notes one after another, separated by blank lines
    /// (a file the layer appends to, or the output of `reasonkit-audit checkpoint`).
    ///
    /// # Errors
    /// When a note is not a well-formed checkpoint; the message says which line.
    pub fn parse_all(text: &str) -> Result<Vec<Checkpoint>, CheckpointError> {
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            if lines[i].trim().is_empty() {
                i += 1;
                continue;
            }
            let at = |n: usize| format!("line {}", n + 1);
            let origin = lines[i];
            let size = lines
                .get(i + 1)
                .and_then(|l| l.parse::<u64>().ok())
                .ok_or_else(|| bad(format!("{}: expected the tree size", at(i + 1))))?;
            let hash: [u8; 32] = lines
                .get(i + 2)
                .and_then(|l| BASE64.decode(l).ok())
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| {
                    bad(format!(
                        "{}: expected a base64 SHA-256 root hash",
                        at(i + 2)
                    ))
                })?;
            let mut checkpoint = Checkpoint {
                origin: origin.to_owned(),
                size,
                hash,
                extensions: Vec::new(),
                signatures: Vec::new(),
            };
            i += 3;
            while i < lines.len() && !lines[i].is_empty() {
                checkpoint.extensions.push(lines[i].to_owned());
                i += 1;
            }
            // A blank line, then signature lines, belong to this note.
            if lines
                .get(i + 1)
                .is_some_and(|l| l.starts_with(SIGNATURE_LINE))
            {
                i += 1;
                while let Some(line) = lines.get(i).and_then(|l| l.strip_prefix(SIGNATURE_LINE)) {
                    checkpoint.signatures.push(parse_signature(line, i)?);
                    i += 1;
                }
            }
            out.push(checkpoint);
        }
        Ok(out)
    }
}

fn parse_signature(line: &str, index: usize) -> Result<NoteSignature, CheckpointError> {
    let malformed = || bad(format!("line {}: malformed signature line", index + 1));
    let (name, encoded) = line.rsplit_once(' ').ok_or_else(malformed)?;
    let bytes = BASE64.decode(encoded).map_err(|_| malformed())?;
    if bytes.len() < 5 {
        return Err(malformed());
    }
    let (id, signature) = bytes.split_at(4);
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: id.try_into().map_err(|_| malformed())?,
        signature: signature.to_vec(),
    })
}

impl fmt::Display for Checkpoint {
    /// The note as text: the body, then a blank line and the signature lines if signed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.body())?;
        if !self.signatures.is_empty() {
            f.write_str("\n")?;
            for s in &self.signatures {
                let mut bytes = s.key_id.to_vec();
                bytes.extend_from_slice(&s.signature);
                writeln!(f, "{SIGNATURE_LINE}{} {}", s.name, BASE64.encode(bytes))?;
            }
        }
        Ok(())
    }
}

/// The key id of a signed-note Ed25519 key: SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[..4].
fn key_id(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ED25519]);
    hasher.update(public.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn check_name(name: &str) -> Result<(), CheckpointError> {
    if name.is_empty() || name.contains(['+', ' ', '\n', '\t']) {
        return Err(bad(format!(
            "key name {name:?} is not usable: it must be non-empty, without spaces or '+'"
        )));
    }
    Ok(())
}

/// A private Ed25519 key that signs checkpoints, in the signed-note format
/// `PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 ‖ seed)>`.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    key_id: [u8; 4],
    key: SigningKey,
}

impl fmt::Debug for SignerKey {
    /// Never shows the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SignerKey {
    /// A new key pair named `name` (a host or team name: no spaces or `+`), from the
    /// operating system's random source.
    ///
    /// # Errors
    /// When the name is not usable or no random bytes can be had.
    pub fn generate(name: &str) -> Result<Self, CheckpointError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| bad(format!("no random bytes for a new key: {e}")))?;
        Ok(Self::from_seed(name, seed))
    }

    fn from_seed(name: &str, seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        SignerKey {
            name: name.to_owned(),
            key_id: key_id(name, &key.verifying_key()),
            key,
        }
    }

    /// Reads a signer key in the signed-note format.
    ///
    /// # Errors
    /// When the text is not such a key, or its key id does not match its name and key.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let malformed = || bad("not a signer key (expected PRIVATE+KEY+<name>+<id>+<base64>)");
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(malformed)?;
        let (name, id, bytes) = split_key(rest).ok_or_else(malformed)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| malformed())?;
        let key = Self::from_seed(name, seed);
        if key.key_id != id {
            return Err(bad(format!(
                "signer key {name}: its key id does not match the key"
            )));
        }
        Ok(key)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half, to give to whoever verifies.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The key in the signed-note format. Keep it secret.
    pub fn to_secret_string(&self) -> String {
        format!(
            "PRIVATE+KEY+{}",
            key_text(&self.name, &self.key_id, self.key.as_bytes())
        )
    }
}

/// `<name>+<8 hex digits>+<base64(0x01 ‖ 32 bytes)>` → its parts. Split from the left, as
/// the signed-note format does: names hold no `+`, base64 may.
fn split_key(text: &str) -> Option<(&str, [u8; 4], Vec<u8>)> {
    let (name, rest) = text.split_once('+')?;
    let (id_hex, encoded) = rest.split_once('+')?;
    if id_hex.len() != 8 {
        return None;
    }
    let id = u32::from_str_radix(id_hex, 16).ok()?.to_be_bytes();
    let bytes = BASE64.decode(encoded).ok()?;
    let (&algorithm, key) = bytes.split_first()?;
    (algorithm == ED25519 && check_name(name).is_ok()).then(|| (name, id, key.to_vec()))
}

/// A public Ed25519 key that checks checkpoint signatures, in the signed-note format
/// `<name>+<key id hex>+<base64(0x01 ‖ public key)>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl VerifierKey {
    /// Reads a verifier key.
    ///
    /// # Errors
    /// When the text is not such a key, or its key id does not match.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let malformed = || bad("not a verifier key (expected <name>+<id>+<base64>)");
        let (name, id, bytes) = split_key(text.trim()).ok_or_else(malformed)?;
        let public: [u8; 32] = bytes.try_into().map_err(|_| malformed())?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| malformed())?;
        if key_id(name, &key) != id {
            return Err(bad(format!(
                "verifier key {name}: its key id does not match the key"
            )));
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: id,
            key,
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&key_text(&self.name, &self.key_id, self.key.as_bytes()))
    }
}

/// `<name>+<key id hex>+<base64(0x01 ‖ key bytes)>`, the signed-note key text.
fn key_text(name: &str, key_id: &[u8; 4], key: &[u8; 32]) -> String {
    let mut bytes = vec![ED25519];
    bytes.extend_from_slice(key);
    format!(
        "{name}+{}+{}",
        crate::chain::hex(key_id),
        BASE64.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_whose_base64_holds_a_plus_sign_parse() {
        // Generate until the base64 part contains '+': names never do, base64 may.
        let key = (0..200)
            .map(|_| SignerKey::generate("k").unwrap())
            .find(|k| k.verifier().to_string()[11..].contains('+'))
            .expect("a key with '+' in its base64 within 200 tries");
        assert_eq!(
            VerifierKey::parse(&key.verifier().to_string()).unwrap(),
            key.verifier()
        );
        assert!(SignerKey::parse(&key.to_secret_string()).is_ok());
    }

    #[test]
    fn keys_round_trip_through_their_text_forms() {
        let signer = SignerKey::generate("ops.example").unwrap();
        let again = SignerKey::parse(&signer.to_secret_string()).unwrap();
        assert_eq!(again.verifier(), signer.verifier());
        let verifier = VerifierKey::parse(&signer.verifier().to_string()).unwrap();
        assert_eq!(verifier, signer.verifier());
        assert!(SignerKey::parse("PRIVATE+KEY+x+00000000+AQ==").is_err());
        assert!(SignerKey::generate("two words").is_err());
    }

    #[test]
    fn several_notes_signed_and_unsigned_parse_back() {
        let signer = SignerKey::generate("a").unwrap();
        let one = Checkpoint::new("db", 1, [1; 32], Some("t1".into()));
        let two = Checkpoint::new("db", 2, [2; 32], None).signed(&signer);
        let three = Checkpoint::new("db", 3, [3; 32], None);
        let text = format!("{one}\n{two}\n{three}");
        assert_eq!(Checkpoint::parse_all(&text).unwrap(), vec![one, two, three]);
    }

    #[test]
    fn a_changed_body_or_another_key_fails_the_signature() {
        let signer = SignerKey::generate("a").unwrap();
        let other = SignerKey::generate("a").unwrap();
        let mut note = Checkpoint::new("db", 5, [5; 32], None).signed(&signer);
        assert!(note.check_signature(&signer.verifier()).is_ok());
        assert!(note.check_signature(&other.verifier()).is_err());
        note.size = 6;
        assert!(note.check_signature(&signer.verifier()).is_err());
    }

    #[test]
    fn malformed_notes_name_the_line() {
        let err = Checkpoint::parse_all("origin\nnot a number\nAAAA\n").unwrap_err();
        assert!(err.0.contains("line 2"), "{err}");
    }
}
