//! Export to the C2SP tlog-tiles layout (`checkpoint`, `tile/<L>/<N>[.p/<W>]`,
//! `tile/entries/<N>[.p/<W>]`), incrementally: a file that exists is never
//! rewritten (tiles, full or partial, are immutable once named), so the
//! directory can be synced to write-once storage. The checkpoint is written
//! last, so a reader never sees a checkpoint whose tiles are missing.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use breakglass_tlog::tiles::{encode_bundle, tiles_for_size};
use serde::Serialize;

use crate::StoreError;
use crate::reader::{LogReader, ReadError};

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ExportReport {
    pub size: u64,
    pub written: u64,
    pub skipped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("entry {0} is larger than an entry bundle allows")]
    TooLarge(u64),
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ExportError> {
    let io = |source| ExportError::Io { path: path.display().to_string(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Writes the tiles and entry bundles of the latest checkpoint into `dir`.
pub async fn export_tiles(reader: &LogReader, dir: &Path) -> Result<ExportReport, ExportError> {
    let head = reader.head().await?;
    let store = reader.store();
    let mut report = ExportReport { size: head.size, ..Default::default() };
    for tile in tiles_for_size(head.size) {
        let path = dir.join(tile.path());
        if path.exists() {
            report.skipped += 1;
        } else {
            let hashes = reader.read_hashes(&tile.hash_indexes()).await?;
            write_atomic(&path, &crate::hashes_to_blob(&hashes))?;
            report.written += 1;
        }
        if tile.level != 0 {
            continue;
        }
        let path = dir.join(tile.entries_path());
        if path.exists() {
            report.skipped += 1;
            continue;
        }
        let range = tile.entry_range();
        let entries = store.entries(range.start, range.end).await?;
        if entries.len() as u64 != tile.width {
            return Err(StoreError::Corrupt(format!("entries {}..{} are missing", range.start, range.end)).into());
        }
        let bundle =
            encode_bundle(entries.iter().map(|e| e.data.as_slice())).map_err(|_| ExportError::TooLarge(range.start))?;
        write_atomic(&path, &bundle)?;
        report.written += 1;
    }
    write_atomic(&dir.join("checkpoint"), head.note.as_bytes())?;
    Ok(report)
}
