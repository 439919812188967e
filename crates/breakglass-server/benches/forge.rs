//! `cargo bench -p breakglass-server --bench forge`: the forge figures of
//! issue 16, against the loopback GitHub fake (docs/benchmarks.md, "Hosted
//! forges"): grant request to bypass applied, grant end to bypass removed
//! (both with this server's worker running, as `serve` runs it), a push
//! webhook verified and recorded, and the fake's own round trip for one
//! membership change (the forge's latency, to subtract).

use std::sync::Arc;
use std::time::{Duration, Instant};

use breakglass_core::api::GrantRequest;
use breakglass_core::entry::SecretDigester;
use breakglass_core::login::ChallengeKey;
use breakglass_core::token::TokenSigner;
use breakglass_forgefake::{GithubConfig, GithubFake, Permission, RepoConfig, TeamConfig, UserConfig, signature_256};
use breakglass_server::SystemClock;
use breakglass_server::auth::Role;
use breakglass_server::service::config::{ForgeAuth, ForgeConfig, ForgeKind, ForgeRepo, Mechanism};
use breakglass_server::service::{Caller, CredentialKind, Keys, Service, ServiceConfig};
use breakglass_store::ledger::{Ledger, LedgerConfig};
use breakglass_store::sqlite::{OpenOptions, SqliteStore};
use breakglass_tlog::note::NoteSigner;

const TOKEN: &str = "ghp_bench_token";
const SECRET: &str = "bench-webhook-secret-0123456789";
const RUNS: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut v: Vec<Duration>) {
    v.sort_unstable();
    println!(
        "{what}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} runs)",
        percentile(&v, 0.5).as_secs_f64() * 1e3,
        percentile(&v, 0.9).as_secs_f64() * 1e3,
        percentile(&v, 0.99).as_secs_f64() * 1e3,
        v.last().unwrap().as_secs_f64() * 1e3,
        v.len()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let fake = GithubFake::start(
        GithubConfig::new("acme")
            .repo(RepoConfig::new("acme/payments-api", 404, "main", &"1".repeat(40)))
            .user(UserConfig::member("erin-gh", 5001))
            .user(UserConfig::member("bot", 5999))
            .team(TeamConfig::new("bg", 77))
            .token(TOKEN, Permission::Admin, "bot"),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    std::fs::write(policy.join("breakglass.cedar"), breakglass_core::policy::EXAMPLE_POLICY).unwrap();
    std::fs::write(
        policy.join("auto.cedar"),
        "@id(\"bench-auto\") permit (principal in Breakglass::Group::\"oncall\", action == Breakglass::Action::\"auto-approve\", resource is Breakglass::GitRef) when { resource.ref == \"refs/heads/main\" };\n",
    )
    .unwrap();
    let principals = dir.path().join("principals.toml");
    std::fs::write(
        &principals,
        "[[principal]]\nname = \"erin\"\ngroups = [\"oncall\"]\naccounts = [\"github:erin-gh\"]\n",
    )
    .unwrap();
    let store: Arc<dyn breakglass_store::LogStore> = Arc::new(
        SqliteStore::open(&dir.path().join("bench.db"), OpenOptions { create: true, read_only: false }).await.unwrap(),
    );
    let clock = Arc::new(SystemClock);
    let origin = "bench.breakglass.test/log";
    let ledger = Ledger::open(
        store.clone(),
        NoteSigner::from_seed(origin, &[7u8; 32]).unwrap(),
        clock.clone(),
        LedgerConfig::new(origin),
    )
    .await
    .unwrap();
    let config = ServiceConfig {
        issuer: "http://bench.breakglass.test".into(),
        policy_dir: policy,
        principals_file: principals,
        session_ttl_ms: 3_600_000,
        pending_ttl_ms: 3_600_000,
        challenge_ttl_ms: 60_000,
        ci: Default::default(),
        incidents: Default::default(),
        notify: Default::default(),
        review: Default::default(),
        forges: vec![ForgeConfig {
            name: "github".into(),
            kind: ForgeKind::Github,
            api_url: fake.url().into(),
            auth: ForgeAuth::Token(TOKEN.into()),
            webhook_secrets: vec![SECRET.as_bytes().to_vec()],
            repos: vec![ForgeRepo {
                name: "payments/api".into(),
                forge_repo: "acme/payments-api".into(),
                protected: vec!["refs/heads/main".into()],
                mechanism: Mechanism::Team { org: "acme".into(), slug: "bg".into() },
            }],
        }],
    };
    let keys = Keys {
        token_signer: TokenSigner::from_seed(&[9u8; 32]),
        challenge_key: ChallengeKey::from_bytes([11u8; 32]),
        digester: SecretDigester::new([13u8; 32]),
    };
    let service = Arc::new(Service::new(ledger.clone(), store, clock, keys, config).unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(breakglass_server::service::forges::run(service.clone(), stopped));
    let erin = Caller {
        name: "erin".into(),
        role: Role::User,
        kind: CredentialKind::Session,
        groups: vec!["oncall".into()],
        credential: "bench-session".into(),
        ci: None,
        grant: None,
    };
    let request = GrantRequest {
        scopes: vec!["git:payments/api@refs/heads/main".into()],
        capabilities: vec!["push".into()],
        duration: "30m".into(),
        reason: "bench".into(),
        incident: None,
        drill: false,
    };
    let settled = |id: String| {
        let service = service.clone();
        async move {
            let jobs = service.forge_settled(&id, Duration::from_secs(10)).await.unwrap();
            assert!(jobs.iter().all(|j| j.status == "done"), "{jobs:?}");
        }
    };

    // The forge's own latency: one membership PUT and one DELETE + GET, as the adapter makes them.
    let mut forge_rt = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let url = format!("{}/orgs/acme/teams/bg/memberships/erin-gh", fake.url());
        let auth = format!("Bearer {TOKEN}");
        let h = [("authorization", auth.as_str()), ("accept", "application/vnd.github+json")];
        breakglass_forgefake::client::send("PUT", &url, &h, Some(br#"{"role":"member"}"#)).await.unwrap();
        forge_rt.push(t.elapsed());
        breakglass_forgefake::client::send("DELETE", &url, &h, None).await.unwrap();
    }

    let (mut applied, mut removed) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t = Instant::now();
        let g = service.request(&erin, &request).await.unwrap();
        settled(g.id.clone()).await;
        applied.push(t.elapsed());
        let t = Instant::now();
        service.revoke(&erin, &g.id, "bench").await.unwrap();
        settled(g.id.clone()).await;
        removed.push(t.elapsed());
    }

    // One grant in force for the webhook runs.
    let g = service.request(&erin, &request).await.unwrap();
    settled(g.id.clone()).await;
    let mut webhook = Vec::new();
    for i in 0..RUNS {
        let push = fake.push("acme/payments-api", "main", &format!("{:040x}", i + 2), "erin-gh", true);
        let body = serde_json::to_vec(&push.payload).unwrap();
        let headers = vec![
            ("x-github-event".to_owned(), "push".to_owned()),
            ("x-github-delivery".to_owned(), format!("bench-{i}")),
            ("x-hub-signature-256".to_owned(), signature_256(SECRET.as_bytes(), &body)),
        ];
        let t = Instant::now();
        let r = service.receive_forge_webhook("github", &headers, &body).await.unwrap();
        webhook.push(t.elapsed());
        assert!(r.index.is_some(), "{r:?}");
    }

    report("forge round trip (one membership PUT, the fake's latency)", forge_rt);
    report("grant request to bypass applied (worker, PUT membership)", applied);
    report("grant end (revoke) to bypass removed (worker, DELETE + GET check)", removed);
    report("push webhook verified and recorded", webhook);
    stop.send(true).unwrap();
    worker.await.unwrap();
    ledger.shutdown().await;
}
