//! Whole-log verification: recompute the tree from the stored entries and
//! check everything else against it.
//!
//! This is a pretty important and security sensitive part of the code: it is
//! what `breakglass audit verify` runs, and what must notice a changed byte,
//! a changed stored hash, a deleted or reordered entry, a checkpoint signed by
//! another key, a head that moved backwards, or a sink that disagrees with the
//! database. It trusts nothing it reads: every entry is decoded strictly, every
//! stored hash is recomputed, and every checkpoint's signature is checked.
//! On failure it names the first bad index.

use std::io::BufRead as _;
use std::path::Path;

use breakglass_core::checkpoint::Checkpoint;
use breakglass_core::entry::Entry;
use breakglass_core::hash::leaf_hash;
use breakglass_core::tree::Frontier;
use serde::Serialize;

use crate::StoreError;
use crate::reader::LogReader;

/// What a successful verification checked.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct VerifyReport {
    pub origin: String,
    pub size: u64,
    pub root: String,
    /// Signed checkpoints checked (signature, and root against the entries).
    pub checkpoints: u64,
    /// The size of the saved checkpoint the log was shown to extend, if one was given.
    pub since: Option<u64>,
    /// Lines of the sink file compared byte for byte with the entries.
    pub sink_lines: Option<u64>,
}

/// Why verification failed: the first bad index (when there is one) and what is wrong.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", index.map(|i| format!("entry {i}: ")).unwrap_or_default())]
pub struct VerifyFailure {
    pub index: Option<u64>,
    pub problem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("verification failed: {0}")]
    Failed(VerifyFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the sink {path}: {source}")]
    Sink { path: String, source: std::io::Error },
}

fn fail(index: impl Into<Option<u64>>, problem: impl Into<String>) -> VerifyError {
    VerifyError::Failed(VerifyFailure { index: index.into(), problem: problem.into() })
}

#[derive(Clone, Debug, Default)]
pub struct VerifyOptions<'a> {
    /// A checkpoint saved earlier (already signature-checked by the caller):
    /// the log must still contain it as a prefix.
    pub since: Option<&'a Checkpoint>,
    /// The JSON-lines sink to compare with the entries.
    pub sink: Option<&'a Path>,
}

const PAGE: u64 = 4096;

/// Verifies the whole log behind `reader`.
pub async fn verify_log(reader: &LogReader, opts: VerifyOptions<'_>) -> Result<VerifyReport, VerifyError> {
    let store = reader.store();
    let trusted = std::slice::from_ref(reader.verifier());
    let head_row = store.head_size().await?;
    let mut sink = match opts.sink {
        Some(p) if p.exists() => {
            let f =
                std::fs::File::open(p).map_err(|e| VerifyError::Sink { path: p.display().to_string(), source: e })?;
            Some((p, std::io::BufReader::new(f), 0u64))
        }
        _ => None,
    };
    let mut frontier = Frontier::default();
    let mut checkpoints = store.checkpoints(0, PAGE as u32).await?.into_iter().peekable();
    let mut n_checkpoints = 0u64;
    let mut last_cp_size = 0u64;
    let mut line = Vec::new();
    loop {
        let start = frontier.size();
        let page = store.entries(start, start + PAGE).await?;
        if page.is_empty() {
            break;
        }
        for record in page {
            let index = frontier.size();
            if record.index != index {
                return Err(fail(index, format!("entry is missing (the next stored entry is {})", record.index)));
            }
            let entry = Entry::decode(&record.data)
                .map_err(|e| fail(index, format!("stored bytes are not a valid entry: {e}")))?;
            if entry.index != index {
                return Err(fail(
                    index,
                    format!(
                        "stored at index {index} but says it is entry {}: entries were moved or reordered",
                        entry.index
                    ),
                ));
            }
            let leaf = leaf_hash(&record.data);
            let hashes = frontier.append(leaf);
            if hashes != record.hashes {
                let what = if record.hashes.first() != Some(&leaf) {
                    "its stored leaf hash does not match its bytes".to_owned()
                } else {
                    let level = hashes.iter().zip(&record.hashes).position(|(a, b)| a != b).unwrap_or(hashes.len());
                    format!("its stored hash at level {level} does not match the recomputed tree")
                };
                return Err(fail(index, what));
            }
            if let Some((path, file, lines)) = sink.as_mut() {
                line.clear();
                let n = file
                    .read_until(b'\n', &mut line)
                    .map_err(|e| VerifyError::Sink { path: path.display().to_string(), source: e })?;
                if n > 0 {
                    if line.strip_suffix(b"\n") != Some(record.data.as_slice()) {
                        return Err(fail(index, format!("the sink {} holds a different entry", path.display())));
                    }
                    *lines += 1;
                }
            }
            // Check every checkpoint of this size against the recomputed root.
            while let Some(cp) = checkpoints.peek() {
                if cp.size > frontier.size() {
                    break;
                }
                let cp = checkpoints.next().expect("peeked");
                check_checkpoint(reader.origin(), trusted, &cp, &frontier)?;
                n_checkpoints += 1;
                last_cp_size = cp.size;
                if checkpoints.peek().is_none() {
                    checkpoints = store.checkpoints(cp.size, PAGE as u32).await?.into_iter().peekable();
                }
            }
            if let Some(since) = opts.since
                && since.size == frontier.size()
                && since.root != frontier.root()
            {
                return Err(fail(
                    None,
                    format!(
                        "the saved checkpoint of size {} is not a prefix of this log: it was rewritten",
                        since.size
                    ),
                ));
            }
        }
    }
    let size = frontier.size();
    if let Some(cp) = checkpoints.next() {
        return Err(fail(
            size,
            format!("checkpoint {} covers entries that are missing: the log ends at {size}", cp.size),
        ));
    }
    if head_row != size {
        return Err(fail(size.min(head_row), format!("the head says {head_row} entries but {size} are stored")));
    }
    if last_cp_size != size {
        return Err(fail(
            last_cp_size,
            format!("entries {last_cp_size}..{size} are not covered by any signed checkpoint"),
        ));
    }
    if let Some(since) = opts.since {
        if since.size > size {
            return Err(fail(
                size,
                format!(
                    "the log has {size} entries but the saved checkpoint has {}: entries were removed or the log replaced",
                    since.size
                ),
            ));
        }
        if since.size == 0 && since.root != breakglass_core::hash::empty_root() {
            return Err(fail(None, "the saved checkpoint of size 0 has a non-empty root"));
        }
    }
    let mut sink_lines = None;
    if let Some((path, mut file, lines)) = sink {
        line.clear();
        let extra = file
            .read_until(b'\n', &mut line)
            .map_err(|e| VerifyError::Sink { path: path.display().to_string(), source: e })?;
        if extra > 0 {
            return Err(fail(
                size,
                format!("the sink {} has entries the database does not: entries were deleted", path.display()),
            ));
        }
        sink_lines = Some(lines);
    }
    Ok(VerifyReport {
        origin: reader.origin().to_owned(),
        size,
        root: frontier.root().to_base64(),
        checkpoints: n_checkpoints,
        since: opts.since.map(|c| c.size),
        sink_lines,
    })
}

fn check_checkpoint(
    origin: &str,
    trusted: &[breakglass_core::note::NoteVerifier],
    cp: &crate::StoredCheckpoint,
    frontier: &Frontier,
) -> Result<(), VerifyError> {
    let at = cp.size.saturating_sub(1);
    let signed = Checkpoint::open(&cp.note, origin, trusted)
        .map_err(|e| fail(at, format!("checkpoint {} does not verify: {e}", cp.size)))?;
    if signed.size != cp.size || signed.root != cp.root {
        return Err(fail(
            at,
            format!("checkpoint {}: the signed size or root differs from the stored columns", cp.size),
        ));
    }
    if cp.size != frontier.size() {
        return Err(fail(at, format!("checkpoint {} does not fall on an entry boundary", cp.size)));
    }
    if signed.root != frontier.root() {
        return Err(fail(at, format!("checkpoint {} signs a root that the entries do not produce", cp.size)));
    }
    Ok(())
}
