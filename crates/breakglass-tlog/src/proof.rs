//! Verification of RFC 9162 inclusion and consistency proofs (§2.1.3.2 and
//! §2.1.4.2), written from the RFC and checked against every public
//! transparency-dev test vector.
//!
//! Security: a log operator (or whoever stands in for one) supplies the
//! proofs and roots; these functions decide whether an auditor believes a
//! log. Roots and leaf hashes are taken as byte slices so that a value of the
//! wrong length is simply a mismatch, never a panic.

use crate::hash::{Hash, node_hash};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("leaf index {index} is not less than tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("proof has the wrong number of hashes for this index and size")]
    WrongLength,
    #[error("computed root does not match the expected root")]
    RootMismatch,
    #[error("first tree size {old} is greater than second tree size {new}")]
    SizesReversed { old: u64, new: u64 },
    #[error("a consistency proof from the empty tree proves nothing")]
    FromEmptyTree,
    #[error("equal tree sizes need an empty proof and equal roots")]
    EqualSizes,
    #[error("computed old root does not match the old root")]
    OldRootMismatch,
    #[error("computed new root does not match the new root")]
    NewRootMismatch,
}

/// Recomputes the root from a leaf hash and its audit path.
pub fn root_from_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash]) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut f = index;
    let mut s = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

/// RFC 9162 §2.1.3.2: verifies that `leaf` is at `index` in the tree of
/// `size` leaves whose root is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &[u8], proof: &[Hash], root: &[u8]) -> Result<(), ProofError> {
    let Some(leaf) = Hash::from_slice(leaf) else {
        return Err(ProofError::RootMismatch);
    };
    let computed = root_from_inclusion(index, size, &leaf, proof)?;
    if computed.0.as_slice() != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: verifies that the tree of size `old` with root
/// `old_root` is a prefix of the tree of size `new` with root `new_root`.
///
/// Policy (shared with the transparency-dev vectors): a proof from size 0 is
/// rejected, since it proves nothing.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &[u8],
    new_root: &[u8],
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::SizesReversed { old, new });
    }
    if old == 0 {
        return Err(ProofError::FromEmptyTree);
    }
    if old == new {
        if !proof.is_empty() || old_root != new_root {
            return Err(ProofError::EqualSizes);
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path = proof;
    let mut f = old - 1;
    let mut s = new - 1;
    // If the old tree is a complete subtree (old is a power of two), its root
    // is the first node of the path and is not sent.
    let seed = if old.is_power_of_two() {
        let Some(h) = Hash::from_slice(old_root) else {
            return Err(ProofError::OldRootMismatch);
        };
        h
    } else {
        let first = path[0];
        path = &path[1..];
        first
    };
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = seed;
    let mut sr = seed;
    for c in path {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr.0.as_slice() != old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr.0.as_slice() != new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}
