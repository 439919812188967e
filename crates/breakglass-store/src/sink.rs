//! The JSON-lines file sink: every acknowledged entry is also appended, in
//! index order, to a file outside the database and fsynced before the append
//! is acknowledged, so a copy of the log lives outside the server's database.
//! Each line is the entry's exact canonical bytes (canonical JSON has no raw
//! newlines), so an auditor can rehash the file line by line.
//!
//! Several processes may append to one log; the sink is guarded by an
//! exclusive file lock, and whoever holds it first copies any committed
//! entries the file is missing (read back from the database), so the file
//! stays in index order no matter which process committed what. A partial
//! last line (a crash in the middle of a write) is cut off and rewritten.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use breakglass_entry::entry::{Entry, MAX_ENTRY_BYTES};

use crate::{EntryRecord, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("audit sink {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("audit sink {path} is corrupt: {problem}")]
    Corrupt { path: String, problem: String },
    #[error(
        "audit sink {path} has entries up to {file_last} but the log has only {log_size}; it belongs to another log or the database was rolled back"
    )]
    Ahead { path: String, file_last: u64, log_size: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: File,
    /// File length and last index after our last write, to skip re-reading the tail.
    cached: Option<(u64, Option<u64>)>,
}

impl FileSink {
    /// Opens (creating if needed) the sink file. Its directory must exist.
    pub fn open(path: &Path) -> Result<FileSink, SinkError> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o640);
        let file = opts.open(path).map_err(|e| io_err(path, e))?;
        Ok(FileSink { path: path.to_owned(), file, cached: None })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Brings the file up to date with a log of `end` entries, the last of
    /// which are `batch` (consecutive, just committed; may be empty). Entries
    /// the file is missing before `batch` are read with `fetch(start, end)`;
    /// `db_size()` gives the database's current size, to tell a file that is
    /// ahead of the database (tampering, a rollback) from one that another
    /// process has already brought past this batch (normal).
    /// Returns how many entries the file held before (its complete lines),
    /// so that a caller can tell a crash's gap from a truncated copy.
    /// Blocking: it takes a file lock that another process may hold.
    pub fn sync(
        &mut self,
        batch: &[EntryRecord],
        end: u64,
        mut fetch: impl FnMut(u64, u64) -> Result<Vec<EntryRecord>, StoreError>,
        mut db_size: impl FnMut() -> Result<u64, StoreError>,
    ) -> Result<u64, SinkError> {
        let start = batch.first().map_or(end, |r| r.index);
        debug_assert_eq!(start + batch.len() as u64, end);
        let path = self.path.clone();
        self.file.lock().map_err(|e| io_err(&path, e))?;
        let res = self.sync_locked(batch, start, end, &mut fetch, &mut db_size);
        let unlocked = self.file.unlock().map_err(|e| io_err(&path, e));
        if res.is_err() {
            self.cached = None;
        }
        let had = res?;
        unlocked?;
        Ok(had)
    }

    fn sync_locked(
        &mut self,
        batch: &[EntryRecord],
        start: u64,
        end: u64,
        fetch: &mut impl FnMut(u64, u64) -> Result<Vec<EntryRecord>, StoreError>,
        db_size: &mut impl FnMut() -> Result<u64, StoreError>,
    ) -> Result<u64, SinkError> {
        let path = self.path.clone();
        let len = self.file.metadata().map_err(|e| io_err(&path, e))?.len();
        let last = match self.cached {
            Some((cached_len, last)) if cached_len == len => last,
            _ => read_last_index(&mut self.file, &path, len)?,
        };
        let next = last.map_or(0, |l| l + 1);
        if next > end {
            // Another process may have copied this batch, and later ones, already.
            let size = db_size()?;
            if next > size {
                return Err(SinkError::Ahead { path: path.display().to_string(), file_last: next - 1, log_size: size });
            }
            self.cached = Some((len, last));
            return Ok(next);
        }
        let mut missing = Vec::new();
        if next < start {
            missing = fetch(next, start)?;
            if missing.len() as u64 != start - next {
                return Err(StoreError::Corrupt(format!("entries {next}..{start} are missing from the log")).into());
            }
        }
        let lines = missing.iter().chain(batch.iter().filter(|r| r.index >= next));
        let (len, last) = write_lines(&mut self.file, &path, lines, last)?;
        self.cached = Some((len, last));
        Ok(next)
    }
}

fn io_err(path: &Path, source: std::io::Error) -> SinkError {
    SinkError::Io { path: path.display().to_string(), source }
}

/// The index of the last complete line, cutting off a partial last line.
pub fn read_last_index(file: &mut File, path: &Path, len: u64) -> Result<Option<u64>, SinkError> {
    if len == 0 {
        return Ok(None);
    }
    let window = (2 * (MAX_ENTRY_BYTES as u64 + 1)).min(len);
    file.seek(SeekFrom::Start(len - window)).map_err(|e| io_err(path, e))?;
    let mut buf = vec![0; window as usize];
    file.read_exact(&mut buf).map_err(|e| io_err(path, e))?;
    let corrupt = |problem: String| SinkError::Corrupt { path: path.display().to_string(), problem };
    let end = match buf.iter().rposition(|b| *b == b'\n') {
        Some(p) => p + 1,
        None if window == len => 0,
        None => return Err(corrupt("last line is longer than any entry".into())),
    };
    if end < buf.len() {
        // A partial line from an interrupted write: it was never acknowledged
        // as written, and its entry will be copied again from the database.
        let keep = len - window + end as u64;
        file.set_len(keep).map_err(|e| io_err(path, e))?;
        file.sync_all().map_err(|e| io_err(path, e))?;
    }
    if end == 0 {
        return Ok(None);
    }
    let body = &buf[..end - 1];
    let line_start = body.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    if line_start == 0 && window < len {
        return Err(corrupt("last line is longer than any entry".into()));
    }
    let entry = Entry::decode(&body[line_start..]).map_err(|e| corrupt(format!("last line is not an entry: {e}")))?;
    Ok(Some(entry.index))
}

fn write_lines<'a>(
    file: &mut File,
    path: &Path,
    lines: impl Iterator<Item = &'a EntryRecord>,
    mut last: Option<u64>,
) -> Result<(u64, Option<u64>), SinkError> {
    let mut buf = Vec::new();
    for r in lines {
        let want = last.map_or(0, |l| l + 1);
        if r.index != want {
            return Err(SinkError::Corrupt {
                path: path.display().to_string(),
                problem: format!("would write entry {} where entry {want} belongs", r.index),
            });
        }
        buf.extend_from_slice(&r.data);
        buf.push(b'\n');
        last = Some(r.index);
    }
    file.seek(SeekFrom::End(0)).map_err(|e| io_err(path, e))?;
    file.write_all(&buf).map_err(|e| io_err(path, e))?;
    file.sync_data().map_err(|e| io_err(path, e))?;
    let len = file.metadata().map_err(|e| io_err(path, e))?.len();
    Ok((len, last))
}
