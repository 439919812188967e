//! Grants through the API: the lifecycle, every refusal the issue names,
//! exact expiry with time as an input, grant tokens, API tokens and policy
//! reload. (Issue 3.)

use axum::http::{Method, StatusCode};
use breakglass_core::scope::{Capability, Scope};
use breakglass_core::time::{Clock as _, Timestamp};
use breakglass_core::token::{Expect, KeySet, TokenError, verify};
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_approve_token_extend_revoke_each_writes_its_entries() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let (alice, bob) = (srv.login("alice", &setup.keys.alice).await, srv.login("bob", &setup.keys.bob).await);

    let before = srv.log_size().await;
    let (status, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "INC-42 hotfix")).await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    assert_eq!((g["state"].as_str(), g["effective"].as_bool()), (Some("pending"), Some(false)));
    assert_eq!(g["approvals_required"], 1);
    let id = g["id"].as_str().unwrap().to_owned();
    assert_eq!(srv.kinds_since(before).await, ["grant.requested"]);

    // Nothing is honoured while pending.
    let svc = srv.admin().await;
    let check = format!("/v1/check?principal=alice&scope={}&capability=push", MAIN.replace('/', "%2F"));
    assert_eq!(srv.get(&check, &svc).await.1["allowed"], false);
    let (status, e) = srv.call(Method::POST, &format!("/v1/grants/{id}/token"), Some(&alice), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");

    // Bob approves after ten minutes: the window starts now, not at the request.
    srv.clock.advance(600_000);
    let approved_at = srv.clock.now();
    let before = srv.log_size().await;
    let (status, g) = srv.post(&format!("/v1/grants/{id}/approve"), &bob, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{g}");
    assert_eq!(g["state"], "active");
    assert_eq!(g["activated_at"], approved_at.0);
    assert_eq!(g["expires_at"], approved_at.0 + 30 * 60_000);
    assert_eq!(srv.kinds_since(before).await, ["grant.approved", "grant.activated"]);
    let (_, c) = srv.get(&check, &svc).await;
    assert_eq!((c["allowed"].as_bool(), c["grant"]["id"].as_str()), (Some(true), Some(id.as_str())));
    // Another scope or capability is not covered.
    let other = format!("/v1/check?principal=alice&scope={}&capability=force-push", MAIN.replace('/', "%2F"));
    assert_eq!(srv.get(&other, &svc).await.1["allowed"], false);
    let other = "/v1/check?principal=alice&scope=git%3Apayments%2Fapi%40refs%2Fheads%2Fdev&capability=push";
    assert_eq!(srv.get(other, &svc).await.1["allowed"], false);

    // A token verifies offline against the server's JWKS, for this scope only.
    let (status, t) = srv.call(Method::POST, &format!("/v1/grants/{id}/token"), Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let token = t["token"].as_str().unwrap();
    let (_, jwks) = srv.call(Method::GET, "/.well-known/jwks.json", None, None).await;
    let keys = KeySet::from_jwks(&jwks.to_string()).unwrap();
    let expect = Expect::new(ISSUER, std::time::Duration::from_secs(4 * 3600))
        .with_principal("alice")
        .with_scope(Scope::parse(MAIN).unwrap())
        .with_capability(Capability::parse("push").unwrap());
    let claims = verify(token, &keys, &expect, srv.clock.now()).unwrap();
    assert_eq!(claims.grant_id, id);
    let wrong = expect.clone().with_scope(Scope::parse("git:payments/api@refs/heads/dev").unwrap());
    assert!(matches!(verify(token, &keys, &wrong, srv.clock.now()), Err(TokenError::ScopeNotGranted { .. })));
    let late = Timestamp(approved_at.0 + 30 * 60_000 + 1000);
    assert!(matches!(verify(token, &keys, &expect, late), Err(TokenError::Expired { .. })));

    // Extension needs a reason and stays within the policy maximum (60m).
    let (status, e) = srv.post(&format!("/v1/grants/{id}/extend"), &alice, json!({ "by": "15m", "reason": " " })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    let (status, e) =
        srv.post(&format!("/v1/grants/{id}/extend"), &alice, json!({ "by": "45m", "reason": "more" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("maximum"), "{e}");
    let (status, e) =
        srv.post(&format!("/v1/grants/{id}/extend"), &bob, json!({ "by": "15m", "reason": "more" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    let (status, g) =
        srv.post(&format!("/v1/grants/{id}/extend"), &alice, json!({ "by": "15m", "reason": "rollback" })).await;
    assert_eq!(status, StatusCode::OK, "{g}");
    assert_eq!(g["expires_at"], approved_at.0 + 45 * 60_000);

    // Revocation ends it at once.
    let before = srv.log_size().await;
    let (status, g) = srv.post(&format!("/v1/grants/{id}/revoke"), &alice, json!({ "reason": "fixed" })).await;
    assert_eq!(status, StatusCode::OK, "{g}");
    assert_eq!((g["state"].as_str(), g["effective"].as_bool()), (Some("revoked"), Some(false)));
    // The review opens with the end (issue 7).
    assert_eq!(srv.kinds_since(before).await, ["grant.revoked", "review.opened"]);
    assert_eq!(srv.get(&check, &svc).await.1["allowed"], false);
    let (_, s) = srv.get(&format!("/v1/grants/{id}/status"), &svc).await;
    assert_eq!(s["state"], "revoked");

    // The grant's log indexes are exactly the entries that changed it (the
    // token's entry names the grant too, but changed nothing), and the log verifies.
    let (_, g) = srv.get(&format!("/v1/grants/{id}"), &alice).await;
    let indexes: Vec<u64> = g["log_indexes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let mut kinds = Vec::new();
    for i in indexes {
        let rec = srv.store.entries(i, i + 1).await.unwrap().remove(0);
        let e: serde_json::Value = serde_json::from_slice(&rec.data).unwrap();
        assert_eq!(e["grant"], id.as_str());
        kinds.push(e["kind"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        kinds,
        ["grant.requested", "grant.approved", "grant.activated", "grant.extended", "grant.revoked", "review.opened"]
    );
    assert!(srv.kinds_since(0).await.contains(&"grant.token_issued".to_owned()));
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_exact_even_before_the_timer_writes_it() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let alice = srv.login("alice", &setup.keys.alice).await;
    let bob = srv.login("bob", &setup.keys.bob).await;
    let svc = srv.admin().await;
    let (_, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "10m", "hotfix")).await;
    let id = g["id"].as_str().unwrap().to_owned();
    srv.post(&format!("/v1/grants/{id}/approve"), &bob, json!({})).await;
    let expires = srv.get(&format!("/v1/grants/{id}"), &alice).await.1["expires_at"].as_i64().unwrap();
    assert_eq!(srv.service.next_due().await.unwrap(), Some(Timestamp(expires)));

    // One millisecond before: honoured. At the expiry instant: not, though
    // no timer has run yet.
    srv.clock.advance(expires - srv.clock.now().0 - 1);
    assert_eq!(srv.get(&format!("/v1/grants/{id}/status"), &svc).await.1["effective"], true);
    srv.clock.advance(1);
    let (_, s) = srv.get(&format!("/v1/grants/{id}/status"), &svc).await;
    assert_eq!((s["effective"].as_bool(), s["state"].as_str()), (Some(false), Some("expired")));
    let (status, _) = srv.call(Method::POST, &format!("/v1/grants/{id}/token"), Some(&alice), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) =
        srv.post(&format!("/v1/grants/{id}/extend"), &alice, json!({ "by": "1m", "reason": "late" })).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The timer's pass writes one entry, stamped with the exact expiry.
    srv.clock.advance(5_000);
    let before = srv.log_size().await;
    assert_eq!(srv.service.expire_due().await.unwrap(), 1);
    assert_eq!(srv.service.expire_due().await.unwrap(), 0, "expiry happens once");
    let rec = srv.store.entries(before, before + 1).await.unwrap().remove(0);
    let entry: serde_json::Value = serde_json::from_slice(&rec.data).unwrap();
    assert_eq!(entry["kind"], "grant.expired");
    assert_eq!(entry["data"]["noticed_late_ms"], 5_000);
    // Nothing else is due but the review's deadline (issue 7).
    assert_eq!(
        srv.service.next_due().await.unwrap(),
        Some(breakglass_core::time::Timestamp(srv.clock.now().0 + 72 * 3_600_000))
    );
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_approval_activates_at_once_and_pending_requests_lapse() {
    // Policy with an auto-approve permit for oncall on main.
    let setup = Setup::new();
    std::fs::write(
        setup.dir.path().join("policy/auto.cedar"),
        r#"@id("oncall-self-approve") permit (principal in Breakglass::Group::"oncall",
            action == Breakglass::Action::"auto-approve", resource is Breakglass::GitRef)
            when { resource.ref == "refs/heads/main" };"#,
    )
    .unwrap();
    let srv = Server::sqlite(&setup).await;
    let alice = srv.login("alice", &setup.keys.alice).await;
    let before = srv.log_size().await;
    let (status, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "sev1")).await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    assert_eq!((g["state"].as_str(), g["effective"].as_bool()), (Some("active"), Some(true)));
    assert_eq!(srv.kinds_since(before).await, ["grant.requested", "grant.activated"]);

    // Release needs two approvals; nobody approves; it lapses after 30 minutes.
    let (_, g) = srv.post("/v1/grants", &alice, request_body(RELEASE, "push", "30m", "release fix")).await;
    let id = g["id"].as_str().unwrap().to_owned();
    assert_eq!(g["state"], "pending");
    srv.clock.advance(30 * 60_000);
    let bob = srv.login("bob", &setup.keys.bob).await;
    let (status, e) = srv.post(&format!("/v1/grants/{id}/approve"), &bob, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "approval of an expired request: {e}");
    assert_eq!(srv.service.expire_due().await.unwrap(), 2, "the lapsed request and the expired grant");
    let (_, g) = srv.get(&format!("/v1/grants/{id}"), &alice).await;
    assert_eq!(g["state"], "lapsed");
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_clear_4xx_and_change_nothing() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let alice = srv.login("alice", &setup.keys.alice).await;
    let bob = srv.login("bob", &setup.keys.bob).await;
    let carol = srv.login("carol", &setup.keys.carol).await;
    let dave = srv.login("dave", &setup.keys.dave).await;

    let before = srv.log_size().await;
    // Missing reason, bad scope, bad capability, bad duration, unknown fields, a huge body: 400/413, no entry.
    for (body, want) in [
        (request_body(MAIN, "push", "30m", "  "), "reason"),
        (request_body("git:payments/api", "push", "30m", "x"), "git:payments/api"),
        (request_body(MAIN, "fly", "30m", "x"), "fly"),
        (request_body(MAIN, "push", "30x", "x"), "30x"),
        (
            json!({ "scopes": [MAIN], "capabilities": ["push"], "duration": "30m", "reason": "x", "admin": true }),
            "admin",
        ),
    ] {
        let (status, e) = srv.post("/v1/grants", &alice, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
        assert!(e["error"]["message"].as_str().unwrap().contains(want), "{want}: {e}");
    }
    let huge = request_body(MAIN, "push", "30m", &"x".repeat(70_000));
    assert_eq!(srv.post("/v1/grants", &alice, huge).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(srv.log_size().await, before, "bad input writes nothing");

    // Over the maximum duration, and a scope outside policy: 403 with the
    // policy's reasons, and one entry recording the refusal each.
    let (status, e) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "2h", "x")).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("policy_denied")), "{e}");
    let (status, e) =
        srv.post("/v1/grants", &alice, request_body("git:payments/api@refs/heads/dev", "push", "30m", "x")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    assert!(!e["error"]["reasons"].as_array().unwrap().is_empty(), "{e}");
    // Dave is in no group: nothing permits him.
    assert_eq!(srv.post("/v1/grants", &dave, request_body(MAIN, "push", "30m", "x")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(srv.kinds_since(before).await, ["grant.refused", "grant.refused", "grant.refused"]);

    // Approvals: never the requester, only whom policy allows, once per person.
    let (_, g) = srv.post("/v1/grants", &alice, request_body(RELEASE, "push", "30m", "release")).await;
    let id = g["id"].as_str().unwrap().to_owned();
    assert_eq!(g["approvals_required"], 2);
    let approve = format!("/v1/grants/{id}/approve");
    let before = srv.log_size().await;
    let (status, e) = srv.post(&approve, &alice, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "approver equal to requester: {e}");
    let (status, e) = srv.post(&approve, &dave, json!({})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("policy_denied")), "{e}");
    assert_eq!(srv.log_size().await, before);
    assert_eq!(srv.post(&approve, &bob, json!({})).await.0, StatusCode::OK);
    let (status, e) = srv.post(&approve, &bob, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "double approval by one person: {e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("already approved"), "{e}");
    let (status, g) = srv.post(&approve, &carol, json!({})).await;
    assert_eq!((status, g["state"].as_str()), (StatusCode::OK, Some("active")), "{g}");

    // Credentials: none, garbage, a revoked API token, a token of the wrong role.
    assert_eq!(srv.call(Method::GET, "/v1/grants", None, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(srv.get("/v1/grants", "bgk_0123456789abcdef_nope").await.0, StatusCode::UNAUTHORIZED);
    let admin = srv.admin().await;
    let (status, t) = srv.post("/v1/tokens", &admin, json!({ "name": "ci-runner", "role": "service" })).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let ci = t["token"].as_str().unwrap().to_owned();
    assert_eq!(srv.get("/v1/whoami", &ci).await.1["role"], "service");
    assert_eq!(srv.post("/v1/tokens", &ci, json!({ "name": "x", "role": "admin" })).await.0, StatusCode::FORBIDDEN);
    assert_eq!(srv.post("/v1/grants", &ci, request_body(MAIN, "push", "30m", "x")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(srv.post("/v1/tokens", &bob, json!({ "name": "x", "role": "admin" })).await.0, StatusCode::FORBIDDEN);
    let (status, _) =
        srv.call(Method::DELETE, &format!("/v1/tokens/{}", t["id"].as_str().unwrap()), Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = srv.get("/v1/whoami", &ci).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(e["error"]["message"].as_str().unwrap().contains("revoked"), "{e}");
    let (_, list) = srv.get("/v1/tokens", &admin).await;
    assert!(list.to_string().contains("ci-runner") && !list.to_string().contains(&ci), "secrets are never listed");
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_policy_reload_keeps_the_old_policy_in_force() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let alice = srv.login("alice", &setup.keys.alice).await;
    let admin = srv.admin().await;
    let policy = setup.dir.path().join("policy/breakglass.cedar");
    let good = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, good.replace("refs/heads/main", "refs/heads/mian").replace("permit (", "permit (( "))
        .unwrap();
    let before = srv.log_size().await;
    let (status, e) = srv.call(Method::POST, "/v1/policy/reload", Some(&admin), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(!e["error"]["reasons"].as_array().unwrap().is_empty(), "{e}");
    assert_eq!(srv.log_size().await, before);
    // The old policy still decides.
    assert_eq!(srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "x")).await.0, StatusCode::CREATED);
    // A valid change takes effect and is logged; removing alice from the
    // principals file ends her session at once.
    std::fs::write(&policy, good.replace("context.duration_minutes <= 60", "context.duration_minutes <= 20")).unwrap();
    let (status, r) = srv.call(Method::POST, "/v1/policy/reload", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "x")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(srv.kinds_since(before).await[..2], ["grant.requested".to_owned(), "policy.reloaded".to_owned()]);
    let principals = setup.dir.path().join("principals.toml");
    let text = std::fs::read_to_string(&principals).unwrap();
    std::fs::write(&principals, text.replacen("name = \"alice\"", "name = \"alicia\"", 1)).unwrap();
    assert_eq!(srv.call(Method::POST, "/v1/policy/reload", Some(&admin), None).await.0, StatusCode::OK);
    assert_eq!(srv.get("/v1/whoami", &alice).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_jwks_and_openapi() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    assert_eq!(srv.call(Method::GET, "/healthz", None, None).await.0, StatusCode::OK);
    assert_eq!(srv.call(Method::GET, "/readyz", None, None).await.0, StatusCode::OK);
    let (status, jwks) = srv.call(Method::GET, "/.well-known/jwks.json", None, None).await;
    assert_eq!((status, jwks["keys"][0]["alg"].as_str()), (StatusCode::OK, Some("EdDSA")));
    assert_eq!(srv.call(Method::GET, "/v1/openapi.json", None, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(srv.call(Method::GET, "/metrics", None, None).await.0, StatusCode::UNAUTHORIZED);
    let admin = srv.admin().await;
    let (status, doc) = srv.get("/v1/openapi.json", &admin).await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/v1/grants", "/v1/grants/{id}/approve", "/v1/login", "/v1/check", "/v1/policy/reload"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    assert!(doc["components"]["schemas"].get("GrantView").is_some());
    assert_eq!(srv.get("/v1/nope", &admin).await.0, StatusCode::NOT_FOUND);
}
