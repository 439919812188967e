//! `breakglass bench server`: a real `breakglass serve` on SQLite under
//! load: request to active grant one at a time, then grant-status checks
//! from concurrent keep-alive connections, with the server's CPU time and
//! memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::measure::{cpu_split, memory, ms, percentile};
use super::start_server;
use crate::error::{CliResult, bad_input, internal};
use crate::print_json;
use crate::sandbox::{login, new_ssh_key};

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
