//! Each documented example in `fixtures/gitlab/` against the fake GitLab's
//! answer for the same state: the same keys with the same JSON types. Keys
//! the fake answers beyond an example are named with the reason.

use serde_json::{Value, json};

use crate::gitlab::{ALICE, gitlab, gitlab_config, gl};
use crate::shape::diff;

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/gitlab/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

fn assert_shape(name: &str, got: &Value, extra: &[&str]) {
    let mut out = Vec::new();
    diff(&fixture(name), got, "$", extra, &mut out);
    assert!(out.is_empty(), "{name}: {out:#?}\nanswer: {got:#}");
}

// The examples' first entry is a role entry without `deploy_key_id`; the fake
// always answers it (documented as a response attribute, `null` here).
const ENTRY_EXTRA: &[&str] = &["deploy_key_id"];
// The PATCH examples are abridged to `name` and `push_access_levels`; the
// other keys are the documented response attributes of the update.
const PATCH_EXTRA: &[&str] =
    &["deploy_key_id", "id", "merge_access_levels", "allow_force_push", "code_owner_approval_required", "inherited"];

#[tokio::test]
async fn list_on_free_and_on_premium() {
    let fake = gitlab(gitlab_config().free()).await;
    let got = gl(&fake, "GET", "/projects/5/protected_branches", None).await.json();
    assert_shape("protected-branches.json", &got, ENTRY_EXTRA);
    let fake = gitlab(gitlab_config()).await;
    let got = gl(&fake, "GET", "/projects/5/protected_branches", None).await.json();
    assert_shape("protected-branches-premium.json", &got, ENTRY_EXTRA);
}

#[tokio::test]
async fn single_on_free_and_on_premium() {
    let fake = gitlab(gitlab_config().free()).await;
    let got = gl(&fake, "GET", "/projects/5/protected_branches/main", None).await.json();
    assert_shape("protected-branch.json", &got, ENTRY_EXTRA);
    let fake = gitlab(gitlab_config()).await;
    let got = gl(&fake, "GET", "/projects/5/protected_branches/main", None).await.json();
    // `inherited` is documented for Premium lists; the single example omits it.
    assert_shape("protected-branch-premium.json", &got, &["deploy_key_id", "inherited"]);
}

#[tokio::test]
async fn the_documented_patch_bodies_are_accepted_as_they_stand() {
    let fake = gitlab(gitlab_config()).await;
    let res =
        gl(&fake, "PATCH", "/projects/5/protected_branches/main", Some(&fixture("patch-create-request.json"))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let got = res.json();
    assert_shape("patch-create-response.json", &got, PATCH_EXTRA);
    // The documented destroy body names entry 12; send it with the id of the entry just made.
    let made = got["push_access_levels"].as_array().unwrap().last().unwrap()["id"].clone();
    let mut body = fixture("patch-destroy-request.json");
    assert_eq!(body["allowed_to_push"][0]["_destroy"], true);
    body["allowed_to_push"][0]["id"] = made.clone();
    let res = gl(&fake, "PATCH", "/projects/5/protected_branches/main", Some(&body)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let got = res.json();
    assert_shape("patch-destroy-response.json", &got, PATCH_EXTRA);
    assert!(!got["push_access_levels"].as_array().unwrap().iter().any(|e| e["id"] == made));
}

#[tokio::test]
async fn a_user_entry_has_the_documented_entry_shape() {
    let fake = gitlab(gitlab_config()).await;
    let body = json!({"allowed_to_push": [{"user_id": ALICE}]});
    let got = gl(&fake, "PATCH", "/projects/5/protected_branches/main", Some(&body)).await.json();
    let entry = got["push_access_levels"].as_array().unwrap().last().unwrap().clone();
    let doc = &fixture("protected-branches-premium.json")[0]["push_access_levels"][1];
    let mut out = Vec::new();
    diff(doc, &entry, "$", &[], &mut out);
    assert!(out.is_empty(), "{out:#?}\n{entry:#}");
    assert_eq!(entry["user_id"], ALICE);
}
