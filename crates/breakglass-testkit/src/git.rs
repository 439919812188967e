//! The real `git` client in a directory, never prompting.

use std::path::Path;
use std::process::{Command, Output};

/// `git -C DIR ARGS`, whatever its outcome.
pub fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git").arg("-C").arg(dir).args(args).env("GIT_TERMINAL_PROMPT", "0").output().expect("run git")
}

/// `git -C DIR ARGS`, which must succeed; its trimmed standard output.
pub fn git_ok(dir: &Path, args: &[&str]) -> String {
    let out = git(dir, args);
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("git printed UTF-8").trim().to_owned()
}

/// The commit ref `r` names in `repo`, or `None` when it names nothing.
pub fn ref_value(repo: &Path, r: &str) -> Option<String> {
    let out = git(repo, &["rev-parse", "--verify", "-q", r]);
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
