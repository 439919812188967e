//! A breakglass server in a temp dir: policy, principals with keys made by
//! `ssh-keygen`, a store, a ledger, the service on a hand-moved clock (the
//! testkit's clock and keys), and its router. Requests go through the router with `oneshot`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use breakglass_core::entry::SecretDigester;
use breakglass_core::login::ChallengeKey;
use breakglass_core::token::TokenSigner;
use breakglass_server::http::{AppState, router};
use breakglass_server::service::{Keys, Service, ServiceConfig};
use breakglass_store::LogStore;
use breakglass_store::ledger::{Ledger, LedgerConfig};
use breakglass_store::postgres::PostgresStore;
use breakglass_store::reader::LogReader;
use breakglass_store::sqlite::{OpenOptions, SqliteStore};
use breakglass_store::verify::{VerifyOptions, verify_log};
pub use breakglass_testkit::clock::ManualClock;
pub use breakglass_testkit::ssh::{SshKey, keygen};
use breakglass_tlog::note::NoteSigner;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const T0: i64 = 1_790_000_000_000;
pub const ORIGIN: &str = "breakglass.test/it";
pub const ISSUER: &str = "http://breakglass.test";

/// An extra policy on top of the example one: release branches need two approvals.
pub const TWO_APPROVALS: &str = r#"
@id("oncall-request-release")
@approvals("2")
@max_duration("2h")
permit (
  principal in Breakglass::Group::"oncall",
  action == Breakglass::Action::"request",
  resource is Breakglass::GitRef
)
when { resource.ref == "refs/heads/release" && context.reason != "" };

@id("oncall-push-release")
permit (
  principal in Breakglass::Group::"oncall",
  action == Breakglass::Action::"push",
  resource is Breakglass::GitRef
)
when { resource.ref == "refs/heads/release" };
"#;

/// `ssh-keygen -Y sign -n NAMESPACE -f KEY` over exactly `message`.
pub fn ssh_sign(key: &SshKey, namespace: &str, message: &str) -> String {
    breakglass_testkit::ssh::sign(&key.private, namespace, message.as_bytes())
}

pub struct Keys4 {
    pub alice: SshKey,
    pub bob: SshKey,
    pub carol: SshKey,
    pub dave: SshKey,
    pub mallory: SshKey,
}

/// The on-disk part: a policy directory and a principals file.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub keys: Keys4,
    pub extra_principals: String,
    pub ci: breakglass_server::service::config::CiConfig,
    pub incidents: breakglass_server::service::config::IncidentConfig,
    pub notify: breakglass_server::service::config::NotifyConfig,
    pub forges: Vec<breakglass_server::service::config::ForgeConfig>,
}

impl Setup {
    pub fn new() -> Setup {
        Setup::with_principals("")
    }

    pub fn with_principals(extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let keydir = dir.path().join("keys");
        std::fs::create_dir(&keydir).unwrap();
        let keys = Keys4 {
            alice: keygen(&keydir, "alice"),
            bob: keygen(&keydir, "bob"),
            carol: keygen(&keydir, "carol"),
            dave: keygen(&keydir, "dave"),
            mallory: keygen(&keydir, "mallory"),
        };
        let policy = dir.path().join("policy");
        std::fs::create_dir(&policy).unwrap();
        std::fs::write(policy.join("breakglass.cedar"), breakglass_core::policy::EXAMPLE_POLICY).unwrap();
        std::fs::write(policy.join("release.cedar"), TWO_APPROVALS).unwrap();
        let setup = Setup {
            dir,
            keys,
            extra_principals: extra.to_owned(),
            ci: Default::default(),
            incidents: Default::default(),
            notify: Default::default(),
            forges: Vec::new(),
        };
        setup.write_principals();
        setup
    }

    pub fn write_principals(&self) {
        let k = &self.keys;
        let text = format!(
            r#"
[[principal]]
name = "alice"
groups = ["oncall"]
ssh_keys = ["{}"]
emails = ["alice@example.com"]

[[principal]]
name = "bob"
groups = ["approvers", "sre"]
ssh_keys = ["{}"]

[[principal]]
name = "carol"
groups = ["approvers"]
ssh_keys = ["{}"]

[[principal]]
name = "dave"
ssh_keys = ["{}"]
{}
"#,
            k.alice.line, k.bob.line, k.carol.line, k.dave.line, self.extra_principals
        );
        std::fs::write(self.dir.path().join("principals.toml"), text).unwrap();
    }

    pub fn config(&self) -> ServiceConfig {
        ServiceConfig {
            issuer: ISSUER.into(),
            policy_dir: self.dir.path().join("policy"),
            principals_file: self.dir.path().join("principals.toml"),
            session_ttl_ms: 12 * 3_600_000,
            pending_ttl_ms: 30 * 60_000,
            challenge_ttl_ms: 120_000,
            ci: self.ci.clone(),
            incidents: self.incidents.clone(),
            notify: self.notify.clone(),
            review: Default::default(),
            forges: self.forges.clone(),
        }
    }
}

pub fn log_signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[7u8; 32]).unwrap()
}

pub fn keys() -> Keys {
    Keys {
        token_signer: TokenSigner::from_seed(&[9u8; 32]),
        challenge_key: ChallengeKey::from_bytes([11u8; 32]),
        digester: SecretDigester::new([13u8; 32]),
    }
}

/// One server: a service and its router over a store.
pub struct Server {
    pub service: Arc<Service>,
    pub app: Router,
    pub ledger: Ledger,
    pub store: Arc<dyn LogStore>,
    pub clock: Arc<ManualClock>,
}

impl Server {
    pub async fn open(setup: &Setup, store: Arc<dyn LogStore>, clock: Arc<ManualClock>) -> Server {
        let ledger = Ledger::open(store.clone(), log_signer(), clock.clone(), LedgerConfig::new(ORIGIN)).await.unwrap();
        let service = Arc::new(
            Service::new(ledger.clone(), store.clone(), clock.clone(), keys(), setup.config()).expect("service"),
        );
        let app = router(AppState { service: service.clone(), metrics: None, test_clock: None }, 64 * 1024);
        Server { service, app, ledger, store, clock }
    }

    /// A server over a fresh SQLite database in the setup's directory.
    pub async fn sqlite(setup: &Setup) -> Server {
        let path = setup.dir.path().join("breakglass.db");
        let store = Arc::new(SqliteStore::open(&path, OpenOptions { create: true, read_only: false }).await.unwrap());
        Server::open(setup, store, new_clock()).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())).unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    /// `POST path` with raw bytes and these headers (for the incident receivers).
    pub async fn raw(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (StatusCode, Value) {
        let mut req = Request::builder().method(Method::POST).uri(path).header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::from(body.to_vec())).unwrap()).await
    }

    /// One request through the router: the status and the body as JSON
    /// (as a JSON string when it is not JSON).
    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Logs in through the API with `ssh-keygen -Y sign`; returns the session token.
    pub async fn login(&self, principal: &str, key: &SshKey) -> String {
        let (status, ch) =
            self.call(Method::POST, "/v1/login/challenge", None, Some(json!({ "principal": principal }))).await;
        assert_eq!(status, StatusCode::OK, "{ch}");
        let challenge = ch["challenge"].as_str().unwrap();
        let signature = ssh_sign(key, ch["namespace"].as_str().unwrap(), challenge);
        let body = json!({ "principal": principal, "challenge": challenge, "signature": signature });
        let (status, res) = self.call(Method::POST, "/v1/login", None, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{res}");
        res["token"].as_str().unwrap().to_owned()
    }

    /// An admin API token, as setup makes it.
    pub async fn admin(&self) -> String {
        let req = breakglass_core::api::CreateApiToken { name: "admin".into(), role: "admin".into(), expires_in: None };
        self.service.create_api_token(None, &req).await.unwrap().token
    }

    pub async fn log_size(&self) -> u64 {
        self.store.head_size().await.unwrap()
    }

    /// The kinds of the log entries from `from` on.
    pub async fn kinds_since(&self, from: u64) -> Vec<String> {
        let recs = self.store.entries(from, u64::MAX).await.unwrap();
        recs.iter()
            .map(|r| serde_json::from_slice::<Value>(&r.data).unwrap()["kind"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Recomputes the whole log and checks every checkpoint.
    pub async fn verify(&self) -> u64 {
        let reader = LogReader::new(self.store.clone(), ORIGIN, log_signer().verifier());
        verify_log(&reader, VerifyOptions::default()).await.expect("the log verifies").size
    }
}

pub fn request_body(scope: &str, cap: &str, duration: &str, reason: &str) -> Value {
    json!({ "scopes": [scope], "capabilities": [cap], "duration": duration, "reason": reason })
}

pub const MAIN: &str = "git:payments/api@refs/heads/main";
pub const RELEASE: &str = "git:payments/api@refs/heads/release";

pub async fn pg_store(url: &str) -> Arc<dyn LogStore> {
    Arc::new(PostgresStore::open(url).await.unwrap())
}

/// The testkit's clock at [`T0`].
pub fn new_clock() -> Arc<ManualClock> {
    ManualClock::new(T0)
}

/// `v1=<hex HMAC-SHA256(secret, body)>`, as PagerDuty signs.
pub fn pd_sign(secret: &str, body: &str) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}
