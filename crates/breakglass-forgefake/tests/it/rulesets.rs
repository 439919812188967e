//! Rulesets: create, read, replace-on-PUT, bypass actors' visibility,
//! validation, history versions, effective rules for a branch.

use serde_json::{Value, json};

use crate::common::*;

fn path(id: u64) -> String {
    format!("/repos/acme/payments/rulesets/{id}")
}

#[tokio::test]
async fn put_replaces_the_arrays_it_sends_and_keeps_the_fields_it_does_not() {
    let fake = fake().await;
    let id = create(&fake, &breakglass_ruleset()).await;
    let actors = json!([
        {"actor_id": TEAM_ID, "actor_type": "Team", "bypass_mode": "always"},
        {"actor_id": 1001, "actor_type": "User", "bypass_mode": "always"},
    ]);
    let res = call(&fake, "PUT", &path(id), ADMIN, Some(&json!({"bypass_actors": actors}))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let after = res.json();
    assert_eq!(after["bypass_actors"], actors);
    assert_eq!(after["rules"], breakglass_ruleset()["rules"]);
    assert_eq!(after["name"], "breakglass");
    assert_eq!(after["conditions"], breakglass_ruleset()["conditions"]);

    // Sending a shorter array removes the rest: the array is replaced, not merged.
    let only_user = json!([{"actor_id": 1001, "actor_type": "User"}]);
    let after = call(&fake, "PUT", &path(id), ADMIN, Some(&json!({"bypass_actors": only_user}))).await.json();
    assert_eq!(after["bypass_actors"], json!([{"actor_id": 1001, "actor_type": "User", "bypass_mode": "always"}]));
    let after = call(&fake, "PUT", &path(id), ADMIN, Some(&json!({"rules": [{"type": "deletion"}]}))).await.json();
    assert_eq!(after["rules"], json!([{"type": "deletion"}]));
    assert_eq!(after["bypass_actors"].as_array().map(Vec::len), Some(1));
    assert_eq!(fake.ruleset(id).unwrap()["rules"], json!([{"type": "deletion"}]));
}

#[tokio::test]
async fn bypass_actors_are_shown_only_to_a_caller_who_may_edit_the_ruleset() {
    let fake = fake().await;
    let id = create(&fake, &breakglass_ruleset()).await;
    let admin = call(&fake, "GET", &path(id), ADMIN, None).await.json();
    assert_eq!(admin["bypass_actors"], breakglass_ruleset()["bypass_actors"]);
    for token in [READ, WRITE] {
        let res = call(&fake, "GET", &path(id), token, None).await;
        assert_eq!(res.status, 200);
        let body = res.json();
        assert!(body.get("bypass_actors").is_none(), "{body}");
        assert_eq!(body["rules"], breakglass_ruleset()["rules"]);
        // Nor can they change it.
        assert_eq!(call(&fake, "PUT", &path(id), token, Some(&json!({"bypass_actors": []}))).await.status, 403);
        assert_eq!(call(&fake, "DELETE", &path(id), token, None).await.status, 403);
    }
    let installation = installation_token(&fake).await;
    assert!(call(&fake, "GET", &path(id), &installation, None).await.json()["bypass_actors"].is_array());
    // And the history's state follows the same rule.
    let v = fake.ruleset_history(id)[0]["version_id"].as_u64().unwrap();
    let read = call(&fake, "GET", &format!("{}/history/{v}", path(id)), READ, None).await.json();
    assert!(read["state"].get("bypass_actors").is_none(), "{read}");
    let admin = call(&fake, "GET", &format!("{}/history/{v}", path(id)), ADMIN, None).await.json();
    assert!(admin["state"]["bypass_actors"].is_array());
}

#[tokio::test]
async fn list_items_lack_rules_and_conditions_and_targets_filter() {
    let fake = fake().await;
    create(&fake, &breakglass_ruleset()).await;
    let mut tag = breakglass_ruleset();
    tag["name"] = json!("tags");
    tag["target"] = json!("tag");
    create(&fake, &tag).await;
    let list = call(&fake, "GET", "/repos/acme/payments/rulesets", ADMIN, None).await.json();
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    for item in list.as_array().unwrap() {
        for absent in ["rules", "conditions", "bypass_actors"] {
            assert!(item.get(absent).is_none(), "{absent} in {item}");
        }
    }
    let tags = call(&fake, "GET", "/repos/acme/payments/rulesets?targets=tag", ADMIN, None).await.json();
    assert_eq!(tags.as_array().map(Vec::len), Some(1));
    assert_eq!(tags[0]["name"], "tags");
}

#[tokio::test]
async fn invalid_rulesets_answer_422_and_change_nothing() {
    let fake = fake().await;
    let id = create(&fake, &breakglass_ruleset()).await;
    let versions = fake.ruleset_history(id).len();
    let bad: [(&str, Value); 7] = [
        (
            "bypass_mode",
            json!({"bypass_actors": [{"actor_id": TEAM_ID, "actor_type": "Team", "bypass_mode": "bogus"}]}),
        ),
        ("actor_type", json!({"bypass_actors": [{"actor_id": TEAM_ID, "actor_type": "Squad"}]})),
        ("actor_id", json!({"bypass_actors": [{"actor_type": "Team", "bypass_mode": "always"}]})),
        ("actor_id", json!({"bypass_actors": [{"actor_type": "User", "actor_id": null}]})),
        ("enforcement", json!({"enforcement": "sometimes"})),
        ("target", json!({"target": "everything"})),
        ("rules", json!({"rules": [{"type": "no_such_rule"}]})),
    ];
    for (what, body) in bad {
        let res = call(&fake, "PUT", &path(id), ADMIN, Some(&body)).await;
        assert_eq!(res.status, 422, "{what}: {}", res.body);
        assert!(res.body.contains(what), "{what} not named in {}", res.body);
    }
    assert_eq!(fake.ruleset(id).unwrap()["bypass_actors"], breakglass_ruleset()["bypass_actors"]);
    assert_eq!(fake.ruleset_history(id).len(), versions);
    // GitHub's answer names the problem in its message (integrations/terraform-provider-github#2873).
    let res = call(&fake, "PUT", &path(id), ADMIN, Some(&json!({"bypass_actors": null}))).await;
    assert_eq!(res.status, 422);
    assert_eq!(res.json()["message"], "Invalid request.\n\nInvalid property /bypass_actors: data cannot be null.");
    // POST needs name and enforcement.
    let res = call(&fake, "POST", "/repos/acme/payments/rulesets", ADMIN, Some(&json!({"name": "x"}))).await;
    assert_eq!(res.status, 422);
    let res =
        call(&fake, "POST", "/repos/acme/payments/rulesets", ADMIN, Some(&json!({"enforcement": "active"}))).await;
    assert_eq!(res.status, 422);
    // Names are unique per repository.
    let res = call(&fake, "POST", "/repos/acme/payments/rulesets", ADMIN, Some(&breakglass_ruleset())).await;
    assert_eq!(res.status, 422);
    // DeployKey and OrganizationAdmin need no actor_id.
    let ok = json!({"bypass_actors": [{"actor_type": "DeployKey", "actor_id": null, "bypass_mode": "always"}, {"actor_type": "OrganizationAdmin", "actor_id": 1}]});
    assert_eq!(call(&fake, "PUT", &path(id), ADMIN, Some(&ok)).await.status, 200);
}

#[tokio::test]
async fn every_change_makes_a_history_version_with_its_actor_and_full_state() {
    let fake = fake().await;
    let id = create(&fake, &breakglass_ruleset()).await;
    fake.advance(10);
    let installation = installation_token(&fake).await;
    let grant = json!({"bypass_actors": [{"actor_id": TEAM_ID, "actor_type": "Team"}, {"actor_id": 1001, "actor_type": "User", "bypass_mode": "always"}]});
    assert_eq!(call(&fake, "PUT", &path(id), &installation, Some(&grant)).await.status, 200);
    fake.advance(10);
    fake.add_bypass_actor_directly(id, "User", Some(1002), "exempt");
    // The same state again is not a change.
    let same = fake.ruleset(id).unwrap();
    let res = call(&fake, "PUT", &path(id), ADMIN, Some(&json!({"bypass_actors": same["bypass_actors"]}))).await;
    assert_eq!(res.status, 200);

    let history = call(&fake, "GET", &format!("{}/history", path(id)), ADMIN, None).await.json();
    let history = history.as_array().unwrap().clone();
    assert_eq!(history.len(), 3, "{history:?}");
    let actors: Vec<(u64, &str)> =
        history.iter().map(|v| (v["actor"]["id"].as_u64().unwrap(), v["actor"]["type"].as_str().unwrap())).collect();
    assert_eq!(actors, [(OUTSIDE, "User"), (APP_ID, "Integration"), (1, "User")]);
    let ids: Vec<u64> = history.iter().map(|v| v["version_id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert_eq!(history[0]["updated_at"], "2026-05-28T20:27:00Z");
    for v in &history {
        assert!(v.get("state").is_none());
    }
    let middle = call(&fake, "GET", &format!("{}/history/{}", path(id), ids[1]), ADMIN, None).await.json();
    assert_eq!(middle["state"]["bypass_actors"].as_array().map(Vec::len), Some(2));
    assert_eq!(middle["state"]["rules"], breakglass_ruleset()["rules"]);
    let latest = call(&fake, "GET", &format!("{}/history/{}", path(id), ids[0]), ADMIN, None).await.json();
    assert_eq!(latest["state"]["bypass_actors"][2]["bypass_mode"], "exempt");
    assert_eq!(call(&fake, "GET", &format!("{}/history/999999", path(id)), ADMIN, None).await.status, 404);
}

#[tokio::test]
async fn rules_for_a_branch_are_the_active_rules_that_target_it() {
    let fake = fake().await;
    let id = create(&fake, &breakglass_ruleset()).await;
    let mut off = breakglass_ruleset();
    off["name"] = json!("off");
    off["enforcement"] = json!("disabled");
    create(&fake, &off).await;
    let rules = call(&fake, "GET", "/repos/acme/payments/rules/branches/main", READ, None).await.json();
    let rules = rules.as_array().unwrap();
    assert_eq!(rules.len(), 3);
    for r in rules {
        assert_eq!(r["ruleset_id"], id);
        assert_eq!(r["ruleset_source_type"], "Repository");
        assert_eq!(r["ruleset_source"], "acme/payments");
    }
    let dev = call(&fake, "GET", "/repos/acme/payments/rules/branches/dev", READ, None).await.json();
    assert_eq!(dev, json!([]));
}

#[tokio::test]
async fn current_user_can_bypass_follows_the_bypass_list() {
    let fake = fake().await;
    let mut body = breakglass_ruleset();
    body["bypass_actors"] = json!([{"actor_id": APP_ID, "actor_type": "Integration", "bypass_mode": "pull_request"}]);
    let id = create(&fake, &body).await;
    let installation = installation_token(&fake).await;
    assert_eq!(
        call(&fake, "GET", &path(id), &installation, None).await.json()["current_user_can_bypass"],
        "pull_requests_only"
    );
    assert_eq!(call(&fake, "GET", &path(id), READ, None).await.json()["current_user_can_bypass"], "never");
    fake.add_bypass_actor_directly(id, "Team", Some(300), "always");
    // bob is in team 300.
    assert_eq!(call(&fake, "GET", &path(id), READ, None).await.json()["current_user_can_bypass"], "always");
}

#[tokio::test]
async fn delete_removes_the_ruleset() {
    let fake = fake().await;
    let id = create(&fake, &breakglass_ruleset()).await;
    let res = call(&fake, "DELETE", &path(id), ADMIN, None).await;
    assert_eq!((res.status, res.body.as_str()), (204, ""));
    assert_eq!(call(&fake, "GET", &path(id), ADMIN, None).await.status, 404);
    assert_eq!(call(&fake, "PUT", &path(id), ADMIN, Some(&json!({}))).await.status, 404);
    // Another repository's ruleset id is not found under this one.
    let other = fake.create_ruleset_directly("acme/Hello-World", breakglass_ruleset());
    assert_eq!(call(&fake, "GET", &path(other), ADMIN, None).await.status, 404);
}

#[tokio::test]
async fn edits_behind_our_back_are_recorded_as_the_outside_actor() {
    let fake = fake().await;
    let id = create(&fake, &breakglass_ruleset()).await;
    fake.edit_ruleset_directly(id, |v| {
        v["enforcement"] = json!("disabled");
    });
    let rs = call(&fake, "GET", &path(id), ADMIN, None).await.json();
    assert_eq!(rs["enforcement"], "disabled");
    assert_eq!(rs["rules"], breakglass_ruleset()["rules"]);
    let history = fake.ruleset_history(id);
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["state"]["enforcement"], "disabled");
}
