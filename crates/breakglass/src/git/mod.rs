//! `breakglass git …`: installing the server-side hooks into bare
//! repositories, the hooks themselves ([`hook`]), the `git shell` wrapper
//! for authorized_keys, and the spool of undelivered events ([`spool`]).

pub mod hook;
pub mod repo;
pub mod spool;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use breakglass_core::api::RepoRegistration;
use serde::Serialize;

use crate::cli::{GitCommand, GitInstallArgs};
use crate::error::{CliResult, bad_input, check_failed, internal, not_found};
use crate::print_json;
use hook::HookConfig;

pub async fn run(cmd: GitCommand) -> CliResult {
    match cmd {
        GitCommand::Install(args) => install_cmd(*args).await,
        GitCommand::Uninstall { repo, json } => {
            let git_dir = bare_repo(&repo)?;
            let r = uninstall(&git_dir).await?;
            if json {
                print_json(&r);
            } else {
                println!("removed the breakglass hooks from {}", git_dir.display());
                for c in &r.chained {
                    println!("restored {c}");
                }
                if let Some(w) = &r.warning {
                    eprintln!("warning: {w}");
                }
            }
            Ok(())
        }
        GitCommand::Shell { user } => shell(&user),
        GitCommand::Hook { name, args } => {
            let code =
                if name == "pre-receive" { hook::pre_receive(&args).await } else { hook::post_receive(&args).await };
            std::process::exit(code);
        }
    }
}

async fn install_cmd(a: GitInstallArgs) -> CliResult {
    let git_dir = bare_repo(&a.repo)?;
    let binary = match a.binary {
        Some(b) => b,
        None => std::env::current_exe().map_err(|e| internal(format!("cannot find this binary's path: {e}")))?,
    };
    if a.token_stdin {
        let Some(t) = &a.token_file else {
            return Err(bad_input("--token-stdin needs --token-file FILE: where to keep the token (created 0600)"));
        };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| bad_input(format!("cannot read the API token from standard input: {e}")))?;
        let token = text.trim();
        if !token.starts_with("bgk_") || token.contains(char::is_whitespace) {
            return Err(bad_input(
                "standard input does not hold a breakglass API token (bgk_…, from 'breakglass token create')",
            ));
        }
        write_token_file(t, token)?;
    }
    let abs = |p: PathBuf| std::fs::canonicalize(&p).map_err(|e| bad_input(format!("{}: {e}", p.display())));
    let cfg = HookConfig {
        name: a.name,
        protected: a.protected,
        updaters: a.updaters,
        server: a.server.unwrap_or_default().trim_end_matches('/').to_owned(),
        token_file: a.token_file.map(abs).transpose()?,
        jwks: a.jwks.map(abs).transpose()?,
        issuer: a.issuer.unwrap_or_default(),
        spool: a.spool,
        identity: if !a.identity.is_empty() {
            a.identity
        } else if behind_gitolite(&git_dir) {
            // Trust only what gitolite sets: a client-sent BREAKGLASS_USER
            // (an sshd with AcceptEnv) must not override gitolite's word.
            vec!["GL_USER".to_owned()]
        } else {
            hook::default_identity()
        },
        max_commits: a.max_commits,
        max_token_lifetime: "24h".into(),
        timeout_ms: a.timeout_ms,
    };
    if let Some(t) = &cfg.token_file {
        hook::read_token_file(t).map_err(|e| bad_input(format!("--token-file: {e}")))?;
    }
    let r = install(&git_dir, &cfg, &binary).await?;
    if a.json {
        print_json(&r);
    } else {
        println!("installed the breakglass hooks in {} for {}", git_dir.display(), r.repo);
        for c in &r.chained {
            println!("kept the existing hook as {c} (it runs first)");
        }
        println!("settings  {}", r.config.display());
        println!("protected {}", cfg.protected.join(", "));
        for sym in &r.symrefs {
            println!("symbolic  {sym}");
        }
        match &r.warning {
            Some(w) => eprintln!("warning: {w}"),
            None => println!("registered with {}", cfg.server),
        }
    }
    Ok(())
}

/// Whether gitolite manages this repository (its `update` hook links into
/// gitolite's common hooks).
fn behind_gitolite(git_dir: &Path) -> bool {
    std::fs::read_link(hook::hooks_dir(git_dir).join("update"))
        .is_ok_and(|target| target.to_string_lossy().contains(".gitolite"))
}

/// `breakglass spool flush --repo PATH`
pub async fn flush(repo: &Path, json: bool) -> CliResult {
    let git_dir = bare_repo(repo)?;
    let cfg = HookConfig::load(&git_dir).map_err(not_found)?;
    let Some(client) = cfg.client().map_err(bad_input)? else {
        return Err(bad_input(format!("{} has no server configured to deliver to", git_dir.display())));
    };
    report_flush(spool::flush(&cfg.spool_dir(&git_dir), &client).await, json)
}

/// Prints what a `spool flush` did; fails when something was left undelivered
/// (4: the server stopped answering) or set aside as refused (1).
pub fn report_flush(f: spool::Flushed, json: bool) -> CliResult {
    if json {
        print_json(&f);
    } else {
        println!("delivered {}, already recorded {}, still spooled {}", f.delivered, f.duplicates, f.remaining);
    }
    match f.error {
        Some(e) if f.remaining > 0 => Err(internal(format!("delivery stopped: {e}"))),
        Some(e) => Err(check_failed(e)),
        None => Ok(()),
    }
}

/// The hooks breakglass installs.
pub const HOOKS: [&str; 2] = ["pre-receive", "post-receive"];
/// A hook that was there before is kept under this suffix and run first.
pub const CHAINED_SUFFIX: &str = ".breakglass-chained";
/// Marks a hook script as ours.
const MARKER: &str = "# breakglass-hook: installed by 'breakglass git install'";

/// Quotes `s` for a POSIX shell, in single quotes.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A shell `case` pattern matching `pattern` (exact, or a prefix ending in
/// `*`) with ASCII letters in either case: in a `core.ignoreCase`
/// repository `refs/heads/MAIN` may be main's own file, so such names start
/// the binary, which knows whether case matters here.
fn case_pattern(pattern: &str) -> String {
    let (body, star) = match pattern.strip_suffix('*') {
        Some(prefix) => (prefix, "*"),
        None => (pattern, ""),
    };
    let mut out = String::new();
    let mut run = String::new();
    for c in body.chars() {
        if c.is_ascii_alphabetic() {
            if !run.is_empty() {
                out.push_str(&sh_quote(&run));
                run.clear();
            }
            out.push_str(&format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase()));
        } else {
            run.push(c);
        }
    }
    if !run.is_empty() {
        out.push_str(&sh_quote(&run));
    }
    out.push_str(star);
    out
}

/// The characters of ref names the shell judges by itself; a name with any
/// other (or with `..`, `/.`, `//`) starts the binary. Spelled out, not a
/// range: ranges in shell patterns depend on the locale.
const PLAIN_REF_CHARS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-";

/// The script for `hook`. It execs the binary (so upgrading the binary needs
/// no reinstall), but only when there is something to do: an update of a
/// protected ref under any name (a case variant, a symbolic ref, an odd
/// name), a chained hook, spooled events, or refs the shell cannot read
/// (reftable). A push that plainly touches no protected ref is decided by
/// the shell alone and never starts the binary. `patterns` are the
/// protected patterns and the refs protected names point to (see
/// [`install`]).
pub fn hook_script(binary: &Path, hook: &str, patterns: &[String], spool: &Path, config: &Path) -> String {
    let bin = sh_quote(&binary.display().to_string());
    let cases: Vec<String> = patterns.iter().map(|p| case_pattern(p)).collect();
    let exact: Vec<String> = patterns.iter().filter(|p| !p.ends_with('*')).map(|p| sh_quote(p)).collect();
    let spool = sh_quote(&spool.display().to_string());
    let config = sh_quote(&config.display().to_string());
    format!(
        r#"#!/bin/sh
{MARKER}
# A hook that was here before runs first: {hook}{CHAINED_SUFFIX}
# Updates of refs that match no protected pattern need nothing from
# breakglass, so the shell decides that without starting it.
# (Only shell builtins here: no process starts before the binary.)
run=0
gd=${{GIT_DIR:-.}}
[ -e "$0{CHAINED_SUFFIX}" ] && run=1
# Settings edited since install: the patterns below may be stale, so let
# the binary (which reads the settings) decide every push.
[ {config} -nt "$0" ] && run=1
spooled() {{ [ -e "$1" ]; }}
spooled {spool}/*.json && run=1
# Refs in the reftable format are binary tables the shell cannot read:
# the binary decides every push there.
[ -d "$gd/reftable" ] && run=1
# Whether a loose ref is a symbolic ref (a file "ref: <target>", or a
# symlink): a push to it moves its target. Symbolic refs are never packed.
symbolic() {{
  [ -L "$1" ] && return 0
  [ -f "$1" ] || return 1
  first=
  {{ IFS= read -r first || [ -n "$first" ]; }} 2>/dev/null < "$1"
  case $first in ref:*) return 0 ;; esac
  return 1
}}
# A protected name that became a symbolic ref moves with its target.
for p in {exact}; do symbolic "$gd/$p" && run=1; done
input=
while IFS= read -r line || [ -n "$line" ]; do
  input="$input$line
"
  name=${{line##* }}
  case $name in
    {cases}) run=1 ;;
    *[!{PLAIN_REF_CHARS}]*|*..*|*/.*|*//*) run=1 ;;
    refs/*) symbolic "$gd/$name" && run=1 ;;
    *) run=1 ;;
  esac
done
[ "$run" = 1 ] || exit 0
printf '%s' "$input" | BREAKGLASS_HOOK_PATH="$0" exec {bin} git hook {hook} "$@"
"#,
        cases = cases.join("|"),
        exact = exact.join(" "),
    )
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// A bare repository's git dir, checked.
pub fn bare_repo(path: &Path) -> CliResult<PathBuf> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(path)
        .args(["rev-parse", "--is-bare-repository", "--absolute-git-dir"])
        .output()
        .map_err(|e| internal(format!("cannot run git: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    match (out.status.success(), lines.next(), lines.next()) {
        (true, Some("true"), Some(dir)) => Ok(PathBuf::from(dir)),
        (true, Some(_), _) => Err(bad_input(format!("{} is not a bare repository", path.display()))),
        _ => Err(not_found(format!("{} is not a Git repository", path.display()))),
    }
}

/// Writes the hook's API token to `path`, created 0600 under a temporary
/// name and renamed into place: at no moment can anyone else read it.
fn write_token_file(path: &Path, token: &str) -> CliResult {
    let Some(name) = path.file_name() else {
        return Err(bad_input(format!("--token-file {} is not a file name", path.display())));
    };
    let tmp = path.with_file_name(format!(".{}.breakglass-tmp", name.to_string_lossy()));
    let fail = |e: std::io::Error| internal(format!("cannot write the token file {}: {e}", path.display()));
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e)),
        _ => {}
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(fail)?;
    use std::io::Write as _;
    f.write_all(format!("{token}\n").as_bytes()).and_then(|()| f.sync_all()).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// What `git install` did.
#[derive(Debug, Serialize)]
pub struct InstallReport {
    pub repo: String,
    pub git_dir: PathBuf,
    pub hooks: BTreeMap<String, String>,
    pub chained: Vec<String>,
    pub config: PathBuf,
    pub registered: bool,
    pub warning: Option<String>,
    /// Symbolic refs that reach a protected ref under another name, or
    /// protected names that are symbolic refs, each said in a sentence.
    pub symrefs: Vec<String>,
}

/// Installs (or updates) the hooks and the hook configuration. Idempotent.
pub async fn install(git_dir: &Path, cfg: &HookConfig, binary: &Path) -> CliResult<InstallReport> {
    cfg.validate().map_err(bad_input)?;
    let hooks_dir = hook::hooks_dir(git_dir);
    std::fs::create_dir_all(&hooks_dir).map_err(|e| internal(format!("cannot create {}: {e}", hooks_dir.display())))?;
    // The settings first: the scripts must be newer than them (see hook_script).
    let config = git_dir.join(hook::CONFIG_FILE);
    let text = format!(
        "# breakglass hook settings for this repository, written by 'breakglass git install'.\n\
         # Keys: name, protected, updaters, server, token_file, jwks, issuer, spool, identity,\n\
         # max_commits, max_token_lifetime, timeout_ms (see the README). The hook scripts carry\n\
         # the protected patterns too: after editing this file they start the binary on every\n\
         # push (which reads it) until 'breakglass git install' is run again.\n{}",
        toml::to_string_pretty(cfg).map_err(|e| internal(format!("cannot write the settings: {e}")))?
    );
    std::fs::write(&config, text).map_err(|e| internal(format!("cannot write {}: {e}", config.display())))?;
    // Symbolic refs around protected ones (issue 14): a push to one that
    // points into a protected ref is checked as an update of that ref; a
    // protected name pointing elsewhere moves with its target, so pushes to
    // the target must start the binary (which refuses them) too.
    let symrefs = breakglass_server::hostcheck::protection_symrefs(git_dir, &cfg.protected).map_err(internal)?;
    let mut patterns = cfg.protected.clone();
    for sym in &symrefs {
        if !patterns.contains(&sym.target) {
            patterns.push(sym.target.clone());
        }
    }
    let mut hashes = BTreeMap::new();
    let mut chained = Vec::new();
    for name in HOOKS {
        let path = hooks_dir.join(name);
        let script = hook_script(binary, name, &patterns, &cfg.spool_dir(git_dir), &config);
        if let Ok(existing) = std::fs::read_to_string(&path)
            && !existing.contains(MARKER)
        {
            // Someone else's hook: keep it, and run it first.
            let keep = hooks_dir.join(format!("{name}{CHAINED_SUFFIX}"));
            if keep.exists() {
                return Err(bad_input(format!(
                    "{} exists and so does {}: resolve by hand which one to keep",
                    path.display(),
                    keep.display()
                )));
            }
            std::fs::rename(&path, &keep).map_err(|e| internal(format!("cannot move {}: {e}", path.display())))?;
            chained.push(keep.display().to_string());
        }
        write_executable(&path, &script)?;
        hashes.insert(name.to_owned(), sha256_hex(script.as_bytes()));
    }
    repo::set_config(git_dir, "receive.advertisePushOptions", "true").map_err(internal)?;
    let (registered, warning) = register(cfg, git_dir, &hashes, true).await;
    Ok(InstallReport {
        repo: cfg.name.clone(),
        git_dir: git_dir.to_owned(),
        hooks: hashes,
        chained,
        config,
        registered,
        warning,
        symrefs: symrefs.iter().map(|s| breakglass_server::hostcheck::describe_symref(s, &cfg.protected)).collect(),
    })
}

fn write_executable(path: &Path, text: &str) -> CliResult {
    let tmp = path.with_extension("breakglass-tmp");
    std::fs::write(&tmp, text).map_err(|e| internal(format!("cannot write {}: {e}", tmp.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| internal(format!("cannot make {} executable: {e}", tmp.display())))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| internal(format!("cannot install {}: {e}", path.display())))
}

/// Tells the server about the repository; a failure is a warning, not an error.
async fn register(
    cfg: &HookConfig,
    git_dir: &Path,
    hooks: &BTreeMap<String, String>,
    installed: bool,
) -> (bool, Option<String>) {
    let client = match cfg.client() {
        Ok(Some(c)) => c,
        Ok(None) => return (false, Some("no server configured: the repository is not registered".into())),
        Err(e) => return (false, Some(e)),
    };
    // The protected refs as they are now: the baseline drift compares with.
    let refs = if installed {
        match breakglass_server::hostcheck::protected_refs(git_dir, &cfg.protected) {
            Ok(r) => r,
            Err(e) => return (false, Some(e)),
        }
    } else {
        BTreeMap::new()
    };
    let reg = RepoRegistration {
        name: cfg.name.clone(),
        protected: cfg.protected.clone(),
        updaters: cfg.updaters.clone(),
        path: git_dir.display().to_string(),
        host: breakglass_server::hostcheck::host_name(),
        hooks: hooks.clone(),
        installed,
        refs,
        spool: cfg.spool_dir(git_dir).display().to_string(),
    };
    match client.register_repo(&reg).await {
        Ok(_) => (true, None),
        Err(e) => (
            false,
            Some(format!(
                "the server did not register the repository ({e}); run the command again when it is reachable"
            )),
        ),
    }
}

/// Removes breakglass's hooks, puts back the ones it chained, and turns
/// push options off again.
pub async fn uninstall(git_dir: &Path) -> CliResult<InstallReport> {
    let cfg = HookConfig::load(git_dir).ok();
    let hooks_dir = hook::hooks_dir(git_dir);
    let mut restored = Vec::new();
    for name in HOOKS {
        let path = hooks_dir.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|t| t.contains(MARKER)) {
            std::fs::remove_file(&path).map_err(|e| internal(format!("cannot remove {}: {e}", path.display())))?;
        }
        let keep = hooks_dir.join(format!("{name}{CHAINED_SUFFIX}"));
        if keep.exists() && !path.exists() {
            std::fs::rename(&keep, &path).map_err(|e| internal(format!("cannot restore {}: {e}", path.display())))?;
            restored.push(path.display().to_string());
        }
    }
    repo::unset_config(git_dir, "receive.advertisePushOptions").map_err(internal)?;
    let config = git_dir.join(hook::CONFIG_FILE);
    let _ = std::fs::remove_file(&config);
    let (registered, warning) = match &cfg {
        Some(c) => register(c, git_dir, &BTreeMap::new(), false).await,
        None => (false, None),
    };
    Ok(InstallReport {
        repo: cfg.map(|c| c.name).unwrap_or_default(),
        git_dir: git_dir.to_owned(),
        hooks: BTreeMap::new(),
        chained: restored,
        config,
        registered,
        warning,
        symrefs: Vec::new(),
    })
}

/// `breakglass git shell USER`: for an authorized_keys line
/// `command="breakglass git shell alice",restrict ssh-ed25519 AAAA…`. Sets
/// `BREAKGLASS_USER` (the identity the hooks trust) and runs git-shell with
/// the client's command, which must be a Git transfer command.
pub fn shell(user: &str) -> CliResult {
    let valid = !user.is_empty()
        && user.len() <= 64
        && user.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
        && !user.starts_with('-');
    if !valid {
        return Err(bad_input(format!("invalid user name {user:?} in the authorized_keys command")));
    }
    let Some(command) = std::env::var("SSH_ORIGINAL_COMMAND").ok().filter(|c| !c.trim().is_empty()) else {
        return Err(bad_input(format!("hello {user}: this key is for git push and fetch only (no interactive shell)")));
    };
    let verb = command.split_whitespace().next().unwrap_or("");
    if !["git-receive-pack", "git-upload-pack", "git-upload-archive"].contains(&verb) {
        return Err(bad_input(format!("{verb:?} is not allowed: this key is for git push and fetch only")));
    }
    let err = exec_git_shell(user, &command);
    Err(internal(format!("cannot run git-shell: {err}")))
}

#[cfg(unix)]
fn exec_git_shell(user: &str, command: &str) -> std::io::Error {
    use std::os::unix::process::CommandExt as _;
    std::process::Command::new("git-shell").arg("-c").arg(command).env("BREAKGLASS_USER", user).exec()
}

#[cfg(not(unix))]
fn exec_git_shell(_user: &str, _command: &str) -> std::io::Error {
    std::io::Error::other("git shell needs a Unix system")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_scripts_exec_the_binary_only_for_protected_refs() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("it's bin");
        // A stand-in binary that records that it ran and what it was given.
        std::fs::write(&bin, "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/ran\"\ncat >> \"$(dirname \"$0\")/ran\"\n")
            .unwrap();
        let hook = dir.path().join("pre-receive");
        let protected = vec!["refs/heads/main".to_owned(), "refs/heads/rel'ease/*".to_owned()];
        let config = dir.path().join("breakglass.toml");
        std::fs::write(&config, "").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options().write(true).open(&config).unwrap().set_modified(old).unwrap();
        std::fs::write(&hook, hook_script(&bin, "pre-receive", &protected, &dir.path().join("spool"), &config))
            .unwrap();
        #[cfg(unix)]
        for f in [&bin, &hook] {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let z = "0".repeat(40);
        let a = "a".repeat(40);
        let run = |input: String| {
            let _ = std::fs::remove_file(dir.path().join("ran"));
            let mut c = std::process::Command::new(&hook)
                .env("GIT_DIR", dir.path())
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
            assert!(c.wait().unwrap().success());
            std::fs::read_to_string(dir.path().join("ran")).ok()
        };
        assert_eq!(run(format!("{z} {a} refs/heads/feature\n")), None, "unprotected: the binary never starts");
        assert_eq!(run(format!("{z} {a} refs/heads/mainline\n")), None);
        let ran = run(format!("{z} {a} refs/heads/feature\n{z} {a} refs/heads/main\n")).expect("protected: it runs");
        assert_eq!(ran, format!("git hook pre-receive\n{z} {a} refs/heads/feature\n{z} {a} refs/heads/main\n"));
        assert!(run(format!("{z} {a} refs/heads/rel'ease/1\n")).is_some(), "a quoted prefix pattern");
        // Issue 14: other names for a protected ref start the binary too.
        assert!(run(format!("{z} {a} refs/heads/MAIN\n")).is_some(), "a case variant");
        assert!(run(format!("{z} {a} refs/heads/Rel'ease/2\n")).is_some(), "a case variant of a prefix");
        std::fs::create_dir_all(dir.path().join("refs/heads")).unwrap();
        std::fs::write(dir.path().join("refs/heads/master"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(dir.path().join("refs/heads/plain"), format!("{a}\n")).unwrap();
        assert!(run(format!("{z} {a} refs/heads/master\n")).is_some(), "a symbolic ref");
        assert_eq!(run(format!("{z} {a} refs/heads/plain\n")), None, "a plain loose ref");
        #[cfg(unix)]
        std::os::unix::fs::symlink("plain", dir.path().join("refs/heads/linked")).unwrap();
        assert!(run(format!("{z} {a} refs/heads/linked\n")).is_some(), "a symlinked ref");
        for odd in ["refs/heads/x/../main", "refs/heads/caf\u{e9}", "HEAD", "refs/heads/a+b"] {
            assert!(run(format!("{z} {a} {odd}\n")).is_some(), "{odd}: the binary judges odd names");
        }
        std::fs::write(dir.path().join("refs/heads/main"), "ref: refs/heads/feature\n").unwrap();
        assert!(run(format!("{z} {a} refs/heads/feature\n")).is_some(), "a protected name became a symbolic ref");
        std::fs::remove_file(dir.path().join("refs/heads/main")).unwrap();
        assert_eq!(run(format!("{z} {a} refs/heads/feature\n")), None);
        std::fs::create_dir(dir.path().join("reftable")).unwrap();
        assert!(run(format!("{z} {a} refs/heads/feature\n")).is_some(), "reftable: the binary decides");
        std::fs::remove_dir(dir.path().join("reftable")).unwrap();
        // Settings edited after install: the binary decides every push.
        std::fs::File::options()
            .write(true)
            .open(&config)
            .unwrap()
            .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
            .unwrap();
        assert!(run(format!("{z} {a} refs/heads/feature\n")).is_some(), "stale patterns are not trusted");
        std::fs::File::options().write(true).open(&config).unwrap().set_modified(old).unwrap();
        std::fs::create_dir(dir.path().join("spool")).unwrap();
        std::fs::write(dir.path().join("spool/e.json"), "{}").unwrap();
        assert!(run(format!("{z} {a} refs/heads/feature\n")).is_some(), "spooled events: it runs to deliver them");
    }
}
