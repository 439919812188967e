//! Security: the API's doors, attacked through the router with real SSH
//! keys and signatures. Authorisation goes by what a credential is (a
//! person's session, an API token, a CI job, a grant token), never by the
//! name it carries; logins tell an outsider nothing; sessions can be ended;
//! numbers in paths and queries are bounded. Each attack of issue 14 that
//! used to succeed is here, and so are those that already failed.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::*;

fn message(v: &Value) -> String {
    v["error"]["message"].as_str().unwrap_or_default().to_owned()
}

/// Alice's active grant on `scope`, approved by bob; returns its id.
async fn active_grant(srv: &Server, alice: &str, bob: &str, scope: &str) -> String {
    let (status, g) = srv.post("/v1/grants", alice, request_body(scope, "push", "30m", "INC-7 hotfix")).await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    let id = g["id"].as_str().unwrap().to_owned();
    let (status, g) = srv.post(&format!("/v1/grants/{id}/approve"), bob, json!({})).await;
    assert_eq!((status, g["state"].as_str()), (StatusCode::OK, Some("active")), "{g}");
    id
}

async fn grant_token(srv: &Server, who: &str, id: &str) -> String {
    let (status, t) = srv.call(Method::POST, &format!("/v1/grants/{id}/token"), Some(who), None).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t["token"].as_str().unwrap().to_owned()
}

async fn entries_since(srv: &Server, from: u64) -> Vec<Value> {
    let recs = srv.store.entries(from, srv.log_size().await).await.unwrap();
    recs.iter().map(|r| serde_json::from_slice(&r.data).unwrap()).collect()
}

// Issue 14, finding 1: a grant token used as a bearer token acted as its
// holder on all their grants (token, extend, revoke: all 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_token_never_acts_as_its_holder() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let (alice, bob) = (srv.login("alice", &setup.keys.alice).await, srv.login("bob", &setup.keys.bob).await);
    let first = active_grant(&srv, &alice, &bob, MAIN).await;
    let second = active_grant(&srv, &alice, &bob, "git:payments/web@refs/heads/main").await;
    let stolen = grant_token(&srv, &alice, &first).await;

    for (method, path, body) in [
        (Method::POST, format!("/v1/grants/{second}/token"), None),
        (Method::POST, format!("/v1/grants/{second}/extend"), Some(json!({ "by": "10m", "reason": "more" }))),
        (Method::POST, format!("/v1/grants/{second}/revoke"), Some(json!({ "reason": "gone" }))),
        (Method::POST, format!("/v1/grants/{first}/extend"), Some(json!({ "by": "10m", "reason": "more" }))),
        (Method::POST, format!("/v1/grants/{first}/token"), None),
        (Method::GET, format!("/v1/grants/{second}/status"), None),
        (Method::GET, format!("/v1/grants/{first}"), None),
        (Method::GET, "/v1/grants".to_owned(), None),
        (Method::GET, "/v1/reviews".to_owned(), None),
        (Method::GET, "/v1/log/checkpoint".to_owned(), None),
        (Method::GET, "/v1/sessions".to_owned(), None),
        (
            Method::POST,
            "/v1/grants".to_owned(),
            Some(request_body("git:payments/web@refs/heads/main", "push", "30m", "x")),
        ),
    ] {
        let (status, e) = srv.call(method.clone(), &path, Some(&stolen), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {e}");
    }
    // What it may do: read its own grant's status.
    let (status, s) = srv.get(&format!("/v1/grants/{first}/status"), &stolen).await;
    assert_eq!((status, s["effective"].as_bool()), (StatusCode::OK, Some(true)), "{s}");
    let (_, who) = srv.get("/v1/whoami", &stolen).await;
    assert_eq!(who["kind"], "grant-token", "{who}");

    // Revoked, it still cannot reach the other grant.
    let (status, _) = srv.post(&format!("/v1/grants/{first}/revoke"), &alice, json!({ "reason": "done" })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = srv.call(Method::POST, &format!("/v1/grants/{second}/token"), Some(&stolen), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    let (_, g) = srv.get(&format!("/v1/grants/{second}"), &alice).await;
    assert_eq!(g["state"], "active", "the other grant is untouched: {g}");
    assert!(g["extensions"].as_array().is_none_or(|a| a.is_empty()), "{g}");
}

// Issue 14, finding 1: an API token named like a principal did the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_cannot_take_a_principals_name_nor_act_as_one() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let (alice, bob) = (srv.login("alice", &setup.keys.alice).await, srv.login("bob", &setup.keys.bob).await);
    let id = active_grant(&srv, &alice, &bob, MAIN).await;

    for role in ["reader", "service", "admin"] {
        let (status, e) = srv.post("/v1/tokens", &admin, json!({ "name": "alice", "role": role })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
        assert!(message(&e).contains("principal"), "{e}");
    }
    // A token under another name, whatever its role, is not alice.
    for role in ["reader", "service"] {
        let (status, t) = srv.post("/v1/tokens", &admin, json!({ "name": format!("bot-{role}"), "role": role })).await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        let token = t["token"].as_str().unwrap();
        for (path, body) in [
            (format!("/v1/grants/{id}/token"), json!({})),
            (format!("/v1/grants/{id}/extend"), json!({ "by": "10m", "reason": "more" })),
        ] {
            let (status, e) = srv.post(&path, token, body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{role} {path}: {e}");
        }
    }
    // An admin API token may mint a token or revoke, and the log says it was a token.
    let before = srv.log_size().await;
    let (status, _) = srv.post(&format!("/v1/grants/{id}/revoke"), &admin, json!({ "reason": "incident over" })).await;
    assert_eq!(status, StatusCode::OK);
    let entries = entries_since(&srv, before).await;
    let revoked = entries.iter().find(|e| e["kind"] == "grant.revoked").expect("a revocation entry");
    assert_eq!(revoked["data"]["credential"]["kind"], "api-token", "{revoked}");
}

// Issue 14, finding 1: every log entry names the credential that acted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_name_the_credential_that_acted() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let (alice, bob) = (srv.login("alice", &setup.keys.alice).await, srv.login("bob", &setup.keys.bob).await);
    let (_, who) = srv.get("/v1/sessions", &alice).await;
    let alice_session = who["sessions"][0]["id"].as_str().unwrap().to_owned();
    let before = srv.log_size().await;
    let id = active_grant(&srv, &alice, &bob, MAIN).await;
    grant_token(&srv, &alice, &id).await;
    let entries = entries_since(&srv, before).await;
    for e in &entries {
        let named =
            e["data"]["credential"]["kind"].is_string() || e["data"]["caused_by"]["credential"]["kind"].is_string();
        assert!(named, "entry without the credential that acted: {e}");
    }
    let activated = entries.iter().find(|e| e["kind"] == "grant.activated").unwrap();
    assert_eq!(activated["data"]["caused_by"]["actor"], "bob", "{activated}");
    let by_kind = |k: &str| entries.iter().find(|e| e["kind"] == k).unwrap_or_else(|| panic!("no {k}"));
    assert_eq!(by_kind("grant.requested")["data"]["credential"], json!({ "kind": "session", "id": alice_session }));
    assert_eq!(by_kind("grant.token_issued")["data"]["credential"]["kind"], "session");
    assert_eq!(by_kind("grant.approved")["actor"], "bob");
    assert_ne!(by_kind("grant.approved")["data"]["credential"]["id"], json!(alice_session));
}

// Issue 14, finding 8: /v1/check is for service and admin API tokens only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_service_and_admin_tokens_may_check_anyone() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let (alice, bob) = (srv.login("alice", &setup.keys.alice).await, srv.login("bob", &setup.keys.bob).await);
    let id = active_grant(&srv, &alice, &bob, MAIN).await;
    let grant = grant_token(&srv, &alice, &id).await;
    let (_, reader) = srv.post("/v1/tokens", &admin, json!({ "name": "audit", "role": "reader" })).await;
    let (_, service) = srv.post("/v1/tokens", &admin, json!({ "name": "git-host", "role": "service" })).await;
    let check = format!("/v1/check?principal=alice&scope={}&capability=push", MAIN.replace('/', "%2F"));
    for token in [&alice, &bob, &grant, reader["token"].as_str().unwrap()] {
        let (status, e) = srv.get(&check, token).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    }
    for token in [service["token"].as_str().unwrap(), &admin] {
        let (status, c) = srv.get(&check, token).await;
        assert_eq!((status, c["allowed"].as_bool()), (StatusCode::OK, Some(true)), "{c}");
    }
}

async fn challenge(srv: &Server, principal: &str) -> (StatusCode, Value) {
    srv.call(Method::POST, "/v1/login/challenge", None, Some(json!({ "principal": principal }))).await
}

async fn login_with(srv: &Server, principal: &str, challenge: &str, signature: &str) -> (StatusCode, Value) {
    let body = json!({ "principal": principal, "challenge": challenge, "signature": signature });
    srv.call(Method::POST, "/v1/login", None, Some(body)).await
}

// Issue 14, finding 9: the login endpoints listed who holds break-glass rights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_answer_alike_for_unknown_keyless_and_known_names() {
    let setup = Setup::with_principals("\n[[principal]]\nname = \"nokeys\"\ngroups = [\"oncall\"]\n");
    let srv = Server::sqlite(&setup).await;
    let ns = breakglass_core::sshsig::LOGIN_NAMESPACE;
    let mut answers = Vec::new();
    for name in ["alice", "nokeys", "nobody-here"] {
        let (status, ch) = challenge(&srv, name).await;
        assert_eq!(status, StatusCode::OK, "{name}: {ch}");
        let mut keys: Vec<&str> = ch.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        // Mallory signs the challenge with her own key.
        let text = ch["challenge"].as_str().unwrap();
        let (status, e) = login_with(&srv, name, text, &ssh_sign(&setup.keys.mallory, ns, text)).await;
        answers.push((keys.join(","), status, message(&e)));
    }
    assert_eq!(answers[0], answers[1], "a keyless name answers like a known one");
    assert_eq!(answers[0], answers[2], "an unknown name answers like a known one");
    assert_eq!(answers[0].1, StatusCode::UNAUTHORIZED);
    // A malformed name is refused for its form alone, whoever holds it.
    let (status, e) = challenge(&srv, "al ice").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
}

// Issue 14, weak spot: failed logins left no trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_recorded_at_a_bounded_rate() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let ns = breakglass_core::sshsig::LOGIN_NAMESPACE;
    let before = srv.log_size().await;
    let limit = breakglass_server::service::sessions::FAILED_LOGINS_PER_WINDOW as usize;
    for _ in 0..limit + 5 {
        let (_, ch) = challenge(&srv, "alice").await;
        let text = ch["challenge"].as_str().unwrap();
        let (status, _) = login_with(&srv, "alice", text, &ssh_sign(&setup.keys.mallory, ns, text)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let failed: Vec<Value> =
        entries_since(&srv, before).await.into_iter().filter(|e| e["kind"] == "login.failed").collect();
    assert_eq!(failed.len(), limit, "a flood is recorded up to the limit, not without bound");
    assert_eq!(failed[0]["data"]["principal"], "alice");
    assert_eq!(failed[0]["data"]["reason"], "key not listed");
    assert!(failed[0]["data"]["key_fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    // The next window records again and counts what went unrecorded.
    srv.clock.advance(breakglass_server::service::sessions::FAILED_LOGIN_WINDOW_MS);
    let (_, ch) = challenge(&srv, "alice").await;
    let text = ch["challenge"].as_str().unwrap();
    login_with(&srv, "alice", text, "garbage").await;
    let last = entries_since(&srv, srv.log_size().await - 1).await.pop().unwrap();
    assert_eq!((last["kind"].as_str(), last["data"]["unrecorded_before"].as_u64()), (Some("login.failed"), Some(5)));
}

fn principals_without_alice_key(setup: &Setup, alice_line: Option<&str>) -> String {
    let k = &setup.keys;
    let alice = match alice_line {
        Some(line) => format!("[[principal]]\nname = \"alice\"\ngroups = [\"oncall\"]\nssh_keys = [\"{line}\"]\n"),
        None => String::new(),
    };
    format!(
        "{alice}\n[[principal]]\nname = \"bob\"\ngroups = [\"approvers\", \"sre\"]\nssh_keys = [\"{}\"]\n\n[[principal]]\nname = \"carol\"\ngroups = [\"approvers\"]\nssh_keys = [\"{}\"]\n",
        k.bob.line, k.carol.line
    )
}

// Issue 14, finding 3: a session outlived its key, and came back when the
// name was re-added with another key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_with_its_key_and_never_comes_back() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let alice = srv.login("alice", &setup.keys.alice).await;
    assert_eq!(srv.get("/v1/whoami", &alice).await.0, StatusCode::OK);
    let file = setup.dir.path().join("principals.toml");

    // Alice's key is replaced by mallory's (say, a new laptop): the old session ends, with an entry.
    std::fs::write(&file, principals_without_alice_key(&setup, Some(&setup.keys.mallory.line))).unwrap();
    let before = srv.log_size().await;
    srv.service.reload("test").await.unwrap();
    let ended: Vec<Value> =
        entries_since(&srv, before).await.into_iter().filter(|e| e["kind"] == "session.ended").collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["data"]["principal"], "alice");
    let (status, e) = srv.get("/v1/whoami", &alice).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");

    // The old key comes back: the session stays ended.
    setup.write_principals();
    srv.service.reload("test").await.unwrap();
    let (status, _) = srv.get("/v1/whoami", &alice).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Removed without a reload the server sees only at first use: refused
    // then, and ended with an entry.
    let again = srv.login("alice", &setup.keys.alice).await;
    std::fs::write(&file, principals_without_alice_key(&setup, None)).unwrap();
    srv.service.reload("test").await.unwrap();
    let (status, _) = srv.get("/v1/whoami", &again).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    setup.write_principals();
    srv.service.reload("test").await.unwrap();
    assert_eq!(srv.get("/v1/whoami", &again).await.0, StatusCode::UNAUTHORIZED, "re-adding the name revives nothing");
}

// Issue 14, finding 3: logout only deleted the local file; nobody could end
// a session on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_ended_on_the_server() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let a1 = srv.login("alice", &setup.keys.alice).await;
    let a2 = srv.login("alice", &setup.keys.alice).await;
    let a3 = srv.login("alice", &setup.keys.alice).await;
    let bob = srv.login("bob", &setup.keys.bob).await;

    let (status, list) = srv.get("/v1/sessions", &a1).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "alice sees her own three: {list}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(sessions.iter().all(|s| s["principal"] == "alice"));
    let (status, _) = srv.get("/v1/sessions?principal=bob", &a1).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Logout ends the session on the server.
    let (status, out) = srv.call(Method::POST, "/v1/logout", Some(&a1), None).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(srv.get("/v1/whoami", &a1).await.0, StatusCode::UNAUTHORIZED);

    // Bob cannot end alice's session, and cannot even tell it exists.
    let (_, list) = srv.get("/v1/sessions", &a2).await;
    let a2_id = list["sessions"].as_array().unwrap().iter().find(|s| s["current"] == true).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = srv.call(Method::DELETE, &format!("/v1/sessions/{a2_id}"), Some(&bob), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = srv.call(Method::DELETE, "/v1/sessions?principal=alice", Some(&bob), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(srv.get("/v1/whoami", &a2).await.0, StatusCode::OK);

    // Alice ends one of her own; an admin ends all of them at once.
    let (status, _) = srv.call(Method::DELETE, &format!("/v1/sessions/{a2_id}"), Some(&a3), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(srv.get("/v1/whoami", &a2).await.0, StatusCode::UNAUTHORIZED);
    let before = srv.log_size().await;
    let (status, out) = srv.call(Method::DELETE, "/v1/sessions?principal=alice", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["ended"].as_array().unwrap().len(), 1, "only a3 was still active: {out}");
    assert_eq!(srv.get("/v1/whoami", &a3).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(srv.get("/v1/whoami", &bob).await.0, StatusCode::OK, "bob's session is untouched");
    let kinds = srv.kinds_since(before).await;
    assert_eq!(kinds, ["session.ended"]);
    let (_, all) = srv.get("/v1/sessions?principal=alice&all=true", &admin).await;
    assert!(all["sessions"].as_array().unwrap().iter().all(|s| s["state"] == "ended"), "{all}");
    srv.verify().await;
}

// Issue 14, finding 5: a huge log index panicked the handler; queries with
// bad numbers got plain-text answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_in_paths_and_queries_are_bounded() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    for index in ["9223372036854775808", "18446744073709551615", "9223372036854775807", "4"] {
        let (status, e) = srv.get(&format!("/v1/log/entries/{index}"), &admin).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{index}: {e}");
        assert_eq!(e["error"]["code"], "not_found");
    }
    for path in [
        "/v1/log/entries/18446744073709551616",
        "/v1/log/entries/-1",
        "/v1/log/entries/abc",
        "/v1/grants?limit=0",
        "/v1/grants?limit=1001",
        "/v1/grants?limit=99999999999",
        "/v1/reviews?limit=5000",
        "/v1/incidents?limit=-3",
        "/v1/notifications?limit=x",
        "/v1/drills?limit=0",
        "/v1/log/consistency?old=-1",
        "/v1/stats?since=yesterday",
        "/v1/grants?nonsense=1",
    ] {
        let (status, e) = srv.get(path, &admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {e}");
        assert_eq!(e["error"]["code"], "bad_request", "{path}: a JSON error, not plain text: {e}");
    }
    let (status, _) = srv.get("/v1/grants?limit=1000", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = srv.get("/v1/log/entries/0", &admin).await;
    assert_eq!(status, StatusCode::OK, "{e}");
}

// Issue 14, finding 5: a handler that panics answers 500 with the API's
// error body instead of dropping the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_500() {
    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    async fn boom() -> &'static str {
        panic!("boom")
    }
    let app = axum::Router::new()
        .route("/boom", axum::routing::get(boom))
        .layer(axum::middleware::from_fn(breakglass_server::http::catch_panic));
    let req = axum::http::Request::builder().uri("/boom").body(Body::empty()).unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "internal", "{body}");
}

// Attacks that already held, kept so that they keep holding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doors_that_held_still_hold() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let alice = srv.login("alice", &setup.keys.alice).await;
    // Forged and malformed bearer tokens.
    for token in [
        "bgs_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "bgk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwOi8vYnJlYWtnbGFzcy50ZXN0In0.",
        &alice[..alice.len() - 1],
        "",
    ] {
        let (status, _) = srv.get("/v1/whoami", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
    }
    // Self-approval.
    let (_, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "INC-9")).await;
    let id = g["id"].as_str().unwrap();
    let (status, e) = srv.post(&format!("/v1/grants/{id}/approve"), &alice, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    // Over the policy maximum.
    let (status, e) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "48h", "INC-9")).await;
    assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::FORBIDDEN, "{e}");
    // A login replay.
    let ns = breakglass_core::sshsig::LOGIN_NAMESPACE;
    let (_, ch) = challenge(&srv, "alice").await;
    let text = ch["challenge"].as_str().unwrap();
    let sig = ssh_sign(&setup.keys.alice, ns, text);
    assert_eq!(login_with(&srv, "alice", text, &sig).await.0, StatusCode::OK);
    assert_eq!(login_with(&srv, "alice", text, &sig).await.0, StatusCode::UNAUTHORIZED);
    srv.verify().await;
}

// Issue 14 (a local user on the server): a principals file or policy that
// others may write lets them give themselves break-glass rights.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_and_principals_that_others_may_write_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let principals = setup.dir.path().join("principals.toml");
    let policy = setup.dir.path().join("policy").join("breakglass.cedar");
    for (path, mode) in
        [(&principals, 0o666), (&principals, 0o620), (&policy, 0o646), (&setup.dir.path().join("policy"), 0o777)]
    {
        let before = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        let problems = match srv.service.reload("test").await {
            Err(breakglass_server::service::ServiceError::InvalidPolicy { problems, .. }) => problems,
            other => panic!("{}: reload with mode {mode:o} was not refused: {other:?}", path.display()),
        };
        let problem = problems.iter().find(|p| p.contains("writable by group or others")).expect("the reason");
        // The printed fix runs as printed and makes the reload pass.
        let fix = problem.split("(fix: ").nth(1).unwrap().trim_end_matches(')');
        let out = std::process::Command::new("sh").args(["-c", fix]).output().unwrap();
        assert!(out.status.success(), "{fix}");
        srv.service.reload("test").await.unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(before)).unwrap();
    }
    // Nor does a server start on them.
    std::fs::set_permissions(&principals, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(breakglass_server::service::load(&setup.config()).is_err());
}
