//! Evidence bundles for auditors: every log entry of a time range, each with
//! its inclusion proof against one signed checkpoint, fenced by the entries
//! just before and just after the range (also proven), so that an auditor on
//! a machine with no server can check offline that the range is complete
//! (contiguous indexes, nothing before `from` or after `to` left out at the
//! edges) and untouched (every entry hashes to its proven leaf).
//!
//! Security: whoever hands an auditor a bundle controls every byte of it;
//! [`verify`] is what `breakglass audit verify --bundle` relies on. No IO.

use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::note::NoteVerifier;
use serde::{Deserialize, Serialize};

use crate::entry::Entry;
use crate::report::{ProvenEntry, check_proof};
use crate::time::Timestamp;

pub const BUNDLE_FORMAT: &str = "breakglass-evidence-bundle/v1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: String,
    pub origin: String,
    /// The log's verifier key (`name+id+key`).
    pub log_key: String,
    /// The signed checkpoint every proof is against.
    pub checkpoint: String,
    /// The range asked for, RFC 3339.
    pub from: String,
    pub to: String,
    /// The entries' indexes: `start..end`.
    pub start: u64,
    pub end: u64,
    pub entries: Vec<ProvenEntry>,
    /// The entry at `start - 1` (before `from`), unless `start` is 0.
    pub before: Option<ProvenEntry>,
    /// The entry at `end` (after `to`), unless the checkpoint ends there.
    pub after: Option<ProvenEntry>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("not a breakglass evidence bundle: {0}")]
    Malformed(String),
    #[error("the bundle's checkpoint does not verify: {0}")]
    Checkpoint(String),
    #[error("{0}")]
    Entry(String),
    #[error("the bundle is not complete: {0}")]
    Incomplete(String),
}

/// What a verified bundle covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub start: u64,
    pub end: u64,
    pub checkpoint: Checkpoint,
}

fn decode(p: &ProvenEntry) -> Result<Entry, BundleError> {
    Entry::decode(p.entry.as_bytes()).map_err(|e| BundleError::Entry(format!("entry {}: {e}", p.index)))
}

/// Checks a bundle: the checkpoint's signature (with `pinned`, or else the
/// key the bundle carries), every proof, contiguity, the fences, the times.
pub fn verify(b: &Bundle, pinned: Option<&NoteVerifier>) -> Result<Verified, BundleError> {
    if b.format != BUNDLE_FORMAT {
        return Err(BundleError::Malformed(format!("format {:?}, expected {BUNDLE_FORMAT}", b.format)));
    }
    let (from, to) = (
        Timestamp::parse(&b.from).map_err(|e| BundleError::Malformed(e.to_string()))?,
        Timestamp::parse(&b.to).map_err(|e| BundleError::Malformed(e.to_string()))?,
    );
    let carried;
    let key = match pinned {
        Some(k) => k,
        None => {
            carried = NoteVerifier::parse(&b.log_key).map_err(|e| BundleError::Malformed(format!("log_key: {e}")))?;
            &carried
        }
    };
    let cp = Checkpoint::open(&b.checkpoint, &b.origin, std::slice::from_ref(key))
        .map_err(|e| BundleError::Checkpoint(e.to_string()))?;
    let proven = |p: &ProvenEntry| check_proof(p, &cp).map_err(|e| BundleError::Entry(e.to_string()));
    if b.end > cp.size || b.start > b.end {
        return Err(BundleError::Incomplete(format!(
            "range {}..{} is not within the checkpoint's {}",
            b.start, b.end, cp.size
        )));
    }
    let indexes: Vec<u64> = b.entries.iter().map(|e| e.index).collect();
    if indexes != (b.start..b.end).collect::<Vec<_>>() {
        return Err(BundleError::Incomplete(format!("the entries are not exactly indexes {}..{}", b.start, b.end)));
    }
    for p in &b.entries {
        proven(p)?;
        let e = decode(p)?;
        if e.time < from || e.time > to {
            return Err(BundleError::Entry(format!(
                "entry {} at {} is outside the range",
                p.index,
                e.time.to_rfc3339()
            )));
        }
    }
    match (&b.before, b.start) {
        (None, 0) => {}
        (Some(p), s) if s > 0 && p.index == s - 1 => {
            proven(p)?;
            if decode(p)?.time >= from {
                return Err(BundleError::Incomplete(format!(
                    "entry {} before the range is not before {}",
                    p.index, b.from
                )));
            }
        }
        _ => return Err(BundleError::Incomplete("the entry just before the range is missing".into())),
    }
    match (&b.after, b.end == cp.size) {
        (None, true) => {}
        (Some(p), false) if p.index == b.end => {
            proven(p)?;
            if decode(p)?.time <= to {
                return Err(BundleError::Incomplete(format!(
                    "entry {} after the range is not after {}",
                    p.index, b.to
                )));
            }
        }
        _ => return Err(BundleError::Incomplete("the entry just after the range is missing".into())),
    }
    Ok(Verified { start: b.start, end: b.end, checkpoint: cp })
}
