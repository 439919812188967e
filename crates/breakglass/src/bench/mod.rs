//! `breakglass bench ledger`: append, prove and verify benchmarks on the real
//! ledger, real SQLite (WAL, synchronous=FULL) and the real file sink, in a
//! scratch data directory. Figures are printed, never asserted: speed is
//! measured here, not in tests.

pub mod ci;
pub mod incident;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use breakglass_core::entry::EntryDraft;
use breakglass_store::verify::{VerifyOptions, verify_log};
use breakglass_tlog::proof::verify_inclusion;
use serde::Serialize;
use serde_json::json;

use crate::cli::BenchLedgerArgs;
use crate::datadir::{DataDir, Location, SystemClock};
use crate::error::{CliResult, bad_input, internal};
use crate::print_json;

#[derive(Debug, Serialize)]
struct Figures {
    data_dir: Option<String>,
    entries: u64,
    appenders: u64,
    append_seconds: f64,
    appends_per_second: f64,
    append_latency_ms_p50: f64,
    append_latency_ms_p99: f64,
    rate_target_per_second: u64,
    rate_achieved_per_second: f64,
    rate_latency_ms_p50: f64,
    rate_latency_ms_p99: f64,
    log_size: u64,
    proofs: u64,
    prove_cold_us_p50: f64,
    prove_cold_us_p99: f64,
    prove_warm_us_p50: f64,
    prove_warm_us_p99: f64,
    verify_seconds: f64,
    db_bytes: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn draft(writer: u64, seq: u64) -> EntryDraft {
    // A realistic entry: a protected push under a grant, about 300 bytes.
    EntryDraft::new(
        format!("engineer-{writer}"),
        "git.push",
        json!({
            "repo": "payments/api",
            "ref": "refs/heads/main",
            "old": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
            "new": "9fceb02d0ae598e95dc970b74767f19372d61af8",
            "commits": seq % 5 + 1,
            "writer": writer,
            "seq": seq,
        }),
    )
    .with_grant(format!("g_{writer:04}"))
}

pub async fn ledger(args: BenchLedgerArgs) -> CliResult {
    if args.appenders == 0 || args.entries == 0 {
        return Err(bad_input("--entries and --appenders must be at least 1"));
    }
    let scratch;
    let root = match &args.keep {
        Some(dir) if dir.exists() => {
            return Err(bad_input(format!("--keep {}: the directory already exists", dir.display())));
        }
        Some(dir) => dir.clone(),
        None => {
            scratch = tempfile::tempdir().map_err(|e| internal(format!("cannot make a scratch directory: {e}")))?;
            scratch.path().join("data")
        }
    };
    let (data, _) = DataDir::init(&Location::at(&root), Some("bench.breakglass.local/ledger".into())).await?;
    let ledger = data.ledger_with(Arc::new(SystemClock), !args.no_sink).await?;

    // Phase 1: throughput with N concurrent appenders, each waiting for its acknowledgement.
    eprintln!("appending {} entries with {} concurrent appenders...", args.entries, args.appenders);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..args.appenders {
        let ledger = ledger.clone();
        let next = next.clone();
        let total = args.entries;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    break;
                }
                let t = Instant::now();
                ledger.append(draft(writer, seq)).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, breakglass_store::ledger::AppendError>(lat)
        }));
    }
    let mut latencies = Vec::with_capacity(args.entries as usize);
    for t in tasks {
        let lat = t.await.map_err(|e| internal(e.to_string()))?.map_err(|e| internal(e.to_string()))?;
        latencies.extend(lat);
    }
    let append_elapsed = started.elapsed();
    latencies.sort_unstable();

    // Phase 2: acknowledged-append latency at a fixed offered rate (open loop).
    let rate = args.rate.max(1);
    let n_rate = rate * args.rate_seconds;
    eprintln!("appending {n_rate} entries at {rate}/s...");
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let rate_started = Instant::now();
    let mut rate_tasks = Vec::with_capacity(n_rate as usize);
    for seq in 0..n_rate {
        ticker.tick().await;
        let ledger = ledger.clone();
        rate_tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            ledger.append(draft(u64::MAX, seq)).await.map(|_| t.elapsed())
        }));
    }
    let mut rate_lat = Vec::with_capacity(n_rate as usize);
    for t in rate_tasks {
        rate_lat.push(t.await.map_err(|e| internal(e.to_string()))?.map_err(|e| internal(e.to_string()))?);
    }
    let rate_elapsed = rate_started.elapsed();
    rate_lat.sort_unstable();

    // Phase 3: inclusion proofs against the latest checkpoint, checked as
    // they are made: first with the reader's block cache cold (each proof may
    // read the database), then the same indexes again with it warm.
    let reader = ledger.reader().clone();
    let head = reader.head().await?;
    eprintln!("proving {} entries in a log of {}...", args.proofs, head.size);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let indexes: Vec<u64> = (0..args.proofs)
        .map(|_| {
            // xorshift: spread the indexes over the whole log without a dependency.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % head.size
        })
        .collect();
    let mut passes = Vec::new();
    for _pass in 0..2 {
        let mut lat = Vec::with_capacity(indexes.len());
        for &index in &indexes {
            let t = Instant::now();
            let proof = reader.prove_inclusion(index, head.size).await?;
            lat.push(t.elapsed());
            let entry = reader.store().entries(index, index + 1).await?;
            let leaf = entry.first().and_then(|e| e.hashes.first()).ok_or_else(|| internal("entry vanished"))?;
            verify_inclusion(index, head.size, &leaf.0, &proof, &head.root.0)
                .map_err(|e| internal(format!("benchmark proof for {index} did not verify: {e}")))?;
        }
        lat.sort_unstable();
        passes.push(lat);
    }
    let (cold, warm) = (&passes[0], &passes[1]);

    ledger.shutdown().await;

    // Phase 4: verify the whole log from the stored entries.
    eprintln!("verifying the whole log...");
    let reader = data.reader(None).await?;
    let sink = data.sink_path();
    let t = Instant::now();
    let sink = (!args.no_sink).then_some(sink.as_path());
    let report = verify_log(&reader, VerifyOptions { since: None, sink })
        .await
        .map_err(|e| internal(format!("benchmark log did not verify: {e}")))?;
    let verify_elapsed = t.elapsed();

    let db_bytes = ["breakglass.db", "breakglass.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.path(f)).ok())
        .map(|m| m.len())
        .sum();
    let figures = Figures {
        data_dir: args.keep.as_ref().map(|p| p.display().to_string()),
        entries: args.entries,
        appenders: args.appenders,
        append_seconds: append_elapsed.as_secs_f64(),
        appends_per_second: args.entries as f64 / append_elapsed.as_secs_f64(),
        append_latency_ms_p50: ms(percentile(&latencies, 0.5)),
        append_latency_ms_p99: ms(percentile(&latencies, 0.99)),
        rate_target_per_second: rate,
        rate_achieved_per_second: n_rate as f64 / rate_elapsed.as_secs_f64(),
        rate_latency_ms_p50: ms(percentile(&rate_lat, 0.5)),
        rate_latency_ms_p99: ms(percentile(&rate_lat, 0.99)),
        log_size: report.size,
        proofs: args.proofs,
        prove_cold_us_p50: percentile(cold, 0.5).as_secs_f64() * 1e6,
        prove_cold_us_p99: percentile(cold, 0.99).as_secs_f64() * 1e6,
        prove_warm_us_p50: percentile(warm, 0.5).as_secs_f64() * 1e6,
        prove_warm_us_p99: percentile(warm, 0.99).as_secs_f64() * 1e6,
        verify_seconds: verify_elapsed.as_secs_f64(),
        db_bytes,
    };
    if args.json {
        print_json(&figures);
    } else {
        println!("ledger benchmark (SQLite WAL, synchronous=FULL, file sink fsynced)");
        println!(
            "  append: {} entries, {} appenders: {:.0} entries/s ({:.2} s), latency p50 {:.2} ms, p99 {:.2} ms",
            figures.entries,
            figures.appenders,
            figures.appends_per_second,
            figures.append_seconds,
            figures.append_latency_ms_p50,
            figures.append_latency_ms_p99
        );
        println!(
            "  append at {}/s: achieved {:.0}/s, latency p50 {:.2} ms, p99 {:.2} ms",
            figures.rate_target_per_second,
            figures.rate_achieved_per_second,
            figures.rate_latency_ms_p50,
            figures.rate_latency_ms_p99
        );
        println!(
            "  prove: {} inclusion proofs in a log of {}: cache cold p50 {:.1} us, p99 {:.1} us; warm p50 {:.1} us, p99 {:.1} us",
            figures.proofs,
            figures.log_size,
            figures.prove_cold_us_p50,
            figures.prove_cold_us_p99,
            figures.prove_warm_us_p50,
            figures.prove_warm_us_p99
        );
        println!("  verify: {} entries in {:.2} s", figures.log_size, figures.verify_seconds);
        println!("  database: {:.1} MiB", figures.db_bytes as f64 / (1 << 20) as f64);
        if let Some(d) = &figures.data_dir {
            println!("  kept: {d}");
        }
    }
    Ok(())
}

/// p50, p99 and mean of `iterations` runs of `f`, in microseconds.
fn time_us(iterations: u32, mut f: impl FnMut() -> bool) -> CliResult<serde_json::Value> {
    let mut lat = Vec::with_capacity(iterations as usize);
    for _ in 0..iterations.max(1) {
        let t = Instant::now();
        let ok = std::hint::black_box(f());
        lat.push(t.elapsed());
        if !ok {
            return Err(internal("a benchmarked decision came out wrong"));
        }
    }
    let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
    lat.sort_unstable();
    let us = |d: Duration| (d.as_secs_f64() * 1e7).round() / 10.0;
    Ok(json!({ "p50_us": us(percentile(&lat, 0.5)), "p99_us": us(percentile(&lat, 0.99)), "mean_us": us(mean) }))
}

pub fn core(iterations: u32, as_json: bool) -> CliResult {
    use breakglass_core::policy::{ContextInput, EXAMPLE_POLICY, Policy, RequestInput};
    use breakglass_core::scope::{Capability, Scope};
    use breakglass_core::time::Timestamp;
    use breakglass_core::token::{Expect, IssueRequest, KeySet, TokenSigner, verify};

    let now = Timestamp(1_795_262_400_000);
    let scope = Scope::parse("git:payments/api@refs/heads/main").map_err(|e| internal(e.to_string()))?;
    let signer = TokenSigner::from_seed(&[7; 32]);
    let token = signer
        .issue(
            &IssueRequest {
                issuer: "https://breakglass.example".into(),
                principal: "alice".into(),
                grant_id: "g_bench".into(),
                scopes: vec![scope.to_string()],
                capabilities: vec!["push".into()],
                activated_at: now,
                expires_at: Timestamp(now.0 + 30 * 60_000),
                token_id: "0123456789abcdef".into(),
            },
            now,
        )
        .map_err(|e| internal(e.to_string()))?;
    let keys = KeySet::new([signer.public_key().clone()]).map_err(|e| internal(e.to_string()))?;
    let expect = Expect::new("https://breakglass.example", Duration::from_secs(4 * 3600))
        .with_principal("alice")
        .with_scope(scope.clone())
        .with_capability(Capability::Push);
    let at = Timestamp(now.0 + 60_000);
    let token_figures = time_us(iterations, || verify(&token, &keys, &expect, at).is_ok())?;

    let policy = Policy::load(&[("breakglass.cedar".to_owned(), EXAMPLE_POLICY.to_owned())])
        .map_err(|e| internal(format!("the example policy does not load: {e}")))?;
    let groups = vec!["oncall".to_owned()];
    let ctx = ContextInput {
        requester: "alice".into(),
        duration_ms: 30 * 60_000,
        reason: "INC-42".into(),
        now,
        ..ContextInput::default()
    };
    let decide_figures = time_us(iterations, || policy.decide("alice", &groups, "push", &scope, &ctx).allowed)?;
    let request = RequestInput {
        principal: "alice".into(),
        groups: groups.clone(),
        scopes: vec![scope.clone()],
        capabilities: vec![Capability::Push],
        duration_ms: 30 * 60_000,
        reason: "INC-42".into(),
        incident: None,
        overdue_reviews: 0,
        now,
        pending_ttl_ms: 15 * 60_000,
    };
    let request_figures = time_us(iterations, || policy.decide_request(&request).allowed)?;
    let figures = json!({
        "iterations": iterations,
        "token_verify": token_figures,
        "policy_decide": decide_figures,
        "policy_decide_request_1x1": request_figures,
    });
    if as_json {
        print_json(&figures);
    } else {
        let line = |name: &str, v: &serde_json::Value| {
            println!("  {name}: p50 {} us, p99 {} us, mean {} us", v["p50_us"], v["p99_us"], v["mean_us"]);
        };
        println!("core benchmark ({iterations} iterations each)");
        line("offline grant-token verification", &figures["token_verify"]);
        line("one policy decision (push on a git scope)", &figures["policy_decide"]);
        line("a whole request decision (1 scope x 1 capability)", &figures["policy_decide_request_1x1"]);
    }
    Ok(())
}

// ---- `breakglass bench server` ---------------------------------------------

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// The `breakglass serve` child; killed when dropped, so that a benchmark
/// that fails half-way never leaves a server running.
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
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts `breakglass serve` (this same executable) on a free loopback port
/// over `data`; returns it with its URL and the bootstrap admin token.
async fn start_server(data: &std::path::Path) -> CliResult<(ServerProcess, String, String)> {
    start_server_with(data, "bench.breakglass.local/server", &[]).await
}

/// [`start_server`] with another log origin and extra `serve` arguments.
pub(crate) async fn start_server_with(
    data: &std::path::Path,
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

/// Runs a command to completion; its output is kept for the error message.
pub(crate) fn run_tool(cmd: &mut std::process::Command, what: &str) -> CliResult {
    let out =
        cmd.stdin(std::process::Stdio::null()).output().map_err(|e| internal(format!("cannot run {what}: {e}")))?;
    if !out.status.success() {
        return Err(internal(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Makes an unencrypted ed25519 key at `path` with `ssh-keygen`; returns its
/// public key line.
pub(crate) fn new_ssh_key(path: &std::path::Path, comment: &str) -> CliResult<String> {
    run_tool(
        std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]).arg(path),
        "ssh-keygen (is the OpenSSH client installed?)",
    )?;
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .map_err(|e| internal(format!("cannot read the public key {}.pub: {e}", path.display())))?;
    Ok(public.trim().to_owned())
}

/// Logs in as `principal` with the SSH `key`: the challenge signed by `ssh-keygen -Y sign`.
pub(crate) async fn login(
    url: &str,
    principal: &str,
    key: &std::path::Path,
    scratch: &std::path::Path,
) -> CliResult<String> {
    use breakglass_core::api::LoginRequest;
    let client = breakglass_client::Client::new(url, None)?;
    let challenge =
        client.login_challenge(principal).await.map_err(|e| internal(format!("login challenge refused: {e}")))?;
    let message = scratch.join("challenge");
    std::fs::write(&message, challenge.challenge.as_bytes())
        .map_err(|e| internal(format!("cannot write {}: {e}", message.display())))?;
    run_tool(
        std::process::Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", &challenge.namespace, "-f"])
            .arg(key)
            .arg(&message),
        "ssh-keygen -Y sign",
    )?;
    let signature = std::fs::read_to_string(scratch.join("challenge.sig"))
        .map_err(|e| internal(format!("ssh-keygen wrote no signature: {e}")))?;
    let session = client
        .login(&LoginRequest { principal: principal.to_owned(), challenge: challenge.challenge, signature })
        .await
        .map_err(|e| internal(format!("login refused: {e}")))?;
    Ok(session.token)
}

/// A process's memory, from `/proc/<pid>/status`, in bytes.
struct Memory {
    /// VmRSS: resident, in all (anonymous + file-backed + shared).
    rss: u64,
    /// RssAnon: the heap, stacks and other private memory.
    anon: u64,
    /// RssFile: resident pages of mapped files, mostly the executable itself.
    file: u64,
    /// VmHWM: the peak VmRSS.
    peak: u64,
}

fn memory(pid: u32) -> CliResult<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| internal(format!("cannot read /proc/{pid}/status: {e}")))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .ok_or_else(|| internal(format!("no {name} in /proc/{pid}/status")))
    };
    Ok(Memory { rss: field("VmRSS:")?, anon: field("RssAnon:")?, file: field("RssFile:")?, peak: field("VmHWM:")? })
}

/// CPU time (user + system, all threads) a process has used so far, in seconds.
fn cpu_seconds(pid: &str) -> CliResult<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| internal(format!("cannot read /proc/{pid}/stat: {e}")))?;
    // The fields after the command name (which may contain anything, so find its closing parenthesis).
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    match (tick(11), tick(12)) {
        (Some(utime), Some(stime)) => Ok((utime + stime) as f64 / CLOCK_TICKS),
        _ => Err(internal(format!("cannot parse /proc/{pid}/stat"))),
    }
}

/// CPU seconds used by the server and by this process (the client) so far.
fn cpu_split(server: u32) -> CliResult<(f64, f64)> {
    Ok((cpu_seconds(&server.to_string())?, cpu_seconds("self")?))
}

/// A minimal HTTP/1.1 client over one keep-alive connection: requests are
/// pre-encoded bytes, responses must carry a Content-Length (the server's
/// always do). It costs the shared CPUs far less than a full client library,
/// so that what is measured is the server.
struct RawConn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
    /// The body of the last response, in `buf`.
    body: std::ops::Range<usize>,
}

impl RawConn {
    async fn connect(addr: &str) -> CliResult<RawConn> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| internal(format!("cannot connect to {addr}: {e}")))?;
        stream.set_nodelay(true).map_err(|e| internal(format!("cannot set TCP_NODELAY: {e}")))?;
        Ok(RawConn { stream, buf: Vec::with_capacity(4096), body: 0..0 })
    }

    /// A request's bytes.
    fn encode(method: &str, addr: &str, path: &str, token: &str, body: Option<&str>) -> Vec<u8> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n");
        if let Some(body) = body {
            req.push_str(&format!("content-type: application/json\r\ncontent-length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body.unwrap_or_default());
        req.into_bytes()
    }

    /// Sends `request` and reads the whole response; returns its status
    /// (the body is then [`RawConn::body`]).
    async fn roundtrip(&mut self, request: &[u8]) -> CliResult<u16> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let fail = |e: std::io::Error| internal(format!("the connection to the server failed: {e}"));
        self.buf.drain(..self.body.end);
        self.body = 0..0;
        self.stream.write_all(request).await.map_err(fail)?;
        let mut searched = 0;
        let head_end = loop {
            if let Some(i) = self.buf[searched..].windows(4).position(|w| w == b"\r\n\r\n") {
                break searched + i + 4;
            }
            searched = self.buf.len().saturating_sub(3);
            if self.stream.read_buf(&mut self.buf).await.map_err(fail)? == 0 {
                return Err(internal("the server closed the connection"));
            }
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| internal("a response head is not UTF-8"))?;
        let status = head.get(9..12).and_then(|s| s.parse::<u16>().ok());
        let status = status.ok_or_else(|| internal(format!("not an HTTP response: {:?}", head.lines().next())))?;
        let length = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok()).flatten()
        });
        let length = length.ok_or_else(|| internal("a response without Content-Length"))?;
        while self.buf.len() < head_end + length {
            if self.stream.read_buf(&mut self.buf).await.map_err(fail)? == 0 {
                return Err(internal("the server closed the connection mid-response"));
            }
        }
        self.body = head_end..head_end + length;
        Ok(status)
    }

    fn body(&self) -> &[u8] {
        &self.buf[self.body.clone()]
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One connection of the measured phases, with either client.
enum Conn {
    Raw(RawConn),
    Library(breakglass_client::Client),
}

#[derive(Debug, Serialize)]
struct ServerFigures {
    client: &'static str,
    cores: usize,
    requests: u64,
    request_seconds: f64,
    request_ms_p50: f64,
    request_ms_p90: f64,
    request_ms_p99: f64,
    request_ms_max: f64,
    request_server_cpu_ms_each: f64,
    request_client_cpu_ms_each: f64,
    connections: u64,
    checks_seconds: f64,
    checks_ok: u64,
    checks_failed: u64,
    checks_per_second: f64,
    check_ms_p50: f64,
    check_ms_p99: f64,
    check_server_cpu_us_each: f64,
    check_client_cpu_us_each: f64,
    /// CPU cores' worth of time each side used during the status checks.
    check_server_cores_busy: f64,
    check_client_cores_busy: f64,
    rss_bytes_startup: u64,
    rss_bytes_before_load: u64,
    rss_bytes_after_load: u64,
    rss_bytes_peak: u64,
    /// RssAnon at the same three points: VmRSS less the executable's mapped pages.
    rss_anon_bytes_startup: u64,
    rss_anon_bytes_before_load: u64,
    rss_anon_bytes_after_load: u64,
    /// RssFile 2 s after the load: mostly the executable's own code.
    rss_file_bytes_after_load: u64,
    /// With `--breakdown`: the same load on cheaper endpoints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    breakdown: Vec<EndpointFigures>,
}

#[derive(Debug, Serialize)]
struct EndpointFigures {
    endpoint: &'static str,
    work: &'static str,
    per_second: f64,
    ms_p50: f64,
    ms_p99: f64,
    server_cpu_us_each: f64,
}

/// One request of a closed loop: the raw client's bytes, or the grant id for the library client.
struct Target {
    raw: Vec<u8>,
    grant: String,
}

struct LoadResult {
    /// Latencies of the expected answers, sorted.
    lat: Vec<Duration>,
    failed: u64,
    first_failure: Option<String>,
    elapsed: Duration,
    server_cpu: f64,
    client_cpu: f64,
}

impl LoadResult {
    fn answered(&self) -> f64 {
        (self.lat.len() as u64 + self.failed).max(1) as f64
    }

    fn per_second(&self) -> f64 {
        self.lat.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn server_cpu_us_each(&self) -> f64 {
        self.server_cpu / self.answered() * 1e6
    }

    fn figures(&self, endpoint: &'static str, work: &'static str) -> EndpointFigures {
        EndpointFigures {
            endpoint,
            work,
            per_second: self.per_second(),
            ms_p50: ms(percentile(&self.lat, 0.5)),
            ms_p99: ms(percentile(&self.lat, 0.99)),
            server_cpu_us_each: self.server_cpu_us_each(),
        }
    }
}

/// `connections` keep-alive connections, each sending the `targets` (taken
/// round-robin across all connections) one after another for `window`. An
/// answer counts when it is 200 and its body contains `needle`.
#[allow(clippy::too_many_arguments)]
async fn closed_loop(
    client: crate::cli::BenchClient,
    connections: u64,
    addr: &str,
    url: &str,
    token: &str,
    targets: Vec<Target>,
    needle: &'static [u8],
    window: Duration,
    pid: u32,
) -> CliResult<LoadResult> {
    use crate::cli::BenchClient;
    let mut conns = Vec::with_capacity(connections as usize);
    for _ in 0..connections {
        conns.push(match client {
            BenchClient::Raw => Conn::Raw(RawConn::connect(addr).await?),
            // A client of its own per connection: each has its own pool, so one connection.
            BenchClient::Library => Conn::Library(breakglass_client::Client::new(url, Some(token.to_owned()))?),
        });
    }
    let targets = Arc::new(targets);
    let next = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_split(pid)?;
    let started = Instant::now();
    let deadline = started + window;
    let mut tasks = Vec::with_capacity(conns.len());
    for mut conn in conns {
        let (targets, next) = (targets.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(65_536);
            let (mut failed, mut first_failure) = (0u64, None);
            while Instant::now() < deadline {
                let target = &targets[(next.fetch_add(1, Ordering::Relaxed) % targets.len() as u64) as usize];
                let t = Instant::now();
                let ok = match &mut conn {
                    Conn::Raw(c) => {
                        let status = c.roundtrip(&target.raw).await?;
                        let ok = status == 200 && contains(c.body(), needle);
                        if !ok && first_failure.is_none() {
                            first_failure = Some(format!("{status}: {}", String::from_utf8_lossy(c.body())));
                        }
                        ok
                    }
                    Conn::Library(c) => match c.grant_status(&target.grant).await {
                        Ok(s) if s.state.as_str() == "active" => true,
                        Ok(s) => {
                            first_failure.get_or_insert_with(|| format!("state {}", s.state.as_str()));
                            false
                        }
                        Err(e) if e.status().is_some() => {
                            first_failure.get_or_insert_with(|| e.to_string());
                            false
                        }
                        Err(e) => return Err(internal(format!("GET /v1/grants/{{id}}/status: {e}"))),
                    },
                };
                if ok {
                    lat.push(t.elapsed());
                } else {
                    failed += 1;
                }
            }
            Ok::<_, crate::error::CliError>((lat, failed, first_failure))
        }));
    }
    let mut result = LoadResult {
        lat: Vec::new(),
        failed: 0,
        first_failure: None,
        elapsed: Duration::ZERO,
        server_cpu: 0.0,
        client_cpu: 0.0,
    };
    for t in tasks {
        let (lat, failed, first) = t.await.map_err(|e| internal(e.to_string()))??;
        result.lat.extend(lat);
        result.failed += failed;
        result.first_failure = result.first_failure.or(first);
    }
    result.elapsed = started.elapsed();
    let cpu1 = cpu_split(pid)?;
    (result.server_cpu, result.client_cpu) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    result.lat.sort_unstable();
    Ok(result)
}

const BENCH_SCOPE: &str = "git:payments/api@refs/heads/main";
const BENCH_POLICY: &str = r#"// Written by `breakglass bench server`: on-call pushes to main are auto-approved.
@id("bench-auto")
permit (
  principal in Breakglass::Group::"oncall",
  action == Breakglass::Action::"auto-approve",
  resource is Breakglass::GitRef
)
when { resource.ref == "refs/heads/main" };
"#;

pub async fn server(args: crate::cli::BenchServerArgs) -> CliResult {
    use breakglass_client::Client;
    use breakglass_core::api::{CreateApiToken, GrantRequest, GrantView};

    use crate::cli::BenchClient;

    if args.requests == 0 || args.connections == 0 || args.checks_seconds == 0 {
        return Err(bad_input("--requests, --connections and --checks-seconds must be at least 1"));
    }
    if args.breakdown && args.client != BenchClient::Raw {
        return Err(bad_input("--breakdown compares endpoints with the raw client: leave out --client library"));
    }
    let scratch = tempfile::tempdir().map_err(|e| internal(format!("cannot make a scratch directory: {e}")))?;
    let data = scratch.path().join("data");
    let key = scratch.path().join("bench");
    let public_key = new_ssh_key(&key, "bench")?;

    eprintln!("starting breakglass serve on SQLite in {}...", data.display());
    let (srv, url, admin_token) = start_server(&data).await?;
    let pid = srv.pid();
    let mem_startup = memory(pid)?;
    let addr = url.strip_prefix("http://").ok_or_else(|| internal(format!("unexpected server URL {url}")))?.to_owned();

    // Setup: the principal and the auto-approving policy, reloaded through the API.
    let principals =
        format!("[[principal]]\nname = \"bench\"\ngroups = [\"oncall\"]\nssh_keys = [\"{}\"]\n", public_key.trim());
    std::fs::write(data.join("principals.toml"), principals)
        .map_err(|e| internal(format!("cannot write the principals file: {e}")))?;
    std::fs::write(data.join("policy").join("bench-auto.cedar"), BENCH_POLICY)
        .map_err(|e| internal(format!("cannot write the bench policy: {e}")))?;
    let admin = Client::new(&url, Some(admin_token))?;
    admin.reload_policy().await.map_err(|e| internal(format!("policy reload refused: {e}")))?;
    let session = login(&url, "bench", &key, scratch.path()).await?;
    let service = admin
        .create_api_token(&CreateApiToken { name: "bench-status".into(), role: "service".into(), expires_in: None })
        .await
        .map_err(|e| internal(format!("cannot create the service token: {e}")))?
        .token;
    let mem_before_load = memory(pid)?;

    // Phase 1: request to active grant, one request after another over one connection.
    let request = GrantRequest {
        scopes: vec![BENCH_SCOPE.into()],
        capabilities: vec!["push".into()],
        duration: "30m".into(),
        reason: "bench".into(),
        incident: None,
        drill: false,
    };
    let request_body = serde_json::to_string(&request).map_err(|e| internal(e.to_string()))?;
    let request_bytes = RawConn::encode("POST", &addr, "/v1/grants", &session, Some(&request_body));
    let mut conn = match args.client {
        BenchClient::Raw => Conn::Raw(RawConn::connect(&addr).await?),
        BenchClient::Library => Conn::Library(Client::new(&url, Some(session.clone()))?),
    };
    eprintln!("requesting {} grants, one at a time...", args.requests);
    let mut ids = Vec::with_capacity(args.requests as usize);
    let mut lat = Vec::with_capacity(args.requests as usize);
    let cpu0 = cpu_split(pid)?;
    let started = Instant::now();
    for _ in 0..args.requests {
        let t = Instant::now();
        let grant = match &mut conn {
            Conn::Raw(c) => {
                let status = c.roundtrip(&request_bytes).await?;
                if status != 201 {
                    let body = String::from_utf8_lossy(c.body());
                    return Err(internal(format!("POST /v1/grants answered {status}, not 201: {body}")));
                }
                serde_json::from_slice::<GrantView>(c.body())
                    .map_err(|e| internal(format!("POST /v1/grants answered an unexpected body: {e}")))?
            }
            Conn::Library(c) => {
                c.request_grant(&request).await.map_err(|e| internal(format!("POST /v1/grants: {e}")))?
            }
        };
        lat.push(t.elapsed());
        if grant.state.as_str() != "active" {
            return Err(internal(format!(
                "grant {} is {}, not active: is it auto-approved?",
                grant.id,
                grant.state.as_str()
            )));
        }
        ids.push(grant.id);
    }
    let request_elapsed = started.elapsed();
    let cpu1 = cpu_split(pid)?;
    drop(conn);
    lat.sort_unstable();

    // Phase 2: grant-status checks from concurrent keep-alive connections.
    eprintln!("checking grant status over {} connections for {} s...", args.connections, args.checks_seconds);
    let window = Duration::from_secs(args.checks_seconds);
    let targets: Vec<Target> = ids
        .iter()
        .map(|id| Target {
            raw: RawConn::encode("GET", &addr, &format!("/v1/grants/{id}/status"), &service, None),
            grant: id.clone(),
        })
        .collect();
    let checks =
        closed_loop(args.client, args.connections, &addr, &url, &service, targets, br#""state":"active""#, window, pid)
            .await?;
    if let Some(first) = &checks.first_failure {
        eprintln!("warning: {} status checks were not 200 with an active grant; the first: {first}", checks.failed);
    }

    // Optionally, the same load on cheaper endpoints, to see where a status check's time goes.
    let mut breakdown = Vec::new();
    if args.breakdown {
        let endpoints: [(&str, &str, &[u8]); 2] =
            [("/healthz", "HTTP only", br#""status":"ok""#), ("/v1/whoami", "HTTP + authentication", br#""name":"#)];
        for (path, what, needle) in endpoints {
            eprintln!("GET {path} over {} connections for {} s...", args.connections, args.checks_seconds);
            let targets =
                vec![Target { raw: RawConn::encode("GET", &addr, path, &service, None), grant: String::new() }];
            let r =
                closed_loop(BenchClient::Raw, args.connections, &addr, &url, &service, targets, needle, window, pid)
                    .await?;
            breakdown.push(r.figures(path, what));
        }
        breakdown.push(checks.figures("/v1/grants/{id}/status", "HTTP + authentication + grant read"));
    }

    // Idle memory, once the load has stopped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mem_after_load = memory(pid)?;
    drop(srv);

    let figures = ServerFigures {
        client: match args.client {
            BenchClient::Raw => "raw",
            BenchClient::Library => "library",
        },
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        requests: args.requests,
        request_seconds: request_elapsed.as_secs_f64(),
        request_ms_p50: ms(percentile(&lat, 0.5)),
        request_ms_p90: ms(percentile(&lat, 0.9)),
        request_ms_p99: ms(percentile(&lat, 0.99)),
        request_ms_max: ms(lat.last().copied().unwrap_or_default()),
        request_server_cpu_ms_each: (cpu1.0 - cpu0.0) * 1e3 / args.requests as f64,
        request_client_cpu_ms_each: (cpu1.1 - cpu0.1) * 1e3 / args.requests as f64,
        connections: args.connections,
        checks_seconds: checks.elapsed.as_secs_f64(),
        checks_ok: checks.lat.len() as u64,
        checks_failed: checks.failed,
        checks_per_second: checks.per_second(),
        check_ms_p50: ms(percentile(&checks.lat, 0.5)),
        check_ms_p99: ms(percentile(&checks.lat, 0.99)),
        check_server_cpu_us_each: checks.server_cpu_us_each(),
        check_client_cpu_us_each: checks.client_cpu / checks.answered() * 1e6,
        check_server_cores_busy: checks.server_cpu / checks.elapsed.as_secs_f64(),
        check_client_cores_busy: checks.client_cpu / checks.elapsed.as_secs_f64(),
        rss_bytes_startup: mem_startup.rss,
        rss_bytes_before_load: mem_before_load.rss,
        rss_bytes_after_load: mem_after_load.rss,
        rss_bytes_peak: mem_after_load.peak,
        rss_anon_bytes_startup: mem_startup.anon,
        rss_anon_bytes_before_load: mem_before_load.anon,
        rss_anon_bytes_after_load: mem_after_load.anon,
        rss_file_bytes_after_load: mem_after_load.file,
        breakdown,
    };
    if args.json {
        print_json(&figures);
        return Ok(());
    }
    let f = &figures;
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "server benchmark: a real `breakglass serve` on SQLite (WAL, synchronous=FULL), {} HTTP/1.1 client, {} cores shared by client and server",
        f.client, f.cores
    );
    println!(
        "  request to active grant (auto-approved, durable), {} requests one at a time over one connection:",
        f.requests
    );
    println!(
        "    latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({:.0} grants/s)",
        f.request_ms_p50,
        f.request_ms_p90,
        f.request_ms_p99,
        f.request_ms_max,
        f.requests as f64 / f.request_seconds
    );
    println!(
        "    targets: p50 <= 5 ms {}, p99 <= 20 ms {}; CPU per request: server {:.2} ms, client {:.2} ms",
        met(f.request_ms_p50 <= 5.0),
        met(f.request_ms_p99 <= 20.0),
        f.request_server_cpu_ms_each,
        f.request_client_cpu_ms_each
    );
    println!(
        "  grant-status checks, {} keep-alive connections for {:.1} s: {:.0} checks/s ({} answered 200, {} other)",
        f.connections, f.checks_seconds, f.checks_per_second, f.checks_ok, f.checks_failed
    );
    println!(
        "    latency p50 {:.2} ms, p99 {:.2} ms; target >= 10,000/s {}",
        f.check_ms_p50,
        f.check_ms_p99,
        met(f.checks_per_second >= 10_000.0)
    );
    println!(
        "    CPU per check: server {:.0} us, client {:.0} us; cores busy: server {:.2}, client {:.2}",
        f.check_server_cpu_us_each, f.check_client_cpu_us_each, f.check_server_cores_busy, f.check_client_cores_busy
    );
    println!(
        "  server memory (VmRSS): after startup {:.1} MB, after setup {:.1} MB, 2 s after the load {:.1} MB, peak {:.1} MB; idle target <= 30 MB {}",
        mb(f.rss_bytes_startup),
        mb(f.rss_bytes_before_load),
        mb(f.rss_bytes_after_load),
        mb(f.rss_bytes_peak),
        met(f.rss_bytes_before_load.max(f.rss_bytes_after_load) <= 30_000_000)
    );
    println!(
        "    of which anonymous (RssAnon): {:.1} MB, {:.1} MB, {:.1} MB; the rest is mapped files, mostly the executable ({:.1} MB)",
        mb(f.rss_anon_bytes_startup),
        mb(f.rss_anon_bytes_before_load),
        mb(f.rss_anon_bytes_after_load),
        mb(f.rss_file_bytes_after_load)
    );
    if !f.breakdown.is_empty() {
        println!("  breakdown: the same load ({} connections) on each endpoint", f.connections);
        for e in &f.breakdown {
            println!(
                "    GET {:<24} {:<36} {:>7.0}/s, p50 {:.2} ms, p99 {:.2} ms, server CPU {:.0} us each",
                e.endpoint, e.work, e.per_second, e.ms_p50, e.ms_p99, e.server_cpu_us_each
            );
        }
    }
    Ok(())
}

// ---- `breakglass bench git` ------------------------------------------------

/// The repository's name in scopes, and the scope of the benchmark's grant.
const GIT_BENCH_REPO: &str = "bench/repo";
const GIT_BENCH_SCOPE: &str = "git:bench/repo@refs/heads/main";
/// Commits in each push of the medium protected scenario (the target's figure).
const GIT_BENCH_MEDIUM: u32 = 10;

/// `git` with the environment of the benchmark's pushes: see [`clean_cmd`].
pub(crate) fn git_cmd() -> std::process::Command {
    clean_cmd("git")
}

/// `program` with no `BREAKGLASS_*` variable of the calling shell (except
/// `BREAKGLASS_LOG`), none of the identity variables the hooks read, and no
/// prompts: the hooks see only what the benchmark sets.
pub(crate) fn clean_cmd(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("BREAKGLASS_") && n != "BREAKGLASS_LOG") {
            cmd.env_remove(name);
        }
    }
    for v in crate::git::hook::default_identity() {
        cmd.env_remove(v);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0").stdin(std::process::Stdio::null());
    cmd
}

/// Runs `git --git-dir DIR ARGS…`, feeding `input`; its standard output.
fn git_in(dir: &std::path::Path, args: &[&str], input: Option<&[u8]>) -> CliResult<String> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut cmd = git_cmd();
    cmd.arg("--git-dir").arg(dir).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let what = format!("git {}", args.first().copied().unwrap_or_default());
    let mut child = cmd.spawn().map_err(|e| internal(format!("cannot run {what}: {e}")))?;
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        stdin.write_all(input).map_err(|e| internal(format!("cannot feed {what}: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| internal(format!("{what} failed: {e}")))?;
    if !out.status.success() {
        return Err(internal(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Makes commits quickly in the (bare) work repository with `git fast-import`.
struct CommitMaker {
    work: std::path::PathBuf,
    /// Committer time of the last commit made, in seconds: every commit is new.
    clock: u64,
}

impl CommitMaker {
    /// `n` commits in a row on top of `parent` (none: a root commit first),
    /// each changing `file` and, with `grant`, carrying the trailer
    /// `Break-Glass: <grant>`; the last one's id.
    fn make(
        &mut self,
        parent: Option<&str>,
        n: u32,
        grant: Option<&str>,
        file: &str,
        label: &str,
    ) -> CliResult<String> {
        use std::fmt::Write as _;
        let mut s = String::from("reset refs/heads/build\n");
        if let Some(p) = parent {
            let _ = writeln!(s, "from {p}");
        }
        s.push('\n');
        for i in 1..=n {
            self.clock += 1;
            let msg = match grant {
                Some(g) => format!("{label}: change {i} of {n}\n\nBreak-Glass: {g}\n"),
                None => format!("{label}: change {i} of {n}\n"),
            };
            let content = format!("{label} {i}\n");
            let _ = write!(
                s,
                "commit refs/heads/build\ncommitter Bench <bench@example.com> {} +0000\ndata {}\n{msg}\nM 100644 inline {file}\ndata {}\n{content}\n",
                self.clock,
                msg.len(),
                content.len()
            );
        }
        git_in(&self.work, &["fast-import", "--quiet", "--force"], Some(s.as_bytes()))?;
        git_in(&self.work, &["rev-parse", "refs/heads/build"], None)
    }
}

/// The pushes of the benchmark: from the work repository, as `user`, with
/// the local transport (receive-pack and its hooks inherit the environment).
struct Pusher {
    work: std::path::PathBuf,
    base: std::path::PathBuf,
    hooked: std::path::PathBuf,
    user: &'static str,
    /// With `--breakdown`: git's trace2 event files go here (both repositories' pushes alike).
    trace: Option<std::path::PathBuf>,
}

/// The wall times of one scenario's pushes and, with `--breakdown`, of the
/// hooks inside the hooked pushes.
#[derive(Default)]
struct PushSamples {
    base: Vec<Duration>,
    hooked: Vec<Duration>,
    pre_receive: Vec<Duration>,
    post_receive: Vec<Duration>,
}

impl Pusher {
    /// One timed `git push -q DEST REFSPEC`; it must be accepted.
    fn push(&self, dest: &std::path::Path, refspec: &str) -> CliResult<Duration> {
        let mut cmd = git_cmd();
        cmd.arg("--git-dir").arg(&self.work).args(["push", "-q"]).arg(dest).arg(refspec);
        cmd.env("BREAKGLASS_USER", self.user);
        if let Some(dir) = &self.trace {
            cmd.env("GIT_TRACE2_EVENT", dir);
        }
        let t = Instant::now();
        let out = cmd.output().map_err(|e| internal(format!("cannot run git push: {e}")))?;
        let took = t.elapsed();
        if !out.status.success() {
            return Err(internal(format!(
                "git push {refspec} to {} was refused ({}): {}",
                dest.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(took)
    }

    /// The same push to both repositories, the `k`th of a scenario: even
    /// ones go to the repository without hooks first, odd ones second, so
    /// that drift and caching favour neither.
    fn pair(&self, k: u32, refspec: &str, samples: &mut PushSamples) -> CliResult {
        for hooked in if k.is_multiple_of(2) { [false, true] } else { [true, false] } {
            self.clear_trace()?;
            if hooked {
                samples.hooked.push(self.push(&self.hooked, refspec)?);
                if self.trace.is_some() {
                    let (pre, post) = self.hook_times()?;
                    samples.pre_receive.extend(pre);
                    samples.post_receive.extend(post);
                }
            } else {
                samples.base.push(self.push(&self.base, refspec)?);
            }
        }
        Ok(())
    }

    /// Empties the trace2 directory. (It stays: git writes to a file of that
    /// name when there is no directory, and a detached `git maintenance` of
    /// the previous push may still be writing into it.)
    fn clear_trace(&self) -> CliResult {
        let Some(dir) = &self.trace else { return Ok(()) };
        if dir.is_file() {
            let _ = std::fs::remove_file(dir);
        }
        std::fs::create_dir_all(dir).map_err(|e| internal(format!("cannot create {}: {e}", dir.display())))?;
        let rd = std::fs::read_dir(dir).map_err(|e| internal(format!("cannot read {}: {e}", dir.display())))?;
        for file in rd.flatten() {
            let _ = std::fs::remove_file(file.path());
        }
        Ok(())
    }

    /// How long receive-pack waited for each hook, from git's trace2 events
    /// (`child_start` of class `hook`, then its `child_exit`'s `t_rel`).
    fn hook_times(&self) -> CliResult<(Option<Duration>, Option<Duration>)> {
        let Some(dir) = &self.trace else { return Ok((None, None)) };
        let rd = std::fs::read_dir(dir).map_err(|e| internal(format!("cannot read {}: {e}", dir.display())))?;
        let (mut pre, mut post) = (None, None);
        for file in rd.flatten() {
            let Ok(text) = std::fs::read_to_string(file.path()) else { continue };
            let mut hooks = std::collections::HashMap::new();
            for line in text.lines() {
                let Ok(ev) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                match ev["event"].as_str() {
                    Some("child_start") if ev["child_class"] == "hook" => {
                        hooks.insert(ev["child_id"].as_u64(), ev["hook_name"].as_str().unwrap_or_default().to_owned());
                    }
                    Some("child_exit") => {
                        let took = ev["t_rel"].as_f64().map(Duration::from_secs_f64);
                        match hooks.get(&ev["child_id"].as_u64()).map(String::as_str) {
                            Some("pre-receive") => pre = took,
                            Some("post-receive") => post = took,
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok((pre, post))
    }
}

/// Runs `cmd` `runs` times; the sorted wall times. Each run must succeed.
fn time_runs(runs: u32, what: &str, mut cmd: impl FnMut() -> std::process::Command) -> CliResult<Vec<Duration>> {
    use std::process::Stdio;
    let mut lat = Vec::with_capacity(runs as usize);
    for _ in 0..runs.max(1) {
        let mut c = cmd();
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        let t = Instant::now();
        let out = c.output().map_err(|e| internal(format!("cannot run {what}: {e}")))?;
        lat.push(t.elapsed());
        if !out.status.success() {
            return Err(internal(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
    }
    lat.sort_unstable();
    Ok(lat)
}

/// Runs `cmd` with `input` on its standard input `runs` times; the sorted wall times.
fn time_runs_with_input(
    runs: u32,
    what: &str,
    input: &[u8],
    mut cmd: impl FnMut() -> std::process::Command,
) -> CliResult<Vec<Duration>> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut lat = Vec::with_capacity(runs as usize);
    for _ in 0..runs.max(1) {
        let mut c = cmd();
        c.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let t = Instant::now();
        let mut child = c.spawn().map_err(|e| internal(format!("cannot run {what}: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).map_err(|e| internal(format!("cannot feed {what}: {e}")))?;
        }
        let out = child.wait_with_output().map_err(|e| internal(format!("{what} failed: {e}")))?;
        lat.push(t.elapsed());
        if !out.status.success() {
            return Err(internal(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
    }
    lat.sort_unstable();
    Ok(lat)
}

/// What the server recorded for the push that set `refs/heads/main` to `new`,
/// in the log entries from `from` on.
#[derive(Debug, Default, Serialize)]
struct Recorded {
    accepted_decisions: u64,
    push_events: u64,
    commits: u64,
}

async fn recorded(client: &breakglass_client::Client, from: u64, new: &str) -> CliResult<(Recorded, u64)> {
    let size = client.checkpoint().await.map_err(|e| internal(format!("GET /v1/log/checkpoint: {e}")))?.size;
    let mut r = Recorded::default();
    for i in from..size {
        let e = client.log_entry(i).await.map_err(|e| internal(format!("GET /v1/log/entries/{i}: {e}")))?.entry;
        if e["data"]["new"] != new || e["data"]["repo"] != GIT_BENCH_REPO {
            continue;
        }
        match e["kind"].as_str() {
            Some("git.push.decision") if e["data"]["accepted"] == true => r.accepted_decisions += 1,
            Some("git.push") => {
                r.push_events += 1;
                r.commits += e["data"]["commits"].as_array().map_or(0, |c| c.len() as u64);
            }
            _ => {}
        }
    }
    Ok((r, size))
}

/// The figures of one scenario: the same pushes to the repository without
/// hooks and to the one with them, interleaved.
#[derive(Debug, Serialize)]
struct PushFigures {
    scenario: &'static str,
    pushes: u32,
    commits_per_push: u32,
    without_hooks_ms_p50: f64,
    without_hooks_ms_p90: f64,
    with_hooks_ms_p50: f64,
    with_hooks_ms_p90: f64,
    /// p50 with hooks less p50 without: the figure the target is about.
    added_ms_p50: f64,
    added_ms_p90: f64,
    target_added_ms_p50: f64,
    met: bool,
    /// With `--breakdown`: how long receive-pack waited for each hook (git's trace2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pre_receive: Option<Spread>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_receive: Option<Spread>,
}

impl PushFigures {
    fn new(scenario: &'static str, commits: u32, target: f64, mut s: PushSamples) -> Self {
        for v in [&mut s.base, &mut s.hooked, &mut s.pre_receive, &mut s.post_receive] {
            v.sort_unstable();
        }
        let (b50, b90) = (ms(percentile(&s.base, 0.5)), ms(percentile(&s.base, 0.9)));
        let (h50, h90) = (ms(percentile(&s.hooked, 0.5)), ms(percentile(&s.hooked, 0.9)));
        let spread = |v: &[Duration]| (!v.is_empty()).then(|| Spread::of(v));
        PushFigures {
            scenario,
            pushes: s.hooked.len() as u32,
            commits_per_push: commits,
            without_hooks_ms_p50: b50,
            without_hooks_ms_p90: b90,
            with_hooks_ms_p50: h50,
            with_hooks_ms_p90: h90,
            added_ms_p50: h50 - b50,
            added_ms_p90: h90 - b90,
            target_added_ms_p50: target,
            met: h50 - b50 <= target,
            pre_receive: spread(&s.pre_receive),
            post_receive: spread(&s.post_receive),
        }
    }
}

#[derive(Debug, Serialize)]
struct Spread {
    ms_p50: f64,
    ms_p90: f64,
}

impl Spread {
    fn of(sorted: &[Duration]) -> Spread {
        Spread { ms_p50: ms(percentile(sorted, 0.5)), ms_p90: ms(percentile(sorted, 0.9)) }
    }
}

#[derive(Debug, Serialize)]
struct GitFigures {
    cores: usize,
    git_version: String,
    scenarios: Vec<PushFigures>,
    /// What the server recorded for each large push (checked: every commit, once).
    large_push_events_each: Vec<u64>,
    large_push_commits_recorded_each: Vec<u64>,
    startup_runs: u32,
    /// `breakglass --version`: process start, argument parsing, exit.
    breakglass_version: Spread,
    /// `git --version`, for comparison.
    git_version_cmd: Spread,
    /// The installed `pre-receive` / `post-receive` scripts run by hand in the
    /// repository with hooks, for one unprotected update: what each hook costs
    /// an unprotected push, without git around it.
    pre_receive_unprotected: Spread,
    post_receive_unprotected: Spread,
}

pub async fn git(args: crate::cli::BenchGitArgs) -> CliResult {
    use breakglass_client::Client;
    use breakglass_core::api::{ApproveRequest, CreateApiToken, GrantRequest};

    if args.pushes == 0 || args.large_pushes == 0 || args.large_commits == 0 || args.startup_runs == 0 {
        return Err(bad_input("--pushes, --large-pushes, --large-commits and --startup-runs must be at least 1"));
    }
    let exe = std::env::current_exe().map_err(|e| internal(format!("cannot find this executable: {e}")))?;
    let git_version = git_in(std::path::Path::new("."), &["--version"], None)
        .map_err(|e| internal(format!("{e} (is git installed?)")))?;
    let scratch = tempfile::tempdir().map_err(|e| internal(format!("cannot make a scratch directory: {e}")))?;
    let root = scratch.path();
    let data = root.join("data");

    // Two principals: a requester in oncall, an approver in approvers (the
    // example policy wants one approval for a push to main).
    let mut keys = Vec::new();
    for name in ["alice", "bob"] {
        let dir = root.join(format!("login-{name}"));
        std::fs::create_dir(&dir).map_err(|e| internal(format!("cannot create {}: {e}", dir.display())))?;
        let key = dir.join("key");
        let public = new_ssh_key(&key, name)?;
        keys.push((dir, key, public));
    }
    eprintln!("starting breakglass serve on SQLite in {}...", data.display());
    let (srv, url, admin_token) = start_server(&data).await?;
    let principals = format!(
        "[[principal]]\nname = \"alice\"\ngroups = [\"oncall\"]\nssh_keys = [\"{}\"]\n\n\
         [[principal]]\nname = \"bob\"\ngroups = [\"approvers\"]\nssh_keys = [\"{}\"]\n",
        keys[0].2, keys[1].2
    );
    std::fs::write(data.join("principals.toml"), principals)
        .map_err(|e| internal(format!("cannot write the principals file: {e}")))?;
    let admin = Client::new(&url, Some(admin_token))?;
    admin.reload_policy().await.map_err(|e| internal(format!("policy reload refused: {e}")))?;
    let alice = Client::new(&url, Some(login(&url, "alice", &keys[0].1, &keys[0].0).await?))?;
    let bob = Client::new(&url, Some(login(&url, "bob", &keys[1].1, &keys[1].0).await?))?;
    let request = GrantRequest {
        scopes: vec![GIT_BENCH_SCOPE.into()],
        capabilities: vec!["push".into()],
        duration: "60m".into(),
        reason: "bench git: hook overhead".into(),
        incident: None,
        drill: false,
    };
    let grant = alice.request_grant(&request).await.map_err(|e| internal(format!("grant request refused: {e}")))?;
    let approved = bob
        .approve(&grant.id, &ApproveRequest { comment: None })
        .await
        .map_err(|e| internal(format!("approval refused: {e}")))?;
    if approved.state.as_str() != "active" {
        return Err(internal(format!(
            "grant {} is {} after one approval, not active",
            grant.id,
            approved.state.as_str()
        )));
    }
    let g = grant.id;
    let service = admin
        .create_api_token(&CreateApiToken { name: "bench-git-hooks".into(), role: "service".into(), expires_in: None })
        .await
        .map_err(|e| internal(format!("cannot create the hooks' service token: {e}")))?
        .token;
    let token_file = root.join("hook-token");
    // 0600 from the start: `git install` and the hooks refuse a token file others can read.
    crate::git::hook::write_private(&token_file, service.as_bytes())
        .map_err(|e| internal(format!("cannot write the token file: {e}")))?;

    // The repositories: without hooks, with them, and the one pushed from.
    let (base, hooked, work) = (root.join("base.git"), root.join("hooked.git"), root.join("work.git"));
    for repo in [&base, &hooked, &work] {
        let mut c = git_cmd();
        c.args(["init", "-q", "--bare", "-b", "main"]).arg(repo);
        run_tool(&mut c, "git init --bare")?;
    }
    let mut install = std::process::Command::new(&exe);
    install
        .args(["git", "install", "--repo"])
        .arg(&hooked)
        .args(["--name", GIT_BENCH_REPO, "--protect", "refs/heads/main", "--server", &url, "--token-file"])
        .arg(&token_file)
        .arg("--jwks")
        .arg(data.join("grant-token.jwks.json"));
    run_tool(&mut install, "breakglass git install")?;
    let mut maker = CommitMaker { work: work.clone(), clock: 1_795_262_400 };
    let trace = args.breakdown.then(|| root.join("trace2"));
    let pusher = Pusher { work, base, hooked: hooked.clone(), user: "alice", trace };
    pusher.clear_trace()?;

    // main in both, under the grant; then a check that the hooks are on: an
    // untagged commit is refused in the repository with hooks.
    let first = maker.make(None, 1, Some(&g), "README", "initial")?;
    for dest in [&pusher.base, &pusher.hooked] {
        pusher.push(dest, &format!("{first}:refs/heads/main"))?;
    }
    let untagged = maker.make(Some(&first), 1, None, "README", "untagged")?;
    if pusher.push(&pusher.hooked, &format!("{untagged}:refs/heads/main")).is_ok() {
        return Err(internal("the hooks accepted an untagged commit on protected main: are they installed?"));
    }

    // (a) An unprotected push: one new commit to a new feature branch.
    eprintln!("(a) {} unprotected pushes of 1 commit to each repository...", args.pushes);
    let mut samples = PushSamples::default();
    for k in 0..args.pushes {
        let c = maker.make(Some(&first), 1, None, "feature.txt", &format!("feature-{k}"))?;
        pusher.pair(k, &format!("{c}:refs/heads/feature-{k}"), &mut samples)?;
    }
    let unprotected = PushFigures::new("unprotected push, 1 commit, new branch", 1, 5.0, samples);

    // (b) A 10-commit push to protected main under the grant.
    eprintln!("(b) {} protected pushes of {GIT_BENCH_MEDIUM} commits to each repository...", args.pushes);
    let mut tip = first.clone();
    let mut from = admin.checkpoint().await.map_err(|e| internal(format!("GET /v1/log/checkpoint: {e}")))?.size;
    let mut samples = PushSamples::default();
    for k in 0..args.pushes {
        let c = maker.make(Some(&tip), GIT_BENCH_MEDIUM, Some(&g), "src/fix.txt", &format!("fix-{k}"))?;
        pusher.pair(k, &format!("{c}:refs/heads/main"), &mut samples)?;
        let (r, size) = recorded(&admin, from, &c).await?;
        if r.accepted_decisions != 1 || r.commits != u64::from(GIT_BENCH_MEDIUM) {
            return Err(internal(format!("the server did not record protected push {k} as expected: {r:?}")));
        }
        (tip, from) = (c, size);
    }
    let medium = PushFigures::new("protected push, 10 commits, grant", GIT_BENCH_MEDIUM, 50.0, samples);

    // (c) A large push to protected main under the grant: the hook splits its
    // commit records into several events; every commit must be recorded.
    eprintln!("(c) {} protected pushes of {} commits to each repository...", args.large_pushes, args.large_commits);
    let mut samples = PushSamples::default();
    let (mut events_each, mut commits_each) = (Vec::new(), Vec::new());
    for k in 0..args.large_pushes {
        let c = maker.make(Some(&tip), args.large_commits, Some(&g), "src/big.txt", &format!("big-{k}"))?;
        pusher.pair(k, &format!("{c}:refs/heads/main"), &mut samples)?;
        let (r, size) = recorded(&admin, from, &c).await?;
        if r.accepted_decisions != 1 || r.commits != u64::from(args.large_commits) {
            return Err(internal(format!(
                "the server did not record large push {k} as expected ({} commits): {r:?}",
                args.large_commits
            )));
        }
        events_each.push(r.push_events);
        commits_each.push(r.commits);
        (tip, from) = (c, size);
    }
    let large_name = if args.large_commits == 1000 {
        "protected push, 1,000 commits, grant"
    } else {
        "protected push, large, grant"
    };
    let large = PushFigures::new(large_name, args.large_commits, 300.0, samples);

    // (d) Start-up, and each hook alone on an unprotected update.
    eprintln!("(d) start-up: {} runs each...", args.startup_runs);
    let version = time_runs(args.startup_runs, "breakglass --version", || {
        let mut c = std::process::Command::new(&exe);
        c.arg("--version");
        c
    })?;
    let git_v = time_runs(args.startup_runs, "git --version", || {
        let mut c = git_cmd();
        c.arg("--version");
        c
    })?;
    let line = format!("{} {first} refs/heads/bench-probe\n", "0".repeat(first.len()));
    let hook = |name: &'static str| {
        let hooked = hooked.clone();
        move || {
            // The installed hook script, run as receive-pack runs it: in the
            // repository, with GIT_DIR set.
            let mut c = clean_cmd(hooked.join("hooks").join(name));
            c.current_dir(&hooked).env("GIT_DIR", ".").env("BREAKGLASS_USER", "alice");
            c
        }
    };
    let pre = time_runs_with_input(args.startup_runs, "the pre-receive hook", line.as_bytes(), hook("pre-receive"))?;
    let post = time_runs_with_input(args.startup_runs, "the post-receive hook", line.as_bytes(), hook("post-receive"))?;
    drop(srv);

    let figures = GitFigures {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        git_version,
        scenarios: vec![unprotected, medium, large],
        large_push_events_each: events_each,
        large_push_commits_recorded_each: commits_each,
        startup_runs: args.startup_runs,
        breakglass_version: Spread::of(&version),
        git_version_cmd: Spread::of(&git_v),
        pre_receive_unprotected: Spread::of(&pre),
        post_receive_unprotected: Spread::of(&post),
    };
    if args.json {
        print_json(&figures);
        return Ok(());
    }
    let f = &figures;
    println!(
        "git hooks benchmark: real `git push` (local transport) to a bare repository with the breakglass hooks and to one without, the same commits to both, interleaved; a real `breakglass serve` on SQLite; {}; {} cores",
        f.git_version, f.cores
    );
    println!(
        "  {:<40} {:>6}  {:>17}  {:>17}  {:>17}  {:>8}",
        "scenario", "pushes", "without p50 / p90", "with p50 / p90", "added p50 / p90", "target"
    );
    for s in &f.scenarios {
        println!(
            "  {:<40} {:>6}  {:>7.1} / {:>6.1} ms  {:>7.1} / {:>6.1} ms  {:>7.1} / {:>6.1} ms  <= {:>3.0} ms {}",
            s.scenario,
            s.pushes,
            s.without_hooks_ms_p50,
            s.without_hooks_ms_p90,
            s.with_hooks_ms_p50,
            s.with_hooks_ms_p90,
            s.added_ms_p50,
            s.added_ms_p90,
            s.target_added_ms_p50,
            if s.met { "met" } else { "MISSED" }
        );
    }
    if f.scenarios.iter().any(|s| s.pre_receive.is_some()) {
        println!("  inside receive-pack (git's trace2 events, on in every push of this run), the hooks took:");
        for s in &f.scenarios {
            if let (Some(pre), Some(post)) = (&s.pre_receive, &s.post_receive) {
                println!(
                    "    {:<40} pre-receive p50 {:.1} ms, p90 {:.1} ms; post-receive p50 {:.1} ms, p90 {:.1} ms",
                    s.scenario, pre.ms_p50, pre.ms_p90, post.ms_p50, post.ms_p90
                );
            }
        }
    }
    println!(
        "  each large push ({} commits) was recorded in {:?} git.push event(s), {:?} commits (checked)",
        args.large_commits, f.large_push_events_each, f.large_push_commits_recorded_each
    );
    println!(
        "  start-up, {} runs: breakglass --version p50 {:.2} ms, p90 {:.2} ms; git --version p50 {:.2} ms, p90 {:.2} ms",
        f.startup_runs,
        f.breakglass_version.ms_p50,
        f.breakglass_version.ms_p90,
        f.git_version_cmd.ms_p50,
        f.git_version_cmd.ms_p90
    );
    println!(
        "  each hook alone on one unprotected update: pre-receive p50 {:.2} ms, p90 {:.2} ms; post-receive p50 {:.2} ms, p90 {:.2} ms",
        f.pre_receive_unprotected.ms_p50,
        f.pre_receive_unprotected.ms_p90,
        f.post_receive_unprotected.ms_p50,
        f.post_receive_unprotected.ms_p90
    );
    Ok(())
}
