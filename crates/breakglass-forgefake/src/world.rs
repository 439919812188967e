//! The fake's state: what GitHub would hold for one organization, and the
//! serializers that render it in the documented response shapes (see
//! `fixtures/github/README.md` for the examples they follow).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::{GithubConfig, Permission};

pub(crate) const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// Who made a change, as ruleset history records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Actor {
    pub id: u64,
    pub kind: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub login: String,
    pub id: u64,
    pub org_member: bool,
    pub kind: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Team {
    pub slug: String,
    pub id: u64,
    /// Active members and their role (`member` or `maintainer`).
    pub members: Vec<(String, String)>,
    /// Invitations not yet accepted: the user is not an org member.
    pub pending: Vec<(String, String)>,
    pub idp_synced: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Repo {
    pub owner: String,
    pub name: String,
    pub id: u64,
    pub default_branch: String,
    pub branches: BTreeMap<String, String>,
    pub protection: BTreeMap<String, Value>,
}

impl Repo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub version_id: u64,
    pub actor: Actor,
    pub updated_at: i64,
    /// The ruleset as it was after this change, bypass actors included.
    pub state: Value,
}

#[derive(Debug, Clone)]
pub(crate) struct Ruleset {
    pub id: u64,
    pub repo: String,
    pub name: String,
    pub target: String,
    pub enforcement: String,
    pub bypass_actors: Vec<Value>,
    pub conditions: Option<Value>,
    pub rules: Vec<Value>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Oldest first.
    pub history: Vec<Version>,
}

#[derive(Debug, Clone)]
pub(crate) struct RuleSuite {
    pub id: u64,
    pub actor_id: u64,
    pub actor_name: String,
    pub before_sha: String,
    pub after_sha: String,
    pub git_ref: String,
    pub repository_id: u64,
    pub repository_name: String,
    pub pushed_at: i64,
    pub result: String,
    pub evaluation_result: Option<String>,
    pub rule_evaluations: Vec<Value>,
}

/// What a token may do and on whose behalf.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub actor: Actor,
    /// The user's login for plain tokens; `None` for installation tokens.
    pub login: Option<String>,
    pub admin_repos: bool,
    pub write_members: bool,
    pub expires_at: Option<i64>,
    /// Repository ids an installation token was narrowed to.
    pub repo_ids: Option<Vec<u64>>,
}

pub(crate) struct World {
    pub base_url: String,
    pub cfg: GithubConfig,
    pub users: Vec<User>,
    pub teams: Vec<Team>,
    pub repos: Vec<Repo>,
    pub rulesets: BTreeMap<u64, Ruleset>,
    pub rule_suites: Vec<RuleSuite>,
    pub tokens: BTreeMap<String, Token>,
    pub next_ruleset_id: u64,
    pub next_version_id: u64,
    pub next_suite_id: u64,
    pub clock: Option<i64>,
    /// Bypass actors someone else adds to a ruleset just before the next
    /// PUT to it is applied: a concurrent edit between a client's read and
    /// its write.
    pub racing_edits: Vec<(u64, Value)>,
}

pub(crate) fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

pub(crate) fn wall_clock() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

impl World {
    pub fn new(cfg: GithubConfig, base_url: String) -> Self {
        let users = cfg
            .users
            .iter()
            .map(|u| User { login: u.login.clone(), id: u.id, org_member: u.org_member, kind: u.kind.clone() })
            .collect();
        let teams = cfg
            .teams
            .iter()
            .map(|t| Team {
                slug: t.slug.clone(),
                id: t.id,
                members: t.members.iter().map(|m| (m.clone(), "member".to_owned())).collect(),
                pending: Vec::new(),
                idp_synced: t.idp_synced,
            })
            .collect();
        let repos = cfg
            .repos
            .iter()
            .map(|r| {
                let (owner, name) = r.full_name.split_once('/').unwrap_or((cfg.org.as_str(), r.full_name.as_str()));
                Repo {
                    owner: owner.to_owned(),
                    name: name.to_owned(),
                    id: r.id,
                    default_branch: r.default_branch.clone(),
                    branches: r.branches.iter().cloned().collect(),
                    protection: r.protection.iter().cloned().collect(),
                }
            })
            .collect();
        let mut tokens = BTreeMap::new();
        for t in &cfg.tokens {
            let id = cfg.users.iter().find(|u| u.login.eq_ignore_ascii_case(&t.login)).map_or(0, |u| u.id);
            let admin = t.permission == Permission::Admin;
            tokens.insert(
                t.token.clone(),
                Token {
                    actor: Actor { id, kind: "User" },
                    login: Some(t.login.clone()),
                    admin_repos: admin,
                    write_members: admin,
                    expires_at: None,
                    repo_ids: None,
                },
            );
        }
        let clock = cfg.start_unix;
        Self {
            base_url,
            cfg,
            users,
            teams,
            repos,
            rulesets: BTreeMap::new(),
            rule_suites: Vec::new(),
            tokens,
            next_ruleset_id: 42,
            next_version_id: 1,
            next_suite_id: 21,
            clock,
            racing_edits: Vec::new(),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.unwrap_or_else(wall_clock)
    }

    pub fn user(&self, login: &str) -> Option<&User> {
        self.users.iter().find(|u| u.login.eq_ignore_ascii_case(login))
    }

    pub fn repo_idx(&self, owner: &str, name: &str) -> Option<usize> {
        self.repos.iter().position(|r| r.owner.eq_ignore_ascii_case(owner) && r.name.eq_ignore_ascii_case(name))
    }

    pub fn repo_by_full_name(&self, full: &str) -> Option<&Repo> {
        self.repos.iter().find(|r| r.full_name().eq_ignore_ascii_case(full))
    }

    pub fn team_mut(&mut self, slug: &str) -> Option<&mut Team> {
        self.teams.iter_mut().find(|t| t.slug.eq_ignore_ascii_case(slug))
    }

    pub fn simple_user(&self, u: &User) -> Value {
        let base = &self.base_url;
        json!({
            "login": u.login,
            "id": u.id,
            "node_id": format!("U_fake{}", u.id),
            "avatar_url": format!("{base}/avatars/u/{}", u.id),
            "gravatar_id": "",
            "url": format!("{base}/users/{}", u.login),
            "html_url": format!("{base}/{}", u.login),
            "type": u.kind,
            "user_view_type": "public",
            "site_admin": false,
        })
    }

    /// The organization in the shape of a repository owner.
    pub fn org_as_owner(&self) -> Value {
        let (base, org, id) = (&self.base_url, &self.cfg.org, self.cfg.org_id);
        json!({
            "login": org,
            "id": id,
            "node_id": format!("O_fake{id}"),
            "avatar_url": format!("{base}/avatars/u/{id}"),
            "gravatar_id": "",
            "url": format!("{base}/users/{org}"),
            "html_url": format!("{base}/{org}"),
            "type": "Organization",
            "site_admin": false,
        })
    }

    pub fn public_user(&self, u: &User) -> Value {
        let mut v = self.simple_user(u);
        let map = v.as_object_mut().expect("a user is an object");
        map.insert("name".into(), Value::Null);
        map.insert("company".into(), Value::Null);
        map.insert("blog".into(), json!(""));
        map.insert("location".into(), Value::Null);
        map.insert("email".into(), Value::Null);
        map.insert("hireable".into(), Value::Null);
        map.insert("bio".into(), Value::Null);
        map.insert("public_repos".into(), json!(0));
        map.insert("public_gists".into(), json!(0));
        map.insert("followers".into(), json!(0));
        map.insert("following".into(), json!(0));
        map.insert("created_at".into(), json!("2011-01-25T18:44:36Z"));
        map.insert("updated_at".into(), json!("2011-01-25T18:44:36Z"));
        v
    }

    /// A ruleset as `GET /repos/{o}/{r}/rulesets/{id}` answers it. Bypass
    /// actors are shown only to a caller who may edit the ruleset.
    pub fn render_ruleset(&self, rs: &Ruleset, show_bypass: bool, can_bypass: Option<&str>) -> Value {
        let mut v = self.render_ruleset_item(rs);
        let m = v.as_object_mut().expect("a ruleset is an object");
        if show_bypass {
            m.insert("bypass_actors".into(), Value::Array(rs.bypass_actors.clone()));
        }
        if let Some(c) = can_bypass {
            m.insert("current_user_can_bypass".into(), json!(c));
        }
        if let Some(c) = &rs.conditions {
            m.insert("conditions".into(), c.clone());
        }
        m.insert("rules".into(), Value::Array(rs.rules.clone()));
        v
    }

    /// A ruleset as the list endpoint answers it: no rules, conditions or
    /// bypass actors.
    pub fn render_ruleset_item(&self, rs: &Ruleset) -> Value {
        let base = &self.base_url;
        json!({
            "id": rs.id,
            "name": rs.name,
            "target": rs.target,
            "source_type": "Repository",
            "source": rs.repo,
            "enforcement": rs.enforcement,
            "node_id": format!("RRS_fake{}", rs.id),
            "_links": {
                "self": {"href": format!("{base}/repos/{}/rulesets/{}", rs.repo, rs.id)},
                "html": {"href": format!("{base}/{}/rules/{}", rs.repo, rs.id)},
            },
            "created_at": rfc3339(rs.created_at),
            "updated_at": rfc3339(rs.updated_at),
        })
    }

    /// The snapshot kept in a history version.
    pub fn ruleset_state(rs: &Ruleset) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(rs.id));
        m.insert("name".into(), json!(rs.name));
        m.insert("target".into(), json!(rs.target));
        m.insert("enforcement".into(), json!(rs.enforcement));
        m.insert("bypass_actors".into(), Value::Array(rs.bypass_actors.clone()));
        if let Some(c) = &rs.conditions {
            m.insert("conditions".into(), c.clone());
        }
        m.insert("rules".into(), Value::Array(rs.rules.clone()));
        Value::Object(m)
    }

    pub fn render_version(v: &Version, with_state: bool, show_bypass: bool) -> Value {
        let mut out = json!({
            "version_id": v.version_id,
            "actor": {"id": v.actor.id, "type": v.actor.kind},
            "updated_at": rfc3339(v.updated_at),
        });
        if with_state {
            let mut state = v.state.clone();
            if !show_bypass && let Some(m) = state.as_object_mut() {
                m.remove("bypass_actors");
            }
            out.as_object_mut().expect("an object").insert("state".into(), state);
        }
        out
    }

    /// Records a new history version if the ruleset's state changed (or it
    /// has none yet), and moves `updated_at`.
    pub fn record_version(&mut self, id: u64, actor: Actor) {
        let now = self.now();
        let next = self.next_version_id;
        let Some(rs) = self.rulesets.get_mut(&id) else { return };
        let state = Self::ruleset_state(rs);
        if rs.history.last().is_some_and(|v| v.state == state) {
            return;
        }
        rs.updated_at = now;
        rs.history.push(Version { version_id: next, actor, updated_at: now, state });
        self.next_version_id += 1;
    }

    pub fn render_suite(&self, s: &RuleSuite, detail: bool) -> Value {
        let mut v = json!({
            "id": s.id,
            "actor_id": s.actor_id,
            "actor_name": s.actor_name,
            "before_sha": s.before_sha,
            "after_sha": s.after_sha,
            "ref": s.git_ref,
            "repository_id": s.repository_id,
            "repository_name": s.repository_name,
            "pushed_at": rfc3339(s.pushed_at),
            "result": s.result,
        });
        let m = v.as_object_mut().expect("an object");
        if let Some(e) = &s.evaluation_result {
            m.insert("evaluation_result".into(), json!(e));
        }
        if detail {
            m.insert("rule_evaluations".into(), Value::Array(s.rule_evaluations.clone()));
        }
        v
    }

    /// Whether a branch ruleset's `ref_name` condition selects `git_ref`
    /// (`refs/heads/...`) of `repo`.
    pub fn ruleset_applies(&self, rs: &Ruleset, git_ref: &str) -> bool {
        if rs.target != "branch" || !git_ref.starts_with("refs/heads/") {
            return false;
        }
        let Some(repo) = self.repo_by_full_name(&rs.repo) else { return false };
        let Some(ref_name) = rs.conditions.as_ref().and_then(|c| c.get("ref_name")) else { return false };
        let patterns = |key: &str| -> Vec<String> {
            ref_name
                .get(key)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let matches = |p: &str| match p {
            "~ALL" => true,
            "~DEFAULT_BRANCH" => git_ref == format!("refs/heads/{}", repo.default_branch),
            p if p.starts_with("refs/") => glob(p, git_ref),
            p => glob(&format!("refs/heads/{p}"), git_ref),
        };
        patterns("include").iter().any(|p| matches(p)) && !patterns("exclude").iter().any(|p| matches(p))
    }

    /// How the caller `token` may bypass a ruleset, in the words of
    /// `current_user_can_bypass`.
    pub fn can_bypass(&self, rs: &Ruleset, token: &Token) -> &'static str {
        let app_id = self.cfg.app.as_ref().map(|a| a.app_id);
        for a in &rs.bypass_actors {
            let id = a.get("actor_id").and_then(Value::as_u64);
            let hit = match a.get("actor_type").and_then(Value::as_str) {
                Some("Integration") => token.login.is_none() && id == app_id,
                Some("User") => token.login.is_some() && id == Some(token.actor.id),
                Some("Team") => token.login.as_ref().is_some_and(|login| {
                    self.teams
                        .iter()
                        .any(|t| Some(t.id) == id && t.members.iter().any(|(m, _)| m.eq_ignore_ascii_case(login)))
                }),
                Some("RepositoryRole") => token.login.is_some() && token.admin_repos && id == Some(5),
                _ => false,
            };
            if hit {
                return match a.get("bypass_mode").and_then(Value::as_str) {
                    Some("pull_request") => "pull_requests_only",
                    Some("exempt") => "exempt",
                    _ => "always",
                };
            }
        }
        "never"
    }
}

/// A ref-name pattern as rulesets use them: `*` matches within one path
/// segment, `**` across segments, `?` one character.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => (0..=t.len()).any(|i| go(&p[2..], &t[i..])),
            Some(b'*') => {
                let mut i = 0;
                loop {
                    if go(&p[1..], &t[i..]) {
                        return true;
                    }
                    if i == t.len() || t[i] == b'/' {
                        return false;
                    }
                    i += 1;
                }
            }
            Some(b'?') => !t.is_empty() && t[0] != b'/' && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn ref_patterns() {
        assert!(glob("refs/heads/main", "refs/heads/main"));
        assert!(glob("refs/heads/dev*", "refs/heads/develop"));
        assert!(!glob("refs/heads/dev*", "refs/heads/dev/x"));
        assert!(glob("refs/heads/**", "refs/heads/dev/x"));
        assert!(!glob("refs/heads/main", "refs/heads/main2"));
    }
}
