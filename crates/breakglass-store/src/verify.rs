//! Whole-log verification: recompute the tree from the stored entries and
//! check everything else against it.
//!
//! Security: whoever can write the database or the JSON-lines copy may have
//! edited any byte of either; this is what `breakglass audit verify` runs, and what must notice a changed byte,
//! a changed stored hash, a deleted or reordered entry, a checkpoint signed by
//! another key, a head that moved backwards, or a sink that disagrees with the
//! database. It trusts nothing it reads: every entry is decoded strictly, every
//! stored hash is recomputed, and every checkpoint's signature is checked.
//! On failure it names the first bad index.
//!
//! Security: the JSON-lines sink is the off-database copy, so a sink with
//! fewer lines than the log is itself evidence: every entry is acknowledged
//! only after it was fsynced there, so only the batches still in flight at a
//! crash may be missing ([`SinkFloor`]). A shorter copy means it was
//! truncated, emptied or replaced, and verification says by how much.
//!
//! [`verify_log_planned`] can also start from a checkpoint verified earlier
//! ([`VerifyPlan::start`]): the tree up to it is rebuilt from its stored
//! peaks and checked against its signed root, and only the entries after it
//! are recomputed. That is what a server runs at start.

use std::io::BufRead as _;
use std::path::Path;

use breakglass_entry::entry::Entry;
use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::hash::leaf_hash;
use breakglass_tlog::tree::Frontier;
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
    /// Lines of the sink file compared byte for byte with the entries
    /// (with [`VerifyPlan::start`], the lines before it are counted, not compared).
    pub sink_lines: Option<u64>,
    /// The fewest lines the sink may hold ([`SinkFloor`]); `None` without a sink.
    pub sink_floor: Option<u64>,
    /// Where verification started: 0, or the size of [`VerifyPlan::start`].
    pub from: u64,
}

/// Why verification failed: the first bad index (when there is one) and what is wrong.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", index.map(|i| format!("entry {i}: ")).unwrap_or_default())]
pub struct VerifyFailure {
    pub index: Option<u64>,
    pub problem: String,
    /// When the failure is a sink shorter than its floor: how many entries it lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink_lacks: Option<u64>,
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
    VerifyError::Failed(VerifyFailure { index: index.into(), problem: problem.into(), sink_lacks: None })
}

#[derive(Clone, Debug, Default)]
pub struct VerifyOptions<'a> {
    /// A checkpoint saved earlier (already signature-checked by the caller):
    /// the log must still contain it as a prefix.
    pub since: Option<&'a Checkpoint>,
    /// The JSON-lines sink to compare with the entries.
    pub sink: Option<&'a Path>,
}

/// How few lines the sink may hold. An entry is acknowledged only after
/// the sink is fsynced, so a sink may lack only entries nobody was told were
/// durable: those of the batches in flight when a process stopped.
#[derive(Clone, Copy, Debug, Default)]
pub struct SinkFloor {
    /// The sink held at least this many entries when it was last known good
    /// (the size of the checkpoint a server saved after catching it up).
    pub at_least: u64,
    /// Set when every writer of this log writes this one sink (SQLite: one
    /// data directory, one file): then only the last `window` batches (one
    /// signed checkpoint each) may be missing. On PostgreSQL each server has
    /// its own sink, which lags the others' appends until it next writes,
    /// so only `at_least` holds there.
    pub window: Option<usize>,
    /// Fail when the sink holds fewer lines than the floor (and a missing
    /// sink file counts as empty). Without it the shortfall is only reported.
    pub enforce: bool,
}

/// What else a verification checks, beyond [`VerifyOptions`].
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyPlan<'a> {
    /// A checkpoint verified earlier (signature already checked): verify
    /// only the entries after it.
    pub start: Option<&'a Checkpoint>,
    pub sink_floor: SinkFloor,
}

const PAGE: u64 = 4096;

/// What the parallel stage finds out about one entry.
struct CheckedEntry {
    leaf: breakglass_tlog::Hash,
    /// The index the entry says it has, or why its bytes are not an entry.
    claimed: Result<u64, String>,
}

/// Decodes and hashes a page of entries, and checks the signatures of the
/// page's checkpoints, on all cores: this is most of verification's work.
fn check_page(
    page: &[crate::EntryRecord],
    cps: &[crate::StoredCheckpoint],
    origin: &str,
    trusted: &[breakglass_tlog::note::NoteVerifier],
) -> (Vec<CheckedEntry>, Vec<Result<Checkpoint, String>>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let check_entry = |r: &crate::EntryRecord| CheckedEntry {
        leaf: leaf_hash(&r.data),
        claimed: Entry::decode(&r.data).map(|e| e.index).map_err(|e| e.to_string()),
    };
    let check_cp =
        |cp: &crate::StoredCheckpoint| Checkpoint::open(&cp.note, origin, trusted).map_err(|e| e.to_string());
    if threads == 1 || page.len() < 64 {
        return (page.iter().map(check_entry).collect(), cps.iter().map(check_cp).collect());
    }
    let entry_chunk = page.len().div_ceil(threads);
    let cp_chunk = cps.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let entry_parts: Vec<_> = page
            .chunks(entry_chunk)
            .map(|c| scope.spawn(move || c.iter().map(check_entry).collect::<Vec<_>>()))
            .collect();
        let cp_parts: Vec<_> =
            cps.chunks(cp_chunk).map(|c| scope.spawn(move || c.iter().map(check_cp).collect::<Vec<_>>())).collect();
        let entries = entry_parts.into_iter().flat_map(|h| h.join().expect("verify thread panicked")).collect();
        let cps = cp_parts.into_iter().flat_map(|h| h.join().expect("verify thread panicked")).collect();
        (entries, cps)
    })
}

/// Verifies the whole log behind `reader`.
pub async fn verify_log(reader: &LogReader, opts: VerifyOptions<'_>) -> Result<VerifyReport, VerifyError> {
    verify_log_planned(reader, opts, VerifyPlan::default()).await
}

/// Finds, reading backwards from the end of `file`, the line of entry
/// `start` (by the index each line names): returns `start` and that line's
/// offset. `None` when a line does not decode or the file holds no such
/// line; the caller then counts lines from the front.
fn tail_from(file: &mut std::fs::File, start: u64) -> Option<(u64, u64)> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let len = file.metadata().ok()?.len();
    let mut pos = len;
    // The bytes from `pos` to the end of the file, minus what was consumed.
    let mut buf: Vec<u8> = Vec::new();
    let mut end = len;
    loop {
        let chunk = (64 * 1024).min(pos);
        if chunk == 0 {
            return None;
        }
        pos -= chunk;
        let mut more = vec![0u8; chunk as usize];
        file.seek(SeekFrom::Start(pos)).ok()?;
        file.read_exact(&mut more).ok()?;
        more.extend_from_slice(&buf);
        buf = more;
        // Complete lines wholly inside `buf`, last first: each lies between
        // two newlines (or the file's start).
        let upto = (end - pos) as usize;
        let body = &buf[..upto];
        // The last line may be unterminated (an interrupted write): skip it.
        let mut stop = match body.iter().rposition(|b| *b == b'\n') {
            Some(p) => p,
            None => continue,
        };
        loop {
            let line_start = match body[..stop].iter().rposition(|b| *b == b'\n') {
                Some(p) => p + 1,
                None if pos == 0 => 0,
                None => break,
            };
            let index = Entry::decode(&body[line_start..stop]).ok()?.index;
            if index == start {
                return Some((start, pos + line_start as u64));
            }
            // The file ends with the entry before the start: nothing to compare.
            if index + 1 == start {
                return Some((start, pos + stop as u64 + 1));
            }
            if index < start || line_start == 0 {
                return None;
            }
            stop = line_start - 1;
        }
        // Keep only the unscanned front; the scanned lines are done with.
        end = pos + stop as u64 + 1;
        buf.truncate(stop + 1);
    }
}

/// Counts up to `n` lines from the start of `file` in large chunks; returns
/// how many it found and the offset just past the last of them.
fn skip_lines(file: &mut std::fs::File, n: u64) -> std::io::Result<(u64, u64)> {
    use std::io::Read as _;
    let mut buf = vec![0u8; 1 << 20];
    let (mut lines, mut offset) = (0u64, 0u64);
    while lines < n {
        let got = file.read(&mut buf)?;
        if got == 0 {
            break;
        }
        for (i, b) in buf[..got].iter().enumerate() {
            if *b == b'\n' {
                lines += 1;
                if lines == n {
                    return Ok((lines, offset + i as u64 + 1));
                }
            }
        }
        offset += got as u64;
    }
    // Fewer than `n` lines: the comparison starts at the end (nothing is left to compare).
    Ok((lines, offset))
}

fn sink_err(path: &Path, e: std::io::Error) -> VerifyError {
    VerifyError::Sink { path: path.display().to_string(), source: e }
}

/// Verifies the log behind `reader` from `plan.start` (or from the first
/// entry), and holds the sink to `plan.sink_floor`.
pub async fn verify_log_planned(
    reader: &LogReader,
    opts: VerifyOptions<'_>,
    plan: VerifyPlan<'_>,
) -> Result<VerifyReport, VerifyError> {
    let store = reader.store().clone();
    let trusted = vec![reader.verifier().clone()];
    let origin = reader.origin().to_owned();
    // Verify the log as of one snapshot of its head: entries and checkpoints
    // at or below it never change, so appends that land while verification
    // runs (a live server) cannot make a sound log look broken.
    let head_row = store.head_state().await?.size;
    let mut line = Vec::new();
    let start_size = plan.start.map_or(0, |c| c.size);
    // A sink that does not exist is an empty one when its length matters.
    let mut sink_missing = None;
    let mut sink = match opts.sink {
        Some(p) if p.exists() => {
            let mut f = std::fs::File::open(p).map_err(|e| sink_err(p, e))?;
            // Lines before the start were compared when it was verified: find
            // the first line to compare from the end of the file (each line
            // names its index), reading from the front only if that fails.
            let found = if start_size == 0 { Some((0, 0)) } else { tail_from(&mut f, start_size) };
            let (lines, offset) = match found {
                Some(found) => found,
                None => {
                    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)).map_err(|e| sink_err(p, e))?;
                    skip_lines(&mut f, start_size).map_err(|e| sink_err(p, e))?
                }
            };
            std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset)).map_err(|e| sink_err(p, e))?;
            Some((p, std::io::BufReader::new(f), lines))
        }
        Some(p) if plan.sink_floor.enforce => {
            sink_missing = Some(p);
            None
        }
        _ => None,
    };
    let mut frontier = match plan.start {
        None => Frontier::default(),
        Some(cp) => {
            if cp.size > head_row {
                return Err(fail(
                    head_row,
                    format!(
                        "the log has {head_row} entries but the checkpoint verified earlier has {}: entries were removed or the log rolled back",
                        cp.size
                    ),
                ));
            }
            let f = reader.frontier(cp.size).await.map_err(|e| {
                fail(
                    None,
                    format!("cannot rebuild the tree of the checkpoint verified earlier (size {}): {e}", cp.size),
                )
            })?;
            if f.root() != cp.root {
                return Err(fail(
                    None,
                    format!(
                        "the stored tree of size {} is not the one in the checkpoint verified earlier: the log was rewritten",
                        cp.size
                    ),
                ));
            }
            f
        }
    };
    let mut pending_cps: std::collections::VecDeque<crate::StoredCheckpoint> = Default::default();
    let mut cps_exhausted = false;
    let mut n_checkpoints = 0u64;
    let mut last_cp_size = start_size;
    // The sizes of the last checkpoints, for the sink's crash window.
    let mut recent_cps = std::collections::VecDeque::from([start_size]);
    let fetch = move |store: std::sync::Arc<dyn crate::LogStore>, start: u64| {
        tokio::spawn(async move { store.entries(start, (start + PAGE).min(head_row.max(start))).await })
    };
    let mut next_page = fetch(store.clone(), start_size);
    // A record that cannot be read at all fails the page fetch; the entries
    // before it are verified first, so that the first bad index is reported.
    let mut unreadable: Option<VerifyError> = None;
    loop {
        let page = match next_page.await.expect("page fetch panicked") {
            Ok(page) => page,
            Err(StoreError::CorruptEntry { index, problem }) => {
                unreadable = Some(fail(index, problem));
                store.entries(frontier.size(), index).await?
            }
            Err(e) => return Err(e.into()),
        };
        if page.is_empty() {
            if let Some(f) = unreadable {
                return Err(f);
            }
            break;
        }
        let start = frontier.size();
        let page_end = start + page.len() as u64;
        // Read the next page while this one is checked.
        next_page = fetch(store.clone(), page_end);
        // The checkpoints that fall in this page.
        while !cps_exhausted && pending_cps.back().is_none_or(|c| c.size <= page_end) {
            let after = pending_cps.back().map_or(last_cp_size, |c| c.size);
            let more = store.checkpoints(after, PAGE as u32).await?;
            cps_exhausted = (more.len() as u64) < PAGE;
            pending_cps.extend(more);
        }
        let n_here = pending_cps.iter().take_while(|c| c.size <= page_end).count();
        let cps: Vec<_> = pending_cps.drain(..n_here).collect();
        let (page, cps, checked, signed) = {
            let (origin, trusted) = (origin.clone(), trusted.clone());
            tokio::task::spawn_blocking(move || {
                let (checked, signed) = check_page(&page, &cps, &origin, &trusted);
                (page, cps, checked, signed)
            })
            .await
            .expect("verify task panicked")
        };
        let mut cps = cps.into_iter().zip(signed).peekable();
        for (record, checked) in page.iter().zip(checked) {
            let index = frontier.size();
            if record.index != index {
                return Err(fail(index, format!("entry is missing (the next stored entry is {})", record.index)));
            }
            let claimed =
                checked.claimed.map_err(|e| fail(index, format!("stored bytes are not a valid entry: {e}")))?;
            if claimed != index {
                return Err(fail(
                    index,
                    format!("stored at index {index} but says it is entry {claimed}: entries were moved or reordered"),
                ));
            }
            let leaf = checked.leaf;
            let hashes = frontier.append(leaf);
            if hashes != record.hashes {
                let what = if record.hashes.first() != Some(&leaf) {
                    "its stored leaf hash does not match its bytes".to_owned()
                } else {
                    let level = hashes
                        .iter()
                        .zip(&record.hashes)
                        .position(|(a, b)| a != b)
                        .unwrap_or(hashes.len().min(record.hashes.len()));
                    format!("its stored hash at level {level} does not match the recomputed tree")
                };
                return Err(fail(index, what));
            }
            if let Some((path, file, lines)) = sink.as_mut() {
                line.clear();
                let n = file
                    .read_until(b'\n', &mut line)
                    .map_err(|e| VerifyError::Sink { path: path.display().to_string(), source: e })?;
                // A last line with no newline is a write a crash interrupted
                // (never acknowledged; the next open cuts and rewrites it).
                if n > 0 && line.ends_with(b"\n") {
                    if line.strip_suffix(b"\n") != Some(record.data.as_slice()) {
                        return Err(fail(index, format!("the sink {} holds a different entry", path.display())));
                    }
                    *lines += 1;
                }
            }
            // Check every checkpoint of this size against the recomputed root.
            while let Some((cp, _)) = cps.peek() {
                if cp.size > frontier.size() {
                    break;
                }
                let (cp, signed) = cps.next().expect("peeked");
                check_checkpoint(&cp, signed, &frontier)?;
                n_checkpoints += 1;
                last_cp_size = cp.size;
                recent_cps.push_back(cp.size);
                if recent_cps.len() > plan.sink_floor.window.unwrap_or(0) + 1 {
                    recent_cps.pop_front();
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
    let pending_in_snapshot = pending_cps.iter().find(|c| c.size <= head_row).cloned();
    let pending_in_snapshot = match pending_in_snapshot {
        Some(cp) => Some(cp),
        None if pending_cps.is_empty() => {
            store.checkpoints(last_cp_size, 1).await?.into_iter().find(|c| c.size <= head_row)
        }
        None => None,
    };
    if let Some(cp) = pending_in_snapshot {
        return Err(fail(
            size,
            format!("checkpoint {} covers entries that are missing: the log ends at {size}", cp.size),
        ));
    }
    if size < head_row {
        return Err(fail(size, format!("the head says {head_row} entries but {size} are stored")));
    }
    // Entries or checkpoints beyond the head are forged, unless the head
    // moved since the snapshot (a live append, committed with its head).
    let beyond = store.entries(head_row, head_row + PAGE).await?;
    let cp_beyond = store.checkpoints(head_row, 1).await?;
    if (!beyond.is_empty() || !cp_beyond.is_empty()) && store.head_state().await?.size == head_row {
        if beyond.is_empty() {
            return Err(fail(head_row, format!("checkpoint {} lies beyond the head at {head_row}", cp_beyond[0].size)));
        }
        return Err(fail(
            head_row,
            format!("the head says {head_row} entries but {} are stored", head_row + beyond.len() as u64),
        ));
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
        if since.size == 0 && since.root != breakglass_tlog::hash::empty_root() {
            return Err(fail(None, "the saved checkpoint of size 0 has a non-empty root"));
        }
        // A saved checkpoint older than the start was not met on the way.
        if since.size > 0 && since.size < start_size {
            let root = reader.tree_hash(since.size).await.map_err(|e| fail(None, e.to_string()))?;
            if root != since.root {
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
    let floor = plan.sink_floor;
    let window_floor = if floor.window.is_some() { recent_cps.front().copied().unwrap_or(0) } else { 0 };
    let sink_floor = floor.at_least.max(window_floor).min(size);
    if let Some(path) = sink_missing
        && sink_floor > 0
    {
        return Err(VerifyError::Failed(VerifyFailure {
            index: Some(0),
            problem: format!(
                "the sink {} does not exist, but the log has {size} entries and the sink must hold at least {sink_floor}: the copy was deleted or moved",
                path.display()
            ),
            sink_lacks: Some(size),
        }));
    }
    let mut sink_lines = sink_missing.map(|_| 0);
    if let Some((path, mut file, lines)) = sink {
        line.clear();
        let extra = file
            .read_until(b'\n', &mut line)
            .map_err(|e| VerifyError::Sink { path: path.display().to_string(), source: e })?;
        // Lines past the snapshot are fine if the log has grown to cover them
        // (the sink is written after the database commit, never before).
        if extra > 0 && line.ends_with(b"\n") && store.head_state().await?.size == head_row {
            return Err(fail(
                size,
                format!("the sink {} has entries the database does not: entries were deleted", path.display()),
            ));
        }
        if floor.enforce && lines < sink_floor {
            let why = match floor.window {
                Some(w) if window_floor >= floor.at_least => format!(
                    "an entry is acknowledged only after it is written there, and a crash can leave out only the last {w} batches (the entries after {window_floor})"
                ),
                _ => format!(
                    "it held at least {} entries when it was last checked (the checkpoint saved in the data directory)",
                    floor.at_least
                ),
            };
            let lacks = size - lines.min(size);
            return Err(VerifyError::Failed(VerifyFailure {
                index: Some(lines),
                problem: format!(
                    "the sink {} lacks {lacks} entries: it holds {lines} lines, the log has {size}, and {why}; the copy was truncated, emptied or replaced",
                    path.display(),
                ),
                sink_lacks: Some(lacks),
            }));
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
        sink_floor: opts.sink.map(|_| sink_floor),
        from: start_size,
    })
}

fn check_checkpoint(
    cp: &crate::StoredCheckpoint,
    signed: Result<Checkpoint, String>,
    frontier: &Frontier,
) -> Result<(), VerifyError> {
    let at = cp.size.saturating_sub(1);
    let signed = signed.map_err(|e| fail(at, format!("checkpoint {} does not verify: {e}", cp.size)))?;
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
