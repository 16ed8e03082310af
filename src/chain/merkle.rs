//! RFC 6962 Merkle trees (as RFC 9162 restates them): the tree head of a list of leaves,
//! inclusion proofs (this leaf is the i-th of a tree of this head) and consistency proofs
//! (the tree of this head is a prefix of the tree of that one), built and verified.
//!
//! Why: the linear chain proves a whole file, replayed from its first entry. An export of
//! one session taken away from the file cannot carry a million entries to be replayed; it
//! can carry a logarithmic proof that each of its entries is in the tree whose head a
//! checkpoint holds. This module is that part and nothing else: which bytes make a leaf,
//! and how a checkpoint carries the head, belong to the evidence format built on it.
//!
//! The definitions, with `‖` concatenation and `k` the largest power of two below `n`:
//! - leaf hash = SHA-256(`0x00` ‖ leaf data); node = SHA-256(`0x01` ‖ left ‖ right);
//! - MTH(\[\]) = SHA-256(""), MTH(\[d\]) = leaf hash of d,
//!   MTH(D\[0:n\]) = node(MTH(D\[0:k\]), MTH(D\[k:n\]));
//! - proofs and their verification: RFC 9162 §2.1.3 and §2.1.4, whose verification
//!   algorithms are followed step by step below.
//!
//! A [`Tree`] keeps every level of the tree (a node whose sibling does not exist yet is
//! carried up unchanged, which gives exactly MTH's left-balanced shape), so each proof is a
//! walk of `log n` nodes after one pass over the leaves. Checked against the Certificate
//! Transparency reference vectors (`docs/chain-vectors.json`, `merkle`) and, by property
//! tests, against the recursive definitions for every index of every tree up to 70 leaves.

use sha2::{Digest, Sha256};

use super::Hash;

/// The first byte of a hashed leaf (RFC 6962).
const LEAF: u8 = 0x00;
/// The first byte of a hashed pair of nodes (RFC 6962).
const NODE: u8 = 0x01;

/// The leaf hash of `data`: SHA-256(`0x00` ‖ data).
pub(crate) fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([LEAF])
        .chain_update(data)
        .finalize()
        .into()
}

/// The hash of two nodes: SHA-256(`0x01` ‖ left ‖ right).
pub(crate) fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([NODE])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The head of the empty tree: SHA-256 of nothing.
pub(crate) fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A Merkle tree over a list of leaf hashes, every level kept.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    /// `levels[0]` are the leaf hashes; `levels[j][i]` covers the leaves
    /// `i·2^j .. min((i+1)·2^j, n)`.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// The tree over these leaf hashes (see [`leaf_hash`]).
    pub(crate) fn new(leaves: Vec<Hash>) -> Tree {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|level| level.len() > 1) {
            let below = levels.last().map_or(&[][..], Vec::as_slice);
            let above: Vec<Hash> = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    // The last node of an odd level is carried up as it is.
                    [last] => *last,
                    _ => empty_root(),
                })
                .collect();
            levels.push(above);
        }
        Tree { levels }
    }

    /// The number of leaves.
    pub(crate) fn size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// MTH of the whole tree.
    pub(crate) fn root(&self) -> Hash {
        match self.levels.last() {
            Some(top) if top.len() == 1 => top[0],
            _ => empty_root(),
        }
    }

    /// MTH of the leaves `start..end`, a range the proofs' recursion produces: a node of
    /// a level when it is one, else computed from the nodes below it.
    fn range_hash(&self, start: u64, end: u64) -> Hash {
        let size = end - start;
        if size == 0 {
            return empty_root();
        }
        // The level whose nodes are as wide as the range, or wider at the tree's end.
        let level = size.next_power_of_two().trailing_zeros() as usize;
        let width = 1u64 << level;
        let aligned = start % width == 0;
        let fits = start + width == end || (end == self.size() && start + width > end);
        if aligned
            && fits
            && let Some(node) = self
                .levels
                .get(level)
                .and_then(|nodes| nodes.get((start >> level) as usize))
        {
            return *node;
        }
        if size == 1 {
            return self
                .levels
                .first()
                .and_then(|leaves| leaves.get(start as usize))
                .copied()
                .unwrap_or_else(empty_root);
        }
        let k = largest_power_of_two_below(size);
        node_hash(
            &self.range_hash(start, start + k),
            &self.range_hash(start + k, end),
        )
    }

    /// The head of the tree of the first `size` leaves (a checkpoint taken when the chain
    /// was that long), or `None` past the end.
    pub(crate) fn prefix_root(&self, size: u64) -> Option<Hash> {
        (size <= self.size()).then(|| self.range_hash(0, size))
    }

    /// The inclusion proof of leaf `index` (from 0): the audit path of RFC 9162 §2.1.3.1,
    /// or `None` when there is no such leaf.
    pub(crate) fn inclusion_proof(&self, index: u64) -> Option<Vec<Hash>> {
        if index >= self.size() {
            return None;
        }
        let mut path = Vec::new();
        let mut at = index as usize;
        let below_the_root = self.levels.split_last().map_or(&[][..], |(_, below)| below);
        for nodes in below_the_root {
            let sibling = at ^ 1;
            // No sibling: this node is carried up, and adds nothing to the path.
            if let Some(node) = nodes.get(sibling) {
                path.push(*node);
            }
            at /= 2;
        }
        Some(path)
    }

    /// The consistency proof from the tree's first `old_size` leaves to the whole tree
    /// (RFC 9162 §2.1.4.1), or `None` when `old_size` is larger than the tree.
    pub(crate) fn consistency_proof(&self, old_size: u64) -> Option<Vec<Hash>> {
        let size = self.size();
        if old_size > size {
            return None;
        }
        let mut proof = Vec::new();
        if old_size > 0 && old_size < size {
            self.subproof(old_size, 0, size, true, &mut proof);
        }
        Some(proof)
    }

    /// SUBPROOF(m, D\[start:end\], complete) of RFC 9162 §2.1.4.1, appended to `proof`.
    fn subproof(&self, m: u64, start: u64, end: u64, complete: bool, proof: &mut Vec<Hash>) {
        let n = end - start;
        if m == n {
            if !complete {
                proof.push(self.range_hash(start, end));
            }
            return;
        }
        let k = largest_power_of_two_below(n);
        if m <= k {
            self.subproof(m, start, start + k, complete, proof);
            proof.push(self.range_hash(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, proof);
            proof.push(self.range_hash(start, start + k));
        }
    }
}

/// The largest power of two smaller than `n` (for `n` ≥ 2).
/// The head of a tree built leaf by leaf in O(log n) memory, for when only heads are
/// wanted (a checkpoint's, or several prefixes' in one pass): it keeps the roots of the
/// perfect subtrees the leaves so far make. RFC 6962's tree of n leaves is exactly those
/// subtrees, largest first, joined from the right.
#[derive(Clone, Debug, Default)]
pub(crate) struct Frontier {
    size: u64,
    /// The perfect subtrees' roots, largest (leftmost) first.
    subtrees: Vec<Hash>,
}

impl Frontier {
    /// Appends a leaf hash: equal perfect subtrees are merged, as a binary counter carries.
    pub(crate) fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        let mut carry = self.size;
        while carry & 1 == 1 {
            let Some(left) = self.subtrees.pop() else {
                break;
            };
            node = node_hash(&left, &node);
            carry >>= 1;
        }
        self.subtrees.push(node);
        self.size += 1;
    }

    /// How many leaves it holds.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The head of the tree of the leaves so far.
    pub(crate) fn root(&self) -> Hash {
        match self.subtrees.split_last() {
            None => empty_root(),
            Some((last, rest)) => rest
                .iter()
                .rev()
                .fold(*last, |right, left| node_hash(left, &right)),
        }
    }
}

fn largest_power_of_two_below(n: u64) -> u64 {
    if n < 2 {
        return 0;
    }
    1 << (63 - (n - 1).leading_zeros())
}

/// Why a proof was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ProofError {
    /// The leaf index is not below the tree size, or the old size exceeds the new.
    OutOfRange,
    /// The proof has the wrong number of hashes for these sizes.
    WrongLength,
    /// The proof's hashes do not lead to the heads given.
    Mismatch,
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProofError::OutOfRange => "the index or size is out of range for this tree",
            ProofError::WrongLength => "the proof has the wrong number of hashes",
            ProofError::Mismatch => "the proof does not lead to the tree head",
        })
    }
}

/// The step both verifications share: a node that is its level's last (`fn` = `sn`, even)
/// was carried up unchanged, so climb, while `fn` is even and not 0, without hashing.
fn climb_right_edge(fn_: &mut u64, sn: &mut u64) {
    while *fn_ & 1 == 0 && *fn_ != 0 {
        *fn_ >>= 1;
        *sn >>= 1;
    }
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves whose head
/// is `root`, by RFC 9162 §2.1.3.2.
pub(crate) fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            climb_right_edge(&mut fn_, &mut sn);
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

/// Checks that the tree of `old_size` leaves with head `old_root` is a prefix of the tree
/// of `new_size` leaves with head `new_root`, by RFC 9162 §2.1.4.2.
pub(crate) fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OutOfRange);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if old_size == 0 {
        // The empty tree is a prefix of every tree, with nothing to prove.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    let Some((first, rest)) = proof.split_first() else {
        return Err(ProofError::WrongLength);
    };
    // 2. An old tree of a power-of-two size is a node of the new one: its head starts
    // the path.
    let (start, path): (Hash, &[Hash]) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        (*first, rest)
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (start, start);
    for c in path {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            climb_right_edge(&mut fn_, &mut sn);
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// MTH by its recursive definition, for checking the levels against.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves {
            [] => empty_root(),
            [one] => *one,
            _ => {
                let k = largest_power_of_two_below(leaves.len() as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// PATH(m, D\[n\]) by its recursive definition.
    fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        if leaves.len() <= 1 {
            return Vec::new();
        }
        let k = largest_power_of_two_below(leaves.len() as u64) as usize;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    /// PROOF(m, D\[n\]) by its recursive definition.
    fn consistency(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if complete {
                Vec::new()
            } else {
                vec![mth(leaves)]
            };
        }
        let k = largest_power_of_two_below(n as u64) as usize;
        if m <= k {
            let mut p = consistency(m, &leaves[..k], complete);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = consistency(m - k, &leaves[k..], false);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hash(text: &str) -> Hash {
        unhex(text).try_into().unwrap()
    }

    /// The Certificate Transparency reference vectors, from docs/chain-vectors.json.
    struct Vectors {
        leaves: Vec<Hash>,
        roots: Vec<Hash>,
        inclusion: Vec<(u64, u64, Vec<Hash>)>,
        consistency: Vec<(u64, u64, Vec<Hash>)>,
    }

    fn vectors() -> Vectors {
        let text = include_str!("../../docs/chain-vectors.json");
        let all: serde_json::Value = serde_json::from_str(text).unwrap();
        let m = &all["merkle"];
        let hashes = |v: &serde_json::Value| -> Vec<Hash> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|h| hash(h.as_str().unwrap()))
                .collect()
        };
        let proofs = |v: &serde_json::Value, a: &str, b: &str| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[a].as_u64().unwrap(),
                        p[b].as_u64().unwrap(),
                        hashes(&p["proof"]),
                    )
                })
                .collect()
        };
        Vectors {
            leaves: m["leaf_data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| leaf_hash(&unhex(d.as_str().unwrap())))
                .collect(),
            roots: hashes(&m["roots"]),
            inclusion: proofs(&m["inclusion"], "index", "size"),
            consistency: proofs(&m["consistency"], "old_size", "new_size"),
        }
    }

    #[test]
    fn chain_vectors_merkle_heads_and_proofs_are_the_reference_ones() {
        let v = vectors();
        assert_eq!(
            Tree::new(Vec::new()).root(),
            hash("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        for (n, root) in v.roots.iter().enumerate() {
            let tree = Tree::new(v.leaves[..=n].to_vec());
            assert_eq!(tree.root(), *root, "head of {} leaves", n + 1);
        }
        for (index, size, proof) in &v.inclusion {
            let tree = Tree::new(v.leaves[..*size as usize].to_vec());
            assert_eq!(tree.inclusion_proof(*index).as_ref(), Some(proof));
            let root = v.roots[*size as usize - 1];
            let leaf = v.leaves[*index as usize];
            assert_eq!(verify_inclusion(*index, *size, &leaf, proof, &root), Ok(()));
        }
        for (old, new, proof) in &v.consistency {
            let tree = Tree::new(v.leaves[..*new as usize].to_vec());
            assert_eq!(tree.consistency_proof(*old).as_ref(), Some(proof));
            let (a, b) = (v.roots[*old as usize - 1], v.roots[*new as usize - 1]);
            assert_eq!(verify_consistency(*old, *new, &a, &b, proof), Ok(()));
        }
    }

    #[test]
    fn edge_cases_are_refused_or_accepted_as_the_rfc_says() {
        let v = vectors();
        let some = hash("abacaba000000000000000000000000000000000000000000060061e00123456");
        let empty = empty_root();
        // No leaf in an empty tree, none past the end.
        assert_eq!(
            verify_inclusion(0, 0, &some, &[], &empty),
            Err(ProofError::OutOfRange)
        );
        assert_eq!(Tree::new(v.leaves.clone()).inclusion_proof(8), None);
        // One leaf: the head is the leaf, the proof empty.
        assert_eq!(verify_inclusion(0, 1, &some, &[], &some), Ok(()));
        assert_eq!(
            verify_inclusion(0, 1, &some, &[], &empty),
            Err(ProofError::Mismatch)
        );
        // Consistency: sizes that always agree, and time travel.
        assert_eq!(verify_consistency(0, 5, &some, &empty, &[]), Ok(()));
        assert_eq!(verify_consistency(3, 3, &some, &some, &[]), Ok(()));
        assert_eq!(
            verify_consistency(3, 3, &some, &empty, &[]),
            Err(ProofError::Mismatch)
        );
        assert_eq!(
            verify_consistency(3, 3, &some, &some, &[empty]),
            Err(ProofError::WrongLength)
        );
        assert_eq!(
            verify_consistency(2, 1, &some, &some, &[]),
            Err(ProofError::OutOfRange)
        );
        assert_eq!(
            verify_consistency(1, 2, &v.roots[0], &v.roots[1], &[]),
            Err(ProofError::WrongLength)
        );
        assert_eq!(Tree::new(v.leaves.clone()).consistency_proof(9), None);
    }

    /// Every way the reference test suites corrupt a good proof, each refused.
    #[test]
    fn corrupted_proofs_are_refused() {
        let v = vectors();
        let some = hash("abacaba000000000000000000000000000000000000000000060061e00123456");
        for (index, size, proof) in &v.inclusion {
            let (index, size) = (*index, *size);
            let root = v.roots[size as usize - 1];
            let leaf = v.leaves[index as usize];
            let mut bad: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
                (index.wrapping_sub(1), size, leaf, root, proof.clone()),
                (index + 1, size, leaf, root, proof.clone()),
                (index ^ 2, size, leaf, root, proof.clone()),
                (index, size * 2, leaf, root, proof.clone()),
                (index, size / 2, leaf, root, proof.clone()),
                (index, size, some, root, proof.clone()),
                (index, size, leaf, some, proof.clone()),
                (
                    index,
                    size,
                    leaf,
                    root,
                    [proof.clone(), vec![root]].concat(),
                ),
                (
                    index,
                    size,
                    leaf,
                    root,
                    [vec![root], proof.clone()].concat(),
                ),
            ];
            for i in 0..proof.len() {
                let mut flipped = proof.clone();
                flipped[i][0] ^= 8;
                bad.push((index, size, leaf, root, flipped));
                bad.push((index, size, leaf, root, proof[..i].to_vec()));
            }
            for (i, s, l, r, p) in bad {
                assert!(
                    verify_inclusion(i, s, &l, &p, &r).is_err(),
                    "inclusion {index}/{size} taken with index {i}, size {s}, {} hashes",
                    p.len()
                );
            }
        }
        for (old, new, proof) in &v.consistency {
            let (old, new) = (*old, *new);
            if proof.is_empty() {
                continue;
            }
            let (a, b) = (v.roots[old as usize - 1], v.roots[new as usize - 1]);
            let mut bad: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
                (old - 1, new, a, b, proof.clone()),
                (old + 1, new, a, b, proof.clone()),
                (old ^ 2, new, a, b, proof.clone()),
                (old, new * 2, a, b, proof.clone()),
                (old, new / 2, a, b, proof.clone()),
                (old, new, some, b, proof.clone()),
                (old, new, a, some, proof.clone()),
                (old, new, b, a, proof.clone()),
                (old, new, a, b, Vec::new()),
                (old, new, a, b, [proof.clone(), vec![a]].concat()),
                (old, new, a, b, [proof.clone(), vec![b]].concat()),
                (old, new, a, b, [vec![a], proof.clone()].concat()),
                (old, new, a, b, [vec![b], proof.clone()].concat()),
                (old, new, a, b, [vec![proof[0]], proof.clone()].concat()),
                (old, new, a, b, proof[..proof.len() - 1].to_vec()),
            ];
            for i in 0..proof.len() {
                let mut flipped = proof.clone();
                flipped[i][0] ^= 16;
                bad.push((old, new, a, b, flipped));
            }
            for (o, n, x, y, p) in bad {
                if o == old && n == new && x == a && y == b && p == *proof {
                    continue;
                }
                assert!(
                    verify_consistency(o, n, &x, &y, &p).is_err(),
                    "consistency {old}→{new} taken with {o}→{n}, {} hashes",
                    p.len()
                );
            }
        }
    }

    #[test]
    fn every_proof_of_every_tree_up_to_70_leaves_is_the_recursive_one_and_verifies() {
        let all = leaves(70);
        let mut frontier = Frontier::default();
        for n in 0..=70usize {
            let tree = Tree::new(all[..n].to_vec());
            let root = mth(&all[..n]);
            assert_eq!(tree.root(), root, "head of {n}");
            assert_eq!(frontier.root(), root, "frontier head of {n}");
            assert_eq!(frontier.size(), n as u64);
            if let Some(next) = all.get(n) {
                frontier.push(*next);
            }
            for m in 0..n {
                let proof = tree.inclusion_proof(m as u64).unwrap();
                assert_eq!(proof, path(m, &all[..n]), "path {m} of {n}");
                assert_eq!(
                    verify_inclusion(m as u64, n as u64, &all[m], &proof, &root),
                    Ok(())
                );
            }
            for m in 1..n {
                let proof = tree.consistency_proof(m as u64).unwrap();
                assert_eq!(proof, consistency(m, &all[..n], true), "proof {m}→{n}");
                let old = mth(&all[..m]);
                assert_eq!(
                    verify_consistency(m as u64, n as u64, &old, &root, &proof),
                    Ok(()),
                    "{m}→{n}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// A proof of one leaf does not prove another leaf, another position or another
        /// tree, and a changed bit anywhere breaks it.
        #[test]
        fn a_proof_proves_its_leaf_at_its_place_and_nothing_else(
            n in 2u64..600, pick in any::<u64>(), other in any::<u64>(), bit in 0usize..256,
        ) {
            let all = leaves(n as usize);
            let tree = Tree::new(all.clone());
            let root = tree.root();
            let m = pick % n;
            let proof = tree.inclusion_proof(m).unwrap();
            prop_assert_eq!(verify_inclusion(m, n, &all[m as usize], &proof, &root), Ok(()));
            let o = other % n;
            if o != m {
                prop_assert!(verify_inclusion(o, n, &all[m as usize], &proof, &root).is_err());
                prop_assert!(verify_inclusion(m, n, &all[o as usize], &proof, &root).is_err());
            }
            let mut flipped = proof.clone();
            if !flipped.is_empty() {
                let at = bit % (flipped.len() * 32);
                flipped[at / 32][at % 32] ^= 1 << (bit % 8);
                prop_assert!(verify_inclusion(m, n, &all[m as usize], &flipped, &root).is_err());
            }
            // A prefix's head is consistent with the whole, and a different prefix's not.
            let old = (other % (n - 1)) + 1;
            let proof = tree.consistency_proof(old).unwrap();
            let old_root = Tree::new(all[..old as usize].to_vec()).root();
            prop_assert_eq!(verify_consistency(old, n, &old_root, &root, &proof), Ok(()));
            let mut forked = all[..old as usize].to_vec();
            forked[(pick % old) as usize][0] ^= 1;
            let forked_root = Tree::new(forked).root();
            prop_assert!(verify_consistency(old, n, &forked_root, &root, &proof).is_err());
        }
    }
}
