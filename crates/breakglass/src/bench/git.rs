//! `breakglass bench git`: what the hooks add to a real `git push` (local
//! transport) to a bare repository, against the same push to one without
//! hooks, with a real `breakglass serve` on SQLite; and start-up times.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::measure::{Spread, ms, percentile, time_runs, time_runs_with_input};
use super::start_server;
use crate::error::{CliResult, bad_input, internal};
use crate::print_json;
use crate::sandbox::{clean_cmd, git_cmd, login, new_ssh_key, run_tool};

/// The repository's name in scopes, and the scope of the benchmark's grant.
const GIT_BENCH_REPO: &str = "bench/repo";
const GIT_BENCH_SCOPE: &str = "git:bench/repo@refs/heads/main";
/// Commits in each push of the medium protected scenario (the target's figure).
const GIT_BENCH_MEDIUM: u32 = 10;

/// Runs `git --git-dir DIR ARGS…`, feeding `input`; its standard output.
fn git_in(dir: &std::path::Path, args: &[&str], input: Option<&[u8]>) -> CliResult<String> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut cmd = git_cmd();
    cmd.arg("--git-dir").arg(dir).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let what = format!("git {}", args.first().copied().unwrap_or_default());
    let mut child = cmd.spawn().map_err(|e| internal(format!("cannot run {what}: {e}")))?;
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        stdin.write_all(input).map_err(|e| internal(format!("cannot feed {what}: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| internal(format!("{what} failed: {e}")))?;
    if !out.status.success() {
        return Err(internal(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Makes commits quickly in the (bare) work repository with `git fast-import`.
struct CommitMaker {
    work: std::path::PathBuf,
    /// Committer time of the last commit made, in seconds: every commit is new.
    clock: u64,
}

impl CommitMaker {
    /// `n` commits in a row on top of `parent` (none: a root commit first),
    /// each changing `file` and, with `grant`, carrying the trailer
    /// `Break-Glass: <grant>`; the last one's id.
    fn make(
        &mut self,
        parent: Option<&str>,
        n: u32,
        grant: Option<&str>,
        file: &str,
        label: &str,
    ) -> CliResult<String> {
        use std::fmt::Write as _;
        let mut s = String::from("reset refs/heads/build\n");
        if let Some(p) = parent {
            let _ = writeln!(s, "from {p}");
        }
        s.push('\n');
        for i in 1..=n {
            self.clock += 1;
            let msg = match grant {
                Some(g) => format!("{label}: change {i} of {n}\n\nBreak-Glass: {g}\n"),
                None => format!("{label}: change {i} of {n}\n"),
            };
            let content = format!("{label} {i}\n");
            let _ = write!(
                s,
                "commit refs/heads/build\ncommitter Bench <bench@example.com> {} +0000\ndata {}\n{msg}\nM 100644 inline {file}\ndata {}\n{content}\n",
                self.clock,
                msg.len(),
                content.len()
            );
        }
        git_in(&self.work, &["fast-import", "--quiet", "--force"], Some(s.as_bytes()))?;
        git_in(&self.work, &["rev-parse", "refs/heads/build"], None)
    }
}

/// The pushes of the benchmark: from the work repository, as `user`, with
/// the local transport (receive-pack and its hooks inherit the environment).
struct Pusher {
    work: std::path::PathBuf,
    base: std::path::PathBuf,
    hooked: std::path::PathBuf,
    user: &'static str,
    /// With `--breakdown`: git's trace2 event files go here (both repositories' pushes alike).
    trace: Option<std::path::PathBuf>,
}

/// The wall times of one scenario's pushes and, with `--breakdown`, of the
/// hooks inside the hooked pushes.
#[derive(Default)]
struct PushSamples {
    base: Vec<Duration>,
    hooked: Vec<Duration>,
    pre_receive: Vec<Duration>,
    post_receive: Vec<Duration>,
}

impl Pusher {
    /// One timed `git push -q DEST REFSPEC`; it must be accepted.
    fn push(&self, dest: &std::path::Path, refspec: &str) -> CliResult<Duration> {
        let mut cmd = git_cmd();
        cmd.arg("--git-dir").arg(&self.work).args(["push", "-q"]).arg(dest).arg(refspec);
        cmd.env("BREAKGLASS_USER", self.user);
        if let Some(dir) = &self.trace {
            cmd.env("GIT_TRACE2_EVENT", dir);
        }
        let t = Instant::now();
        let out = cmd.output().map_err(|e| internal(format!("cannot run git push: {e}")))?;
        let took = t.elapsed();
        if !out.status.success() {
            return Err(internal(format!(
                "git push {refspec} to {} was refused ({}): {}",
                dest.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(took)
    }

    /// The same push to both repositories, the `k`th of a scenario: even
    /// ones go to the repository without hooks first, odd ones second, so
    /// that drift and caching favour neither.
    fn pair(&self, k: u32, refspec: &str, samples: &mut PushSamples) -> CliResult {
        for hooked in if k.is_multiple_of(2) { [false, true] } else { [true, false] } {
            self.clear_trace()?;
            if hooked {
                samples.hooked.push(self.push(&self.hooked, refspec)?);
                if self.trace.is_some() {
                    let (pre, post) = self.hook_times()?;
                    samples.pre_receive.extend(pre);
                    samples.post_receive.extend(post);
                }
            } else {
                samples.base.push(self.push(&self.base, refspec)?);
            }
        }
        Ok(())
    }

    /// Empties the trace2 directory. (It stays: git writes to a file of that
    /// name when there is no directory, and a detached `git maintenance` of
    /// the previous push may still be writing into it.)
    fn clear_trace(&self) -> CliResult {
        let Some(dir) = &self.trace else { return Ok(()) };
        if dir.is_file() {
            let _ = std::fs::remove_file(dir);
        }
        std::fs::create_dir_all(dir).map_err(|e| internal(format!("cannot create {}: {e}", dir.display())))?;
        let rd = std::fs::read_dir(dir).map_err(|e| internal(format!("cannot read {}: {e}", dir.display())))?;
        for file in rd.flatten() {
            let _ = std::fs::remove_file(file.path());
        }
        Ok(())
    }

    /// How long receive-pack waited for each hook, from git's trace2 events
    /// (`child_start` of class `hook`, then its `child_exit`'s `t_rel`).
    fn hook_times(&self) -> CliResult<(Option<Duration>, Option<Duration>)> {
        let Some(dir) = &self.trace else { return Ok((None, None)) };
        let rd = std::fs::read_dir(dir).map_err(|e| internal(format!("cannot read {}: {e}", dir.display())))?;
        let (mut pre, mut post) = (None, None);
        for file in rd.flatten() {
            let Ok(text) = std::fs::read_to_string(file.path()) else { continue };
            let mut hooks = std::collections::HashMap::new();
            for line in text.lines() {
                let Ok(ev) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                match ev["event"].as_str() {
                    Some("child_start") if ev["child_class"] == "hook" => {
                        hooks.insert(ev["child_id"].as_u64(), ev["hook_name"].as_str().unwrap_or_default().to_owned());
                    }
                    Some("child_exit") => {
                        let took = ev["t_rel"].as_f64().map(Duration::from_secs_f64);
                        match hooks.get(&ev["child_id"].as_u64()).map(String::as_str) {
                            Some("pre-receive") => pre = took,
                            Some("post-receive") => post = took,
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok((pre, post))
    }
}

/// What the server recorded for the push that set `refs/heads/main` to `new`,
/// in the log entries from `from` on.
#[derive(Debug, Default, Serialize)]
struct Recorded {
    accepted_decisions: u64,
    push_events: u64,
    commits: u64,
}

async fn recorded(client: &breakglass_client::Client, from: u64, new: &str) -> CliResult<(Recorded, u64)> {
    let size = client.checkpoint().await.map_err(|e| internal(format!("GET /v1/log/checkpoint: {e}")))?.size;
    let mut r = Recorded::default();
    for i in from..size {
        let e = client.log_entry(i).await.map_err(|e| internal(format!("GET /v1/log/entries/{i}: {e}")))?.entry;
        if e["data"]["new"] != new || e["data"]["repo"] != GIT_BENCH_REPO {
            continue;
        }
        match e["kind"].as_str() {
            Some("git.push.decision") if e["data"]["accepted"] == true => r.accepted_decisions += 1,
            Some("git.push") => {
                r.push_events += 1;
                r.commits += e["data"]["commits"].as_array().map_or(0, |c| c.len() as u64);
            }
            _ => {}
        }
    }
    Ok((r, size))
}

/// The figures of one scenario: the same pushes to the repository without
/// hooks and to the one with them, interleaved.
#[derive(Debug, Serialize)]
struct PushFigures {
    scenario: &'static str,
    pushes: u32,
    commits_per_push: u32,
    without_hooks_ms_p50: f64,
    without_hooks_ms_p90: f64,
    with_hooks_ms_p50: f64,
    with_hooks_ms_p90: f64,
    /// p50 with hooks less p50 without: the figure the target is about.
    added_ms_p50: f64,
    added_ms_p90: f64,
    target_added_ms_p50: f64,
    met: bool,
    /// With `--breakdown`: how long receive-pack waited for each hook (git's trace2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pre_receive: Option<Spread>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_receive: Option<Spread>,
}

impl PushFigures {
    fn new(scenario: &'static str, commits: u32, target: f64, mut s: PushSamples) -> Self {
        for v in [&mut s.base, &mut s.hooked, &mut s.pre_receive, &mut s.post_receive] {
            v.sort_unstable();
        }
        let (b50, b90) = (ms(percentile(&s.base, 0.5)), ms(percentile(&s.base, 0.9)));
        let (h50, h90) = (ms(percentile(&s.hooked, 0.5)), ms(percentile(&s.hooked, 0.9)));
        let spread = |v: &[Duration]| (!v.is_empty()).then(|| Spread::of(v));
        PushFigures {
            scenario,
            pushes: s.hooked.len() as u32,
            commits_per_push: commits,
            without_hooks_ms_p50: b50,
            without_hooks_ms_p90: b90,
            with_hooks_ms_p50: h50,
            with_hooks_ms_p90: h90,
            added_ms_p50: h50 - b50,
            added_ms_p90: h90 - b90,
            target_added_ms_p50: target,
            met: h50 - b50 <= target,
            pre_receive: spread(&s.pre_receive),
            post_receive: spread(&s.post_receive),
        }
    }
}

#[derive(Debug, Serialize)]
struct GitFigures {
    cores: usize,
    git_version: String,
    scenarios: Vec<PushFigures>,
    /// What the server recorded for each large push (checked: every commit, once).
    large_push_events_each: Vec<u64>,
    large_push_commits_recorded_each: Vec<u64>,
    startup_runs: u32,
    /// `breakglass --version`: process start, argument parsing, exit.
    breakglass_version: Spread,
    /// `git --version`, for comparison.
    git_version_cmd: Spread,
    /// The installed `pre-receive` / `post-receive` scripts run by hand in the
    /// repository with hooks, for one unprotected update: what each hook costs
    /// an unprotected push, without git around it.
    pre_receive_unprotected: Spread,
    post_receive_unprotected: Spread,
}

pub async fn git(args: crate::cli::BenchGitArgs) -> CliResult {
    use breakglass_client::Client;
    use breakglass_core::api::{ApproveRequest, CreateApiToken, GrantRequest};

    if args.pushes == 0 || args.large_pushes == 0 || args.large_commits == 0 || args.startup_runs == 0 {
        return Err(bad_input("--pushes, --large-pushes, --large-commits and --startup-runs must be at least 1"));
    }
    let exe = std::env::current_exe().map_err(|e| internal(format!("cannot find this executable: {e}")))?;
    let git_version = git_in(std::path::Path::new("."), &["--version"], None)
        .map_err(|e| internal(format!("{e} (is git installed?)")))?;
    let scratch = tempfile::tempdir().map_err(|e| internal(format!("cannot make a scratch directory: {e}")))?;
    let root = scratch.path();
    let data = root.join("data");

    // Two principals: a requester in oncall, an approver in approvers (the
    // example policy wants one approval for a push to main).
    let mut keys = Vec::new();
    for name in ["alice", "bob"] {
        let dir = root.join(format!("login-{name}"));
        std::fs::create_dir(&dir).map_err(|e| internal(format!("cannot create {}: {e}", dir.display())))?;
        let key = dir.join("key");
        let public = new_ssh_key(&key, name)?;
        keys.push((dir, key, public));
    }
    eprintln!("starting breakglass serve on SQLite in {}...", data.display());
    let (srv, url, admin_token) = start_server(&data).await?;
    let principals = format!(
        "[[principal]]\nname = \"alice\"\ngroups = [\"oncall\"]\nssh_keys = [\"{}\"]\n\n\
         [[principal]]\nname = \"bob\"\ngroups = [\"approvers\"]\nssh_keys = [\"{}\"]\n",
        keys[0].2, keys[1].2
    );
    std::fs::write(data.join("principals.toml"), principals)
        .map_err(|e| internal(format!("cannot write the principals file: {e}")))?;
    let admin = Client::new(&url, Some(admin_token))?;
    admin.reload_policy().await.map_err(|e| internal(format!("policy reload refused: {e}")))?;
    let alice = Client::new(&url, Some(login(&url, "alice", &keys[0].1, &keys[0].0).await?))?;
    let bob = Client::new(&url, Some(login(&url, "bob", &keys[1].1, &keys[1].0).await?))?;
    let request = GrantRequest {
        scopes: vec![GIT_BENCH_SCOPE.into()],
        capabilities: vec!["push".into()],
        duration: "60m".into(),
        reason: "bench git: hook overhead".into(),
        incident: None,
        drill: false,
    };
    let grant = alice.request_grant(&request).await.map_err(|e| internal(format!("grant request refused: {e}")))?;
    let approved = bob
        .approve(&grant.id, &ApproveRequest { comment: None })
        .await
        .map_err(|e| internal(format!("approval refused: {e}")))?;
    if approved.state.as_str() != "active" {
        return Err(internal(format!(
            "grant {} is {} after one approval, not active",
            grant.id,
            approved.state.as_str()
        )));
    }
    let g = grant.id;
    let service = admin
        .create_api_token(&CreateApiToken { name: "bench-git-hooks".into(), role: "service".into(), expires_in: None })
        .await
        .map_err(|e| internal(format!("cannot create the hooks' service token: {e}")))?
        .token;
    let token_file = root.join("hook-token");
    // 0600 from the start: `git install` and the hooks refuse a token file others can read.
    crate::git::hook::write_private(&token_file, service.as_bytes())
        .map_err(|e| internal(format!("cannot write the token file: {e}")))?;

    // The repositories: without hooks, with them, and the one pushed from.
    let (base, hooked, work) = (root.join("base.git"), root.join("hooked.git"), root.join("work.git"));
    for repo in [&base, &hooked, &work] {
        let mut c = git_cmd();
        c.args(["init", "-q", "--bare", "-b", "main"]).arg(repo);
        run_tool(&mut c, "git init --bare")?;
    }
    let mut install = std::process::Command::new(&exe);
    install
        .args(["git", "install", "--repo"])
        .arg(&hooked)
        .args(["--name", GIT_BENCH_REPO, "--protect", "refs/heads/main", "--server", &url, "--token-file"])
        .arg(&token_file)
        .arg("--jwks")
        .arg(data.join("grant-token.jwks.json"));
    run_tool(&mut install, "breakglass git install")?;
    let mut maker = CommitMaker { work: work.clone(), clock: 1_795_262_400 };
    let trace = args.breakdown.then(|| root.join("trace2"));
    let pusher = Pusher { work, base, hooked: hooked.clone(), user: "alice", trace };
    pusher.clear_trace()?;

    // main in both, under the grant; then a check that the hooks are on: an
    // untagged commit is refused in the repository with hooks.
    let first = maker.make(None, 1, Some(&g), "README", "initial")?;
    for dest in [&pusher.base, &pusher.hooked] {
        pusher.push(dest, &format!("{first}:refs/heads/main"))?;
    }
    let untagged = maker.make(Some(&first), 1, None, "README", "untagged")?;
    if pusher.push(&pusher.hooked, &format!("{untagged}:refs/heads/main")).is_ok() {
        return Err(internal("the hooks accepted an untagged commit on protected main: are they installed?"));
    }

    // (a) An unprotected push: one new commit to a new feature branch.
    eprintln!("(a) {} unprotected pushes of 1 commit to each repository...", args.pushes);
    let mut samples = PushSamples::default();
    for k in 0..args.pushes {
        let c = maker.make(Some(&first), 1, None, "feature.txt", &format!("feature-{k}"))?;
        pusher.pair(k, &format!("{c}:refs/heads/feature-{k}"), &mut samples)?;
    }
    let unprotected = PushFigures::new("unprotected push, 1 commit, new branch", 1, 5.0, samples);

    // (b) A 10-commit push to protected main under the grant.
    eprintln!("(b) {} protected pushes of {GIT_BENCH_MEDIUM} commits to each repository...", args.pushes);
    let mut tip = first.clone();
    let mut from = admin.checkpoint().await.map_err(|e| internal(format!("GET /v1/log/checkpoint: {e}")))?.size;
    let mut samples = PushSamples::default();
    for k in 0..args.pushes {
        let c = maker.make(Some(&tip), GIT_BENCH_MEDIUM, Some(&g), "src/fix.txt", &format!("fix-{k}"))?;
        pusher.pair(k, &format!("{c}:refs/heads/main"), &mut samples)?;
        let (r, size) = recorded(&admin, from, &c).await?;
        if r.accepted_decisions != 1 || r.commits != u64::from(GIT_BENCH_MEDIUM) {
            return Err(internal(format!("the server did not record protected push {k} as expected: {r:?}")));
        }
        (tip, from) = (c, size);
    }
    let medium = PushFigures::new("protected push, 10 commits, grant", GIT_BENCH_MEDIUM, 50.0, samples);

    // (c) A large push to protected main under the grant: the hook splits its
    // commit records into several events; every commit must be recorded.
    eprintln!("(c) {} protected pushes of {} commits to each repository...", args.large_pushes, args.large_commits);
    let mut samples = PushSamples::default();
    let (mut events_each, mut commits_each) = (Vec::new(), Vec::new());
    for k in 0..args.large_pushes {
        let c = maker.make(Some(&tip), args.large_commits, Some(&g), "src/big.txt", &format!("big-{k}"))?;
        pusher.pair(k, &format!("{c}:refs/heads/main"), &mut samples)?;
        let (r, size) = recorded(&admin, from, &c).await?;
        if r.accepted_decisions != 1 || r.commits != u64::from(args.large_commits) {
            return Err(internal(format!(
                "the server did not record large push {k} as expected ({} commits): {r:?}",
                args.large_commits
            )));
        }
        events_each.push(r.push_events);
        commits_each.push(r.commits);
        (tip, from) = (c, size);
    }
    let large_name = if args.large_commits == 1000 {
        "protected push, 1,000 commits, grant"
    } else {
        "protected push, large, grant"
    };
    let large = PushFigures::new(large_name, args.large_commits, 300.0, samples);

    // (d) Start-up, and each hook alone on an unprotected update.
    eprintln!("(d) start-up: {} runs each...", args.startup_runs);
    let version = time_runs(args.startup_runs, "breakglass --version", || {
        let mut c = std::process::Command::new(&exe);
        c.arg("--version");
        c
    })?;
    let git_v = time_runs(args.startup_runs, "git --version", || {
        let mut c = git_cmd();
        c.arg("--version");
        c
    })?;
    let line = format!("{} {first} refs/heads/bench-probe\n", "0".repeat(first.len()));
    let hook = |name: &'static str| {
        let hooked = hooked.clone();
        move || {
            // The installed hook script, run as receive-pack runs it: in the
            // repository, with GIT_DIR set.
            let mut c = clean_cmd(hooked.join("hooks").join(name));
            c.current_dir(&hooked).env("GIT_DIR", ".").env("BREAKGLASS_USER", "alice");
            c
        }
    };
    let pre = time_runs_with_input(args.startup_runs, "the pre-receive hook", line.as_bytes(), hook("pre-receive"))?;
    let post = time_runs_with_input(args.startup_runs, "the post-receive hook", line.as_bytes(), hook("post-receive"))?;
    drop(srv);

    let figures = GitFigures {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        git_version,
        scenarios: vec![unprotected, medium, large],
        large_push_events_each: events_each,
        large_push_commits_recorded_each: commits_each,
        startup_runs: args.startup_runs,
        breakglass_version: Spread::of(&version),
        git_version_cmd: Spread::of(&git_v),
        pre_receive_unprotected: Spread::of(&pre),
        post_receive_unprotected: Spread::of(&post),
    };
    if args.json {
        print_json(&figures);
        return Ok(());
    }
    let f = &figures;
    println!(
        "git hooks benchmark: real `git push` (local transport) to a bare repository with the breakglass hooks and to one without, the same commits to both, interleaved; a real `breakglass serve` on SQLite; {}; {} cores",
        f.git_version, f.cores
    );
    println!(
        "  {:<40} {:>6}  {:>17}  {:>17}  {:>17}  {:>8}",
        "scenario", "pushes", "without p50 / p90", "with p50 / p90", "added p50 / p90", "target"
    );
    for s in &f.scenarios {
        println!(
            "  {:<40} {:>6}  {:>7.1} / {:>6.1} ms  {:>7.1} / {:>6.1} ms  {:>7.1} / {:>6.1} ms  <= {:>3.0} ms {}",
            s.scenario,
            s.pushes,
            s.without_hooks_ms_p50,
            s.without_hooks_ms_p90,
            s.with_hooks_ms_p50,
            s.with_hooks_ms_p90,
            s.added_ms_p50,
            s.added_ms_p90,
            s.target_added_ms_p50,
            if s.met { "met" } else { "MISSED" }
        );
    }
    if f.scenarios.iter().any(|s| s.pre_receive.is_some()) {
        println!("  inside receive-pack (git's trace2 events, on in every push of this run), the hooks took:");
        for s in &f.scenarios {
            if let (Some(pre), Some(post)) = (&s.pre_receive, &s.post_receive) {
                println!(
                    "    {:<40} pre-receive p50 {:.1} ms, p90 {:.1} ms; post-receive p50 {:.1} ms, p90 {:.1} ms",
                    s.scenario, pre.ms_p50, pre.ms_p90, post.ms_p50, post.ms_p90
                );
            }
        }
    }
    println!(
        "  each large push ({} commits) was recorded in {:?} git.push event(s), {:?} commits (checked)",
        args.large_commits, f.large_push_events_each, f.large_push_commits_recorded_each
    );
    println!(
        "  start-up, {} runs: breakglass --version p50 {:.2} ms, p90 {:.2} ms; git --version p50 {:.2} ms, p90 {:.2} ms",
        f.startup_runs,
        f.breakglass_version.ms_p50,
        f.breakglass_version.ms_p90,
        f.git_version_cmd.ms_p50,
        f.git_version_cmd.ms_p90
    );
    println!(
        "  each hook alone on one unprotected update: pre-receive p50 {:.2} ms, p90 {:.2} ms; post-receive p50 {:.2} ms, p90 {:.2} ms",
        f.pre_receive_unprotected.ms_p50,
        f.pre_receive_unprotected.ms_p90,
        f.post_receive_unprotected.ms_p50,
        f.post_receive_unprotected.ms_p90
    );
    Ok(())
}
