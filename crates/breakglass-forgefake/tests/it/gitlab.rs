//! The fake GitLab against its documentation: protected-branch reads, a
//! per-user push entry added and removed by id, the refusals (non-member,
//! Free tier, unprotected branch, bad token), pagination, rate-limit headers
//! and injected failures.

use breakglass_forgefake::{
    GitlabConfig, GitlabFake, GitlabProject, GitlabProtectedBranch, GitlabUser, HttpResponse, client,
};
use serde_json::{Value, json};

pub const TOKEN: &str = "glpat-fake-0123456789";
pub const PROJECT: u64 = 5;
pub const ALICE: u64 = 1001;
pub const EVE: u64 = 1003;

pub fn gitlab_config() -> GitlabConfig {
    GitlabConfig::new(TOKEN)
        .project(
            GitlabProject::new(PROJECT, "acme/payments", "main")
                .protect(GitlabProtectedBranch::maintainers("main"))
                .protect(GitlabProtectedBranch::maintainers("release/*")),
        )
        .project(GitlabProject::new(6, "acme/other", "main"))
        .user(GitlabUser::new(ALICE, "alice", &[PROJECT]))
        .user(GitlabUser::new(EVE, "eve", &[6]))
}

pub async fn gitlab(config: GitlabConfig) -> GitlabFake {
    GitlabFake::start(config).await.expect("the fake starts")
}

/// One API call authenticated with `PRIVATE-TOKEN`; `path` is below `/api/v4`.
pub async fn gl(fake: &GitlabFake, method: &str, path: &str, body: Option<&Value>) -> HttpResponse {
    gl_with(fake, method, path, &[("PRIVATE-TOKEN", TOKEN)], body).await
}

pub async fn gl_with(
    fake: &GitlabFake,
    method: &str,
    path: &str,
    auth: &[(&str, &str)],
    body: Option<&Value>,
) -> HttpResponse {
    let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON"));
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend_from_slice(auth);
    client::send(method, &format!("{}/api/v4{path}", fake.url()), &headers, bytes.as_deref())
        .await
        .expect("the fake answers")
}

const MAIN: &str = "/projects/5/protected_branches/main";

#[tokio::test]
async fn a_user_entry_is_added_and_removed_by_its_id() {
    let fake = gitlab(gitlab_config()).await;
    let res = gl(&fake, "PATCH", MAIN, Some(&json!({"allowed_to_push": [{"user_id": ALICE}]}))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let branch = res.json();
    let entries = branch["push_access_levels"].as_array().expect("entries");
    assert_eq!(entries.len(), 2);
    let added = entries.iter().find(|e| e["user_id"] == json!(ALICE)).expect("alice's entry");
    for k in ["id", "access_level", "access_level_description", "user_id", "group_id", "deploy_key_id"] {
        assert!(added.get(k).is_some(), "{k} missing from {added}");
    }
    let entry = added["id"].as_u64().expect("an entry id");
    assert!(fake.push_entries("acme/payments", "main").contains(&(entry, Some(ALICE), 40)));

    // Adding the same user twice is a validation failure.
    let res = gl(&fake, "PATCH", MAIN, Some(&json!({"allowed_to_push": [{"user_id": ALICE}]}))).await;
    assert_eq!(res.status, 422, "{}", res.body);

    let res = gl(&fake, "PATCH", MAIN, Some(&json!({"allowed_to_push": [{"id": entry, "_destroy": true}]}))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(!res.json()["push_access_levels"].as_array().unwrap().iter().any(|e| e["id"] == json!(entry)));
    assert_eq!(fake.push_entries("acme/payments", "main").len(), 1);
    // The entry is gone: destroying it again finds nothing.
    let res = gl(&fake, "PATCH", MAIN, Some(&json!({"allowed_to_push": [{"id": entry, "_destroy": true}]}))).await;
    assert_eq!(res.status, 404, "{}", res.body);
}

#[tokio::test]
async fn the_project_may_be_named_by_its_url_encoded_path() {
    let fake = gitlab(gitlab_config()).await;
    let res = gl(&fake, "GET", "/projects/acme%2Fpayments/protected_branches/main", None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["name"], "main");
    let res = gl(&fake, "GET", "/projects/acme%2Fpayments/protected_branches/release%2F*", None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = gl(&fake, "GET", "/projects/acme%2Fnope/protected_branches", None).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.json()["message"], "404 Project Not Found");
}

#[tokio::test]
async fn a_user_who_is_not_a_project_member_is_refused() {
    let fake = gitlab(gitlab_config()).await;
    for uid in [EVE, 999_999] {
        let res = gl(&fake, "PATCH", MAIN, Some(&json!({"allowed_to_push": [{"user_id": uid}]}))).await;
        assert_eq!(res.status, 422, "{}", res.body);
    }
    assert_eq!(fake.push_entries("5", "main").len(), 1);
}

#[tokio::test]
async fn the_free_tier_refuses_user_entries_and_hides_user_ids() {
    let fake = gitlab(gitlab_config().free()).await;
    let res = gl(&fake, "PATCH", MAIN, Some(&json!({"allowed_to_push": [{"user_id": ALICE}]}))).await;
    assert_eq!(res.status, 422, "{}", res.body);
    assert_eq!(res.json()["message"]["push_access_levels.user"], json!(["must be blank"]));
    assert_eq!(fake.push_entries("5", "main").len(), 1);
    let create = json!({"name": "hotfix", "allowed_to_push": [{"user_id": ALICE}]});
    let res = gl(&fake, "POST", "/projects/5/protected_branches", Some(&create)).await;
    assert_eq!(res.status, 422, "{}", res.body);
    let got = gl(&fake, "GET", MAIN, None).await.json();
    let entry = &got["push_access_levels"][0];
    assert!(entry.get("user_id").is_none() && entry.get("group_id").is_none(), "{entry}");
    assert!(got.get("inherited").is_none());
    // Role levels still work on Free.
    let res = gl(&fake, "PATCH", MAIN, Some(&json!({"allowed_to_push": [{"access_level": 30}]}))).await;
    assert_eq!(res.status, 200, "{}", res.body);
}

#[tokio::test]
async fn an_unprotected_branch_is_not_found() {
    let fake = gitlab(gitlab_config()).await;
    for method in ["GET", "PATCH", "DELETE"] {
        let body = json!({"allowed_to_push": [{"user_id": ALICE}]});
        let res = gl(&fake, method, "/projects/5/protected_branches/dev", Some(&body)).await;
        assert_eq!(res.status, 404, "{method}: {}", res.body);
        assert_eq!(res.json()["message"], "404 Not found");
    }
}

#[tokio::test]
async fn protect_and_unprotect() {
    let fake = gitlab(gitlab_config()).await;
    let body = json!({"name": "hotfix", "allowed_to_push": [{"user_id": ALICE}], "allow_force_push": true});
    let res = gl(&fake, "POST", "/projects/5/protected_branches", Some(&body)).await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.json()["allow_force_push"], true);
    assert_eq!(fake.push_entries("5", "hotfix").len(), 1);
    let res = gl(&fake, "POST", "/projects/5/protected_branches", Some(&body)).await;
    assert_eq!(res.status, 409, "{}", res.body);
    let res = gl(&fake, "DELETE", "/projects/5/protected_branches/hotfix", None).await;
    assert_eq!(res.status, 204);
    assert_eq!(gl(&fake, "GET", "/projects/5/protected_branches/hotfix", None).await.status, 404);
}

#[tokio::test]
async fn lists_are_paged_with_gitlab_headers() {
    let mut config = gitlab_config();
    for i in 0..3 {
        config.projects[0].protected_branches.push(GitlabProtectedBranch::maintainers(&format!("stable-{i}")));
    }
    let fake = gitlab(config).await;
    let base = format!("{}/api/v4/projects/5/protected_branches", fake.url());
    let res = gl(&fake, "GET", "/projects/5/protected_branches?per_page=2", None).await;
    assert_eq!(res.json().as_array().map(Vec::len), Some(2));
    assert_eq!(res.header("x-total"), Some("5"));
    assert_eq!(res.header("x-total-pages"), Some("3"));
    assert_eq!(res.header("x-page"), Some("1"));
    assert_eq!(res.header("x-per-page"), Some("2"));
    assert_eq!(res.header("x-next-page"), Some("2"));
    assert_eq!(res.header("x-prev-page"), Some(""));
    let link = res.header("link").expect("a link header");
    assert!(link.contains(&format!("<{base}?page=2&per_page=2>; rel=\"next\"")), "{link}");
    assert!(link.contains(&format!("<{base}?page=3&per_page=2>; rel=\"last\"")), "{link}");
    assert!(!link.contains("rel=\"prev\""), "{link}");
    let res = gl(&fake, "GET", "/projects/5/protected_branches?per_page=2&page=3", None).await;
    assert_eq!(res.json().as_array().map(Vec::len), Some(1));
    assert_eq!(res.header("x-next-page"), Some(""));
    assert!(res.header("link").unwrap().contains("rel=\"prev\""));
    // Default page size 20; search narrows by name.
    let res = gl(&fake, "GET", "/projects/5/protected_branches", None).await;
    assert_eq!(res.json().as_array().map(Vec::len), Some(5));
    let res = gl(&fake, "GET", "/projects/5/protected_branches?search=stable", None).await;
    assert_eq!(res.json().as_array().map(Vec::len), Some(3));
    assert!(res.header("link").unwrap().contains("&search=stable"));
}

#[tokio::test]
async fn a_bad_or_missing_token_answers_401_and_bearer_is_accepted() {
    let fake = gitlab(gitlab_config()).await;
    let res = gl_with(&fake, "GET", MAIN, &[], None).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.json()["message"], "401 Unauthorized");
    let res = gl_with(&fake, "GET", MAIN, &[("PRIVATE-TOKEN", "glpat-wrong")], None).await;
    assert_eq!(res.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let res = gl_with(&fake, "GET", MAIN, &[("Authorization", bearer.as_str())], None).await;
    assert_eq!(res.status, 200, "{}", res.body);
}

#[tokio::test]
async fn users_are_found_by_username_and_by_id() {
    let fake = gitlab(gitlab_config()).await;
    let res = gl(&fake, "GET", "/users?username=alice", None).await;
    assert_eq!(res.status, 200);
    let list = res.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["id"], ALICE);
    assert_eq!(gl(&fake, "GET", "/users?username=nobody", None).await.json(), json!([]));
    let res = gl(&fake, "GET", &format!("/users/{EVE}"), None).await;
    assert_eq!(res.json()["username"], "eve");
    let res = gl(&fake, "GET", "/users/424242", None).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.json()["message"], "404 User Not Found");
}

#[tokio::test]
async fn rate_limits_failures_and_the_request_log() {
    let fake = gitlab(gitlab_config()).await;
    let res = gl(&fake, "GET", "/users/1001", None).await;
    assert_eq!(res.header("ratelimit-limit"), Some("2000"));
    assert_eq!(res.header("ratelimit-remaining"), Some("1999"));
    assert!(res.header("ratelimit-reset").and_then(|r| r.parse::<i64>().ok()).is_some());
    assert!(
        res.header("ratelimit-resettime").is_some_and(|t| t.ends_with(" GMT")),
        "{:?}",
        res.header("ratelimit-resettime")
    );

    fake.fail_next("PATCH", "/api/v4/projects/5/protected_branches", 502, 1);
    let body = json!({"allowed_to_push": [{"user_id": ALICE}]});
    assert_eq!(gl(&fake, "PATCH", MAIN, Some(&body)).await.status, 502);
    assert_eq!(fake.push_entries("5", "main").len(), 1);
    assert_eq!(gl(&fake, "PATCH", MAIN, Some(&body)).await.status, 200);

    fake.set_rate_limit(10, 0);
    let res = gl(&fake, "GET", "/users/1001", None).await;
    assert_eq!(res.status, 429);
    assert_eq!(res.header("ratelimit-remaining"), Some("0"));
    assert!(res.header("retry-after").is_some());

    let log = fake.requests();
    assert_eq!(log.len(), 4);
    assert_eq!(log[1].method, "PATCH");
    assert_eq!(log[1].path, "/api/v4/projects/5/protected_branches/main");
    assert!(log[1].headers.iter().any(|(k, v)| k == "private-token" && v == TOKEN));
    fake.clear_requests();
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn an_entry_added_directly_is_seen_by_the_api() {
    let fake = gitlab(gitlab_config()).await;
    let id = fake.add_push_entry_directly("acme/payments", "main", EVE);
    let got = gl(&fake, "GET", MAIN, None).await.json();
    let entry = got["push_access_levels"].as_array().unwrap().iter().find(|e| e["id"] == json!(id)).cloned();
    assert_eq!(entry.map(|e| e["user_id"].clone()), Some(json!(EVE)));
}
