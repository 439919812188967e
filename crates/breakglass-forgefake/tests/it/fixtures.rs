//! Each documented example in `fixtures/github/` against the fake's answer
//! for the same state: the same keys with the same JSON types. Where the
//! fake answers a key the example leaves out, the test names it and why.

use serde_json::{Value, json};

use crate::common::*;
use crate::shape::diff;

fn assert_shape(fixture_name: &str, doc: &Value, got: &Value, extra: &[&str]) {
    let mut out = Vec::new();
    diff(doc, got, "$", extra, &mut out);
    assert!(out.is_empty(), "{fixture_name}: {out:#?}\nanswer: {got:#}");
}

#[tokio::test]
async fn repository_ruleset_and_the_put_body_it_came_from() {
    let fake = fake().await;
    let id = create(&fake, &breakglass_ruleset()).await;
    // The documented PUT body is accepted as it stands.
    let put = fixture("ruleset-put-request.json");
    let res = call(&fake, "PUT", &format!("/repos/acme/payments/rulesets/{id}"), ADMIN, Some(&put)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let got = call(&fake, "GET", &format!("/repos/acme/payments/rulesets/{id}"), ADMIN, None).await.json();
    // current_user_can_bypass is documented for the repository endpoint; the example omits it.
    assert_shape("repository-ruleset.json", &fixture("repository-ruleset.json"), &got, &["current_user_can_bypass"]);
    for k in ["name", "target", "enforcement", "bypass_actors", "conditions", "rules"] {
        assert_eq!(got[k], put[k], "{k}");
    }
    assert_eq!(got["bypass_actors"], fixture("bypass-actors.json"));
    assert_shape("bypass-actors.json", &fixture("bypass-actors.json"), &got["bypass_actors"], &[]);
}

#[tokio::test]
async fn repository_ruleset_items() {
    let fake = fake().await;
    create(&fake, &breakglass_ruleset()).await;
    let got = call(&fake, "GET", "/repos/acme/payments/rulesets", ADMIN, None).await.json();
    // target is in the documented schema; the list example omits it.
    assert_shape("repository-ruleset-items.json", &fixture("repository-ruleset-items.json"), &got, &["target"]);
}

#[tokio::test]
async fn ruleset_history_and_version() {
    let fake = fake().await;
    let mut body = breakglass_ruleset();
    body["rules"] = fixture("ruleset-put-request.json")["rules"].clone();
    let id = create(&fake, &body).await;
    fake.add_bypass_actor_directly(id, "User", Some(1001), "always");
    let list = call(&fake, "GET", &format!("/repos/acme/payments/rulesets/{id}/history"), ADMIN, None).await.json();
    assert_shape("ruleset-history.json", &fixture("ruleset-history.json"), &list, &[]);
    let v = list[0]["version_id"].as_u64().unwrap();
    let got = call(&fake, "GET", &format!("/repos/acme/payments/rulesets/{id}/history/{v}"), READ, None).await.json();
    assert_shape("ruleset-version-with-state.json", &fixture("ruleset-version-with-state.json"), &got, &[]);
    // An administrator also sees the bypass actors in the state (not in the example: see the README).
    let got = call(&fake, "GET", &format!("/repos/acme/payments/rulesets/{id}/history/{v}"), ADMIN, None).await.json();
    assert_shape(
        "ruleset-version-with-state.json",
        &fixture("ruleset-version-with-state.json"),
        &got,
        &["bypass_actors"],
    );
}

#[tokio::test]
async fn rule_suite_items_and_rule_suite() {
    let fake = fake().await;
    let mut body = breakglass_ruleset();
    body["rules"] = json!([{"type": "commit_author_email_pattern", "parameters": {"operator": "contains", "pattern": "github"}}, {"type": "pull_request"}]);
    create(&fake, &body).await;
    let bypass = fake.push("acme/payments", "main", SHA_B, "alice", true);
    let items = call(&fake, "GET", "/repos/acme/payments/rulesets/rule-suites", ADMIN, None).await.json();
    let doc = fixture("rule-suite-items.json");
    assert_shape("rule-suite-items.json[0]", &doc[0], &items[0], &[]);
    // The second example has an evaluation_result: a ruleset in evaluate mode applied.
    let mut evaluate = breakglass_ruleset();
    evaluate["name"] = json!("evaluate");
    evaluate["enforcement"] = json!("evaluate");
    create(&fake, &evaluate).await;
    fake.push("acme/payments", "main", SHA_C, "bob", false);
    let items = call(&fake, "GET", "/repos/acme/payments/rulesets/rule-suites", ADMIN, None).await.json();
    assert_shape("rule-suite-items.json[1]", &doc[1], &items[0], &[]);

    fake.push("acme/payments", "main", SHA_A, "alice", true);
    let id = items[0]["id"].as_u64().unwrap() + 1;
    let got = call(&fake, "GET", &format!("/repos/acme/payments/rulesets/rule-suites/{id}"), ADMIN, None).await.json();
    assert_shape("rule-suite.json", &fixture("rule-suite.json"), &got, &["details"]);
    let first = call(
        &fake,
        "GET",
        &format!("/repos/acme/payments/rulesets/rule-suites/{}", bypass.rule_suite_id.unwrap()),
        ADMIN,
        None,
    )
    .await
    .json();
    let mut out = Vec::new();
    diff(&fixture("rule-suite.json"), &first, "$", &["details"], &mut out);
    assert_eq!(
        out,
        ["$.evaluation_result is missing"],
        "only a push that met an evaluate ruleset has an evaluation_result"
    );
}

#[tokio::test]
async fn team_membership() {
    let fake = fake().await;
    let put = fixture("team-membership-request.json");
    let got =
        call(&fake, "PUT", "/orgs/acme/teams/breakglass-payments/memberships/alice", ADMIN, Some(&put)).await.json();
    assert_shape("team-membership.json", &fixture("team-membership.json"), &got, &[]);
    assert_eq!(got["role"], "maintainer");
}

#[tokio::test]
async fn installation_token_and_its_request() {
    let fake = fake().await;
    let jwt = app_jwt(APP_KEY, json!(APP_ID), T0 - 60, T0 + 600);
    let req = fixture("installation-token-request.json");
    let res = call(&fake, "POST", "/app/installations/777/access_tokens", &jwt, Some(&req)).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let got = res.json();
    assert_shape("installation-token.json", &fixture("installation-token.json"), &got, &[]);
    assert_eq!(got["permissions"], req["permissions"]);
    assert_eq!(got["repository_selection"], "selected");
}

#[tokio::test]
async fn bad_credentials() {
    let fake = fake().await;
    let got = call(&fake, "GET", "/users/alice", "ghs_expired", None).await.json();
    assert_eq!(got, fixture("basic-error-bad-credentials.json"));
}

#[tokio::test]
async fn push_event() {
    let fake = fake().await;
    let mut got = fake.push("acme/payments", "brand-new", SHA_B, "alice", false).payload;
    let mut doc = fixture("push-event.json");
    // The example's repository carries dozens of URL templates; the fake
    // sends a subset, each with the documented type.
    let (doc_repo, got_repo) = (doc["repository"].take(), got["repository"].take());
    for (k, v) in got_repo.as_object().unwrap() {
        let documented = doc_repo.get(k).unwrap_or_else(|| panic!("repository.{k} is not in the documented example"));
        let mut out = Vec::new();
        diff(documented, v, &format!("$.repository.{k}"), &["user_view_type"], &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
    for k in ["id", "name", "full_name", "owner", "default_branch", "html_url", "private"] {
        assert!(got_repo.get(k).is_some(), "repository.{k}");
    }
    assert_shape("push-event.json", &doc, &got, &[]);
}

#[tokio::test]
async fn branch_rules() {
    let fake = fake().await;
    let mut body = breakglass_ruleset();
    body["rules"] =
        json!([{"type": "commit_message_pattern", "parameters": {"operator": "starts_with", "pattern": "issue"}}]);
    create(&fake, &body).await;
    let got = call(&fake, "GET", "/repos/acme/payments/rules/branches/main", READ, None).await.json();
    assert_shape("branch-rules.json", &fixture("branch-rules.json"), &got, &[]);
}
