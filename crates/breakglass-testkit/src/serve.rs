//! A `breakglass serve` process, spawned from the command a test builds
//! (the binary, its arguments, its environment) and returned once it says
//! "listening on": with the URL it printed, the bootstrap admin token it
//! printed before (a first run only), and every later line of its output.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

/// A started server.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    pub url: String,
    pub admin: Option<String>,
    /// What the server prints after "listening on", line by line.
    pub output: Receiver<String>,
}

/// Spawns `cmd` with its standard output read here, calling `at_listening`
/// with the server's process id the instant it prints "listening on"
/// (before anything further is read).
pub fn spawn(mut cmd: Command, at_listening: impl FnOnce(u32)) -> Spawned {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn breakglass serve");
    let mut lines = BufReader::new(child.stdout.take().expect("the server's stdout")).lines();
    let (mut url, mut admin) = (None, None);
    let mut after_admin = false;
    for line in lines.by_ref() {
        let line = line.expect("read the server's output");
        if after_admin {
            admin = Some(line.trim().to_owned());
            after_admin = false;
        }
        after_admin |= line.starts_with("bootstrap admin API token");
        if let Some(u) = line.strip_prefix("listening on ") {
            at_listening(child.id());
            url = Some(u.trim().to_owned());
            break;
        }
    }
    // Keep draining stdout (so the server never blocks on a full pipe), and
    // hand its later lines to whoever waits for one.
    let (tx, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let url = url.expect("the server printed the URL it listens on");
    Spawned { child, url, admin, output }
}
