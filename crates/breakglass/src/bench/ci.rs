//! `breakglass bench ci`: what a pipeline step pays to learn whether
//! break-glass mode is on. In process: OIDC ID-token verification with the
//! issuer's keys cached (the server's own `JwksCache`, RS256 as GitHub
//! Actions signs, ES256 as a GitLab instance may), claims mapped to the
//! project. Against a real `breakglass serve` whose `[ci]` configuration
//! trusts two issuers whose JWKS this command serves on 127.0.0.1: the
//! `GET /v1/ci/status` round trip over HTTP, and `breakglass ci status` as a
//! job runs it (a new process, a new connection). Keys are generated here,
//! tokens minted here; figures are printed, never asserted.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use breakglass_core::oidc::{self, IssuerExpect};
use breakglass_core::time::{Clock as _, Timestamp};
use breakglass_server::service::ci::JwksCache;
use breakglass_server::service::config::{CiConfig, CiProject, OidcIssuer};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey as _;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::Serialize;
use serde_json::json;

use super::measure::percentile;
use super::{AliceSandbox, start_with_alice};
use crate::cli::BenchCiArgs;
use crate::datadir::SystemClock;
use crate::error::{CliResult, bad_input, internal};
use crate::print_json;
use crate::sandbox::clean_cmd;

const AUDIENCE: &str = "breakglass";
const GITLAB_ISSUER: &str = "https://gitlab.bench.example";
const SCOPE: &str = "pipeline:payments/api/deploy@production";
const GITLAB_SCOPE: &str = "pipeline:payments/web/deploy@production";
const GH_REPO: &str = "acme/payments-api";
const GH_REPO_ID: &str = "123456789";
const GL_PROJECT: &str = "acme/payments-web";
const GL_PROJECT_ID: &str = "4242";

const BENCH_CI_POLICY: &str = r#"// Written by `breakglass bench ci`: SREs' pipeline grants are auto-approved.
@id("bench-ci-auto")
permit (
  principal in Breakglass::Group::"sre",
  action == Breakglass::Action::"auto-approve",
  resource is Breakglass::PipelineStage
);
"#;

/// The two issuers' keys and their JWKS documents.
struct IssuerKeys {
    rsa: EncodingKey,
    ec: EncodingKey,
    github_jwks: String,
    gitlab_jwks: String,
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    B64URL.encode(bytes)
}

fn issuer_keys() -> CliResult<IssuerKeys> {
    let mut rng = rsa::rand_core::OsRng;
    let rsa_key =
        rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| internal(format!("cannot make an RSA key: {e}")))?;
    let ec_key = p256::ecdsa::SigningKey::random(&mut rng);
    let rsa_der = rsa_key.to_pkcs1_der().map_err(|e| internal(e.to_string()))?;
    let ec_der = ec_key.to_pkcs8_der().map_err(|e| internal(e.to_string()))?;
    let point = ec_key.verifying_key().to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(internal("the P-256 public key has no coordinates"));
    };
    let github_jwks = json!({ "keys": [{
        "kty": "RSA", "kid": "bench-rsa", "use": "sig", "alg": "RS256",
        "n": b64(rsa_key.n().to_bytes_be()), "e": b64(rsa_key.e().to_bytes_be()),
    }]})
    .to_string();
    let gitlab_jwks = json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "kid": "bench-ec", "use": "sig", "alg": "ES256", "x": b64(x), "y": b64(y),
    }]})
    .to_string();
    Ok(IssuerKeys {
        rsa: EncodingKey::from_rsa_der(rsa_der.as_bytes()),
        ec: EncodingKey::from_ec_der(ec_der.as_bytes()),
        github_jwks,
        gitlab_jwks,
    })
}

fn mint(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &serde_json::Value) -> CliResult<String> {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, claims, key).map_err(|e| internal(format!("cannot mint a token: {e}")))
}

/// A GitHub Actions job's token (RS256) and a GitLab job's (ES256), for
/// alice, valid for an hour from `now` (seconds).
fn tokens(keys: &IssuerKeys, now: i64) -> CliResult<(String, String)> {
    let github = json!({
        "iss": "https://token.actions.githubusercontent.com", "aud": AUDIENCE,
        "sub": format!("repo:{GH_REPO}:environment:production"), "jti": "bench-github",
        "repository": GH_REPO, "repository_id": GH_REPO_ID, "actor": "alice-gh", "actor_id": "1001",
        "environment": "production",
        "ref": "refs/heads/main", "iat": now - 5, "nbf": now - 5, "exp": now + 3600,
    });
    let gitlab = json!({
        "iss": GITLAB_ISSUER, "aud": AUDIENCE,
        "sub": format!("project_path:{GL_PROJECT}:ref_type:branch:ref:main"), "jti": "bench-gitlab",
        "project_path": GL_PROJECT, "project_id": GL_PROJECT_ID, "user_login": "alice", "user_id": "31",
        "environment": "production",
        "ref": "main", "iat": now - 5, "nbf": now - 5, "exp": now + 3600,
    });
    Ok((
        mint(Algorithm::RS256, "bench-rsa", &keys.rsa, &github)?,
        mint(Algorithm::ES256, "bench-ec", &keys.ec, &gitlab)?,
    ))
}

/// Serves the two JWKS documents on a loopback port (`/github`, `/gitlab`),
/// one request per connection, from a thread that lives as long as the process.
fn serve_jwks(keys: &IssuerKeys) -> CliResult<String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| internal(format!("cannot listen on 127.0.0.1: {e}")))?;
    let url = format!("http://{}", listener.local_addr().map_err(|e| internal(e.to_string()))?);
    let (github, gitlab) = (keys.github_jwks.clone(), keys.gitlab_jwks.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let body = if request.starts_with(b"GET /gitlab") { &gitlab } else { &github };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(url)
}

fn issuers(jwks: &str) -> (OidcIssuer, OidcIssuer) {
    let mut github = OidcIssuer::github(AUDIENCE);
    github.jwks_url = format!("{jwks}/github");
    let mut gitlab = OidcIssuer::gitlab(GITLAB_ISSUER, AUDIENCE);
    gitlab.jwks_url = format!("{jwks}/gitlab");
    (github, gitlab)
}

#[derive(Debug, Serialize)]
struct Latency {
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
}

impl Latency {
    fn of(mut lat: Vec<Duration>) -> Latency {
        let mean = lat.iter().sum::<Duration>() / lat.len().max(1) as u32;
        lat.sort_unstable();
        let us = |d: Duration| (d.as_secs_f64() * 1e7).round() / 10.0;
        Latency { p50_us: us(percentile(&lat, 0.5)), p99_us: us(percentile(&lat, 0.99)), mean_us: us(mean) }
    }
}

#[derive(Debug, Serialize)]
struct CiFigures {
    iterations: u32,
    /// The server's path: cached keys, verification, claims to project.
    verify_cached_rs256: Latency,
    verify_cached_es256: Latency,
    /// The signature and claim checks alone (`breakglass_core::oidc::verify`).
    verify_core_rs256: Latency,
    verify_core_es256: Latency,
    requests: u32,
    /// `GET /v1/ci/status` over one keep-alive connection.
    status_http_keepalive_rs256: Latency,
    status_http_keepalive_es256: Latency,
    /// A new client and connection for each request, as each job step makes.
    status_http_new_connection_rs256: Latency,
    runs: u32,
    /// `breakglass ci status --scope … --json`: a whole process.
    status_cli_rs256: Latency,
    status_cli_es256: Latency,
}

pub async fn ci(args: BenchCiArgs) -> CliResult {
    if args.iterations == 0 || args.requests == 0 || args.runs == 0 {
        return Err(bad_input("--iterations, --requests and --runs must be at least 1"));
    }
    eprintln!("generating an RSA-2048 and a P-256 issuer key...");
    let keys = issuer_keys()?;
    let jwks = serve_jwks(&keys)?;
    let now_s = SystemClock.now().0 / 1000;
    let (gh_token, gl_token) = tokens(&keys, now_s)?;
    let (github, gitlab) = issuers(&jwks);
    let config = CiConfig {
        issuers: vec![github.clone(), gitlab.clone()],
        projects: vec![
            CiProject {
                project: "payments/api".into(),
                issuer: "github".into(),
                repository: GH_REPO.into(),
                repository_id: GH_REPO_ID.into(),
            },
            CiProject {
                project: "payments/web".into(),
                issuer: "gitlab".into(),
                repository: GL_PROJECT.into(),
                repository_id: GL_PROJECT_ID.into(),
            },
        ],
        max_token_lifetime: Duration::from_secs(6 * 3600),
    };

    // 1. In process, as the server verifies a job's token: the keys cached.
    eprintln!("verifying ID tokens in process ({} iterations each)...", args.iterations);
    let cache = JwksCache::default();
    let mut cached = Vec::new();
    for (issuer, token) in [(&github, &gh_token), (&gitlab, &gl_token)] {
        let expect = IssuerExpect::new(&issuer.issuer, AUDIENCE, config.max_token_lifetime);
        let now = Timestamp(SystemClock.now().0);
        // The first verification fetches the keys; the timed ones use the cache.
        cache
            .verify(issuer, token, &expect, now)
            .await
            .map_err(|e| internal(format!("the bench token of {} is refused: {e:?}", issuer.name)))?;
        let mut lat = Vec::with_capacity(args.iterations as usize);
        for _ in 0..args.iterations {
            let t = Instant::now();
            let claims = cache.verify(issuer, token, &expect, now).await;
            let identity = claims.ok().and_then(|c| config.identify(issuer, &c).ok());
            lat.push(t.elapsed());
            if std::hint::black_box(identity).is_none() {
                return Err(internal("a benchmarked verification came out wrong"));
            }
        }
        cached.push(Latency::of(lat));
    }
    let mut core = Vec::new();
    for (issuer, jwks_text, token) in [(&github, &keys.github_jwks, &gh_token), (&gitlab, &keys.gitlab_jwks, &gl_token)]
    {
        let oidc_keys = oidc::OidcKeys::from_jwks(jwks_text).map_err(|e| internal(e.to_string()))?;
        let expect = IssuerExpect::new(&issuer.issuer, AUDIENCE, config.max_token_lifetime);
        let now = Timestamp(SystemClock.now().0);
        let mut lat = Vec::with_capacity(args.iterations as usize);
        for _ in 0..args.iterations {
            let t = Instant::now();
            let ok = oidc::verify(token, &oidc_keys, &expect, now).is_ok();
            lat.push(t.elapsed());
            if !std::hint::black_box(ok) {
                return Err(internal("a benchmarked verification came out wrong"));
            }
        }
        core.push(Latency::of(lat));
    }

    // 2. A real server trusting both issuers; alice holds a pipeline grant.
    let scratch = tempfile::tempdir().map_err(|e| internal(format!("cannot make a scratch directory: {e}")))?;
    let data = scratch.path().join("data");
    std::fs::create_dir(&data).map_err(|e| internal(format!("cannot make {}: {e}", data.display())))?;
    std::fs::write(
        data.join("breakglass.toml"),
        format!(
            "[log]\norigin = \"bench.breakglass.local/server\"\n\n\
             [ci]\naudience = \"{AUDIENCE}\"\n\n\
             [[ci.issuer]]\nkind = \"github\"\njwks_url = \"{jwks}/github\"\n\n\
             [[ci.issuer]]\nkind = \"gitlab\"\nissuer = \"{GITLAB_ISSUER}\"\njwks_url = \"{jwks}/gitlab\"\n\n\
             [[ci.project]]\nproject = \"payments/api\"\nissuer = \"github\"\nrepository = \"{GH_REPO}\"\nrepository_id = \"{GH_REPO_ID}\"\n\n\
             [[ci.project]]\nproject = \"payments/web\"\nissuer = \"gitlab\"\nrepository = \"{GL_PROJECT}\"\nrepository_id = \"{GL_PROJECT_ID}\"\n"
        ),
    )
    .map_err(|e| internal(format!("cannot write the bench configuration: {e}")))?;
    let fields = "groups = [\"sre\"]\naccounts = [\"github:id:1001\", \"gitlab:id:31\"]\n";
    let policies = [("bench-ci.cedar", BENCH_CI_POLICY)];
    let AliceSandbox { server: _srv, url, alice } = start_with_alice(scratch.path(), &data, fields, &policies).await?;
    for scope in [SCOPE, GITLAB_SCOPE] {
        let grant = alice
            .request_grant(&breakglass_core::api::GrantRequest {
                scopes: vec![scope.into()],
                capabilities: vec!["skip-gate:integration-tests".into(), "advisory-gate:load-tests".into()],
                duration: "60m".into(),
                reason: "bench ci".into(),
                incident: None,
                drill: false,
            })
            .await
            .map_err(|e| internal(format!("the bench grant was refused: {e}")))?;
        if grant.state.as_str() != "active" {
            return Err(internal(format!("the bench grant is {}, not active", grant.state.as_str())));
        }
    }

    let check = |status: &breakglass_core::api::CiStatus| -> CliResult {
        match &status.gate {
            Some(g) if status.active && g.mode == "skip" => Ok(()),
            _ => Err(internal(format!("ci status did not see the grant: {status:?}"))),
        }
    };
    let timeout = Duration::from_secs(10);
    eprintln!("GET /v1/ci/status, {} requests each way...", args.requests);
    let mut keepalive = Vec::new();
    for (token, scope) in [(&gh_token, SCOPE), (&gl_token, GITLAB_SCOPE)] {
        let client = breakglass_client::Client::with_timeout(&url, Some(token.clone()), timeout)?;
        let mut lat = Vec::with_capacity(args.requests as usize);
        for _ in 0..args.requests {
            let t = Instant::now();
            let status = client
                .ci_status(scope, Some("integration-tests"), None)
                .await
                .map_err(|e| internal(format!("GET /v1/ci/status: {e}")))?;
            lat.push(t.elapsed());
            check(&status)?;
        }
        keepalive.push(Latency::of(lat));
    }
    let mut lat = Vec::with_capacity(args.requests as usize);
    for _ in 0..args.requests {
        let t = Instant::now();
        let client = breakglass_client::Client::with_timeout(&url, Some(gh_token.clone()), timeout)?;
        let status = client
            .ci_status(SCOPE, Some("integration-tests"), None)
            .await
            .map_err(|e| internal(format!("GET /v1/ci/status: {e}")))?;
        lat.push(t.elapsed());
        check(&status)?;
    }
    let new_connection = Latency::of(lat);

    eprintln!("breakglass ci status, {} runs each...", args.runs);
    let exe = std::env::current_exe().map_err(|e| internal(format!("cannot find this executable: {e}")))?;
    let spool = scratch.path().join("spool");
    let mut cli = Vec::new();
    for (token, scope) in [(&gh_token, SCOPE), (&gl_token, GITLAB_SCOPE)] {
        let mut lat = Vec::with_capacity(args.runs as usize);
        for _ in 0..args.runs {
            let mut cmd = clean_cmd(&exe);
            cmd.args(["ci", "status", "--scope", scope, "--gate", "integration-tests", "--json"])
                .env("BREAKGLASS_SERVER", &url)
                .env("BREAKGLASS_ID_TOKEN", token)
                .env("BREAKGLASS_SPOOL", &spool)
                .env_remove("GITHUB_ACTIONS")
                .env_remove("GITLAB_CI")
                .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL");
            let t = Instant::now();
            let out = cmd.output().map_err(|e| internal(format!("cannot run breakglass ci status: {e}")))?;
            lat.push(t.elapsed());
            if !out.status.success() {
                return Err(internal(format!(
                    "breakglass ci status failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            #[derive(serde::Deserialize)]
            struct Printed {
                status: breakglass_core::api::CiStatus,
                source: String,
            }
            let printed: Printed = serde_json::from_slice(&out.stdout)
                .map_err(|e| internal(format!("breakglass ci status printed unexpected JSON: {e}")))?;
            if printed.source != "server" {
                return Err(internal(format!("breakglass ci status decided from {}, not the server", printed.source)));
            }
            check(&printed.status)?;
        }
        cli.push(Latency::of(lat));
    }

    let [verify_cached_rs256, verify_cached_es256] = take2(cached);
    let [verify_core_rs256, verify_core_es256] = take2(core);
    let [status_http_keepalive_rs256, status_http_keepalive_es256] = take2(keepalive);
    let [status_cli_rs256, status_cli_es256] = take2(cli);
    let f = CiFigures {
        iterations: args.iterations,
        verify_cached_rs256,
        verify_cached_es256,
        verify_core_rs256,
        verify_core_es256,
        requests: args.requests,
        status_http_keepalive_rs256,
        status_http_keepalive_es256,
        status_http_new_connection_rs256: new_connection,
        runs: args.runs,
        status_cli_rs256,
        status_cli_es256,
    };
    if args.json {
        print_json(&f);
        return Ok(());
    }
    let line = |name: &str, l: &Latency, target_us: Option<f64>| {
        let verdict = match target_us {
            Some(t) if l.p50_us <= t => format!(" (target p50 <= {} us: met)", t),
            Some(t) => format!(" (target p50 <= {} us: MISSED)", t),
            None => String::new(),
        };
        if l.p50_us >= 1000.0 {
            println!(
                "  {name}: p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms{verdict}",
                l.p50_us / 1e3,
                l.p99_us / 1e3,
                l.mean_us / 1e3
            );
        } else {
            println!("  {name}: p50 {} us, p99 {} us, mean {} us{verdict}", l.p50_us, l.p99_us, l.mean_us);
        }
    };
    println!("ci benchmark");
    println!("  OIDC ID-token verification, keys cached ({} iterations each):", f.iterations);
    line("  RS256 (GitHub Actions), the server's path", &f.verify_cached_rs256, Some(200.0));
    line("  ES256 (GitLab), the server's path", &f.verify_cached_es256, Some(200.0));
    line("  RS256, signature and claims alone", &f.verify_core_rs256, None);
    line("  ES256, signature and claims alone", &f.verify_core_es256, None);
    println!("  GET /v1/ci/status with an ID token, grant active ({} requests each):", f.requests);
    line("  RS256, one keep-alive connection", &f.status_http_keepalive_rs256, Some(10_000.0));
    line("  ES256, one keep-alive connection", &f.status_http_keepalive_es256, Some(10_000.0));
    line("  RS256, a new client and connection each", &f.status_http_new_connection_rs256, Some(10_000.0));
    println!("  breakglass ci status, a whole process ({} runs each):", f.runs);
    line("  RS256 (GitHub Actions token)", &f.status_cli_rs256, Some(10_000.0));
    line("  ES256 (GitLab token)", &f.status_cli_es256, Some(10_000.0));
    Ok(())
}

fn take2(v: Vec<Latency>) -> [Latency; 2] {
    let mut it = v.into_iter();
    match (it.next(), it.next()) {
        (Some(a), Some(b)) => [a, b],
        _ => unreachable!("two issuers measured"),
    }
}
