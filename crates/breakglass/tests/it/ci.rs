//! Pipelines that recognise break-glass mode (issue 5), end to end: a real
//! `breakglass serve` whose `[ci]` configuration trusts two OIDC issuers
//! (GitHub Actions and a GitLab instance) whose JWKS a tiny HTTP server in
//! this file serves on 127.0.0.1, beside a fake GitHub Actions token service;
//! real JWTs minted here with RSA-2048 and P-256 keys generated here; real
//! gate scripts run by `breakglass ci gate`; the log read back with
//! `breakglass audit tail`.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64URL};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey as EcSigningKey;
use p256::pkcs8::EncodePrivateKey as _;
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::rand_core::OsRng;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

use breakglass_testkit::ssh::keygen;

use crate::served::Served;
use crate::support::BIN;

const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
const GITLAB_ISSUER: &str = "https://gitlab.example.com";
const AUDIENCE: &str = "breakglass";
/// The GitHub repository's pipeline scope (project payments/api).
const SCOPE: &str = "pipeline:payments/api/deploy@production";
/// The GitLab project's pipeline scope (project payments/web).
const WEB_SCOPE: &str = "pipeline:payments/web/deploy@production";
const GH_REPO: &str = "acme/payments-api";
const GH_REPO_ID: &str = "123456789";
const GL_PROJECT: &str = "acme/payments-web";
const GL_PROJECT_ID: &str = "4242";
/// What GitHub gives a job in ACTIONS_ID_TOKEN_REQUEST_TOKEN.
const REQUEST_TOKEN: &str = "actions-request-token-of-this-job";
const GH_KID: &str = "gh-rsa-1";
const GH_ROTATED_KID: &str = "gh-rsa-2";
const GL_KID: &str = "gl-ec-1";
const COMMIT: &str = "4f1c2b9e8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e";
const ARTIFACT: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// The example policy's never-skippable secret scan (removed for a moment
/// in one test, to obtain a grant that names it anyway).
const SECRET_SCAN_FORBID: &str = r#"@id("secret-scan-never-skippable")
forbid (
  principal,
  action in [Breakglass::Action::"skip-gate", Breakglass::Action::"advisory-gate"],
  resource
)
when { context.gate == "secret-scan" };"#;

/// SREs may also ask for `deploy` in production (the example policy only
/// lets them relax gates there).
const DEPLOY_POLICY: &str = r#"
@id("sre-deploy-production")
permit (
  principal in Breakglass::Group::"sre",
  action == Breakglass::Action::"deploy",
  resource is Breakglass::PipelineStage
)
when { resource.stage == "deploy" && resource.environment == "production" };
"#;

// ---- keys and tokens --------------------------------------------------------

struct Keys {
    /// GitHub's signing key, then the one it rotates to.
    rsa: RsaPrivateKey,
    rotated: RsaPrivateKey,
    /// The GitLab instance's signing key.
    ec: EcSigningKey,
}

/// Generated once per test run (RSA key generation takes a moment).
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (rsa, rotated) = std::thread::scope(|s| {
            let a = s.spawn(|| RsaPrivateKey::new(&mut OsRng, 2048).unwrap());
            let b = s.spawn(|| RsaPrivateKey::new(&mut OsRng, 2048).unwrap());
            (a.join().unwrap(), b.join().unwrap())
        });
        Keys { rsa, rotated, ec: EcSigningKey::random(&mut OsRng) }
    })
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    B64URL.encode(bytes)
}

fn rsa_encoding(k: &RsaPrivateKey) -> EncodingKey {
    EncodingKey::from_rsa_der(k.to_pkcs1_der().unwrap().as_bytes())
}

fn ec_encoding(k: &EcSigningKey) -> EncodingKey {
    EncodingKey::from_ec_der(k.to_pkcs8_der().unwrap().as_bytes())
}

fn rsa_jwk(k: &RsaPrivateKey, kid: &str) -> Value {
    json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(k.n().to_bytes_be()), "e": b64(k.e().to_bytes_be()) })
}

fn ec_jwk(k: &EcSigningKey, kid: &str) -> Value {
    let point = k.verifying_key().to_encoded_point(false);
    json!({ "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()) })
}

/// The public key as PEM, as anyone can download it: the "secret" of an
/// HS256 forgery.
fn rsa_public_pem(k: &RsaPrivateKey) -> String {
    let der = k.to_public_key().to_public_key_der().unwrap();
    let body = STANDARD.encode(der.as_bytes());
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap()).collect();
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn jti() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("jti-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn mint(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// The immutable GitHub account id of each login in these tests: what
/// principals' accounts name (`github:id:1001`); the login is for display.
fn github_id(actor: &str) -> &'static str {
    match actor {
        "alice-gh" => "1001",
        "bob-gh" => "1002",
        "mallory-gh" => "1666",
        _ => "1999",
    }
}

/// The claims of a GitHub Actions job of acme/payments-api triggered by `actor`.
fn github_claims(actor: &str, environment: &str) -> Value {
    let t = now();
    json!({
        "iss": GITHUB_ISSUER,
        "aud": AUDIENCE,
        "sub": format!("repo:{GH_REPO}:environment:{environment}"),
        "jti": jti(),
        "repository": GH_REPO,
        "repository_id": GH_REPO_ID,
        "repository_owner": "acme",
        "repository_owner_id": "5551",
        "repository_visibility": "private",
        "actor": actor,
        "actor_id": github_id(actor),
        "environment": environment,
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "sha": COMMIT,
        "workflow": "deploy",
        "workflow_ref": format!("{GH_REPO}/.github/workflows/deploy.yml@refs/heads/main"),
        "event_name": "push",
        "run_id": "9876543210",
        "run_number": "42",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "iat": t - 5,
        "nbf": t - 5,
        "exp": t + 300,
    })
}

/// The claims of a GitLab CI job of acme/payments-web triggered by `user`.
fn gitlab_claims(user: &str, environment: &str) -> Value {
    let t = now();
    json!({
        "iss": GITLAB_ISSUER,
        "aud": AUDIENCE,
        "sub": format!("project_path:{GL_PROJECT}:ref_type:branch:ref:main"),
        "jti": jti(),
        "namespace_id": "77",
        "namespace_path": "acme",
        "project_id": GL_PROJECT_ID,
        "project_path": GL_PROJECT,
        "user_id": if user == "alice" { "31" } else { "39" },
        "user_login": user,
        "user_email": format!("{user}@example.com"),
        "pipeline_id": "1234",
        "pipeline_source": "push",
        "job_id": "5678",
        "ref": "main",
        "ref_type": "branch",
        "ref_protected": "true",
        "environment": environment,
        "environment_protected": "true",
        "deployment_tier": "production",
        "runner_id": 12,
        "runner_environment": "gitlab-hosted",
        "sha": COMMIT,
        "iat": t - 5,
        "nbf": t - 5,
        "exp": t + 3600,
    })
}

fn github_token(claims: &Value) -> String {
    mint(Algorithm::RS256, GH_KID, &rsa_encoding(&keys().rsa), claims)
}

fn gitlab_token(claims: &Value) -> String {
    mint(Algorithm::ES256, GL_KID, &ec_encoding(&keys().ec), claims)
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// `token` with one character of its signature changed.
fn flip_signature(token: &str) -> String {
    let (rest, sig) = token.rsplit_once('.').unwrap();
    let mut sig: Vec<u8> = sig.bytes().collect();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
    format!("{rest}.{}", String::from_utf8(sig).unwrap())
}

/// An unsigned token (`alg: none`) with these claims.
fn unsigned(claims: &Value) -> String {
    let header = json!({ "alg": "none", "typ": "JWT", "kid": GH_KID });
    format!("{}.{}.", b64(header.to_string()), b64(claims.to_string()))
}

// ---- the issuers' side: JWKS and GitHub's token service ----------------------

#[derive(Default)]
struct IdpState {
    github_jwks: Mutex<String>,
    gitlab_jwks: Mutex<String>,
    /// What the token service hands out.
    id_token: Mutex<String>,
    github_jwks_fetches: AtomicUsize,
    /// The request targets the token service answered.
    token_requests: Mutex<Vec<String>>,
}

/// GitHub's and GitLab's key endpoints and GitHub's token service, on 127.0.0.1.
struct Idp {
    url: String,
    state: Arc<IdpState>,
}

impl Idp {
    fn start() -> Idp {
        let k = keys();
        let state = Arc::new(IdpState::default());
        *state.github_jwks.lock().unwrap() = json!({ "keys": [rsa_jwk(&k.rsa, GH_KID)] }).to_string();
        *state.gitlab_jwks.lock().unwrap() = json!({ "keys": [ec_jwk(&k.ec, GL_KID)] }).to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let st = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || serve_one(stream, &st));
            }
        });
        Idp { url, state }
    }

    fn rotate_github_key(&self) {
        *self.state.github_jwks.lock().unwrap() =
            json!({ "keys": [rsa_jwk(&keys().rotated, GH_ROTATED_KID)] }).to_string();
    }

    fn set_id_token(&self, token: &str) {
        *self.state.id_token.lock().unwrap() = token.to_owned();
    }

    fn token_requests(&self) -> Vec<String> {
        self.state.token_requests.lock().unwrap().clone()
    }
}

fn serve_one(mut s: TcpStream, st: &IdpState) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let target = lines.next().unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_owned();
    let auth = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_owned());
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let param = |name: &str| query.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_owned));
    let (status, body) = match path {
        "/github/jwks" => {
            st.github_jwks_fetches.fetch_add(1, Ordering::SeqCst);
            (200, st.github_jwks.lock().unwrap().clone())
        }
        "/gitlab/jwks" => (200, st.gitlab_jwks.lock().unwrap().clone()),
        "/actions/token" => {
            // GitHub checks the job's request token and mints for the audience asked.
            let bearer = auth.as_deref().and_then(|a| {
                let (scheme, token) = a.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
            });
            if bearer.as_deref() != Some(REQUEST_TOKEN) {
                (401, json!({ "message": "Bad credentials" }).to_string())
            } else if param("audience").as_deref() != Some(AUDIENCE) {
                (400, json!({ "message": "audience must be breakglass in this test" }).to_string())
            } else {
                st.token_requests.lock().unwrap().push(target.clone());
                (200, json!({ "count": 1, "value": st.id_token.lock().unwrap().clone() }).to_string())
            }
        }
        _ => (404, json!({ "message": "Not Found" }).to_string()),
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

// ---- a server that trusts both issuers, and CI jobs against it ---------------

struct Ci {
    srv: Served,
    idp: Idp,
    /// The job's working directory.
    work: PathBuf,
    /// Gate scripts, and what they leave behind when they run.
    scripts: PathBuf,
}

impl Ci {
    fn new() -> Ci {
        let idp = Idp::start();
        let config = format!(
            r#"[log]
origin = "e2e.breakglass.test/log"

[ci]
audience = "{AUDIENCE}"

[[ci.issuer]]
kind = "github"
jwks_url = "{url}/github/jwks"

[[ci.issuer]]
kind = "gitlab"
issuer = "{GITLAB_ISSUER}"
jwks_url = "{url}/gitlab/jwks"

[[ci.project]]
project = "payments/api"
issuer = "github"
repository = "{GH_REPO}"
repository_id = "{GH_REPO_ID}"

[[ci.project]]
project = "payments/web"
issuer = "gitlab"
repository = "{GL_PROJECT}"
repository_id = "{GL_PROJECT_ID}"
"#,
            url = idp.url
        );
        let srv = Served::start_with_config(&config);
        let keydir = srv.path("keys");
        std::fs::create_dir(&keydir).unwrap();
        let (alice_key, alice_pub) = keygen(&keydir, "alice").into_parts();
        let (bob_key, bob_pub) = keygen(&keydir, "bob").into_parts();
        std::fs::write(
            srv.data.join("principals.toml"),
            format!(
                "[[principal]]\nname = \"alice\"\ngroups = [\"oncall\", \"sre\"]\nssh_keys = [\"{alice_pub}\"]\n\
                 accounts = [\"github:id:1001\", \"gitlab:id:31\"]\n\n\
                 [[principal]]\nname = \"bob\"\ngroups = [\"approvers\"]\nssh_keys = [\"{bob_pub}\"]\n\
                 accounts = [\"github:id:1002\"]\n"
            ),
        )
        .unwrap();
        std::fs::write(srv.data.join("policy/deploy.cedar"), DEPLOY_POLICY).unwrap();
        srv.ok("admin", &["policy", "reload"]);
        srv.ok("alice", &["login", "--principal", "alice", "--key", alice_key.to_str().unwrap()]);
        srv.ok("bob", &["login", "--principal", "bob", "--key", bob_key.to_str().unwrap()]);
        let work = srv.path("job");
        let scripts = srv.path("scripts");
        std::fs::create_dir(&work).unwrap();
        std::fs::create_dir(&scripts).unwrap();
        Ci { srv, idp, work, scripts }
    }

    /// A grant for alice, requested with `reason` and approved by bob: its
    /// id and the approved grant.
    fn grant(&self, scopes: &[&str], caps: &[&str], reason: &str) -> (String, Value) {
        let mut args = vec!["request", "--for", "30m", "--reason", reason];
        for s in scopes {
            args.extend(["--scope", s]);
        }
        for c in caps {
            args.extend(["--cap", c]);
        }
        let g = self.srv.json("alice", &args);
        let id = g["id"].as_str().unwrap().to_owned();
        let approved = self.srv.json("bob", &["approve", &id]);
        assert_eq!(approved["state"], "active", "{approved}");
        (id, approved)
    }

    /// `breakglass ARGS` as a CI job: in the job's directory, with no CI or
    /// breakglass variable from the test's own environment, and `env` set.
    fn job(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        c.args(args).current_dir(&self.work);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if ["BREAKGLASS_", "GITHUB_", "GITLAB_", "ACTIONS_", "CI"].iter().any(|p| k.starts_with(p)) {
                c.env_remove(k);
            }
        }
        c.env("BREAKGLASS_SERVER", &self.srv.url).env("HOME", self.srv.dir.path());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// A gate script: it notes each run in `<name>.runs`, then exits `code`.
    fn script(&self, name: &str, code: i32) -> String {
        let path = self.scripts.join(format!("{name}.sh"));
        let marker = self.scripts.join(format!("{name}.runs"));
        std::fs::write(&path, format!("#!/bin/sh\necho ran >> '{}'\nexit {code}\n", marker.display())).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        path.to_str().unwrap().to_owned()
    }

    /// How many times the script `name` ran.
    fn runs(&self, name: &str) -> usize {
        std::fs::read_to_string(self.scripts.join(format!("{name}.runs"))).map_or(0, |t| t.lines().count())
    }

    /// `breakglass ci gate GATE --scope SCOPE [EXTRA] -- SCRIPT` as a job.
    fn gate(&self, env: &[(&str, &str)], gate: &str, extra: &[&str], script: &str) -> Output {
        let mut args = vec!["ci", "gate", gate, "--scope", SCOPE];
        args.extend(extra);
        args.extend(["--", script]);
        self.job(env, &args)
    }

    /// A raw `GET` with a bearer token: the status and the JSON body.
    fn get(&self, target: &str, token: &str) -> (u16, Value) {
        let addr = self.srv.url.trim_start_matches("http://");
        let auth = format!("Bearer {token}");
        let (status, body) = breakglass_testkit::http::request(addr, "GET", target, &[("Authorization", &auth)], None);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn status(&self, token: &str, scope: &str) -> (u16, Value) {
        self.get(&format!("/v1/ci/status?scope={scope}"), token)
    }

    /// Every log entry.
    fn log(&self) -> Vec<Value> {
        let out = Command::new(BIN)
            .args(["audit", "tail", "-n", "1000", "--json", "--data-dir"])
            .arg(&self.srv.data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        match serde_json::from_slice(&out.stdout).unwrap() {
            Value::Array(a) => a,
            Value::Object(o) => o.get("entries").and_then(|e| e.as_array()).cloned().unwrap_or_default(),
            v => panic!("audit tail printed {v}"),
        }
    }

    fn events(&self, kind: &str) -> Vec<Value> {
        self.log().into_iter().filter(|e| e["kind"] == kind).collect()
    }

    fn last(&self, kind: &str) -> Value {
        self.events(kind).pop().unwrap_or_else(|| panic!("no {kind} entry in the log"))
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The gate entry's outcome: (mode, ran, exit code, outcome, grant).
fn outcome(e: &Value) -> (String, bool, Option<i64>, String, Option<String>) {
    let d = &e["data"];
    (
        d["mode"].as_str().unwrap().to_owned(),
        d["ran"].as_bool().unwrap(),
        d["exit_code"].as_i64(),
        d["outcome"].as_str().unwrap().to_owned(),
        e["grant"].as_str().map(str::to_owned),
    )
}

fn o(
    mode: &str,
    ran: bool,
    code: Option<i64>,
    outcome: &str,
    grant: Option<&str>,
) -> (String, bool, Option<i64>, String, Option<String>) {
    (mode.into(), ran, code, outcome.into(), grant.map(str::to_owned))
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Days to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, min, sec, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{sec:02}.{milli:03}Z")
}

fn spooled(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

// ---- 1. OIDC ID tokens --------------------------------------------------------

#[test]
fn ci_oidc_tokens_are_verified_against_the_issuers_and_mapped_to_a_project_and_a_person() {
    let ci = Ci::new();

    // A GitHub-shaped RS256 token: accepted; alice triggered the job (accounts).
    let (code, body) = ci.status(&github_token(&github_claims("alice-gh", "production")), SCOPE);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (body["principal"].as_str(), body["active"].as_bool(), body["scope"].as_str()),
        (Some("alice"), Some(false), Some(SCOPE))
    );
    // A GitLab-shaped ES256 token: accepted too, for its own project.
    let (code, body) = ci.status(&gitlab_token(&gitlab_claims("alice", "production")), WEB_SCOPE);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["principal"], "alice");
    // A person with no account in the principals file: the job is known, but holds nothing.
    let (code, body) = ci.status(&github_token(&github_claims("mallory-gh", "production")), SCOPE);
    assert_eq!(code, 200, "{body}");
    assert_eq!((body["principal"].as_str(), body["active"].as_bool()), (Some("ci:github:id:1666"), Some(false)));

    let gh = || github_claims("alice-gh", "production");
    let t = now();
    let rsa = rsa_encoding(&keys().rsa);
    let gl = || gitlab_claims("alice", "production");
    let refused: Vec<(&str, String, &str, &str)> = vec![
        (
            "wrong issuer",
            github_token(&with(gh(), "iss", json!("https://token.actions.example.net"))),
            SCOPE,
            "is not configured",
        ),
        ("wrong audience", github_token(&with(gh(), "aud", json!("https://github.com/acme"))), SCOPE, "wrong audience"),
        (
            "wrong audiences",
            github_token(&with(gh(), "aud", json!(["sts.amazonaws.com", "vault"]))),
            SCOPE,
            "wrong audience",
        ),
        (
            "expired",
            github_token(&with(
                with(with(gh(), "iat", json!(t - 3600)), "nbf", json!(t - 3600)),
                "exp",
                json!(t - 600),
            )),
            SCOPE,
            "expired",
        ),
        ("not yet valid", github_token(&with(gh(), "nbf", json!(t + 600))), SCOPE, "not valid before"),
        ("longer than the 6h allowed", github_token(&with(gh(), "exp", json!(t + 7 * 3600))), SCOPE, "lifetime"),
        ("signature", flip_signature(&github_token(&gh())), SCOPE, "signature does not verify"),
        (
            "another key under the known kid",
            mint(Algorithm::RS256, GH_KID, &rsa_encoding(&keys().rotated), &gh()),
            SCOPE,
            "signature does not verify",
        ),
        ("alg none", unsigned(&gh()), SCOPE, "unsigned"),
        (
            "HS256 keyed with the public key",
            mint(Algorithm::HS256, GH_KID, &EncodingKey::from_secret(rsa_public_pem(&keys().rsa).as_bytes()), &gh()),
            SCOPE,
            "symmetric",
        ),
        ("RS256 header on GitLab's EC key", mint(Algorithm::RS256, GL_KID, &rsa, &gl()), WEB_SCOPE, "does not match"),
        (
            "GitHub's key for a GitLab token",
            mint(Algorithm::RS256, GH_KID, &rsa, &gl()),
            WEB_SCOPE,
            "not in the issuer's JWKS",
        ),
        (
            "unknown repository id (right name)",
            github_token(&with(gh(), "repository_id", json!("987654321"))),
            SCOPE,
            "not a configured pipeline project",
        ),
        (
            "wrong repository name (right id)",
            github_token(&with(gh(), "repository", json!("acme/payments-api-fork"))),
            SCOPE,
            "not a configured pipeline project",
        ),
        (
            "the id in another form",
            github_token(&with(gh(), "repository_id", json!("0123456789"))),
            SCOPE,
            "repository_id",
        ),
        (
            "unknown GitLab project id (right path)",
            gitlab_token(&with(gl(), "project_id", json!("4243"))),
            WEB_SCOPE,
            "not a configured pipeline project",
        ),
        // Issue 14: the person is the account's immutable id; the login alone is nobody.
        ("no actor id", github_token(&without(gh(), "actor_id")), SCOPE, "actor_id"),
    ];
    for (what, token, scope, needle) in &refused {
        let (code, body) = ci.status(token, scope);
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(code, 401, "{what}: {body}");
        assert!(
            msg.contains("CI identity token refused") && msg.contains(needle),
            "{what}: expected {needle:?} in {msg:?}"
        );
        // Refusals never repeat the token.
        assert!(!body.to_string().contains(token.as_str()), "{what}: the error repeats the token");
    }

    // A job asks only about its own project, and its own environment.
    let (code, body) = ci.status(&github_token(&gh()), WEB_SCOPE);
    assert_eq!(code, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("belongs to project payments/api"), "{body}");
    let (code, body) = ci.status(&gitlab_token(&gitlab_claims("alice", "production")), SCOPE);
    assert_eq!(code, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("belongs to project payments/web"), "{body}");
    let (code, body) = ci.status(&github_token(&github_claims("alice-gh", "staging")), SCOPE);
    assert_eq!(code, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("runs in staging"), "{body}");

    // The CLI: a refused token fails the step (exit 1) with the server's reason, and
    // a gate behind it does not run.
    let wrong_aud = github_token(&with(gh(), "aud", json!("https://github.com/acme")));
    let out = ci.job(&[("BREAKGLASS_ID_TOKEN", &wrong_aud)], &["ci", "status", "--scope", SCOPE]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong audience"), "{}", stderr(&out));
    // The hint speaks to a CI job (its issuer, audience, project), not to a person logging in.
    assert!(stderr(&out).contains("[[ci.issuer]]") && !stderr(&out).contains("breakglass login"), "{}", stderr(&out));
    let other = gitlab_token(&gitlab_claims("alice", "production"));
    let tests = ci.script("tests", 0);
    let out = ci.gate(&[("BREAKGLASS_ID_TOKEN", &other)], "tests", &[], &tests);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("belongs to project payments/web"), "{}", stderr(&out));
    assert_eq!(ci.runs("tests"), 0);
    // A valid one through the CLI, GitLab-style: another variable named by --oidc-token-var.
    let out = ci.job(
        &[("GITLAB_OIDC_TOKEN", &other), ("BREAKGLASS_OIDC_TOKEN_VAR", "GITLAB_OIDC_TOKEN")],
        &["ci", "status", "--scope", WEB_SCOPE, "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["status"]["principal"].as_str(), v["source"].as_str()), (Some("alice"), Some("server")));

    // Key rotation: GitHub starts signing with a new key and publishes it; the
    // server, which cached the old set, refetches on the unknown kid.
    let fetches = ci.idp.state.github_jwks_fetches.load(Ordering::SeqCst);
    assert!(fetches >= 1);
    ci.idp.rotate_github_key();
    let fresh = mint(Algorithm::RS256, GH_ROTATED_KID, &rsa_encoding(&keys().rotated), &gh());
    // The server refetches on an unknown key id at most every 10 s of its
    // clock (a flood of made-up ids costs one fetch); move it past that.
    ci.srv.advance_clock(10_000);
    let (code, body) = ci.status(&fresh, SCOPE);
    assert_eq!(code, 200, "a token signed with the rotated-in key: {body}");
    assert_eq!(body["principal"], "alice");
    assert!(ci.idp.state.github_jwks_fetches.load(Ordering::SeqCst) > fetches);
    // The retired key is trusted no more.
    let (code, body) = ci.status(&github_token(&gh()), SCOPE);
    assert_eq!(code, 401, "{body}");
}

// ---- 2. Gates, and 4. deployments ---------------------------------------------

#[test]
fn ci_gates_run_skip_or_turn_advisory_under_a_grant_never_skippable_ones_always_count_and_all_are_logged() {
    let ci = Ci::new();
    let alice_job = github_token(&github_claims("alice-gh", "production"));
    let env = [("BREAKGLASS_ID_TOKEN", alice_job.as_str())];
    let tests = ci.script("tests", 3);
    let tests_ok = ci.script("tests-ok", 0);
    let lint = ci.script("lint", 1);
    let scan = ci.script("secret-scan", 1);
    let scan_ok = ci.script("secret-scan-ok", 0);
    let license = ci.script("license", 2);

    // Normal mode (no grant): the gate runs and its exit code stands.
    let out = ci.gate(&env, "tests", &[], &tests);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(ci.runs("tests"), 1);
    let e = ci.last("ci.gate");
    assert_eq!(outcome(&e), o("run", true, Some(3), "failed", None), "{e}");
    assert_eq!(
        (e["actor"].as_str(), e["data"]["gate"].as_str(), e["data"]["scope"].as_str()),
        (Some("alice"), Some("tests"), Some(SCOPE))
    );
    assert_eq!(e["data"]["never_skippable"], false);
    assert!(e["data"]["duration_ms"].is_u64(), "{e}");
    let out = ci.gate(&env, "tests", &["--json"], &tests_ok);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((printed["mode"].as_str(), printed["outcome"].as_str()), (Some("run"), Some("passed")));
    assert_eq!(outcome(&ci.last("ci.gate")), o("run", true, Some(0), "passed", None));

    // A grant whose capabilities include skipping the secret scan: obtained
    // while a policy without the forbid is loaded, which is then restored.
    let policy_file = ci.srv.data.join("policy/breakglass.cedar");
    let original = std::fs::read_to_string(&policy_file).unwrap();
    assert!(original.contains(SECRET_SCAN_FORBID));
    std::fs::write(&policy_file, original.replace(SECRET_SCAN_FORBID, "")).unwrap();
    ci.srv.ok("admin", &["policy", "reload"]);
    let caps = ["skip-gate:tests", "advisory-gate:lint", "skip-gate:secret-scan", "deploy"];
    let (g, _) = ci.grant(&[SCOPE], &caps, "INC-7: payments down");
    std::fs::write(&policy_file, &original).unwrap();
    ci.srv.ok("admin", &["policy", "reload"]);
    let again = ci.srv.cli("alice", &["request", "--scope", SCOPE, "--cap", "skip-gate:secret-scan", "--reason", "x"]);
    assert!(!again.status.success(), "the forbid is back: {}", stdout(&again));

    // skip-gate:tests: the failing tests do not run and the job passes.
    let out = ci.gate(&env, "tests", &[], &tests);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ci.runs("tests"), 1, "the skipped gate did not run");
    let e = ci.last("ci.gate");
    assert_eq!(outcome(&e), o("skip", false, None, "skipped", Some(&g)), "{e}");
    assert_eq!(e["actor"], "alice");

    // advisory-gate:lint: it runs, fails, and the job passes, saying so.
    let out = ci.gate(&env, "lint", &[], &lint);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("advisory"), "{}", stderr(&out));
    assert_eq!(ci.runs("lint"), 1);
    assert_eq!(outcome(&ci.last("ci.gate")), o("advisory", true, Some(1), "advisory-failed", Some(&g)));

    // The secret scan is never skippable: the grant names it, policy forbids
    // it; it runs, and its failure fails the job. Logged against the grant.
    let out = ci.gate(&env, "secret-scan", &[], &scan);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(ci.runs("secret-scan"), 1);
    let e = ci.last("ci.gate");
    assert_eq!(outcome(&e), o("run", true, Some(1), "failed", Some(&g)), "{e}");
    assert_eq!(e["data"]["never_skippable"], true);
    let out = ci.gate(&env, "secret-scan", &[], &scan_ok);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ci.runs("secret-scan-ok"), 1);

    // A gate the grant does not name runs and counts.
    let out = ci.gate(&env, "license", &[], &license);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(outcome(&ci.last("ci.gate")), o("run", true, Some(2), "failed", Some(&g)));

    // The duration is measured around the command: at least what the command
    // itself measured between its first and last instruction.
    let timed = ci.scripts.join("timed.sh");
    let spent = ci.scripts.join("spent");
    std::fs::write(
        &timed,
        format!(
            "#!/bin/sh\na=$(date +%s%N)\ngit --version >/dev/null\nb=$(date +%s%N)\necho $(( (b - a) / 1000000 )) > '{}'\n",
            spent.display()
        ),
    )
    .unwrap();
    let out = ci.job(&env, &["ci", "gate", "build", "--scope", SCOPE, "--", "sh", timed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let inner: u64 = std::fs::read_to_string(&spent).unwrap().trim().parse().unwrap();
    let ms = ci.last("ci.gate")["data"]["duration_ms"].as_u64().unwrap();
    assert!(ms >= inner && ms < 5000, "duration {ms} ms, the command measured {inner} ms");

    // Whose grant counts: the person who triggered the job. Bob's job runs the tests.
    let bob_job = github_token(&github_claims("bob-gh", "production"));
    let out = ci.gate(&[("BREAKGLASS_ID_TOKEN", &bob_job)], "tests", &[], &tests);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(ci.runs("tests"), 2);
    let e = ci.last("ci.gate");
    assert_eq!(outcome(&e), o("run", true, Some(3), "failed", None), "{e}");
    assert_eq!(e["actor"], "bob");

    // `ci status --gate` says what happens to a gate, and why.
    let out = ci.job(&env, &["ci", "status", "--scope", SCOPE, "--gate", "secret-scan", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["status"]["active"].as_bool(), v["status"]["grant"]["id"].as_str()),
        (Some(true), Some(g.as_str())),
        "{v}"
    );
    assert_eq!(
        (v["status"]["gate"]["mode"].as_str(), v["status"]["gate"]["never_skippable"].as_bool()),
        (Some("run"), Some(true))
    );

    // 4. A deployment, recorded against the grant.
    let out = ci
        .job(&env, &["ci", "record", "deploy", "--scope", SCOPE, "--commit", COMMIT, "--artifact", ARTIFACT, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["recorded"].as_bool(), v["break_glass"].as_bool(), v["grant"]["id"].as_str()),
        (Some(true), Some(true), Some(g.as_str()))
    );
    let d = ci.last("ci.deploy");
    assert_eq!((d["grant"].as_str(), d["actor"].as_str()), (Some(g.as_str()), Some("alice")), "{d}");
    assert_eq!((d["data"]["commit"].as_str(), d["data"]["artifact"].as_str()), (Some(COMMIT), Some(ARTIFACT)));
    assert_eq!((d["data"]["scope"].as_str(), d["data"]["break_glass"].as_bool()), (Some(SCOPE), Some(true)));
    // Bad input is refused before anything is recorded.
    let deploys = ci.events("ci.deploy").len();
    for bad in [["--commit", "4f1c2b9"], ["--artifact", "md5:0123"]] {
        let mut args = vec!["ci", "record", "deploy", "--scope", SCOPE, "--commit", COMMIT];
        args.extend(bad);
        let out = ci.job(&env, &args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(bad[0]), "{}", stderr(&out));
    }
    assert_eq!(ci.events("ci.deploy").len(), deploys);
    // Bob's deployment is recorded, bound to no grant.
    let out =
        ci.job(&[("BREAKGLASS_ID_TOKEN", &bob_job)], &["ci", "record", "deploy", "--scope", SCOPE, "--commit", COMMIT]);
    assert!(out.status.success(), "{}", stderr(&out));
    let d = ci.last("ci.deploy");
    assert_eq!(
        (d["grant"].as_str(), d["actor"].as_str(), d["data"]["break_glass"].as_bool()),
        (None, Some("bob"), Some(false))
    );

    // What `ci status` tells the rest of the pipeline (GitHub outputs), checked at the end.
    let outputs = ci.work.join("github-output");
    let out = ci.job(
        &[
            ("BREAKGLASS_ID_TOKEN", &alice_job),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_OUTPUT", outputs.to_str().unwrap()),
        ],
        &["ci", "status", "--scope", SCOPE],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let outputs = std::fs::read_to_string(&outputs).unwrap();

    // A runner without OIDC (any CI system): a service API token, naming whose grants count.
    let service = ci.srv.ok("admin", &["token", "create", "--name", "jenkins", "--role", "service"]).trim().to_owned();
    let as_service = [("BREAKGLASS_TOKEN", service.as_str()), ("BREAKGLASS_PRINCIPAL", "alice")];
    let out = ci.gate(&as_service, "tests", &[], &tests);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ci.runs("tests"), 2);
    let e = ci.last("ci.gate");
    assert_eq!(outcome(&e), o("skip", false, None, "skipped", Some(&g)), "{e}");
    assert_eq!((e["actor"].as_str(), e["data"]["reported_by"].as_str()), (Some("alice"), Some("jenkins")));
    let out = ci.gate(&[("BREAKGLASS_TOKEN", service.as_str())], "tests", &[], &tests);
    assert_eq!(out.status.code(), Some(2), "a service token must name the principal: {}", stderr(&out));
    assert_eq!(ci.runs("tests"), 2);

    // The grant ends: the relaxations end with it.
    ci.srv.ok("alice", &["revoke", &g, "--reason", "INC-7 resolved"]);
    let out = ci.gate(&env, "tests", &[], &tests);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(outcome(&ci.last("ci.gate")), o("run", true, Some(3), "failed", None));

    // Every outcome above is one entry, in a log that verifies.
    assert_eq!(ci.events("ci.gate").len(), 11);
    let verify = Command::new(BIN).args(["audit", "verify", "--data-dir"]).arg(&ci.srv.data).output().unwrap();
    assert!(verify.status.success(), "{}", stderr(&verify));

    // A never-skippable gate is not announced as skipped: a later step that
    // reads skip_gates must not leave out the secret scan.
    assert!(outputs.contains("\nskip_gates=tests\n"), "the outputs list a never-skippable gate as skipped:\n{outputs}");
}

// ---- 3. What `ci status` leaves for GitHub Actions and GitLab CI ---------------

#[test]
fn ci_status_writes_github_outputs_and_a_gitlab_dotenv_in_their_exact_formats() {
    let ci = Ci::new();
    ci.idp.set_id_token(&github_token(&github_claims("alice-gh", "production")));
    let output = ci.work.join("github_output");
    let summary = ci.work.join("step_summary");
    std::fs::write(&output, "earlier=1\n").unwrap();
    let token_url = format!("{}/actions/token?api-version=2.0", ci.idp.url);
    let github = |request_token: &str| {
        vec![
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("GITHUB_OUTPUT", output.to_str().unwrap().to_owned()),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap().to_owned()),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", token_url.clone()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token.to_owned()),
        ]
    };
    let run = |env: &[(&str, String)], args: &[&str]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ci.job(&env, args)
    };

    // Normal mode, on GitHub: the token comes from the job's token service.
    let out = run(&github(REQUEST_TOKEN), &["ci", "status", "--scope", SCOPE]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("normal mode"), "{}", stdout(&out));
    let normal = "active=false\ngrant=\ngrantee=\nreason=\nexpires_at=\nskip_gates=\nadvisory_gates=\ndeploy=false\nsource=server\n";
    assert_eq!(std::fs::read_to_string(&output).unwrap(), format!("earlier=1\n{normal}"));
    let requests = ci.idp.token_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].starts_with("/actions/token?api-version=2.0&audience=breakglass"), "{requests:?}");
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("Normal mode for `pipeline:payments/api/deploy@production`")
    );

    // A grant with a two-line reason.
    let reason = "INC-7: payments down\nrollback failed";
    let (g, approved) = ci.grant(&[SCOPE, WEB_SCOPE], &["skip-gate:tests", "advisory-gate:lint", "deploy"], reason);
    let expires_ms = approved["expires_at"].as_i64().unwrap();
    let expires = rfc3339(expires_ms);
    assert_eq!(
        (rfc3339(951_782_400_123), rfc3339(1_798_761_599_000)),
        ("2000-02-29T00:00:00.123Z".into(), "2026-12-31T23:59:59.000Z".into())
    );
    std::fs::write(&output, "").unwrap();
    std::fs::write(&summary, "").unwrap();
    let out = run(&github(REQUEST_TOKEN), &["ci", "status", "--scope", SCOPE]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ACTIVE") && stdout(&out).contains(&g), "{}", stdout(&out));
    let text = std::fs::read_to_string(&output).unwrap();
    // The heredoc delimiter is random: read it, then check every byte.
    let delim = text.split_once("reason<<").unwrap().1.lines().next().unwrap().to_owned();
    assert!(delim.len() >= 16 && !reason.contains(&delim), "{delim:?}");
    let expected = format!(
        "active=true\ngrant={g}\ngrantee=alice\nreason<<{delim}\nINC-7: payments down\nrollback failed\n{delim}\n\
         expires_at={expires}\nskip_gates=tests\nadvisory_gates=lint\ndeploy=true\nsource=server\n"
    );
    assert_eq!(text, expected);
    let s = std::fs::read_to_string(&summary).unwrap();
    assert!(s.contains("**Break-glass mode is active**") && s.contains(&format!("`{g}`")), "{s}");
    assert!(s.contains("| alice | INC-7: payments down rollback failed |") && s.contains("`skip-gate:tests`"), "{s}");
    // A second step appends, with a delimiter of its own.
    let out = run(&github(REQUEST_TOKEN), &["ci", "status", "--scope", SCOPE]);
    assert!(out.status.success(), "{}", stderr(&out));
    let twice = std::fs::read_to_string(&output).unwrap();
    let second = twice.strip_prefix(&text).expect("appended");
    let delim2 = second.split_once("reason<<").unwrap().1.lines().next().unwrap().to_owned();
    assert_ne!(delim, delim2);
    assert_eq!(second, expected.replace(&delim, &delim2));

    // --json: the same status, parsed.
    let out = run(&github(REQUEST_TOKEN), &["ci", "status", "--scope", SCOPE, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["status"]["grant"]["id"].as_str(), v["status"]["grant"]["reason"].as_str()),
        (Some(g.as_str()), Some(reason))
    );
    assert_eq!(v["status"]["relaxations"], json!(["skip-gate:tests", "advisory-gate:lint", "deploy"]));
    assert_eq!((v["status"]["grant"]["expires_at"].as_i64(), v["source"].as_str()), (Some(expires_ms), Some("server")));

    // A wrong request token: GitHub refuses it, the step fails clearly and writes nothing.
    let before = std::fs::read_to_string(&output).unwrap();
    let out = run(&github("not-the-request-token"), &["ci", "status", "--scope", SCOPE]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot get the job's OIDC ID token"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&output).unwrap(), before);

    // GitLab: the token from `id_tokens`, a dotenv file in the job's directory.
    let gl = gitlab_token(&gitlab_claims("alice", "production"));
    let gitlab = vec![("GITLAB_CI", "true".to_owned()), ("CI", "true".to_owned()), ("BREAKGLASS_ID_TOKEN", gl.clone())];
    let out = run(&gitlab, &["ci", "status", "--scope", WEB_SCOPE]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dotenv = format!(
        "BREAKGLASS_ACTIVE=true\nBREAKGLASS_GRANT={g}\nBREAKGLASS_GRANTEE=alice\nBREAKGLASS_REASON=INC-7: payments down rollback failed\n\
         BREAKGLASS_EXPIRES_AT={expires}\nBREAKGLASS_SKIP_GATES=tests\nBREAKGLASS_ADVISORY_GATES=lint\nBREAKGLASS_DEPLOY=true\nBREAKGLASS_SOURCE=server\n"
    );
    assert_eq!(std::fs::read_to_string(ci.work.join("breakglass.env")).unwrap(), dotenv);
    std::fs::create_dir(ci.work.join("out")).unwrap();
    let out = run(&gitlab, &["ci", "status", "--scope", WEB_SCOPE, "--dotenv", "out/bg.env", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"]["grant"]["id"], g.as_str());
    assert_eq!(std::fs::read_to_string(ci.work.join("out/bg.env")).unwrap(), dotenv);

    // The grant ends: both formats say normal mode, with every key still present.
    ci.srv.ok("alice", &["revoke", &g, "--reason", "done"]);
    let out = run(&gitlab, &["ci", "status", "--scope", WEB_SCOPE]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(ci.work.join("breakglass.env")).unwrap(),
        "BREAKGLASS_ACTIVE=false\nBREAKGLASS_GRANT=\nBREAKGLASS_GRANTEE=\nBREAKGLASS_REASON=\nBREAKGLASS_EXPIRES_AT=\n\
         BREAKGLASS_SKIP_GATES=\nBREAKGLASS_ADVISORY_GATES=\nBREAKGLASS_DEPLOY=false\nBREAKGLASS_SOURCE=server\n"
    );
    std::fs::write(&output, "").unwrap();
    let out = run(&github(REQUEST_TOKEN), &["ci", "status", "--scope", SCOPE]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&output).unwrap(), normal);
}

// ---- 5. The server unreachable --------------------------------------------------

#[test]
fn ci_with_the_server_down_a_grant_token_still_relaxes_gates_and_the_spooled_entries_are_delivered_once() {
    let mut ci = Ci::new();
    let (g, _) = ci.grant(&[SCOPE], &["skip-gate:tests", "advisory-gate:lint", "deploy"], "INC-8: database down");
    let grant_token = ci.srv.ok("alice", &["token", &g]).trim().to_owned();
    let service = ci.srv.ok("admin", &["token", "create", "--name", "ci-spool", "--role", "service"]).trim().to_owned();
    assert!(service.starts_with("bgk_"), "{service}");
    let jwks = ci.srv.data.join("grant-token.jwks.json");
    let jwks = jwks.to_str().unwrap();
    let spool = ci.work.join("spool");
    let spool_s = spool.to_str().unwrap().to_owned();
    let oidc = github_token(&github_claims("alice-gh", "production"));
    let tests = ci.script("tests", 3);
    let lint = ci.script("lint", 1);
    let license = ci.script("license", 2);
    // Passes: only breakglass can fail a step that runs it.
    let tests_ok = ci.script("tests-ok", 0);
    let before = ci.log().len();

    ci.srv.stop();
    let offline = [
        ("BREAKGLASS_TOKEN", grant_token.as_str()),
        ("BREAKGLASS_ID_TOKEN", oidc.as_str()),
        ("BREAKGLASS_SPOOL", spool_s.as_str()),
    ];
    let key = ["--key", jwks];
    // skip-gate:tests still applies, verified offline against the pinned key.
    let out = ci.gate(&offline, "tests", &key, &tests);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("offline"), "{}", stderr(&out));
    assert_eq!(ci.runs("tests"), 0);
    // So does advisory-gate:lint.
    let out = ci.gate(&offline, "lint", &key, &lint);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ci.runs("lint"), 1);
    // A gate the grant does not name runs and counts.
    let out = ci.gate(&offline, "license", &key, &license);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // Gates named never-skippable for offline use run whatever the token says.
    let mut never = offline.to_vec();
    never.push(("BREAKGLASS_NEVER_SKIP", "secret-scan,tests"));
    let out = ci.gate(&never, "tests", &key, &tests);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(ci.runs("tests"), 1);
    // The deployment is recorded against the grant, in the spool.
    let out = ci.job(&offline, &["ci", "record", "deploy", "--scope", SCOPE, "--commit", COMMIT, "--key", jwks]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(spooled(&spool).len(), 5);

    // Without a grant token: normal mode, every gate counts.
    let no_token = [("BREAKGLASS_ID_TOKEN", oidc.as_str()), ("BREAKGLASS_SPOOL", spool_s.as_str())];
    let out = ci.gate(&no_token, "tests", &key, &tests);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("normal mode"), "{}", stderr(&out));
    let out = ci.gate(&[("BREAKGLASS_SPOOL", spool_s.as_str())], "tests", &[], &tests);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(ci.runs("tests"), 3);
    // Nor does a tampered token, or one without a key to check it, relax anything
    // (whether the step then fails at once or runs the gate; a spool of their own).
    let other_spool = ci.work.join("other-spool");
    let other_spool = other_spool.to_str().unwrap();
    let tampered = flip_signature(&grant_token);
    let out = ci.gate(&[("BREAKGLASS_TOKEN", &tampered), ("BREAKGLASS_SPOOL", other_spool)], "tests", &key, &tests);
    assert!(!out.status.success(), "a tampered grant token passed the gate: {}", stderr(&out));
    let out = ci.gate(&[("BREAKGLASS_TOKEN", &grant_token), ("BREAKGLASS_SPOOL", other_spool)], "tests", &[], &tests);
    assert!(!out.status.success(), "an unverifiable grant token passed the gate: {}", stderr(&out));
    let files = spooled(&spool);
    assert_eq!(files.len(), 7);
    let ids: Vec<String> = files.iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    let saved = ci.work.join("saved");
    std::fs::create_dir(&saved).unwrap();
    for f in &files {
        std::fs::copy(f, saved.join(f.file_name().unwrap())).unwrap();
    }

    // Back up: one flush delivers each spooled event once.
    ci.srv.restart();
    let flush = || {
        let out = ci.job(&[("BREAKGLASS_TOKEN", &service)], &["spool", "flush", "--dir", &spool_s, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (v["delivered"].as_u64().unwrap(), v["duplicates"].as_u64().unwrap(), v["remaining"].as_u64().unwrap())
    };
    assert_eq!(flush(), (7, 0, 0));
    assert!(spooled(&spool).is_empty());
    assert_eq!(flush(), (0, 0, 0));
    // The same files delivered again (a crash before they were removed): nothing new.
    for f in &files {
        std::fs::copy(saved.join(f.file_name().unwrap()), f).unwrap();
    }
    assert_eq!(flush(), (0, 7, 0));
    assert!(spooled(&spool).is_empty());
    let out = ci.job(&[], &["spool", "flush", "--dir", &spool_s]);
    assert_eq!(out.status.code(), Some(2), "no credentials: {}", stderr(&out));

    let log = ci.log();
    assert_eq!(log.len(), before + 7);
    for id in &ids {
        let n = log.iter().filter(|e| e["data"]["event_id"] == id.as_str()).count();
        assert_eq!(n, 1, "event {id} is in the log {n} times");
    }
    let gates: Vec<&Value> = log.iter().filter(|e| e["kind"] == "ci.gate").collect();
    assert_eq!(gates.len(), 6);
    let skipped = gates.iter().find(|e| e["data"]["mode"] == "skip").expect("the skipped gate");
    assert_eq!(outcome(skipped), o("skip", false, None, "skipped", Some(&g)));
    assert_eq!(
        (skipped["actor"].as_str(), skipped["data"]["source"].as_str()),
        (Some("alice"), Some("token (offline)"))
    );
    assert!(gates.iter().any(|e| outcome(e) == o("advisory", true, Some(1), "advisory-failed", Some(&g))));
    let normal: Vec<&&Value> = gates.iter().filter(|e| e["data"]["source"] == "normal (server unreachable)").collect();
    assert_eq!(normal.len(), 2);
    assert!(normal.iter().all(|e| outcome(e) == o("run", true, Some(3), "failed", None)));
    let d = log.iter().find(|e| e["kind"] == "ci.deploy").expect("the deployment");
    assert_eq!((d["grant"].as_str(), d["data"]["commit"].as_str()), (Some(g.as_str()), Some(COMMIT)));

    // Down again: a valid grant token for another scope (the same secret is
    // in every job of the workflow) relaxes nothing here, and does not fail
    // a passing gate either: this job runs in normal mode.
    ci.srv.stop();
    let out = ci.job(
        &offline,
        &["ci", "gate", "lint", "--scope", "pipeline:payments/api/build", "--key", jwks, "--", &tests_ok],
    );
    assert!(out.status.success(), "a grant token for another scope failed a passing gate: {}", stderr(&out));
    assert_eq!(ci.runs("tests-ok"), 1);
}

// ---- a grant token while the server answers ----------------------------------

#[test]
fn ci_a_revoked_grant_token_relaxes_nothing_while_the_server_answers() {
    let ci = Ci::new();
    let (g, _) = ci.grant(&[SCOPE], &["skip-gate:tests"], "INC-9: cache down");
    let token = ci.srv.ok("alice", &["token", &g]).trim().to_owned();
    ci.srv.ok("alice", &["revoke", &g, "--reason", "not needed after all"]);
    let tests = ci.script("tests", 3);
    let spool = ci.work.join("spool");
    let jwks = ci.srv.data.join("grant-token.jwks.json");
    let env = [("BREAKGLASS_TOKEN", token.as_str()), ("BREAKGLASS_SPOOL", spool.to_str().unwrap())];
    let out = ci.gate(&env, "tests", &["--key", jwks.to_str().unwrap()], &tests);
    // The server is up and knows the grant is revoked: the tests run and count.
    assert_eq!(
        out.status.code(),
        Some(3),
        "a revoked grant's token skipped a gate while the server was up: {}",
        stderr(&out)
    );
    assert_eq!(ci.runs("tests"), 1);
    // And the outcome reaches the log now, not a job-local spool.
    assert!(spooled(&spool).is_empty());
    assert_eq!(ci.events("ci.gate").len(), 1);
}

// ---- the examples in docs/ci -------------------------------------------------

/// The fenced code blocks of `markdown` in language `lang`.
fn code_blocks(markdown: &str, lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start() == format!("```{lang}") => current = Some(String::new()),
            Some(b) if line.trim_start() == "```" => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// `text` with continued command lines joined: a `\` line end, or a next
/// line that starts with `--` (a folded YAML scalar).
fn join_continuations(text: &str) -> String {
    let mut out = String::new();
    for line in text.replace("\\\n", " ").lines() {
        if line.trim_start().starts_with("--") && !out.is_empty() {
            out.pop();
            out.push(' ');
            out.push_str(line.trim_start());
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The documented setup works as written: the server starts with the
/// `[ci]` configuration, reloads the principals and the policy addition, the
/// policy permits the documented emergency request, and every flag and
/// variable the examples pass to `breakglass` exists.
#[test]
fn ci_docs_examples_match_the_cli_and_the_configuration() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ci");
    for doc in ["github-actions.md", "gitlab-ci.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let toml = code_blocks(&text, "toml");
        let ci_config = toml.iter().find(|b| b.contains("[ci]")).unwrap_or_else(|| panic!("{doc}: no [ci] example"));
        let principals = toml.iter().find(|b| b.contains("[[principal]]")).expect("a principals example");
        assert!(principals.contains("accounts = [\""), "{doc}: the principals example names no account");
        let srv = Served::start_with_config(&format!("[log]\norigin = \"e2e.breakglass.test/log\"\n\n{ci_config}"));
        std::fs::write(srv.data.join("principals.toml"), principals).unwrap();
        let cedar = code_blocks(&text, "cedar");
        assert_eq!(cedar.len(), 1, "{doc}");
        std::fs::write(srv.data.join("policy/test-stage.cedar"), &cedar[0]).unwrap();
        srv.ok("admin", &["policy", "reload"]);

        // The emergency request, as documented, is permitted for an SRE.
        let sh = code_blocks(&text, "sh").join("\n").replace("\\\n", " ");
        let request = sh.lines().find(|l| l.trim_start().starts_with("breakglass request")).expect("a request example");
        let words: Vec<&str> = request.split_whitespace().collect();
        let policies = srv.data.join("policy");
        let mut args = vec!["policy", "explain", "--policies", policies.to_str().unwrap(), "--principal", "alice"];
        args.extend(["--group", "oncall", "--group", "sre", "--action", "request", "--reason", "INC-7", "--json"]);
        for (k, w) in words.iter().enumerate() {
            match *w {
                "--scope" | "--cap" => args.extend([*w, words[k + 1]]),
                "--for" => args.extend(["--duration", words[k + 1]]),
                _ => {}
            }
        }
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "{doc}: {}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["allowed"], true, "{doc}: the documented request is denied: {v}");

        // Every flag of every documented command exists.
        let joined = join_continuations(&text);
        let mut checked = 0;
        for line in joined.lines() {
            for sub in ["ci status", "ci gate", "ci record deploy", "spool flush", "request", "token create", "approve"]
            {
                let Some(at) = line.find(&format!("breakglass {sub} ")) else { continue };
                let rest = &line[at..];
                let rest = rest.split(" -- ").next().unwrap();
                let mut help_args: Vec<&str> = sub.split(' ').collect();
                help_args.push("--help");
                let help = Command::new(BIN).args(&help_args).output().unwrap();
                let help = stdout(&help);
                for flag in rest.split_whitespace().filter(|w| w.starts_with("--") && w.len() > 2) {
                    let flag = flag.split('=').next().unwrap();
                    assert!(
                        help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                        "{doc}: `breakglass {sub}` has no {flag}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 10, "{doc}: only {checked} flags found");
        // And every variable the examples set for it.
        let help = stdout(&Command::new(BIN).args(["ci", "gate", "--help"]).output().unwrap());
        for var in [
            "BREAKGLASS_SERVER",
            "BREAKGLASS_OIDC_AUDIENCE",
            "BREAKGLASS_GRANT_KEYS",
            "BREAKGLASS_SPOOL",
            "BREAKGLASS_NEVER_SKIP",
            "BREAKGLASS_TOKEN",
            "BREAKGLASS_OIDC_TOKEN_VAR",
        ] {
            if text.contains(&format!("{var}:")) || text.contains(&format!("{var}=")) {
                assert!(help.contains(var), "{doc}: {var} is not a variable breakglass ci reads");
            }
        }
    }
}

// Issue 14: a GitHub login can be renamed and then registered by someone
// else. Their token says `actor: alice-gh` but carries their own `actor_id`:
// it must not act as alice, whose account id is 1001.
#[test]
fn issue14_a_token_whose_actor_is_alices_login_but_whose_actor_id_is_not_hers_does_not_act_as_alice() {
    let ci = Ci::new();
    ci.grant(&[SCOPE], &["skip-gate:tests"], "INC-14: flaky tests block the fix");
    let alice = github_token(&github_claims("alice-gh", "production"));
    let (code, body) = ci.status(&alice, SCOPE);
    assert_eq!(
        (code, body["principal"].as_str(), body["active"].as_bool()),
        (200, Some("alice"), Some(true)),
        "{body}"
    );

    let hijack = github_token(&with(github_claims("alice-gh", "production"), "actor_id", json!("7777")));
    let (code, body) = ci.status(&hijack, SCOPE);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (body["principal"].as_str(), body["active"].as_bool()),
        (Some("ci:github:id:7777"), Some(false)),
        "{body}"
    );
    // The job runs in normal mode, and the operator is told the exact line.
    let tests = ci.script("tests", 0);
    let out = ci.gate(&[("BREAKGLASS_ID_TOKEN", hijack.as_str()), ("GITHUB_ACTOR", "alice-gh")], "tests", &[], &tests);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ci.runs("tests"), 1, "the gate ran: nothing was relaxed");
    let err = stderr(&out);
    assert!(err.contains("account id 7777 (login alice-gh), is no principal"), "{err}");
    assert!(err.contains("accounts = [\"github:id:7777\"]"), "{err}");
    // Without the id claim, the job is refused and told which claim is missing.
    let (code, body) = ci.status(&github_token(&without(github_claims("alice-gh", "production"), "actor_id")), SCOPE);
    assert_eq!(code, 401, "{body}");
    assert!(body.to_string().contains("actor_id"), "{body}");
}
