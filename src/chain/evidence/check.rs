//! Checking a bundle offline: every proof recomputed from the bundle's bytes, against the
//! checkpoint it carries and the checkpoints and keys the auditor brings.
//!
//! Each finding is one of three kinds, and the verdict (and `verify --evidence`'s exit
//! code) follows the worst: tampering or omission (1) before unusable (2) before intact
//! and complete (0).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::rows::{cells_of, owned_values, row_leaves, spec_of};
use super::{
    Bundle, EVIDENCE_FORMAT, EVIDENCE_SPEC, EntryProof, SessionEvidence, entry_data, head_data,
    unhex,
};
use crate::chain::checkpoint::{Checkpoint, TreeHeads, VerifierKey};
use crate::chain::merkle::{self, verify_consistency, verify_inclusion};
use crate::chain::verify_lifecycle::hash_of_hex;
use crate::chain::{AUDIT_EVENTS, Hash, TableSpec, split_leaf_with};

/// What the auditor brings to a check.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Keys the bundle's checkpoint must be signed by (one of them suffices). None: the
    /// signatures are not checked, and the report says so.
    pub keys: Vec<VerifierKey>,
    /// Checkpoints of the store the auditor already holds: the bundle must extend each.
    pub checkpoints: Vec<Checkpoint>,
}

/// The kind of a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingClass {
    /// Something in the bundle is not what the store committed, or the bundle is not tied
    /// to a checkpoint or key the auditor trusts.
    Tampered,
    /// Something of the scope was left out.
    Omitted,
    /// The bundle cannot be checked as asked (malformed, another format, made before the
    /// auditor's checkpoint).
    Unusable,
}

/// One thing wrong with a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceFinding {
    /// Its kind.
    pub class: FindingClass,
    /// What is wrong, where.
    pub message: String,
}

/// The outcome of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every row is what was committed and none of the scope is missing (exit 0).
    IntactAndComplete,
    /// Evidence of tampering or of omission (exit 1).
    Tampered,
    /// The bundle could not be checked (exit 2).
    Unusable,
}

impl Verdict {
    /// The exit code `verify --evidence` gives.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::IntactAndComplete => 0,
            Verdict::Tampered => 1,
            Verdict::Unusable => 2,
        }
    }
}

/// What a check found.
#[derive(Clone, Debug, Default)]
pub struct EvidenceReport {
    /// Everything wrong, in the order found.
    pub findings: Vec<EvidenceFinding>,
    /// What was checked and what was not (no key given, say).
    pub notes: Vec<String>,
    /// The chain's size at the bundle's checkpoint.
    pub size: u64,
    /// Sessions, rows and entries checked.
    pub sessions: usize,
    /// Rows checked.
    pub rows: usize,
    /// Entries checked.
    pub entries: usize,
    /// Rows whose content a chained erasure in the bundle replaced by tombstones.
    pub erased: usize,
    /// Names of the keys whose signatures on the checkpoint verified.
    pub signed_by: Vec<String>,
    /// Sizes of the earlier checkpoints the bundle was proven to extend.
    pub extends: Vec<u64>,
}

impl EvidenceReport {
    /// The verdict: the worst finding's.
    pub fn verdict(&self) -> Verdict {
        let has = |class| self.findings.iter().any(|f| f.class == class);
        if has(FindingClass::Tampered) || has(FindingClass::Omitted) {
            Verdict::Tampered
        } else if has(FindingClass::Unusable) {
            Verdict::Unusable
        } else {
            Verdict::IntactAndComplete
        }
    }

    /// Whether nothing was found.
    pub fn is_intact_and_complete(&self) -> bool {
        self.verdict() == Verdict::IntactAndComplete
    }

    fn find(&mut self, class: FindingClass, message: String) {
        self.findings.push(EvidenceFinding { class, message });
    }
}

fn hashes(texts: &[String]) -> Option<Vec<Hash>> {
    texts.iter().map(|t| hash_of_hex(t)).collect()
}

/// Checks `bundle` against what it carries and what the auditor brings.
pub fn check(bundle: &Bundle, options: &CheckOptions) -> EvidenceReport {
    use FindingClass::{Tampered, Unusable};
    let mut report = EvidenceReport::default();
    if bundle.evidence != EVIDENCE_FORMAT || bundle.spec != EVIDENCE_SPEC {
        report.find(
            Unusable,
            format!(
                "not a bundle this verifier reads: {:?}, spec {} (it reads {EVIDENCE_FORMAT:?}, \
                 spec {EVIDENCE_SPEC})",
                bundle.evidence, bundle.spec
            ),
        );
        return report;
    }
    let checkpoint = match Checkpoint::parse_all(&bundle.checkpoint) {
        Ok(mut all) if all.len() == 1 => all.remove(0),
        Ok(all) => {
            report.find(
                Unusable,
                format!(
                    "the bundle must carry one checkpoint; it carries {}",
                    all.len()
                ),
            );
            return report;
        }
        Err(e) => {
            report.find(Unusable, format!("the bundle's checkpoint: {e}"));
            return report;
        }
    };
    let database = bundle.manifest.database_id.as_str();
    report.size = checkpoint.size;
    if checkpoint.database_id() != Some(database) {
        report.find(
            Tampered,
            format!(
                "the bundle's checkpoint is of {}, but its manifest names database {database}",
                checkpoint.origin
            ),
        );
    }
    let Some(trees) = checkpoint.tree_heads() else {
        report.find(
            Unusable,
            "the bundle's checkpoint carries no `tree` and `sessions` lines to check it against"
                .into(),
        );
        return report;
    };
    check_keys(&checkpoint, options, &mut report);
    check_extensions(bundle, &checkpoint, &trees, database, &mut report);
    check_auditor_checkpoints(bundle, &checkpoint, database, options, &mut report);

    let asked: BTreeSet<&str> = bundle
        .manifest
        .scope
        .sessions
        .iter()
        .map(String::as_str)
        .collect();
    let proven: BTreeSet<&str> = bundle.sessions.iter().map(|s| s.id.as_str()).collect();
    if asked != proven || bundle.sessions.len() != proven.len() {
        report.find(
            Tampered,
            format!(
                "the manifest's scope is {asked:?}, but the bundle proves sessions {:?}",
                bundle.sessions.iter().map(|s| &s.id).collect::<Vec<_>>()
            ),
        );
    }
    check_period(bundle, &trees, &mut report);
    let mut counts = super::Counts::default();
    for session in &bundle.sessions {
        let profile = bundle.manifest.scope.profile.as_deref();
        check_session(
            session,
            profile,
            &checkpoint,
            &trees,
            &mut report,
            &mut counts,
        );
    }
    if counts != bundle.manifest.counts {
        report.find(
            Tampered,
            format!(
                "the manifest counts {:?}, but the bundle holds {counts:?}",
                bundle.manifest.counts
            ),
        );
    }
    report
}

fn check_keys(checkpoint: &Checkpoint, options: &CheckOptions, report: &mut EvidenceReport) {
    if options.keys.is_empty() {
        report.notes.push(
            "no key given: the checkpoint's signatures were not checked, so the bundle proves \
             only that it agrees with itself and with the checkpoints you gave"
                .into(),
        );
        return;
    }
    let mut failures = Vec::new();
    for key in &options.keys {
        match checkpoint.check_signature(key) {
            Ok(()) => report.signed_by.push(key.name().to_owned()),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if report.signed_by.is_empty() {
        report.find(
            FindingClass::Tampered,
            format!(
                "the bundle's checkpoint is not signed by a key you gave: {}",
                failures.join("; ")
            ),
        );
    }
}

/// Each earlier checkpoint the bundle says it extends: same database, and its consistency
/// proof leads from that checkpoint's tree to the bundle's.
fn check_extensions(
    bundle: &Bundle,
    checkpoint: &Checkpoint,
    trees: &TreeHeads,
    database: &str,
    report: &mut EvidenceReport,
) {
    for extension in &bundle.extends {
        let earlier = match Checkpoint::parse_all(&extension.checkpoint) {
            Ok(mut all) if all.len() == 1 => all.remove(0),
            _ => {
                report.find(
                    FindingClass::Unusable,
                    "an earlier checkpoint in `extends` is not one checkpoint".into(),
                );
                continue;
            }
        };
        let size = earlier.size;
        if earlier.database_id() != Some(database) {
            report.find(
                FindingClass::Tampered,
                format!(
                    "the earlier checkpoint at size {size} is of {}, not of database {database}",
                    earlier.origin
                ),
            );
            continue;
        }
        let (Some(old), Some(proof)) = (earlier.tree_heads(), hashes(&extension.consistency))
        else {
            report.find(
                FindingClass::Unusable,
                format!("the earlier checkpoint at size {size} has no tree line, or its proof is not hex"),
            );
            continue;
        };
        match verify_consistency(size, checkpoint.size, &old.entries, &trees.entries, &proof) {
            Ok(()) => report.extends.push(size),
            Err(e) => report.find(
                FindingClass::Tampered,
                format!(
                    "the chain at the bundle's checkpoint ({} entries) does not extend the \
                     checkpoint at size {size} ({e}): the store was rewritten after it was taken",
                    checkpoint.size
                ),
            ),
        }
    }
}

/// The auditor's own checkpoints: each of this database, signed by a given key when keys
/// were given, and extended by the bundle (or the bundle's own, at the same size).
fn check_auditor_checkpoints(
    bundle: &Bundle,
    checkpoint: &Checkpoint,
    database: &str,
    options: &CheckOptions,
    report: &mut EvidenceReport,
) {
    for mine in &options.checkpoints {
        let size = mine.size;
        if mine.database_id() != Some(database) {
            report.find(
                FindingClass::Tampered,
                format!(
                    "your checkpoint at size {size} is of another database ({}), not of the \
                     bundle's ({database})",
                    mine.origin
                ),
            );
            continue;
        }
        if !options.keys.is_empty() && !options.keys.iter().any(|k| mine.check_signature(k).is_ok())
        {
            report.find(
                FindingClass::Tampered,
                format!("your checkpoint at size {size} is not signed by a key you gave"),
            );
            continue;
        }
        if size > checkpoint.size {
            report.find(
                FindingClass::Unusable,
                format!(
                    "the bundle was made at size {}, before your checkpoint at size {size}: ask \
                     for a bundle made now, with `--checkpoint` naming it",
                    checkpoint.size
                ),
            );
            continue;
        }
        let same = |other: &Checkpoint| {
            other.size == size
                && other.hash == mine.hash
                && (mine.tree_heads().is_none()
                    || mine.tree_heads().map(|t| t.entries)
                        == other.tree_heads().map(|t| t.entries))
        };
        if size == checkpoint.size {
            if !same(checkpoint) {
                report.find(
                    FindingClass::Tampered,
                    format!(
                        "your checkpoint and the bundle's are both at size {size} but name \
                         different heads: the store was forked or rewritten"
                    ),
                );
            }
            continue;
        }
        let extended: Vec<Checkpoint> = bundle
            .extends
            .iter()
            .filter_map(|e| {
                Checkpoint::parse_all(&e.checkpoint)
                    .ok()?
                    .into_iter()
                    .next()
            })
            .filter(|e| e.size == size)
            .collect();
        if !extended.iter().any(same) {
            report.find(
                FindingClass::Tampered,
                format!(
                    "the bundle does not prove that it extends your checkpoint at size {size}: \
                     it was made from a store that cannot be tied to it (rewritten after it was \
                     taken?), or without `--checkpoint` naming it"
                ),
            );
        }
    }
}

fn check_session(
    session: &SessionEvidence,
    profile: Option<&str>,
    checkpoint: &Checkpoint,
    trees: &TreeHeads,
    report: &mut EvidenceReport,
    counts: &mut super::Counts,
) {
    use FindingClass::{Omitted, Tampered};
    let id = session.id.as_str();
    report.sessions += 1;
    let head = &session.head;
    if !head_is_proven(id, head, trees) {
        report.find(
            Tampered,
            format!(
                "session {id}: its head ({} entries, the last at seq {}) is not in the \
                 checkpoint's sessions tree — the session's entries were miscounted, or the \
                 bundle is of another session",
                head.count, head.last
            ),
        );
    }
    // Entries: each of this session, each proven at its seq.
    let mut latest: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut seqs = BTreeSet::new();
    for entry in &session.entries {
        report.entries += 1;
        if entry.session_id.as_deref() != Some(id) {
            report.find(
                Tampered,
                format!(
                    "session {id}: entry seq {} belongs to session {:?}",
                    entry.seq, entry.session_id
                ),
            );
            continue;
        }
        if !seqs.insert(entry.seq) {
            report.find(
                Tampered,
                format!("session {id}: entry seq {} appears twice", entry.seq),
            );
            continue;
        }
        if let Err(why) = prove_entry(entry, checkpoint.size, &trees.entries) {
            report.find(Tampered, format!("session {id}: {why}"));
            continue;
        }
        let seq = latest.entry((&entry.table, &entry.row_id)).or_insert(0);
        *seq = (*seq).max(entry.seq);
    }
    if seqs.len() as u64 != head.count || seqs.last().copied().unwrap_or(0) != head.last {
        report.find(
            Omitted,
            format!(
                "session {id}: the bundle proves {} of its {} entries (last seq {:?} of {}): \
                 entries were left out",
                seqs.len(),
                head.count,
                seqs.last(),
                head.last
            ),
        );
    }
    let by_seq: HashMap<u64, &EntryProof> = session.entries.iter().map(|e| (e.seq, e)).collect();
    if let Some(sealed) = &session.other_profile {
        let committed = latest
            .get(&("sessions", id))
            .and_then(|seq| by_seq.get(seq))
            .and_then(|e| unhex(&e.leaf))
            .unwrap_or_default();
        if let Err(why) = other_profile(id, sealed, profile, &committed) {
            report.find(Tampered, format!("session {id}: {why}"));
        }
        counts.entries += session.entries.len() as u64;
        return;
    }
    // Rows: each at its latest entry's version, and of this session.
    let mut shown = BTreeSet::new();
    for row in &session.rows {
        report.rows += 1;
        let Some(spec) = spec_of(&row.table) else {
            report.find(
                Tampered,
                format!(
                    "session {id}: a row of table {:?}, which is not chained",
                    row.table
                ),
            );
            continue;
        };
        match row.table.as_str() {
            "sessions" => counts.sessions += 1,
            "steps" => counts.steps += 1,
            _ => counts.decisions += 1,
        }
        let row_id = row
            .columns
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let named = |column: &str| row.columns.get(column).and_then(|v| v.as_str());
        let Some(seq) = latest.get(&(spec.name, row_id)).copied() else {
            report.find(
                Tampered,
                format!(
                    "session {id}: {} row {row_id} has no entry in the session: nothing the \
                     audit layer committed (a forged row)",
                    spec.name
                ),
            );
            continue;
        };
        if !shown.insert((spec.name, row_id)) {
            report.find(
                Tampered,
                format!("session {id}: {} row {row_id} appears twice", spec.name),
            );
            continue;
        }
        let committed = by_seq
            .get(&seq)
            .and_then(|e| unhex(&e.leaf))
            .unwrap_or_default();
        match row_leaves(spec, &row.columns) {
            Ok((split, whole)) if committed == split || committed == whole => {}
            Ok(_)
                if erased(
                    session,
                    spec,
                    row_id,
                    seq,
                    &row.columns,
                    &committed,
                    checkpoint.size,
                    trees,
                ) =>
            {
                report.erased += 1;
            }
            Ok(_) => report.find(
                Tampered,
                format!(
                    "session {id}: {} row {row_id} is not what was committed at seq {seq}: a \
                     value was changed",
                    spec.name
                ),
            ),
            Err(why) => report.find(
                Tampered,
                format!("session {id}: {} row {row_id}: {why}", spec.name),
            ),
        }
        if spec.name == "sessions"
            && let Some(wanted) = profile
            && named("profile") != Some(wanted)
        {
            report.find(
                Tampered,
                format!("session {id} is taken whole but is not of profile {wanted}"),
            );
        }
        let belongs = match spec.name {
            "sessions" => row_id == id,
            "steps" => named("session_id") == Some(id),
            _ => true,
        };
        if !belongs {
            report.find(
                Tampered,
                format!(
                    "session {id}: {} row {row_id} names another session",
                    spec.name
                ),
            );
        }
    }
    // Rows chained here and not shown: each must have moved on to another session, proven.
    for (&(table, row_id), &seq) in &latest {
        if shown.contains(&(table, row_id)) {
            continue;
        }
        let moved = session.moved.iter().find(|m| {
            m.table == table
                && m.row_id == row_id
                && m.seq > seq
                && m.session_id.as_deref() != Some(id)
        });
        match moved {
            Some(m) => match prove_entry(m, checkpoint.size, &trees.entries) {
                Ok(()) => report.entries += 1,
                Err(why) => report.find(Tampered, format!("session {id}: moved {why}")),
            },
            None => report.find(
                Omitted,
                format!(
                    "session {id}: {table} row {row_id} (chained at seq {seq}) is left out of \
                     the bundle"
                ),
            ),
        }
    }
    counts.entries += (session.entries.len() + session.moved.len() + session.erasures.len()) as u64;
}

/// Whether a session's head is leaf `index` of the checkpoint's sessions tree.
fn head_is_proven(id: &str, head: &super::HeadProof, trees: &TreeHeads) -> bool {
    let leaf = merkle::leaf_hash(&head_data(
        &head.first_committed_at,
        id,
        head.count,
        head.last,
    ));
    hashes(&head.proof).is_some_and(|proof| {
        verify_inclusion(head.index, trees.sessions, &leaf, &proof, &trees.heads).is_ok()
    })
}

/// A period's completeness: its sessions are first committed in it, and they are exactly
/// the heads between its two neighbours in the sessions tree (or the tree's ends), each
/// neighbour proven and outside the period.
fn check_period(bundle: &Bundle, trees: &TreeHeads, report: &mut EvidenceReport) {
    use FindingClass::{Omitted, Tampered};
    let scope = &bundle.manifest.scope;
    let Some(since) = scope.since.as_deref() else {
        if bundle.bounds.is_some() || scope.until.is_some() {
            report.find(
                Tampered,
                "the bundle has period bounds but no period".into(),
            );
        }
        return;
    };
    let bounds = bundle.bounds.clone().unwrap_or_default();
    for session in &bundle.sessions {
        if !scope.holds_time(&session.head.first_committed_at) {
            report.find(
                Tampered,
                format!(
                    "session {} was first committed at {}, outside the period",
                    session.id, session.head.first_committed_at
                ),
            );
        }
    }
    if let Some(before) = &bounds.before {
        if !head_is_proven(&before.session_id, &before.head, trees) {
            report.find(
                Tampered,
                "the head before the period is not in the sessions tree".into(),
            );
        } else if before.head.first_committed_at.as_str() >= since {
            report.find(
                Tampered,
                "the head given as before the period is inside it".into(),
            );
        }
    }
    if let Some(after) = &bounds.after {
        let outside = scope
            .until
            .as_deref()
            .is_some_and(|until| after.head.first_committed_at.as_str() >= until);
        if !head_is_proven(&after.session_id, &after.head, trees) {
            report.find(
                Tampered,
                "the head after the period is not in the sessions tree".into(),
            );
        } else if !outside {
            report.find(
                Tampered,
                "the head given as after the period is inside it".into(),
            );
        }
    }
    let start = bounds.before.as_ref().map_or(0, |b| b.head.index + 1);
    let end = bounds
        .after
        .as_ref()
        .map_or(trees.sessions, |a| a.head.index);
    let mut proven: Vec<u64> = bundle.sessions.iter().map(|s| s.head.index).collect();
    proven.sort_unstable();
    // Compared without building the range: `end` comes from the bundle, and a forged
    // checkpoint could make it 2^64.
    let exact = end.checked_sub(start) == Some(proven.len() as u64)
        && proven
            .iter()
            .zip(start..)
            .all(|(&index, want)| index == want);
    if !exact {
        report.find(
            Omitted,
            format!(
                "the period holds the sessions at positions {start} to {} of the sessions \
                 tree, {} of them; the bundle proves {}: sessions were left out",
                end.saturating_sub(1),
                end.saturating_sub(start),
                proven.len()
            ),
        );
    }
}

/// A session of a profile's period shown as of another profile: its session row with the
/// content withheld must be its latest entry's split leaf, and name another profile.
fn other_profile(
    id: &str,
    sealed: &super::SealedRow,
    profile: Option<&str>,
    committed: &[u8],
) -> Result<(), String> {
    let Some(wanted) = profile else {
        return Err("withheld as of another profile, but the bundle is not of a profile".into());
    };
    let columns = &sealed.row.columns;
    if sealed.row.table != "sessions" || columns.get("id").and_then(|v| v.as_str()) != Some(id) {
        return Err("its withheld row is not its session row".into());
    }
    let shown = columns.get("profile").and_then(|v| v.as_str());
    if shown == Some(wanted) {
        return Err(format!(
            "it is of profile {wanted}, yet its rows were withheld"
        ));
    }
    let spec = &crate::chain::SESSIONS;
    if columns.keys().any(|name| {
        spec.columns
            .iter()
            .position(|c| c == name)
            .is_none_or(|i| spec.content.contains(&i))
    }) {
        return Err("its withheld row shows a content column".into());
    }
    let values = owned_values(spec, columns)?;
    let digest = hash_of_hex(&sealed.content).ok_or("its content digest is not hex")?;
    if split_leaf_with(spec, &cells_of(&values), &digest).as_slice() != committed {
        return Err(format!(
            "its session row, shown as of profile {}, is not what was committed",
            shown.unwrap_or("(none)")
        ));
    }
    Ok(())
}

/// Whether a row whose leaves do not match its latest entry was erased (docs/chain.md,
/// "Erasure"): an `erased` event of the bundle, proven and chained after that entry, lists
/// it with a content digest; its content columns hold the tombstones; and the split leaf of
/// its other columns with that digest is the entry's leaf.
#[allow(clippy::too_many_arguments)]
fn erased(
    session: &SessionEvidence,
    spec: &TableSpec,
    row_id: &str,
    seq: u64,
    columns: &serde_json::Map<String, serde_json::Value>,
    committed: &[u8],
    size: u64,
    trees: &TreeHeads,
) -> bool {
    let Ok(values) = owned_values(spec, columns) else {
        return false;
    };
    let cells = cells_of(&values);
    if !crate::chain::is_tombstoned(spec, &cells) {
        return false;
    }
    session.erasures.iter().any(|event| {
        let entry = &event.entry;
        let proven = entry.table == AUDIT_EVENTS.name
            && entry.seq > seq
            && event.row.table == AUDIT_EVENTS.name
            && event
                .row
                .columns
                .get("id")
                .map(ToString::to_string)
                .as_deref()
                == Some(entry.row_id.as_str())
            && event.row.columns.get("kind").and_then(|k| k.as_str()) == Some("erased")
            && prove_entry(entry, size, &trees.entries).is_ok()
            && row_leaves(&AUDIT_EVENTS, &event.row.columns).is_ok_and(|(split, whole)| {
                let leaf = unhex(&entry.leaf).unwrap_or_default();
                leaf == split || leaf == whole
            });
        let detail: serde_json::Value = event
            .row
            .columns
            .get("detail")
            .and_then(|d| d.as_str())
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        proven
            && detail["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|listed| {
                    listed[0].as_str() == Some(spec.name)
                        && listed[1].as_str() == Some(row_id)
                        && listed[2]
                            .as_str()
                            .and_then(hash_of_hex)
                            .is_some_and(|digest| {
                                split_leaf_with(spec, &cells, &digest).as_slice() == committed
                            })
                })
    })
}

/// Checks an entry's inclusion proof: it is entry `seq` of the tree of `size` entries.
fn prove_entry(entry: &EntryProof, size: u64, root: &Hash) -> Result<(), String> {
    let seq = entry.seq;
    let (Some(leaf), Some(proof)) = (unhex(&entry.leaf), hashes(&entry.proof)) else {
        return Err(format!("entry seq {seq}: its leaf or proof is not hex"));
    };
    if seq == 0 || seq > size {
        return Err(format!(
            "entry seq {seq} is outside the checkpoint's {size} entries"
        ));
    }
    let data = entry_data(
        seq,
        &entry.table,
        &entry.row_id,
        entry.session_id.as_deref(),
        &entry.committed_at,
        &leaf,
    );
    verify_inclusion(seq - 1, size, &merkle::leaf_hash(&data), &proof, root).map_err(|e| {
        format!(
            "entry seq {seq} ({} {}) is not what the chain holds at that seq ({e})",
            entry.table, entry.row_id
        )
    })
}
