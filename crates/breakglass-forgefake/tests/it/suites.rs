//! Rule suites: the record of pushes evaluated against rulesets.

use serde_json::{Value, json};

use crate::common::*;

fn results(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| (s["actor_name"].as_str().unwrap().to_owned(), s["result"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn pushes_record_rule_suites_that_filter_by_result_actor_ref_and_time() {
    let fake = fake().await;
    create(&fake, &breakglass_ruleset()).await;
    let old = fake.push("acme/payments", "main", SHA_B, "bob", false);
    fake.advance(7200);
    let push = fake.push("acme/payments", "main", SHA_C, "alice", true);
    assert_eq!(push.before, SHA_B);
    // A branch no ruleset targets makes no rule suite.
    assert!(fake.push("acme/payments", "dev", SHA_C, "alice", false).rule_suite_id.is_none());

    let base = "/repos/acme/payments/rulesets/rule-suites";
    let all = call(&fake, "GET", base, ADMIN, None).await.json();
    assert_eq!(results(&all), [("alice".to_owned(), "bypass".to_owned()), ("bob".to_owned(), "pass".to_owned())]);
    let bypass = call(&fake, "GET", &format!("{base}?rule_suite_result=bypass"), ADMIN, None).await.json();
    assert_eq!(results(&bypass), [("alice".to_owned(), "bypass".to_owned())]);
    assert_eq!(bypass[0]["id"], push.rule_suite_id.unwrap());
    assert_eq!((bypass[0]["before_sha"].as_str(), bypass[0]["after_sha"].as_str()), (Some(SHA_B), Some(SHA_C)));
    assert_eq!(bypass[0]["ref"], "refs/heads/main");
    assert_eq!(
        (bypass[0]["repository_id"].as_u64(), bypass[0]["repository_name"].as_str()),
        (Some(404), Some("payments"))
    );
    let fail = call(&fake, "GET", &format!("{base}?rule_suite_result=fail"), ADMIN, None).await.json();
    assert_eq!(fail, json!([]));
    let bob = call(&fake, "GET", &format!("{base}?actor_name=bob"), ADMIN, None).await.json();
    assert_eq!(results(&bob), [("bob".to_owned(), "pass".to_owned())]);
    for r in ["main", "refs/heads/main", "refs%2Fheads%2Fmain"] {
        let by_ref = call(&fake, "GET", &format!("{base}?ref={r}"), ADMIN, None).await.json();
        assert_eq!(by_ref.as_array().map(Vec::len), Some(2), "{r}");
    }
    let hour = call(&fake, "GET", &format!("{base}?time_period=hour"), ADMIN, None).await.json();
    assert_eq!(results(&hour), [("alice".to_owned(), "bypass".to_owned())]);
    fake.advance(2 * 86_400);
    assert_eq!(call(&fake, "GET", base, ADMIN, None).await.json(), json!([]));
    let week = call(&fake, "GET", &format!("{base}?time_period=week"), ADMIN, None).await.json();
    assert_eq!(week.as_array().map(Vec::len), Some(2));
    assert_eq!(call(&fake, "GET", &format!("{base}?time_period=year"), ADMIN, None).await.status, 422);
    assert_eq!(call(&fake, "GET", &format!("{base}?rule_suite_result=maybe"), ADMIN, None).await.status, 422);
    // Only repository administrators see rule insights.
    assert_eq!(call(&fake, "GET", base, READ, None).await.status, 403);

    let detail = call(&fake, "GET", &format!("{base}/{}", push.rule_suite_id.unwrap()), ADMIN, None).await.json();
    let evaluations = detail["rule_evaluations"].as_array().unwrap();
    assert_eq!(evaluations.len(), 3);
    let pr = evaluations.iter().find(|e| e["rule_type"] == "pull_request").unwrap();
    assert_eq!(pr["result"], "fail");
    assert_eq!(pr["rule_source"]["type"], "ruleset");
    assert_eq!(pr["details"], "Changes must be made through a pull request.");
    let old_detail = call(&fake, "GET", &format!("{base}/{}", old.rule_suite_id.unwrap()), ADMIN, None).await.json();
    assert!(old_detail["rule_evaluations"].as_array().unwrap().iter().all(|e| e["result"] == "pass"));
    assert_eq!(call(&fake, "GET", &format!("{base}/999"), ADMIN, None).await.status, 404);
}

#[tokio::test]
async fn rule_suites_are_paged() {
    let fake = fake().await;
    create(&fake, &breakglass_ruleset()).await;
    for sha in [SHA_B, SHA_C, SHA_A] {
        fake.push("acme/payments", "main", sha, "alice", true);
    }
    let res = call(&fake, "GET", "/repos/acme/payments/rulesets/rule-suites?per_page=2", ADMIN, None).await;
    assert_eq!(res.json().as_array().map(Vec::len), Some(2));
    assert!(res.header("link").unwrap().contains("page=2>; rel=\"next\""));
}

#[tokio::test]
async fn an_enforced_push_goes_through_only_for_a_bypass_actor() {
    let fake = fake().await;
    create(&fake, &breakglass_ruleset()).await;
    // alice is not in the bypass team: refused, recorded, head unchanged.
    let refused = fake.push_enforced("acme/payments", "main", SHA_B, "alice");
    assert!(!refused.accepted());
    assert_eq!(fake.branch_head("acme/payments", "main").as_deref(), Some(SHA_A));
    assert!(refused.payload.is_null());
    // A pending invitation is not a membership.
    let res = call(&fake, "PUT", "/orgs/acme/teams/breakglass-payments/memberships/eve", ADMIN, Some(&json!({}))).await;
    assert_eq!(res.json()["state"], "pending");
    assert_eq!(fake.push_enforced("acme/payments", "main", SHA_B, "eve").result, "fail");
    // alice granted through the team: the push bypasses.
    let res = call(
        &fake,
        "PUT",
        "/orgs/acme/teams/breakglass-payments/memberships/alice",
        ADMIN,
        Some(&json!({"role": "member"})),
    )
    .await;
    assert_eq!(res.status, 200);
    let ok = fake.push_enforced("acme/payments", "main", SHA_B, "alice");
    assert_eq!(ok.result, "bypass");
    assert_eq!(fake.branch_head("acme/payments", "main").as_deref(), Some(SHA_B));
    let suites = call(&fake, "GET", "/repos/acme/payments/rulesets/rule-suites", ADMIN, None).await.json();
    let got: Vec<(u64, &str)> =
        suites.as_array().unwrap().iter().map(|s| (s["id"].as_u64().unwrap(), s["result"].as_str().unwrap())).collect();
    assert_eq!(got[0], (ok.rule_suite_id.unwrap(), "bypass"));
    assert_eq!(got.iter().filter(|(_, r)| *r == "fail").count(), 2);
    assert!(got.iter().any(|(id, _)| Some(*id) == refused.rule_suite_id));
    // An unprotected branch: pass.
    let pass = fake.push_enforced("acme/payments", "dev", SHA_C, "eve");
    assert_eq!((pass.result.as_str(), pass.rule_suite_id), ("pass", None));
    // Classic protection is not lifted by a ruleset's bypass list.
    assert!(!fake.push_enforced("acme/Hello-World", "main", SHA_C, "alice").accepted());
}
