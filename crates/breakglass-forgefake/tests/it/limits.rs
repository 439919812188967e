//! Pagination, rate limits, the API version header, the request log, and
//! branch reads.

use breakglass_forgefake::client;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn lists_are_paged_with_a_link_header() {
    let fake = fake().await;
    for i in 0..5 {
        let mut body = breakglass_ruleset();
        body["name"] = json!(format!("r{i}"));
        create(&fake, &body).await;
    }
    let base = format!("{}/repos/acme/payments/rulesets", fake.url());
    let res = call(&fake, "GET", "/repos/acme/payments/rulesets?targets=branch&per_page=2", READ, None).await;
    assert_eq!(res.json().as_array().map(Vec::len), Some(2));
    assert_eq!(
        res.header("link"),
        Some(format!("<{base}?targets=branch&per_page=2&page=2>; rel=\"next\", <{base}?targets=branch&per_page=2&page=3>; rel=\"last\"").as_str())
    );
    let res = call(&fake, "GET", "/repos/acme/payments/rulesets?per_page=2&page=3", READ, None).await;
    assert_eq!(res.json().as_array().map(Vec::len), Some(1));
    let link = res.header("link").unwrap();
    assert!(
        link.contains("rel=\"prev\"") && link.contains("rel=\"first\"") && !link.contains("rel=\"next\""),
        "{link}"
    );
    // One page only: no Link header. per_page is capped at 100 and defaults to 30.
    let res = call(&fake, "GET", "/repos/acme/payments/rulesets?per_page=500", READ, None).await;
    assert_eq!(res.json().as_array().map(Vec::len), Some(5));
    assert!(res.header("link").is_none());
    let res = call(&fake, "GET", "/repos/acme/payments/rulesets?page=2", READ, None).await;
    assert_eq!(res.json(), json!([]));
}

#[tokio::test]
async fn every_answer_carries_rate_limit_headers() {
    let fake = fake().await;
    let first = call(&fake, "GET", "/users/alice", READ, None).await;
    let second = call(&fake, "GET", "/users/nobody", READ, None).await;
    for (res, used) in [(&first, "1"), (&second, "2")] {
        assert_eq!(res.header("x-ratelimit-limit"), Some("5000"));
        assert_eq!(res.header("x-ratelimit-used"), Some(used));
        assert_eq!(res.header("x-ratelimit-resource"), Some("core"));
        assert_eq!(res.header("x-ratelimit-reset"), Some((T0 + 3600).to_string().as_str()));
    }
    assert_eq!(second.header("x-ratelimit-remaining"), Some("4998"));
}

#[tokio::test]
async fn a_secondary_limit_answers_with_retry_after_for_the_next_requests() {
    let fake = fake().await;
    fake.secondary_rate_limit(2, 429, 30);
    for _ in 0..2 {
        let res = call(&fake, "GET", "/users/alice", READ, None).await;
        assert_eq!(res.status, 429);
        assert_eq!(res.header("retry-after"), Some("30"));
        assert!(res.json()["message"].as_str().unwrap().contains("secondary rate limit"));
    }
    assert_eq!(call(&fake, "GET", "/users/alice", READ, None).await.status, 200);
    fake.secondary_rate_limit(1, 403, 60);
    assert_eq!(call(&fake, "GET", "/users/alice", READ, None).await.status, 403);
}

#[tokio::test]
async fn an_exhausted_primary_limit_answers_403_until_the_reset() {
    let fake = fake().await;
    fake.set_rate_limit(5000, 1);
    assert_eq!(call(&fake, "GET", "/users/alice", READ, None).await.status, 200);
    let res = call(&fake, "GET", "/users/alice", READ, None).await;
    assert_eq!(res.status, 403);
    assert_eq!(res.header("x-ratelimit-remaining"), Some("0"));
    fake.advance(3600);
    let res = call(&fake, "GET", "/users/alice", READ, None).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-ratelimit-remaining"), Some("4999"));
}

#[tokio::test]
async fn the_api_version_is_echoed_and_unknown_versions_refused() {
    let fake = fake().await;
    let url = format!("{}/users/alice", fake.url());
    let auth = format!("Bearer {READ}");
    let res = client::send("GET", &url, &[("Authorization", &auth), ("X-GitHub-Api-Version", "2026-03-10")], None)
        .await
        .unwrap();
    assert_eq!((res.status, res.header("x-github-api-version-selected")), (200, Some("2026-03-10")));
    let res = client::send("GET", &url, &[("Authorization", &auth)], None).await.unwrap();
    assert_eq!((res.status, res.header("x-github-api-version-selected")), (200, Some("2022-11-28")));
    let res = client::send("GET", &url, &[("Authorization", &auth), ("X-GitHub-Api-Version", "2019-01-01")], None)
        .await
        .unwrap();
    assert_eq!(res.status, 400);
    assert!(res.header("content-type").unwrap().starts_with("application/json"));
}

#[tokio::test]
async fn the_request_log_shows_what_was_sent_and_where() {
    let fake = fake().await;
    let token = installation_token(&fake).await;
    fake.clear_requests();
    call(
        &fake,
        "PUT",
        "/orgs/acme/teams/breakglass-payments/memberships/alice",
        &token,
        Some(&json!({"role": "member"})),
    )
    .await;
    let log = fake.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str()),
        ("PUT", "/orgs/acme/teams/breakglass-payments/memberships/alice")
    );
    assert_eq!(log[0].body, r#"{"role":"member"}"#);
    assert!(log[0].headers.iter().any(|(k, v)| k == "authorization" && v.ends_with(&token)));
    assert!(!log[0].path.contains(&token));
}

#[tokio::test]
async fn branches_show_their_head_and_protection() {
    let fake = fake().await;
    let res = call(&fake, "GET", "/repos/acme/payments/branches/main", READ, None).await;
    assert_eq!(res.json()["commit"]["sha"], SHA_A);
    assert_eq!(res.json()["protected"], false);
    assert_eq!(call(&fake, "GET", "/repos/acme/payments/branches/nope", READ, None).await.status, 404);
    let res = call(&fake, "GET", "/repos/acme/payments/branches/main/protection", ADMIN, None).await;
    assert_eq!((res.status, res.json()["message"].as_str()), (404, Some("Branch not protected")));
    let res = call(&fake, "GET", "/repos/acme/Hello-World/branches/main/protection", ADMIN, None).await;
    assert_eq!((res.status, res.json()["enforce_admins"]["enabled"].as_bool()), (200, Some(true)));
    create(&fake, &breakglass_ruleset()).await;
    assert_eq!(call(&fake, "GET", "/repos/acme/payments/branches/main", READ, None).await.json()["protected"], true);
    fake.push("acme/payments", "main", SHA_B, "alice", true);
    assert_eq!(
        call(&fake, "GET", "/repos/acme/payments/branches/main", READ, None).await.json()["commit"]["sha"],
        SHA_B
    );
    assert_eq!(fake.branch_head("acme/payments", "main").as_deref(), Some(SHA_B));
    assert_eq!(call(&fake, "GET", "/repos/acme/nope/branches/main", READ, None).await.status, 404);
}
