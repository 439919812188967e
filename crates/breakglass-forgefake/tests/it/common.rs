//! One fake world for every test, and the calls tests make against it.

use breakglass_forgefake::{
    AppConfig, GithubConfig, GithubFake, HttpResponse, Permission, RepoConfig, TeamConfig, UserConfig, client,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const T0: i64 = 1_780_000_000;
pub const ADMIN: &str = "pat-admin-0123456789";
pub const WRITE: &str = "pat-write-0123456789";
pub const READ: &str = "pat-read-0123456789";
pub const APP_ID: u64 = 12345;
pub const INSTALLATION: u64 = 777;
pub const TEAM_ID: u64 = 234;
/// The user who edits rulesets behind breakglass's back.
pub const OUTSIDE: u64 = 4242;
pub const SHA_A: &str = "893f768e172fb1bc9c5d6f3dd48557e45f14e01d";
pub const SHA_B: &str = "dedd88641a362b6b4ea872da4847d6131a164d01";
pub const SHA_C: &str = "48994e4e01ccc943624c6231f172702b82b233cc";
pub const APP_KEY: &str = include_str!("../../testdata/app-key.pem");
pub const APP_PUB: &str = include_str!("../../testdata/app-key.pub.pem");
pub const OTHER_KEY: &str = include_str!("../../testdata/other-key.pem");

pub fn config() -> GithubConfig {
    let mut app = AppConfig::new(APP_ID, INSTALLATION, APP_PUB);
    app.client_id = Some("Iv23liFAKECLIENT".to_owned());
    app.permissions = json!({"administration": "write", "members": "write", "contents": "read", "issues": "write", "metadata": "read"});
    let mut config = GithubConfig::new("acme")
        .start_at(T0)
        .repo(RepoConfig::new("acme/payments", 404, "main", SHA_A).branch("dev", SHA_A))
        .repo(RepoConfig::new("acme/Hello-World", 405, "main", SHA_A).classic_protection(
            "main",
            json!({"url": "https://api.github.com/repos/acme/Hello-World/branches/main/protection", "enforce_admins": {"url": "https://api.github.com/repos/acme/Hello-World/branches/main/protection/enforce_admins", "enabled": true}}),
        ))
        .user(UserConfig::member("admin", 1))
        .user(UserConfig::member("alice", 1001))
        .user(UserConfig::member("bob", 1002))
        .user(UserConfig::outsider("eve", 1003))
        .team(TeamConfig::new("breakglass-payments", TEAM_ID))
        .team(TeamConfig::new("synced", 300).members(&["bob"]).idp_synced())
        .app(app)
        .token(ADMIN, Permission::Admin, "admin")
        .token(WRITE, Permission::Write, "alice")
        .token(READ, Permission::Read, "bob");
    config.outside_actor_id = OUTSIDE;
    config
}

pub async fn fake() -> GithubFake {
    GithubFake::start(config()).await.expect("the fake starts")
}

/// One API call with the headers GitHub asks clients to send.
pub async fn call(fake: &GithubFake, method: &str, path: &str, token: &str, body: Option<&Value>) -> HttpResponse {
    let auth = format!("Bearer {token}");
    let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON"));
    let headers = [
        ("Authorization", auth.as_str()),
        ("Accept", "application/vnd.github+json"),
        ("X-GitHub-Api-Version", "2022-11-28"),
        ("Content-Type", "application/json"),
    ];
    client::send(method, &format!("{}{path}", fake.url()), &headers, bytes.as_deref()).await.expect("the fake answers")
}

pub fn app_jwt(key_pem: &str, iss: Value, iat: i64, exp: i64) -> String {
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).expect("an RSA test key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &json!({"iat": iat, "exp": exp, "iss": iss}), &key)
        .expect("signing")
}

/// An installation token made the documented way (iat 60 s back, exp 10 min ahead).
pub async fn installation_token(fake: &GithubFake) -> String {
    let now = fake.now();
    let jwt = app_jwt(APP_KEY, json!(APP_ID), now - 60, now + 600);
    let res = call(fake, "POST", &format!("/app/installations/{INSTALLATION}/access_tokens"), &jwt, None).await;
    assert_eq!(res.status, 201, "{}", res.body);
    res.json()["token"].as_str().expect("a token").to_owned()
}

/// The ruleset breakglass would own: main protected, one team bypassing.
pub fn breakglass_ruleset() -> Value {
    json!({
        "name": "breakglass",
        "target": "branch",
        "enforcement": "active",
        "bypass_actors": [{"actor_id": TEAM_ID, "actor_type": "Team", "bypass_mode": "always"}],
        "conditions": {"ref_name": {"include": ["~DEFAULT_BRANCH"], "exclude": []}},
        "rules": [{"type": "deletion"}, {"type": "non_fast_forward"}, {"type": "pull_request", "parameters": {"required_approving_review_count": 1, "dismiss_stale_reviews_on_push": true, "require_code_owner_review": false, "require_last_push_approval": false, "required_review_thread_resolution": false}}],
    })
}

pub async fn create(fake: &GithubFake, body: &Value) -> u64 {
    let res = call(fake, "POST", "/repos/acme/payments/rulesets", ADMIN, Some(body)).await;
    assert_eq!(res.status, 201, "{}", res.body);
    res.json()["id"].as_u64().expect("an id")
}

/// Where the fixtures are.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/github/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}
