//! `breakglass bench incident`: from an incident being recorded to an
//! auto-approved grant being active. A real `breakglass serve` (SQLite,
//! scratch data directory) with the generic incident receiver configured
//! receives a signed severity-1 incident naming the benchmark principal as
//! responder; then the principal asks for grants, one after another, each
//! approved by policy because of that incident (the server picks it), and
//! the request's round trip is timed at the client. The webhook's own round
//! trip (authentication, parsing, recording) is timed too.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::measure::percentile;
use super::{AliceSandbox, start_with_alice};
use crate::error::{CliResult, bad_input, internal};
use crate::print_json;

const SECRET: &str = "bench-incident-secret-0123456789";
const SCOPE: &str = "git:payments/api@refs/heads/main";

#[derive(Debug, Serialize)]
struct IncidentFigures {
    webhooks: u32,
    webhook_ms_p50: f64,
    webhook_ms_p99: f64,
    requests: u32,
    request_to_active_ms_p50: f64,
    request_to_active_ms_p99: f64,
    request_to_active_ms_mean: f64,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// POSTs a signed generic incident; its status and body.
async fn send(http: &wire::Http, url: &str, body: &str) -> CliResult<(u16, String)> {
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let sig = breakglass_core::incident::sign_generic(SECRET.as_bytes(), ts, body.as_bytes());
    http.post(
        &format!("{url}/v1/incidents/generic"),
        body,
        &[("x-breakglass-timestamp", ts.to_string()), ("x-breakglass-signature", sig)],
    )
    .await
}

mod wire {
    //! The benchmark's webhook sender, a new connection per delivery as a
    //! provider makes it, whose answer (the receipt) is read back.
    use crate::error::{CliResult, internal};

    pub struct Http(pub std::net::SocketAddr);

    impl Http {
        /// One HTTP/1.1 request on a new connection.
        pub async fn post(&self, url: &str, body: &str, headers: &[(&str, String)]) -> CliResult<(u16, String)> {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let path = url.split_once("://").and_then(|(_, r)| r.find('/').map(|i| &r[i..])).unwrap_or("/");
            let mut head = format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                self.0,
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let mut s = tokio::net::TcpStream::connect(self.0).await.map_err(|e| internal(format!("connect: {e}")))?;
            s.write_all(head.as_bytes()).await.map_err(|e| internal(e.to_string()))?;
            s.write_all(body.as_bytes()).await.map_err(|e| internal(e.to_string()))?;
            let mut res = Vec::new();
            s.read_to_end(&mut res).await.map_err(|e| internal(e.to_string()))?;
            let text = String::from_utf8_lossy(&res).into_owned();
            let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            let body = text.split_once("\r\n\r\n").map_or(String::new(), |x| x.1.to_owned());
            Ok((status, body))
        }
    }
}

pub async fn incident(args: crate::cli::BenchIncidentArgs) -> CliResult {
    use breakglass_core::api::GrantRequest;
    if args.requests == 0 || args.webhooks == 0 {
        return Err(bad_input("--requests and --webhooks must be at least 1"));
    }
    let scratch = tempfile::tempdir().map_err(|e| internal(format!("cannot make a scratch directory: {e}")))?;
    let data = scratch.path().join("data");
    std::fs::create_dir(&data).map_err(|e| internal(format!("cannot make {}: {e}", data.display())))?;
    // It holds a secret: owner-only, or the server refuses it (issue 14).
    crate::datadir::create_file(
        &data.join("breakglass.toml"),
        format!("[log]\norigin = \"bench.breakglass.local/server\"\n\n[incidents]\ngeneric_secrets = [\"{SECRET}\"]\n")
            .as_bytes(),
        0o600,
    )?;
    let fields = "groups = [\"oncall\"]\nemails = [\"alice@example.com\"]\n";
    let AliceSandbox { server: _srv, url, alice } = start_with_alice(scratch.path(), &data, fields, &[]).await?;
    let addr: std::net::SocketAddr =
        url.trim_start_matches("http://").parse().map_err(|_| internal(format!("unexpected server URL {url}")))?;
    let http = wire::Http(addr);

    // The webhook round trip: each delivery a new incident (a new record).
    eprintln!("{} signed incident deliveries...", args.webhooks);
    let mut hooks = Vec::with_capacity(args.webhooks as usize);
    for k in 0..args.webhooks {
        let body = serde_json::json!({
            "id": format!("BENCH-{k}"), "title": "bench incident", "severity": 1, "status": "triggered",
            "services": ["payments-api"], "responders": [{ "email": "alice@example.com" }],
        })
        .to_string();
        let t = Instant::now();
        let (status, text) = send(&http, &url, &body).await?;
        hooks.push(t.elapsed());
        if status != 200 || !text.contains("BENCH-") {
            return Err(internal(format!("the incident delivery answered {status}: {text}")));
        }
    }
    hooks.sort_unstable();

    // Requests, each auto-approved because alice responds to an open severity-1 incident.
    eprintln!("{} requests, each auto-approved by an incident...", args.requests);
    let request = GrantRequest {
        scopes: vec![SCOPE.into()],
        capabilities: vec!["push".into()],
        duration: "30m".into(),
        reason: "bench incident".into(),
        incident: None,
        drill: false,
    };
    let mut lat = Vec::with_capacity(args.requests as usize);
    for _ in 0..args.requests {
        let t = Instant::now();
        let g = alice.request_grant(&request).await.map_err(|e| internal(format!("POST /v1/grants: {e}")))?;
        lat.push(t.elapsed());
        if g.state.as_str() != "active" || g.incident.is_none() {
            return Err(internal(format!("grant {} is {}, not active under an incident", g.id, g.state.as_str())));
        }
    }
    let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
    lat.sort_unstable();
    let f = IncidentFigures {
        webhooks: args.webhooks,
        webhook_ms_p50: ms(percentile(&hooks, 0.5)),
        webhook_ms_p99: ms(percentile(&hooks, 0.99)),
        requests: args.requests,
        request_to_active_ms_p50: ms(percentile(&lat, 0.5)),
        request_to_active_ms_p99: ms(percentile(&lat, 0.99)),
        request_to_active_ms_mean: ms(mean),
    };
    if args.json {
        print_json(&f);
        return Ok(());
    }
    println!("incident benchmark (open incidents when requesting: {})", f.webhooks);
    println!("  signed incident delivery recorded: p50 {} ms, p99 {} ms", f.webhook_ms_p50, f.webhook_ms_p99);
    println!(
        "  request -> active, auto-approved by the incident: p50 {} ms, p99 {} ms, mean {} ms (target p50 <= 20 ms: {})",
        f.request_to_active_ms_p50,
        f.request_to_active_ms_p99,
        f.request_to_active_ms_mean,
        if f.request_to_active_ms_p50 <= 20.0 { "met" } else { "MISSED" }
    );
    Ok(())
}
