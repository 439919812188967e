//! Security: the Git hook surface, with the pusher as the attacker (issue
//! 14). Every attack here is a real push with the real `git` binary into a
//! real bare repository with the hooks installed, against a real server; each
//! asserts that the protected ref did not move and what the pusher was told.
//! The ref-name attacks (symbolic refs, case variants, packed refs,
//! alternates, `updateInstead`, odd names) were found by the hostile-input
//! campaign or looked for after it; the rest held before and are kept so
//! they keep holding.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::drift::{drift, kinds};
use breakglass_testkit::git::{git_ok, ref_value as value_of};

use crate::git::{EXTRA_POLICY, GitSetup, MAIN, push_from, stderr};
use crate::support::BIN;

/// Lets oncall ask for a push to one release branch (besides main).
const RELEASE_POLICY: &str = r#"
@id("oncall-release-2")
@approvals("1")
@max_duration("60m")
permit (
  principal in Breakglass::Group::"oncall",
  action in [Breakglass::Action::"request", Breakglass::Action::"push"],
  resource is Breakglass::GitRef
)
when { resource.ref == "refs/heads/release/2" };
"#;

const MAIN_REF: &str = "refs/heads/main";

/// Pushes and insists on a refusal that says `needle`; the pusher's output.
fn refused(s: &GitSetup, who: Option<&str>, args: &[&str], options: &[&str], needle: &str) -> String {
    let out = s.push_as(who, args, options);
    let err = stderr(&out);
    assert!(!out.status.success(), "{who:?} git push {args:?} was accepted:\n{err}");
    assert!(err.contains(needle), "{who:?} git push {args:?}: expected {needle:?} in:\n{err}");
    err
}

fn accepted(s: &GitSetup, who: Option<&str>, args: &[&str], options: &[&str]) -> String {
    let out = s.push_as(who, args, options);
    assert!(out.status.success(), "{who:?} git push {args:?} was refused:\n{}", stderr(&out));
    stderr(&out)
}

fn last(events: Vec<Value>) -> Value {
    events.into_iter().last().expect("an event")
}

fn head(s: &GitSetup) -> String {
    git_ok(&s.work, &["rev-parse", "HEAD"])
}

/// A commit with `base`'s files that does not descend from it: pushing it
/// over main is a force push.
fn rewritten(s: &GitSetup, base: &str) -> String {
    git_ok(&s.work, &["commit-tree", "-m", "rewritten history", &format!("{base}^{{tree}}")])
}

/// A second repository of the same name on the same server, made by `init`
/// (extra `git init` arguments), hooks installed, main created by the merge
/// bot; its bare directory and a clone to push from.
fn second_repo(s: &GitSetup, dir: &str, init: &[&str]) -> (PathBuf, PathBuf) {
    let bare = s.srv.path(&format!("{dir}.git"));
    let work = s.srv.path(&format!("{dir}-work"));
    let mut args = vec!["init", "-q", "--bare", "-b", "main"];
    args.extend(init);
    args.push(bare.to_str().unwrap());
    git_ok(s.srv.dir.path(), &args);
    let out = s.install_at(&bare);
    assert!(out.status.success(), "git install: {}", stderr(&out));
    git_ok(s.srv.dir.path(), &["clone", "-q", bare.to_str().unwrap(), work.to_str().unwrap()]);
    for (k, v) in [("user.name", "Alice Example"), ("user.email", "alice@example.com")] {
        git_ok(&work, &["config", k, v]);
    }
    git_ok(&work, &["checkout", "-q", "-b", "main"]);
    std::fs::write(work.join("README"), "hello\n").unwrap();
    git_ok(&work, &["add", "README"]);
    git_ok(&work, &["commit", "-q", "-m", "initial"]);
    let out = push_from(&work, Some("merge-bot"), &["origin", "main"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    (bare, work)
}

/// Finding 2 as reported, and its relatives: pushes through a symbolic ref
/// (an alias, a chain, a dangling one, a deletion) are decided and recorded
/// as updates of the ref they move.
#[test]
fn issue14_a_push_through_a_symbolic_ref_is_decided_as_an_update_of_its_target() {
    let s = GitSetup::new();
    let base = s.remote_ref(MAIN_REF).unwrap();
    // The common compatibility alias, made by the Git server's operator.
    git_ok(&s.bare, &["symbolic-ref", "refs/heads/master", MAIN_REF]);
    s.commit("evil.txt", "no grant, no trailer\n", "sneak into main", None);

    // The attack as the campaign ran it: the shell prefilter let it through
    // and the binary never ran.
    let err = refused(&s, Some("mallory"), &["origin", "HEAD:refs/heads/master"], &[], "no active grant");
    assert!(err.contains("refs/heads/main (pushed as refs/heads/master"), "{err}");
    assert_eq!(s.remote_ref(MAIN_REF).unwrap(), base, "main did not move");
    let d = last(s.events("git.push.decision"));
    assert_eq!((d["actor"].as_str(), d["data"]["accepted"].as_bool()), (Some("mallory"), Some(false)), "{d}");
    assert_eq!(
        (d["data"]["ref"].as_str(), d["data"]["pushed_as"].as_str()),
        (Some(MAIN_REF), Some("refs/heads/master"))
    );

    // Deleting the alias deletes main in git: it needs 'delete' on main.
    git_ok(&s.bare, &["config", "receive.denyDeleteCurrent", "ignore"]);
    let err = refused(&s, Some("mallory"), &["origin", ":refs/heads/master"], &[], "delete");
    assert!(err.contains("refs/heads/main (pushed as refs/heads/master"), "{err}");
    assert_eq!(s.remote_ref(MAIN_REF).unwrap(), base);

    // A chain of symbolic refs ends at main too.
    git_ok(&s.bare, &["symbolic-ref", "refs/heads/trunk", "refs/heads/master"]);
    let err = refused(&s, Some("mallory"), &["origin", "HEAD:refs/heads/trunk"], &[], "no active grant");
    assert!(err.contains("(pushed as refs/heads/trunk"), "{err}");
    // A dangling one would create a protected ref.
    git_ok(&s.bare, &["symbolic-ref", "refs/heads/next", "refs/heads/release/9"]);
    let err = refused(&s, Some("mallory"), &["origin", "HEAD:refs/heads/next"], &[], "no active grant");
    assert!(err.contains("refs/heads/release/9 (pushed as refs/heads/next"), "{err}");
    assert_eq!(s.remote_ref("refs/heads/release/9"), None);
    assert_eq!(s.remote_ref(MAIN_REF).unwrap(), base);

    // With a grant and the trailer, the alias works like main itself, and
    // the push is recorded as main's (so drift sees main accounted for).
    let g = s.grant(MAIN, &["push"], "30m");
    git_ok(&s.work, &["commit", "-q", "--amend", "--no-edit", "--trailer", &format!("Break-Glass: {g}")]);
    let tip = head(&s);
    let said = accepted(&s, Some("alice"), &["origin", "HEAD:refs/heads/master"], &[]);
    assert!(said.contains(&format!("accepted under grant {g}")), "{said}");
    assert_eq!(s.remote_ref(MAIN_REF).unwrap(), tip);
    let p = last(s.events("git.push"));
    assert_eq!((p["grant"].as_str(), p["data"]["ref"].as_str()), (Some(g.as_str()), Some(MAIN_REF)), "{p}");
    assert_eq!(p["data"]["pushed_as"], "refs/heads/master");

    // `git install` and `drift` report the aliases; main itself is no drift.
    let out = s.install();
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("refs/heads/master is a symbolic ref to the protected refs/heads/main"), "{said}");
    let (code, v) = drift(&s, &[]);
    let found = kinds(&v);
    assert_eq!(code, Some(1), "{v}");
    assert!(found.iter().all(|k| k == "ref.symbolic"), "{v}");
    let subjects: Vec<&str> =
        v["findings"].as_array().unwrap().iter().map(|f| f["subject"].as_str().unwrap()).collect();
    for alias in ["refs/heads/master", "refs/heads/trunk", "refs/heads/next"] {
        assert!(subjects.contains(&format!("payments/api@{alias}").as_str()), "{alias} not reported: {v}");
    }
}

/// A protected name that is itself a symbolic ref moves whenever its target
/// does: an update of the target is refused, whether the symbolic ref was
/// there at install (prefix patterns) or made after it (exact names).
#[test]
fn issue14_a_protected_name_that_is_a_symbolic_ref_to_an_unprotected_ref_cannot_be_moved_through_it() {
    let s = GitSetup::new();
    git_ok(&s.work, &["checkout", "-q", "-b", "feature"]);
    s.commit("f.txt", "feature\n", "feature work", None);
    accepted(&s, Some("alice"), &["origin", "feature", "feature:side"], &[]);
    let feature = s.remote_ref("refs/heads/feature").unwrap();

    git_ok(&s.bare, &["symbolic-ref", "refs/heads/release/1", "refs/heads/feature"]);
    let out = s.install();
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("the protected refs/heads/release/1 is a symbolic ref to the unprotected refs/heads/feature"),
        "{said}"
    );
    s.commit("f2.txt", "more\n", "moves release/1 too", None);
    refused(&s, Some("mallory"), &["origin", "feature"], &[], "the protected refs/heads/release/1 is a symbolic ref");
    assert_eq!(s.remote_ref("refs/heads/feature").unwrap(), feature);

    // main turned into an alias of side after install: the shell checks the
    // exact protected names on every push.
    let main = s.remote_ref(MAIN_REF).unwrap();
    git_ok(&s.bare, &["symbolic-ref", MAIN_REF, "refs/heads/side"]);
    refused(
        &s,
        Some("mallory"),
        &["origin", "HEAD:refs/heads/side"],
        &[],
        "the protected refs/heads/main is a symbolic ref",
    );
    assert_eq!(s.remote_ref("refs/heads/side").unwrap(), feature);
    git_ok(&s.bare, &["update-ref", "--no-deref", MAIN_REF, &main]);
}

/// Finding 2's relatives on a case-insensitive file system: with
/// `core.ignoreCase`, `refs/heads/MAIN` can be main's own file.
#[test]
fn issue14_case_variants_of_a_protected_ref_are_refused_where_case_is_ignored() {
    let s = GitSetup::new();
    let base = s.remote_ref(MAIN_REF).unwrap();
    git_ok(&s.bare, &["config", "core.ignoreCase", "true"]);
    let g = s.grant(MAIN, &["push"], "30m");
    s.commit("case.txt", "case\n", "case games", Some(&g));
    for name in ["refs/heads/MAIN", "refs/heads/Main", "refs/HEADS/main", "refs/heads/Release/1"] {
        let err = refused(&s, Some("alice"), &["origin", &format!("HEAD:{name}")], &[], "only in case");
        assert!(err.contains("core.ignoreCase=true") && err.contains("push to the protected name itself"), "{err}");
        assert_eq!(s.remote_ref(name), None, "{name} was not created");
    }
    assert_eq!(s.remote_ref(MAIN_REF).unwrap(), base);
    let d = last(s.events("git.push.decision"));
    assert_eq!(
        (d["data"]["ref"].as_str(), d["data"]["accepted"].as_bool()),
        (Some("refs/heads/Release/1"), Some(false))
    );
    // Where case matters, MAIN is just another, unprotected branch.
    git_ok(&s.bare, &["config", "core.ignoreCase", "false"]);
    accepted(&s, Some("mallory"), &["origin", "HEAD:refs/heads/MAIN"], &[]);
    assert_eq!(s.remote_ref(MAIN_REF).unwrap(), base);
}

/// A protected ref held only in packed-refs, objects found through an
/// alternate object store, a non-bare repository with `updateInstead`, the
/// reftable ref backend, and names such as HEAD: the same checks hold.
#[test]
fn issue14_packed_refs_alternates_update_instead_reftable_and_odd_names_change_nothing() {
    let s = GitSetup::for_repo("payments/api", &format!("{EXTRA_POLICY}\n{RELEASE_POLICY}"));
    let base = s.remote_ref(MAIN_REF).unwrap();

    // Packed: no loose file for main; pushes, force pushes, deletions and a
    // creation of a packed-away ref are all still decided.
    git_ok(&s.bare, &["pack-refs", "--all"]);
    assert!(!s.bare.join("refs/heads/main").exists());
    s.commit("p.txt", "packed\n", "untagged", None);
    refused(&s, Some("mallory"), &["origin", "main"], &[], "no active grant");
    let forced = format!("{}:main", rewritten(&s, &base));
    refused(&s, Some("mallory"), &["--force", "origin", &forced], &[], "no active grant");
    git_ok(&s.bare, &["config", "receive.denyDeleteCurrent", "ignore"]);
    refused(&s, Some("mallory"), &["origin", ":main"], &[], "delete");
    assert_eq!(s.remote_ref(MAIN_REF).unwrap(), base);

    // Alternates: the untagged commit already sits in another repository
    // this one borrows objects from, so the client sends no objects; the
    // commit still enters main and still needs its trailer.
    let fork = s.srv.path("fork.git");
    git_ok(s.srv.dir.path(), &["init", "-q", "--bare", fork.to_str().unwrap()]);
    git_ok(&s.work, &["push", "-q", fork.to_str().unwrap(), "HEAD:refs/heads/borrowed"]);
    let objects = fork.join("objects");
    std::fs::write(s.bare.join("objects/info/alternates"), format!("{}\n", objects.display())).unwrap();
    let _main_grant = s.grant(MAIN, &["push"], "30m");
    refused(&s, Some("alice"), &["origin", "main"], &[], "lack the trailer");
    assert_eq!(s.remote_ref(MAIN_REF).unwrap(), base);

    // A new protected ref brings what no protected ref holds yet: commits
    // already on an unprotected branch need their trailers there too.
    let g2 = s.grant("git:payments/api@refs/heads/release/2", &["push"], "30m");
    git_ok(&s.work, &["checkout", "-q", "-b", "feature"]);
    s.commit("u.txt", "untagged on a branch\n", "untagged", None);
    accepted(&s, Some("alice"), &["origin", "feature"], &[]);
    s.commit("t.txt", "tagged\n", "tagged", Some(&g2));
    refused(&s, Some("alice"), &["origin", "feature:refs/heads/release/2"], &[], "lack the trailer");
    assert_eq!(s.remote_ref("refs/heads/release/2"), None);
    git_ok(&s.work, &["checkout", "-q", "main"]);

    // Odd names: HEAD is refs/heads/HEAD on the client's side, and names git
    // calls funny never reach a protected ref.
    accepted(&s, Some("mallory"), &["origin", "HEAD:HEAD"], &[]);
    assert!(s.remote_ref("refs/heads/HEAD").is_some());
    let out = s.push_as(Some("mallory"), &["origin", "HEAD:refs/main"], &[]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert_eq!(s.remote_ref(MAIN_REF).unwrap(), base);

    // A non-bare repository that updates its checkout on push: the hooks
    // run before git touches the ref or the files.
    let (nonbare, nonbare_work) = second_repo(&s, "checkout", &[]);
    git_ok(&nonbare, &["config", "core.bare", "false"]);
    git_ok(&nonbare, &["config", "core.worktree", s.srv.path("checkout-files").to_str().unwrap()]);
    std::fs::create_dir(s.srv.path("checkout-files")).unwrap();
    git_ok(&nonbare, &["--work-tree", s.srv.path("checkout-files").to_str().unwrap(), "checkout", "-f", "main"]);
    git_ok(&nonbare, &["config", "receive.denyCurrentBranch", "updateInstead"]);
    let before = value_of(&nonbare, MAIN_REF).unwrap();
    std::fs::write(nonbare_work.join("README"), "defaced\n").unwrap();
    git_ok(&nonbare_work, &["commit", "-q", "-am", "deface"]);
    let out = push_from(&nonbare_work, Some("mallory"), &["origin", "main"], &[]);
    assert!(!out.status.success() && stderr(&out).contains("no active grant"), "{}", stderr(&out));
    assert_eq!(value_of(&nonbare, MAIN_REF).unwrap(), before);
    assert_eq!(std::fs::read_to_string(s.srv.path("checkout-files/README")).unwrap(), "hello\n");

    // Reftable: the shell cannot read refs, so the binary decides every push
    // (a symbolic ref there is resolved by git itself).
    let (reftable, reftable_work) = second_repo(&s, "reftable", &["--ref-format=reftable"]);
    assert!(reftable.join("reftable").is_dir());
    git_ok(&reftable, &["symbolic-ref", "refs/heads/master", MAIN_REF]);
    let before = value_of(&reftable, MAIN_REF).unwrap();
    std::fs::write(reftable_work.join("x"), "x\n").unwrap();
    git_ok(&reftable_work, &["add", "x"]);
    git_ok(&reftable_work, &["commit", "-q", "-m", "x"]);
    let out = push_from(&reftable_work, Some("mallory"), &["origin", "HEAD:refs/heads/master"], &[]);
    assert!(!out.status.success() && stderr(&out).contains("pushed as refs/heads/master"), "{}", stderr(&out));
    assert_eq!(value_of(&reftable, MAIN_REF).unwrap(), before);
    let out = push_from(&reftable_work, Some("mallory"), &["origin", "HEAD:refs/heads/topic"], &[]);
    assert!(out.status.success(), "unprotected pushes still pass: {}", stderr(&out));
}

/// The hook attacks that held before issue 14, kept so they keep holding.
#[test]
fn issue14_the_hook_attacks_that_already_held_still_fail() {
    let s = GitSetup::new();
    let base = s.remote_ref(MAIN_REF).unwrap();
    let decisions = s.events("git.push.decision").len();

    // Unprotected pushes pass without any grant, and without a decision.
    git_ok(&s.work, &["checkout", "-q", "-b", "feature"]);
    s.commit("f.txt", "feature\n", "feature work", None);
    accepted(&s, Some("mallory"), &["origin", "feature"], &[]);
    assert_eq!(s.events("git.push.decision").len(), decisions, "no decision for an unprotected push");
    git_ok(&s.work, &["checkout", "-q", "main"]);

    // Force push and deletion of main with no grant at all.
    git_ok(&s.bare, &["config", "receive.denyDeleteCurrent", "ignore"]);
    let forced = format!("{}:main", rewritten(&s, &base));
    let err = refused(&s, Some("mallory"), &["--force", "origin", &forced], &[], "no active grant");
    assert!(err.contains("'force-push'"), "{err}");
    let err = refused(&s, Some("mallory"), &["origin", ":main"], &[], "no active grant");
    assert!(err.contains("'delete'"), "{err}");
    // No identity from the Git server: refused.
    s.commit("x.txt", "x\n", "untagged", None);
    refused(&s, None, &["origin", "main"], &[], "did not say who is pushing");

    // With a push grant: untagged commits, a force push and a deletion are refused.
    let g = s.grant(MAIN, &["push"], "30m");
    refused(&s, Some("alice"), &["origin", "main"], &[], "lack the trailer 'Break-Glass:");
    git_ok(&s.work, &["reset", "-q", "--hard", &base]);
    git_ok(&s.work, &["commit", "-q", "--amend", "-m", "new root", "--trailer", &format!("Break-Glass: {g}")]);
    refused(&s, Some("alice"), &["--force", "origin", "main"], &[], "force-push");
    refused(&s, Some("alice"), &["origin", ":main"], &[], "delete");

    // A pusher naming another user: mallory with alice's grant token.
    git_ok(&s.work, &["reset", "-q", "--hard", &base]);
    s.commit("t.txt", "tagged\n", "tagged", Some(&g));
    let token = s.srv.ok("alice", &["token", &g]).trim().to_owned();
    let opt = format!("breakglass={token}");
    refused(&s, Some("mallory"), &["origin", "main"], &[&opt], "grant token was refused");
    // Forged tokens: garbage, a re-signed body, and one of another scope.
    refused(
        &s,
        Some("alice"),
        &["origin", "main"],
        &["breakglass=eyJhbGciOiJFZERTQSJ9.e30.AAAA"],
        "grant token was refused",
    );
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[2] = "A".repeat(parts[2].len());
    refused(
        &s,
        Some("alice"),
        &["origin", "main"],
        &[&format!("breakglass={}", parts.join("."))],
        "grant token was refused",
    );
    let other = s.grant("git:payments/web@refs/heads/main", &["push"], "30m");
    let other_token = s.srv.ok("alice", &["token", &other]).trim().to_owned();
    refused(&s, Some("alice"), &["origin", "main"], &[&format!("breakglass={other_token}")], "grant token was refused");
    // Two different tokens: which would the pusher mean?
    refused(&s, Some("alice"), &["origin", "main"], &[&opt, &format!("breakglass={other_token}")], "two different");
    assert_eq!(s.remote_ref(MAIN_REF).unwrap(), base, "main never moved");

    // And the honest push still works.
    accepted(&s, Some("alice"), &["origin", "main"], &[&opt]);
    assert_eq!(s.remote_ref(MAIN_REF).unwrap(), head(&s));
}

/// Finding 7 (hooks' part): the hooks' API token file must be the Git
/// server's alone; `git install --token-stdin` writes it 0600 from the start.
#[test]
fn issue14_a_token_file_open_to_others_is_refused_with_the_command_that_fixes_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let s = GitSetup::new();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    std::fs::set_permissions(&s.token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = s.install();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("open to group or others (mode 0644)"), "{err}");
    // The printed command runs as printed, and fixes it.
    let fix = err.split("fix it with: ").nth(1).unwrap().lines().next().unwrap().trim().to_owned();
    assert!(fix.starts_with("chmod 600 "), "{fix}");
    assert!(Command::new("sh").arg("-c").arg(&fix).status().unwrap().success());
    assert_eq!(mode(&s.token_file), 0o600);
    assert!(s.install().status.success());

    // Opened up after install: the hooks refuse to use it, so protected
    // pushes are refused (fail closed) and say how to fix it.
    let g = s.grant(MAIN, &["push"], "30m");
    s.commit("t.txt", "tagged\n", "tagged", Some(&g));
    std::fs::set_permissions(&s.token_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    refused(&s, Some("alice"), &["origin", "main"], &[], "chmod 600");
    std::fs::set_permissions(&s.token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    accepted(&s, Some("alice"), &["origin", "main"], &[]);

    // `--token-stdin` creates the file 0600 itself.
    let fresh = s.srv.path("fresh-hook-token");
    let token = std::fs::read_to_string(&s.token_file).unwrap();
    let mut c = Command::new(BIN);
    c.args(["git", "install", "--token-stdin", "--repo"]).arg(&s.bare);
    c.args(["--name", "payments/api", "--protect", MAIN_REF, "--server", &s.srv.url, "--token-file"]).arg(&fresh);
    let mut child = c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), token.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(mode(&fresh), 0o600);
    assert_eq!(std::fs::read_to_string(&fresh).unwrap().trim(), token.trim());
}
