//! The server-side hooks: `pre-receive` decides every update of a protected
//! ref, `post-receive` records what entered under a grant.
//!
//! Security: the pusher controls the pushed ref names, the objects and the
//! push options; this is where "you push straight to main" is allowed or
//! refused. Its rules:
//! - The pusher is whoever the Git server says (an environment variable the
//!   server sets: `BREAKGLASS_USER` from `breakglass git shell`, gitolite's
//!   `GL_USER`, …), never a commit's author. No identity, no protected update.
//! - A protected update needs an effective grant of the pusher with the
//!   capability the update needs (`push`; `force-push` when the new value does
//!   not descend from the old; `delete`) on `git:<repo>@<ref>`: from a grant
//!   token in the push option `breakglass=<token>`, verified offline (and
//!   checked online for revocation when the server answers), or else from
//!   the server. If neither can say yes, the update is refused: fail closed.
//! - Every new commit entering the ref under a grant carries a
//!   `Break-Glass: <grant-id>` trailer, read with git's own trailer parsing.
//! - Decisions and pushes become log entries bound to the grant; when the
//!   server is unreachable they are spooled durably and delivered later.
//! - A protected ref is protected under every name that reaches it: a push
//!   to a symbolic ref is decided (and recorded) as an update of the ref it
//!   points to; a protected name that is itself a symbolic ref into an
//!   unprotected ref, and in a `core.ignoreCase` repository a name that
//!   differs from a protected one only in case, are refused (issue 14).
//! - Unprotected refs cost a config read and nothing else.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use breakglass_client::Client;
use breakglass_core::api::EventRequest;
use breakglass_core::push_input::{self, Update};
use breakglass_core::scope::{Capability, Scope};
use breakglass_core::time::Clock as _;
use breakglass_core::token::{Expect, KeySet};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::repo;
use super::spool;
use crate::datadir::SystemClock;
use breakglass_core::push_input::is_zero;
use breakglass_server::hostcheck;

/// The hook's settings, `breakglass.toml` in the bare repository (written by
/// `breakglass git install`; no secrets: the API token is in `token_file`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// The repository's name in scopes (`git:<name>@<ref>`).
    pub name: String,
    /// Protected ref patterns: exact refs, or a prefix ending in `*`.
    pub protected: Vec<String>,
    /// Principals who may update protected refs normally (fast-forward or
    /// create), e.g. a merge bot. Force pushes and deletions still need a grant.
    #[serde(default)]
    pub updaters: Vec<String>,
    /// The breakglass server; empty: tokens only.
    #[serde(default)]
    pub server: String,
    /// A file holding a `service` API token for the server (mode 0600).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The pinned grant-token public keys (JWKS or key lines), for offline verification.
    #[serde(default)]
    pub jwks: Option<PathBuf>,
    /// The `iss` grant tokens must carry; default: `server`.
    #[serde(default)]
    pub issuer: String,
    /// Where undelivered events wait; default: `<repo>/breakglass-spool`.
    #[serde(default)]
    pub spool: Option<PathBuf>,
    /// Environment variables naming the pusher, first set wins.
    #[serde(default = "default_identity")]
    pub identity: Vec<String>,
    /// The most new commits one protected update may bring (more: refused).
    #[serde(default = "default_max_commits")]
    pub max_commits: usize,
    /// The longest grant-token lifetime accepted (the policy maximum).
    #[serde(default = "default_max_token_lifetime")]
    pub max_token_lifetime: String,
    /// How long the hook waits for the server, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

pub fn default_identity() -> Vec<String> {
    ["BREAKGLASS_USER", "GL_USER", "GITEA_PUSHER_NAME", "GL_USERNAME", "GITHUB_USER_LOGIN"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

fn default_max_commits() -> usize {
    10_000
}

fn default_max_token_lifetime() -> String {
    "24h".into()
}

fn default_timeout_ms() -> u64 {
    3000
}

pub const CONFIG_FILE: &str = "breakglass.toml";
const PENDING_DIR: &str = "breakglass-pending";

impl HookConfig {
    pub fn load(git_dir: &Path) -> Result<HookConfig, String> {
        let path = git_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e} (run 'breakglass git install')", path.display()))?;
        let cfg: HookConfig = toml::from_str(&text).map_err(|e| format!("invalid {}: {e}", path.display()))?;
        cfg.validate().map_err(|e| format!("invalid {}: {e}", path.display()))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.protected.is_empty() {
            return Err("no protected ref patterns".into());
        }
        for p in &self.protected {
            Scope::parse(&format!("git:{}@{p}", self.name))
                .map_err(|e| format!("protected pattern {p:?} for repository {:?}: {e}", self.name))?;
        }
        breakglass_core::grant::parse_duration(&self.max_token_lifetime)
            .map_err(|e| format!("max_token_lifetime: {e}"))?;
        Ok(())
    }

    pub fn spool_dir(&self, git_dir: &Path) -> PathBuf {
        self.spool.clone().unwrap_or_else(|| git_dir.join("breakglass-spool"))
    }

    fn issuer(&self) -> &str {
        if self.issuer.is_empty() { self.server.trim_end_matches('/') } else { &self.issuer }
    }

    /// Whether `refname` matches a protected pattern.
    fn protects(&self, refname: &str) -> bool {
        hostcheck::is_protected(&self.protected, refname)
    }

    /// A client for the server, if one is configured with a token.
    pub fn client(&self) -> Result<Option<Client>, String> {
        if self.server.is_empty() {
            return Ok(None);
        }
        let token = self.token_file.as_deref().map(read_token_file).transpose()?;
        Client::with_timeout(&self.server, token, Duration::from_millis(self.timeout_ms))
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// Quotes a path for a command the pusher or operator is told to run, only
/// when it needs quoting.
pub fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+@%:,=".contains(c)) {
        s
    } else {
        super::sh_quote(&s)
    }
}

/// Reads the hook's API token file, refusing one that group or others may
/// read or write (it is a `service` credential: issue 14, finding 7).
pub fn read_token_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the hook's API token file {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "the hook's API token file {} is open to group or others (mode {mode:04o}) and holds a secret; fix it with: chmod 600 {}",
                path.display(),
                shell_word(path)
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the hook's API token file {}: {e}", path.display()))?;
    let token = text.trim();
    if !token.starts_with("bgk_") {
        return Err(format!("{} does not hold a breakglass API token (bgk_…)", path.display()));
    }
    Ok(token.to_owned())
}

/// The hook's standard input as updates (see [`push_input::parse_updates`]).
pub fn parse_updates(input: &[u8]) -> Result<Vec<Update>, String> {
    push_input::parse_updates(input).map_err(|e| e.to_string())
}

/// What an update does to a ref.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateKind {
    Create,
    FastForward,
    Force,
    Delete,
}

impl UpdateKind {
    fn capability(self) -> &'static str {
        match self {
            UpdateKind::Delete => "delete",
            UpdateKind::Force => "force-push",
            UpdateKind::Create | UpdateKind::FastForward => "push",
        }
    }
}

/// A protected update that pre-receive accepted (under a grant, or by an
/// updater with `grant` empty), for post-receive to record.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Accepted {
    grant: String,
    pusher: String,
    kind: UpdateKind,
    via: String,
    commits: Vec<String>,
    /// The ref the update moves when the pushed name is a symbolic ref to
    /// it (empty: the pushed name itself; notes of older hooks lack it).
    #[serde(default)]
    target: String,
}

/// The environment the hook runs in (the real one, or a test's).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

fn pusher(cfg: &HookConfig, env: &dyn Env) -> Option<String> {
    cfg.identity.iter().find_map(|k| env.var(k)).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The `breakglass=<token>` push option, if given (see [`push_input::grant_token`]).
fn push_token(env: &dyn Env) -> Result<Option<String>, String> {
    let n = push_input::option_count(env.var("GIT_PUSH_OPTION_COUNT").as_deref()).map_err(|e| e.to_string())?;
    let options: Vec<String> = (0..n).filter_map(|i| env.var(&format!("GIT_PUSH_OPTION_{i}"))).collect();
    push_input::grant_token(options.iter().map(String::as_str)).map_err(|e| e.to_string())
}

/// Prints to the pusher (stderr becomes `remote: …`), with GitLab's prefix
/// on refusals when running under GitLab.
struct Say {
    gitlab: bool,
}

impl Say {
    fn refuse(&self, msg: &str) {
        for line in msg.lines() {
            if self.gitlab {
                eprintln!("GL-HOOK-ERR: {line}");
            } else {
                eprintln!("{line}");
            }
        }
    }

    fn info(&self, msg: &str) {
        eprintln!("{msg}");
    }
}

/// The grant that allows an update, or why there is none.
struct Allowed {
    grant: String,
    via: &'static str,
}

async fn find_grant(
    cfg: &HookConfig,
    client: Option<&Client>,
    env: &dyn Env,
    pusher: &str,
    target: &Scope,
    cap: &Capability,
) -> Result<Allowed, String> {
    let now = SystemClock.now();
    if let Some(token) = push_token(env)? {
        let Some(jwks) = &cfg.jwks else {
            return Err(
                "a grant token was given, but this repository has no pinned key to verify it (jwks in breakglass.toml)"
                    .into(),
            );
        };
        let text = std::fs::read_to_string(jwks).map_err(|e| format!("cannot read {}: {e}", jwks.display()))?;
        let keys =
            KeySet::parse(&text).map_err(|e| format!("the pinned keys in {} are invalid: {e}", jwks.display()))?;
        let max = breakglass_core::grant::parse_duration(&cfg.max_token_lifetime).unwrap_or(86_400_000);
        let expect = Expect::new(cfg.issuer(), Duration::from_millis(max as u64))
            .with_principal(pusher)
            .with_scope(target.clone())
            .with_capability(cap.clone());
        let claims = breakglass_core::token::verify(&token, &keys, &expect, now)
            .map_err(|e| format!("the grant token was refused: {e}"))?;
        // Revocation reaches only those who ask: ask when the server answers.
        if let Some(c) = client {
            match c.grant_status(&claims.grant_id).await {
                Ok(s) if !s.effective => {
                    return Err(format!("grant {} is {} (the server says so)", claims.grant_id, s.state.as_str()));
                }
                Ok(_) => return Ok(Allowed { grant: claims.grant_id, via: "token+server" }),
                Err(e) if e.status().is_some() && e.status() != Some(404) => {
                    return Err(format!("the server refused to confirm grant {}: {e}", claims.grant_id));
                }
                Err(_) => {}
            }
        }
        return Ok(Allowed { grant: claims.grant_id, via: "token" });
    }
    let Some(c) = client else {
        return Err(
            "no breakglass server is configured for this repository; push with a grant token:\n  git push -o breakglass=<token> …   (get it with 'breakglass token <grant-id>')"
            .into());
    };
    match c.check(pusher, &target.to_string(), &cap.to_string()).await {
        Ok(r) => match r.grant {
            Some(g) if r.allowed => Ok(Allowed { grant: g.id, via: "server" }),
            _ => Err(format!(
                "{pusher} has no active grant with '{cap}' on {target}.\n  Ask for one: breakglass request --scope {target} --cap {cap} --for 30m --reason \"…\""
            )),
        },
        Err(e) => Err(format!(
            "cannot reach the breakglass server to check your grant ({e}).\n  Push with the grant's token instead: git push -o breakglass=<token> …\n  (get it with 'breakglass token <grant-id>' while the server is up)"
        )),
    }
}

/// Sends an event, or spools it durably when the server cannot take it now.
async fn report(cfg: &HookConfig, git_dir: &Path, client: Option<&Client>, event: EventRequest) -> Result<(), String> {
    if let Some(c) = client {
        match c.record_event(&event).await {
            Ok(_) => return Ok(()),
            Err(e) if e.status().is_some_and(|s| s == 400 || s == 422) => {
                return Err(format!("the server refused event {}: {e}", event.id));
            }
            Err(_) => {}
        }
    }
    spool::spool(&cfg.spool_dir(git_dir), &event).map(|_| ())
}

/// Where pre-receive notes an accepted update for post-receive, keyed by
/// the ref that moves (what drift looks for while a push is in flight).
fn pending_path(git_dir: &Path, u: &Update, target: &str) -> PathBuf {
    use sha2::Digest as _;
    let key = hex::encode(sha2::Sha256::digest(format!("{} {} {}", u.old, u.new, target).as_bytes()));
    git_dir.join(PENDING_DIR).join(format!("{key}.json"))
}

/// Writes a file only its owner may read, created with that mode (no
/// window in which others could open it).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)
}

/// Runs a chained (pre-existing) hook with the same input; its status.
fn run_chained(git_dir: &Path, name: &str, input: &[u8], args: &[String]) -> Result<i32, String> {
    // The hook script tells where it is ($0), which spares a `git config`
    // process on every push; older scripts do not, so ask git then.
    let hooks = match std::env::var_os("BREAKGLASS_HOOK_PATH").map(PathBuf::from) {
        Some(script) => match script.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        },
        None => hooks_dir(git_dir),
    };
    let chained = hooks.join(format!("{name}{}", super::CHAINED_SUFFIX));
    if !chained.exists() {
        return Ok(0);
    }
    let mut child = std::process::Command::new(&chained)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the chained hook {}: {e}", chained.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        let _ = stdin.write_all(input);
    }
    let status = child.wait().map_err(|e| format!("the chained hook {} failed: {e}", chained.display()))?;
    Ok(status.code().unwrap_or(1))
}

pub fn hooks_dir(git_dir: &Path) -> PathBuf {
    breakglass_server::hostcheck::hooks_dir(git_dir)
}

fn git_dir_from_env() -> PathBuf {
    std::env::var_os("GIT_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."))
}

/// `breakglass git hook pre-receive`: 0 accepts the push, anything else refuses it.
pub async fn pre_receive(args: &[String]) -> i32 {
    let git_dir = git_dir_from_env();
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("breakglass: cannot read the pushed updates: {e}");
        return 1;
    }
    match run_chained(&git_dir, "pre-receive", &input, args) {
        Ok(0) => {}
        Ok(code) => return code,
        Err(e) => {
            eprintln!("breakglass: {e}");
            return 1;
        }
    }
    let env = ProcessEnv;
    let say = Say { gitlab: env.var("GL_ID").is_some() || env.var("GL_USERNAME").is_some() };
    let cfg = match HookConfig::load(&git_dir) {
        Ok(c) => c,
        Err(e) => {
            say.refuse(&format!("breakglass: refusing the push: {e}"));
            return 1;
        }
    };
    let updates = match parse_updates(&input) {
        Ok(u) => u,
        Err(e) => {
            say.refuse(&format!("breakglass: refusing the push: {e}"));
            return 1;
        }
    };
    match decide(&git_dir, &cfg, &updates, &env, &say).await {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            say.refuse(&format!("breakglass: refusing the push: {e}"));
            1
        }
    }
}

/// How one pushed update stands to protection.
enum Protection {
    /// No protected ref moves, under any name: nothing to decide.
    Unprotected,
    /// An update of a protected ref; the scope is `git:<repo>@<ref that moves>`.
    Protected(Scope),
    /// Refused before any grant is looked at, for this reason.
    Refused(String),
}

/// A pushed update and the ref it really moves.
struct Resolved<'a> {
    u: &'a Update,
    /// The pushed name, or the ref it is a symbolic ref to.
    target: String,
    protection: Protection,
}

impl Resolved<'_> {
    /// The ref as the pusher is told about it.
    fn label(&self) -> String {
        if self.target == self.u.refname {
            self.target.clone()
        } else {
            format!("{} (pushed as {}, a symbolic ref to it)", self.target, self.u.refname)
        }
    }
}

/// What protection depends on beyond the pushed names, read once per push
/// and only when some update needs it.
#[derive(Default)]
struct RepoFacts {
    ignore_case: Option<bool>,
    protected_symrefs: Option<Vec<hostcheck::Symref>>,
}

impl RepoFacts {
    fn ignore_case(&mut self, git_dir: &Path) -> bool {
        *self.ignore_case.get_or_insert_with(|| repo::ignores_case(git_dir))
    }

    fn protected_symrefs(&mut self, git_dir: &Path, cfg: &HookConfig) -> Result<&[hostcheck::Symref], String> {
        if self.protected_symrefs.is_none() {
            self.protected_symrefs = Some(hostcheck::symrefs_matching(git_dir, &cfg.protected)?);
        }
        Ok(self.protected_symrefs.as_deref().unwrap_or_default())
    }
}

/// Finds the ref an update moves and whether that needs deciding.
fn classify<'a>(git_dir: &Path, cfg: &HookConfig, u: &'a Update, facts: &mut RepoFacts) -> Resolved<'a> {
    let refused = |target: String, why: String| Resolved { u, target, protection: Protection::Refused(why) };
    // A push to a symbolic ref updates the ref it points to (issue 14).
    let target = match hostcheck::symref_target(git_dir, &u.refname) {
        Ok(t) => t.unwrap_or_else(|| u.refname.clone()),
        Err(e) => return refused(u.refname.clone(), format!("cannot tell which ref {} names: {e}", u.refname)),
    };
    if target != u.refname && push_input::check_refname(&target).is_err() {
        return refused(
            target.clone(),
            format!("{} is a symbolic ref to {target:?}, which the hooks cannot check", u.refname),
        );
    }
    if cfg.protects(&target) {
        return match Scope::parse(&format!("git:{}@{target}", cfg.name)) {
            Ok(scope) => Resolved { u, target, protection: Protection::Protected(scope) },
            Err(e) => refused(target.clone(), format!("cannot check ref {target}: {e}")),
        };
    }
    // A protected name that is a symbolic ref to this ref moves with it.
    match facts.protected_symrefs(git_dir, cfg) {
        Ok(found) => {
            if let Some(s) = found.iter().find(|s| s.target == target) {
                let why = format!(
                    "the protected {} is a symbolic ref to {target}, so updating {target} moves it; refused until {target} is protected too or the symbolic ref is removed",
                    s.name
                );
                return refused(target.clone(), why);
            }
        }
        Err(e) => return refused(target.clone(), format!("cannot list the protected symbolic refs: {e}")),
    }
    // Where the file system ignores Unicode normalisation, a Kelvin sign is a K.
    for name in [&u.refname, &target] {
        if let Some(p) = push_input::normalization_variant_of(&cfg.protected, name) {
            let why = format!(
                "{name} is the protected {p} once Unicode-normalised (file systems such as APFS store both as one file); push to the protected name itself"
            );
            return refused(target.clone(), why);
        }
    }
    // In a repository that ignores case, MAIN may be the very file of main.
    for name in [&u.refname, &target] {
        if let Some(p) = push_input::case_variant_of(&cfg.protected, name)
            && facts.ignore_case(git_dir)
        {
            let why = format!(
                "{name} differs from the protected {p} only in case, and this repository has core.ignoreCase=true (a case-insensitive file system, where both can be one file); push to the protected name itself"
            );
            return refused(target.clone(), why);
        }
    }
    Resolved { u, target, protection: Protection::Unprotected }
}

/// Decides every update; records each protected decision. True: accept all.
async fn decide(
    git_dir: &Path,
    cfg: &HookConfig,
    updates: &[Update],
    env: &dyn Env,
    say: &Say,
) -> Result<bool, String> {
    // The fast path: nothing protected, nothing to do.
    let mut facts = RepoFacts::default();
    let resolved: Vec<Resolved> = updates.iter().map(|u| classify(git_dir, cfg, u, &mut facts)).collect();
    if resolved.iter().all(|r| matches!(r.protection, Protection::Unprotected)) {
        return Ok(true);
    }
    let client = cfg.client()?;
    let mut all_ok = true;
    let mut accepted: Vec<(&Update, Accepted)> = Vec::new();
    let mut protected_tips: Option<BTreeMap<String, String>> = None;
    for r in &resolved {
        let u = r.u;
        let (target, label) = (r.target.as_str(), r.label());
        let scope = match &r.protection {
            Protection::Unprotected => continue,
            Protection::Protected(scope) => Some(scope),
            Protection::Refused(_) => None,
        };
        let kind = if is_zero(&u.new) {
            UpdateKind::Delete
        } else if is_zero(&u.old) {
            UpdateKind::Create
        } else if repo::is_ancestor(git_dir, &u.old, &u.new)? {
            UpdateKind::FastForward
        } else {
            UpdateKind::Force
        };
        let cap = Capability::parse(kind.capability()).expect("a known capability");
        let Some(who) = pusher(cfg, env) else {
            match &r.protection {
                Protection::Refused(why) => say.refuse(&format!("breakglass: {label} refused: {why}")),
                _ => say.refuse(&format!(
                    "breakglass: {label} is protected and the Git server did not say who is pushing ({} are all unset); refused",
                    cfg.identity.join(", ")
                )),
            }
            all_ok = false;
            continue;
        };
        let mut reasons = Vec::new();
        let mut grant = None;
        let mut via = "";
        let mut commits = Vec::new();
        match (&r.protection, scope) {
            (Protection::Refused(why), _) => reasons.push(why.clone()),
            (_, Some(_))
                if cfg.updaters.contains(&who) && matches!(kind, UpdateKind::Create | UpdateKind::FastForward) =>
            {
                // A normal update by a merge bot: no grant, but post-receive
                // records it, so drift can tell it from a push past the hooks.
                let a = Accepted {
                    grant: String::new(),
                    pusher: who,
                    kind,
                    via: "updater".into(),
                    commits: Vec::new(),
                    target: target.to_owned(),
                };
                accepted.push((u, a));
                continue;
            }
            (_, scope) => {
                let scope = scope.expect("a protected update has a scope");
                match find_grant(cfg, client.as_ref(), env, &who, scope, &cap).await {
                    Err(why) => reasons.push(why),
                    Ok(a) => {
                        via = a.via;
                        if kind != UpdateKind::Delete {
                            // What a new protected ref brings is what no
                            // protected ref holds yet: commits that sit on an
                            // unprotected branch still enter it here.
                            let others = if kind == UpdateKind::Create {
                                if protected_tips.is_none() {
                                    protected_tips = Some(hostcheck::protected_refs(git_dir, &cfg.protected)?);
                                }
                                protected_tips
                                    .iter()
                                    .flatten()
                                    .filter(|(name, _)| name.as_str() != target)
                                    .map(|(_, oid)| oid.clone())
                                    .collect()
                            } else {
                                Vec::new()
                            };
                            let range = repo::range_args(&u.old, &u.new, &others);
                            let list = repo::commits_with_trailers(git_dir, &range, cfg.max_commits)?;
                            if list.len() > cfg.max_commits {
                                reasons.push(format!(
                                    "the push brings more than {} new commits to {target}; push it in parts (max_commits in breakglass.toml)",
                                    cfg.max_commits
                                ));
                            }
                            let untagged: Vec<&str> = list
                                .iter()
                                .filter(|c| !c.break_glass.contains(&a.grant))
                                .map(|c| c.sha.as_str())
                                .collect();
                            if !untagged.is_empty() {
                                let shown: Vec<&str> = untagged.iter().take(5).map(|s| &s[..12.min(s.len())]).collect();
                                reasons.push(format!(
                                    "{} new commit(s) lack the trailer 'Break-Glass: {g}': {}{}\n  Add it to the last commit:  git commit --amend --no-edit --trailer \"Break-Glass: {g}\"\n  Or to every new commit:     git rebase --exec 'git commit --amend --no-edit --trailer \"Break-Glass: {g}\"' <base>",
                                    untagged.len(),
                                    shown.join(", "),
                                    if untagged.len() > 5 { ", …" } else { "" },
                                    g = a.grant
                                ));
                            }
                            commits = list.into_iter().map(|c| c.sha).collect();
                        }
                        grant = Some(a.grant);
                    }
                }
            }
        }
        let ok = reasons.is_empty();
        let mut data = json!({
            "repo": cfg.name,
            "ref": target,
            "old": u.old,
            "new": u.new,
            "update": kind,
            "capability": cap.to_string(),
            "accepted": ok,
            "reasons": reasons,
            "via": via,
            "commits": commits.len(),
        });
        if target != u.refname {
            data["pushed_as"] = json!(u.refname);
        }
        let event = EventRequest {
            id: spool::new_event_id(),
            kind: "git.push.decision".into(),
            actor: who.clone(),
            grant: grant.clone(),
            at: SystemClock.now(),
            data,
        };
        if let Err(e) = report(cfg, git_dir, client.as_ref(), event).await {
            // Unrecorded means not allowed.
            reasons.push(format!("the decision could not be recorded: {e}"));
        }
        if reasons.is_empty() {
            let g = grant.clone().unwrap_or_default();
            say.info(&format!("breakglass: {label} {} accepted under grant {g} ({via})", kind_word(kind)));
            let a = Accepted { grant: g, pusher: who, kind, via: via.into(), commits, target: target.to_owned() };
            accepted.push((u, a));
        } else {
            all_ok = false;
            say.refuse(&format!("breakglass: {label} {} refused:", kind_word(kind)));
            for r in &reasons {
                say.refuse(&format!("  {r}"));
            }
        }
    }
    if all_ok {
        let dir = git_dir.join(PENDING_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for (u, a) in accepted {
            let body = serde_json::to_vec(&a).map_err(|e| e.to_string())?;
            write_private(&pending_path(git_dir, u, &a.target), &body)
                .map_err(|e| format!("cannot note the decision: {e}"))?;
        }
    }
    Ok(all_ok)
}

fn kind_word(k: UpdateKind) -> &'static str {
    match k {
        UpdateKind::Create => "(new ref)",
        UpdateKind::FastForward => "(push)",
        UpdateKind::Force => "(force push)",
        UpdateKind::Delete => "(deletion)",
    }
}

/// The commit records of one push, in events of at most this many bytes
/// (log entries are limited to 64 KiB).
const EVENT_BUDGET: usize = 40_000;

/// `breakglass git hook post-receive`: records what entered protected refs
/// under a grant, then delivers anything spooled. Never fails the push (it
/// has happened); problems are printed.
pub async fn post_receive(args: &[String]) -> i32 {
    let git_dir = git_dir_from_env();
    let mut input = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut input);
    if let Err(e) = run_chained(&git_dir, "post-receive", &input, args) {
        eprintln!("breakglass: {e}");
    }
    let Ok(cfg) = HookConfig::load(&git_dir) else { return 0 };
    let Ok(updates) = parse_updates(&input) else { return 0 };
    // Nothing decided under a grant and nothing spooled: nothing to do (the
    // common case, which must stay cheap). The note is under the ref that
    // moved: the pushed name, or the ref a symbolic ref pointed to.
    let pending: Vec<(&Update, PathBuf)> = updates
        .iter()
        .filter_map(|u| {
            let direct = pending_path(&git_dir, u, &u.refname);
            if direct.exists() {
                return Some((u, direct));
            }
            let target = hostcheck::symref_target(&git_dir, &u.refname).ok().flatten()?;
            Some((u, pending_path(&git_dir, u, &target))).filter(|(_, p)| p.exists())
        })
        .collect();
    let spooled = spool::pending(&cfg.spool_dir(&git_dir)).is_ok_and(|p| !p.is_empty());
    if pending.is_empty() && !spooled {
        return 0;
    }
    let client = match cfg.client() {
        Ok(c) => c,
        Err(e) => {
            // The events wait in the spool until the problem is fixed.
            eprintln!("breakglass: {e}");
            None
        }
    };
    for (u, path) in pending {
        let Ok(bytes) = std::fs::read(&path) else { continue };
        let Ok(a) = serde_json::from_slice::<Accepted>(&bytes) else { continue };
        if let Err(e) = record_push(&git_dir, &cfg, client.as_ref(), u, &a).await {
            eprintln!("breakglass: could not record the push of {}: {e}", u.refname);
            continue;
        }
        let _ = std::fs::remove_file(&path);
    }
    remove_stale_pending(&git_dir);
    if let Some(c) = &client {
        let f = spool::flush(&cfg.spool_dir(&git_dir), c).await;
        if f.delivered + f.duplicates > 0 {
            eprintln!("breakglass: delivered {} spooled event(s)", f.delivered + f.duplicates);
        }
    }
    0
}

/// Pre-receive notes its accepted decisions for post-receive; when git
/// refuses the update after pre-receive (say, deleting the checked-out
/// branch), post-receive never sees it. Such notes are dropped after an hour.
fn remove_stale_pending(git_dir: &Path) {
    let Ok(rd) = std::fs::read_dir(git_dir.join(PENDING_DIR)) else { return };
    let hour = std::time::Duration::from_secs(3600);
    for e in rd.flatten() {
        let old = e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > hour));
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

async fn record_push(
    git_dir: &Path,
    cfg: &HookConfig,
    client: Option<&Client>,
    u: &Update,
    a: &Accepted,
) -> Result<(), String> {
    let records = if a.commits.is_empty() { Vec::new() } else { repo::commit_records(git_dir, &a.commits)? };
    // Split the commits into events that fit a log entry.
    let mut parts: Vec<Vec<&repo::CommitRecord>> = vec![Vec::new()];
    let mut size = 0;
    for r in &records {
        let n = serde_json::to_string(r).map_or(0, |s| s.len());
        if size + n > EVENT_BUDGET && !parts.last().is_some_and(Vec::is_empty) {
            parts.push(Vec::new());
            size = 0;
        }
        size += n;
        parts.last_mut().expect("a part").push(r);
    }
    let total = parts.len();
    for (k, part) in parts.into_iter().enumerate() {
        let mut data = BTreeMap::new();
        data.insert("repo", json!(cfg.name));
        let target = if a.target.is_empty() { &u.refname } else { &a.target };
        data.insert("ref", json!(target));
        if *target != u.refname {
            data.insert("pushed_as", json!(u.refname));
        }
        data.insert("old", json!(u.old));
        data.insert("new", json!(u.new));
        data.insert("update", json!(a.kind));
        data.insert("via", json!(a.via));
        data.insert("commit_count", json!(records.len()));
        data.insert("part", json!(k + 1));
        data.insert("parts", json!(total));
        data.insert("commits", json!(part));
        let event = EventRequest {
            id: spool::new_event_id(),
            kind: "git.push".into(),
            actor: a.pusher.clone(),
            grant: (!a.grant.is_empty()).then(|| a.grant.clone()),
            at: SystemClock.now(),
            data: json!(data),
        };
        report(cfg, git_dir, client, event).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, &'static str>);

    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| (*v).to_owned())
        }
    }

    fn cfg() -> HookConfig {
        toml::from_str("name = \"payments/api\"\nprotected = [\"refs/heads/main\", \"refs/heads/release/*\"]\n")
            .unwrap()
    }

    #[test]
    fn protection_patterns_and_identity_order() {
        let c = cfg();
        assert!(c.protects("refs/heads/main"));
        assert!(c.protects("refs/heads/release/1.2"));
        assert!(!c.protects("refs/heads/mainline"));
        assert!(!c.protects("refs/heads/feature"));
        let env = MapEnv(HashMap::from([("GL_USER", "gitolite-alice"), ("GITHUB_USER_LOGIN", "gh-alice")]));
        assert_eq!(pusher(&c, &env).as_deref(), Some("gitolite-alice"));
        let mut c2 = c.clone();
        c2.identity = vec!["GITHUB_USER_LOGIN".into(), "GL_USER".into()];
        assert_eq!(pusher(&c2, &env).as_deref(), Some("gh-alice"));
        assert_eq!(pusher(&c, &MapEnv(HashMap::new())), None);
    }

    #[test]
    fn push_options_and_input_lines() {
        let env = MapEnv(HashMap::from([
            ("GIT_PUSH_OPTION_COUNT", "2"),
            ("GIT_PUSH_OPTION_0", "ci.skip"),
            ("GIT_PUSH_OPTION_1", "breakglass=abc.def.ghi"),
        ]));
        assert_eq!(push_token(&env).unwrap().as_deref(), Some("abc.def.ghi"));
        assert_eq!(push_token(&MapEnv(HashMap::new())).unwrap(), None);
        let two = MapEnv(HashMap::from([
            ("GIT_PUSH_OPTION_COUNT", "2"),
            ("GIT_PUSH_OPTION_0", "breakglass=a.b.c"),
            ("GIT_PUSH_OPTION_1", "breakglass=d.e.f"),
        ]));
        assert!(push_token(&two).unwrap_err().contains("two different grant tokens"));
        let z = "0".repeat(40);
        let a = "a".repeat(40);
        let u = parse_updates(format!("{z} {a} refs/heads/main\n").as_bytes()).unwrap();
        assert_eq!(u[0].refname, "refs/heads/main");
        assert!(parse_updates(b"garbage\n").is_err());
        assert!(parse_updates(format!("{z} {a} refs/heads/main extra\n").as_bytes()).is_err());
        assert!(toml::from_str::<HookConfig>("name = \"x\"\nprotected = []\ntypo = 1\n").is_err());
        assert!(cfg().validate().is_ok());
    }
}
