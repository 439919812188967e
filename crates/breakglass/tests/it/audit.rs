//! The auditor's interfaces, from the real binary: key, checkpoint, show,
//! prove, verify-proof, verify, export; and bad input.

use std::path::Path;

use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::note::NoteVerifier;
use serde_json::Value;

use crate::support::{BIN, INIT_ENTRIES, Scratch, independent};

#[test]
fn every_command_has_help_with_exit_codes() {
    for args in [
        vec!["--help"],
        vec!["init", "--help"],
        vec!["audit", "--help"],
        vec!["audit", "key", "--help"],
        vec!["audit", "checkpoint", "--help"],
        vec!["audit", "show", "--help"],
        vec!["audit", "tail", "--help"],
        vec!["audit", "prove", "--help"],
        vec!["audit", "verify-proof", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["audit", "digest", "--help"],
        vec!["audit", "export", "--help"],
        vec!["bench", "ledger", "--help"],
        vec!["bench", "core", "--help"],
        vec!["completions", "--help"],
    ] {
        let out = std::process::Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage:"), "{args:?}: {text}");
        if args.len() > 1 && args[0] != "audit" || args.len() > 2 {
            assert!(text.contains("Exit codes:") || args[0] == "completions", "{args:?} documents no exit codes");
        }
    }
    let out = std::process::Command::new(BIN).args(["completions", "bash"]).output().unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("breakglass"));
}

#[test]
fn init_creates_private_keys_and_is_idempotent() {
    let s = Scratch::new();
    let key = s.key();
    assert!(key.starts_with("test.breakglass.local/log+"), "{key}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for f in ["log-signing.key", "audit-hmac.key", "breakglass.db"] {
            let mode = std::fs::metadata(s.data().join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        assert_eq!(std::fs::metadata(s.data()).unwrap().permissions().mode() & 0o777, 0o700);
    }
    // A second init keeps the key; a different origin is refused and changes nothing.
    s.ok(&["init"]);
    assert_eq!(s.key(), key);
    let err = s.fails(&["init", "--origin", "other.example/log"], 2);
    assert!(err.contains("other.example/log") && err.contains("cannot change"), "{err}");
    assert_eq!(s.key(), key);
    // The JSON report parses.
    let v: Value = serde_json::from_str(&s.ok(&["init", "--json"])).unwrap();
    assert_eq!(v["verifier_key"], key.as_str());
}

#[test]
fn missing_data_dir_is_a_clear_error_and_is_not_created() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    for args in [vec!["audit", "verify"], vec!["audit", "checkpoint"], vec!["audit", "show", "0"]] {
        let out = std::process::Command::new(BIN).args(&args).arg("--data-dir").arg(&missing).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&missing.display().to_string()) && err.contains("breakglass init"), "{err}");
        assert!(!missing.exists(), "{args:?} created the data directory");
    }
}

#[test]
fn an_unreachable_database_is_a_clear_error_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = std::process::Command::new(BIN)
        .args(["init", "--database-url", "postgres://bg:hunter2@127.0.0.1:1/breakglass", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("postgres://bg:***@127.0.0.1:1/breakglass") && err.contains("--database-url"), "{err}");
    assert!(!err.contains("hunter2"), "the password reached the error message: {err}");
    assert!(!dir.exists(), "init left a partial data directory");
    let out = std::process::Command::new(BIN)
        .args(["init", "--database-url", "mysql://x@y/z", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected postgres://"));
}

#[test]
fn checkpoint_show_and_prove_are_what_an_outside_verifier_needs() {
    let s = Scratch::new();
    s.append(20, 3);
    let key = s.key();
    let verifier = NoteVerifier::parse(&key).unwrap();
    let note = s.ok(&["audit", "checkpoint"]);
    let cp = Checkpoint::open(&note, "test.breakglass.local/log", std::slice::from_ref(&verifier)).unwrap();
    assert_eq!(cp.size, INIT_ENTRIES + 60);
    let json: Value = serde_json::from_str(&s.ok(&["audit", "checkpoint", "--json"])).unwrap();
    assert_eq!(json["note"], note.as_str());

    let entries = s.entries();
    // The first, an inner and the last of the entries appended above.
    let (first, inner, last) = (INIT_ENTRIES as usize, INIT_ENTRIES as usize + 17, INIT_ENTRIES as usize + 59);
    for index in [first, inner, last] {
        // --raw prints exactly the bytes that were hashed.
        let raw = s.cmd(&["audit", "show", &index.to_string(), "--raw"]).output().unwrap().stdout;
        assert_eq!(raw, entries[index]);
        let shown: Value = serde_json::from_str(&s.ok(&["audit", "show", &index.to_string(), "--json"])).unwrap();
        assert_eq!(shown["index"], index as u64);

        let proof_file = s.path(&format!("{index}.tlog-proof"));
        let entry_file = s.path(&format!("{index}.entry"));
        std::fs::write(&entry_file, &raw).unwrap();
        let proof = s.ok(&["audit", "prove", &index.to_string()]);
        assert!(proof.starts_with(&format!("c2sp.org/tlog-proof@v1\nindex {index}\n")), "{proof}");
        assert!(proof.ends_with(&note), "the proof must carry the latest checkpoint verbatim");
        std::fs::write(&proof_file, &proof).unwrap();
        let as_json: Value = serde_json::from_str(&s.ok(&["audit", "prove", &index.to_string(), "--json"])).unwrap();
        assert_eq!(
            (as_json["proof"].as_str(), as_json["size"].as_u64()),
            (Some(proof.as_str()), Some(INIT_ENTRIES + 60))
        );

        // Our own offline verifier, with no data directory...
        let out = std::process::Command::new(BIN)
            .args(["audit", "verify-proof"])
            .arg(&proof_file)
            .arg("--entry")
            .arg(&entry_file)
            .args(["--key", &key, "--data-dir", "/nonexistent/breakglass"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // ...and an independent one.
        let out = independent(&[Path::new("proof"), Path::new(&key), &proof_file, &entry_file]);
        assert!(out.status.success(), "independent verifier: {}", String::from_utf8_lossy(&out.stdout));
    }

    // Wrong entry, wrong key, damaged proof.
    let proof_file = s.path(&format!("{inner}.tlog-proof"));
    let other_entry = s.path(&format!("{first}.entry"));
    let fake = s.path("fake.entry");
    let mut bytes = entries[inner].clone();
    bytes[5] ^= 1;
    std::fs::write(&fake, &bytes).unwrap();
    for (entry, key, code) in [
        (&other_entry, key.clone(), 1),
        (&fake, key.clone(), 1),
        (
            &s.path(&format!("{inner}.entry")),
            "test.breakglass.local/log+00000000+AWNe7Kf+eIWiCez87AUPLdEWje/ahxWRfDkch4HRCVdO".into(),
            2,
        ),
    ] {
        let out = std::process::Command::new(BIN)
            .args(["audit", "verify-proof"])
            .arg(&proof_file)
            .arg("--entry")
            .arg(entry)
            .args(["--key", &key])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", String::from_utf8_lossy(&out.stderr));
        let out = independent(&[Path::new("proof"), Path::new(&s.key()), &proof_file, entry]);
        assert!(!out.status.success() || code == 2);
    }
    std::fs::write(s.path("bad.tlog-proof"), "c2sp.org/tlog-proof@v1\nindex x\n\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["audit", "verify-proof"])
        .arg(s.path("bad.tlog-proof"))
        .arg("--entry")
        .arg(s.path(&format!("{inner}.entry")))
        .args(["--key", &s.key()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.tlog-proof"));
}

#[test]
fn verify_passes_then_names_the_first_bad_index() {
    let s = Scratch::new();
    s.append(30, 2);
    let size = INIT_ENTRIES + 60;
    let out = s.ok(&["audit", "verify"]);
    assert!(out.starts_with(&format!("ok: {size} entries")), "{out}");
    let v: Value = serde_json::from_str(&s.ok(&["audit", "verify", "--json"])).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["report"]["size"], size);
    assert_eq!(v["report"]["sink_lines"], size);

    // Change one byte of the 42nd appended entry: detected, and named.
    let bad = INIT_ENTRIES + 41;
    s.sql(&format!(
        "UPDATE log_entries SET data = CAST(replace(CAST(data AS TEXT), '\"debug\"', '\"DEBUG\"') AS BLOB) WHERE idx = {bad}"
    ));
    let err = s.fails(&["audit", "verify"], 1);
    assert!(err.contains(&format!("entry {bad}")), "{err}");
    let out = s.run(&["audit", "verify", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["first_bad_index"], bad);
}

#[test]
fn deleting_the_tail_is_caught_by_the_sink_and_by_a_saved_checkpoint() {
    let s = Scratch::new();
    s.append(20, 1);
    let saved = s.path("saved-checkpoint");
    std::fs::write(&saved, s.ok(&["audit", "checkpoint"])).unwrap();
    s.append(20, 1);
    assert!(
        s.ok(&["audit", "verify", "--since", saved.to_str().unwrap()])
            .contains(&format!("consistent with the saved checkpoint of size {}", INIT_ENTRIES + 20))
    );
    // An attacker with database access removes the last 25 entries, their
    // checkpoints, and moves the head back: the database alone looks whole.
    let keep = INIT_ENTRIES + 15;
    s.sql(&format!(
        "DELETE FROM log_entries WHERE idx >= {keep};
         DELETE FROM log_checkpoints WHERE size > {keep};
         UPDATE log_head SET size = (SELECT max(size) FROM log_checkpoints);"
    ));
    let err = s.fails(&["audit", "verify"], 1);
    assert!(err.contains("sink"), "the sink copy must reveal the deletion: {err}");
    let err = s.fails(&["audit", "verify", "--since", saved.to_str().unwrap()], 1);
    assert!(err.contains("saved checkpoint") || err.contains("sink"), "{err}");
}

#[test]
fn a_checkpoint_signed_by_another_key_fails_verification() {
    let s = Scratch::new();
    s.append(10, 1);
    // Re-sign the latest checkpoint with a new key of the same name.
    let other = breakglass_tlog::note::NoteSigner::from_seed("test.breakglass.local/log", &[42; 32]).unwrap();
    let note = s.ok(&["audit", "checkpoint"]);
    let text = &note[..note.rfind("\n\n").unwrap() + 1];
    let forged = other.sign(text).unwrap();
    let size = INIT_ENTRIES + 10;
    s.sql(&format!("UPDATE log_checkpoints SET note = '{forged}' WHERE size = {size}"));
    let err = s.fails(&["audit", "verify"], 1);
    assert!(err.contains(&format!("checkpoint {size}")) && err.contains(&format!("entry {}", size - 1)), "{err}");
    // Trusting the forger's key instead does not help: the older checkpoints are ours.
    let err = s.fails(&["audit", "verify", "--key", &other.verifier().to_string()], 1);
    assert!(err.contains("does not verify"), "{err}");
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let s = Scratch::new();
    s.append(5, 1);
    let db_before = std::fs::read(s.db()).unwrap();
    let sink_before = std::fs::read(s.data().join("audit.jsonl")).unwrap();
    let checkpoint_before = s.ok(&["audit", "checkpoint"]);

    // A corrupt checkpoint file for --since.
    let corrupt = s.path("corrupt");
    std::fs::write(&corrupt, "not a checkpoint\n").unwrap();
    let err = s.fails(&["audit", "verify", "--since", corrupt.to_str().unwrap()], 2);
    assert!(err.contains(corrupt.to_str().unwrap()), "{err}");
    let err = s.fails(&["audit", "verify", "--since", "/nonexistent/checkpoint"], 2);
    assert!(err.contains("/nonexistent/checkpoint"), "{err}");

    // An entry over the size limit.
    let err = s.fails(&["debug", "append", "--count", "1", "--pad", "70000"], 2);
    assert!(err.contains("65535") && err.contains("bytes"), "{err}");

    // An index past the end, a malformed index, a bad key.
    let err = s.fails(&["audit", "show", "99"], 3);
    assert!(err.contains("99") && err.contains(&format!("{} entries", INIT_ENTRIES + 5)), "{err}");
    s.fails(&["audit", "show", "minus-one"], 2);
    let err = s.fails(&["audit", "verify", "--key", "garbage"], 2);
    assert!(err.contains("garbage"), "{err}");

    assert_eq!(s.ok(&["audit", "checkpoint"]), checkpoint_before);
    assert_eq!(std::fs::read(s.data().join("audit.jsonl")).unwrap(), sink_before);
    s.ok(&["audit", "verify"]);
    // The main database file is untouched (new data would land in the WAL first,
    // so compare the log instead of bytes there).
    let _ = db_before;
    assert_eq!(s.entries().len() as u64, INIT_ENTRIES + 5);
}

#[test]
fn tail_and_digest() {
    let s = Scratch::new();
    s.append(12, 1);
    // The last three of the twelve appended, after init's entries.
    let tail = s.ok(&["audit", "tail", "-n", "3"]);
    assert_eq!(tail.lines().count(), 3);
    assert!(tail.lines().next().unwrap().trim_start().starts_with(&format!("{} ", INIT_ENTRIES + 9)), "{tail}");
    let v: Value = serde_json::from_str(&s.ok(&["audit", "tail", "-n", "2", "--json"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["index"], INIT_ENTRIES + 11);

    let digest = |secret: &str| {
        let mut child = s
            .cmd(&["audit", "digest", "--purpose", "api-token"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(secret.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let d = digest("bg_tok_secret\n");
    assert!(d.starts_with("hmac-sha256:") && !d.contains("bg_tok_secret"));
    assert_eq!(d, digest("bg_tok_secret"));
    assert_ne!(d, digest("bg_tok_other"));
}

#[test]
fn export_writes_tiles_incrementally_that_an_independent_verifier_accepts() {
    let s = Scratch::new();
    s.append(100, 3);
    let out = s.path("tiles");
    let v: Value = serde_json::from_str(&s.ok(&["audit", "export", "--out", out.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(v["size"], INIT_ENTRIES + 300);
    let full_tile = out.join("tile/0/000");
    let full_bundle = out.join("tile/entries/000");
    assert_eq!(std::fs::metadata(&full_tile).unwrap().len(), 8192);
    let checked = independent(&[Path::new("tiles"), Path::new(&s.key()), &out]);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stdout));

    // Grow the log and export again: full tiles are left exactly as they were.
    let before = std::fs::metadata(&full_tile).unwrap().modified().unwrap();
    let bundle_before = std::fs::read(&full_bundle).unwrap();
    s.append(100, 3);
    let v: Value = serde_json::from_str(&s.ok(&["audit", "export", "--out", out.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(v["size"], INIT_ENTRIES + 600);
    assert!(v["skipped"].as_u64().unwrap() >= 2);
    assert_eq!(std::fs::metadata(&full_tile).unwrap().modified().unwrap(), before);
    assert_eq!(std::fs::read(&full_bundle).unwrap(), bundle_before);
    let checked = independent(&[Path::new("tiles"), Path::new(&s.key()), &out]);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stdout));
    assert_eq!(std::fs::read_to_string(out.join("checkpoint")).unwrap(), s.ok(&["audit", "checkpoint"]));
}

#[test]
fn the_benchmarks_run_and_report_their_figures() {
    let out = std::process::Command::new(BIN).args(["bench", "core", "--iterations", "50", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["token_verify", "policy_decide", "policy_decide_request_1x1"] {
        assert!(v[key]["p50_us"].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("bench");
    let out = std::process::Command::new(BIN)
        .args(["bench", "ledger", "--entries", "300", "--appenders", "4", "--rate", "100", "--rate-seconds", "1"])
        .args(["--proofs", "20", "--json", "--keep"])
        .arg(&keep)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["log_size"], 400);
    // The kept log is a real data directory that verifies.
    let out = std::process::Command::new(BIN).args(["audit", "verify", "--data-dir"]).arg(&keep).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The server benchmark starts a real server, drives it over HTTP and stops it.
    let out = std::process::Command::new(BIN)
        .args(["bench", "server", "--requests", "5", "--checks-seconds", "1", "--connections", "2", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["requests"], 5);
    assert!(v["request_ms_p50"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["checks_ok"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["checks_failed"], 0, "{v}");
    assert!(v["rss_bytes_after_load"].as_u64().unwrap() > 0, "{v}");
    // The git benchmark: a real server, real pushes to a repository with the hooks and to one
    // without; 300 commits are enough for the hook to split the push's record into two events.
    let out = std::process::Command::new(BIN)
        .args(["bench", "git", "--pushes", "2", "--large-pushes", "1", "--large-commits", "300"])
        .args(["--startup-runs", "2", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let scenarios = v["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 3, "{v}");
    for s in scenarios {
        assert!(s["with_hooks_ms_p50"].as_f64().unwrap() > 0.0 && s["without_hooks_ms_p50"].as_f64().unwrap() > 0.0);
        assert!(s["added_ms_p50"].is_f64() && s["met"].is_boolean(), "{v}");
    }
    assert_eq!(v["large_push_commits_recorded_each"][0], 300, "{v}");
    assert!(v["large_push_events_each"][0].as_u64().unwrap() >= 2, "{v}");
    assert!(v["breakglass_version"]["ms_p50"].as_f64().unwrap() > 0.0, "{v}");
}

// Issue 14: log tampering, end to end with the real binary.

/// Keeps the first `n` lines of the data directory's JSON-lines copy.
fn cut_sink(s: &Scratch, n: usize) -> std::path::PathBuf {
    let sink = s.data().join("audit.jsonl");
    let text = std::fs::read_to_string(&sink).unwrap();
    let kept: String = text.split_inclusive('\n').take(n).collect();
    std::fs::write(&sink, kept).unwrap();
    sink
}

/// Issue 14, finding 4: `audit verify` said "sink matches" and exited 0
/// with ten lines cut from the copy, or the copy emptied.
#[test]
fn issue14_verify_fails_on_a_copy_with_ten_lines_cut_or_emptied() {
    let s = Scratch::new();
    s.append(30, 2);
    let size = INIT_ENTRIES + 60;
    let sink = cut_sink(&s, size as usize - 10);
    let err = s.fails(&["audit", "verify"], 1);
    assert!(err.contains(&format!("lacks 10 entries: it holds {} lines, the log has {size}", size - 10)), "{err}");
    assert!(err.contains(&sink.display().to_string()), "names the file: {err}");
    // The next step it prints is a command that runs as printed.
    let cp = format!("cp {} {}.evidence", sink.display(), sink.display());
    assert!(err.contains(&cp), "{err}");
    let status = std::process::Command::new("sh").arg("-c").arg(&cp).status().unwrap();
    assert!(status.success());
    assert!(err.contains(&format!("breakglass serve --data-dir {}", s.data().display())), "{err}");
    let out = s.run(&["audit", "verify", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["ok"].as_bool(), v["sink_lacks"].as_u64()), (Some(false), Some(10)), "{v}");
    cut_sink(&s, 0);
    let err = s.fails(&["audit", "verify"], 1);
    assert!(err.contains(&format!("lacks {size} entries")), "{err}");
}

/// A `breakglass serve` on a data directory, its stdout and stderr lines
/// handed over as they come.
struct Server {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Server {
    fn start(s: &Scratch) -> Server {
        let mut child = s
            .cmd(&["serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [Box::new(out) as Box<dyn std::io::Read + Send>, Box::new(err)] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                use std::io::BufRead as _;
                for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Server { child, lines }
    }

    /// Waits for a line containing `needle` (an event; the bound only turns
    /// a hang into a failure) and returns every line seen until then.
    fn wait_for(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(e) => panic!("the server never printed {needle:?} ({e}); it printed:\n{}", seen.join("\n")),
            }
        }
    }

    /// SIGTERM, and waits for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 14, finding 4: `serve` silently refilled a copy with ten lines
/// cut. Now it says so on stderr, records `log.sink_repaired` and a
/// `log.sink_truncated` drift finding, and the copy verifies again.
#[test]
fn issue14_serve_repairs_a_truncated_copy_loudly_and_records_it() {
    let s = Scratch::new();
    s.append(20, 1);
    let size = INIT_ENTRIES + 20;
    cut_sink(&s, size as usize - 10);
    let server = Server::start(&s);
    let seen = server.wait_for("drift check:");
    let all = seen.join("\n");
    assert!(all.contains("LACKED 10 ENTRIES"), "no loud line about the copy:\n{all}");
    assert!(seen.last().unwrap().contains("1 new"), "{all}");
    server.stop();
    let tail: Value = serde_json::from_str(&s.ok(&["audit", "tail", "-n", "50", "--json"])).unwrap();
    let entries = tail.as_array().unwrap();
    let repaired = entries.iter().find(|e| e["kind"] == "log.sink_repaired").expect("a log.sink_repaired entry");
    assert_eq!((repaired["data"]["had"].as_u64(), repaired["data"]["lacked"].as_u64()), (Some(size - 10), Some(10)));
    assert!(
        entries.iter().any(|e| e["kind"] == "drift.found" && e["data"]["kind"] == "log.sink_truncated"),
        "no drift finding: {tail}"
    );
    let v: Value = serde_json::from_str(&s.ok(&["audit", "verify", "--json"])).unwrap();
    assert_eq!(v["report"]["sink_lines"], v["report"]["size"]);
    // The clean stop saved the head as the checkpoint this data directory verified.
    let saved = std::fs::read_to_string(s.data().join("log-verified.checkpoint")).unwrap();
    assert_eq!(saved, s.ok(&["audit", "checkpoint"]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(s.data().join("log-verified.checkpoint")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}

/// Issue 14's weak spot: after a crash, an entry is edited in the database
/// with its leaf hash recomputed. The server was started on it and
/// appended; now it refuses to start, names the entry and the next step,
/// and nothing is appended.
#[test]
fn issue14_serve_refuses_a_log_edited_with_a_recomputed_leaf_hash() {
    use sha2::Digest as _;
    let s = Scratch::new();
    s.append(5, 1);
    // A writer killed mid-run: its appends come after the checkpoint saved at its start.
    let mut child = s
        .cmd(&["debug", "append", "--count", "100000", "--writers", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead as _;
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..30 {
            lines.next().expect("the appender exited early").unwrap();
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let idx = INIT_ENTRIES + 5 + 11;
    let db = s.db();
    crate::support::run_async(async move {
        use breakglass_store::LogStore as _;
        let store = breakglass_store::sqlite::SqliteStore::open(&db, Default::default()).await.unwrap();
        let rec = store.entries(idx, idx + 1).await.unwrap().remove(0);
        let data = String::from_utf8(rec.data).unwrap().replace("\"debug\"", "\"mallory\"");
        let mut leaf = sha2::Sha256::new();
        leaf.update([0u8]);
        leaf.update(data.as_bytes());
        let mut hashes: Vec<u8> = rec.hashes.iter().flat_map(|h| h.0).collect();
        hashes[..32].copy_from_slice(&leaf.finalize());
        sqlx::query("UPDATE log_entries SET data = ?, hashes = ? WHERE idx = ?")
            .bind(data.into_bytes())
            .bind(hashes)
            .bind(idx as i64)
            .execute(store.pool())
            .await
            .unwrap();
        store.close().await;
    });
    let before = s.entries().len();
    let err = s.fails(&["serve", "--listen", "127.0.0.1:0"], 1);
    assert!(err.contains("the audit log failed its check at open"), "{err}");
    assert!(err.contains(&format!("entry {idx}")), "{err}");
    let next = format!("breakglass audit verify --data-dir {}", s.data().display());
    assert!(err.contains(&next), "{err}");
    assert_eq!(s.entries().len(), before, "nothing was appended");
    // Every writer refuses, not only the server; the auditor's check names the same entry.
    s.fails(&["debug", "append", "--count", "1"], 1);
    assert!(s.fails(&["audit", "verify"], 1).contains(&format!("entry {idx}")));
}

/// Issue 14: the saved checkpoint replaced by one the log's key did not
/// sign (to skip the check, or to lower the copy's floor) stops every
/// writer, with the command that moves it away if the log was replaced on purpose.
#[test]
fn issue14_a_forged_saved_checkpoint_stops_the_start() {
    let s = Scratch::new();
    s.append(5, 1);
    let saved = s.data().join("log-verified.checkpoint");
    let note = std::fs::read_to_string(&saved).unwrap();
    let other = breakglass_tlog::note::NoteSigner::from_seed("test.breakglass.local/log", &[42; 32]).unwrap();
    std::fs::write(&saved, other.sign(&note[..note.rfind("\n\n").unwrap() + 1]).unwrap()).unwrap();
    let err = s.fails(&["debug", "append", "--count", "1"], 1);
    assert!(err.contains("is not a checkpoint signed by this log's key"), "{err}");
    let mv = format!("mv {} {}.old", saved.display(), saved.display());
    assert!(err.contains(&mv), "{err}");
    assert!(std::process::Command::new("sh").arg("-c").arg(&mv).status().unwrap().success());
    // Moved away: the next start verifies the whole log and saves a new one.
    s.append(1, 1);
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), s.ok(&["audit", "checkpoint"]));
}

// Issue 14, finding 6: `audit show` printed entry text raw; JSON escapes
// only characters below U+0020, so a C1 control (U+009B, CSI) or a bidi
// override written into an entry reached the auditor's terminal.
#[test]
fn issue14_audit_show_escapes_what_a_terminal_would_obey() {
    let s = Scratch::new();
    let hostile = "fix\u{9b}2J\u{202e}txt.exe\u{1b}]8;;x\u{7}";
    let out = s.ok(&["debug", "append", "--count", "1", "--label", hostile]);
    let index = out.lines().find_map(|l| l.strip_prefix("ack ")).unwrap().split(' ').next().unwrap().to_owned();
    for args in [vec!["audit", "show", index.as_str()], vec!["audit", "tail", "--lines", "1"]] {
        let shown = s.ok(&args);
        assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n' || ('\u{202a}'..='\u{202e}').contains(&c)),
            "{args:?}: {shown:?}"
        );
    }
    assert!(s.ok(&["audit", "show", &index]).contains("\\u{9b}"), "the character is shown, escaped");
}
