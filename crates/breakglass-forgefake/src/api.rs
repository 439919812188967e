//! The HTTP side of the fake: one handler that logs the request, applies
//! injected failures and rate limits, authenticates, routes on the path and
//! answers in GitHub's documented shapes, with GitHub's common headers.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::jwt;
use crate::world::{Actor, RuleSuite, Ruleset, Token, World, rfc3339};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// The path with its query string, as sent.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug)]
pub(crate) struct Failure {
    pub method: String,
    pub path_prefix: String,
    pub status: u16,
    pub remaining: u32,
}

#[derive(Debug)]
pub(crate) struct SecondaryLimit {
    pub remaining: u32,
    pub status: u16,
    pub retry_after: u64,
}

#[derive(Debug)]
pub(crate) struct RateWindow {
    pub limit: u64,
    pub used: u64,
    pub reset: i64,
}

pub(crate) struct Shared {
    pub world: World,
    pub log: Vec<RecordedRequest>,
    pub failures: Vec<Failure>,
    pub secondary: Option<SecondaryLimit>,
    pub rate: RateWindow,
}

pub(crate) type SharedState = Arc<Mutex<Shared>>;

/// The versions of the REST API the fake answers for.
pub(crate) const API_VERSIONS: [&str; 2] = ["2022-11-28", "2026-03-10"];
const DEFAULT_VERSION: &str = "2022-11-28";
const DOCS: &str = "https://docs.github.com/rest";

/// An answer before the common headers are added.
pub(crate) struct Reply {
    status: u16,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self { status, body: Some(body), headers: Vec::new() }
    }
    fn empty(status: u16) -> Self {
        Self { status, body: None, headers: Vec::new() }
    }
    fn error(status: u16, message: &str) -> Self {
        Self::json(status, json!({"message": message, "documentation_url": DOCS, "status": status.to_string()}))
    }
    fn not_found() -> Self {
        Self::error(404, "Not Found")
    }
    fn invalid(errors: Vec<String>) -> Self {
        Self::json(
            422,
            json!({"message": "Validation Failed", "errors": errors, "documentation_url": DOCS, "status": "422"}),
        )
    }
    /// The 422 GitHub answers for a ruleset its schema refuses: the
    /// problems are in the message, after "Invalid request.".
    fn invalid_request(errors: Vec<String>) -> Self {
        let message = format!("Invalid request.\n\n{}", errors.join("\n"));
        Self::json(422, json!({"message": message, "errors": [], "documentation_url": DOCS, "status": "422"}))
    }
    fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

pub(crate) async fn handle(
    State(state): State<SharedState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut guard = state.lock().expect("the fake's state lock");
    let shared = &mut *guard;
    let path_and_query = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    shared.log.push(RecordedRequest {
        method: method.as_str().to_owned(),
        path: path_and_query.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let now = shared.world.now();
    if now >= shared.rate.reset {
        shared.rate.used = 0;
        shared.rate.reset = now + 3600;
    }
    let version = headers.get("x-github-api-version").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let reply = answer(shared, method.as_str(), &uri, &headers, &body, version.as_deref());
    let selected = version.filter(|v| API_VERSIONS.contains(&v.as_str())).unwrap_or_else(|| DEFAULT_VERSION.to_owned());
    finish(reply, &shared.rate, &selected)
}

fn finish(reply: Reply, rate: &RateWindow, version: &str) -> Response {
    let mut res = Response::new(match &reply.body {
        Some(v) => Body::from(serde_json::to_vec_pretty(v).expect("JSON renders")),
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
        put("content-type", "application/json; charset=utf-8".to_owned());
    }
    put("x-github-api-version-selected", version.to_owned());
    put("x-github-media-type", "github.v3; format=json".to_owned());
    put("x-ratelimit-limit", rate.limit.to_string());
    put("x-ratelimit-remaining", rate.limit.saturating_sub(rate.used).to_string());
    put("x-ratelimit-used", rate.used.to_string());
    put("x-ratelimit-reset", rate.reset.to_string());
    put("x-ratelimit-resource", "core".to_owned());
    for (k, v) in reply.headers {
        put(k, v);
    }
    res
}

fn answer(
    shared: &mut Shared,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    version: Option<&str>,
) -> Reply {
    let path = uri.path();
    if let Some(s) = &mut shared.secondary
        && s.remaining > 0
    {
        s.remaining -= 1;
        let (status, retry) = (s.status, s.retry_after);
        return Reply::error(
            status,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.",
        )
        .with_header("retry-after", retry.to_string());
    }
    if let Some(f) = shared
        .failures
        .iter_mut()
        .find(|f| f.remaining > 0 && f.method.eq_ignore_ascii_case(method) && path.starts_with(&f.path_prefix))
    {
        f.remaining -= 1;
        let status = f.status;
        shared.failures.retain(|f| f.remaining > 0);
        let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Injected failure");
        return Reply::error(status, reason);
    }
    if shared.rate.used >= shared.rate.limit {
        return Reply::error(403, "API rate limit exceeded. Check the x-ratelimit headers for when the limit resets.");
    }
    shared.rate.used += 1;
    if let Some(v) = version
        && !API_VERSIONS.contains(&v)
    {
        return Reply::error(
            400,
            &format!("Unsupported 'X-GitHub-Api-Version' header: {v}. Supported versions: {}", API_VERSIONS.join(", ")),
        );
    }
    let world = &mut shared.world;
    let credential = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")).then(|| rest.trim().to_owned())
    });
    let Some(credential) = credential else { return Reply::error(401, "Requires authentication") };
    let segs: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let query = parse_query(uri.query().unwrap_or(""));

    // The one endpoint that takes an app JWT instead of a token.
    if let ["app", "installations", installation, "access_tokens"] = segs.as_slice() {
        if method != "POST" {
            return Reply::not_found();
        }
        return create_installation_token(world, &credential, installation, body);
    }
    let now = world.now();
    let token = match world.tokens.get(&credential) {
        Some(t) if t.expires_at.is_none_or(|e| now < e) => t.clone(),
        _ => return Reply::error(401, "Bad credentials"),
    };
    let json_body = || -> Result<Value, Reply> {
        if body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(body).map_err(|_| Reply::error(400, "Problems parsing JSON"))
    };
    let link_base = format!("{}{}", world.base_url, world_base(uri, &query));
    let page = |items: Vec<Value>| paginate(items, &query, &link_base);

    match (method, segs.as_slice()) {
        // "Get a user using their ID".
        ("GET", ["user", account_id]) => {
            match account_id.parse::<u64>().ok().and_then(|id| world.users.iter().find(|u| u.id == id)) {
                Some(u) => Reply::json(200, world.public_user(u)),
                None => Reply::not_found(),
            }
        }
        ("GET", ["users", login]) => match world.user(login) {
            Some(u) => Reply::json(200, world.public_user(u)),
            None => Reply::not_found(),
        },
        (m, ["orgs", org, "teams", slug, "memberships", login]) => {
            if !org.eq_ignore_ascii_case(&world.cfg.org) {
                return Reply::not_found();
            }
            membership(world, &token, m, slug, login, json_body)
        }
        // "Get a team by name": the team-full shape (the fields a client reads).
        ("GET", ["orgs", org, "teams", slug]) => {
            if !org.eq_ignore_ascii_case(&world.cfg.org) {
                return Reply::not_found();
            }
            let Some(team) = world.teams.iter().find(|t| t.slug.eq_ignore_ascii_case(slug)) else {
                return Reply::not_found();
            };
            let base = &world.base_url;
            Reply::json(
                200,
                json!({
                    "id": team.id,
                    "node_id": format!("T_{}", team.id),
                    "url": format!("{base}/teams/{}", team.id),
                    "html_url": format!("https://github.com/orgs/{}/teams/{}", world.cfg.org, team.slug),
                    "name": team.slug,
                    "slug": team.slug,
                    "description": null,
                    "privacy": "closed",
                    "notification_setting": "notifications_enabled",
                    "permission": "pull",
                    "members_url": format!("{base}/teams/{}/members{{/member}}", team.id),
                    "repositories_url": format!("{base}/teams/{}/repos", team.id),
                    "parent": null,
                    "members_count": team.members.len(),
                    "repos_count": 0,
                    "organization": world.org_as_owner(),
                }),
            )
        }
        ("GET", ["orgs", org, "teams", slug, "members"]) => {
            if !org.eq_ignore_ascii_case(&world.cfg.org) {
                return Reply::not_found();
            }
            let Some(team) = world.teams.iter().find(|t| t.slug.eq_ignore_ascii_case(slug)) else {
                return Reply::not_found();
            };
            let role = query.get("role").map_or("all", String::as_str);
            let items = team
                .members
                .iter()
                .filter(|(_, r)| role == "all" || r == role)
                .filter_map(|(login, _)| world.user(login))
                .map(|u| world.simple_user(u))
                .collect();
            page(items)
        }
        (m, ["repos", owner, name, rest @ ..]) => {
            let Some(idx) = world.repo_idx(owner, name) else { return Reply::not_found() };
            if token.repo_ids.as_ref().is_some_and(|ids| !ids.contains(&world.repos[idx].id)) {
                return Reply::not_found();
            }
            repo_route(world, &token, idx, m, rest, &query, json_body, page)
        }
        _ => Reply::not_found(),
    }
}

/// The URL of this request without `page`/`per_page`, for `Link`.
fn world_base(uri: &Uri, query: &Query) -> String {
    let kept: Vec<String> = query
        .pairs
        .iter()
        .filter(|(k, _)| k != "page" && k != "per_page")
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    let mut s = uri.path().to_owned();
    s.push('?');
    for k in kept {
        s.push_str(&k);
        s.push('&');
    }
    s
}

#[allow(clippy::too_many_arguments)]
fn repo_route(
    world: &mut World,
    token: &Token,
    idx: usize,
    method: &str,
    rest: &[&str],
    query: &Query,
    json_body: impl Fn() -> Result<Value, Reply>,
    page: impl Fn(Vec<Value>) -> Reply,
) -> Reply {
    let full = world.repos[idx].full_name();
    let actor = token.actor.clone();
    let forbidden = || Reply::error(403, "Must have admin rights to Repository.");
    match (method, rest) {
        ("GET", ["rulesets"]) => {
            let targets: Option<Vec<String>> = query.get("targets").map(|t| t.split(',').map(str::to_owned).collect());
            let items = world
                .rulesets
                .values()
                .filter(|rs| rs.repo == full)
                .filter(|rs| targets.as_ref().is_none_or(|t| t.contains(&rs.target)))
                .map(|rs| world.render_ruleset_item(rs))
                .collect();
            page(items)
        }
        ("POST", ["rulesets"]) => {
            if !token.admin_repos {
                return forbidden();
            }
            let body = match json_body() {
                Ok(b) => b,
                Err(r) => return r,
            };
            match create_ruleset(world, &full, &body, actor) {
                Ok(id) => {
                    let rs = &world.rulesets[&id];
                    Reply::json(201, world.render_ruleset(rs, true, Some(world.can_bypass(rs, token))))
                }
                Err(errors) => Reply::invalid_request(errors),
            }
        }
        ("GET", ["rulesets", "rule-suites"]) => {
            if !token.admin_repos {
                return forbidden();
            }
            let repo_id = world.repos[idx].id;
            match filter_suites(world, repo_id, query) {
                Ok(items) => page(items.iter().map(|s| world.render_suite(s, false)).collect()),
                Err(errors) => Reply::invalid(errors),
            }
        }
        ("GET", ["rulesets", "rule-suites", id]) => {
            if !token.admin_repos {
                return forbidden();
            }
            let repo_id = world.repos[idx].id;
            match world.rule_suites.iter().find(|s| s.repository_id == repo_id && id.parse() == Ok(s.id)) {
                Some(s) => Reply::json(200, world.render_suite(s, true)),
                None => Reply::not_found(),
            }
        }
        (m, ["rulesets", id, tail @ ..]) => {
            let Some(id) = id.parse::<u64>().ok().filter(|id| world.rulesets.get(id).is_some_and(|rs| rs.repo == full))
            else {
                return Reply::not_found();
            };
            match (m, tail) {
                ("GET", []) => {
                    let rs = &world.rulesets[&id];
                    Reply::json(200, world.render_ruleset(rs, token.admin_repos, Some(world.can_bypass(rs, token))))
                }
                ("PUT", []) => {
                    if !token.admin_repos {
                        return forbidden();
                    }
                    let body = match json_body() {
                        Ok(b) => b,
                        Err(r) => return r,
                    };
                    // Someone else's edit lands first (recorded as its own version).
                    if let Some(pos) = world.racing_edits.iter().position(|(rid, _)| *rid == id) {
                        let (_, added) = world.racing_edits.remove(pos);
                        let mut actors =
                            world.render_ruleset(&world.rulesets[&id], true, None)["bypass_actors"].clone();
                        actors.as_array_mut().expect("bypass_actors is an array").push(added);
                        let outside = Actor { id: world.cfg.outside_actor_id, kind: "User" };
                        update_ruleset(world, id, &json!({ "bypass_actors": actors }), outside)
                            .expect("the racing edit is valid");
                    }
                    if let Err(errors) = update_ruleset(world, id, &body, actor) {
                        return Reply::invalid_request(errors);
                    }
                    let rs = &world.rulesets[&id];
                    Reply::json(200, world.render_ruleset(rs, true, Some(world.can_bypass(rs, token))))
                }
                ("DELETE", []) => {
                    if !token.admin_repos {
                        return forbidden();
                    }
                    world.rulesets.remove(&id);
                    Reply::empty(204)
                }
                ("GET", ["history"]) => {
                    let rs = &world.rulesets[&id];
                    page(rs.history.iter().rev().map(|v| World::render_version(v, false, false)).collect())
                }
                ("GET", ["history", version]) => {
                    let rs = &world.rulesets[&id];
                    match rs.history.iter().find(|v| version.parse() == Ok(v.version_id)) {
                        Some(v) => Reply::json(200, World::render_version(v, true, token.admin_repos)),
                        None => Reply::not_found(),
                    }
                }
                _ => Reply::not_found(),
            }
        }
        ("GET", ["rules", "branches", branch @ ..]) if !branch.is_empty() => {
            let git_ref = format!("refs/heads/{}", branch.join("/"));
            let mut items = Vec::new();
            for rs in world.rulesets.values().filter(|rs| rs.repo == full && rs.enforcement == "active") {
                if !world.ruleset_applies(rs, &git_ref) {
                    continue;
                }
                for rule in &rs.rules {
                    let mut r = rule.clone();
                    if let Some(m) = r.as_object_mut() {
                        m.insert("ruleset_source_type".into(), json!("Repository"));
                        m.insert("ruleset_source".into(), json!(full));
                        m.insert("ruleset_id".into(), json!(rs.id));
                    }
                    items.push(r);
                }
            }
            page(items)
        }
        ("GET", ["branches", branch @ .., "protection"]) if !branch.is_empty() => {
            if !token.admin_repos {
                return forbidden();
            }
            let branch = branch.join("/");
            let repo = &world.repos[idx];
            if !repo.branches.contains_key(&branch) {
                return Reply::error(404, "Branch not found");
            }
            match repo.protection.get(&branch) {
                Some(p) => Reply::json(200, p.clone()),
                None => Reply::error(404, "Branch not protected"),
            }
        }
        ("GET", ["branches", branch @ ..]) if !branch.is_empty() => {
            let branch = branch.join("/");
            let repo = &world.repos[idx];
            let Some(sha) = repo.branches.get(&branch) else { return Reply::error(404, "Branch not found") };
            let git_ref = format!("refs/heads/{branch}");
            let protected = repo.protection.contains_key(&branch)
                || world
                    .rulesets
                    .values()
                    .any(|rs| rs.repo == full && rs.enforcement == "active" && world.ruleset_applies(rs, &git_ref));
            let base = &world.base_url;
            Reply::json(
                200,
                json!({
                    "name": branch,
                    "commit": {"sha": sha, "url": format!("{base}/repos/{full}/commits/{sha}")},
                    "_links": {
                        "self": format!("{base}/repos/{full}/branches/{branch}"),
                        "html": format!("{base}/{full}/tree/{branch}"),
                    },
                    "protected": protected,
                    "protection_url": format!("{base}/repos/{full}/branches/{branch}/protection"),
                }),
            )
        }
        _ => Reply::not_found(),
    }
}

fn membership(
    world: &mut World,
    token: &Token,
    method: &str,
    slug: &str,
    login: &str,
    json_body: impl Fn() -> Result<Value, Reply>,
) -> Reply {
    let base = world.base_url.clone();
    let Some(user) = world.user(login).cloned() else { return Reply::not_found() };
    let Some(team) = world.team_mut(slug) else { return Reply::not_found() };
    let url = format!("{base}/teams/{}/memberships/{}", team.id, user.login);
    let find = |list: &Vec<(String, String)>| list.iter().position(|(m, _)| m.eq_ignore_ascii_case(&user.login));
    let synced = || {
        Reply::error(
            403,
            "This team's membership is managed by an identity provider (team synchronization); change it there.",
        )
    };
    match method {
        "GET" => {
            if let Some(i) = find(&team.members) {
                Reply::json(200, json!({"url": url, "role": team.members[i].1, "state": "active"}))
            } else if let Some(i) = find(&team.pending) {
                Reply::json(200, json!({"url": url, "role": team.pending[i].1, "state": "pending"}))
            } else {
                Reply::not_found()
            }
        }
        "PUT" => {
            if !token.write_members {
                return Reply::error(403, "Resource not accessible by integration");
            }
            if team.idp_synced {
                return synced();
            }
            let body = match json_body() {
                Ok(b) => b,
                Err(r) => return r,
            };
            let role = match body.get("role") {
                None => "member",
                Some(Value::String(r)) if r == "member" || r == "maintainer" => r.as_str(),
                Some(other) => {
                    return Reply::invalid(vec![format!(
                        "Invalid property /role: {other} is not a possible value. Must be one of the following: member, maintainer."
                    )]);
                }
            };
            if user.org_member {
                team.pending.retain(|(m, _)| !m.eq_ignore_ascii_case(&user.login));
                match find(&team.members) {
                    Some(i) => team.members[i].1 = role.to_owned(),
                    None => team.members.push((user.login.clone(), role.to_owned())),
                }
                Reply::json(200, json!({"url": url, "role": role, "state": "active"}))
            } else {
                match find(&team.pending) {
                    Some(i) => team.pending[i].1 = role.to_owned(),
                    None => team.pending.push((user.login.clone(), role.to_owned())),
                }
                Reply::json(200, json!({"url": url, "role": role, "state": "pending"}))
            }
        }
        "DELETE" => {
            if !token.write_members {
                return Reply::error(403, "Resource not accessible by integration");
            }
            if team.idp_synced {
                return synced();
            }
            team.members.retain(|(m, _)| !m.eq_ignore_ascii_case(&user.login));
            team.pending.retain(|(m, _)| !m.eq_ignore_ascii_case(&user.login));
            Reply::empty(204)
        }
        _ => Reply::not_found(),
    }
}

fn create_installation_token(world: &mut World, credential: &str, installation: &str, body: &[u8]) -> Reply {
    let now = world.now();
    let Some(app) = world.cfg.app.clone() else { return Reply::error(401, "A JSON web token could not be decoded") };
    if let Err(message) = jwt::verify_app_jwt(credential, &app, now) {
        return Reply::error(401, &message);
    }
    if installation.parse() != Ok(app.installation_id) {
        return Reply::not_found();
    }
    let req: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return Reply::error(400, "Problems parsing JSON"),
        }
    };
    let mut repo_ids: Option<Vec<u64>> = None;
    let mut errors = Vec::new();
    if let Some(names) = req.get("repositories").and_then(Value::as_array) {
        for n in names {
            let name = n.as_str().unwrap_or_default();
            match world.repos.iter().find(|r| r.name.eq_ignore_ascii_case(name)) {
                Some(r) => repo_ids.get_or_insert_with(Vec::new).push(r.id),
                None => errors.push(format!("There is at least one repository that does not exist or is not accessible to the parent installation: {name}")),
            }
        }
    }
    if let Some(ids) = req.get("repository_ids").and_then(Value::as_array) {
        for id in ids {
            match id.as_u64().filter(|id| world.repos.iter().any(|r| r.id == *id)) {
                Some(id) => repo_ids.get_or_insert_with(Vec::new).push(id),
                None => errors.push(format!("There is at least one repository that does not exist or is not accessible to the parent installation: {id}")),
            }
        }
    }
    let granted = app.permissions.as_object().cloned().unwrap_or_default();
    let mut permissions = granted.clone();
    if let Some(asked) = req.get("permissions").and_then(Value::as_object) {
        permissions = Map::new();
        for (k, v) in asked {
            let level = |x: Option<&Value>| match x.and_then(Value::as_str) {
                Some("admin") => 3,
                Some("write") => 2,
                Some("read") => 1,
                _ => 0,
            };
            if level(Some(v)) == 0 || level(Some(v)) > level(granted.get(k)) {
                errors.push(format!("The permissions requested are not granted to this installation: {k}"));
            } else {
                permissions.insert(k.clone(), v.clone());
            }
        }
    }
    if !errors.is_empty() {
        return Reply::invalid(errors);
    }
    let has = |k: &str, lvl: &str| permissions.get(k).and_then(Value::as_str) == Some(lvl);
    let mut rnd = [0u8; 30];
    getrandom::fill(&mut rnd).expect("random bytes for a token");
    // The stateless `ghs_APPID_...` format: not 40 characters long.
    let token = format!("ghs_{}_{}", app.app_id, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rnd));
    let expires_at = now + 3600;
    world.tokens.insert(
        token.clone(),
        Token {
            actor: Actor { id: app.app_id, kind: "Integration" },
            login: None,
            admin_repos: has("administration", "write"),
            write_members: has("members", "write"),
            expires_at: Some(expires_at),
            repo_ids: repo_ids.clone(),
        },
    );
    Reply::json(
        201,
        json!({
            "token": token,
            "expires_at": rfc3339(expires_at),
            "permissions": permissions,
            "repository_selection": if repo_ids.is_some() { "selected" } else { "all" },
        }),
    )
}

const RULE_TYPES: [&str; 27] = [
    "creation",
    "update",
    "deletion",
    "required_linear_history",
    "merge_queue",
    "required_deployments",
    "required_signatures",
    "pull_request",
    "required_status_checks",
    "non_fast_forward",
    "commit_message_pattern",
    "commit_author_email_pattern",
    "committer_email_pattern",
    "branch_name_pattern",
    "tag_name_pattern",
    "file_path_restriction",
    "max_file_path_length",
    "file_extension_restriction",
    "max_file_size",
    "workflows",
    "code_scanning",
    "copilot_code_review",
    "code_quality",
    "required_code_owner_review",
    "update_allows_fetch_and_merge",
    "required_review_thread_resolution",
    "copilot_code_review_analysis_tools",
];
const ACTOR_TYPES: [&str; 6] = ["Integration", "OrganizationAdmin", "RepositoryRole", "Team", "DeployKey", "User"];

fn enum_error(path: &str, got: &Value, allowed: &[&str]) -> String {
    format!(
        "Invalid property {path}: {got} is not a possible value. Must be one of the following: {}.",
        allowed.join(", ")
    )
}

/// Checks the ruleset fields present in `body` and returns them normalized
/// (`bypass_mode` defaulted to `always`).
fn validate_ruleset(world: &World, body: &Value, creating: bool) -> Result<Map<String, Value>, Vec<String>> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else { return Err(vec!["Invalid request body: expected an object.".to_owned()]) };
    let mut out = Map::new();
    match obj.get("name") {
        Some(Value::String(n)) if !n.is_empty() => {
            out.insert("name".into(), json!(n));
        }
        None if !creating => {}
        None => errors.push("Invalid request: name is required.".to_owned()),
        Some(other) => errors.push(format!("Invalid property /name: {other} is not a non-empty string.")),
    }
    match obj.get("enforcement") {
        Some(v @ Value::String(e)) => {
            if ["disabled", "active", "evaluate"].contains(&e.as_str()) {
                out.insert("enforcement".into(), v.clone());
            } else {
                errors.push(enum_error("/enforcement", v, &["disabled", "active", "evaluate"]));
            }
        }
        None if !creating => {}
        None => errors.push("Invalid request: enforcement is required.".to_owned()),
        Some(other) => errors.push(enum_error("/enforcement", other, &["disabled", "active", "evaluate"])),
    }
    match obj.get("target") {
        Some(v) if ["branch", "tag", "push"].contains(&v.as_str().unwrap_or_default()) => {
            out.insert("target".into(), v.clone());
        }
        Some(v) => errors.push(enum_error("/target", v, &["branch", "tag", "push"])),
        None if creating => {
            out.insert("target".into(), json!("branch"));
        }
        None => {}
    }
    for key in ["bypass_actors", "rules"] {
        if obj.get(key).is_some_and(Value::is_null) {
            errors.push(format!("Invalid property /{key}: data cannot be null."));
        }
    }
    if let Some(actors) = obj.get("bypass_actors").filter(|a| !a.is_null()) {
        match actors.as_array() {
            None => errors.push("Invalid property /bypass_actors: not an array.".to_owned()),
            Some(list) => {
                let mut norm = Vec::new();
                for (i, a) in list.iter().enumerate() {
                    let p = format!("/bypass_actors/{i}");
                    let Some(a) = a.as_object() else {
                        errors.push(format!("Invalid property {p}: not an object."));
                        continue;
                    };
                    let kind = a.get("actor_type");
                    let kind_str = kind.and_then(Value::as_str).unwrap_or_default();
                    match kind {
                        None => errors.push(format!("Invalid property {p}: actor_type is required.")),
                        Some(k) if !ACTOR_TYPES.contains(&kind_str) => {
                            errors.push(enum_error(&format!("{p}/actor_type"), k, &ACTOR_TYPES))
                        }
                        _ => {}
                    }
                    let mode = a.get("bypass_mode").cloned().unwrap_or_else(|| json!("always"));
                    if !["always", "pull_request", "exempt"].contains(&mode.as_str().unwrap_or_default()) {
                        errors.push(enum_error(
                            &format!("{p}/bypass_mode"),
                            &mode,
                            &["always", "pull_request", "exempt"],
                        ));
                    } else if kind_str == "DeployKey" && mode == "pull_request" {
                        errors.push(format!(
                            "Invalid property {p}/bypass_mode: pull_request is not allowed for DeployKey."
                        ));
                    }
                    let id = a.get("actor_id").cloned().unwrap_or(Value::Null);
                    if ["Integration", "RepositoryRole", "Team", "User"].contains(&kind_str) {
                        match id.as_u64() {
                            None => errors.push(format!(
                                "Invalid property {p}/actor_id: required for {kind_str} and must be an integer."
                            )),
                            Some(n) if kind_str == "Team" && !world.teams.iter().any(|t| t.id == n) => {
                                errors.push(format!("Invalid property {p}/actor_id: no team with id {n}."));
                            }
                            Some(n) if kind_str == "User" && !world.users.iter().any(|u| u.id == n) => {
                                errors.push(format!("Invalid property {p}/actor_id: no user with id {n}."));
                            }
                            Some(_) => {}
                        }
                    }
                    norm.push(json!({"actor_id": id, "actor_type": kind_str, "bypass_mode": mode}));
                }
                out.insert("bypass_actors".into(), Value::Array(norm));
            }
        }
    }
    if let Some(c) = obj.get("conditions") {
        let ok = c.is_null()
            || c.as_object().is_some_and(|c| {
                c.get("ref_name").is_none_or(|r| {
                    r.as_object().is_some_and(|r| {
                        r.iter().all(|(k, v)| {
                            (k == "include" || k == "exclude")
                                && v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
                        })
                    })
                })
            });
        if ok {
            out.insert("conditions".into(), c.clone());
        } else {
            errors.push(
                "Invalid property /conditions: ref_name must hold include and exclude arrays of strings.".to_owned(),
            );
        }
    }
    if let Some(rules) = obj.get("rules").filter(|r| !r.is_null()) {
        match rules.as_array() {
            None => errors.push("Invalid property /rules: not an array.".to_owned()),
            Some(list) => {
                for (i, r) in list.iter().enumerate() {
                    match r.get("type") {
                        Some(t) if RULE_TYPES.contains(&t.as_str().unwrap_or_default()) => {}
                        Some(t) => errors.push(enum_error(&format!("/rules/{i}/type"), t, &RULE_TYPES)),
                        None => errors.push(format!("Invalid property /rules/{i}: type is required.")),
                    }
                    if r.get("parameters").is_some_and(|p| !p.is_object()) {
                        errors.push(format!("Invalid property /rules/{i}/parameters: not an object."));
                    }
                }
                out.insert("rules".into(), rules.clone());
            }
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

fn apply_fields(rs: &mut Ruleset, fields: Map<String, Value>) {
    for (k, v) in fields {
        match k.as_str() {
            "name" => rs.name = v.as_str().unwrap_or_default().to_owned(),
            "target" => rs.target = v.as_str().unwrap_or("branch").to_owned(),
            "enforcement" => rs.enforcement = v.as_str().unwrap_or_default().to_owned(),
            "bypass_actors" => rs.bypass_actors = v.as_array().cloned().unwrap_or_default(),
            "conditions" => rs.conditions = if v.is_null() { None } else { Some(v) },
            "rules" => rs.rules = v.as_array().cloned().unwrap_or_default(),
            _ => {}
        }
    }
}

pub(crate) fn create_ruleset(world: &mut World, repo: &str, body: &Value, actor: Actor) -> Result<u64, Vec<String>> {
    let fields = validate_ruleset(world, body, true)?;
    let name = fields.get("name").and_then(Value::as_str).unwrap_or_default();
    if world.rulesets.values().any(|rs| rs.repo == repo && rs.name == name) {
        return Err(vec!["Name must be unique".to_owned()]);
    }
    let id = world.next_ruleset_id;
    world.next_ruleset_id += 1;
    let now = world.now();
    let mut rs = Ruleset {
        id,
        repo: repo.to_owned(),
        name: String::new(),
        target: "branch".to_owned(),
        enforcement: String::new(),
        bypass_actors: Vec::new(),
        conditions: None,
        rules: Vec::new(),
        created_at: now,
        updated_at: now,
        history: Vec::new(),
    };
    apply_fields(&mut rs, fields);
    world.rulesets.insert(id, rs);
    world.record_version(id, actor);
    Ok(id)
}

pub(crate) fn update_ruleset(world: &mut World, id: u64, body: &Value, actor: Actor) -> Result<(), Vec<String>> {
    let fields = validate_ruleset(world, body, false)?;
    if let Some(name) = fields.get("name").and_then(Value::as_str) {
        let repo = &world.rulesets[&id].repo;
        if world.rulesets.values().any(|rs| rs.id != id && rs.repo == *repo && rs.name == name) {
            return Err(vec!["Name must be unique".to_owned()]);
        }
    }
    let rs = world.rulesets.get_mut(&id).expect("the caller checked the ruleset exists");
    apply_fields(rs, fields);
    world.record_version(id, actor);
    Ok(())
}

fn filter_suites(world: &World, repo_id: u64, query: &Query) -> Result<Vec<RuleSuite>, Vec<String>> {
    let now = world.now();
    let period = match query.get("time_period").map_or("day", String::as_str) {
        "hour" => 3600,
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 30 * 86_400,
        other => return Err(vec![enum_error("time_period", &json!(other), &["hour", "day", "week", "month"])]),
    };
    let result = query.get("rule_suite_result").map_or("all", String::as_str);
    if !["pass", "fail", "bypass", "all"].contains(&result) {
        return Err(vec![enum_error("rule_suite_result", &json!(result), &["pass", "fail", "bypass", "all"])]);
    }
    if let Some(e) = query.get("evaluate_status")
        && !["all", "active", "evaluate"].contains(&e.as_str())
    {
        return Err(vec![enum_error("evaluate_status", &json!(e), &["all", "active", "evaluate"])]);
    }
    let git_ref = query.get("ref").map(|r| if r.starts_with("refs/") { r.clone() } else { format!("refs/heads/{r}") });
    let actor = query.get("actor_name");
    let mut items: Vec<RuleSuite> = world
        .rule_suites
        .iter()
        .filter(|s| s.repository_id == repo_id)
        .filter(|s| s.pushed_at > now - period)
        .filter(|s| result == "all" || s.result == result)
        .filter(|s| git_ref.as_ref().is_none_or(|r| s.git_ref == *r))
        .filter(|s| actor.is_none_or(|a| s.actor_name.eq_ignore_ascii_case(a)))
        .cloned()
        .collect();
    items.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then(b.id.cmp(&a.id)));
    Ok(items)
}

/// A query string, decoded.
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn get(&self, key: &str) -> Option<&String> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

fn parse_query(q: &str) -> Query {
    let pairs = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect();
    Query { pairs }
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    percent_encode_keeping(s, b'/')
}

/// `s` percent-encoded, keeping unreserved characters and `keep`.
pub(crate) fn percent_encode_keeping(s: &str, keep: u8) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (c as char).to_string(),
            c if c == keep => (c as char).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}

/// One page of `items` by `per_page` (default 30, at most 100) and `page`
/// (from 1), with GitHub's `Link` header naming the other pages.
fn paginate(items: Vec<Value>, query: &Query, base: &str) -> Reply {
    let per_page = query.get("per_page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(30).clamp(1, 100);
    let page = query.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let link = |p: usize, rel: &str| format!("<{base}per_page={per_page}&page={p}>; rel=\"{rel}\"");
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    let reply = Reply::json(200, Value::Array(chunk));
    if links.is_empty() { reply } else { reply.with_header("link", links.join(", ")) }
}
