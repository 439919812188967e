//! GitHub's REST API for the team mechanism: a team that is the `always`
//! bypass actor of the ruleset on the protected refs; a grant adds its
//! holder to the team, its end removes them. Authenticated as a GitHub App
//! installation (an RS256 app JWT exchanged for an installation token,
//! renewed before its hour ends) or with a token.
//!
//! Security: the forge's answers are checked for their documented shape (a
//! body of the wrong shape is an error, never a default), credentials go
//! only into the `Authorization` header, and a membership GitHub reports as
//! `pending` (an invitation to someone outside the organisation) is not a
//! bypass and is reported as a failure.

use std::sync::Mutex;
use std::time::Duration;

use breakglass_client::{ApiAnswer, ForgeHttp};
use breakglass_core::time::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ForgeError, ForgeUser};
use crate::service::kernel::config::{ForgeAuth, ForgeConfig, ForgeRepo, Mechanism};

/// GitHub's REST API version these calls are written against.
const API_VERSION: &str = "2022-11-28";
/// An installation token is renewed this long before it expires (ms).
const RENEW_BEFORE_MS: i64 = 5 * 60_000;
/// The most members listed per page (GitHub's maximum).
const PER_PAGE: u32 = 100;
/// Pages followed at most when listing a team.
const MAX_PAGES: usize = 50;

pub(super) struct Github {
    api: String,
    auth: ForgeAuth,
    http: ForgeHttp,
    /// The installation token and when it expires.
    token: Mutex<Option<(String, Timestamp)>>,
}

#[derive(Deserialize)]
struct InstallationToken {
    token: String,
    expires_at: String,
}

#[derive(Deserialize)]
struct Account {
    login: String,
    id: u64,
}

#[derive(Deserialize)]
struct Membership {
    state: String,
    role: String,
}

impl Github {
    pub(super) fn new(config: &ForgeConfig) -> Result<Github, ForgeError> {
        let http = ForgeHttp::new(Duration::from_secs(10)).map_err(|e| ForgeError::Setup(e.to_string()))?;
        Ok(Github {
            api: config.api_url.trim_end_matches('/').to_owned(),
            auth: config.auth.clone(),
            http,
            token: Mutex::new(None),
        })
    }

    /// The app JWT: RS256, issued 60 s in the past (clock skew), valid 9 minutes.
    fn app_jwt(app_id: &str, key_pem: &str, now: Timestamp) -> Result<String, ForgeError> {
        let key = jsonwebtoken::EncodingKey::from_rsa_der(&pkcs1_der(key_pem)?);
        let iat = now.0.div_euclid(1000) - 60;
        let claims = json!({ "iat": iat, "exp": iat + 60 + 540, "iss": app_id });
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key)
            .map_err(|e| ForgeError::Setup(format!("cannot sign the GitHub App JWT: {e}")))
    }

    /// The bearer credential for the next call.
    async fn credential(&self, now: Timestamp) -> Result<String, ForgeError> {
        let (app_id, installation_id, key) = match &self.auth {
            ForgeAuth::Token(t) => return Ok(t.clone()),
            ForgeAuth::GithubApp { app_id, installation_id, private_key_pem } => {
                (app_id, installation_id, private_key_pem)
            }
        };
        if let Some((t, until)) = self.token.lock().expect("token lock").clone()
            && now.0 < until.0 - RENEW_BEFORE_MS
        {
            return Ok(t);
        }
        let jwt = Self::app_jwt(app_id, key, now)?;
        let url = format!("{}/app/installations/{installation_id}/access_tokens", self.api);
        let answer = self.send_with("POST", &url, &jwt, Some("{}".into())).await?;
        if answer.status != 201 {
            return Err(refusal("exchanging the app JWT for an installation token", &answer));
        }
        let t: InstallationToken = decode("the installation token", &answer)?;
        let until = Timestamp::parse(&t.expires_at).map_err(|_| {
            ForgeError::Shape(format!("the installation token's expires_at {:?} is not a time", t.expires_at))
        })?;
        *self.token.lock().expect("token lock") = Some((t.token.clone(), until));
        Ok(t.token)
    }

    async fn send_with(
        &self,
        method: &str,
        url: &str,
        credential: &str,
        body: Option<String>,
    ) -> Result<ApiAnswer, ForgeError> {
        let headers = [
            ("authorization", format!("Bearer {credential}")),
            ("accept", "application/vnd.github+json".to_owned()),
            ("x-github-api-version", API_VERSION.to_owned()),
        ];
        let answer = self.http.send(method, url, &headers, body).await.map_err(ForgeError::Unreachable)?;
        if let Some(wait) = rate_limited(&answer) {
            return Err(ForgeError::RateLimited { retry_after_ms: wait });
        }
        Ok(answer)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        now: Timestamp,
    ) -> Result<ApiAnswer, ForgeError> {
        let credential = self.credential(now).await?;
        let answer =
            self.send_with(method, &format!("{}{path}", self.api), &credential, body.map(|b| b.to_string())).await?;
        if answer.status == 401 {
            // A token revoked or expired early: the next call makes a new one.
            *self.token.lock().expect("token lock") = None;
        }
        Ok(answer)
    }

    fn team(repo: &ForgeRepo) -> Result<(&str, &str), ForgeError> {
        match &repo.mechanism {
            Mechanism::Team { org, slug } => Ok((org, slug)),
            Mechanism::User => Err(ForgeError::Setup(format!("{} has no team: its mechanism is user", repo.name))),
        }
    }

    /// Gives `user` the bypass on `repo`, by the repository's mechanism.
    pub(super) async fn grant(&self, repo: &ForgeRepo, user: &ForgeUser, now: Timestamp) -> Result<Value, ForgeError> {
        match repo.mechanism {
            Mechanism::Team { .. } => self.grant_team(repo, user, now).await,
            Mechanism::User => self.set_user_actor(repo, user, true, now).await,
        }
    }

    /// Takes it away again, checked.
    pub(super) async fn revoke(&self, repo: &ForgeRepo, user: &ForgeUser, now: Timestamp) -> Result<Value, ForgeError> {
        match repo.mechanism {
            Mechanism::Team { .. } => self.revoke_team(repo, user, now).await,
            Mechanism::User => self.set_user_actor(repo, user, false, now).await,
        }
    }

    /// Everyone who holds the bypass on `repo` now.
    pub(super) async fn holders(&self, repo: &ForgeRepo, now: Timestamp) -> Result<Vec<ForgeUser>, ForgeError> {
        match repo.mechanism {
            Mechanism::Team { .. } => self.holders_team(repo, now).await,
            Mechanism::User => {
                let Some(id) = self.our_ruleset(repo, now).await? else { return Ok(Vec::new()) };
                let (_, actors) = self.ruleset_actors(repo, id, now).await?;
                let mut out = Vec::new();
                for a in actors.iter().filter(|a| a.get("actor_type").and_then(Value::as_str) == Some("User")) {
                    let Some(uid) = a.get("actor_id").and_then(Value::as_u64) else { continue };
                    out.push(self.user_by_id(uid, now).await?);
                }
                Ok(out)
            }
        }
    }

    /// The account with immutable id `id`, by its login now.
    async fn user_by_id(&self, id: u64, now: Timestamp) -> Result<ForgeUser, ForgeError> {
        let answer = self.send("GET", &format!("/user/{id}"), None, now).await?;
        if answer.status != 200 {
            return Err(refusal(&format!("reading the account with id {id}"), &answer));
        }
        let a: Account = decode("an account", &answer)?;
        Ok(ForgeUser { login: a.login, id: a.id })
    }

    /// A ruleset's bypass actors as an admin reads them, and the ruleset.
    async fn ruleset_actors(
        &self,
        repo: &ForgeRepo,
        id: u64,
        now: Timestamp,
    ) -> Result<(Value, Vec<Value>), ForgeError> {
        let (o, r) = Self::owner_repo(repo)?;
        let answer = self.send("GET", &format!("/repos/{o}/{r}/rulesets/{id}"), None, now).await?;
        if answer.status != 200 {
            return Err(refusal(&format!("reading ruleset {id} of {}", repo.forge_repo), &answer));
        }
        let v: Value = decode("a ruleset", &answer)?;
        let Some(actors) = v.get("bypass_actors").and_then(Value::as_array).cloned() else {
            return Err(ForgeError::Refused(format!(
                "ruleset {id} of {} came back without bypass_actors: the app or token lacks Administration: write",
                repo.forge_repo
            )));
        };
        Ok((v, actors))
    }

    /// The bypass actors of one version of a ruleset, from its state.
    async fn version_actors(
        &self,
        repo: &ForgeRepo,
        id: u64,
        vid: u64,
        now: Timestamp,
    ) -> Result<Vec<Value>, ForgeError> {
        let (o, r) = Self::owner_repo(repo)?;
        let answer = self.send("GET", &format!("/repos/{o}/{r}/rulesets/{id}/history/{vid}"), None, now).await?;
        if answer.status != 200 {
            return Err(refusal(&format!("reading version {vid} of ruleset {id}"), &answer));
        }
        let state: Value = decode("a ruleset version", &answer)?;
        state
            .pointer("/state/bypass_actors")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| ForgeError::Shape(format!("version {vid} of ruleset {id} has no state.bypass_actors")))
    }

    /// The ruleset's versions, newest first, as `(version_id, actor)`.
    async fn versions(&self, repo: &ForgeRepo, id: u64, now: Timestamp) -> Result<Vec<(u64, Value)>, ForgeError> {
        let (o, r) = Self::owner_repo(repo)?;
        let answer = self.send("GET", &format!("/repos/{o}/{r}/rulesets/{id}/history?per_page=30"), None, now).await?;
        if answer.status != 200 {
            return Err(refusal(&format!("reading the history of ruleset {id}"), &answer));
        }
        let list: Vec<Value> = decode("a ruleset's history", &answer)?;
        list.into_iter()
            .map(|v| {
                let vid = v
                    .get("version_id")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| ForgeError::Shape("a ruleset history version has no numeric version_id".into()))?;
                Ok((vid, v.get("actor").cloned().unwrap_or(Value::Null)))
            })
            .collect()
    }

    /// Adds (`present`) or removes `user` as a `User` bypass actor: read the
    /// ruleset and the newest version, write the changed array, then read the
    /// history again. A version someone else made between the read and the
    /// write was overwritten by it (arrays are replaced): its actors are read
    /// back from that version and written again with ours, and the result
    /// names the edit, so it is logged and never silently lost.
    async fn set_user_actor(
        &self,
        repo: &ForgeRepo,
        user: &ForgeUser,
        present: bool,
        now: Timestamp,
    ) -> Result<Value, ForgeError> {
        let Some(id) = self.our_ruleset(repo, now).await? else {
            return Err(ForgeError::Refused(format!(
                "{} has no {RULESET_NAME:?} ruleset: run breakglass forge install --repo {} first",
                repo.forge_repo, repo.name
            )));
        };
        let (o, r) = Self::owner_repo(repo)?;
        let ours = json!({ "actor_id": user.id, "actor_type": "User", "bypass_mode": "always" });
        let is_ours = |a: &Value| {
            a.get("actor_type").and_then(Value::as_str) == Some("User")
                && a.get("actor_id").and_then(Value::as_u64) == Some(user.id)
        };
        let change = |mut actors: Vec<Value>| {
            actors.retain(|a| !is_ours(a));
            if present {
                actors.push(ours.clone());
            }
            actors
        };
        let mut noticed = Vec::new();
        let mut base_version = self.versions(repo, id, now).await?.first().map(|(v, _)| *v).unwrap_or(0);
        let (_, actors) = self.ruleset_actors(repo, id, now).await?;
        let mut want = change(actors);
        for _ in 0..4 {
            let answer = self
                .send("PUT", &format!("/repos/{o}/{r}/rulesets/{id}"), Some(json!({ "bypass_actors": want })), now)
                .await?;
            if answer.status != 200 {
                return Err(refusal(&format!("changing the bypass actors of ruleset {id}"), &answer));
            }
            let versions = self.versions(repo, id, now).await?;
            let newer: Vec<&(u64, Value)> = versions.iter().take_while(|(v, _)| *v > base_version).collect();
            if newer.len() <= 1 {
                return Ok(json!({ "ruleset_id": id, "actor": ours, "present": present,
                                  "version_id": newer.first().map(|(v, _)| *v), "concurrent_edits": noticed }));
            }
            let newest = newer[0].0;
            let newest_actors = self.version_actors(repo, id, newest, now).await?;
            let ours_is_newest = newest_actors == want;
            let raced = if ours_is_newest { &newer[1..] } else { &newer[..1] };
            noticed.extend(raced.iter().map(|(v, a)| json!({ "version_id": v, "actor": a })));
            let (raced_vid, base) = if ours_is_newest {
                // Ours is the newest: the edit just before it landed between our
                // read and our write, and our array replaced it. Write theirs
                // back, with our change on top.
                let (vid, _) = newer[1];
                (*vid, self.version_actors(repo, id, *vid, now).await?)
            } else {
                // Someone wrote after us: theirs stands; keep our change in it.
                (newest, newest_actors)
            };
            tracing::warn!(
                ruleset = id,
                version = raced_vid,
                "the breakglass ruleset was edited concurrently with breakglass's write; keeping both changes"
            );
            let merged = change(base.clone());
            if merged == base {
                return Ok(json!({ "ruleset_id": id, "actor": ours, "present": present,
                                  "version_id": newest, "concurrent_edits": noticed }));
            }
            want = merged;
            // What was written up to now is accounted for; the next write is checked alone.
            base_version = newest;
        }
        Err(ForgeError::Refused(format!("ruleset {id} of {} kept changing under breakglass's writes", repo.forge_repo)))
    }

    /// The account `login` names now.
    pub(super) async fn user(&self, login: &str, now: Timestamp) -> Result<ForgeUser, ForgeError> {
        let answer = self.send("GET", &format!("/users/{}", segment(login)), None, now).await?;
        if answer.status == 404 {
            return Err(ForgeError::Refused(format!("GitHub has no account {login:?}")));
        }
        if answer.status != 200 {
            return Err(refusal(&format!("reading the account {login}"), &answer));
        }
        let a: Account = decode("an account", &answer)?;
        Ok(ForgeUser { login: a.login, id: a.id })
    }

    /// Adds `user` to the bypass team; the membership must be active.
    async fn grant_team(&self, repo: &ForgeRepo, user: &ForgeUser, now: Timestamp) -> Result<Value, ForgeError> {
        let (org, slug) = Self::team(repo)?;
        let path = format!("/orgs/{}/teams/{}/memberships/{}", segment(org), segment(slug), segment(&user.login));
        let answer = self.send("PUT", &path, Some(json!({ "role": "member" })), now).await?;
        if answer.status != 200 {
            return Err(refusal(&format!("adding {} to team {org}/{slug}", user.login), &answer));
        }
        let m: Membership = decode("a team membership", &answer)?;
        if m.state != "active" {
            return Err(ForgeError::Refused(format!(
                "GitHub made {}'s membership of team {org}/{slug} {:?}, not active: they are not a member of {org}, so no bypass is in force (invite them to the organisation first)",
                user.login, m.state
            )));
        }
        Ok(
            json!({ "team": format!("{org}/{slug}"), "login": user.login, "user_id": user.id, "role": m.role, "state": m.state }),
        )
    }

    /// Removes `user` from the bypass team (gone already counts as removed).
    async fn revoke_team(&self, repo: &ForgeRepo, user: &ForgeUser, now: Timestamp) -> Result<Value, ForgeError> {
        let (org, slug) = Self::team(repo)?;
        let path = format!("/orgs/{}/teams/{}/memberships/{}", segment(org), segment(slug), segment(&user.login));
        let answer = self.send("DELETE", &path, None, now).await?;
        if !matches!(answer.status, 204 | 404) {
            return Err(refusal(&format!("removing {} from team {org}/{slug}", user.login), &answer));
        }
        // Checked, not assumed: the membership is gone.
        let check = self.send("GET", &path, None, now).await?;
        if check.status != 404 {
            return Err(ForgeError::Refused(format!(
                "{} is still in team {org}/{slug} after the removal (GitHub answered {})",
                user.login, check.status
            )));
        }
        Ok(json!({ "team": format!("{org}/{slug}"), "login": user.login, "user_id": user.id }))
    }

    /// Everyone who holds the bypass now: the team's members, every page.
    async fn holders_team(&self, repo: &ForgeRepo, now: Timestamp) -> Result<Vec<ForgeUser>, ForgeError> {
        let (org, slug) = Self::team(repo)?;
        let mut url = format!("{}/orgs/{}/teams/{}/members?per_page={PER_PAGE}", self.api, segment(org), segment(slug));
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let credential = self.credential(now).await?;
            let answer = self.send_with("GET", &url, &credential, None).await?;
            if answer.status != 200 {
                return Err(refusal(&format!("listing team {org}/{slug}"), &answer));
            }
            let page: Vec<Account> = decode("a team's members", &answer)?;
            out.extend(page.into_iter().map(|a| ForgeUser { login: a.login, id: a.id }));
            match answer.header("link").and_then(next_link) {
                // Followed as given, but only on the same API.
                Some(next) if next.starts_with(&self.api) => url = next,
                Some(next) => return Err(ForgeError::Shape(format!("a Link header points off the API: {next}"))),
                None => return Ok(out),
            }
        }
        Err(ForgeError::Shape(format!("team {org}/{slug} has more than {MAX_PAGES} pages of members")))
    }
}

/// The DER of a PKCS#1 RSA private key in PEM (`-----BEGIN RSA PRIVATE
/// KEY-----`, as GitHub hands out app keys).
fn pkcs1_der(pem: &str) -> Result<Vec<u8>, ForgeError> {
    use base64::Engine as _;
    let bad = |why: &str| ForgeError::Setup(format!("the GitHub App's private key {why}"));
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN RSA PRIVATE KEY-----")
        .and_then(|rest| rest.strip_suffix("-----END RSA PRIVATE KEY-----"))
        .ok_or_else(|| bad("is not a PEM \"RSA PRIVATE KEY\" (GitHub's app key format; convert a PKCS#8 key with `openssl pkey -traditional`)"))?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| bad("is not valid base64"))?;
    if der.first() != Some(&0x30) {
        return Err(bad("is not DER"));
    }
    Ok(der)
}

/// The name of the ruleset breakglass owns on a repository.
pub(super) const RULESET_NAME: &str = "breakglass";

#[derive(Deserialize)]
struct BranchCommit {
    sha: String,
}

#[derive(Deserialize)]
struct Branch {
    commit: BranchCommit,
}

#[derive(Deserialize)]
struct Team {
    id: u64,
}

#[derive(Deserialize)]
struct RulesetItem {
    id: u64,
    name: String,
}

#[derive(Deserialize)]
struct EffectiveRule {
    #[serde(rename = "type")]
    rule_type: String,
    #[serde(default)]
    ruleset_id: Option<u64>,
}

impl Github {
    fn owner_repo(repo: &ForgeRepo) -> Result<(String, String), ForgeError> {
        let (o, r) = repo
            .forge_repo
            .split_once('/')
            .ok_or_else(|| ForgeError::Setup(format!("forge_repo {:?} is not owner/repo", repo.forge_repo)))?;
        Ok((segment(o), segment(r)))
    }

    /// The ruleset breakglass owns on `repo`, if there is one.
    async fn our_ruleset(&self, repo: &ForgeRepo, now: Timestamp) -> Result<Option<u64>, ForgeError> {
        let (o, r) = Self::owner_repo(repo)?;
        let answer = self
            .send("GET", &format!("/repos/{o}/{r}/rulesets?includes_parents=false&per_page=100"), None, now)
            .await?;
        if answer.status != 200 {
            return Err(refusal(&format!("listing the rulesets of {}", repo.forge_repo), &answer));
        }
        let items: Vec<RulesetItem> = decode("a list of rulesets", &answer)?;
        Ok(items.into_iter().find(|i| i.name == RULESET_NAME).map(|i| i.id))
    }

    /// The commit a branch points at now (`None`: no such branch).
    pub(super) async fn branch_head(
        &self,
        repo: &ForgeRepo,
        branch: &str,
        now: Timestamp,
    ) -> Result<Option<String>, ForgeError> {
        let (o, r) = Self::owner_repo(repo)?;
        let answer = self.send("GET", &format!("/repos/{o}/{r}/branches/{}", segment(branch)), None, now).await?;
        if answer.status == 404 {
            return Ok(None);
        }
        if answer.status != 200 {
            return Err(refusal(&format!("reading branch {branch} of {}", repo.forge_repo), &answer));
        }
        let b: Branch = decode("a branch", &answer)?;
        if b.commit.sha.len() < 40 || !b.commit.sha.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(ForgeError::Shape(format!(
                "branch {branch}'s commit sha {:?} is not an object id",
                b.commit.sha
            )));
        }
        Ok(Some(b.commit.sha))
    }

    /// The protection breakglass owns, normalized: what the baseline and the
    /// drift check compare (`None`: there is none).
    pub(super) async fn protection(&self, repo: &ForgeRepo, now: Timestamp) -> Result<Option<Value>, ForgeError> {
        let Some(id) = self.our_ruleset(repo, now).await? else { return Ok(None) };
        let (o, r) = Self::owner_repo(repo)?;
        let answer = self.send("GET", &format!("/repos/{o}/{r}/rulesets/{id}"), None, now).await?;
        if answer.status == 404 {
            return Ok(None);
        }
        if answer.status != 200 {
            return Err(refusal(&format!("reading ruleset {id} of {}", repo.forge_repo), &answer));
        }
        let v: Value = decode("a ruleset", &answer)?;
        let Some(actors) = v.get("bypass_actors") else {
            // GitHub leaves them out for a caller who may not write the ruleset.
            return Err(ForgeError::Refused(format!(
                "ruleset {id} of {} came back without bypass_actors: the app or token lacks Administration: write",
                repo.forge_repo
            )));
        };
        let holders_are_actors = repo.mechanism == Mechanism::User;
        let mut actors: Vec<Value> = actors
            .as_array()
            .ok_or_else(|| ForgeError::Shape("bypass_actors is not an array".into()))?
            .iter()
            // Under the user mechanism the `User` actors are the grants' holders
            // (watched as holders), not part of the protection.
            .filter(|a| {
                !(holders_are_actors
                    && a.get("actor_type").and_then(Value::as_str) == Some("User")
                    && a.get("bypass_mode").and_then(Value::as_str) == Some("always"))
            })
            .map(|a| json!({ "actor_id": a.get("actor_id"), "actor_type": a.get("actor_type"), "bypass_mode": a.get("bypass_mode") }))
            .collect();
        actors.sort_by_key(|a| a.to_string());
        let mut rules: Vec<Value> = v.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
        rules.sort_by_key(|r| r.to_string());
        Ok(Some(json!({
            "ruleset_id": id,
            "name": v.get("name"),
            "target": v.get("target"),
            "enforcement": v.get("enforcement"),
            "conditions": v.get("conditions"),
            "bypass_actors": actors,
            "rules": rules,
        })))
    }

    /// Refuses while anything but the breakglass ruleset (`ours`, if it
    /// exists) protects a protected branch: classic branch protection, or
    /// another active ruleset's rules. GitHub applies them all, and a bypass
    /// of one lifts none of the others.
    async fn check_alone(&self, repo: &ForgeRepo, ours: Option<u64>, now: Timestamp) -> Result<(), ForgeError> {
        let (o, r) = Self::owner_repo(repo)?;
        for p in &repo.protected {
            let Some(branch) = p.strip_prefix("refs/heads/").filter(|b| !b.contains('*')) else { continue };
            let answer =
                self.send("GET", &format!("/repos/{o}/{r}/branches/{}/protection", segment(branch)), None, now).await?;
            if answer.status == 200 {
                return Err(ForgeError::Refused(format!(
                    "branch {branch} of {} also has classic branch protection, whose rules a bypass of the ruleset does not lift: move its rules into ruleset {RULESET_NAME:?} (breakglass creates it) and delete the classic protection, then install again",
                    repo.forge_repo
                )));
            }
            let answer =
                self.send("GET", &format!("/repos/{o}/{r}/rules/branches/{}", segment(branch)), None, now).await?;
            if answer.status != 200 {
                return Err(refusal(&format!("reading the rules in force on {branch}"), &answer));
            }
            let rules: Vec<EffectiveRule> = decode("the rules of a branch", &answer)?;
            let others: Vec<String> = rules
                .iter()
                .filter(|rule| rule.ruleset_id.is_some_and(|id| Some(id) != ours))
                .map(|rule| format!("{} (ruleset {})", rule.rule_type, rule.ruleset_id.unwrap_or_default()))
                .collect();
            if !others.is_empty() {
                return Err(ForgeError::Refused(format!(
                    "branch {branch} of {} is also protected by other rulesets ({}), whose rules a bypass of ruleset {RULESET_NAME:?} does not lift: move those rules into it, then install again",
                    repo.forge_repo,
                    others.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Checks, or creates, the ruleset breakglass owns on the protected
    /// refs, whose one bypass actor is the team (`always`, never `exempt`).
    /// Refuses when other protection would still block a bypass: classic
    /// branch protection, or another active ruleset's rules on a protected
    /// branch (GitHub applies them all; a bypass in one lifts none of the
    /// others). Says whether it created the ruleset.
    pub(super) async fn install(&self, repo: &ForgeRepo, now: Timestamp) -> Result<bool, ForgeError> {
        let (o, r) = Self::owner_repo(repo)?;
        // The bypass actors the ruleset must have (the user mechanism's are
        // the current holders, all of them `User`/`always`).
        let (actors, what) = match &repo.mechanism {
            Mechanism::Team { org, slug } => {
                let answer =
                    self.send("GET", &format!("/orgs/{}/teams/{}", segment(org), segment(slug)), None, now).await?;
                if answer.status != 200 {
                    return Err(refusal(&format!("reading team {org}/{slug}"), &answer));
                }
                let team: Team = decode("a team", &answer)?;
                (
                    json!([{ "actor_id": team.id, "actor_type": "Team", "bypass_mode": "always" }]),
                    format!("exactly team {org}/{slug} with bypass_mode always"),
                )
            }
            Mechanism::User => (json!([]), "only User actors with bypass_mode always (the grants' holders)".to_owned()),
        };
        // Checked before anything is created, so a refusal changes nothing.
        let existing = self.our_ruleset(repo, now).await?;
        self.check_alone(repo, existing, now).await?;
        let created = match existing {
            Some(id) => {
                let (v, current) = self.ruleset_actors(repo, id, now).await?;
                let fits = match &repo.mechanism {
                    Mechanism::Team { .. } => Value::Array(current.clone()) == actors,
                    Mechanism::User => current.iter().all(|a| {
                        a.get("actor_type").and_then(Value::as_str) == Some("User")
                            && a.get("bypass_mode").and_then(Value::as_str) == Some("always")
                    }),
                };
                if !fits {
                    return Err(ForgeError::Refused(format!(
                        "ruleset {RULESET_NAME:?} ({id}) on {} has bypass actors {} — breakglass needs {what}; change it on GitHub, then install again",
                        repo.forge_repo,
                        Value::Array(current)
                    )));
                }
                if v.get("enforcement").and_then(Value::as_str) != Some("active") {
                    return Err(ForgeError::Refused(format!(
                        "ruleset {RULESET_NAME:?} ({id}) on {} is not active; set its enforcement to active",
                        repo.forge_repo
                    )));
                }
                false
            }
            None => {
                let body = json!({
                    "name": RULESET_NAME,
                    "target": "branch",
                    "enforcement": "active",
                    "bypass_actors": actors,
                    "conditions": { "ref_name": { "include": repo.protected, "exclude": [] } },
                    "rules": [
                        { "type": "deletion" },
                        { "type": "non_fast_forward" },
                        { "type": "pull_request", "parameters": {
                            "required_approving_review_count": 1,
                            "dismiss_stale_reviews_on_push": true,
                            "require_code_owner_review": false,
                            "require_last_push_approval": false,
                            "required_review_thread_resolution": false
                        } }
                    ],
                });
                let answer = self.send("POST", &format!("/repos/{o}/{r}/rulesets"), Some(body), now).await?;
                if answer.status != 201 {
                    return Err(refusal(&format!("creating the breakglass ruleset on {}", repo.forge_repo), &answer));
                }
                let _: RulesetItem = decode("a ruleset", &answer)?;
                true
            }
        };
        Ok(created)
    }
}

use super::segment;

/// The `rel="next"` URL of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
    })
}

/// How long GitHub asks us to wait, when it refused for rate (403/429 with
/// `retry-after`, or no requests left until `x-ratelimit-reset`).
fn rate_limited(a: &ApiAnswer) -> Option<i64> {
    if !matches!(a.status, 403 | 429) {
        return None;
    }
    if let Some(s) = a.header("retry-after").and_then(|v| v.trim().parse::<i64>().ok()) {
        return Some(s.clamp(0, 3600) * 1000);
    }
    if a.header("x-ratelimit-remaining") == Some("0") {
        // Until the reset, which GitHub gives in epoch seconds; at least a minute.
        return Some(60_000);
    }
    (a.status == 429).then_some(60_000)
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, a: &ApiAnswer) -> Result<T, ForgeError> {
    serde_json::from_slice(&a.body).map_err(|e| ForgeError::Shape(format!("GitHub's answer is not {what}: {e}")))
}

/// An unexpected status, with GitHub's message (never the request's headers).
fn refusal(doing: &str, a: &ApiAnswer) -> ForgeError {
    let message = serde_json::from_slice::<Value>(&a.body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let message: String = message.chars().filter(|c| !c.is_control()).take(200).collect();
    let hint = match a.status {
        403 if message.contains("synchron") || message.is_empty() => {
            " (a team synchronised with an identity provider cannot be changed through the API, and the app needs Members: write)"
        }
        403 => " (check the app's or token's permissions)",
        _ => "",
    };
    ForgeError::Refused(format!("{doing}: GitHub answered {} {message}{hint}", a.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_read_as_github_writes_it() {
        let link = r#"<https://api.github.com/organizations/1/team/2/members?per_page=100&page=2>; rel="next", <https://api.github.com/organizations/1/team/2/members?per_page=100&page=5>; rel="last""#;
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/organizations/1/team/2/members?per_page=100&page=2")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="prev""#), None);
    }

    #[test]
    fn segments_cannot_change_the_path() {
        assert_eq!(segment("alice-gh"), "alice-gh");
        assert_eq!(segment("../admin"), "..%2Fadmin");
        assert_eq!(segment("a?b#c"), "a%3Fb%23c");
    }

    #[test]
    fn rate_limits_are_read_from_retry_after_or_remaining() {
        let a = |status, headers: &[(&str, &str)]| ApiAnswer {
            status,
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            body: Vec::new(),
        };
        assert_eq!(rate_limited(&a(403, &[("retry-after", "7")])), Some(7_000));
        assert_eq!(rate_limited(&a(403, &[("x-ratelimit-remaining", "0")])), Some(60_000));
        assert_eq!(rate_limited(&a(429, &[])), Some(60_000));
        assert_eq!(rate_limited(&a(403, &[])), None);
        assert_eq!(rate_limited(&a(200, &[("retry-after", "7")])), None);
    }
}
