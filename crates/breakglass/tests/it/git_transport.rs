//! Protected refs through real Git transports, where the pusher's identity
//! comes from the server side: a real OpenSSH `sshd` on 127.0.0.1 with
//! `breakglass git shell USER` as the forced command of each key, and
//! gitolite3 behind the same kind of `sshd` (gitolite's own authorized_keys,
//! `gitolite-shell USER`, which sets `GL_USER`). The client's environment
//! claims to be someone else every time and is never believed. (Issue 4.)
//!
//! Needs `openssh-server` and `gitolite3` (scripts/test installs them).

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use breakglass_testkit::git::{git_ok, ref_value as remote_ref};
use breakglass_testkit::ssh::{keygen, keygen_at};

use crate::git::{GitSetup, IDENTITY_VARS, MAIN, stderr};
use crate::support::BIN;

const SSHD: &str = "/usr/sbin/sshd";

/// The user sshd logs in (as root, only with a forced command).
fn login_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A real `sshd -D` on 127.0.0.1 with its own host key and configuration;
/// killed when dropped.
struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// Starts sshd in `dir` accepting the keys in `authorized_keys`; sessions
    /// get `HOME=home` and this process's `PATH`; `extra` lines are added to
    /// the configuration. Retries on another port when the one picked was
    /// taken in the meantime.
    fn start(dir: &Path, authorized_keys: &Path, home: &Path, extra: &[&str]) -> Sshd {
        assert!(Path::new(SSHD).exists(), "{SSHD} is missing: install openssh-server (scripts/test does, as root)");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::create_dir_all(home).unwrap();
        if is_root() {
            // The privilege separation directory, which the package's service
            // unit creates at boot: sshd refuses to start as root without it.
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new().recursive(true).mode(0o755).create("/run/sshd").unwrap();
        }
        let host_key = keygen_at(&dir.join("host_key"), "breakglass-test-host", &["-t", "ed25519"]).private;
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        for p in [&path, &home.display().to_string()] {
            assert!(!p.contains('"') && !p.contains('\n'), "cannot quote {p:?} in sshd_config");
        }
        let log = dir.join("sshd.log");
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
            let config = dir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\n\
                     Port {port}\n\
                     HostKey {host_key}\n\
                     PidFile {pid}\n\
                     AuthorizedKeysFile {keys}\n\
                     AuthenticationMethods publickey\n\
                     PubkeyAuthentication yes\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     HostbasedAuthentication no\n\
                     PermitRootLogin forced-commands-only\n\
                     PermitUserEnvironment no\n\
                     StrictModes no\n\
                     UsePAM no\n\
                     UseDNS no\n\
                     PrintMotd no\n\
                     PrintLastLog no\n\
                     LogLevel VERBOSE\n\
                     SetEnv \"PATH={path}\" \"HOME={home}\"\n\
                     {extra}\n",
                    host_key = host_key.display(),
                    pid = dir.join("sshd.pid").display(),
                    keys = authorized_keys.display(),
                    home = home.display(),
                    extra = extra.join("\n"),
                ),
            )
            .unwrap();
            let child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut child = child;
            let stderr = child.stderr.take().unwrap();
            let mut sshd = Sshd { child, port, log: log.clone() };
            if sshd.wait_ready(stderr) {
                return sshd;
            }
            last_log = sshd.log();
            // Dropping it kills it, if it still runs; then try another port.
        }
        panic!("sshd did not start; its last log:\n{last_log}");
    }

    /// Waits until sshd says it listens (true), or exits (false): reads its
    /// log as it is written, line by line, blocking on the pipe.
    fn wait_ready(&mut self, stderr: std::process::ChildStderr) -> bool {
        let mut copy = std::fs::File::create(&self.log).unwrap();
        let mut lines = BufReader::new(stderr).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { return false };
            use std::io::Write as _;
            let _ = writeln!(copy, "{line}");
            if line.contains("Server listening on") {
                // Keep copying the rest of its log for failure messages.
                std::thread::spawn(move || {
                    for l in lines.map_while(Result::ok) {
                        let _ = writeln!(copy, "{l}");
                    }
                });
                return true;
            }
        }
        false
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ssh://USER@127.0.0.1:PORT<path>`
    fn url(&self, path: &str) -> String {
        format!("ssh://{}@127.0.0.1:{}{path}", login_user(), self.port)
    }
}

/// The client's options: only `key`, no agent, no user or system ssh
/// configuration, no known_hosts; and the identity variables of its
/// environment sent along (`SendEnv`), in case the server accepts them.
fn ssh_options(key: &Path) -> Vec<String> {
    let mut o: Vec<String> = vec!["-F".into(), "/dev/null".into(), "-i".into(), key.display().to_string()];
    for opt in [
        "IdentitiesOnly=yes",
        "IdentityAgent=none",
        "BatchMode=yes",
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "GlobalKnownHostsFile=/dev/null",
        "LogLevel=ERROR",
        "ConnectTimeout=10",
    ] {
        o.extend(["-o".into(), opt.into()]);
    }
    o.extend(["-o".into(), format!("SendEnv={}", IDENTITY_VARS.join(" "))]);
    o
}

/// Sets every identity variable the hooks trust to `claim` in the client's
/// own environment (an attempt to be someone else), or clears them all.
fn claim_identity(c: &mut Command, claim: Option<&str>) {
    for v in IDENTITY_VARS {
        match claim {
            Some(who) => c.env(v, who),
            None => c.env_remove(v),
        };
    }
}

/// `ssh` to the server with `key`, running `command` (none: a login shell).
fn ssh(sshd: &Sshd, key: &Path, claim: Option<&str>, command: Option<&str>) -> Output {
    let mut c = Command::new("ssh");
    c.args(ssh_options(key)).args(["-T", "-p", &sshd.port.to_string()]);
    c.arg(format!("{}@127.0.0.1", login_user()));
    if let Some(cmd) = command {
        c.arg(cmd);
    }
    c.stdin(Stdio::null()).env_remove("SSH_AUTH_SOCK");
    claim_identity(&mut c, claim);
    c.output().unwrap()
}

/// `GIT_SSH_COMMAND` (run by a shell) for `key`.
fn git_ssh_command(key: &Path) -> String {
    let opts: Vec<String> = ssh_options(key).iter().map(|o| format!("'{o}'")).collect();
    format!("ssh {}", opts.join(" "))
}

/// `git push` from `work` through ssh with `key`, the client claiming to be `claim`.
fn push(work: &Path, key: &Path, claim: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new("git");
    c.arg("-C").arg(work).arg("push").args(args);
    c.env("GIT_SSH_COMMAND", git_ssh_command(key))
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_SSH")
        .env_remove("GIT_SSH_VARIANT")
        .env_remove("SSH_AUTH_SOCK");
    claim_identity(&mut c, claim);
    c.output().unwrap()
}

fn last(entries: &[Value]) -> &Value {
    entries.last().expect("an entry")
}

#[test]
fn through_sshd_with_git_shell_the_key_says_who_pushes() {
    let s = GitSetup::new();
    let dir = s.srv.path("ssh");
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (alice, alice_pub) = keygen(&keys, "alice").into_parts();
    let (bob, bob_pub) = keygen(&keys, "bob").into_parts();
    let (probe, probe_pub) = keygen(&keys, "probe").into_parts();
    assert!(!BIN.contains(['\'', '"']), "{BIN}");
    let authorized_keys = dir.join("authorized_keys");
    std::fs::write(
        &authorized_keys,
        format!(
            "command=\"'{BIN}' git shell alice\",restrict {alice_pub}\n\
             command=\"'{BIN}' git shell bob\",restrict {bob_pub}\n\
             command=\"env\",restrict {probe_pub}\n"
        ),
    )
    .unwrap();
    // A server as configured by default (no AcceptEnv), and a careless one
    // that accepts the client's identity variables into the session.
    let strict = Sshd::start(&dir.join("strict"), &authorized_keys, &dir.join("home"), &[]);
    let careless = Sshd::start(
        &dir.join("careless"),
        &authorized_keys,
        &dir.join("home"),
        &[&format!("AcceptEnv {}", IDENTITY_VARS.join(" "))],
    );
    let bare = s.bare.display().to_string();

    // What a session sees: the client's claim does not reach a default
    // sshd; it does reach the careless one.
    let env = ssh(&strict, &probe, Some("bob"), Some("whatever"));
    let seen = String::from_utf8_lossy(&env.stdout).into_owned();
    assert!(env.status.success() && seen.contains("SSH_ORIGINAL_COMMAND=whatever"), "{seen}{}", stderr(&env));
    for v in IDENTITY_VARS {
        assert!(!seen.contains(&format!("{v}=")), "{v} reached the session:\n{seen}");
    }
    let env = ssh(&careless, &probe, Some("bob"), Some("whatever"));
    let seen = String::from_utf8_lossy(&env.stdout).into_owned();
    assert!(seen.contains("BREAKGLASS_USER=bob") && seen.contains("GL_USER=bob"), "{seen}{}", stderr(&env));

    // Fetching works, and an unprotected push passes.
    let ls = Command::new("git")
        .args(["ls-remote", &strict.url(&bare), "refs/heads/main"])
        .env("GIT_SSH_COMMAND", git_ssh_command(&alice))
        .output()
        .unwrap();
    assert!(ls.status.success(), "{}\n{}", stderr(&ls), strict.log());
    let base = s.remote_ref("refs/heads/main").unwrap();
    assert!(String::from_utf8_lossy(&ls.stdout).starts_with(&base));
    git_ok(&s.work, &["checkout", "-q", "-b", "feature"]);
    let feature = s.commit("f.txt", "feature\n", "feature work", None);
    let out = push(&s.work, &alice, Some("bob"), &[&strict.url(&bare), "feature"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), strict.log());
    assert_eq!(s.remote_ref("refs/heads/feature").as_deref(), Some(feature.as_str()));

    // alice's key, the client claiming to be bob: the hook sees alice, who
    // has no grant, through either server.
    git_ok(&s.work, &["checkout", "-q", "main"]);
    s.commit("fix.txt", "fix\n", "hotfix", None);
    for sshd in [&strict, &careless] {
        let out = push(&s.work, &alice, Some("bob"), &[&sshd.url(&bare), "main"]);
        let err = stderr(&out);
        assert!(
            !out.status.success() && err.contains(&format!("alice has no active grant with 'push' on {MAIN}")),
            "{err}"
        );
    }
    assert_eq!(s.remote_ref("refs/heads/main").unwrap(), base);

    // alice's grant is active and the commit carries its trailer; bob's key,
    // claiming to be alice, is still bob, who has none.
    let g = s.grant(MAIN, &["push"], "30m");
    git_ok(&s.work, &["commit", "-q", "--amend", "--no-edit", "--trailer", &format!("Break-Glass: {g}")]);
    let tip = git_ok(&s.work, &["rev-parse", "HEAD"]);
    for sshd in [&strict, &careless] {
        let out = push(&s.work, &bob, Some("alice"), &[&sshd.url(&bare), "main"]);
        let err = stderr(&out);
        assert!(!out.status.success() && err.contains("bob has no active grant"), "{err}");
    }
    assert_eq!(s.remote_ref("refs/heads/main").unwrap(), base);

    // alice's key, still claiming to be bob: accepted as alice, under her grant.
    let out = push(&s.work, &alice, Some("bob"), &[&strict.url(&bare), "main"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), strict.log());
    assert!(stderr(&out).contains(&format!("accepted under grant {g}")), "{}", stderr(&out));
    assert_eq!(s.remote_ref("refs/heads/main").unwrap(), tip);
    let pushes = s.events("git.push");
    let p = last(&pushes);
    assert_eq!((p["actor"].as_str(), p["grant"].as_str()), (Some("alice"), Some(g.as_str())), "{p}");
    assert_eq!(p["data"]["new"], tip.as_str());
    let decisions = s.events("git.push.decision");
    let by = |who: &str, accepted: bool| {
        decisions.iter().filter(|e| e["actor"] == who && e["data"]["accepted"] == accepted).count()
    };
    assert_eq!((by("alice", false), by("bob", false), by("alice", true)), (2, 2, 1), "{decisions:?}");

    // The keys are for Git only: no login shell, no other command, nothing
    // smuggled after a Git command.
    let out = ssh(&strict, &alice, None, None);
    assert!(!out.status.success() && stderr(&out).contains("no interactive shell"), "{}", stderr(&out));
    let out = ssh(&strict, &alice, None, Some("ls /"));
    assert!(!out.status.success() && stderr(&out).contains("\"ls\" is not allowed"), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    let pwned = dir.join("pwned");
    let sneaky = format!("git-upload-pack '{bare}'; touch {}", pwned.display());
    let out = ssh(&strict, &alice, None, Some(&sneaky));
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(!pwned.exists(), "a command after git-upload-pack ran");
}

#[test]
fn through_gitolite_the_identity_is_gitolites() {
    let s = GitSetup::new();
    let dir = s.srv.path("gitolite");
    let keys = dir.join("keys");
    let home = dir.join("home");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let mut key = std::collections::HashMap::new();
    for name in ["admin", "alice", "bob", "mallory", "merge-bot"] {
        key.insert(name, keygen(&keys, name).private);
    }
    let gitolite = |args: &[&str]| {
        let mut c = Command::new("gitolite");
        c.args(args).env("HOME", &home).env("USER", login_user());
        for v in IDENTITY_VARS {
            c.env_remove(v);
        }
        let out = c.output().expect("gitolite3 is installed (scripts/test installs it)");
        assert!(out.status.success(), "gitolite {args:?}: {}", stderr(&out));
    };
    // Set up for this user in a scratch HOME, then add users (their keys in
    // keydir, named USER.pub) and a repository the server-side way.
    gitolite(&["setup", "-pk", keys.join("admin.pub").to_str().unwrap()]);
    let glconf = home.join(".gitolite");
    for name in ["alice", "bob", "mallory", "merge-bot"] {
        std::fs::copy(keys.join(format!("{name}.pub")), glconf.join(format!("keydir/{name}.pub"))).unwrap();
    }
    let conf = glconf.join("conf/gitolite.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("\nrepo payments-api\n    RW+     =   alice bob merge-bot\n");
    std::fs::write(&conf, text).unwrap();
    gitolite(&["setup"]);
    let repo = home.join("repositories/payments-api.git");
    assert!(repo.join("HEAD").exists(), "gitolite created the repository");

    // The breakglass hooks go next to gitolite's own update hook, which
    // gitolite keeps managing; re-running its setup leaves ours alone.
    const SCOPE: &str = "git:gitolite/payments-api@refs/heads/main";
    let install = Command::new(BIN)
        .args(["git", "install", "--repo"])
        .arg(&repo)
        .args(["--name", "gitolite/payments-api", "--protect", "refs/heads/main", "--updater", "merge-bot"])
        .args(["--server", &s.srv.url, "--token-file"])
        .arg(&s.token_file)
        .arg("--jwks")
        .arg(s.srv.data.join("grant-token.jwks.json"))
        .output()
        .unwrap();
    assert!(install.status.success(), "git install: {}", stderr(&install));
    let hooks = repo.join("hooks");
    let read = |h: &str| std::fs::read_to_string(hooks.join(h)).unwrap();
    let ours = (read("pre-receive"), read("post-receive"));
    assert!(ours.0.contains("git hook pre-receive") && ours.1.contains("git hook post-receive"));
    gitolite(&["setup"]);
    assert_eq!((read("pre-receive"), read("post-receive")), ours);
    let update = std::fs::read_link(hooks.join("update")).unwrap();
    assert!(update.starts_with(&glconf), "gitolite's update hook: {}", update.display());

    // sshd with the authorized_keys gitolite wrote (command="gitolite-shell USER").
    let authorized_keys = home.join(".ssh/authorized_keys");
    let ak = std::fs::read_to_string(&authorized_keys).unwrap();
    assert!(ak.contains("gitolite-shell alice\"") && ak.contains("gitolite-shell mallory\""), "{ak}");
    let sshd = Sshd::start(&dir.join("sshd"), &authorized_keys, &home, &[]);
    let url = sshd.url("/payments-api");

    // The merge bot creates main normally; everyone else needs a grant.
    let base = s.remote_ref("refs/heads/main").unwrap();
    let out = push(&s.work, &key["merge-bot"], Some("alice"), &[&url, "main"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), sshd.log());
    assert_eq!(remote_ref(&repo, "refs/heads/main").as_deref(), Some(base.as_str()));

    // gitolite's access rules still apply: mallory has a key and no access.
    git_ok(&s.work, &["checkout", "-q", "-b", "feature"]);
    let feature = s.commit("f.txt", "feature\n", "feature work", None);
    let out = push(&s.work, &key["mallory"], Some("alice"), &[&url, "feature"]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("DENIED") && err.contains("mallory"), "{err}");
    assert_eq!(remote_ref(&repo, "refs/heads/feature"), None);
    // An unprotected push passes.
    let out = push(&s.work, &key["alice"], Some("bob"), &[&url, "feature"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(remote_ref(&repo, "refs/heads/feature").as_deref(), Some(feature.as_str()));

    // alice claiming to be bob is alice to gitolite (GL_USER), and has no grant.
    git_ok(&s.work, &["checkout", "-q", "main"]);
    s.commit("fix.txt", "fix\n", "hotfix", None);
    let out = push(&s.work, &key["alice"], Some("bob"), &[&url, "main"]);
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains(&format!("alice has no active grant with 'push' on {SCOPE}")),
        "{err}"
    );

    // With alice's grant and the trailer: bob (who may write, says gitolite)
    // claiming to be alice is refused as bob; alice is accepted.
    let g = s.grant(SCOPE, &["push"], "30m");
    git_ok(&s.work, &["commit", "-q", "--amend", "--no-edit", "--trailer", &format!("Break-Glass: {g}")]);
    let tip = git_ok(&s.work, &["rev-parse", "HEAD"]);
    let out = push(&s.work, &key["bob"], Some("alice"), &[&url, "main"]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("bob has no active grant"), "{err}");
    assert_eq!(remote_ref(&repo, "refs/heads/main").as_deref(), Some(base.as_str()));
    let out = push(&s.work, &key["alice"], Some("bob"), &[&url, "main"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(remote_ref(&repo, "refs/heads/main").as_deref(), Some(tip.as_str()));
    let pushes = s.events("git.push");
    let p = last(&pushes);
    assert_eq!((p["actor"].as_str(), p["grant"].as_str()), (Some("alice"), Some(g.as_str())), "{p}");
    assert_eq!(
        (p["data"]["repo"].as_str(), p["data"]["new"].as_str()),
        (Some("gitolite/payments-api"), Some(tip.as_str()))
    );
    let decisions: Vec<Value> =
        s.events("git.push.decision").into_iter().filter(|e| e["data"]["repo"] == "gitolite/payments-api").collect();
    let who: Vec<(&str, bool)> =
        decisions.iter().map(|e| (e["actor"].as_str().unwrap(), e["data"]["accepted"] == true)).collect();
    assert_eq!(who, [("alice", false), ("bob", false), ("alice", true)], "{decisions:?}");
}
