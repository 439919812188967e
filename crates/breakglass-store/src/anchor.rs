//! The checkpoint this data directory verified last ("the anchor"), kept in
//! a file beside the database's other local state, so that a start verifies
//! only the entries appended since (see [`crate::ledger::Ledger::open`]).
//!
//! Security: the file holds a signed checkpoint, not a secret (mode 0644).
//! Whoever can write it can at most replace it with an older checkpoint of
//! the same log (its signature is checked against the log's key on every
//! load), which costs a longer verification, never a skipped one; a file
//! that does not verify stops the start instead of being ignored. It is
//! written atomically (a temporary file, fsynced, renamed, the directory
//! fsynced), so a crash leaves the old checkpoint or the new one. Several
//! servers over one PostgreSQL database each keep their own, in their own
//! data directory: each knows only what it verified itself.
//!
//! Its size is also the fewest lines this data directory's sink may hold:
//! it is saved only once the sink holds every entry it covers.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::note::NoteVerifier;

/// The file name of the anchor in a data directory.
pub const VERIFIED_CHECKPOINT_FILE: &str = "log-verified.checkpoint";

/// A checkpoint verified earlier, with its signed note as saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub checkpoint: Checkpoint,
    pub note: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} is not a checkpoint signed by this log's key ({problem}); it was edited, or it belongs to another log (if the log was replaced on purpose, move the file away and the next start verifies the whole log: mv {path} {path}.old)",
        path = path.display()
    )]
    Invalid { path: PathBuf, problem: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Loads the anchor; `None` when the file does not exist (a first start).
pub fn load(path: &Path, origin: &str, key: &NoteVerifier) -> Result<Option<Anchor>, AnchorError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AnchorError::Read { path: path.to_owned(), source: e }),
    };
    let invalid = |problem: String| AnchorError::Invalid { path: path.to_owned(), problem };
    let note = String::from_utf8(bytes).map_err(|_| invalid("it is not UTF-8 text".into()))?;
    let checkpoint = Checkpoint::open(&note, origin, std::slice::from_ref(key)).map_err(|e| invalid(e.to_string()))?;
    Ok(Some(Anchor { checkpoint, note }))
}

/// Replaces the anchor with `note`, atomically.
pub fn save(path: &Path, note: &str) -> Result<(), AnchorError> {
    let write_err = |e| AnchorError::Write { path: path.to_owned(), source: e };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o644);
    let written = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(note.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the directory is.
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(write_err)
}
