//! A loopback fake of the GitHub REST API, for testing breakglass's GitHub
//! adapter where github.com cannot be reached. It is built from GitHub's
//! documented request and response shapes (the official OpenAPI description,
//! github/rest-api-description, and docs.github.com), whose examples are kept
//! in `fixtures/github/` and checked against the fake's answers; it is not
//! built from the adapter, so the two can disagree and a test shows it.
//!
//! [`GithubFake::start`] serves on `127.0.0.1:0` in a tokio task and hands
//! back a handle. The handle is also the test's remote control: a clock for
//! token expiry, injected failures and rate limits, a log of what was
//! received, and changes made "behind breakglass's back" (a team member
//! added by hand, a ruleset edited by someone else, a push that bypassed).
//!
//! What it serves (paths as GitHub documents them):
//! - `POST /app/installations/{installation_id}/access_tokens` (app JWT);
//! - `GET /users/{username}`;
//! - `GET|POST /repos/{o}/{r}/rulesets`, `GET|PUT|DELETE /repos/{o}/{r}/rulesets/{id}`,
//!   `GET /repos/{o}/{r}/rulesets/{id}/history[/{version_id}]`,
//!   `GET /repos/{o}/{r}/rules/branches/{branch}`;
//! - `GET /repos/{o}/{r}/rulesets/rule-suites[/{id}]`;
//! - `GET /repos/{o}/{r}/branches/{branch}[/protection]`;
//! - `GET|PUT|DELETE /orgs/{org}/teams/{team_slug}/memberships/{username}`,
//!   `GET /orgs/{org}/teams/{team_slug}/members`.

mod api;
pub mod client;
pub mod config;
pub mod gitlab;
mod jwt;
pub mod webhook;
mod world;

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

pub use api::RecordedRequest;
pub use client::HttpResponse;
pub use config::{AppConfig, GithubConfig, Permission, RepoConfig, TeamConfig, TokenConfig, UserConfig};
pub use gitlab::{GitlabConfig, GitlabFake, GitlabProject, GitlabProtectedBranch, GitlabPushAccess, GitlabUser};
pub use webhook::{Delivery, PushCommit, signature_256};

use api::{Failure, RateWindow, SecondaryLimit, Shared, SharedState};
use world::{Actor, RuleSuite, World, ZERO_SHA};

/// The seconds an app JWT may be valid for, at most (`exp` − now).
pub const APP_JWT_MAX_LIFETIME_SECS: i64 = jwt::MAX_LIFETIME;

/// A running fake GitHub. Dropping it stops the server.
pub struct GithubFake {
    url: String,
    state: SharedState,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for GithubFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubFake").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Drop for GithubFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A push made with [`GithubFake::push_with`].
#[derive(Debug, Clone)]
pub struct PushSpec {
    /// `owner/name`.
    pub repo: String,
    pub branch: String,
    pub new_sha: String,
    /// The pusher's login (a configured user).
    pub actor: String,
    /// Whether the pusher bypassed the rulesets that apply (rule suite
    /// result `bypass`); otherwise the push passed them (`pass`).
    pub bypass: bool,
    pub forced: bool,
    /// The pushed commits, oldest first; empty means one commit `new_sha`.
    pub commits: Vec<PushCommit>,
}

/// What [`GithubFake::push`] did.
#[derive(Debug, Clone)]
pub struct PushRecord {
    /// `pass`, `bypass`, or `fail` (refused; the head did not move).
    pub result: String,
    pub before: String,
    pub after: String,
    /// The rule suite recorded for the push, when a ruleset or classic
    /// protection applied to the branch.
    pub rule_suite_id: Option<u64>,
    /// The `push` webhook payload GitHub would send for it (`null` for a
    /// refused push: GitHub sends none).
    pub payload: Value,
}

impl PushRecord {
    /// Whether GitHub let the push in.
    pub fn accepted(&self) -> bool {
        self.result != "fail"
    }
}

impl GithubFake {
    /// Starts the fake on `127.0.0.1:0`. Needs a tokio runtime.
    pub async fn start(config: GithubConfig) -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let world = World::new(config, url.clone());
        let reset = world.now() + 3600;
        let state: SharedState = Arc::new(Mutex::new(Shared {
            world,
            log: Vec::new(),
            failures: Vec::new(),
            secondary: None,
            rate: RateWindow { limit: 5000, used: 0, reset },
        }));
        let app = axum::Router::new().fallback(api::handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            // The server ends when the handle aborts this task.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, state, task })
    }

    /// The API base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.state.lock().expect("the fake's state lock")
    }

    // --- the clock ---

    /// The fake's time, Unix seconds.
    pub fn now(&self) -> i64 {
        self.lock().world.now()
    }
    /// Stops following the wall clock and sets the time (Unix seconds).
    pub fn set_now(&self, unix: i64) {
        self.lock().world.clock = Some(unix);
    }
    /// Moves the fake's time forward by `secs` (freezing it first if it
    /// followed the wall clock).
    pub fn advance(&self, secs: i64) {
        let mut s = self.lock();
        let now = s.world.now();
        s.world.clock = Some(now + secs);
    }

    // --- faults and limits ---

    /// Answers the next `count` requests whose method is `method` and whose
    /// path starts with `path_prefix` with `status` (a JSON error body).
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16, count: u32) {
        self.lock().failures.push(Failure {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            status,
            remaining: count,
        });
    }
    /// Answers the next `count` requests with a secondary rate limit:
    /// `status` (403 or 429) and `retry-after: retry_after_secs`.
    pub fn secondary_rate_limit(&self, count: u32, status: u16, retry_after_secs: u64) {
        self.lock().secondary = Some(SecondaryLimit { remaining: count, status, retry_after: retry_after_secs });
    }
    /// Sets the primary limit and how much of it is left in this window;
    /// with nothing left every request answers 403 until `x-ratelimit-reset`.
    pub fn set_rate_limit(&self, limit: u64, remaining: u64) {
        let mut s = self.lock();
        s.rate.limit = limit;
        s.rate.used = limit.saturating_sub(remaining);
    }

    // --- what was received ---

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().log.clone()
    }
    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    // --- state readers ---

    /// The active members of a team, by login.
    pub fn team_members(&self, slug: &str) -> Vec<String> {
        let s = self.lock();
        let team = s.world.teams.iter().find(|t| t.slug.eq_ignore_ascii_case(slug));
        team.map(|t| t.members.iter().map(|(m, _)| m.clone()).collect()).unwrap_or_default()
    }
    /// The users invited to a team who have not accepted (not org members).
    pub fn pending_team_members(&self, slug: &str) -> Vec<String> {
        let s = self.lock();
        let team = s.world.teams.iter().find(|t| t.slug.eq_ignore_ascii_case(slug));
        team.map(|t| t.pending.iter().map(|(m, _)| m.clone()).collect()).unwrap_or_default()
    }
    /// A ruleset as an admin reads it (bypass actors included).
    pub fn ruleset(&self, id: u64) -> Option<Value> {
        let s = self.lock();
        s.world.rulesets.get(&id).map(|rs| s.world.render_ruleset(rs, true, None))
    }
    /// The ids of a repository's rulesets.
    pub fn ruleset_ids(&self, repo: &str) -> Vec<u64> {
        self.lock().world.rulesets.values().filter(|rs| rs.repo.eq_ignore_ascii_case(repo)).map(|rs| rs.id).collect()
    }
    /// A ruleset's history versions, newest first, each with its state.
    pub fn ruleset_history(&self, id: u64) -> Vec<Value> {
        let s = self.lock();
        let versions = s.world.rulesets.get(&id).map(|rs| rs.history.clone()).unwrap_or_default();
        versions.iter().rev().map(|v| World::render_version(v, true, true)).collect()
    }
    /// The head sha of a branch.
    pub fn branch_head(&self, repo: &str, branch: &str) -> Option<String> {
        let s = self.lock();
        s.world.repo_by_full_name(repo).and_then(|r| r.branches.get(branch).cloned())
    }

    // --- changes made behind breakglass's back ---

    /// Creates a ruleset as the outside actor; the body is what a POST
    /// would send. Panics when GitHub would refuse it.
    pub fn create_ruleset_directly(&self, repo: &str, body: Value) -> u64 {
        let mut s = self.lock();
        let repo =
            s.world.repo_by_full_name(repo).map(|r| r.full_name()).unwrap_or_else(|| panic!("no repository {repo}"));
        let actor = Actor { id: s.world.cfg.outside_actor_id, kind: "User" };
        api::create_ruleset(&mut s.world, &repo, &body, actor)
            .unwrap_or_else(|e| panic!("GitHub would refuse this ruleset: {e:?}"))
    }
    /// Edits a ruleset as the outside actor: `f` changes the ruleset's JSON
    /// (as an admin reads it); the editable fields are then taken back, and
    /// a history version is recorded.
    pub fn edit_ruleset_directly(&self, id: u64, f: impl FnOnce(&mut Value)) {
        let mut s = self.lock();
        let Some(rs) = s.world.rulesets.get(&id) else { panic!("no ruleset {id}") };
        let mut v = s.world.render_ruleset(rs, true, None);
        f(&mut v);
        let mut body = serde_json::Map::new();
        for k in ["name", "target", "enforcement", "bypass_actors", "conditions", "rules"] {
            body.insert(k.to_owned(), v.get(k).cloned().unwrap_or(Value::Null));
        }
        if body["bypass_actors"].is_null() {
            body.insert("bypass_actors".into(), json!([]));
        }
        if body["rules"].is_null() {
            body.insert("rules".into(), json!([]));
        }
        let actor = Actor { id: s.world.cfg.outside_actor_id, kind: "User" };
        api::update_ruleset(&mut s.world, id, &Value::Object(body), actor)
            .unwrap_or_else(|e| panic!("GitHub would refuse this edit: {e:?}"));
    }
    /// Adds a bypass actor to a ruleset as the outside actor.
    pub fn add_bypass_actor_directly(&self, id: u64, actor_type: &str, actor_id: Option<u64>, bypass_mode: &str) {
        self.edit_ruleset_directly(id, |v| {
            let actors = v["bypass_actors"].as_array_mut().expect("bypass_actors is an array");
            actors.push(json!({"actor_id": actor_id, "actor_type": actor_type, "bypass_mode": bypass_mode}));
        });
    }
    /// Someone else adds this bypass actor to ruleset `id` just before the
    /// next PUT to it is applied (a concurrent edit between a client's read
    /// and its write; GitHub's PUT has no precondition to stop it).
    pub fn race_next_put(&self, id: u64, actor_type: &str, actor_id: Option<u64>, bypass_mode: &str) {
        self.lock()
            .world
            .racing_edits
            .push((id, json!({"actor_id": actor_id, "actor_type": actor_type, "bypass_mode": bypass_mode})));
    }
    /// Makes `login` an active member of a team, as an org owner would in
    /// the web UI.
    pub fn add_team_member_directly(&self, slug: &str, login: &str) {
        let mut s = self.lock();
        let team = s.world.team_mut(slug).unwrap_or_else(|| panic!("no team {slug}"));
        team.pending.retain(|(m, _)| !m.eq_ignore_ascii_case(login));
        if !team.members.iter().any(|(m, _)| m.eq_ignore_ascii_case(login)) {
            team.members.push((login.to_owned(), "member".to_owned()));
        }
    }
    /// The invited user accepts: they join the organization, and every
    /// team invitation becomes an active membership.
    pub fn accept_invitation(&self, login: &str) {
        let mut s = self.lock();
        if let Some(u) = s.world.users.iter_mut().find(|u| u.login.eq_ignore_ascii_case(login)) {
            u.org_member = true;
        }
        for team in &mut s.world.teams {
            if let Some(i) = team.pending.iter().position(|(m, _)| m.eq_ignore_ascii_case(login)) {
                let entry = team.pending.remove(i);
                team.members.push(entry);
            }
        }
    }

    /// Moves `branch` of `repo` to `new_sha` as pushed by `actor`, and
    /// records the rule suite (`bypass` when `bypass`, else `pass`).
    pub fn push(&self, repo: &str, branch: &str, new_sha: &str, actor: &str, bypass: bool) -> PushRecord {
        self.push_with(PushSpec {
            repo: repo.to_owned(),
            branch: branch.to_owned(),
            new_sha: new_sha.to_owned(),
            actor: actor.to_owned(),
            bypass,
            forced: false,
            commits: Vec::new(),
        })
    }

    /// [`GithubFake::push`] with every detail given.
    pub fn push_with(&self, spec: PushSpec) -> PushRecord {
        let outcome = if spec.bypass { "bypass" } else { "pass" };
        self.push_inner(spec, outcome)
    }

    /// A push that GitHub's rules decide: with no ruleset or classic
    /// protection on the branch it passes; when active rulesets apply, it
    /// goes through (result `bypass`) only if `actor` may bypass every one of
    /// them always (as a `User` bypass actor or an active member of a `Team`
    /// bypass actor), and is refused otherwise (result `fail`, head
    /// unchanged). Classic protection is never lifted by a ruleset's
    /// bypass list, so a branch under it refuses the push.
    pub fn push_enforced(&self, repo: &str, branch: &str, new_sha: &str, actor: &str) -> PushRecord {
        let outcome = {
            let s = self.lock();
            let w = &s.world;
            let user = w.user(actor).cloned().unwrap_or_else(|| panic!("no user {actor}"));
            let r = w.repo_by_full_name(repo).unwrap_or_else(|| panic!("no repository {repo}"));
            let (full, classic) = (r.full_name(), r.protection.contains_key(branch));
            let git_ref = format!("refs/heads/{branch}");
            let as_user = world::Token {
                actor: Actor { id: user.id, kind: "User" },
                login: Some(user.login.clone()),
                admin_repos: false,
                write_members: false,
                expires_at: None,
                repo_ids: None,
            };
            let applying: Vec<_> = w
                .rulesets
                .values()
                .filter(|rs| rs.repo == full && rs.enforcement == "active" && w.ruleset_applies(rs, &git_ref))
                .collect();
            if classic {
                "fail"
            } else if applying.is_empty() {
                "pass"
            } else if applying.iter().all(|rs| w.can_bypass(rs, &as_user) == "always") {
                "bypass"
            } else {
                "fail"
            }
        };
        let spec = PushSpec {
            repo: repo.to_owned(),
            branch: branch.to_owned(),
            new_sha: new_sha.to_owned(),
            actor: actor.to_owned(),
            bypass: outcome == "bypass",
            forced: false,
            commits: Vec::new(),
        };
        self.push_inner(spec, outcome)
    }

    fn push_inner(&self, spec: PushSpec, outcome: &str) -> PushRecord {
        let mut s = self.lock();
        let w = &mut s.world;
        let pusher = w.user(&spec.actor).cloned().unwrap_or_else(|| panic!("no user {}", spec.actor));
        let idx = w
            .repos
            .iter()
            .position(|r| r.full_name().eq_ignore_ascii_case(&spec.repo))
            .unwrap_or_else(|| panic!("no repository {}", spec.repo));
        let git_ref = format!("refs/heads/{}", spec.branch);
        let before = w.repos[idx].branches.get(&spec.branch).cloned().unwrap_or_else(|| ZERO_SHA.to_owned());
        let full = w.repos[idx].full_name();
        let mut evaluations = Vec::new();
        let mut evaluate_failed = None;
        let rule_result = if outcome == "pass" { "pass" } else { "fail" };
        for rs in w.rulesets.values().filter(|rs| rs.repo == full && rs.enforcement != "disabled") {
            if !w.ruleset_applies(rs, &git_ref) {
                continue;
            }
            for rule in &rs.rules {
                let mut e = json!({
                    "rule_source": {"type": "ruleset", "id": rs.id, "name": rs.name},
                    "enforcement": rs.enforcement,
                    "result": rule_result,
                    "rule_type": rule.get("type").cloned().unwrap_or(Value::Null),
                });
                if outcome != "pass" && rule.get("type").and_then(Value::as_str) == Some("pull_request") {
                    e["details"] = json!("Changes must be made through a pull request.");
                }
                if rs.enforcement == "evaluate" {
                    evaluate_failed = Some(rule_result);
                }
                evaluations.push(e);
            }
        }
        if w.repos[idx].protection.contains_key(&spec.branch) {
            evaluations.push(json!({
                "rule_source": {"type": "protected_branch"},
                "enforcement": "active",
                "result": rule_result,
                "rule_type": "pull_request",
            }));
        }
        let now = w.now();
        let rule_suite_id = (!evaluations.is_empty()).then(|| {
            let id = w.next_suite_id;
            w.next_suite_id += 1;
            let repo = &w.repos[idx];
            w.rule_suites.push(RuleSuite {
                id,
                actor_id: pusher.id,
                actor_name: pusher.login.clone(),
                before_sha: before.clone(),
                after_sha: spec.new_sha.clone(),
                git_ref: git_ref.clone(),
                repository_id: repo.id,
                repository_name: repo.name.clone(),
                pushed_at: now,
                result: outcome.to_owned(),
                evaluation_result: evaluate_failed.map(str::to_owned),
                rule_evaluations: evaluations,
            });
            id
        });
        if outcome == "fail" {
            return PushRecord {
                result: outcome.to_owned(),
                before,
                after: spec.new_sha,
                rule_suite_id,
                payload: Value::Null,
            };
        }
        w.repos[idx].branches.insert(spec.branch.clone(), spec.new_sha.clone());
        let commits = if spec.commits.is_empty() {
            vec![PushCommit {
                id: spec.new_sha.clone(),
                message: format!("Push by {}", pusher.login),
                ..PushCommit::default()
            }]
        } else {
            spec.commits.clone()
        };
        let repo = w.repos[idx].clone();
        let payload = webhook::push_payload(w, &repo, &git_ref, &before, &spec.new_sha, spec.forced, &pusher, &commits);
        PushRecord { result: outcome.to_owned(), before, after: spec.new_sha, rule_suite_id, payload }
    }

    /// Delivers a `push` event to `url` as GitHub would, signed with `secret`.
    pub async fn deliver_push(&self, url: &str, secret: &[u8], payload: &Value) -> io::Result<Delivery> {
        webhook::deliver(url, "push", secret, payload).await
    }
}
