//! Hosted forges (issue 16), against the loopback GitHub fake
//! (`breakglass-forgefake`, built from GitHub's documented shapes): a grant
//! on a GitHub-hosted repository opens it for exactly its holder (team
//! membership) and its end closes it again; removals that keep failing are
//! retried and found lingering; a bypass added behind breakglass's back is
//! found and removed at reconcile; two servers over one PostgreSQL apply once.

use axum::http::StatusCode;
use breakglass_forgefake::{GithubConfig, GithubFake, Permission, RepoConfig, TeamConfig, UserConfig};
use breakglass_server::service::Service;
use breakglass_server::service::config::{ForgeAuth, ForgeConfig, ForgeKind, ForgeRepo, Mechanism};
use serde_json::{Value, json};

use crate::harness::*;

const TEAM: &str = "bg-payments";
const TOKEN: &str = "ghp_breakglass_admin_token_for_tests";
const WEBHOOK_SECRET: &str = "webhook-secret-for-tests-0123456789";
const HEAD: &str = "1111111111111111111111111111111111111111";

fn fake_config() -> GithubConfig {
    GithubConfig::new("acme")
        .repo(RepoConfig::new("acme/payments-api", 404, "main", HEAD))
        .user(UserConfig::member("erin-gh", 5001))
        .user(UserConfig::member("bob-gh", 5002))
        .user(UserConfig::member("breakglass-bot", 5999))
        .team(TeamConfig::new(TEAM, 77))
        .token(TOKEN, Permission::Admin, "breakglass-bot")
        .start_at(T0 / 1000)
}

fn forge(url: &str, auth: ForgeAuth) -> ForgeConfig {
    ForgeConfig {
        name: "github".into(),
        kind: ForgeKind::Github,
        api_url: url.into(),
        auth,
        webhook_secrets: vec![WEBHOOK_SECRET.as_bytes().to_vec()],
        repos: vec![ForgeRepo {
            name: "payments/api".into(),
            forge_repo: "acme/payments-api".into(),
            protected: vec!["refs/heads/main".into()],
            mechanism: Mechanism::Team { org: "acme".into(), slug: TEAM.into() },
        }],
    }
}

/// A setup whose principal erin (group oncall) is `github:erin-gh`.
fn setup_with(forges: Vec<ForgeConfig>) -> Setup {
    setup_with_account(forges, "github:erin-gh")
}

/// A setup whose principal erin (group oncall) has `account`.
fn setup_with_account(forges: Vec<ForgeConfig>, account: &str) -> Setup {
    let mut setup = Setup::new();
    setup.extra_principals = format!(
        "[[principal]]\nname = \"erin\"\ngroups = [\"oncall\"]\nssh_keys = [\"{}\"]\naccounts = [\"{account}\"]\n",
        setup.keys.mallory.line
    );
    setup.write_principals();
    setup.forges = forges;
    setup
}

/// Runs the jobs due now (unless a worker has them), then waits for the
/// event of the last one of `grant` finishing; fails if that never comes.
async fn settle(service: &Service, grant: &str) -> Vec<Value> {
    service.run_forge_jobs().await.unwrap();
    let jobs = service.forge_settled(grant, std::time::Duration::from_secs(20)).await.unwrap();
    assert!(jobs.iter().all(|j| j.status != "pending"), "the forge jobs of {grant} never settled: {jobs:?}");
    jobs.iter().map(|j| serde_json::to_value(j).unwrap()).collect()
}

fn entries_of(kinds: &[(String, Value)], kind: &str) -> Vec<Value> {
    kinds.iter().filter(|(k, _)| k == kind).map(|(_, v)| v.clone()).collect()
}

async fn entries_since(srv: &Server, from: u64) -> Vec<(String, Value)> {
    let recs = srv.store.entries(from, u64::MAX).await.unwrap();
    recs.iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.data).unwrap();
            (v["kind"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

async fn grant_for_erin(srv: &Server, setup: &Setup, duration: &str) -> String {
    let erin = srv.login("erin", &setup.keys.mallory).await;
    let bob = srv.login("bob", &setup.keys.bob).await;
    let (status, g) = srv.post("/v1/grants", &erin, request_body(MAIN, "push", duration, "INC-7 hotfix")).await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    assert_eq!(g["state"], "pending");
    assert!(g.get("forge").is_none(), "nothing is opened while pending: {g}");
    let id = g["id"].as_str().unwrap().to_owned();
    let (status, g) = srv.post(&format!("/v1/grants/{id}/approve"), &bob, json!({})).await;
    assert_eq!((status, g["state"].as_str()), (StatusCode::OK, Some("active")), "{g}");
    id
}

/// erin's grant, approved and applied by a worker that is then stopped.
async fn applied_grant(srv: &Server, setup: &Setup) -> String {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(breakglass_server::service::forges::run(srv.service.clone(), stopped));
    let id = grant_for_erin(srv, setup, "30m").await;
    settle(&srv.service, &id).await;
    stop.send(true).unwrap();
    worker.await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_opens_github_for_exactly_its_holder_and_its_end_closes_it() {
    let fake = GithubFake::start(fake_config()).await.unwrap();
    let setup = setup_with(vec![forge(fake.url(), ForgeAuth::Token(TOKEN.into()))]);
    let srv = Server::sqlite(&setup).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(breakglass_server::service::forges::run(srv.service.clone(), stopped));

    let before = srv.log_size().await;
    let id = grant_for_erin(&srv, &setup, "30m").await;
    // The worker applies it right after the commit; the API shows it live.
    let jobs = settle(&srv.service, &id).await;
    assert_eq!((jobs[0]["action"].as_str(), jobs[0]["status"].as_str()), (Some("apply"), Some("done")), "{jobs:?}");
    assert_eq!(jobs[0]["account"], "erin-gh");
    assert_eq!(fake.team_members(TEAM), ["erin-gh"], "exactly the grantee");
    let (_, g) = srv.get(&format!("/v1/grants/{id}"), &srv.admin().await).await;
    assert_eq!(g["forge"][0]["status"], "done", "{g}");
    let log = entries_since(&srv, before).await;
    let applied = entries_of(&log, "forge.bypass.applied");
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0]["grant"], id.as_str());
    assert_eq!(applied[0]["data"]["account"], json!({ "login": "erin-gh", "id": 5001 }));
    assert_eq!(applied[0]["data"]["forge_ids"]["team"], format!("acme/{TEAM}"));

    // Its expiry closes it again, with an entry.
    srv.clock.advance(30 * 60_000);
    assert_eq!(srv.service.expire_due().await.unwrap(), 1);
    let jobs = settle(&srv.service, &id).await;
    assert_eq!(jobs.iter().map(|j| j["action"].as_str().unwrap()).collect::<Vec<_>>(), ["apply", "remove"]);
    assert!(fake.team_members(TEAM).is_empty());
    let removed = entries_of(&entries_since(&srv, before).await, "forge.bypass.removed");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["grant"], id.as_str());

    // A revoke closes it as well; nobody else was ever added.
    let id = grant_for_erin(&srv, &setup, "30m").await;
    settle(&srv.service, &id).await;
    assert_eq!(fake.team_members(TEAM), ["erin-gh"]);
    let erin = srv.login("erin", &setup.keys.mallory).await;
    let (status, g) = srv.post(&format!("/v1/grants/{id}/revoke"), &erin, json!({ "reason": "fixed" })).await;
    assert_eq!(status, StatusCode::OK, "{g}");
    settle(&srv.service, &id).await;
    assert!(fake.team_members(TEAM).is_empty());
    let puts: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/memberships/"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(puts.len(), 2);
    assert!(puts.iter().all(|p| p.ends_with("/memberships/erin-gh")), "{puts:?}");
    // The token never travels in a URL.
    assert!(fake.requests().iter().all(|r| !r.path.contains(TOKEN)));

    stop.send(true).unwrap();
    worker.await.unwrap();
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_that_keeps_failing_is_retried_and_found_lingering_then_cleared() {
    let fake = GithubFake::start(fake_config()).await.unwrap();
    let setup = setup_with(vec![forge(fake.url(), ForgeAuth::Token(TOKEN.into()))]);
    let srv = Server::sqlite(&setup).await;
    // From here on the test runs the jobs itself, one attempt at a time.
    let id = applied_grant(&srv, &setup).await;

    // GitHub fails every removal for a while.
    fake.fail_next("DELETE", &format!("/orgs/acme/teams/{TEAM}/memberships"), 502, 3);
    let before = srv.log_size().await;
    let erin = srv.login("erin", &setup.keys.mallory).await;
    srv.post(&format!("/v1/grants/{id}/revoke"), &erin, json!({ "reason": "fixed" })).await;
    srv.service.run_forge_jobs().await.unwrap();
    assert_eq!(fake.team_members(TEAM), ["erin-gh"], "the removal failed");
    let failed = entries_of(&entries_since(&srv, before).await, "forge.bypass.failed");
    assert!(!failed.is_empty());
    assert_eq!(failed[0]["grant"], id.as_str());
    assert!(failed[0]["data"]["error"].as_str().unwrap().contains("502"), "{}", failed[0]);

    // Retried with backoff as time passes; past a minute it is lingering:
    // recorded as drift at once, not at the next drift interval.
    srv.clock.advance(1_000);
    srv.service.run_forge_jobs().await.unwrap();
    srv.clock.advance(60_000);
    srv.service.run_forge_jobs().await.unwrap();
    let log = entries_since(&srv, before).await;
    let found = entries_of(&log, "drift.found");
    assert_eq!(found.len(), 1, "{log:?}");
    assert_eq!(found[0]["data"]["kind"], "forge.bypass_lingering");
    assert!(found[0]["data"]["what"].as_str().unwrap().contains("erin-gh"), "{}", found[0]);
    let (_, drift) = srv.get("/v1/drift", &srv.admin().await).await;
    assert!(drift["findings"].as_array().unwrap().iter().any(|f| f["kind"] == "forge.bypass_lingering"), "{drift}");

    // GitHub recovers: the next attempt removes it, and the finding clears.
    srv.clock.advance(60_000);
    let jobs = settle(&srv.service, &id).await;
    assert_eq!(jobs[1]["status"], "done", "{jobs:?}");
    assert!(fake.team_members(TEAM).is_empty());
    let check = srv.service.run_drift_check().await.unwrap();
    assert_eq!(check.cleared.iter().map(|f| f.kind.as_str()).collect::<Vec<_>>(), ["forge.bypass_lingering"]);
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bypass_added_behind_breakglass_back_is_found_and_removed_at_reconcile() {
    let fake = GithubFake::start(fake_config()).await.unwrap();
    let setup = setup_with(vec![forge(fake.url(), ForgeAuth::Token(TOKEN.into()))]);
    let srv = Server::sqlite(&setup).await;
    // erin holds an effective grant (and so the bypass); bob-gh is added by hand.
    applied_grant(&srv, &setup).await;
    fake.add_team_member_directly(TEAM, "bob-gh");

    let check = srv.service.run_drift_check().await.unwrap();
    let unexpected: Vec<_> = check.findings.iter().filter(|f| f.kind == "forge.bypass_unexpected").collect();
    assert_eq!(unexpected.len(), 1, "{:?}", check.findings);
    assert!(unexpected[0].what.contains("bob-gh"), "{}", unexpected[0].what);

    let before = srv.log_size().await;
    assert_eq!(srv.service.reconcile_forges().await.unwrap(), 1, "bob-gh only: erin's grant covers her");
    srv.service.run_forge_jobs().await.unwrap();
    assert_eq!(fake.team_members(TEAM), ["erin-gh"]);
    let log = entries_since(&srv, before).await;
    assert_eq!(
        entries_of(&log, "forge.bypass.unexpected")[0]["data"]["account"],
        json!({ "login": "bob-gh", "id": 5002 })
    );
    assert_eq!(entries_of(&log, "forge.bypass.removed").len(), 1);
    let check = srv.service.run_drift_check().await.unwrap();
    assert!(check.findings.iter().all(|f| f.kind != "forge.bypass_unexpected"), "{:?}", check.findings);
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_app_installation_token_is_made_renewed_and_used() {
    // A real RSA key from ssh-keygen, in GitHub's app-key format (PKCS#1 PEM).
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    let public = std::process::Command::new("ssh-keygen")
        .args(["-e", "-m", "PKCS8", "-f"])
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    assert!(public.status.success());
    let app = breakglass_forgefake::AppConfig::new(31337, 4242, &String::from_utf8(public.stdout).unwrap());
    let fake = GithubFake::start(fake_config().app(app)).await.unwrap();
    let auth = ForgeAuth::GithubApp {
        app_id: "31337".into(),
        installation_id: 4242,
        private_key_pem: std::fs::read_to_string(&key).unwrap(),
    };
    let setup = setup_with(vec![forge(fake.url(), auth)]);
    let srv = Server::sqlite(&setup).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(breakglass_server::service::forges::run(srv.service.clone(), stopped));
    let id = grant_for_erin(&srv, &setup, "60m").await;
    settle(&srv.service, &id).await;
    assert_eq!(fake.team_members(TEAM), ["erin-gh"]);
    let exchanges = || fake.requests().iter().filter(|r| r.path.ends_with("/access_tokens")).count();
    assert_eq!(exchanges(), 1);

    // An hour later the token has expired; the removal at the grant's end
    // makes a new one first.
    srv.clock.advance(61 * 60_000);
    fake.advance(61 * 60);
    assert_eq!(srv.service.expire_due().await.unwrap(), 1);
    let jobs = settle(&srv.service, &id).await;
    assert_eq!(jobs[1]["status"], "done", "{jobs:?}");
    assert!(fake.team_members(TEAM).is_empty());
    assert_eq!(exchanges(), 2, "renewed before use, not after a 401");

    stop.send(true).unwrap();
    worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgresql_apply_and_remove_once() {
    let Some(db) = breakglass_testkit::pg::PgDatabase::create("bg_srv").await else { return };
    let fake = GithubFake::start(fake_config()).await.unwrap();
    let setup = setup_with(vec![forge(fake.url(), ForgeAuth::Token(TOKEN.into()))]);
    let clock = new_clock();
    let a = Server::open(&setup, pg_store(&db.url).await, clock.clone()).await;
    let b = Server::open(&setup, pg_store(&db.url).await, clock.clone()).await;
    let id = grant_for_erin(&a, &setup, "30m").await;
    // Both servers' workers look at once.
    let (ra, rb) = tokio::join!(a.service.run_forge_jobs(), b.service.run_forge_jobs());
    assert_eq!(ra.unwrap() + rb.unwrap(), 1, "one claim wins");
    settle(&b.service, &id).await;
    clock.advance(30 * 60_000);
    let (ea, eb) = tokio::join!(a.service.expire_due(), b.service.expire_due());
    assert_eq!(ea.unwrap() + eb.unwrap(), 1);
    let (ra, rb) = tokio::join!(a.service.run_forge_jobs(), b.service.run_forge_jobs());
    assert_eq!(ra.unwrap() + rb.unwrap(), 1);
    settle(&a.service, &id).await;
    let calls = |m: &str| fake.requests().iter().filter(|r| r.method == m && r.path.contains("/memberships/")).count();
    assert_eq!((calls("PUT"), calls("DELETE")), (1, 1));
    assert!(fake.team_members(TEAM).is_empty());
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_records_a_baseline_and_changes_behind_its_back_are_found_with_the_difference() {
    let fake = GithubFake::start(fake_config()).await.unwrap();
    let setup = setup_with(vec![forge(fake.url(), ForgeAuth::Token(TOKEN.into()))]);
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let erin = srv.login("erin", &setup.keys.mallory).await;
    let install = json!({ "forge": "github", "repo": "payments/api" });
    let (status, e) = srv.post("/v1/forges/install", &erin, install.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only an admin installs: {e}");

    let before = srv.log_size().await;
    let (status, s) = srv.post("/v1/forges/install", &admin, install.clone()).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["protection_matches_baseline"], true, "{s}");
    let ids = fake.ruleset_ids("acme/payments-api");
    assert_eq!(ids.len(), 1);
    let ruleset = fake.ruleset(ids[0]).unwrap();
    assert_eq!(ruleset["bypass_actors"], json!([{ "actor_id": 77, "actor_type": "Team", "bypass_mode": "always" }]));
    assert_eq!(ruleset["enforcement"], "active");
    assert_eq!(ruleset["conditions"]["ref_name"]["include"], json!(["refs/heads/main"]));
    let baseline = entries_of(&entries_since(&srv, before).await, "forge.baseline");
    assert_eq!(baseline.len(), 1);
    assert_eq!(baseline[0]["data"]["sha256"], s["baseline_sha256"]);
    assert_eq!(baseline[0]["data"]["created"], true);

    // Installing again finds it and makes nothing new.
    let (status, again) = srv.post("/v1/forges/install", &admin, install.clone()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(fake.ruleset_ids("acme/payments-api").len(), 1);
    assert_eq!(again["baseline_sha256"], s["baseline_sha256"]);
    let check = srv.service.run_drift_check().await.unwrap();
    assert!(check.findings.iter().all(|f| !f.kind.starts_with("forge.")), "{:?}", check.findings);

    // A push whose webhook never arrived moves main with nothing in the log.
    let push = fake.push("acme/payments-api", "main", "5555555555555555555555555555555555555555", "bob-gh", true);
    let check = srv.service.run_drift_check().await.unwrap();
    let unrecorded: Vec<_> = check.findings.iter().filter(|f| f.kind == "forge.unrecorded_push").collect();
    assert_eq!(unrecorded.len(), 1, "{:?}", check.findings);
    assert!(unrecorded[0].what.contains("5555555555555555555555555555555555555555"), "{}", unrecorded[0].what);
    // Delivered late (GitHub redelivered it on request): recorded, and the finding clears.
    let body = serde_json::to_vec(&push.payload).unwrap();
    let sig = breakglass_forgefake::signature_256(WEBHOOK_SECRET.as_bytes(), &body);
    let headers = [("x-github-event", "push"), ("x-github-delivery", "late-1"), ("x-hub-signature-256", sig.as_str())];
    let (status, r) = srv.raw("/v1/forges/github/webhook", &headers, &body).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let check = srv.service.run_drift_check().await.unwrap();
    assert!(check.findings.iter().all(|f| f.kind != "forge.unrecorded_push"), "{:?}", check.findings);
    assert_eq!(check.cleared.iter().map(|f| f.kind.as_str()).collect::<Vec<_>>(), ["forge.unrecorded_push"]);

    // Someone turns the ruleset off behind breakglass's back.
    fake.edit_ruleset_directly(ids[0], |r| r["enforcement"] = json!("disabled"));
    let check = srv.service.run_drift_check().await.unwrap();
    let changed: Vec<_> = check.findings.iter().filter(|f| f.kind == "forge.protection_changed").collect();
    assert_eq!(changed.len(), 1, "{:?}", check.findings);
    assert!(changed[0].what.contains("enforcement: \"active\" → \"disabled\""), "{}", changed[0].what);
    let (_, status) = srv.get("/v1/forges", &admin).await;
    assert_eq!(status["repos"][0]["protection_matches_baseline"], false, "{status}");
    // Reinstalling refuses a ruleset that is not active, and says what to change.
    let (status, e) = srv.post("/v1/forges/install", &admin, install).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("not active"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_refuses_while_other_protection_would_still_block_a_bypass() {
    // Classic branch protection on main: a ruleset bypass would not lift it.
    let config = GithubConfig::new("acme")
        .repo(RepoConfig::new("acme/payments-api", 404, "main", HEAD).classic_protection(
            "main",
            json!({ "required_pull_request_reviews": { "required_approving_review_count": 1 } }),
        ))
        .user(UserConfig::member("breakglass-bot", 5999))
        .team(TeamConfig::new(TEAM, 77))
        .token(TOKEN, Permission::Admin, "breakglass-bot")
        .start_at(T0 / 1000);
    let fake = GithubFake::start(config).await.unwrap();
    let setup = setup_with(vec![forge(fake.url(), ForgeAuth::Token(TOKEN.into()))]);
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let before = srv.log_size().await;
    let (status, e) =
        srv.post("/v1/forges/install", &admin, json!({ "forge": "github", "repo": "payments/api" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("classic branch protection"), "{e}");
    assert!(entries_of(&entries_since(&srv, before).await, "forge.baseline").is_empty(), "no baseline recorded");
    assert!(fake.ruleset_ids("acme/payments-api").is_empty(), "a refusal creates nothing on the forge");

    // Another ruleset on main does the same.
    let fake = GithubFake::start(fake_config()).await.unwrap();
    fake.create_ruleset_directly(
        "acme/payments-api",
        json!({ "name": "legacy", "target": "branch", "enforcement": "active",
                "conditions": { "ref_name": { "include": ["refs/heads/main"], "exclude": [] } },
                "rules": [{ "type": "required_linear_history" }] }),
    );
    let setup = setup_with(vec![forge(fake.url(), ForgeAuth::Token(TOKEN.into()))]);
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let (status, e) =
        srv.post("/v1/forges/install", &admin, json!({ "forge": "github", "repo": "payments/api" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("other rulesets (required_linear_history"), "{e}");
    assert_eq!(fake.ruleset_ids("acme/payments-api").len(), 1, "only the legacy ruleset: nothing was created");
    // An unknown repository or forge is a 404 naming it.
    let (status, e) = srv.post("/v1/forges/install", &admin, json!({ "forge": "github", "repo": "nope" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_webhook_is_recorded_against_the_grant_and_an_unsigned_or_replayed_one_refused() {
    use breakglass_forgefake::{PushCommit, PushSpec, signature_256};
    let fake = GithubFake::start(fake_config()).await.unwrap();
    let mut setup = setup_with(vec![forge(fake.url(), ForgeAuth::Token(TOKEN.into()))]);
    // A channel for untagged commits (nothing delivers in this test: the row is what counts).
    setup.notify.channels = vec![breakglass_server::service::config::Channel {
        name: "ops".into(),
        target: breakglass_server::service::config::Target::Webhook {
            url: "http://127.0.0.1:9/hook".into(),
            secret: b"notify-secret-0123456789".to_vec(),
        },
        events: vec![breakglass_core::notify::NotifyEvent::UntaggedCommits],
    }];
    let srv = Server::sqlite(&setup).await;
    let id = grant_for_erin(&srv, &setup, "30m").await;
    let tagged = "2222222222222222222222222222222222222222";
    let untagged = "3333333333333333333333333333333333333333";
    let push = fake.push_with(PushSpec {
        repo: "acme/payments-api".into(),
        branch: "main".into(),
        new_sha: untagged.into(),
        actor: "erin-gh".into(),
        bypass: true,
        forced: false,
        commits: vec![
            PushCommit {
                id: tagged.into(),
                message: format!("fix the payment retry\n\nBreak-Glass: {id}\n"),
                modified: vec!["src/retry.rs".into()],
                ..PushCommit::default()
            },
            PushCommit { id: untagged.into(), message: "quick follow-up".into(), ..PushCommit::default() },
        ],
    });
    let body = serde_json::to_vec(&push.payload).unwrap();
    let signature = signature_256(WEBHOOK_SECRET.as_bytes(), &body);
    let path = "/v1/forges/github/webhook";
    let headers = |sig: &str, delivery: &str| {
        vec![
            ("x-github-event".to_owned(), "push".to_owned()),
            ("x-github-delivery".to_owned(), delivery.to_owned()),
            ("x-hub-signature-256".to_owned(), sig.to_owned()),
        ]
    };
    let send = |h: Vec<(String, String)>, b: Vec<u8>| {
        let srv = &srv;
        async move {
            let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            srv.raw(path, &refs, &b).await
        }
    };

    // Unsigned, wrongly signed, or signed over another body: 401, nothing stored.
    let before = srv.log_size().await;
    let mut unsigned = headers(&signature, "d-1");
    unsigned.retain(|(k, _)| k != "x-hub-signature-256");
    for (h, b) in [
        (unsigned, body.clone()),
        (headers(&signature_256(b"another-secret-entirely-0123456", &body), "d-1"), body.clone()),
        (headers(&signature, "d-1"), [body.clone(), b" ".to_vec()].concat()),
    ] {
        let (status, e) = send(h, b).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
    }
    assert_eq!(srv.log_size().await, before, "nothing stored for a refused delivery");

    let (status, r) = send(headers(&signature, "d-1"), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!((r["grant"].as_str(), r["duplicate"].as_bool()), (Some(id.as_str()), Some(false)), "{r}");
    assert_eq!(r["untagged"], json!([untagged]));
    let log = entries_since(&srv, before).await;
    let pushes = entries_of(&log, "git.push");
    assert_eq!(pushes.len(), 1);
    let data = &pushes[0]["data"];
    assert_eq!(pushes[0]["grant"], id.as_str());
    assert_eq!(pushes[0]["actor"], "erin");
    assert_eq!((data["ref"].as_str(), data["new"].as_str()), (Some("refs/heads/main"), Some(untagged)));
    assert_eq!(data["pusher"]["login"], "erin-gh");
    assert_eq!(data["commits"][0]["modified"], json!(["src/retry.rs"]));
    assert_eq!(data["protected"], true);

    // People hear of the untagged commit: one notification, queued with the push.
    let (_, list) = srv.get("/v1/notifications", &srv.admin().await).await;
    let rows: Vec<&Value> =
        list["notifications"].as_array().unwrap().iter().filter(|n| n["event"] == "untagged_commits").collect();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["grant"], id.as_str());

    // The same delivery again is a duplicate: acknowledged, nothing written.
    let size = srv.log_size().await;
    let (status, r) = send(headers(&signature, "d-1"), body.clone()).await;
    assert_eq!((status, r["duplicate"].as_bool()), (StatusCode::OK, Some(true)), "{r}");
    assert_eq!(srv.log_size().await, size);

    // The untagged commit is in the grant's review.
    let erin = srv.login("erin", &setup.keys.mallory).await;
    srv.post(&format!("/v1/grants/{id}/revoke"), &erin, json!({ "reason": "fixed" })).await;
    let (status, review) = srv.get(&format!("/v1/reviews/{id}"), &srv.admin().await).await;
    assert_eq!(status, StatusCode::OK, "{review}");
    let in_review = review["timeline"].as_array().unwrap().iter().find(|t| t["kind"] == "git.push").cloned().unwrap();
    assert_eq!(in_review["data"]["untagged"], json!([untagged]), "{in_review}");

    // A push nobody granted (bob-gh has no grant) is recorded too, as not under a grant.
    let push = fake.push("acme/payments-api", "main", "4444444444444444444444444444444444444444", "bob-gh", true);
    let body = serde_json::to_vec(&push.payload).unwrap();
    let (status, r) = send(headers(&signature_256(WEBHOOK_SECRET.as_bytes(), &body), "d-2"), body).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert!(r.get("grant").is_none(), "{r}");
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_mechanism_adds_exactly_the_holder_as_a_bypass_actor_and_keeps_a_racing_edit() {
    let fake = GithubFake::start(fake_config()).await.unwrap();
    let mut config = forge(fake.url(), ForgeAuth::Token(TOKEN.into()));
    config.repos[0].mechanism = Mechanism::User;
    let setup = setup_with(vec![config]);
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let (status, s) =
        srv.post("/v1/forges/install", &admin, json!({ "forge": "github", "repo": "payments/api" })).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let rid = fake.ruleset_ids("acme/payments-api")[0];
    assert_eq!(fake.ruleset(rid).unwrap()["bypass_actors"], json!([]));

    let id = applied_grant(&srv, &setup).await;
    let actors = fake.ruleset(rid).unwrap()["bypass_actors"].clone();
    assert_eq!(actors, json!([{ "actor_id": 5001, "actor_type": "User", "bypass_mode": "always" }]));
    // The holder is a holder, not a change of the protection.
    let check = srv.service.run_drift_check().await.unwrap();
    assert!(check.findings.iter().all(|f| !f.kind.starts_with("forge.")), "{:?}", check.findings);
    let (_, status) = srv.get("/v1/forges", &admin).await;
    assert_eq!(status["repos"][0]["holders"][0]["login"], "erin-gh", "{status}");
    assert_eq!(status["repos"][0]["holders"][0]["covered"], true, "{status}");

    // Someone adds a deploy key between breakglass's read and its write: the
    // write replaces the array, breakglass notices it in the history, and
    // writes their actor back beside its own change.
    fake.race_next_put(rid, "DeployKey", None, "always");
    let before = srv.log_size().await;
    let erin = srv.login("erin", &setup.keys.mallory).await;
    srv.post(&format!("/v1/grants/{id}/revoke"), &erin, json!({ "reason": "fixed" })).await;
    let jobs = settle(&srv.service, &id).await;
    assert_eq!(jobs[1]["status"], "done", "{jobs:?}");
    assert_eq!(
        fake.ruleset(rid).unwrap()["bypass_actors"],
        json!([{ "actor_id": null, "actor_type": "DeployKey", "bypass_mode": "always" }])
    );
    let removed = entries_of(&entries_since(&srv, before).await, "forge.bypass.removed");
    assert_eq!(removed.len(), 1);
    let edits = removed[0]["data"]["forge_ids"]["concurrent_edits"].as_array().unwrap();
    assert_eq!(edits.len(), 1, "{}", removed[0]);
    // The deploy key is someone else's change of the protection: drift says so.
    let check = srv.service.run_drift_check().await.unwrap();
    assert!(
        check.findings.iter().any(|f| f.kind == "forge.protection_changed" && f.what.contains("DeployKey")),
        "{:?}",
        check.findings
    );
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_push_hook_with_its_token_is_recorded_against_the_grant_and_a_wrong_token_refused() {
    // GitLab's documented Push Hook example, pushed to main by jsmith (user 4).
    let fixture = breakglass_testkit::fixtures::forge_text("gitlab-push-hook.json");
    let mut payload: Value = serde_json::from_str(&fixture).unwrap();
    payload["ref"] = json!("refs/heads/main");
    let body = serde_json::to_vec(&payload).unwrap();
    let gitlab = ForgeConfig {
        name: "gitlab".into(),
        kind: ForgeKind::Gitlab,
        api_url: "http://127.0.0.1:9/api/v4".into(),
        auth: ForgeAuth::Token("glpat-unused-in-this-test".into()),
        webhook_secrets: vec![b"gitlab-hook-token-0123456789".to_vec()],
        repos: vec![ForgeRepo {
            name: "payments/api".into(),
            forge_repo: payload["project"]["path_with_namespace"].as_str().unwrap().into(),
            protected: vec!["refs/heads/main".into()],
            mechanism: Mechanism::User,
        }],
    };
    let setup = setup_with_account(vec![gitlab], "gitlab:id:4");
    let srv = Server::sqlite(&setup).await;
    let id = grant_for_erin(&srv, &setup, "30m").await;
    let path = "/v1/forges/gitlab/webhook";
    let send = |token: &'static str, key: &'static str| {
        let (srv, body) = (&srv, body.clone());
        async move {
            let headers = [("x-gitlab-event", "Push Hook"), ("x-gitlab-token", token), ("idempotency-key", key)];
            srv.raw(path, &headers, &body).await
        }
    };
    let before = srv.log_size().await;
    let (status, e) = send("not-the-token-0123456789", "k-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
    assert_eq!(srv.log_size().await, before);
    let (status, r) = send("gitlab-hook-token-0123456789", "k-1").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["grant"], id.as_str(), "{r}");
    let pushes = entries_of(&entries_since(&srv, before).await, "git.push");
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0]["actor"], "erin", "jsmith is erin by GitLab's user id");
    assert_eq!(pushes[0]["data"]["source"], "forge:gitlab");
    // The same Idempotency-Key again: a duplicate.
    let (status, r) = send("gitlab-hook-token-0123456789", "k-1").await;
    assert_eq!((status, r["duplicate"].as_bool()), (StatusCode::OK, Some(true)), "{r}");
}

fn gitlab_forge(url: &str) -> ForgeConfig {
    ForgeConfig {
        name: "gitlab".into(),
        kind: ForgeKind::Gitlab,
        api_url: format!("{url}/api/v4"),
        auth: ForgeAuth::Token("glpat-breakglass-test-token".into()),
        webhook_secrets: Vec::new(),
        repos: vec![ForgeRepo {
            name: "payments/api".into(),
            forge_repo: "acme/payments-api".into(),
            protected: vec!["refs/heads/main".into()],
            mechanism: Mechanism::User,
        }],
    }
}

fn gitlab_config(premium: bool) -> breakglass_forgefake::GitlabConfig {
    use breakglass_forgefake::{GitlabConfig, GitlabProject, GitlabProtectedBranch, GitlabUser};
    let config = GitlabConfig::new("glpat-breakglass-test-token")
        .project(
            GitlabProject::new(77, "acme/payments-api", "main").protect(GitlabProtectedBranch::maintainers("main")),
        )
        .user(GitlabUser::new(4, "erin-gl", &[77]))
        .user(GitlabUser::new(5, "bob-gl", &[77]));
    if premium { config } else { config.free() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_opens_gitlab_with_a_push_entry_for_exactly_its_holder_removed_by_its_id() {
    let fake = breakglass_forgefake::GitlabFake::start(gitlab_config(true)).await.unwrap();
    let setup = setup_with_account(vec![gitlab_forge(fake.url())], "gitlab:erin-gl");
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let (status, s) =
        srv.post("/v1/forges/install", &admin, json!({ "forge": "gitlab", "repo": "payments/api" })).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let users = |f: &breakglass_forgefake::GitlabFake| {
        f.push_entries("acme/payments-api", "main").iter().filter_map(|(_, u, _)| *u).collect::<Vec<u64>>()
    };

    let before = srv.log_size().await;
    let id = applied_grant(&srv, &setup).await;
    assert_eq!(users(&fake), [4], "exactly the grantee");
    let applied = entries_of(&entries_since(&srv, before).await, "forge.bypass.applied");
    let entry_id = applied[0]["data"]["forge_ids"]["entry_id"].as_u64().unwrap();
    // The holder's entry is not a change of the protection.
    let check = srv.service.run_drift_check().await.unwrap();
    assert!(check.findings.iter().all(|f| !f.kind.starts_with("forge.")), "{:?}", check.findings);

    // An entry added by hand is found, and removed at reconcile.
    fake.add_push_entry_directly("acme/payments-api", "main", 5);
    let check = srv.service.run_drift_check().await.unwrap();
    assert!(
        check.findings.iter().any(|f| f.kind == "forge.bypass_unexpected" && f.what.contains("bob-gl")),
        "{:?}",
        check.findings
    );
    assert_eq!(srv.service.reconcile_forges().await.unwrap(), 1);
    srv.service.run_forge_jobs().await.unwrap();
    assert_eq!(users(&fake), [4]);

    // Revoked: erin's entry is destroyed by its id, and checked gone.
    let erin = srv.login("erin", &setup.keys.mallory).await;
    srv.post(&format!("/v1/grants/{id}/revoke"), &erin, json!({ "reason": "fixed" })).await;
    let jobs = settle(&srv.service, &id).await;
    assert_eq!(jobs[1]["status"], "done", "{jobs:?}");
    assert!(users(&fake).is_empty());
    let removed = entries_of(&entries_since(&srv, before).await, "forge.bypass.removed");
    assert!(removed.iter().any(|r| r["data"]["forge_ids"]["entry_id"].as_u64() == Some(entry_id)), "{removed:?}");
    let destroys = fake
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.body.contains("_destroy") && r.body.contains(&entry_id.to_string()))
        .count();
    assert_eq!(destroys, 1);
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_gitlab_free_a_per_user_entry_is_refused_and_the_failure_logged() {
    let fake = breakglass_forgefake::GitlabFake::start(gitlab_config(false)).await.unwrap();
    let setup = setup_with_account(vec![gitlab_forge(fake.url())], "gitlab:erin-gl");
    let srv = Server::sqlite(&setup).await;
    let before = srv.log_size().await;
    let id = grant_for_erin(&srv, &setup, "30m").await;
    srv.service.run_forge_jobs().await.unwrap();
    let failed = entries_of(&entries_since(&srv, before).await, "forge.bypass.failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["grant"], id.as_str());
    let error = failed[0]["data"]["error"].as_str().unwrap();
    assert!(error.contains("422") && error.contains("Premium"), "{error}");
    assert!(fake.push_entries("acme/payments-api", "main").iter().all(|(_, u, _)| u.is_none()));
}
