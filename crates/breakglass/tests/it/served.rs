//! A real `breakglass serve` process for end-to-end tests, and the CLI
//! run against it as one user or another.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::mpsc::Receiver;

use breakglass_testkit::files::{data_dir, write_private};
use breakglass_testkit::http;
use breakglass_testkit::serve::{self, Spawned};
use serde_json::{Value, json};

use crate::support::BIN;

pub struct Served {
    pub child: Child,
    /// What the server prints after it started listening.
    pub output: Receiver<String>,
    pub data: PathBuf,
    pub url: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `breakglass serve`; returns it, its URL and the admin token it
/// printed (first run only).
fn spawn(data: &Path, listen: &str) -> (Child, String, Option<String>, Receiver<String>) {
    spawn_with(data, listen, &[], |_| {})
}

/// [`spawn`] with extra environment variables, calling `at_listening` with
/// the server's process id the instant it prints "listening on" (before this
/// reads anything further).
pub fn spawn_with(
    data: &Path,
    listen: &str,
    env: &[(&str, &str)],
    at_listening: impl FnOnce(u32),
) -> (Child, String, Option<String>, Receiver<String>) {
    let drift_configured = std::fs::read_to_string(data.join("breakglass.toml")).is_ok_and(|c| c.contains("[drift]"));
    let mut cmd = Command::new(BIN);
    // Time is an input: the periodic drift check runs only where a test configures it.
    if !drift_configured {
        cmd.env("BREAKGLASS_DRIFT_INTERVAL", "0");
    }
    cmd.args(["serve", "--listen", listen, "--unsafe-test-clock", "--origin", "e2e.breakglass.test/log"])
        .arg("--data-dir")
        .arg(data)
        .env_remove("BREAKGLASS_DATABASE_URL")
        .envs(env.iter().copied());
    let Spawned { child, url, admin, output } = serve::spawn(cmd, at_listening);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (child, url, admin, output)
}

impl Served {
    /// Blocks until the server prints a line containing `needle` (an event,
    /// not a time: the bound only turns a hang into a failure).
    pub fn wait_for_output(&self, needle: &str) -> String {
        loop {
            match self.output.recv_timeout(std::time::Duration::from_secs(30)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("the server never printed {needle:?}: {e}"),
            }
        }
    }

    pub fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (child, url, admin, output) = spawn(&data, "127.0.0.1:0");
        let admin = admin.expect("first run printed a bootstrap admin token");
        assert!(admin.starts_with("bgk_"), "{admin}");
        Served { child, output, data, url, admin, dir }
    }

    /// Like [`Served::start`], with `config` as the data directory's
    /// breakglass.toml, written before the first run (which keeps an existing
    /// file). It must say `[log] origin = "e2e.breakglass.test/log"`, the
    /// origin the server is started with.
    pub fn start_with_config(config: &str) -> Served {
        Served::start_with(config, &[], |_| {})
    }

    /// Like [`Served::start_with_config`] (no file when `config` is empty),
    /// with extra environment variables and [`spawn_with`]'s `at_listening`.
    pub fn start_with(config: &str, env: &[(&str, &str)], at_listening: impl FnOnce(u32)) -> Served {
        let (dir, data) = data_dir();
        if !config.is_empty() {
            write_private(&data.join("breakglass.toml"), config);
        }
        let (child, url, admin, output) = spawn_with(&data, "127.0.0.1:0", env, at_listening);
        let admin = admin.expect("first run printed a bootstrap admin token");
        assert!(admin.starts_with("bgk_"), "{admin}");
        Served { child, output, data, url, admin, dir }
    }

    /// Stops the server (SIGKILL: as if the machine went away).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same data directory and address.
    pub fn restart(&mut self) {
        self.stop();
        let listen = self.url.trim_start_matches("http://").to_owned();
        let (child, url, _, output) = spawn(&self.data, &listen);
        self.output = output;
        assert_eq!(url, self.url);
        self.child = child;
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CLI as `who` (their own credentials file), against this server.
    pub fn cli(&self, who: &str, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("BREAKGLASS_SERVER", &self.url)
            .env("BREAKGLASS_CREDENTIALS", self.path(&format!("{who}.credentials.toml")))
            .env_remove("BREAKGLASS_TOKEN")
            .env_remove("BREAKGLASS_DATA_DIR")
            .env("HOME", self.dir.path());
        if who == "admin" {
            c.env("BREAKGLASS_TOKEN", &self.admin);
        }
        c.output().unwrap()
    }

    pub fn ok(&self, who: &str, args: &[&str]) -> String {
        let out = self.cli(who, args);
        assert!(
            out.status.success(),
            "{who}: breakglass {args:?} failed ({:?}):\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, who: &str, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(who, &args)).unwrap()
    }

    /// Fails with `code`, and says `needle` on stderr.
    pub fn refused(&self, who: &str, args: &[&str], code: i32, needle: &str) {
        let out = self.cli(who, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{who}: breakglass {args:?}: {err}");
        assert!(err.contains(needle), "{who}: breakglass {args:?}: expected {needle:?} in: {err}");
    }

    /// A raw HTTP/1.1 request (for the test clock, which has no CLI).
    pub fn http(&self, method: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let addr = self.url.trim_start_matches("http://");
        let auth = format!("Bearer {token}");
        let body = body.to_string();
        let (status, body) = http::request(addr, method, path, &[("Authorization", &auth)], Some(body.as_bytes()));
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub fn advance_clock(&self, ms: i64) {
        let (status, v) = self.http("POST", "/v1/debug/clock", &self.admin, &json!({ "advance_ms": ms }));
        assert_eq!(status, 200, "{v}");
    }
}
