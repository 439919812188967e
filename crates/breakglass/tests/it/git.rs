//! Protected refs with break-glass bypass, through the real `git` client
//! pushing to real bare repositories with the hooks installed, against a
//! real `breakglass serve`. (Issue 4.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use breakglass_testkit::files::write_private;
use breakglass_testkit::git::{git, git_ok, ref_value};
use breakglass_testkit::ssh::keygen;

use crate::served::Served;
use crate::support::BIN;

pub(crate) const MAIN: &str = "git:payments/api@refs/heads/main";

/// Lets oncall ask for force-push and delete on main too (the example
/// policy permits only push).
pub(crate) const EXTRA_POLICY: &str = r#"
@id("oncall-rewrite-main")
permit (
  principal in Breakglass::Group::"oncall",
  action in [Breakglass::Action::"force-push", Breakglass::Action::"delete"],
  resource is Breakglass::GitRef
)
when { resource.ref == "refs/heads/main" };
"#;

pub struct GitSetup {
    pub srv: Served,
    /// The repository's name in scopes.
    pub name: String,
    pub bare: PathBuf,
    pub work: PathBuf,
    pub token_file: PathBuf,
}

/// Identity variables the hooks trust, cleared so only what a test sets counts.
pub(crate) const IDENTITY_VARS: [&str; 5] =
    ["BREAKGLASS_USER", "GL_USER", "GITEA_PUSHER_NAME", "GL_USERNAME", "GITHUB_USER_LOGIN"];

impl GitSetup {
    /// `payments/api`, with main and release/* protected and merge-bot an updater.
    pub fn new() -> GitSetup {
        GitSetup::for_repo("payments/api", EXTRA_POLICY)
    }

    /// A server with alice (oncall) and bob (approvers) logged in, `policy`
    /// added, and repository `name` with the hooks, main created by the merge bot.
    pub fn for_repo(name: &str, policy: &str) -> GitSetup {
        let srv = Served::start();
        let keys = srv.path("keys");
        std::fs::create_dir(&keys).unwrap();
        let (alice_key, alice_pub) = keygen(&keys, "alice").into_parts();
        let (bob_key, bob_pub) = keygen(&keys, "bob").into_parts();
        std::fs::write(
            srv.data.join("principals.toml"),
            format!(
                "[[principal]]\nname = \"alice\"\ngroups = [\"oncall\"]\nssh_keys = [\"{alice_pub}\"]\n\n\
                 [[principal]]\nname = \"bob\"\ngroups = [\"approvers\"]\nssh_keys = [\"{bob_pub}\"]\n"
            ),
        )
        .unwrap();
        std::fs::write(srv.data.join("policy/extra.cedar"), policy).unwrap();
        srv.ok("admin", &["policy", "reload"]);
        srv.ok("alice", &["login", "--principal", "alice", "--key", alice_key.to_str().unwrap()]);
        srv.ok("bob", &["login", "--principal", "bob", "--key", bob_key.to_str().unwrap()]);
        let token = srv.ok("admin", &["token", "create", "--name", "git-hooks", "--role", "service"]);
        let token_file = srv.path("hook-token");
        write_private(&token_file, token.trim());

        let bare = srv.path(&format!("{}.git", name.replace('/', "-")));
        let work = srv.path("work");
        git_ok(srv.dir.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
        let s = GitSetup { srv, name: name.to_owned(), bare, work, token_file };
        let install = s.install();
        assert!(install.status.success(), "git install: {}", String::from_utf8_lossy(&install.stderr));
        let (srv, bare, work) = (&s.srv, &s.bare, &s.work);
        git_ok(srv.dir.path(), &["clone", "-q", bare.to_str().unwrap(), work.to_str().unwrap()]);
        git_ok(work, &["config", "user.name", "Alice Example"]);
        git_ok(work, &["config", "user.email", "alice@example.com"]);
        git_ok(work, &["checkout", "-q", "-b", "main"]);
        // The merge bot creates main normally: no grant needed for it.
        s.commit("README", "hello\n", "initial", None);
        let out = s.push_as(Some("merge-bot"), &["origin", "main"], &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        s
    }

    /// `breakglass git install` of the repository (again: it re-baselines).
    pub fn install(&self) -> Output {
        self.install_at(&self.bare)
    }

    /// `breakglass git install` of another repository under the same name,
    /// with the same settings.
    pub fn install_at(&self, repo: &Path) -> Output {
        Command::new(BIN)
            .args(["git", "install", "--repo"])
            .arg(repo)
            .args(["--name", &self.name, "--protect", "refs/heads/main", "--protect", "refs/heads/release/*"])
            .args(["--updater", "merge-bot", "--server", &self.srv.url, "--token-file"])
            .arg(&self.token_file)
            .arg("--jwks")
            .arg(self.srv.data.join("grant-token.jwks.json"))
            .output()
            .unwrap()
    }

    pub fn commit(&self, file: &str, text: &str, msg: &str, grant: Option<&str>) -> String {
        std::fs::write(self.work.join(file), text).unwrap();
        git_ok(&self.work, &["add", file]);
        let mut args = vec!["commit", "-q", "-m", msg];
        let trailer;
        if let Some(g) = grant {
            trailer = format!("Break-Glass: {g}");
            args.extend(["--trailer", &trailer]);
        }
        git_ok(&self.work, &args);
        git_ok(&self.work, &["rev-parse", "HEAD"])
    }

    /// `git push` as `who` (the identity the Git server passes to the hooks).
    pub fn push_as(&self, who: Option<&str>, args: &[&str], options: &[&str]) -> Output {
        push_from(&self.work, who, args, options)
    }

    pub fn remote_ref(&self, r: &str) -> Option<String> {
        ref_value(&self.bare, r)
    }

    /// A grant for alice, approved by bob; its id.
    pub fn grant(&self, scope: &str, caps: &[&str], duration: &str) -> String {
        let mut args = vec!["request", "--scope", scope, "--for", duration, "--reason", "INC-9: payments down"];
        for c in caps {
            args.extend(["--cap", c]);
        }
        let g = self.srv.json("alice", &args);
        let id = g["id"].as_str().unwrap().to_owned();
        assert_eq!(self.srv.json("bob", &["approve", &id])["state"], "active");
        id
    }

    /// Every log entry, as JSON values.
    pub fn log(&self) -> Vec<Value> {
        let out = Command::new(BIN)
            .args(["audit", "tail", "-n", "100000", "--json", "--data-dir"])
            .arg(&self.srv.data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        match v {
            Value::Array(a) => a,
            Value::Object(o) => o.get("entries").and_then(|e| e.as_array()).cloned().unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.log().into_iter().filter(|e| e["kind"] == kind).collect()
    }
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn protected_refs_need_a_grant_a_trailer_and_the_right_capability() {
    let s = GitSetup::new();
    let base = s.remote_ref("refs/heads/main").unwrap();

    // An unprotected push passes without any grant.
    git_ok(&s.work, &["checkout", "-q", "-b", "feature"]);
    s.commit("f.txt", "feature\n", "feature work", None);
    assert!(s.push_as(Some("alice"), &["origin", "feature"], &[]).status.success());

    // A direct push to main: refused without a grant, and without an identity.
    git_ok(&s.work, &["checkout", "-q", "main"]);
    s.commit("fix.txt", "fix 1\n", "hotfix", None);
    let out = s.push_as(Some("alice"), &["origin", "main"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no active grant"), "{}", stderr(&out));
    let out = s.push_as(None, &["origin", "main"], &[]);
    assert!(!out.status.success() && stderr(&out).contains("did not say who is pushing"), "{}", stderr(&out));
    assert_eq!(s.remote_ref("refs/heads/main").unwrap(), base);

    // With a grant, a commit without the trailer is refused, with how to add it.
    let g = s.grant(MAIN, &["push"], "30m");
    let out = s.push_as(Some("alice"), &["origin", "main"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("Break-Glass: {g}")) && err.contains("git commit --amend"), "{err}");

    // Tagged, it is accepted and recorded against the grant, with its files.
    git_ok(&s.work, &["commit", "-q", "--amend", "--no-edit", "--trailer", &format!("Break-Glass: {g}")]);
    let tip = git_ok(&s.work, &["rev-parse", "HEAD"]);
    let out = s.push_as(Some("alice"), &["origin", "main"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.remote_ref("refs/heads/main").unwrap(), tip);
    let decisions = s.events("git.push.decision");
    let last = decisions.last().unwrap();
    assert_eq!((last["grant"].as_str(), last["data"]["accepted"].as_bool()), (Some(g.as_str()), Some(true)));
    let pushes = s.events("git.push");
    let push = pushes.last().unwrap();
    assert_eq!(push["grant"], g.as_str());
    assert_eq!(push["actor"], "alice");
    assert_eq!(push["data"]["commits"][0]["sha"], tip.as_str());
    assert_eq!(push["data"]["commits"][0]["files"][0], "fix.txt");
    assert_eq!(push["data"]["commits"][0]["author"], "Alice Example <alice@example.com>");

    // A grant for push does not allow a force push, nor a deletion.
    git_ok(&s.work, &["reset", "-q", "--hard", &base]);
    s.commit("other.txt", "rewritten\n", "rewrite", Some(&g));
    let out = s.push_as(Some("alice"), &["--force", "origin", "main"], &[]);
    assert!(!out.status.success() && stderr(&out).contains("force-push"), "{}", stderr(&out));
    let out = s.push_as(Some("alice"), &["origin", ":main"], &[]);
    assert!(!out.status.success() && stderr(&out).contains("delete"), "{}", stderr(&out));
    assert_eq!(s.remote_ref("refs/heads/main").unwrap(), tip);

    // A protected pattern covers a new ref, and the grant for main does not.
    git_ok(&s.work, &["checkout", "-q", "-B", "release/1", &tip]);
    s.commit("r.txt", "release\n", "release fix", Some(&g));
    let out = s.push_as(Some("alice"), &["origin", "release/1"], &[]);
    assert!(!out.status.success() && stderr(&out).contains("refs/heads/release/1"), "{}", stderr(&out));
    assert_eq!(s.remote_ref("refs/heads/release/1"), None);

    // Several refs in one atomic push: one refusal refuses all.
    git_ok(&s.work, &["checkout", "-q", "main"]);
    git_ok(&s.work, &["reset", "-q", "--hard", &tip]);
    s.commit("fix2.txt", "fix 2\n", "second fix", Some(&g));
    let out = s.push_as(Some("alice"), &["--atomic", "origin", "main", "release/1"], &[]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert_eq!(s.remote_ref("refs/heads/main").unwrap(), tip);

    // Moving main onto commits already pushed to another branch still checks
    // them: they are new to main.
    git_ok(&s.work, &["checkout", "-q", "-B", "feature2", "main"]);
    s.commit("g.txt", "untagged\n", "untagged work", None);
    assert!(s.push_as(Some("alice"), &["origin", "feature2"], &[]).status.success());
    let out = s.push_as(Some("alice"), &["origin", "feature2:main"], &[]);
    assert!(!out.status.success() && stderr(&out).contains("lack the trailer"), "{}", stderr(&out));

    // The grant ends: the same push that passed is refused again.
    git_ok(&s.work, &["checkout", "-q", "main"]);
    let fix2 = git_ok(&s.work, &["rev-parse", "HEAD"]);
    s.srv.ok("alice", &["revoke", &g, "--reason", "done"]);
    let out = s.push_as(Some("alice"), &["origin", "main"], &[]);
    assert!(!out.status.success(), "{}", stderr(&out));
    // A token of the revoked grant is refused too while the server answers.
    let g2 = s.grant(MAIN, &["push"], "10m");
    let token = s.srv.ok("alice", &["token", &g2]).trim().to_owned();
    s.srv.ok("alice", &["revoke", &g2, "--reason", "test"]);
    let out = s.push_as(Some("alice"), &["origin", "main"], &[&format!("breakglass={token}")]);
    assert!(!out.status.success() && stderr(&out).contains("revoked"), "{}", stderr(&out));
    assert_eq!(s.remote_ref("refs/heads/main").unwrap(), tip);

    // Expiry: a new grant works, then the server's clock passes its end.
    let g3 = s.grant(MAIN, &["push"], "10m");
    git_ok(&s.work, &["commit", "-q", "--amend", "--no-edit", "--trailer", &format!("Break-Glass: {g3}")]);
    let fix3 = git_ok(&s.work, &["rev-parse", "HEAD"]);
    assert_ne!(fix2, fix3);
    s.srv.advance_clock(10 * 60_000);
    let out = s.push_as(Some("alice"), &["origin", "main"], &[]);
    assert!(!out.status.success() && stderr(&out).contains("no active grant"), "{}", stderr(&out));
    assert_eq!(s.remote_ref("refs/heads/main").unwrap(), tip);

    // Every refusal of a protected update was recorded too.
    let refused = s.events("git.push.decision").into_iter().filter(|e| e["data"]["accepted"] == false).count();
    assert!(refused >= 8, "{refused} refusals recorded");
    let verify = Command::new(BIN).args(["audit", "verify", "--data-dir"]).arg(&s.srv.data).output().unwrap();
    assert!(verify.status.success(), "{}", stderr(&verify));
}

#[test]
fn force_push_and_deletion_with_their_capabilities() {
    let s = GitSetup::new();
    let base = s.remote_ref("refs/heads/main").unwrap();
    let g = s.grant(MAIN, &["push", "force-push", "delete"], "30m");
    git_ok(&s.work, &["reset", "-q", "--hard", &base]);
    git_ok(&s.work, &["commit", "-q", "--amend", "-m", "rewritten root", "--trailer", &format!("Break-Glass: {g}")]);
    let rewritten = git_ok(&s.work, &["rev-parse", "HEAD"]);
    let out = s.push_as(Some("alice"), &["--force", "origin", "main"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.remote_ref("refs/heads/main").unwrap(), rewritten);
    let d = s.events("git.push.decision");
    assert_eq!(d.last().unwrap()["data"]["update"], "force");
    // (Git itself refuses to delete a bare repository's HEAD branch unless told to.)
    git_ok(&s.bare, &["config", "receive.denyDeleteCurrent", "ignore"]);
    let out = s.push_as(Some("alice"), &["origin", ":main"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.remote_ref("refs/heads/main"), None);
    let pushes = s.events("git.push");
    assert_eq!(pushes.last().unwrap()["data"]["update"], "delete");
}

#[test]
fn with_the_server_down_a_token_push_is_accepted_and_its_entries_delivered_later() {
    let mut s = GitSetup::new();
    let g = s.grant(MAIN, &["push"], "30m");
    let token = s.srv.ok("alice", &["token", &g]).trim().to_owned();
    s.commit("down.txt", "fix while down\n", "fix while the server is down", Some(&g));
    let tip = git_ok(&s.work, &["rev-parse", "HEAD"]);
    let before = s.events("git.push").len();

    s.srv.stop();
    // Without a token: refused, with how to push with one.
    let out = s.push_as(Some("alice"), &["origin", "main"], &[]);
    assert!(!out.status.success() && stderr(&out).contains("-o breakglass="), "{}", stderr(&out));
    // With the token: accepted offline; the entries wait in the spool.
    let out = s.push_as(Some("alice"), &["origin", "main"], &[&format!("breakglass={token}")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.remote_ref("refs/heads/main").unwrap(), tip);
    let spool = s.bare.join("breakglass-spool");
    let spooled = std::fs::read_dir(&spool)
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json")));
    // The refused decision, the accepted decision and the push; each file
    // readable by the Git server's user alone (issue 14, finding 7).
    let spooled: Vec<_> = spooled.map(|e| e.unwrap().path()).collect();
    assert_eq!(spooled.len(), 3);
    #[cfg(unix)]
    for f in &spooled {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
    }

    // Back up: a flush delivers each once; a second flush finds nothing.
    s.srv.restart();
    let flush = Command::new(BIN).args(["spool", "flush", "--json", "--repo"]).arg(&s.bare).output().unwrap();
    assert!(flush.status.success(), "{}", stderr(&flush));
    let f: Value = serde_json::from_slice(&flush.stdout).unwrap();
    assert_eq!((f["delivered"].as_u64(), f["remaining"].as_u64()), (Some(3), Some(0)), "{f}");
    let again = Command::new(BIN).args(["spool", "flush", "--json", "--repo"]).arg(&s.bare).output().unwrap();
    let f: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(f["delivered"], 0);
    let pushes = s.events("git.push");
    assert_eq!(pushes.len(), before + 1);
    assert_eq!(pushes.last().unwrap()["data"]["new"], tip.as_str());
    assert_eq!(pushes.last().unwrap()["data"]["via"], "token");
    let _ = s.token_file.exists();
}

#[test]
fn install_is_idempotent_chains_existing_hooks_and_uninstall_restores_them() {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("r.git");
    git_ok(dir.path(), &["init", "-q", "--bare", bare.to_str().unwrap()]);
    let old_hook = "#!/bin/sh\necho 'the old hook ran' >&2\nexit 0\n";
    std::fs::write(bare.join("hooks/pre-receive"), old_hook).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(bare.join("hooks/pre-receive"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let install = || {
        Command::new(BIN)
            .args(["git", "install", "--json", "--repo"])
            .arg(&bare)
            .args(["--name", "r", "--protect", "refs/heads/main"])
            .output()
            .unwrap()
    };
    let first = install();
    assert!(first.status.success(), "{}", stderr(&first));
    let r: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(r["chained"].as_array().unwrap().len(), 1);
    let second = install();
    assert!(second.status.success(), "{}", stderr(&second));
    let r2: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert!(r2["chained"].as_array().unwrap().is_empty(), "the second install changes nothing");
    assert_eq!(r["hooks"], r2["hooks"]);
    assert_eq!(git_ok(&bare, &["config", "receive.advertisePushOptions"]), "true");
    assert_eq!(std::fs::read_to_string(bare.join("hooks/pre-receive.breakglass-chained")).unwrap(), old_hook);

    // The chained hook runs first, on every push (an unprotected one here).
    let work = dir.path().join("w");
    git_ok(dir.path(), &["clone", "-q", bare.to_str().unwrap(), work.to_str().unwrap()]);
    std::fs::write(work.join("a"), "a").unwrap();
    git_ok(&work, &["add", "a"]);
    git_ok(&work, &["-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-q", "-m", "a"]);
    let out = git(&work, &["push", "origin", "HEAD:refs/heads/topic"]);
    assert!(out.status.success() && stderr(&out).contains("the old hook ran"), "{}", stderr(&out));

    let un = Command::new(BIN).args(["git", "uninstall", "--repo"]).arg(&bare).output().unwrap();
    assert!(un.status.success(), "{}", stderr(&un));
    assert_eq!(std::fs::read_to_string(bare.join("hooks/pre-receive")).unwrap(), old_hook);
    assert!(!bare.join("hooks/post-receive").exists());
    assert!(!bare.join("breakglass.toml").exists());
    assert!(git(&bare, &["config", "receive.advertisePushOptions"]).stdout.is_empty());
    // Not a bare repository: a clear error.
    let bad = Command::new(BIN)
        .args(["git", "install", "--repo"])
        .arg(&work)
        .args(["--name", "r", "--protect", "refs/heads/main"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("not a bare repository"));
}

/// `git push` from the clone `work` as `who` (the identity the Git server
/// passes to the hooks), with push options.
pub(crate) fn push_from(work: &Path, who: Option<&str>, args: &[&str], options: &[&str]) -> Output {
    let mut c = Command::new("git");
    c.arg("-C").arg(work).arg("push");
    for o in options {
        c.arg("-o").arg(o);
    }
    c.args(args);
    for v in IDENTITY_VARS {
        c.env_remove(v);
    }
    if let Some(w) = who {
        c.env("BREAKGLASS_USER", w);
    }
    c.output().unwrap()
}
