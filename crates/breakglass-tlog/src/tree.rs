//! The Merkle tree with stored interior hashes, in the manner of Go's sumdb
//! `tlog` package: every complete subtree's hash is stored once, at a dense
//! linear "storage index", so appending a leaf writes `1 + trailing_ones(n)`
//! hashes (about two per leaf on average) and the root, inclusion proofs and
//! consistency proofs of any tree size are computed from O(log n) stored
//! hashes, never by recomputing the tree.
//!
//! A hash at `(level, n)` is the Merkle Tree Hash of leaves
//! `[n << level, (n + 1) << level)`. Record `r` stores, contiguously, the
//! hashes `(0, r)`, `(1, r >> 1)`, … for each subtree its leaf completes; so
//! the storage indexes of record `r` are `stored_hash_index(0, r) ..
//! stored_hash_index(0, r + 1)`.
//!
//! Security: the proofs made here are what auditors check against a log
//! they do not trust; they
//! are cross-checked against a naive RFC 9162 implementation in the tests.

use crate::hash::{Hash, empty_root, node_hash};

/// Maps tree coordinates `(level, n)` to the dense storage index.
pub fn stored_hash_index(level: u32, n: u64) -> u64 {
    // Level L's n'th hash is written right after level L+1's 2n+1'th hash.
    // Walk down to level 0, then add back the level.
    let mut n = n;
    for _ in 0..level {
        n = 2 * n + 1;
    }
    // Level 0's n'th hash is written at n + n/2 + n/4 + ...
    let mut i = 0u64;
    let mut m = n;
    while m > 0 {
        i += m;
        m >>= 1;
    }
    i + u64::from(level)
}

/// The inverse of [`stored_hash_index`]: returns `(level, n)`.
pub fn split_stored_hash_index(index: u64) -> (u32, u64) {
    // stored_hash_index(0, n) < 2n, so the record is in [index/2, index/2 + log2(index)].
    let mut n = index / 2;
    let mut index_n = stored_hash_index(0, n);
    debug_assert!(index_n <= index);
    loop {
        // Each record n adds 1 + trailing_zeros(n + 1) hashes.
        let next = index_n + 1 + u64::from((n + 1).trailing_zeros());
        if next > index {
            break;
        }
        n += 1;
        index_n = next;
    }
    let level = (index - index_n) as u32;
    (level, n >> level)
}

/// How many hashes are stored for a tree of `n` records.
pub fn stored_hash_count(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    stored_hash_index(0, n)
}

/// The record whose append stored the hash at `(level, n)`: the last leaf of
/// that subtree.
pub fn record_of(level: u32, n: u64) -> u64 {
    ((n + 1) << level) - 1
}

/// Reads stored hashes by storage index. Implemented by storage and by the
/// in-memory test tree. Must return exactly one hash per index, in order.
pub trait HashReader {
    type Error;
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error>;
}

/// Errors in using the tree API (as opposed to errors reading hashes).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("cannot prove consistency from size {old} to size {new}")]
    BadSizes { old: u64, new: u64 },
    #[error("hash storage returned {got} hashes for {want} indexes")]
    ShortRead { got: usize, want: usize },
}

/// Either a tree misuse or a storage read failure.
#[derive(Debug, thiserror::Error)]
pub enum ProveError<E> {
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("reading stored hashes: {0}")]
    Read(E),
}

/// The right edge of the tree: the hashes of its maximal complete subtrees
/// ("peaks"), left to right. This is all a sequencer needs in memory to append.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// `(level, hash)` of each peak, levels strictly decreasing.
    peaks: Vec<(u32, Hash)>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The storage indexes of the peaks of a tree of `size` leaves, in order.
    pub fn peak_indexes(size: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut lo = 0u64;
        while lo < size {
            let level = 63 - (size - lo).leading_zeros();
            out.push(stored_hash_index(level, lo >> level));
            lo += 1 << level;
        }
        out
    }

    /// Rebuilds the frontier of a tree of `size` leaves from stored hashes.
    pub fn load<R: HashReader>(size: u64, reader: &R) -> Result<Frontier, ProveError<R::Error>> {
        let indexes = Frontier::peak_indexes(size);
        let hashes = read_exact(reader, &indexes)?;
        let peaks = indexes.iter().zip(hashes).map(|(&i, h)| (split_stored_hash_index(i).0, h)).collect();
        Ok(Frontier { size, peaks })
    }

    /// Appends a leaf hash and returns the hashes this record stores, in
    /// storage-index order: the leaf hash, then each subtree it completes.
    pub fn append(&mut self, leaf: Hash) -> Vec<Hash> {
        let mut stored = vec![leaf];
        let mut h = leaf;
        let mut level = 0u32;
        while let Some(&(l, left)) = self.peaks.last() {
            if l != level {
                break;
            }
            self.peaks.pop();
            h = node_hash(&left, &h);
            level += 1;
            stored.push(h);
        }
        self.peaks.push((level, h));
        self.size += 1;
        stored
    }

    /// The root hash of the tree (RFC 9162 MTH).
    pub fn root(&self) -> Hash {
        let mut iter = self.peaks.iter().rev();
        let Some(&(_, mut h)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            h = node_hash(left, &h);
        }
        h
    }
}

fn read_exact<R: HashReader>(reader: &R, indexes: &[u64]) -> Result<Vec<Hash>, ProveError<R::Error>> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = reader.read_hashes(indexes).map_err(ProveError::Read)?;
    if hashes.len() != indexes.len() {
        return Err(TreeError::ShortRead { got: hashes.len(), want: indexes.len() }.into());
    }
    Ok(hashes)
}

/// The largest power of two strictly less than `n` (n >= 2), and its log2.
fn split_point(n: u64) -> (u64, u32) {
    debug_assert!(n >= 2);
    let l = 63 - (n - 1).leading_zeros();
    (1 << l, l)
}

/// Storage indexes needed to compute the hash of leaves `[lo, hi)`.
fn subtree_indexes(mut lo: u64, hi: u64, need: &mut Vec<u64>) {
    while lo < hi {
        let level = 63 - (hi - lo).leading_zeros();
        let k = 1u64 << level;
        debug_assert_eq!(lo & (k - 1), 0, "subtree must be aligned");
        need.push(stored_hash_index(level, lo >> level));
        lo += k;
    }
}

/// Consumes the hashes read for `subtree_indexes(lo, hi)` and folds them.
fn subtree_hash(mut lo: u64, hi: u64, hashes: &mut std::slice::Iter<'_, Hash>) -> Hash {
    let mut parts = Vec::new();
    while lo < hi {
        let level = 63 - (hi - lo).leading_zeros();
        lo += 1 << level;
        parts.push(*hashes.next().expect("hash count checked by read_exact"));
    }
    let mut h = parts.pop().expect("non-empty subtree");
    while let Some(left) = parts.pop() {
        h = node_hash(&left, &h);
    }
    h
}

/// The root hash of the tree of `size` leaves.
pub fn tree_hash<R: HashReader>(size: u64, reader: &R) -> Result<Hash, ProveError<R::Error>> {
    if size == 0 {
        return Ok(empty_root());
    }
    let mut need = Vec::new();
    subtree_indexes(0, size, &mut need);
    let hashes = read_exact(reader, &need)?;
    Ok(subtree_hash(0, size, &mut hashes.iter()))
}

fn inclusion_indexes(lo: u64, hi: u64, n: u64, need: &mut Vec<u64>) {
    if lo + 1 == hi {
        return;
    }
    let (k, _) = split_point(hi - lo);
    if n < lo + k {
        inclusion_indexes(lo, lo + k, n, need);
        subtree_indexes(lo + k, hi, need);
    } else {
        subtree_indexes(lo, lo + k, need);
        inclusion_indexes(lo + k, hi, n, need);
    }
}

fn inclusion_path(lo: u64, hi: u64, n: u64, hashes: &mut std::slice::Iter<'_, Hash>, out: &mut Vec<Hash>) {
    if lo + 1 == hi {
        return;
    }
    let (k, _) = split_point(hi - lo);
    if n < lo + k {
        inclusion_path(lo, lo + k, n, hashes, out);
        out.push(subtree_hash(lo + k, hi, hashes));
    } else {
        let left = subtree_hash(lo, lo + k, hashes);
        inclusion_path(lo + k, hi, n, hashes, out);
        out.push(left);
    }
}

/// The RFC 9162 inclusion proof (audit path) for leaf `index` in the tree of
/// `size` leaves, from the leaf's sibling up to the root's child.
pub fn prove_inclusion<R: HashReader>(size: u64, index: u64, reader: &R) -> Result<Vec<Hash>, ProveError<R::Error>> {
    if index >= size {
        return Err(TreeError::IndexOutOfRange { index, size }.into());
    }
    let mut need = Vec::new();
    inclusion_indexes(0, size, index, &mut need);
    let hashes = read_exact(reader, &need)?;
    let mut out = Vec::new();
    inclusion_path(0, size, index, &mut hashes.iter(), &mut out);
    Ok(out)
}

fn consistency_indexes(lo: u64, hi: u64, m: u64, need: &mut Vec<u64>) {
    if m == hi {
        if lo != 0 {
            subtree_indexes(lo, hi, need);
        }
        return;
    }
    let (k, _) = split_point(hi - lo);
    if m <= lo + k {
        consistency_indexes(lo, lo + k, m, need);
        subtree_indexes(lo + k, hi, need);
    } else {
        subtree_indexes(lo, lo + k, need);
        consistency_indexes(lo + k, hi, m, need);
    }
}

fn consistency_path(lo: u64, hi: u64, m: u64, hashes: &mut std::slice::Iter<'_, Hash>, out: &mut Vec<Hash>) {
    if m == hi {
        if lo != 0 {
            out.push(subtree_hash(lo, hi, hashes));
        }
        return;
    }
    let (k, _) = split_point(hi - lo);
    if m <= lo + k {
        consistency_path(lo, lo + k, m, hashes, out);
        out.push(subtree_hash(lo + k, hi, hashes));
    } else {
        let left = subtree_hash(lo, lo + k, hashes);
        consistency_path(lo + k, hi, m, hashes, out);
        out.push(left);
    }
}

/// The RFC 9162 consistency proof between tree sizes `old` and `new`
/// (`0 < old <= new`).
pub fn prove_consistency<R: HashReader>(new: u64, old: u64, reader: &R) -> Result<Vec<Hash>, ProveError<R::Error>> {
    if old == 0 || old > new {
        return Err(TreeError::BadSizes { old, new }.into());
    }
    if old == new {
        return Ok(Vec::new());
    }
    let mut need = Vec::new();
    consistency_indexes(0, new, old, &mut need);
    let hashes = read_exact(reader, &need)?;
    let mut out = Vec::new();
    consistency_path(0, new, old, &mut hashes.iter(), &mut out);
    Ok(out)
}

/// An in-memory tree that stores hashes exactly as storage does. Used by
/// tests, benchmarks and the offline verifier that rebuilds a log.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    frontier: Frontier,
    hashes: Vec<Hash>,
}

impl MemoryTree {
    pub fn append(&mut self, leaf: Hash) {
        let stored = self.frontier.append(leaf);
        self.hashes.extend(stored);
    }
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }
    /// All stored hashes, indexed by storage index.
    pub fn stored(&self) -> &[Hash] {
        &self.hashes
    }
}

impl HashReader for MemoryTree {
    type Error = TreeError;
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        indexes
            .iter()
            .map(|&i| {
                self.hashes
                    .get(i as usize)
                    .copied()
                    .ok_or(TreeError::IndexOutOfRange { index: i, size: self.hashes.len() as u64 })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::proof::{verify_consistency, verify_inclusion};

    /// Naive RFC 9162 §2.1.1 MTH, for cross-checking.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let (k, _) = split_point(n as u64);
                node_hash(&mth(&leaves[..k as usize]), &mth(&leaves[k as usize..]))
            }
        }
    }

    /// Naive RFC 9162 §2.1.3.1 PATH.
    fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = split_point(n as u64).0 as usize;
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

    /// Naive RFC 9162 §2.1.4.1 SUBPROOF.
    fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { vec![] } else { vec![mth(leaves)] };
        }
        let k = split_point(n as u64).0 as usize;
        if m <= k {
            let mut p = subproof(m, &leaves[..k], b);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = subproof(m - k, &leaves[k..], false);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    #[test]
    fn stored_hash_index_round_trips() {
        for level in 0..10 {
            for n in 0..300 {
                let i = stored_hash_index(level, n);
                assert_eq!(split_stored_hash_index(i), (level, n), "level {level} n {n}");
            }
        }
        // Storage indexes are dense: every index below the count is used once.
        let mut seen = vec![false; stored_hash_count(1000) as usize];
        let mut tree = MemoryTree::default();
        for r in 0..1000u64 {
            tree.append(leaf_hash(&r.to_be_bytes()));
        }
        for i in 0..seen.len() as u64 {
            let (l, n) = split_stored_hash_index(i);
            assert!(record_of(l, n) < 1000);
            seen[i as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(tree.stored().len() as u64, stored_hash_count(1000));
    }

    #[test]
    fn roots_and_proofs_match_the_naive_definition() {
        let leaves: Vec<Hash> = (0..130u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut tree = MemoryTree::default();
        assert_eq!(tree_hash(0, &tree).unwrap(), empty_root());
        for (n, leaf) in leaves.iter().enumerate() {
            tree.append(*leaf);
            let size = n + 1;
            let root = mth(&leaves[..size]);
            assert_eq!(tree.root(), root, "frontier root at {size}");
            assert_eq!(Frontier::load(size as u64, &tree).unwrap(), *tree.frontier());
            for s in 1..=size {
                assert_eq!(tree_hash(s as u64, &tree).unwrap(), mth(&leaves[..s]));
            }
        }
        let size = leaves.len();
        let root = mth(&leaves);
        for s in 1..=size {
            let root_s = mth(&leaves[..s]);
            for i in 0..s {
                let p = prove_inclusion(s as u64, i as u64, &tree).unwrap();
                assert_eq!(p, path(i, &leaves[..s]), "inclusion {i} in {s}");
                verify_inclusion(i as u64, s as u64, &leaves[i].0, &p, &root_s.0).unwrap();
            }
            let c = prove_consistency(size as u64, s as u64, &tree).unwrap();
            let want = if s == size { vec![] } else { subproof(s, &leaves, true) };
            assert_eq!(c, want, "consistency {s} -> {size}");
            verify_consistency(s as u64, size as u64, &root_s.0, &root.0, &c).unwrap();
        }
    }

    #[test]
    fn misuse_is_an_error_not_a_panic() {
        let mut tree = MemoryTree::default();
        tree.append(leaf_hash(b"x"));
        assert!(matches!(
            prove_inclusion(1, 1, &tree),
            Err(ProveError::Tree(TreeError::IndexOutOfRange { index: 1, size: 1 }))
        ));
        assert!(matches!(prove_consistency(1, 0, &tree), Err(ProveError::Tree(TreeError::BadSizes { .. }))));
        assert!(matches!(prove_consistency(1, 2, &tree), Err(ProveError::Tree(TreeError::BadSizes { .. }))));
        // A reader that is missing hashes is reported, not trusted.
        assert!(matches!(prove_inclusion(5, 1, &tree), Err(ProveError::Read(_))));
    }
}
