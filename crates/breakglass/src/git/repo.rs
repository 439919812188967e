//! Reading a repository with the `git` command line. (gix cannot see the
//! quarantined objects of a push in pre-receive; `git`, run by the hook,
//! inherits `GIT_DIR`, `GIT_OBJECT_DIRECTORY` and
//! `GIT_ALTERNATE_OBJECT_DIRECTORIES` from receive-pack and sees them.)

use std::path::Path;
use std::process::{Command, Stdio};

pub use breakglass_core::push_input::{is_oid, is_zero};

fn git(git_dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.env("GIT_DIR", git_dir).stdin(Stdio::null());
    c
}

fn run(mut cmd: Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("cannot run git ({what}): {e}"))?;
    if !out.status.success() {
        return Err(format!("git {what} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("git {what} printed non-UTF-8"))
}

/// [`run`], with `input` on the command's standard input (written from a
/// thread, so that a command that answers while it reads never deadlocks).
fn run_with_input(mut cmd: Command, what: &str, input: Vec<u8>) -> Result<String, String> {
    use std::io::Write as _;
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run git ({what}): {e}"))?;
    let mut stdin = child.stdin.take().ok_or_else(|| format!("git {what} has no standard input"))?;
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| format!("cannot run git ({what}): {e}"))?;
    let written = writer.join().map_err(|_| format!("writing to git {what} failed"))?;
    if !out.status.success() {
        return Err(format!("git {what} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    written.map_err(|e| format!("cannot write to git {what}: {e}"))?;
    String::from_utf8(out.stdout).map_err(|_| format!("git {what} printed non-UTF-8"))
}

/// Whether `old` is an ancestor of `new` (a fast-forward).
pub fn is_ancestor(git_dir: &Path, old: &str, new: &str) -> Result<bool, String> {
    let mut c = git(git_dir);
    c.args(["merge-base", "--is-ancestor", old, new]).stdout(Stdio::null()).stderr(Stdio::piped());
    let out = c.output().map_err(|e| format!("cannot run git merge-base: {e}"))?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(format!("git merge-base failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
    }
}

/// Whether the repository says its file system ignores case
/// (`core.ignoreCase`, which `git init` sets on such file systems). When git
/// cannot say, the answer is yes: it only makes the hooks stricter.
pub fn ignores_case(git_dir: &Path) -> bool {
    let mut c = git(git_dir);
    c.args(["config", "--type=bool", "--get", "core.ignoreCase"]).stderr(Stdio::null());
    match c.output() {
        Ok(out) if out.status.code() == Some(1) => false,
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim() != "false",
        _ => true,
    }
}

/// The rev-list arguments for the commits an update brings into `refname`:
/// `old..new` for an update; for a new ref, `new` minus what the protected
/// refs' tips (`others`) already reach. Never `new --not --all`: in
/// post-receive `--all` includes the new ref itself.
pub fn range_args(old: &str, new: &str, others: &[String]) -> Vec<String> {
    if is_zero(old) {
        let mut args = vec![new.to_owned()];
        if !others.is_empty() {
            args.push("--not".into());
            args.extend(others.iter().cloned());
        }
        args
    } else {
        vec![format!("{old}..{new}")]
    }
}

/// One commit entering a ref: its id and the values of its `Break-Glass`
/// trailers, as git's own trailer parsing reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailerInfo {
    pub sha: String,
    pub break_glass: Vec<String>,
}

/// The commits in `range` (newest first), at most `cap + 1` of them so the
/// caller can tell that the cap was exceeded.
pub fn commits_with_trailers(git_dir: &Path, range: &[String], cap: usize) -> Result<Vec<TrailerInfo>, String> {
    let mut c = git(git_dir);
    c.arg("log")
        .arg(format!("--max-count={}", cap.saturating_add(1)))
        .arg("--format=%H%x1f%(trailers:key=Break-Glass,valueonly,separator=%x1f)%x1e")
        .args(range)
        .arg("--");
    let out = run(c, "log")?;
    Ok(out
        .split('\u{1e}')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .filter_map(|r| {
            let mut fields = r.split('\u{1f}');
            let sha = fields.next()?.trim().to_owned();
            let values = fields.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect();
            Some(TrailerInfo { sha, break_glass: values })
        })
        .collect())
}

/// A commit as the log records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommitRecord {
    pub sha: String,
    pub author: String,
    pub committer: String,
    pub subject: String,
    pub files: Vec<String>,
}

/// These commits, in this order, with author, committer, subject and the
/// files each touched (for merges: against the first parent).
///
/// The ids go to `git log --stdin`, not on the command line: git checks each
/// 40-hex argument for a ref of the same name (a dozen `stat`s each), which
/// doubled the time for a 1,000-commit push; it skips that for `--stdin`.
pub fn commit_records(git_dir: &Path, commits: &[String]) -> Result<Vec<CommitRecord>, String> {
    let mut c = git(git_dir);
    c.arg("log")
        .args(["--no-walk=unsorted", "--stdin", "--first-parent", "-m", "--no-renames", "--name-only"])
        .arg("--format=%x1e%H%x1f%an <%ae>%x1f%cn <%ce>%x1f%s%x1f")
        .arg("--");
    let mut input = commits.join("\n");
    input.push('\n');
    let out = run_with_input(c, "log", input.into_bytes())?;
    let mut records = Vec::new();
    for rec in out.split('\u{1e}').filter(|r| !r.trim().is_empty()) {
        let mut f = rec.splitn(5, '\u{1f}');
        let (Some(sha), Some(author), Some(committer), Some(subject)) = (f.next(), f.next(), f.next(), f.next()) else {
            continue;
        };
        let files =
            f.next().unwrap_or("").lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        records.push(CommitRecord {
            sha: sha.trim().to_owned(),
            author: author.to_owned(),
            committer: committer.to_owned(),
            subject: subject.to_owned(),
            files,
        });
    }
    Ok(records)
}

/// `git config` in a repository (the bare repo's own config).
pub fn set_config(git_dir: &Path, key: &str, value: &str) -> Result<(), String> {
    let mut c = git(git_dir);
    c.args(["config", key, value]);
    run(c, "config").map(|_| ())
}

pub fn unset_config(git_dir: &Path, key: &str) -> Result<(), String> {
    let mut c = git(git_dir);
    c.args(["config", "--unset", key]).stderr(Stdio::null());
    let _ = c.status().map_err(|e| format!("cannot run git config: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_for_updates_and_new_refs() {
        let z = "0".repeat(40);
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        assert_eq!(range_args(&a, &b, &[]), vec![format!("{a}..{b}")]);
        assert_eq!(range_args(&z, &b, std::slice::from_ref(&a)), vec![b.clone(), "--not".into(), a.clone()]);
        assert_eq!(range_args(&z, &b, &[]), vec![b.clone()]);
        assert!(is_zero(&z) && !is_zero(&a) && is_oid(&a) && !is_oid("xyz"));
    }
}
