//! Drift only a host holding the repositories can see: of each registered
//! repository whose path is here, hooks missing or different from what
//! `git install` wrote, `receive.advertisePushOptions` off, events waiting
//! in the spool, protected refs whose value no recorded update produced
//! (the hook removed, a push, the hook put back), and symbolic refs that
//! make one protected ref reachable under another name. The reading of
//! symbolic refs lives here too, for the hooks to share it.
//!
//! Security: this is how a bypassed hook is noticed, and how the hooks learn
//! which ref a pushed name really moves (a push to a symbolic ref updates
//! the ref it points to; issue 14). It reads the repository with the `git`
//! command line, or loose ref files where git's own rules make that exact
//! (symbolic refs are never packed), and trusts nothing the repository says
//! about itself beyond its refs and config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use breakglass_core::api::{DriftFinding, RefRecord, RepoRegistration};
use breakglass_core::push_input;

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
    patterns.iter().any(|p| push_input::matches(p, refname))
}

/// The current value of every ref matching a protected pattern. Symbolic
/// refs are left out: their value is their target's, which is listed (or
/// not protected) under its own name, and an update through one is
/// recorded under the target's name.
pub fn protected_refs(git_dir: &Path, patterns: &[String]) -> Result<BTreeMap<String, String>, String> {
    let out = Command::new("git")
        .env("GIT_DIR", git_dir)
        .args(["for-each-ref", "--format=%(objectname)%00%(refname)%00%(symref)"])
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
        .filter_map(|l| {
            let mut f = l.split('\0');
            Some((f.next()?, f.next()?, f.next().unwrap_or("")))
        })
        .filter(|(_, r, symref)| symref.is_empty() && is_protected(patterns, r))
        .map(|(v, r, _)| (r.to_owned(), v.to_owned()))
        .collect())
}

/// How deep git follows symbolic refs (its SYMREF_MAXDEPTH).
const SYMREF_DEPTH: usize = 5;
/// The most loose ref files a scan for symbolic refs looks at.
const MAX_SCAN: usize = 1_000_000;

/// Whether the repository keeps its refs in the reftable format: binary
/// tables that only git reads, so every question goes to git.
pub fn is_reftable(git_dir: &Path) -> bool {
    git_dir.join("reftable").is_dir()
}

/// What the loose file of a ref says, in the files ref backend.
enum Loose {
    /// No loose file: the ref is packed or does not exist; neither can be symbolic.
    Absent,
    /// A plain ref (an object id).
    Plain,
    /// A symbolic ref to this name.
    Symbolic(String),
    /// Something only git can judge (a symlink, an unreadable file).
    Unknown,
}

fn loose(git_dir: &Path, name: &str) -> Loose {
    use std::io::Read as _;
    let path = git_dir.join(name);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        // ENOTDIR: a component is a file (refs/heads/main/x when main is a ref).
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            return Loose::Absent;
        }
        Err(_) => return Loose::Unknown,
    };
    if meta.file_type().is_symlink() {
        return Loose::Unknown;
    }
    if !meta.is_file() {
        return Loose::Absent;
    }
    let mut head = Vec::with_capacity(64);
    let limit = (5 + push_input::MAX_REFNAME + 1) as u64;
    if std::fs::File::open(&path).and_then(|f| f.take(limit).read_to_end(&mut head)).is_err() {
        return Loose::Unknown;
    }
    let Some(rest) = head.strip_prefix(b"ref:") else { return Loose::Plain };
    match std::str::from_utf8(rest).map(str::trim) {
        Ok(target) if push_input::check_refname(target).is_ok() => Loose::Symbolic(target.to_owned()),
        _ => Loose::Unknown,
    }
}

/// The ref an update of `name` really moves when `name` is a symbolic ref:
/// the ref it finally points to (git follows symbolic refs on push, to the
/// end of a chain). `None` when `name` is not a symbolic ref. A dangling
/// symbolic ref names the ref a push would create.
pub fn symref_target(git_dir: &Path, name: &str) -> Result<Option<String>, String> {
    if !is_reftable(git_dir) {
        let mut current = name.to_owned();
        for _ in 0..=SYMREF_DEPTH {
            match loose(git_dir, &current) {
                Loose::Absent | Loose::Plain => return Ok((current != name).then_some(current)),
                Loose::Symbolic(next) => current = next,
                Loose::Unknown => return ask_symref(git_dir, name),
            }
        }
        return Err(format!("{name} is a chain of more than {SYMREF_DEPTH} symbolic refs"));
    }
    ask_symref(git_dir, name)
}

/// `git symbolic-ref -q NAME`, which follows the whole chain.
fn ask_symref(git_dir: &Path, name: &str) -> Result<Option<String>, String> {
    let out = Command::new("git")
        .env("GIT_DIR", git_dir)
        .args(["symbolic-ref", "-q", name])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git symbolic-ref: {e}"))?;
    match out.status.code() {
        Some(0) => Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()).filter(|t| t != name)),
        Some(1) => Ok(None),
        _ => Err(format!("git symbolic-ref {name} failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
    }
}

/// A symbolic ref and the ref it finally points to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symref {
    pub name: String,
    pub target: String,
}

/// The symbolic refs whose names match `patterns` (`refs/*` for all), each
/// with its final target. Loose files are scanned (symbolic refs are never
/// packed, so this sees dangling ones too); with reftable, git lists them
/// (dangling ones then go unseen: git skips them).
pub fn symrefs_matching(git_dir: &Path, patterns: &[String]) -> Result<Vec<Symref>, String> {
    let mut names = std::collections::BTreeSet::new();
    if is_reftable(git_dir) {
        let dirs: Vec<String> = patterns.iter().map(|p| scan_root(p).to_owned()).collect();
        let out = Command::new("git")
            .env("GIT_DIR", git_dir)
            .args(["for-each-ref", "--format=%(refname)%00%(symref)"])
            .args(&dirs)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run git for-each-ref in {}: {e}", git_dir.display()))?;
        if !out.status.success() {
            return Err(format!("git for-each-ref failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((name, symref)) = line.split_once('\0')
                && !symref.is_empty()
                && is_protected(patterns, name)
            {
                names.insert(name.to_owned());
            }
        }
    } else {
        let mut seen = 0;
        for p in patterns {
            if !p.ends_with('*') {
                if !matches!(loose(git_dir, p), Loose::Absent | Loose::Plain) {
                    names.insert(p.clone());
                }
                continue;
            }
            let root = scan_root(p);
            let mut stack = vec![root.trim_end_matches('/').to_owned()];
            while let Some(dir) = stack.pop() {
                let Ok(rd) = std::fs::read_dir(git_dir.join(&dir)) else { continue };
                for e in rd.flatten() {
                    seen += 1;
                    if seen > MAX_SCAN {
                        return Err(format!("more than {MAX_SCAN} loose refs under {}", git_dir.display()));
                    }
                    let Some(file) = e.file_name().to_str().map(str::to_owned) else { continue };
                    let name = format!("{dir}/{file}");
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(name);
                    } else if push_input::matches(p, &name)
                        && push_input::check_refname(&name).is_ok()
                        && !matches!(loose(git_dir, &name), Loose::Absent | Loose::Plain)
                    {
                        names.insert(name);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for name in names {
        if let Some(target) = symref_target(git_dir, &name)? {
            out.push(Symref { name, target });
        }
    }
    Ok(out)
}

/// The directory a pattern's refs live under: `refs/heads/release/` for
/// `refs/heads/release/*`, `refs/heads/` for `refs/heads/rel*`.
fn scan_root(pattern: &str) -> &str {
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    match body.rfind('/') {
        Some(k) => &body[..=k],
        None => "refs/",
    }
}

/// The symbolic refs that make protection depend on an alias: a name that
/// points into a protected ref (a push to it updates the protected ref),
/// or a protected name that points elsewhere (it moves with its target).
pub fn protection_symrefs(git_dir: &Path, patterns: &[String]) -> Result<Vec<Symref>, String> {
    Ok(symrefs_matching(git_dir, &["refs/*".to_owned()])?
        .into_iter()
        .filter(|s| is_protected(patterns, &s.name) || is_protected(patterns, &s.target))
        .collect())
}

/// Says what a symbolic ref found by [`protection_symrefs`] means for protection.
pub fn describe_symref(s: &Symref, patterns: &[String]) -> String {
    match (is_protected(patterns, &s.name), is_protected(patterns, &s.target)) {
        (false, _) => format!(
            "{} is a symbolic ref to the protected {}: a push to it updates {} (the hooks check it as an update of {})",
            s.name, s.target, s.target, s.target
        ),
        (true, false) => format!(
            "the protected {} is a symbolic ref to the unprotected {}: an update of {} moves it (the hooks refuse such updates)",
            s.name, s.target, s.target
        ),
        (true, true) => format!(
            "the protected {} is a symbolic ref to the protected {} (the hooks check a push to it as an update of {})",
            s.name, s.target, s.target
        ),
    }
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
    // A proc-receive hook updates refs itself after pre-receive decided on
    // the pushed names (refs/for/main may land on main): the hooks cannot
    // see what it does.
    if let Some(proc_refs) = get_config(&git_dir, "receive.procReceiveRefs") {
        out.push(finding(
            "repo.proc_receive",
            format!(
                "receive.procReceiveRefs is {proc_refs:?} in {}: its proc-receive hook updates refs after breakglass's pre-receive decided on other names",
                reg.path
            ),
            format!(
                "unless that hook enforces breakglass's rules itself: git -C {} config --unset-all receive.procReceiveRefs",
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
    match protection_symrefs(&git_dir, &reg.protected) {
        Ok(found) => out.extend(found.iter().map(|s| DriftFinding {
            kind: "ref.symbolic".into(),
            subject: format!("{}@{}", reg.name, s.name),
            what: describe_symref(s, &reg.protected),
            fix: format!(
                "if nobody needs the alias, remove it: git -C {} symbolic-ref --delete {} (issue 14: a push through a symbolic ref updates its target)",
                reg.path, s.name
            ),
        })),
        Err(e) => out.push(finding(
            "ref.symbolic",
            format!("cannot list the symbolic refs of {}: {e}", reg.name),
            "check the repository (permissions, corruption) with `git fsck`".into(),
        )),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn git_ok(dir: &Path, args: &[&str]) {
        let out = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Issue 14: symbolic refs as git resolves them, read from loose files
    /// (chains, dangling ones, symlinks) and, for reftable, from git.
    #[test]
    fn symbolic_refs_resolve_to_the_ref_a_push_moves() {
        let dir = tempfile::tempdir().unwrap();
        for (name, format) in [("files.git", "files"), ("reftable.git", "reftable")] {
            let bare = dir.path().join(name);
            let b = bare.to_str().unwrap();
            git_ok(dir.path(), &["init", "-q", "--bare", "-b", "main", &format!("--ref-format={format}"), b]);
            let oid = String::from_utf8(
                Command::new("git")
                    .arg("-C")
                    .arg(&bare)
                    .args([
                        "-c",
                        "user.name=T",
                        "-c",
                        "user.email=t@example.com",
                        "commit-tree",
                        "-m",
                        "x",
                        "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
                    ])
                    .output()
                    .unwrap()
                    .stdout,
            )
            .unwrap();
            git_ok(&bare, &["update-ref", "refs/heads/main", oid.trim()]);
            git_ok(&bare, &["update-ref", "refs/heads/release/1", oid.trim()]);
            git_ok(&bare, &["symbolic-ref", "refs/heads/master", "refs/heads/main"]);
            git_ok(&bare, &["symbolic-ref", "refs/heads/trunk", "refs/heads/master"]);
            git_ok(&bare, &["symbolic-ref", "refs/heads/release/alias", "refs/heads/feature"]);
            git_ok(&bare, &["pack-refs", "--all"]);
            let target = |n: &str| symref_target(&bare, n).unwrap();
            assert_eq!(target("refs/heads/master").as_deref(), Some("refs/heads/main"), "{format}");
            assert_eq!(target("refs/heads/trunk").as_deref(), Some("refs/heads/main"), "{format}: a chain");
            assert_eq!(target("refs/heads/main"), None, "{format}: packed, plain");
            assert_eq!(target("refs/heads/nothing"), None, "{format}");
            assert_eq!(target("refs/heads/release/alias").as_deref(), Some("refs/heads/feature"), "{format}: dangling");
            let patterns = vec!["refs/heads/main".to_owned(), "refs/heads/release/*".to_owned()];
            let found: Vec<String> =
                protection_symrefs(&bare, &patterns).unwrap().iter().map(|s| describe_symref(s, &patterns)).collect();
            assert!(
                found.iter().any(|f| f.starts_with("refs/heads/master is a symbolic ref to the protected")),
                "{found:?}"
            );
            assert!(found.iter().any(|f| f.starts_with("refs/heads/trunk is")), "{found:?}");
            if format == "files" {
                // Git skips dangling symbolic refs when it lists refs; the files scan does not.
                assert!(found.iter().any(|f| f.starts_with("the protected refs/heads/release/alias")), "{found:?}");
                #[cfg(unix)]
                std::os::unix::fs::symlink("refs/heads/main", bare.join("refs/heads/linked")).unwrap();
                assert_eq!(target("refs/heads/linked").as_deref(), Some("refs/heads/main"), "a symlinked symbolic ref");
            }
            // A proc-receive hook is reported: it updates refs the hooks never saw.
            let reg = RepoRegistration {
                name: "r".into(),
                protected: patterns.clone(),
                updaters: Vec::new(),
                path: bare.display().to_string(),
                host: String::new(),
                hooks: BTreeMap::new(),
                installed: true,
                refs: BTreeMap::new(),
                spool: String::new(),
            };
            let kinds = |reg: &RepoRegistration| inspect(reg, None).into_iter().map(|f| f.kind).collect::<Vec<_>>();
            assert!(!kinds(&reg).contains(&"repo.proc_receive".to_owned()));
            git_ok(&bare, &["config", "receive.procReceiveRefs", "refs/for"]);
            assert!(kinds(&reg).contains(&"repo.proc_receive".to_owned()));
            assert!(kinds(&reg).contains(&"ref.symbolic".to_owned()));
            // Drift's baseline leaves symbolic refs out.
            let refs = protected_refs(&bare, &["refs/heads/*".to_owned()]).unwrap();
            assert!(refs.contains_key("refs/heads/main") && !refs.contains_key("refs/heads/master"), "{refs:?}");
        }
    }
}
