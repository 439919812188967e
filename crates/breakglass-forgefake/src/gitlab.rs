//! A loopback fake of GitLab's REST API v4, for the protected-branch part
//! breakglass's GitLab adapter needs: reading protected branches, adding a
//! per-user push access entry and removing it again by its id, and looking
//! users up. It is built from GitLab's documentation
//! (`doc/api/protected_branches.md` in gitlabhq/gitlabhq), whose examples are
//! kept in `fixtures/gitlab/`; where the documentation is silent (the status
//! of a refused entry, error bodies) the choice is named on the item.
//!
//! What it serves, under `/api/v4`:
//! - `GET /projects/:id/protected_branches` (`search`, `page`, `per_page`);
//! - `GET|PATCH|DELETE /projects/:id/protected_branches/:name`,
//!   `POST /projects/:id/protected_branches`;
//! - `GET /users?username=NAME`, `GET /users/:id`.
//!
//! `:id` is the numeric project id or its URL-encoded `path_with_namespace`.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use crate::api::RecordedRequest;

/// The documented access levels: no one, developers, maintainers, admins.
pub const ACCESS_LEVELS: [u32; 4] = [0, 30, 40, 60];

/// The starting world of a [`GitlabFake`].
#[derive(Debug, Clone)]
pub struct GitlabConfig {
    pub projects: Vec<GitlabProject>,
    pub users: Vec<GitlabUser>,
    /// The one token the fake accepts, as `PRIVATE-TOKEN: <t>` or
    /// `Authorization: Bearer <t>`.
    pub token: String,
    /// Premium (or Ultimate): per-user push entries exist and entries carry
    /// `user_id`/`group_id`. Free: role levels only; a `user_id` entry in a
    /// PATCH or POST answers 422 (a failed validation).
    pub premium: bool,
}

impl GitlabConfig {
    /// A Premium instance accepting `token`.
    pub fn new(token: &str) -> Self {
        Self { projects: Vec::new(), users: Vec::new(), token: token.to_owned(), premium: true }
    }
    pub fn project(mut self, project: GitlabProject) -> Self {
        self.projects.push(project);
        self
    }
    pub fn user(mut self, user: GitlabUser) -> Self {
        self.users.push(user);
        self
    }
    pub fn free(mut self) -> Self {
        self.premium = false;
        self
    }
}

/// A project and its protected branches.
#[derive(Debug, Clone)]
pub struct GitlabProject {
    pub id: u64,
    pub path_with_namespace: String,
    pub default_branch: String,
    pub protected_branches: Vec<GitlabProtectedBranch>,
}

impl GitlabProject {
    pub fn new(id: u64, path_with_namespace: &str, default_branch: &str) -> Self {
        Self {
            id,
            path_with_namespace: path_with_namespace.to_owned(),
            default_branch: default_branch.to_owned(),
            protected_branches: Vec::new(),
        }
    }
    pub fn protect(mut self, branch: GitlabProtectedBranch) -> Self {
        self.protected_branches.push(branch);
        self
    }
}

/// A protected branch (or wildcard) with its push access entries.
#[derive(Debug, Clone)]
pub struct GitlabProtectedBranch {
    pub name: String,
    pub push_access_levels: Vec<GitlabPushAccess>,
}

impl GitlabProtectedBranch {
    /// Protected with pushes allowed to maintainers (GitLab's default).
    pub fn maintainers(name: &str) -> Self {
        Self { name: name.to_owned(), push_access_levels: vec![GitlabPushAccess::level(40)] }
    }
}

/// One push access entry: a role level, or a user (level 40 as GitLab shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GitlabPushAccess {
    pub access_level: u32,
    pub user_id: Option<u64>,
}

impl GitlabPushAccess {
    pub fn level(access_level: u32) -> Self {
        Self { access_level, user_id: None }
    }
    pub fn user(user_id: u64) -> Self {
        Self { access_level: 40, user_id: Some(user_id) }
    }
}

/// A GitLab account and the projects (by id) it is a member of.
#[derive(Debug, Clone)]
pub struct GitlabUser {
    pub id: u64,
    pub username: String,
    pub member_of: Vec<u64>,
}

impl GitlabUser {
    pub fn new(id: u64, username: &str, member_of: &[u64]) -> Self {
        Self { id, username: username.to_owned(), member_of: member_of.to_vec() }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    access: GitlabPushAccess,
}

#[derive(Debug, Clone)]
struct Branch {
    id: u64,
    name: String,
    push: Vec<Entry>,
    merge_id: u64,
    allow_force_push: bool,
    code_owner_approval_required: bool,
}

#[derive(Debug)]
struct Failure {
    method: String,
    path_prefix: String,
    status: u16,
    remaining: u32,
}

struct World {
    cfg: GitlabConfig,
    /// Per project id, its protected branches in creation order.
    branches: Vec<(u64, Vec<Branch>)>,
    next_id: u64,
    log: Vec<RecordedRequest>,
    failures: Vec<Failure>,
    rate_limit: u64,
    rate_used: u64,
    rate_reset: i64,
    url: String,
}

type Shared = Arc<Mutex<World>>;

impl World {
    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn project(&self, key: &str) -> Option<GitlabProject> {
        let key = percent_decode(key);
        self.cfg
            .projects
            .iter()
            .find(|p| p.id.to_string() == key || p.path_with_namespace.eq_ignore_ascii_case(&key))
            .cloned()
    }

    fn branches_mut(&mut self, project: u64) -> &mut Vec<Branch> {
        let i = self.branches.iter().position(|(p, _)| *p == project).expect("every project has a branch list");
        &mut self.branches[i].1
    }

    fn user(&self, id: u64) -> Option<&GitlabUser> {
        self.cfg.users.iter().find(|u| u.id == id)
    }

    fn render_entry(&self, e: &Entry) -> Value {
        let description = match e.access.user_id {
            Some(uid) => self.user(uid).map_or_else(|| format!("user {uid}"), |u| u.username.clone()),
            None => level_description(e.access.access_level).to_owned(),
        };
        let mut v = json!({
            "id": e.id,
            "access_level": e.access.access_level,
            "access_level_description": description,
            "deploy_key_id": null,
        });
        if self.cfg.premium {
            v["user_id"] = json!(e.access.user_id);
            v["group_id"] = Value::Null;
        }
        v
    }

    fn render_branch(&self, b: &Branch) -> Value {
        let mut merge = json!({"id": b.merge_id, "access_level": 40, "access_level_description": "Maintainers"});
        if self.cfg.premium {
            merge["user_id"] = Value::Null;
            merge["group_id"] = Value::Null;
        }
        let mut v = json!({
            "id": b.id,
            "name": b.name,
            "push_access_levels": b.push.iter().map(|e| self.render_entry(e)).collect::<Vec<_>>(),
            "merge_access_levels": [merge],
            "allow_force_push": b.allow_force_push,
            "code_owner_approval_required": b.code_owner_approval_required,
        });
        if self.cfg.premium {
            v["inherited"] = json!(false);
        }
        v
    }
}

/// How GitLab names a role level in `access_level_description`.
fn level_description(level: u32) -> &'static str {
    match level {
        0 => "No one",
        30 => "Developers + Maintainers",
        40 => "Maintainers",
        60 => "Admins",
        _ => "Unknown",
    }
}

fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A running fake GitLab. Dropping it stops the server.
pub struct GitlabFake {
    url: String,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for GitlabFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitlabFake").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Drop for GitlabFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GitlabFake {
    /// Starts the fake on `127.0.0.1:0`. Needs a tokio runtime.
    pub async fn start(config: GitlabConfig) -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let mut world = World {
            cfg: config.clone(),
            branches: Vec::new(),
            next_id: 1000,
            log: Vec::new(),
            failures: Vec::new(),
            rate_limit: 2000,
            rate_used: 0,
            rate_reset: wall_clock() + 60,
            url: url.clone(),
        };
        for p in &config.projects {
            let mut list = Vec::new();
            for pb in &p.protected_branches {
                let id = world.fresh_id();
                let merge_id = world.fresh_id();
                let push = pb.push_access_levels.iter().map(|a| Entry { id: world.fresh_id(), access: *a }).collect();
                list.push(Branch {
                    id,
                    name: pb.name.clone(),
                    push,
                    merge_id,
                    allow_force_push: false,
                    code_owner_approval_required: false,
                });
            }
            world.branches.push((p.id, list));
        }
        let state: Shared = Arc::new(Mutex::new(world));
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            // The server ends when the handle aborts this task.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, state, task })
    }

    /// The instance's base URL, `http://127.0.0.1:PORT`; the API is under `/api/v4`.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.state.lock().expect("the fake's state lock")
    }

    /// Answers the next `count` requests whose method is `method` and whose
    /// path starts with `path_prefix` (e.g. `/api/v4/projects`) with `status`.
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16, count: u32) {
        self.lock().failures.push(Failure {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            status,
            remaining: count,
        });
    }

    /// Sets the limit of the current window and how much of it is left; with
    /// nothing left every request answers 429 with `Retry-After`.
    pub fn set_rate_limit(&self, limit: u64, remaining: u64) {
        let mut w = self.lock();
        w.rate_limit = limit;
        w.rate_used = limit.saturating_sub(remaining);
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().log.clone()
    }
    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    /// Adds a per-user push entry as someone would in the web UI (no tier or
    /// membership check); returns the entry's id. Panics when the branch is
    /// not protected.
    pub fn add_push_entry_directly(&self, project: &str, branch: &str, user_id: u64) -> u64 {
        let mut w = self.lock();
        let p = w.project(project).unwrap_or_else(|| panic!("no project {project}"));
        let id = w.fresh_id();
        let b = w
            .branches_mut(p.id)
            .iter_mut()
            .find(|b| b.name == branch)
            .unwrap_or_else(|| panic!("{branch} is not protected"));
        b.push.push(Entry { id, access: GitlabPushAccess::user(user_id) });
        id
    }

    /// The push entries of a protected branch: `(entry id, user id, access level)`.
    pub fn push_entries(&self, project: &str, branch: &str) -> Vec<(u64, Option<u64>, u32)> {
        let mut w = self.lock();
        let Some(p) = w.project(project) else { return Vec::new() };
        w.branches_mut(p.id)
            .iter()
            .find(|b| b.name == branch)
            .map(|b| b.push.iter().map(|e| (e.id, e.access.user_id, e.access.access_level)).collect())
            .unwrap_or_default()
    }
}

/// An answer before the common headers are added.
struct Reply {
    status: u16,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self { status, body: Some(body), headers: Vec::new() }
    }
    /// GitLab's plain error body, `{"message": "404 Project Not Found"}`.
    fn message(status: u16, text: &str) -> Self {
        Self::json(status, json!({"message": format!("{status} {text}")}))
    }
    /// A model validation failure: `message` maps attributes to problems.
    fn invalid(attribute: &str, problem: &str) -> Self {
        Self::json(422, json!({"message": {attribute: [problem]}}))
    }
    /// A parameter GitLab's API layer refuses before the model sees it.
    fn bad_param(text: &str) -> Self {
        Self::json(400, json!({"error": text}))
    }
}

async fn handle(State(state): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut w = state.lock().expect("the fake's state lock");
    let path_and_query = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    w.log.push(RecordedRequest {
        method: method.as_str().to_owned(),
        path: path_and_query,
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let now = wall_clock();
    if now >= w.rate_reset {
        w.rate_used = 0;
        w.rate_reset = now + 60;
    }
    let reply = answer(&mut w, method.as_str(), &uri, &headers, &body, now);
    finish(reply, &w, now)
}

fn finish(reply: Reply, w: &World, now: i64) -> Response {
    let mut res = Response::new(match &reply.body {
        Some(v) => Body::from(serde_json::to_vec(v).expect("JSON renders")),
        None => Body::empty(),
    });
    *res.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = res.headers_mut();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    };
    if reply.body.is_some() {
        put("content-type", "application/json".to_owned());
    }
    put("ratelimit-limit", w.rate_limit.to_string());
    put("ratelimit-observed", w.rate_used.to_string());
    put("ratelimit-remaining", w.rate_limit.saturating_sub(w.rate_used).to_string());
    put("ratelimit-reset", w.rate_reset.to_string());
    put("ratelimit-resettime", http_date(w.rate_reset));
    if w.rate_used >= w.rate_limit && reply.status == 429 {
        put("retry-after", (w.rate_reset - now).max(0).to_string());
    }
    for (k, v) in reply.headers {
        put(k, v);
    }
    res
}

/// An HTTP date, `Tue, 09 Jun 2020 16:40:45 GMT` (`RateLimit-ResetTime`).
fn http_date(unix: i64) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(&format).ok()).unwrap_or_default()
}

fn answer(w: &mut World, method: &str, uri: &Uri, headers: &HeaderMap, body: &[u8], _now: i64) -> Reply {
    let path = uri.path();
    if let Some(f) = w
        .failures
        .iter_mut()
        .find(|f| f.remaining > 0 && f.method.eq_ignore_ascii_case(method) && path.starts_with(&f.path_prefix))
    {
        f.remaining -= 1;
        let status = f.status;
        w.failures.retain(|f| f.remaining > 0);
        let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Injected");
        return Reply::message(status, reason);
    }
    if w.rate_used >= w.rate_limit {
        return Reply::json(429, json!({"message": "Retry later"}));
    }
    w.rate_used += 1;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let token = header("private-token").or_else(|| header("authorization").and_then(|a| a.strip_prefix("Bearer ")));
    if token != Some(w.cfg.token.as_str()) {
        return Reply::message(401, "Unauthorized");
    }
    let Some(rest) = path.strip_prefix("/api/v4/") else { return Reply::json(404, json!({"error": "404 Not Found"})) };
    let seg: Vec<&str> = rest.split('/').collect();
    let query = parse_query(uri.query().unwrap_or(""));
    match (method, seg.as_slice()) {
        ("GET", ["users"]) => {
            let matching: Vec<Value> = w
                .cfg
                .users
                .iter()
                .filter(|u| query_get(&query, "username").is_none_or(|n| u.username.eq_ignore_ascii_case(n)))
                .map(|u| render_user(u, &w.url))
                .collect();
            paginate(matching, &query, &format!("{}{}", w.url, path))
        }
        ("GET", ["users", id]) => match id.parse::<u64>().ok().and_then(|id| w.user(id)) {
            Some(u) => Reply::json(200, render_user(u, &w.url)),
            None => Reply::message(404, "User Not Found"),
        },
        (_, ["projects", project, "protected_branches", rest @ ..]) => {
            let Some(p) = w.project(project) else { return Reply::message(404, "Project Not Found") };
            let name = (!rest.is_empty()).then(|| percent_decode(&rest.join("/")));
            protected_branches(w, method, &p, name.as_deref(), &query, body, &format!("{}{}", w.url, path))
        }
        _ => Reply::json(404, json!({"error": "404 Not Found"})),
    }
}

fn render_user(u: &GitlabUser, base: &str) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "name": u.username,
        "state": "active",
        "locked": false,
        "avatar_url": null,
        "web_url": format!("{base}/{}", u.username),
    })
}

fn protected_branches(
    w: &mut World,
    method: &str,
    p: &GitlabProject,
    name: Option<&str>,
    query: &[(String, String)],
    body: &[u8],
    base: &str,
) -> Reply {
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Reply::bad_param("The request body is not a JSON object"),
        }
    };
    match (method, name) {
        ("GET", None) => {
            let search = query_get(query, "search");
            let list: Vec<Value> = w
                .branches_mut(p.id)
                .clone()
                .iter()
                .filter(|b| search.is_none_or(|s| b.name.contains(s)))
                .map(|b| w.render_branch(b))
                .collect();
            paginate(list, query, base)
        }
        ("POST", None) => create(w, p, &body),
        (_, Some(name)) => {
            let Some(i) = w.branches_mut(p.id).iter().position(|b| b.name == name) else {
                return Reply::message(404, "Not found");
            };
            match method {
                "GET" => {
                    let b = w.branches_mut(p.id)[i].clone();
                    Reply::json(200, w.render_branch(&b))
                }
                "DELETE" => {
                    w.branches_mut(p.id).remove(i);
                    Reply { status: 204, body: None, headers: Vec::new() }
                }
                "PATCH" => update(w, p, i, &body),
                _ => Reply::json(405, json!({"error": "405 Method Not Allowed"})),
            }
        }
        _ => Reply::json(405, json!({"error": "405 Method Not Allowed"})),
    }
}

/// One checked element of `allowed_to_push`.
enum Change {
    Add(GitlabPushAccess),
    Set(u64, u32),
    Destroy(u64),
}

/// Checks an `allowed_to_push` array against the tier, the project's
/// members and the branch's entries (`existing`).
fn push_changes(w: &World, p: &GitlabProject, body: &Value, existing: &[Entry]) -> Result<Vec<Change>, Reply> {
    let Some(items) = body.get("allowed_to_push") else { return Ok(Vec::new()) };
    let Some(items) = items.as_array() else { return Err(Reply::bad_param("allowed_to_push is invalid")) };
    let mut out = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let Some(o) = item.as_object() else {
            return Err(Reply::bad_param(&format!("allowed_to_push[{n}] is invalid")));
        };
        let int = |k: &str| o.get(k).and_then(Value::as_u64);
        let destroy = o.get("_destroy").and_then(Value::as_bool).unwrap_or(false);
        if o.contains_key("group_id") || o.contains_key("deploy_key_id") {
            // The fake has no groups or deploy keys: none has the project shared.
            return Err(Reply::invalid("push_access_levels", "is not allowed for this project"));
        }
        if let Some(id) = int("id") {
            if !existing.iter().any(|e| e.id == id) {
                return Err(Reply::message(404, "Not found"));
            }
            if destroy {
                out.push(Change::Destroy(id));
                continue;
            }
        }
        if let Some(uid) = int("user_id") {
            if !w.cfg.premium {
                // GitLab's model validates a user entry's absence when the
                // licensed feature `protected_refs_for_users` is unavailable
                // (ee/app/models/concerns/ee/protected_ref_access.rb), so the
                // save fails validation: 422, not 403.
                return Err(Reply::invalid("push_access_levels.user", "must be blank"));
            }
            let member = w.user(uid).is_some_and(|u| u.member_of.contains(&p.id));
            if !member {
                return Err(Reply::invalid("push_access_levels.user", "is not a member of the project"));
            }
            let taken = existing.iter().any(|e| e.access.user_id == Some(uid))
                || out.iter().any(|c| matches!(c, Change::Add(a) if a.user_id == Some(uid)));
            if taken {
                return Err(Reply::invalid("push_access_levels.user_id", "has already been taken"));
            }
            out.push(Change::Add(GitlabPushAccess::user(uid)));
        } else if let Some(level) = o.get("access_level") {
            let level = level.as_u64().and_then(|l| u32::try_from(l).ok()).filter(|l| ACCESS_LEVELS.contains(l));
            let Some(level) = level else {
                return Err(Reply::bad_param(&format!(
                    "allowed_to_push[{n}][access_level] does not have a valid value"
                )));
            };
            match int("id") {
                Some(id) => out.push(Change::Set(id, level)),
                None => out.push(Change::Add(GitlabPushAccess::level(level))),
            }
        } else {
            return Err(Reply::bad_param(&format!(
                "allowed_to_push[{n}] needs one of user_id, group_id, deploy_key_id, access_level, or id with _destroy"
            )));
        }
    }
    Ok(out)
}

fn flags(b: &mut Branch, body: &Value) {
    if let Some(v) = body.get("allow_force_push").and_then(Value::as_bool) {
        b.allow_force_push = v;
    }
    if let Some(v) = body.get("code_owner_approval_required").and_then(Value::as_bool) {
        b.code_owner_approval_required = v;
    }
}

fn update(w: &mut World, p: &GitlabProject, i: usize, body: &Value) -> Reply {
    let mut b = w.branches_mut(p.id)[i].clone();
    let changes = match push_changes(w, p, body, &b.push) {
        Ok(c) => c,
        Err(r) => return r,
    };
    for c in changes {
        match c {
            Change::Add(access) => {
                let id = w.fresh_id();
                b.push.push(Entry { id, access });
            }
            Change::Set(id, level) => {
                if let Some(e) = b.push.iter_mut().find(|e| e.id == id) {
                    e.access = GitlabPushAccess { access_level: level, user_id: None };
                }
            }
            Change::Destroy(id) => b.push.retain(|e| e.id != id),
        }
    }
    flags(&mut b, body);
    let v = w.render_branch(&b);
    w.branches_mut(p.id)[i] = b;
    Reply::json(200, v)
}

fn create(w: &mut World, p: &GitlabProject, body: &Value) -> Reply {
    let Some(name) = body.get("name").and_then(Value::as_str) else { return Reply::bad_param("name is missing") };
    if w.branches_mut(p.id).iter().any(|b| b.name == name) {
        return Reply::message(409, &format!("Conflict: Protected branch '{name}' already exists"));
    }
    let changes = match push_changes(w, p, body, &[]) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut push: Vec<GitlabPushAccess> =
        changes.into_iter().filter_map(|c| if let Change::Add(a) = c { Some(a) } else { None }).collect();
    if push.is_empty() {
        let level = body.get("push_access_level").and_then(Value::as_u64).unwrap_or(40);
        let Some(level) = u32::try_from(level).ok().filter(|l| ACCESS_LEVELS.contains(l)) else {
            return Reply::bad_param("push_access_level does not have a valid value");
        };
        push.push(GitlabPushAccess::level(level));
    }
    let id = w.fresh_id();
    let merge_id = w.fresh_id();
    let push = push.into_iter().map(|access| Entry { id: w.fresh_id(), access }).collect();
    let mut b = Branch {
        id,
        name: name.to_owned(),
        push,
        merge_id,
        allow_force_push: false,
        code_owner_approval_required: false,
    };
    flags(&mut b, body);
    let v = w.render_branch(&b);
    w.branches_mut(p.id).push(b);
    Reply::json(201, v)
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

fn query_get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

use crate::api::percent_decode;

fn percent_encode(s: &str) -> String {
    crate::api::percent_encode_keeping(s, b'*')
}

/// One page of `items` (`per_page` default 20, at most 100; `page` from 1)
/// with GitLab's offset pagination headers: `x-page`, `x-per-page`,
/// `x-next-page`, `x-prev-page`, `x-total`, `x-total-pages` and a `link`
/// header with `prev`, `next`, `first` and `last`.
fn paginate(items: Vec<Value>, query: &[(String, String)], base: &str) -> Reply {
    let per_page = query_get(query, "per_page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(20).clamp(1, 100);
    let page = query_get(query, "page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let others: String = query
        .iter()
        .filter(|(k, _)| k != "page" && k != "per_page")
        .map(|(k, v)| format!("&{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    let link = |p: usize, rel: &str| format!("<{base}?page={p}&per_page={per_page}{others}>; rel=\"{rel}\"");
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < pages {
        links.push(link(page + 1, "next"));
    }
    links.push(link(1, "first"));
    links.push(link(pages, "last"));
    let next = if page < pages { (page + 1).to_string() } else { String::new() };
    let prev = if page > 1 { (page - 1).to_string() } else { String::new() };
    let mut reply = Reply::json(200, Value::Array(chunk));
    reply.headers = vec![
        ("x-page", page.to_string()),
        ("x-per-page", per_page.to_string()),
        ("x-next-page", next),
        ("x-prev-page", prev),
        ("x-total", total.to_string()),
        ("x-total-pages", pages.to_string()),
        ("link", links.join(", ")),
    ];
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_paths_and_a_trailing_percent() {
        assert_eq!(percent_decode("acme%2Fpayments"), "acme/payments");
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%2"), "%2");
    }
}
