//! Team membership: the indirect grant.

use serde_json::json;

use crate::common::*;

const ALICE: &str = "/orgs/acme/teams/breakglass-payments/memberships/alice";

#[tokio::test]
async fn an_org_member_becomes_an_active_member_until_deleted() {
    let fake = fake().await;
    let token = installation_token(&fake).await;
    assert_eq!(call(&fake, "GET", ALICE, &token, None).await.status, 404);
    let res = call(&fake, "PUT", ALICE, &token, Some(&json!({"role": "member"}))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    assert_eq!((body["role"].as_str(), body["state"].as_str()), (Some("member"), Some("active")));
    assert_eq!(body["url"], format!("{}/teams/{TEAM_ID}/memberships/alice", fake.url()));
    assert_eq!(fake.team_members("breakglass-payments"), ["alice"]);
    // PUT again is idempotent; the role may change.
    let res = call(&fake, "PUT", ALICE, &token, Some(&json!({"role": "maintainer"}))).await;
    assert_eq!(res.json()["role"], "maintainer");
    assert_eq!(fake.team_members("breakglass-payments"), ["alice"]);
    assert_eq!(call(&fake, "GET", ALICE, &token, None).await.json()["state"], "active");
    let res = call(&fake, "DELETE", ALICE, &token, None).await;
    assert_eq!((res.status, res.body.as_str()), (204, ""));
    assert_eq!(call(&fake, "GET", ALICE, &token, None).await.status, 404);
    assert!(fake.team_members("breakglass-payments").is_empty());
}

#[tokio::test]
async fn a_user_outside_the_org_is_only_invited() {
    let fake = fake().await;
    let path = "/orgs/acme/teams/breakglass-payments/memberships/eve";
    let res = call(&fake, "PUT", path, ADMIN, Some(&json!({"role": "member"}))).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["state"], "pending");
    assert!(fake.team_members("breakglass-payments").is_empty());
    assert_eq!(fake.pending_team_members("breakglass-payments"), ["eve"]);
    assert_eq!(call(&fake, "GET", path, ADMIN, None).await.json()["state"], "pending");
    fake.accept_invitation("eve");
    assert_eq!(call(&fake, "GET", path, ADMIN, None).await.json()["state"], "active");
    assert_eq!(fake.team_members("breakglass-payments"), ["eve"]);
}

#[tokio::test]
async fn a_team_synchronized_with_an_identity_provider_refuses_changes() {
    let fake = fake().await;
    let path = "/orgs/acme/teams/synced/memberships/alice";
    assert_eq!(call(&fake, "PUT", path, ADMIN, Some(&json!({"role": "member"}))).await.status, 403);
    assert_eq!(call(&fake, "DELETE", "/orgs/acme/teams/synced/memberships/bob", ADMIN, None).await.status, 403);
    assert_eq!(fake.team_members("synced"), ["bob"]);
    // Reading still works.
    assert_eq!(call(&fake, "GET", "/orgs/acme/teams/synced/memberships/bob", ADMIN, None).await.status, 200);
}

#[tokio::test]
async fn membership_needs_members_write_and_a_valid_role() {
    let fake = fake().await;
    for token in [READ, WRITE] {
        assert_eq!(call(&fake, "PUT", ALICE, token, Some(&json!({"role": "member"}))).await.status, 403);
        assert_eq!(call(&fake, "DELETE", ALICE, token, None).await.status, 403);
    }
    assert_eq!(call(&fake, "PUT", ALICE, ADMIN, Some(&json!({"role": "owner"}))).await.status, 422);
    assert_eq!(
        call(&fake, "PUT", "/orgs/acme/teams/nope/memberships/alice", ADMIN, Some(&json!({}))).await.status,
        404
    );
    assert_eq!(
        call(&fake, "PUT", "/orgs/acme/teams/breakglass-payments/memberships/nobody", ADMIN, Some(&json!({})))
            .await
            .status,
        404
    );
    assert_eq!(
        call(&fake, "PUT", "/orgs/other/teams/breakglass-payments/memberships/alice", ADMIN, Some(&json!({})))
            .await
            .status,
        404
    );
    // No body means role member.
    assert_eq!(call(&fake, "PUT", ALICE, ADMIN, None).await.json()["role"], "member");
}

#[tokio::test]
async fn injected_failures_answer_first_then_the_real_thing() {
    let fake = fake().await;
    fake.add_team_member_directly("breakglass-payments", "alice");
    fake.fail_next("DELETE", "/orgs/acme/teams/breakglass-payments/memberships/", 502, 5);
    for _ in 0..5 {
        assert_eq!(call(&fake, "DELETE", ALICE, ADMIN, None).await.status, 502);
        // Other methods on the same path are not affected.
        assert_eq!(call(&fake, "GET", ALICE, ADMIN, None).await.status, 200);
    }
    assert_eq!(fake.team_members("breakglass-payments"), ["alice"]);
    assert_eq!(call(&fake, "DELETE", ALICE, ADMIN, None).await.status, 204);
    assert!(fake.team_members("breakglass-payments").is_empty());
}

#[tokio::test]
async fn members_are_listed_in_pages() {
    let fake = fake().await;
    for login in ["admin", "alice", "bob"] {
        fake.add_team_member_directly("breakglass-payments", login);
    }
    let res = call(&fake, "GET", "/orgs/acme/teams/breakglass-payments/members?per_page=2", READ, None).await;
    assert_eq!(res.status, 200);
    let logins: Vec<String> =
        res.json().as_array().unwrap().iter().map(|u| u["login"].as_str().unwrap().to_owned()).collect();
    assert_eq!(logins, ["admin", "alice"]);
    assert!(res.header("link").unwrap().contains("rel=\"next\""));
    let res = call(&fake, "GET", "/orgs/acme/teams/breakglass-payments/members?per_page=2&page=2", READ, None).await;
    assert_eq!(res.json()[0]["login"], "bob");
    assert_eq!(res.json()[0]["id"], 1002);
}
