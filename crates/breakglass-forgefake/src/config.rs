//! What a fake GitHub starts with: one organization, its repositories,
//! users, teams, a GitHub App installation and plain tokens. Every field is
//! public; the builder methods are only shorthand for tests.

use serde_json::{Value, json};

/// The starting world of a [`crate::GithubFake`].
#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// The organization's login (`orgs/{org}` paths and team memberships).
    pub org: String,
    /// The organization's numeric id.
    pub org_id: u64,
    pub repos: Vec<RepoConfig>,
    pub users: Vec<UserConfig>,
    pub teams: Vec<TeamConfig>,
    pub app: Option<AppConfig>,
    pub tokens: Vec<TokenConfig>,
    /// The user id recorded as the actor of changes made "behind
    /// breakglass's back" ([`crate::GithubFake::edit_ruleset_directly`] and friends).
    pub outside_actor_id: u64,
    /// Where the fake's clock starts, in Unix seconds; `None` follows the
    /// wall clock until a test sets it.
    pub start_unix: Option<i64>,
}

impl GithubConfig {
    pub fn new(org: &str) -> Self {
        Self {
            org: org.to_owned(),
            org_id: 9000,
            repos: Vec::new(),
            users: Vec::new(),
            teams: Vec::new(),
            app: None,
            tokens: Vec::new(),
            outside_actor_id: 1,
            start_unix: None,
        }
    }
    pub fn repo(mut self, repo: RepoConfig) -> Self {
        self.repos.push(repo);
        self
    }
    pub fn user(mut self, user: UserConfig) -> Self {
        self.users.push(user);
        self
    }
    pub fn team(mut self, team: TeamConfig) -> Self {
        self.teams.push(team);
        self
    }
    pub fn app(mut self, app: AppConfig) -> Self {
        self.app = Some(app);
        self
    }
    /// A plain (personal access) token acting as the user `login`.
    pub fn token(mut self, token: &str, permission: Permission, login: &str) -> Self {
        self.tokens.push(TokenConfig { token: token.to_owned(), permission, login: login.to_owned() });
        self
    }
    pub fn start_at(mut self, unix: i64) -> Self {
        self.start_unix = Some(unix);
        self
    }
}

/// One repository, `owner/name`, with its branch heads.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    pub full_name: String,
    pub id: u64,
    pub default_branch: String,
    /// Branch name and head commit sha; the default branch is among them.
    pub branches: Vec<(String, String)>,
    /// Classic branch protection per branch, answered as given by
    /// `GET /repos/{o}/{r}/branches/{branch}/protection`.
    pub protection: Vec<(String, Value)>,
}

impl RepoConfig {
    pub fn new(full_name: &str, id: u64, default_branch: &str, head_sha: &str) -> Self {
        Self {
            full_name: full_name.to_owned(),
            id,
            default_branch: default_branch.to_owned(),
            branches: vec![(default_branch.to_owned(), head_sha.to_owned())],
            protection: Vec::new(),
        }
    }
    pub fn branch(mut self, name: &str, head_sha: &str) -> Self {
        self.branches.push((name.to_owned(), head_sha.to_owned()));
        self
    }
    pub fn classic_protection(mut self, branch: &str, protection: Value) -> Self {
        self.protection.push((branch.to_owned(), protection));
        self
    }
}

/// A GitHub account. `org_member` decides whether a team membership PUT
/// makes an active member or only an invitation (`state: "pending"`).
#[derive(Debug, Clone)]
pub struct UserConfig {
    pub login: String,
    pub id: u64,
    pub org_member: bool,
    /// `User` or `Bot`.
    pub kind: String,
}

impl UserConfig {
    pub fn member(login: &str, id: u64) -> Self {
        Self { login: login.to_owned(), id, org_member: true, kind: "User".to_owned() }
    }
    pub fn outsider(login: &str, id: u64) -> Self {
        Self { org_member: false, ..Self::member(login, id) }
    }
}

/// A team of the organization. A team synchronized with an identity
/// provider refuses membership changes through the API (403).
#[derive(Debug, Clone)]
pub struct TeamConfig {
    pub slug: String,
    pub id: u64,
    pub members: Vec<String>,
    pub idp_synced: bool,
}

impl TeamConfig {
    pub fn new(slug: &str, id: u64) -> Self {
        Self { slug: slug.to_owned(), id, members: Vec::new(), idp_synced: false }
    }
    pub fn members(mut self, logins: &[&str]) -> Self {
        self.members.extend(logins.iter().map(|l| (*l).to_owned()));
        self
    }
    pub fn idp_synced(mut self) -> Self {
        self.idp_synced = true;
        self
    }
}

/// A GitHub App installed on the organization.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub app_id: u64,
    /// The client ID, also accepted as the JWT's `iss`.
    pub client_id: Option<String>,
    pub installation_id: u64,
    /// The app's RSA public key (PEM, SPKI or PKCS#1) that app JWTs are
    /// checked against.
    pub public_key_pem: String,
    /// The installation's permissions, e.g. `{"administration":"write"}`.
    pub permissions: Value,
}

impl AppConfig {
    /// An app with repository administration and organization members
    /// write access: what the breakglass adapter needs.
    pub fn new(app_id: u64, installation_id: u64, public_key_pem: &str) -> Self {
        Self {
            app_id,
            client_id: None,
            installation_id,
            public_key_pem: public_key_pem.to_owned(),
            permissions: json!({"administration": "write", "members": "write", "contents": "read", "metadata": "read"}),
        }
    }
}

/// How much a plain token may do. `Admin` administers repositories (rulesets,
/// protection, rule suites) and writes organization members; `Write` and
/// `Read` only read (`Write` stands for push access, which does not reach
/// ruleset administration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Admin,
    Write,
    Read,
}

#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub token: String,
    pub permission: Permission,
    pub login: String,
}
