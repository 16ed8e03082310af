//! Making a bundle, whatever the store: the chain read entry by entry into both trees and
//! the entries of the sessions asked for ([`ChainReading`]), then the bundle assembled from
//! it and the rows the store read ([`assemble`]). Also the tree heads a checkpoint carries,
//! at one size or several ([`HeadsAt`]). The SQLite store's reading is
//! `store/sqlite/evidence.rs`.

use std::collections::{BTreeMap, HashMap};

use super::{
    Bounds, Bundle, Counts, EVIDENCE_FORMAT, EVIDENCE_SPEC, EntryProof, EventEvidence, Extension,
    HeadProof, Manifest, Neighbour, RowRecord, Scope, SessionEvidence, StoredEntry, entry_hash,
    head_data, hex,
};
use crate::chain::checkpoint::{Checkpoint, SignerKey, TreeHeads};
use crate::chain::merkle::{self, Tree};
use crate::chain::{ChainHead, Hash, SESSIONS};

/// How a bundle is made.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Sign the bundle's checkpoint with this key.
    pub sign: Option<SignerKey>,
    /// Earlier checkpoints of this store the bundle must prove it extends (those with tree
    /// heads; the others cannot be proven offline and are listed in the build's notes).
    pub extends: Vec<Checkpoint>,
    /// Who makes it, for the manifest (the store's `build` gives `$USER@host` when none is
    /// given).
    pub made_by: Option<String>,
}

/// Each session's head as counted so far.
#[derive(Clone, Debug)]
pub(crate) struct Head {
    /// The `committed_at` of its first entry: where the sessions tree sorts it, and what
    /// a period is asked by.
    pub(crate) first: String,
    pub(crate) count: u64,
    pub(crate) last: u64,
}

/// Every session's head, by id.
#[derive(Default)]
pub(crate) struct Heads(HashMap<String, Head>);

impl Heads {
    /// Counts an entry into its session's head; `true` when it is the session's first.
    fn count(&mut self, entry: &StoredEntry) -> bool {
        let Some(session) = &entry.session_id else {
            return false;
        };
        match self.0.get_mut(session) {
            Some(head) => {
                head.count += 1;
                head.last = entry.seq;
                false
            }
            None => {
                self.0.insert(
                    session.clone(),
                    Head {
                        first: entry.committed_at.clone(),
                        count: 1,
                        last: entry.seq,
                    },
                );
                true
            }
        }
    }

    /// The session ids in the sessions tree's order: by first entry's time, then id.
    fn order(&self) -> Vec<&String> {
        let mut ids: Vec<&String> = self.0.keys().collect();
        ids.sort_by(|a, b| (&self.0[*a].first, *a).cmp(&(&self.0[*b].first, *b)));
        ids
    }

    /// The sessions tree and the ids in its order.
    fn tree(&self) -> (Tree, Vec<String>) {
        let order = self.order();
        let tree = Tree::new(
            order
                .iter()
                .map(|id| {
                    let head = &self.0[*id];
                    merkle::leaf_hash(&head_data(&head.first, id, head.count, head.last))
                })
                .collect(),
        );
        (tree, order.into_iter().cloned().collect())
    }
}

/// The chain of a store read whole: both trees, and the entries of the sessions asked for.
pub(crate) struct ReadChain {
    pub(crate) database_id: String,
    pub(crate) head: ChainHead,
    pub(crate) entries: Tree,
    pub(crate) heads: Heads,
    pub(crate) heads_tree: Tree,
    /// The session ids in the sessions tree's order.
    pub(crate) order: Vec<String>,
    /// The entries of the sessions asked for (by id, or first committed in the period).
    pub(crate) kept: HashMap<String, Vec<StoredEntry>>,
    /// For each row those entries cover (`table\0id`), its latest entry in the whole chain.
    pub(crate) latest: HashMap<String, StoredEntry>,
}

impl ReadChain {
    pub(crate) fn tree_heads(&self) -> TreeHeads {
        TreeHeads {
            entries: self.entries.root(),
            sessions: self.order.len() as u64,
            heads: self.heads_tree.root(),
        }
    }

    /// A session's head with its proof, by its index in the sessions tree.
    fn head_proof(&self, index: usize) -> Option<(String, HeadProof)> {
        let id = self.order.get(index)?;
        let head = self.heads.0.get(id)?;
        let proof = self.heads_tree.inclusion_proof(index as u64)?;
        Some((
            id.clone(),
            HeadProof {
                index: index as u64,
                first_committed_at: head.first.clone(),
                count: head.count,
                last: head.last,
                proof: proof.iter().map(|h| hex(h)).collect(),
            },
        ))
    }
}

pub(crate) fn row_key(table: &str, row_id: &str) -> String {
    format!("{table}\0{row_id}")
}

/// A chain read entry by entry, in seq order, by a store: both trees, and the entries of
/// the sessions the scope asks for.
pub(crate) struct ChainReading {
    scope: Scope,
    kept: HashMap<String, Vec<StoredEntry>>,
    latest: HashMap<String, StoredEntry>,
    heads: Heads,
    leaves: Vec<Hash>,
}

impl ChainReading {
    pub(crate) fn new(scope: &Scope) -> Self {
        ChainReading {
            scope: scope.clone(),
            kept: scope
                .sessions
                .iter()
                .map(|s| (s.clone(), Vec::new()))
                .collect(),
            latest: HashMap::new(),
            heads: Heads::default(),
            leaves: Vec::new(),
        }
    }

    /// Takes the next entry; `Err(seq)` when it is not the next seq (a gap or a
    /// duplicate: the tree's positions would not be the chain's).
    pub(crate) fn push(&mut self, entry: StoredEntry) -> std::result::Result<(), u64> {
        if entry.seq != self.leaves.len() as u64 + 1 {
            return Err(entry.seq);
        }
        self.leaves.push(entry_hash(&entry));
        if self.heads.count(&entry) && self.scope.holds_time(&entry.committed_at) {
            if let Some(id) = &entry.session_id {
                self.kept.entry(id.clone()).or_default();
            }
        }
        let key = row_key(&entry.table, &entry.row_id);
        if let Some(entries) = entry.session_id.as_ref().and_then(|s| self.kept.get_mut(s)) {
            entries.push(entry.clone());
            self.latest.insert(key, entry);
        } else if let Some(later) = self.latest.get_mut(&key) {
            *later = entry;
        }
        Ok(())
    }

    pub(crate) fn finish(self, database_id: String, head: ChainHead) -> ReadChain {
        let (heads_tree, order) = self.heads.tree();
        ReadChain {
            database_id,
            head,
            entries: Tree::new(self.leaves),
            heads: self.heads,
            heads_tree,
            order,
            kept: self.kept,
            latest: self.latest,
        }
    }
}

/// The tree heads at several sizes (checkpoints to check), from one pass over the entries,
/// in memory that grows with the sessions, not the entries: the entries tree is kept as a
/// [`Frontier`](merkle::Frontier).
pub(crate) struct HeadsAt {
    wanted: Vec<u64>,
    next: usize,
    heads: Heads,
    entries: merkle::Frontier,
    reached: Vec<(u64, TreeHeads)>,
}

impl HeadsAt {
    pub(crate) fn new(sizes: &[u64]) -> Self {
        let mut wanted: Vec<u64> = sizes.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let mut at = HeadsAt {
            wanted,
            next: 0,
            heads: Heads::default(),
            entries: merkle::Frontier::default(),
            reached: Vec::new(),
        };
        at.snapshot_if_wanted();
        at
    }

    fn snapshot_if_wanted(&mut self) {
        let size = self.entries.size();
        while self.wanted.get(self.next) == Some(&size) {
            let (tree, order) = self.heads.tree();
            self.reached.push((
                size,
                TreeHeads {
                    entries: self.entries.root(),
                    sessions: order.len() as u64,
                    heads: tree.root(),
                },
            ));
            self.next += 1;
        }
    }

    /// Whether an entry beyond those read is still needed.
    pub(crate) fn wants_more(&self) -> bool {
        self.next < self.wanted.len()
    }

    pub(crate) fn push(&mut self, entry: &StoredEntry) {
        self.entries.push(entry_hash(entry));
        self.heads.count(entry);
        self.snapshot_if_wanted();
    }

    /// Each size with its tree heads, `None` for a size past the chain's end.
    pub(crate) fn finish(self) -> Vec<(u64, Option<TreeHeads>)> {
        let mut out: Vec<(u64, Option<TreeHeads>)> = self
            .reached
            .into_iter()
            .map(|(size, trees)| (size, Some(trees)))
            .collect();
        out.extend(self.wanted[self.next..].iter().map(|&size| (size, None)));
        out
    }
}

/// The scope as a bundle records it (ids sorted, once each), or why it cannot be asked.
pub(crate) fn normalised(scope: &Scope) -> std::result::Result<Scope, String> {
    let mut scope = scope.clone();
    scope.sessions.sort();
    scope.sessions.dedup();
    if scope.sessions.is_empty() && scope.since.is_none() {
        return Err("nothing was asked for: give session ids, or a period".into());
    }
    if scope.profile.is_some() && scope.since.is_none() {
        return Err("a profile is taken over a period: give its start (or the empty one)".into());
    }
    if !scope.sessions.is_empty() && (scope.since.is_some() || scope.until.is_some()) {
        return Err("give session ids or a period, not both".into());
    }
    Ok(scope)
}

/// Checks what `scope` asks for against the chain read, and assembles the bundle: the
/// store has read the chain, each kept row as it stands (`None`: gone), and the erasures.
///
/// # Errors
/// A message for the store to wrap: a session without entries, a row gone, a checkpoint the
/// chain does not extend.
pub(crate) fn assemble(
    chain: &ReadChain,
    rows: &HashMap<String, Option<RowRecord>>,
    erasures: &[Erasure],
    scope: &Scope,
    options: &BuildOptions,
) -> std::result::Result<Bundle, String> {
    let mut scope = scope.clone();
    for id in &scope.sessions {
        if !chain.heads.0.contains_key(id) {
            return Err(format!(
                "session {id} has no entry in its chain: check the id with `reasonkit-audit \
                 sessions`"
            ));
        }
    }
    // The sessions proven, in the sessions tree's order; for a period, those first
    // committed in it, and the heads just outside it.
    let index: HashMap<&str, usize> = chain
        .order
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut proven: Vec<usize> = chain
        .kept
        .keys()
        .filter_map(|id| index.get(id.as_str()).copied())
        .collect();
    proven.sort_unstable();
    let bounds = scope.since.as_ref().map(|since| {
        let first = chain
            .order
            .partition_point(|id| chain.heads.0[id].first.as_str() < since.as_str());
        let end = match &scope.until {
            Some(until) => chain
                .order
                .partition_point(|id| chain.heads.0[id].first.as_str() < until.as_str()),
            None => chain.order.len(),
        };
        let neighbour = |i: usize| {
            chain
                .head_proof(i)
                .map(|(session_id, head)| Neighbour { session_id, head })
        };
        Bounds {
            before: first.checked_sub(1).and_then(neighbour),
            after: neighbour(end),
        }
    });
    if scope.since.is_some() {
        scope.sessions = proven.iter().map(|&i| chain.order[i].clone()).collect();
    }
    let trees = chain.tree_heads();
    let mut checkpoint = Checkpoint::of_head(&chain.database_id, &chain.head).with_trees(&trees);
    if let Some(key) = &options.sign {
        checkpoint = checkpoint.signed(key);
    }
    let extends = options
        .extends
        .iter()
        .filter(|c| c.tree_heads().is_some())
        .map(|earlier| extension(chain, earlier))
        .collect::<std::result::Result<Vec<_>, String>>()?;

    let proof = |entry: &StoredEntry| EntryProof {
        seq: entry.seq,
        table: entry.table.clone(),
        row_id: entry.row_id.clone(),
        session_id: entry.session_id.clone(),
        committed_at: entry.committed_at.clone(),
        leaf: hex(&entry.leaf),
        proof: chain
            .entries
            .inclusion_proof(entry.seq - 1)
            .unwrap_or_default()
            .iter()
            .map(|h| hex(h))
            .collect(),
    };
    let mut counts = Counts::default();
    let mut bundled = Vec::new();
    let mut range: Option<(String, String)> = None;
    for &position in &proven {
        let Some((id, head)) = chain.head_proof(position) else {
            continue;
        };
        let id = &id;
        let entries = chain.kept.get(id).map_or(&[][..], Vec::as_slice);
        // Each row's latest entry in this session, in row order.
        let mut last_here: BTreeMap<String, u64> = BTreeMap::new();
        for entry in entries {
            last_here.insert(row_key(&entry.table, &entry.row_id), entry.seq);
        }
        let mut session = SessionEvidence {
            id: id.clone(),
            head,
            entries: entries.iter().map(proof).collect(),
            rows: Vec::new(),
            moved: Vec::new(),
            other_profile: None,
            erasures: Vec::new(),
        };
        // A profile's bundle: a session of another profile is proven so, and no more.
        let session_row = rows
            .get(&row_key(SESSIONS.name, id))
            .and_then(Option::as_ref);
        if let (Some(wanted), Some(row)) = (&scope.profile, session_row)
            && row.columns.get("profile").and_then(|p| p.as_str()) != Some(wanted.as_str())
        {
            session.other_profile = Some(super::rows::sealed(row)?);
            counts.entries += session.entries.len() as u64;
            bundled.push(session);
            continue;
        }
        for (event, entry, listed) in erasures {
            if listed.iter().any(|key| last_here.contains_key(key)) {
                session.erasures.push(EventEvidence {
                    row: event.clone(),
                    entry: proof(entry),
                });
            }
        }
        for (key, seq) in last_here {
            let Some(latest) = chain.latest.get(&key) else {
                continue;
            };
            if latest.seq > seq && latest.session_id.as_deref() != Some(id) {
                session.moved.push(proof(latest));
                continue;
            }
            match rows.get(&key) {
                Some(Some(row)) => {
                    match row.table.as_str() {
                        "sessions" => {
                            counts.sessions += 1;
                            let at = |c: &str| row.columns.get(c).and_then(|v| v.as_str());
                            if let Some(start) = at("started_at") {
                                let end = at("ended_at").unwrap_or(start);
                                range = Some(match range.take() {
                                    None => (start.to_owned(), end.to_owned()),
                                    Some((a, b)) => {
                                        (a.min(start.to_owned()), b.max(end.to_owned()))
                                    }
                                });
                            }
                        }
                        "steps" => counts.steps += 1,
                        _ => counts.decisions += 1,
                    }
                    session.rows.push(row.clone());
                }
                _ => {
                    let (table, row_id) = key.split_once('\0').unwrap_or((&key, ""));
                    return Err(format!(
                        "{table} row {row_id} of session {id} is not in the store (pruned, or \
                         deleted behind the audit layer's back); run `reasonkit-audit verify`"
                    ));
                }
            }
        }
        counts.entries +=
            (session.entries.len() + session.moved.len() + session.erasures.len()) as u64;
        bundled.push(session);
    }
    Ok(Bundle {
        evidence: EVIDENCE_FORMAT.to_owned(),
        spec: EVIDENCE_SPEC,
        manifest: Manifest {
            database_id: chain.database_id.clone(),
            tool: format!("reasonkit-audit {}", env!("CARGO_PKG_VERSION")),
            made_at: checkpoint.time().unwrap_or_default().to_owned(),
            made_by: options.made_by.clone().unwrap_or_default(),
            scope,
            counts,
            time_range: range,
        },
        checkpoint: checkpoint.to_string(),
        extends,
        bounds,
        sessions: bundled,
    })
}

/// The consistency proof from an earlier checkpoint to the chain read, after checking the
/// chain still holds what that checkpoint says.
fn extension(chain: &ReadChain, earlier: &Checkpoint) -> std::result::Result<Extension, String> {
    let size = earlier.size;
    if earlier.database_id() != Some(chain.database_id.as_str()) {
        return Err(format!(
            "checkpoint at size {size} is of another database ({}): give this store's",
            earlier.origin
        ));
    }
    if size > chain.head.size {
        return Err(format!(
            "checkpoint at size {size} is newer than the store's chain ({} entries): the \
             store lost entries since, or it is an older copy; run `reasonkit-audit verify \
             --checkpoint`",
            chain.head.size
        ));
    }
    let held = chain.entries.prefix_root(size);
    if earlier.tree_heads().map(|t| t.entries) != held {
        return Err(format!(
            "the store's chain no longer extends the checkpoint at size {size}: its first \
             {size} entries were rewritten after it was taken. That is evidence of \
             tampering; run `reasonkit-audit verify --checkpoint` to see where"
        ));
    }
    Ok(Extension {
        checkpoint: earlier.to_string(),
        consistency: chain
            .entries
            .consistency_proof(size)
            .unwrap_or_default()
            .iter()
            .map(|h| hex(h))
            .collect(),
    })
}

/// A chained `erased` event: its row, its latest entry, and the rows it lists
/// (`table\0id`).
pub(crate) type Erasure = (RowRecord, StoredEntry, Vec<String>);

/// An erasure from its row and entry.
pub(crate) fn erasure(record: RowRecord, entry: StoredEntry) -> Erasure {
    let detail: serde_json::Value = record
        .columns
        .get("detail")
        .and_then(|d| d.as_str())
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    let listed = detail["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some(row_key(r[0].as_str()?, r[1].as_str()?)))
        .collect();
    (record, entry, listed)
}
