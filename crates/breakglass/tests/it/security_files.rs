//! Security: files and the process (issue 14). The attacker is a local user
//! on the server, who may read whatever the server leaves readable, or a
//! client that sends its bytes as slowly as it likes. These tests hold the
//! doors against both: the mode of every file `init` and `serve` create; a
//! configuration holding secrets, or a `*_file` secret, that others can read
//! is refused with the `chmod` that fixes it (which is then run as printed);
//! a SIGHUP sent the instant the server says it listens reloads it instead of
//! killing it; slow clients are cut off by the configured timeouts and
//! cannot crowd out a normal request. (Unix only: modes and signals are Unix's.)

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use breakglass_testkit::files::{data_dir, write_private};
use breakglass_testkit::ssh::keygen;

use crate::served::Served;
use crate::support::{BIN, Scratch};

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

const ORIGIN: &str = "[log]\norigin = \"e2e.breakglass.test/log\"\n";

/// A data directory with `config` as its breakglass.toml at `file_mode`.
fn data_with_config(config: &str, file_mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let (dir, data) = data_dir();
    let path = data.join("breakglass.toml");
    std::fs::write(&path, config).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file_mode)).unwrap();
    (dir, data)
}

/// `breakglass <args> --data-dir <data>` with the given environment.
fn run(data: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("BREAKGLASS_DATABASE_URL")
        .env_remove("BREAKGLASS_DATA_DIR")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Runs the fix the error message printed (`fix: chmod 600 PATH`) through a
/// shell, exactly as printed.
fn run_printed_fix(stderr: &str) {
    let fix = stderr.split("fix: ").nth(1).unwrap_or_else(|| panic!("no fix printed: {stderr}"));
    let command = fix.split(", and").next().unwrap().trim_end_matches(')');
    assert!(command.starts_with("chmod 600 "), "{command}");
    let status = Command::new("sh").arg("-c").arg(command).status().unwrap();
    assert!(status.success(), "{command}");
}

#[test]
fn issue14_every_file_init_and_serve_create_is_owner_only_where_it_holds_a_secret() {
    // `init` alone.
    let scratch = Scratch::new();
    let data = scratch.data();
    assert_eq!(mode(&data), 0o700, "the data directory");
    for name in
        ["breakglass.toml", "breakglass.db", "log-signing.key", "audit-hmac.key", "grant-token.key", "login-hmac.key"]
    {
        assert_eq!(mode(&data.join(name)), 0o600, "{name} after init");
    }
    // Public halves may be read by anyone: auditors pin them.
    for name in ["log.pub", "grant-token.jwks.json"] {
        assert_eq!(mode(&data.join(name)) & 0o022, 0, "{name} is not writable by others");
    }

    // `serve` on a fresh directory, then a login that stores a session.
    let srv = Served::start();
    let keys = srv.path("keys");
    std::fs::create_dir(&keys).unwrap();
    let (alice_key, alice_pub) = keygen(&keys, "alice").into_parts();
    std::fs::write(
        srv.data.join("principals.toml"),
        format!("[[principal]]\nname = \"alice\"\ngroups = [\"oncall\"]\nssh_keys = [\"{alice_pub}\"]\n"),
    )
    .unwrap();
    srv.ok("admin", &["policy", "reload"]);
    srv.ok("alice", &["login", "--principal", "alice", "--key", alice_key.to_str().unwrap()]);
    assert_eq!(mode(&srv.data), 0o700);
    for name in ["breakglass.toml", "breakglass.db", "breakglass.db-wal", "breakglass.db-shm", "log-signing.key"] {
        assert_eq!(mode(&srv.data.join(name)), 0o600, "{name} while serving");
    }
    assert_eq!(mode(&srv.path("alice.credentials.toml")), 0o600, "the session's credentials file");
    // The log's JSON-lines copy holds no secret (only digests of them), and
    // others have no access to it in any case.
    assert_eq!(mode(&srv.data.join("audit.jsonl")) & 0o007, 0, "audit.jsonl");
    // No secret was written into the configuration.
    let config = std::fs::read_to_string(srv.data.join("breakglass.toml")).unwrap();
    assert!(!config.contains("secret = \"") && !config.contains("url = \"postgres"), "{config}");
}

#[test]
fn issue14_init_copies_no_secret_from_the_environment_into_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret = "generic-secret-from-the-environment-0123";
    let out = run(&data, &["init"], &[("BREAKGLASS_INCIDENTS_GENERIC_SECRETS", secret)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = std::fs::read_to_string(data.join("breakglass.toml")).unwrap();
    assert!(!config.contains(secret), "{config}");
    assert_eq!(mode(&data.join("breakglass.toml")), 0o600);
}

#[test]
fn issue14_a_configuration_with_secrets_that_others_can_read_is_refused() {
    // The attack: a local user reads the generic receiver's secret from a
    // 0644 breakglass.toml and signs a severity-1 incident with it.
    let config = format!("{ORIGIN}\n[incidents]\ngeneric_secrets = [\"generic-secret-0123456789abcdef\"]\n");
    for loose in [0o644, 0o640, 0o604, 0o660] {
        let (_dir, data) = data_with_config(&config, loose);
        let out = run(&data, &["serve", "--listen", "127.0.0.1:0"], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "mode {loose:o}: {stderr}");
        let path = data.join("breakglass.toml");
        assert!(stderr.contains(&path.display().to_string()), "the file is named: {stderr}");
        assert!(stderr.contains("incidents.generic_secrets"), "the secret's key is named: {stderr}");
        assert!(stderr.contains(&format!("{loose:04o}")), "the mode is shown: {stderr}");
        assert!(!stderr.contains("generic-secret-0123456789abcdef"), "the secret is not: {stderr}");
        assert!(!data.join("log-signing.key").exists(), "nothing was created: the start failed closed");
        // The printed command fixes it, as printed.
        run_printed_fix(&stderr);
        assert_eq!(mode(&path), 0o600);
        let out = run(&data, &["init"], &[]);
        assert!(out.status.success(), "after the fix: {}", String::from_utf8_lossy(&out.stderr));
    }

    // The TLS private key is a secret file too.
    let (_dir, data) =
        data_with_config(&format!("{ORIGIN}\n[server]\ntls_cert = \"tls.crt\"\ntls_key = \"tls.key\"\n"), 0o644);
    std::fs::write(data.join("tls.crt"), "not read before the key's mode is checked\n").unwrap();
    std::fs::write(data.join("tls.key"), "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let out = run(&data, &["serve", "--listen", "127.0.0.1:0"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("server.tls_key") && stderr.contains("tls.key"), "{stderr}");
    run_printed_fix(&stderr);
    assert_eq!(mode(&data.join("tls.key")), 0o600);

    // A configuration without secrets may stay readable (it holds nothing to
    // steal), but not writable: whoever may write it may add a secret of
    // their own and forge incidents with it.
    let (_dir, data) = data_with_config(ORIGIN, 0o644);
    let out = run(&data, &["init"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_dir, data) = data_with_config(ORIGIN, 0o666);
    let out = run(&data, &["serve", "--listen", "127.0.0.1:0"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("writable by group or others") && stderr.contains("fix: chmod go-w "), "{stderr}");
    let fix = stderr.split("fix: ").nth(1).unwrap().trim().trim_end_matches(')');
    assert!(Command::new("sh").arg("-c").arg(fix).status().unwrap().success(), "{fix}");
    assert_eq!(mode(&data.join("breakglass.toml")), 0o644);

    // A database URL with a password is a secret too; one without is not.
    let (_dir, data) = data_with_config(
        &format!("{ORIGIN}\n[database]\nurl = \"postgres://breakglass:hunter2@127.0.0.1:1/bg\"\n"),
        0o644,
    );
    let stderr = String::from_utf8_lossy(&run(&data, &["init"], &[]).stderr).into_owned();
    assert!(stderr.contains("database.url") && stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn issue14_every_secret_can_live_in_its_own_file_and_a_loose_one_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let token = "alertmanager-token-0123456789abcdef";
    let config = format!(
        "{ORIGIN}\n[incidents]\nalertmanager_tokens_file = \"alertmanager.tokens\"\n\n\
         [[notify.webhook]]\nname = \"ops\"\nurl = \"http://127.0.0.1:9/bg\"\nsecret_file = \"ops.secret\"\n\n\
         [[notify.slack]]\nname = \"sre\"\nurl_file = \"slack.url\"\n"
    );
    // The configuration itself holds no secret now, so 0644 is fine for it.
    let (dir, data) = data_with_config(&config, 0o644);
    write_private(&data.join("alertmanager.tokens"), &format!("{token}\n"));
    write_private(&data.join("ops.secret"), "webhook-secret-0123456789abcdef\n");
    let slack = data.join("slack.url");
    write_private(&slack, "http://127.0.0.1:9/services/T0/B0/secretpath\n");

    // A secret file others can read is refused, named with its key and the fix.
    std::fs::set_permissions(&slack, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&data, &["serve", "--listen", "127.0.0.1:0"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("notify.slack \"sre\" url_file"), "{stderr}");
    assert!(stderr.contains(&slack.display().to_string()) && stderr.contains("0644"), "{stderr}");
    assert!(!stderr.contains("secretpath"), "{stderr}");
    run_printed_fix(&stderr);

    // Set both ways, a secret is refused (whichever way each came).
    let refused = |extra_env: &[(&str, &str)], code: i32| {
        let out = run(&data, &["init"], extra_env);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        stderr
    };
    let both = |extra_env: &[(&str, &str)]| refused(extra_env, 2);
    let err = both(&[("BREAKGLASS_INCIDENTS_ALERTMANAGER_TOKENS", "inline-token-0123456789abcdef")]);
    assert!(err.contains("incidents.alertmanager_tokens and incidents.alertmanager_tokens_file are both set"), "{err}");
    let err = both(&[("BREAKGLASS_DATABASE_URL_FILE", "db.url"), ("BREAKGLASS_DATABASE_URL", "postgres://x@h/db")]);
    assert!(err.contains("database.url") && err.contains("url_file"), "{err}");

    // A missing or empty secret file is named.
    let err = refused(&[("BREAKGLASS_INCIDENTS_GENERIC_SECRETS_FILE", "nowhere.secret")], 3);
    assert!(err.contains("incidents.generic_secrets_file") && err.contains("nowhere.secret"), "{err}");
    write_private(&data.join("empty.secret"), "\n");
    let err = both(&[("BREAKGLASS_INCIDENTS_GENERIC_SECRETS_FILE", "empty.secret")]);
    assert!(err.contains("empty"), "{err}");

    // With every secret file owner-only, the server starts and authenticates
    // with the secret from its file: the right token is accepted, another refused.
    let (child, url, admin, output) = crate::served::spawn_with(&data, "127.0.0.1:0", &[], |_| {});
    let srv = Served { child, output, data, url, admin: admin.unwrap(), dir };
    let body = breakglass_testkit::fixtures::incident_text("alertmanager-firing.json");
    let post = |bearer: &str| {
        let addr = srv.url.trim_start_matches("http://");
        let auth = format!("Bearer {bearer}");
        let headers = [("Authorization", auth.as_str())];
        breakglass_testkit::http::request(addr, "POST", "/v1/incidents/alertmanager", &headers, Some(body.as_bytes())).0
    };
    assert_eq!(post("not-the-token-0123456789abcdef"), 401);
    let ok = post(token);
    assert!((200..300).contains(&ok), "the token from the file is accepted: {ok}");
}

#[test]
fn issue14_a_sighup_the_instant_the_server_says_listening_reloads_it() {
    // The flaky start: "listening on" was printed before the handlers were
    // installed, so a reload sent on seeing it killed the server. The signal
    // goes out before this test reads another byte of the server's output.
    let srv = Served::start_with("", &[], |pid| {
        let hup = Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
        assert!(hup.success());
    });
    srv.wait_for_output("policy reloaded (SIGHUP)");
    let mut srv = srv;
    assert!(srv.child.try_wait().unwrap().is_none(), "the server lives on");
    let (status, _) = srv.http("GET", "/healthz", "", &serde_json::Value::Null);
    assert_eq!(status, 200);
    // And SIGTERM, after the reload, stops it cleanly (exit 0).
    let term = Command::new("kill").args(["-TERM", &srv.child.id().to_string()]).status().unwrap();
    assert!(term.success());
    assert!(srv.child.wait().unwrap().success());
}

/// Reads until the server closes the connection (end of file, or a reset);
/// panics if it has not within a generous bound (which only turns a hang into
/// a failure: the server's timeouts are far shorter). `between_reads` runs
/// whenever a read waits longer than `pace` without news.
fn wait_for_close(s: &mut TcpStream, pace: Duration, mut between_reads: impl FnMut(&mut TcpStream) -> bool) -> Vec<u8> {
    let bound = std::time::Instant::now() + Duration::from_secs(30);
    s.set_read_timeout(Some(pace)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                assert!(std::time::Instant::now() < bound, "the server never closed the slow connection");
                if !between_reads(s) {
                    // The client can send no more: the server closed (a write
                    // to a closed connection fails).
                    return got;
                }
            }
            Err(e) => panic!("unexpected error while waiting for the close: {e}"),
        }
    }
}

#[test]
fn issue14_request_headers_trickled_byte_by_byte_are_cut_off_by_the_header_read_timeout() {
    let srv = Served::start_with(&format!("{ORIGIN}\n[server]\nheader_read_timeout = \"200ms\"\n"), &[], |_| {});
    let addr = srv.url.trim_start_matches("http://").to_owned();

    // A slowloris client: it sends a header byte whenever 50 ms pass with no
    // answer, for ever; only a total bound on the headers stops it (an idle
    // timeout would be reset by every byte).
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let got = wait_for_close(&mut slow, Duration::from_millis(50), |s| s.write_all(b"X").is_ok());
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "half a request is never answered");

    // A client that sends nothing at all is cut off alike.
    let mut silent = TcpStream::connect(&addr).unwrap();
    let got = wait_for_close(&mut silent, Duration::from_secs(1), |_| true);
    assert!(got.is_empty() || String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408"), "{got:?}");

    // A normal request on a new connection is still answered.
    let (status, _) = srv.http("GET", "/healthz", "", &serde_json::Value::Null);
    assert_eq!(status, 200);
}

#[test]
fn issue14_a_body_that_stops_arriving_is_cut_off_by_the_idle_timeout() {
    let srv = Served::start_with(
        &format!("{ORIGIN}\n[server]\nheader_read_timeout = \"10m\"\nidle_timeout = \"200ms\"\n"),
        &[],
        |_| {},
    );
    let addr = srv.url.trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).unwrap();
    // Complete headers (so the header timeout no longer applies), then five
    // bytes of a 100-byte body, then nothing.
    s.write_all(
        b"POST /v1/login/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"pri",
    )
    .unwrap();
    let got = wait_for_close(&mut s, Duration::from_secs(1), |_| true);
    // The handler may answer the broken body before the connection closes.
    let shown = String::from_utf8_lossy(&got);
    assert!(got.is_empty() || shown.starts_with("HTTP/1.1 4"), "{shown}");
}

#[test]
fn issue14_slow_clients_cannot_crowd_out_a_normal_request_and_one_over_the_limit_is_refused() {
    // Long timeouts: the slow clients hold their connections for the whole test.
    let srv = Served::start_with(
        &format!("{ORIGIN}\n[server]\nheader_read_timeout = \"10m\"\nidle_timeout = \"1h\"\nmax_connections = 4\n"),
        &[],
        |_| {},
    );
    let addr = srv.url.trim_start_matches("http://").to_owned();
    let mut slow: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();

    // A normal request, on a fourth (kept-alive) connection, is answered.
    // The server accepts in order, so the three slow ones hold a slot each.
    let mut normal = TcpStream::connect(&addr).unwrap();
    normal.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = read_response_head(&mut normal);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    // All four slots are held: a fifth connection is refused at once (a 503,
    // or the connection closed), not left waiting.
    let mut over = TcpStream::connect(&addr).unwrap();
    let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let got = wait_for_close(&mut over, Duration::from_secs(1), |_| true);
    let shown = String::from_utf8_lossy(&got);
    assert!(got.is_empty() || shown.starts_with("HTTP/1.1 503"), "{shown}");

    // When a connection closes, its slot frees: a new request is answered
    // once the server has seen the close (retried until then; each refusal
    // is immediate, so this waits for an event, not a time).
    drop(normal);
    let bound = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut s = TcpStream::connect(&addr).unwrap();
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut res = Vec::new();
        let _ = s.read_to_end(&mut res);
        if res.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < bound, "no slot ever freed");
    }
    // The slow clients were held all along.
    for s in &mut slow {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let held = matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        assert!(held, "a slow client was cut off though its timeouts are long");
    }
}

/// Reads a response's status line and headers (up to the blank line).
fn read_response_head(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut b).expect("the server answers");
        assert!(n > 0, "the server closed before answering: {}", String::from_utf8_lossy(&got));
        got.push(b[0]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn issue14_the_database_url_can_live_in_its_own_file() {
    use std::os::unix::fs::PermissionsExt as _;

    // PostgreSQL only (skipped without BREAKGLASS_TEST_PG_URL, as the store tests are).
    let Some(scratch) = Scratch::postgres() else { return };
    let url = scratch.pg.as_ref().unwrap().url.clone();
    let file = scratch.path("database-url");
    write_private(&file, &format!("{url}\n"));
    let verify =
        || run(&scratch.data(), &["audit", "verify"], &[("BREAKGLASS_DATABASE_URL_FILE", file.to_str().unwrap())]);
    let out = verify();
    assert!(out.status.success(), "the log on PostgreSQL verifies: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = verify();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("database.url_file") && stderr.contains("chmod 600"), "{stderr}");
}

// Issue 14: the server refuses a policy or principals file that others may
// write; what `init` creates must pass that check under a permissive umask
// (Debian's 0002 for users with their own group) too.
#[test]
fn issue14_init_under_a_permissive_umask_creates_what_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new("sh")
        .args(["-c", "umask 0002 && exec \"$0\" init --origin e2e.breakglass.test/log --data-dir \"$1\""])
        .arg(BIN)
        .arg(&data)
        .env_remove("BREAKGLASS_DATA_DIR")
        .env_remove("BREAKGLASS_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (name, want) in [("policy", 0o755), ("policy/breakglass.cedar", 0o644), ("principals.toml", 0o644)] {
        assert_eq!(mode(&data.join(name)), want, "{name}");
    }
    // A principals file others may write is refused, with a fix that runs as printed.
    use std::os::unix::fs::PermissionsExt as _;
    let principals = data.join("principals.toml");
    std::fs::set_permissions(&principals, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out =
        Command::new(BIN).arg("init").arg("--data-dir").arg(&data).env_remove("BREAKGLASS_DATA_DIR").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let fix = err.split("(fix: ").nth(1).expect("a fix").split(')').next().unwrap().to_owned();
    assert!(Command::new("sh").args(["-c", &fix]).status().unwrap().success(), "{fix}");
    let out =
        Command::new(BIN).arg("init").arg("--data-dir").arg(&data).env_remove("BREAKGLASS_DATA_DIR").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
