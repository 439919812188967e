//! The local spool: events a hook could not deliver to the server wait here,
//! durably, until a later hook run or `breakglass spool flush` delivers them.
//!
//! Each event is one file named by its unique id, written to a temporary
//! name, fsynced, renamed into place, and the directory fsynced: once
//! `spool` returns, the event survives a crash. Delivery is idempotent on the
//! server (an event id is recorded once), and a file is removed only after
//! the server acknowledged it, so an event is never lost and never recorded
//! twice. Event files are created readable by their owner only (0600:
//! they name grants, pushers and commits; issue 14, finding 7).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use breakglass_client::Client;
use breakglass_core::api::EventRequest;

/// A new random event id (32 hex digits).
pub fn new_event_id() -> String {
    let mut b = [0u8; 16];
    // Without randomness there is no unique id: fail loudly rather than collide.
    getrandom::fill(&mut b).expect("random bytes for an event id");
    hex::encode(b)
}

/// Writes `event` to the spool directory durably.
pub fn spool(dir: &Path, event: &EventRequest) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the spool {}: {e}", dir.display()))?;
    let path = dir.join(format!("{}.json", event.id));
    let tmp = dir.join(format!(".{}.tmp", event.id));
    let body = serde_json::to_vec(event).map_err(|e| format!("cannot encode event {}: {e}", event.id))?;
    let write = || -> std::io::Result<()> {
        // A temporary file left by a crash may have any mode: start afresh,
        // so the mode below applies from the file's first moment.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| format!("cannot write event {} to the spool {}: {e}", event.id, dir.display()))?;
    Ok(path)
}

/// The spooled events, oldest first (by modification time, then name).
pub fn pending(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read the spool {}: {e}", dir.display())),
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| (std::fs::metadata(&p).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), p))
        .collect();
    files.sort();
    Ok(files.into_iter().map(|f| f.1).collect())
}

/// What a flush did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Flushed {
    pub delivered: usize,
    pub duplicates: usize,
    pub remaining: usize,
    /// Why delivery stopped early, if it did.
    pub error: Option<String>,
}

/// Delivers spooled events in order; stops at the first failure (the
/// server is probably unreachable), leaving the rest for next time. An event
/// the server refuses as invalid (4xx other than auth) is moved aside to
/// `rejected/` so it cannot block the spool, and counted as an error.
pub async fn flush(dir: &Path, client: &Client) -> Flushed {
    let mut out = Flushed::default();
    let files = match pending(dir) {
        Ok(f) => f,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    for (k, path) in files.iter().enumerate() {
        let event: EventRequest = match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(ev) => ev,
            Err(e) => {
                set_aside(dir, path);
                out.error = Some(format!("spooled event {} is unreadable ({e}); moved to rejected/", path.display()));
                continue;
            }
        };
        match client.record_event(&event).await {
            Ok(r) => {
                if r.duplicate {
                    out.duplicates += 1;
                } else {
                    out.delivered += 1;
                }
                let _ = std::fs::remove_file(path);
            }
            Err(e) if e.status().is_some_and(|s| s == 400 || s == 422) => {
                set_aside(dir, path);
                out.error = Some(format!("the server refused spooled event {}: {e}; moved to rejected/", event.id));
            }
            Err(e) => {
                out.remaining = files.len() - k;
                out.error = Some(e.to_string());
                return out;
            }
        }
    }
    out
}

fn set_aside(dir: &Path, path: &Path) {
    let rejected = dir.join("rejected");
    let _ = std::fs::create_dir_all(&rejected);
    if let Some(name) = path.file_name() {
        let _ = std::fs::rename(path, rejected.join(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakglass_core::time::Timestamp;

    #[test]
    fn spooled_events_are_durable_files_named_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let ev = EventRequest {
            id: new_event_id(),
            kind: "git.push".into(),
            actor: "alice".into(),
            grant: None,
            at: Timestamp(1),
            data: serde_json::json!({ "repo": "r" }),
        };
        let path = spool(dir.path(), &ev).unwrap();
        assert_eq!(pending(dir.path()).unwrap(), vec![path.clone()]);
        let back: EventRequest = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, ev);
        assert_ne!(new_event_id(), new_event_id());
        assert!(pending(&dir.path().join("missing")).unwrap().is_empty());
        // Issue 14 (finding 7): created 0600, whatever the umask allows.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
