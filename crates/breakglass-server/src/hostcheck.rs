//! Drift only a host holding the repositories can see: of each registered
//! repository whose path is here, hooks missing or different from what
//! `git install` wrote, `receive.advertisePushOptions` off, events waiting
//! in the spool, and protected refs whose value no recorded update produced
//! (the hook removed, a push, the hook put back).
//!
//! Security-relevant: this is how a bypassed hook is noticed. It reads the
//! repository with the `git` command line and trusts nothing the
//! repository says about itself beyond its refs and config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use breakglass_core::api::{DriftFinding, RefRecord, RepoRegistration};

const ZERO: &str = "0000000000000000000000000000000000000000";

fn git(git_dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .env("GIT_DIR", git_dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// A repository's config value, `None` when unset (or git cannot say).
pub fn get_config(git_dir: &Path, key: &str) -> Option<String> {
    git(git_dir, &["config", "--get", key])
}

/// Where git runs this repository's hooks from (`core.hooksPath` honoured).
pub fn hooks_dir(git_dir: &Path) -> PathBuf {
    get_config(git_dir, "core.hooksPath")
        .map(|p| if Path::new(&p).is_absolute() { PathBuf::from(p) } else { git_dir.join(p) })
        .unwrap_or_else(|| git_dir.join("hooks"))
}

/// Whether `refname` matches a protected pattern (exact, or a prefix ending in `*`).
pub fn is_protected(patterns: &[String], refname: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => refname.starts_with(prefix),
        None => refname == p,
    })
}

/// The current value of every ref matching a protected pattern.
pub fn protected_refs(git_dir: &Path, patterns: &[String]) -> Result<BTreeMap<String, String>, String> {
    let out = Command::new("git")
        .env("GIT_DIR", git_dir)
        .args(["for-each-ref", "--format=%(objectname) %(refname)"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git for-each-ref in {}: {e}", git_dir.display()))?;
    if !out.status.success() {
        return Err(format!(
            "git for-each-ref failed in {}: {}",
            git_dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, r)| is_protected(patterns, r))
        .map(|(v, r)| (r.to_owned(), v.to_owned()))
        .collect())
}

/// Whether the repository is on this host: registered from it and present.
pub fn is_local(reg: &RepoRegistration, host: &str) -> bool {
    reg.installed && (reg.host.is_empty() || reg.host == host) && Path::new(&reg.path).join("HEAD").is_file()
}

/// This host's name, as `git install` registers it.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

/// The drift of one local repository. `recorded` is what the log accounts
/// for of its protected refs (`GET /v1/repos/refs`); `None` when no server
/// records them (tokens-only hooks), which skips the ref check.
pub fn inspect(reg: &RepoRegistration, recorded: Option<&[RefRecord]>) -> Vec<DriftFinding> {
    let mut out = Vec::new();
    let git_dir = PathBuf::from(&reg.path);
    let finding = |kind: &str, what: String, fix: String| DriftFinding {
        kind: kind.into(),
        subject: reg.path.clone(),
        what,
        fix,
    };
    let hooks = hooks_dir(&git_dir);
    for (name, want) in &reg.hooks {
        let path = hooks.join(name);
        match std::fs::read(&path) {
            Err(_) => out.push(finding(
                "repo.hook_missing",
                format!("{} of repository {} is missing", path.display(), reg.name),
                format!("run `breakglass git install --repo {}` again, and find out who removed it", reg.path),
            )),
            Ok(text) if &sha256_hex(&text) != want => out.push(finding(
                "repo.hook_modified",
                format!("{} of repository {} is not the script `git install` wrote", path.display(), reg.name),
                format!("compare it, then run `breakglass git install --repo {}` again", reg.path),
            )),
            Ok(_) => {}
        }
    }
    let options = get_config(&git_dir, "receive.advertisePushOptions");
    if options.as_deref() != Some("true") {
        out.push(finding(
            "repo.push_options_off",
            format!("receive.advertisePushOptions is {} in {}", options.as_deref().unwrap_or("unset"), reg.path),
            format!(
                "git -C {} config receive.advertisePushOptions true (grant tokens travel as push options)",
                reg.path
            ),
        ));
    }
    let spooled = spool_count(reg);
    if spooled > 0 {
        out.push(finding(
            "repo.spool_pending",
            format!("{spooled} event(s) of repository {} wait in its spool {} for the server", reg.name, reg.spool),
            format!(
                "`breakglass spool flush --repo {}` delivers them (the hooks retry on every push); until then the log lacks them",
                reg.path
            ),
        ));
    }
    if let Some(recorded) = recorded {
        out.extend(unrecorded_refs(reg, recorded, spooled > 0));
    }
    out
}

fn spool_count(reg: &RepoRegistration) -> usize {
    if reg.spool.is_empty() {
        return 0;
    }
    std::fs::read_dir(&reg.spool)
        .map_or(0, |rd| rd.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "json")).count())
}

/// Protected refs whose value is not the newest the log accounts for.
fn unrecorded_refs(reg: &RepoRegistration, recorded: &[RefRecord], spooled: bool) -> Vec<DriftFinding> {
    let git_dir = PathBuf::from(&reg.path);
    let current = match protected_refs(&git_dir, &reg.protected) {
        Ok(c) => c,
        Err(e) => {
            return vec![DriftFinding {
                kind: "ref.unrecorded".into(),
                subject: reg.path.clone(),
                what: format!("cannot list the protected refs of {}: {e}", reg.name),
                fix: "check the repository (permissions, corruption) with `git fsck`".into(),
            }];
        }
    };
    let by_ref: BTreeMap<&str, &RefRecord> = recorded.iter().map(|r| (r.refname.as_str(), r)).collect();
    let mut names: Vec<&str> = current.keys().map(String::as_str).collect();
    names.extend(by_ref.keys().copied().filter(|r| !current.contains_key(*r) && is_protected(&reg.protected, r)));
    let mut out = Vec::new();
    let maybe_spooled = if spooled { " (or a push whose record is still in the spool)" } else { "" };
    for name in names {
        let now = current.get(name).map_or(ZERO, String::as_str);
        let rec = by_ref.get(name);
        let want = rec.map_or(ZERO, |r| r.value.as_str());
        let zero = |v: &str| v.bytes().all(|b| b == b'0');
        if now == want || (zero(now) && zero(want)) || in_flight(&git_dir, want, now, name) {
            continue;
        }
        let last = match rec {
            Some(r) => format!(
                "the last recorded value is {} ({} by {} at {}{})",
                short(&r.value),
                r.source,
                r.by,
                r.at.to_rfc3339(),
                r.grant.as_deref().map_or(String::new(), |g| format!(", grant {g}"))
            ),
            None => "the log records no value for it".into(),
        };
        let what = if zero(now) {
            format!("{name} of {} was deleted with no recorded update{maybe_spooled}; {last}", reg.name)
        } else {
            format!(
                "{name} of {} is at {}, which no recorded update produced{maybe_spooled}; {last}",
                reg.name,
                short(now)
            )
        };
        out.push(DriftFinding {
            kind: "ref.unrecorded".into(),
            subject: format!("{}@{name}", reg.name),
            what,
            fix: format!(
                "someone updated the ref past the hooks: find who with the Git server's logs and `git -C {} log {}`, check the hooks, and treat it as an incident; once accounted for, `breakglass git install --repo {}` takes the current values as the new baseline",
                reg.path,
                short(now),
                reg.path
            ),
        });
    }
    out
}

/// Whether the update `old` → `new` of `refname` is between the hooks: the
/// pre-receive hook accepted it and noted it (`breakglass-pending/`), and
/// post-receive has not recorded it yet.
fn in_flight(git_dir: &Path, old: &str, new: &str, refname: &str) -> bool {
    let key = sha256_hex(format!("{old} {new} {refname}").as_bytes());
    git_dir.join("breakglass-pending").join(format!("{key}.json")).is_file()
}

fn short(v: &str) -> &str {
    &v[..12.min(v.len())]
}
