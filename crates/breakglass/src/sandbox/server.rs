//! The sandbox's server: `breakglass serve` (this same executable) as a
//! child process on a free loopback port over a scratch data directory,
//! ready once it says "listening on", killed when dropped.

use std::path::Path;
use std::time::Duration;

use crate::error::{CliResult, internal};

/// The `breakglass serve` child; killed when dropped, so that a drill or
/// benchmark that fails half-way never leaves a server running.
pub(crate) struct ServerProcess {
    child: std::process::Child,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts `breakglass serve` over `data` with log origin `origin` and the
/// `extra` arguments; returns it with its URL and the bootstrap admin token.
pub(crate) async fn start_server(
    data: &Path,
    origin: &str,
    extra: &[&str],
) -> CliResult<(ServerProcess, String, String)> {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};

    let exe = std::env::current_exe().map_err(|e| internal(format!("cannot find this executable: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--origin", origin])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // The server's configuration is the scratch data directory's, whatever this shell sets
    // (a BREAKGLASS_DATABASE_URL would put it on PostgreSQL); BREAKGLASS_LOG passes through.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("BREAKGLASS_") && n != "BREAKGLASS_LOG") {
            cmd.env_remove(name);
        }
    }
    // A scratch server checks for drift only when asked.
    cmd.env("BREAKGLASS_DRIFT_INTERVAL", "0");
    let mut child = cmd.spawn().map_err(|e| internal(format!("cannot start breakglass serve: {e}")))?;
    let stdout = child.stdout.take().ok_or_else(|| internal("the server has no stdout"))?;
    let server = ServerProcess { child };

    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let (mut admin, mut after_admin) = (None, false);
        let mut tx = Some(tx);
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if after_admin {
                admin = Some(line.trim().to_owned());
            }
            after_admin = line.starts_with("bootstrap admin API token");
            if let Some(url) = line.strip_prefix("listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send((url.trim().to_owned(), admin.take()));
                }
                break;
            }
        }
        drop(tx);
        // Keep draining, so that the server never blocks on a full pipe.
        for _ in lines {}
    });
    let started = tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .map_err(|_| internal("breakglass serve did not start listening within 60 s"))?
        .map_err(|_| internal("breakglass serve exited before it started listening (its messages are above)"))?;
    let (url, admin) = started;
    let admin = admin.ok_or_else(|| internal("breakglass serve printed no bootstrap admin token"))?;
    Ok((server, url, admin))
}
