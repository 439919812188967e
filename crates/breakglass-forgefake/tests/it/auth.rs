//! GitHub App JWTs, installation tokens and plain tokens.

use serde_json::json;

use crate::common::*;

const TOKENS: &str = "/app/installations/777/access_tokens";

#[tokio::test]
async fn a_documented_app_jwt_gets_an_installation_token_for_one_hour() {
    let fake = fake().await;
    // The documented recipe: iat 60 s in the past, exp 10 minutes ahead, iss the app id.
    let jwt = app_jwt(APP_KEY, json!(APP_ID), T0 - 60, T0 + 600);
    let res = call(&fake, "POST", TOKENS, &jwt, None).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let body = res.json();
    let token = body["token"].as_str().unwrap();
    assert!(token.starts_with("ghs_"), "{token}");
    assert_ne!(token.len(), 40, "stateless installation tokens are not 40 characters long");
    assert_eq!(body["expires_at"], "2026-05-28T21:26:40Z");
    assert_eq!(body["repository_selection"], "all");
    assert_eq!(body["permissions"]["administration"], "write");
    let res = call(&fake, "GET", "/repos/acme/payments/rulesets", token, None).await;
    assert_eq!(res.status, 200, "{}", res.body);
}

#[tokio::test]
async fn the_client_id_is_accepted_as_issuer() {
    let fake = fake().await;
    let jwt = app_jwt(APP_KEY, json!("Iv23liFAKECLIENT"), T0, T0 + 300);
    assert_eq!(call(&fake, "POST", TOKENS, &jwt, None).await.status, 201);
    let jwt = app_jwt(APP_KEY, json!("12345"), T0, T0 + 300);
    assert_eq!(call(&fake, "POST", TOKENS, &jwt, None).await.status, 201);
}

#[tokio::test]
async fn app_jwts_that_github_refuses_are_refused() {
    let fake = fake().await;
    let cases = [
        ("valid for 11 minutes", app_jwt(APP_KEY, json!(APP_ID), T0, T0 + 660)),
        ("expired", app_jwt(APP_KEY, json!(APP_ID), T0 - 700, T0 - 100)),
        ("issued in the future beyond the skew", app_jwt(APP_KEY, json!(APP_ID), T0 + 120, T0 + 300)),
        ("another app's issuer", app_jwt(APP_KEY, json!(999), T0, T0 + 300)),
        ("signed with another key", app_jwt(OTHER_KEY, json!(APP_ID), T0, T0 + 300)),
        ("not a JWT", "ghp_not_a_jwt".to_owned()),
    ];
    for (what, jwt) in cases {
        let res = call(&fake, "POST", TOKENS, &jwt, None).await;
        assert_eq!(res.status, 401, "{what}: {}", res.body);
    }
    // An iat 60 s ahead of the fake's clock is still inside the documented drift.
    let jwt = app_jwt(APP_KEY, json!(APP_ID), T0 + 60, T0 + 300);
    assert_eq!(call(&fake, "POST", TOKENS, &jwt, None).await.status, 201);
}

#[tokio::test]
async fn an_app_jwt_is_not_a_token_for_the_rest_of_the_api() {
    let fake = fake().await;
    let jwt = app_jwt(APP_KEY, json!(APP_ID), T0 - 60, T0 + 600);
    assert_eq!(call(&fake, "GET", "/repos/acme/payments/rulesets", &jwt, None).await.status, 401);
}

#[tokio::test]
async fn an_unknown_installation_is_not_found() {
    let fake = fake().await;
    let jwt = app_jwt(APP_KEY, json!(APP_ID), T0 - 60, T0 + 600);
    assert_eq!(call(&fake, "POST", "/app/installations/778/access_tokens", &jwt, None).await.status, 404);
}

#[tokio::test]
async fn an_installation_token_expires_after_an_hour_on_every_endpoint() {
    let fake = fake().await;
    let token = installation_token(&fake).await;
    fake.advance(3599);
    assert_eq!(call(&fake, "GET", "/users/alice", &token, None).await.status, 200);
    fake.advance(1);
    for path in ["/users/alice", "/repos/acme/payments/rulesets", "/orgs/acme/teams/breakglass-payments/members"] {
        let res = call(&fake, "GET", path, &token, None).await;
        assert_eq!(res.status, 401, "{path}");
        assert_eq!(res.json()["message"], "Bad credentials");
    }
    // A JWT made now gets a fresh token.
    let token = installation_token(&fake).await;
    assert_eq!(call(&fake, "GET", "/users/alice", &token, None).await.status, 200);
}

#[tokio::test]
async fn a_token_narrowed_to_some_repositories_sees_only_those() {
    let fake = fake().await;
    let jwt = app_jwt(APP_KEY, json!(APP_ID), T0 - 60, T0 + 600);
    let body = json!({"repositories": ["Hello-World"], "permissions": {"administration": "write"}});
    let res = call(&fake, "POST", TOKENS, &jwt, Some(&body)).await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.json()["repository_selection"], "selected");
    assert_eq!(res.json()["permissions"], json!({"administration": "write"}));
    let token = res.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(call(&fake, "GET", "/repos/acme/Hello-World/rulesets", &token, None).await.status, 200);
    assert_eq!(call(&fake, "GET", "/repos/acme/payments/rulesets", &token, None).await.status, 404);
    // Never beyond what the installation holds.
    let body = json!({"permissions": {"organization_administration": "write"}});
    assert_eq!(call(&fake, "POST", TOKENS, &jwt, Some(&body)).await.status, 422);
    let body = json!({"repositories": ["no-such-repo"]});
    assert_eq!(call(&fake, "POST", TOKENS, &jwt, Some(&body)).await.status, 422);
}

#[tokio::test]
async fn plain_tokens_and_missing_credentials() {
    let fake = fake().await;
    assert_eq!(call(&fake, "GET", "/users/alice", READ, None).await.status, 200);
    assert_eq!(call(&fake, "GET", "/users/nobody", READ, None).await.status, 404);
    assert_eq!(call(&fake, "GET", "/users/alice", "pat-unknown", None).await.status, 401);
    let res =
        breakglass_forgefake::client::send("GET", &format!("{}/users/alice", fake.url()), &[], None).await.unwrap();
    assert_eq!(res.status, 401);
    let user = call(&fake, "GET", "/users/Alice", READ, None).await.json();
    assert_eq!(
        (user["login"].as_str(), user["id"].as_u64(), user["type"].as_str()),
        (Some("alice"), Some(1001), Some("User"))
    );
}
