//! The whole grant lifecycle over real HTTP against a real `breakglass
//! serve` process, driven by the real CLI: login with keys made by
//! `ssh-keygen` and signatures from `ssh-keygen -Y sign`, request, approval
//! by a second principal, activation, token verification (and forged
//! tokens), extension, revocation, expiry with the server's clock moved
//! forward (time is an input), and `audit verify` over what each step
//! wrote. (Issue 3.)

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use breakglass_core::time::Timestamp;
use breakglass_core::token::{IssueRequest, TokenSigner};
use serde_json::{Value, json};

use breakglass_testkit::ssh::keygen;

use crate::served::Served;
use crate::support::BIN;

const MAIN: &str = "git:payments/api@refs/heads/main";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

#[test]
fn the_whole_lifecycle_over_http_with_the_real_cli() {
    let srv = Served::start();
    let keys = srv.path("keys");
    std::fs::create_dir(&keys).unwrap();
    let (alice_key, alice_pub) = keygen(&keys, "alice").into_parts();
    let (bob_key, bob_pub) = keygen(&keys, "bob").into_parts();
    let (mallory_key, _) = keygen(&keys, "mallory").into_parts();

    // The operator adds the principals' keys and reloads.
    let principals = format!(
        "[[principal]]\nname = \"alice\"\ngroups = [\"oncall\"]\nssh_keys = [\"{alice_pub}\"]\n\n\
         [[principal]]\nname = \"bob\"\ngroups = [\"approvers\"]\nssh_keys = [\"{bob_pub}\"]\n"
    );
    std::fs::write(srv.data.join("principals.toml"), principals).unwrap();
    // SIGHUP reloads policy and principals; the server says so when done.
    let hup = Command::new("kill").args(["-HUP", &srv.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    srv.wait_for_output("policy reloaded");
    // A challenge is given for any name (issue 14: it must not tell who
    // exists), so the reload shows in the principals it counts.
    let challenge = |who: &str| srv.http("POST", "/v1/login/challenge", "", &json!({ "principal": who })).0;
    assert_eq!((challenge("bob"), challenge("carol")), (200, 200));
    let reloaded = srv.json("admin", &["policy", "reload"]);
    assert_eq!(reloaded["principals"], 2);

    // Logins: a wrong key is refused; the right ones store a 0600 session.
    srv.refused(
        "alice",
        &["login", "--principal", "alice", "--key", mallory_key.to_str().unwrap()],
        1,
        "login refused",
    );
    srv.refused(
        "mallory",
        &["login", "--principal", "mallory", "--key", mallory_key.to_str().unwrap()],
        1,
        "login refused",
    );
    srv.ok("alice", &["login", "--principal", "alice", "--key", alice_key.to_str().unwrap()]);
    srv.ok("bob", &["login", "--principal", "bob", "--key", bob_key.to_str().unwrap()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(srv.path("alice.credentials.toml")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(srv.json("alice", &["whoami"])["name"], "alice");

    // Request; a missing reason never reaches the server.
    srv.refused("alice", &["request", "--scope", MAIN, "--cap", "push", "--for", "30m"], 2, "reason");
    srv.refused("alice", &["request", "--scope", MAIN, "--cap", "push", "--for", "2h", "--reason", "x"], 1, "policy");
    let g =
        srv.json("alice", &["request", "--scope", MAIN, "--cap", "push", "--for", "30m", "--reason", "INC-7 hotfix"]);
    let id = g["id"].as_str().unwrap().to_owned();
    assert_eq!(g["state"], "pending");

    // Approval: not by the requester; by bob, which activates it.
    srv.refused("alice", &["approve", &id], 1, "cannot approve");
    let g = srv.json("bob", &["approve", &id]);
    assert_eq!(g["state"], "active");
    srv.refused("bob", &["approve", &id], 1, "");

    // The token verifies offline against the pinned JWKS, for this scope and capability only.
    let token = srv.ok("alice", &["token", &id]).trim().to_owned();
    let jwks = srv.data.join("grant-token.jwks.json");
    let verify = |tok: &str, scope: &str, cap: &str| {
        srv.cli(
            "alice",
            &[
                "grant",
                "verify",
                tok,
                "--scope",
                scope,
                "--cap",
                cap,
                "--principal",
                "alice",
                "--key",
                jwks.to_str().unwrap(),
            ],
        )
    };
    assert!(verify(&token, MAIN, "push").status.success());
    assert_eq!(verify(&token, "git:payments/api@refs/heads/dev", "push").status.code(), Some(1));
    assert_eq!(verify(&token, MAIN, "force-push").status.code(), Some(1));

    // Forged tokens: alg none, HS256 keyed with the public key, another key,
    // an expired one signed with the real key.
    let parts: Vec<&str> = token.split('.').collect();
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"breakglass-grant+jwt"}"#), parts[1]);
    assert_eq!(verify(&none, MAIN, "push").status.code(), Some(1));
    let x = serde_json::from_str::<Value>(&std::fs::read_to_string(&jwks).unwrap()).unwrap()["keys"][0]["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let hs_input = format!("{}.{}", b64(br#"{"alg":"HS256","typ":"breakglass-grant+jwt"}"#), parts[1]);
    let mac = {
        use hmac::Mac as _;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(x.as_bytes()).unwrap();
        m.update(hs_input.as_bytes());
        m.finalize().into_bytes()
    };
    assert_eq!(verify(&format!("{hs_input}.{}", b64(&mac)), MAIN, "push").status.code(), Some(1));
    let now = Timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64);
    let forged_req = |activated: i64, expires: i64| IssueRequest {
        issuer: srv.url.clone(),
        principal: "alice".into(),
        grant_id: id.clone(),
        scopes: vec![MAIN.into()],
        capabilities: vec!["push".into()],
        activated_at: Timestamp(activated),
        expires_at: Timestamp(expires),
        token_id: "forged".into(),
    };
    let stranger = TokenSigner::from_seed(&[5u8; 32]);
    let other_key = stranger.issue(&forged_req(now.0 - 60_000, now.0 + 600_000), now).unwrap();
    assert_eq!(verify(&other_key, MAIN, "push").status.code(), Some(1));
    let seed = hex_key(&srv.data.join("grant-token.key"));
    let real = TokenSigner::from_seed(&seed);
    let old = Timestamp(now.0 - 3_600_000);
    let expired = real.issue(&forged_req(old.0 - 60_000, old.0 + 600_000), old).unwrap();
    assert!(String::from_utf8_lossy(&verify(&expired, MAIN, "push").stderr).contains("expired"));
    let future = Timestamp(now.0 + 3_600_000);
    let early = real.issue(&forged_req(future.0, future.0 + 600_000), future).unwrap();
    assert_eq!(verify(&early, MAIN, "push").status.code(), Some(1));

    // Extension with a reason, within the maximum; then revocation, which the
    // online check sees at once.
    srv.refused("alice", &["extend", &id, "--by", "45m", "--reason", "more"], 2, "maximum");
    let g = srv.json("alice", &["extend", &id, "--by", "15m", "--reason", "rollback needs time"]);
    assert_eq!(g["extensions"].as_array().unwrap().len(), 1);
    srv.ok("alice", &["revoke", &id, "--reason", "fixed"]);
    let online = srv.cli(
        "alice",
        &[
            "grant",
            "verify",
            &token,
            "--scope",
            MAIN,
            "--cap",
            "push",
            "--key",
            jwks.to_str().unwrap(),
            "--also-online",
        ],
    );
    assert_eq!(online.status.code(), Some(1), "{}", String::from_utf8_lossy(&online.stderr));

    // Expiry: a second grant, then the server's clock moves past its end.
    let g2 = srv.json("alice", &["request", "--scope", MAIN, "--cap", "push", "--for", "10m", "--reason", "again"]);
    let id2 = g2["id"].as_str().unwrap().to_owned();
    srv.ok("bob", &["approve", &id2]);
    let status = srv.ok("admin", &["grants", "--active"]);
    assert!(status.contains(&id2), "{status}");
    srv.advance_clock(10 * 60_000);
    let g2 = srv.json("alice", &["show", &id2]);
    assert_eq!((g2["state"].as_str(), g2["effective"].as_bool()), (Some("expired"), Some(false)));
    srv.refused("alice", &["token", &id2], 1, "not active");
    // Moving the clock ends what fell due before it answers: the expiry entry is there.
    let g2 = srv.json("alice", &["show", &id2]);
    let mut kinds = Vec::new();
    for i in g2["log_indexes"].as_array().unwrap() {
        let (_, e) = srv.http("GET", &format!("/v1/log/entries/{i}"), &srv.admin, &Value::Null);
        kinds.push(e["entry"]["kind"].as_str().unwrap().to_owned());
    }
    // The review opens in the same commit as the expiry (issue 7).
    assert_eq!(kinds, ["grant.requested", "grant.approved", "grant.activated", "grant.expired", "review.opened"]);

    // Every step is in the log, which verifies.
    let out = Command::new(BIN).args(["audit", "verify", "--json", "--data-dir"]).arg(&srv.data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        Command::new(BIN).args(["audit", "tail", "-n", "100", "--json", "--data-dir"]).arg(&srv.data).output().unwrap();
    let tail = String::from_utf8_lossy(&out.stdout);
    for kind in [
        "api_token.created",
        "policy.reloaded",
        "login",
        "grant.refused",
        "grant.requested",
        "grant.approved",
        "grant.activated",
        "grant.token_issued",
        "grant.extended",
        "grant.revoked",
        "grant.expired",
    ] {
        assert!(tail.contains(&format!("\"{kind}\"")), "{kind} missing from the log");
    }
    assert!(!tail.contains(&token) && !tail.contains(&srv.admin), "no secret in the log");
}

fn hex_key(path: &Path) -> [u8; 32] {
    let text = std::fs::read_to_string(path).unwrap();
    let bytes: Vec<u8> = (0..64).step_by(2).map(|i| u8::from_str_radix(&text.trim()[i..i + 2], 16).unwrap()).collect();
    bytes.try_into().unwrap()
}
