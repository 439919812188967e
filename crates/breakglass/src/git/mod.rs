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
        let text = std::fs::read_to_string(t)
            .map_err(|e| bad_input(format!("cannot read --token-file {}: {e}", t.display())))?;
        if !text.trim().starts_with("bgk_") {
            return Err(bad_input(format!("--token-file {} does not hold a breakglass API token", t.display())));
        }
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

/// The script for `hook`. It execs the binary (so upgrading the binary needs
/// no reinstall), but only when there is something to do: an update of a
/// protected ref, a chained hook, or spooled events. A push that touches no
/// protected ref is decided by the shell alone and never starts the binary.
pub fn hook_script(binary: &Path, hook: &str, protected: &[String], spool: &Path, config: &Path) -> String {
    let bin = sh_quote(&binary.display().to_string());
    let patterns: Vec<String> = protected
        .iter()
        .map(|p| match p.strip_suffix('*') {
            Some(prefix) => format!("{}*", sh_quote(prefix)),
            None => sh_quote(p),
        })
        .collect();
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
[ -e "$0{CHAINED_SUFFIX}" ] && run=1
# Settings edited since install: the patterns below may be stale, so let
# the binary (which reads the settings) decide every push.
[ {config} -nt "$0" ] && run=1
spooled() {{ [ -e "$1" ]; }}
spooled {spool}/*.json && run=1
input=
while IFS= read -r line || [ -n "$line" ]; do
  input="$input$line
"
  case "${{line##* }}" in
    {patterns}) run=1 ;;
  esac
done
[ "$run" = 1 ] || exit 0
printf '%s' "$input" | BREAKGLASS_HOOK_PATH="$0" exec {bin} git hook {hook} "$@"
"#,
        patterns = patterns.join("|"),
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
    let mut hashes = BTreeMap::new();
    let mut chained = Vec::new();
    for name in HOOKS {
        let path = hooks_dir.join(name);
        let script = hook_script(binary, name, &cfg.protected, &cfg.spool_dir(git_dir), &config);
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
            let mut c = std::process::Command::new(&hook).stdin(std::process::Stdio::piped()).spawn().unwrap();
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
