//! What every benchmark measures with: percentiles of sorted wall times,
//! milliseconds, timed runs of a function or a command, and a process's
//! memory and CPU time from `/proc`.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::error::{CliResult, internal};

/// The `p` quantile (0 to 1) of sorted durations; zero when there are none.
pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50, p99 and mean of `iterations` runs of `f`, in microseconds.
pub(super) fn time_us(iterations: u32, mut f: impl FnMut() -> bool) -> CliResult<serde_json::Value> {
    let mut lat = Vec::with_capacity(iterations as usize);
    for _ in 0..iterations.max(1) {
        let t = Instant::now();
        let ok = std::hint::black_box(f());
        lat.push(t.elapsed());
        if !ok {
            return Err(internal("a benchmarked decision came out wrong"));
        }
    }
    let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
    lat.sort_unstable();
    let us = |d: Duration| (d.as_secs_f64() * 1e7).round() / 10.0;
    Ok(json!({ "p50_us": us(percentile(&lat, 0.5)), "p99_us": us(percentile(&lat, 0.99)), "mean_us": us(mean) }))
}

/// p50 and p90 of sorted durations, in milliseconds.
#[derive(Debug, Serialize)]
pub(super) struct Spread {
    pub(super) ms_p50: f64,
    pub(super) ms_p90: f64,
}

impl Spread {
    pub(super) fn of(sorted: &[Duration]) -> Spread {
        Spread { ms_p50: ms(percentile(sorted, 0.5)), ms_p90: ms(percentile(sorted, 0.9)) }
    }
}

/// Runs `cmd` `runs` times; the sorted wall times. Each run must succeed.
pub(super) fn time_runs(
    runs: u32,
    what: &str,
    mut cmd: impl FnMut() -> std::process::Command,
) -> CliResult<Vec<Duration>> {
    use std::process::Stdio;
    let mut lat = Vec::with_capacity(runs as usize);
    for _ in 0..runs.max(1) {
        let mut c = cmd();
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        let t = Instant::now();
        let out = c.output().map_err(|e| internal(format!("cannot run {what}: {e}")))?;
        lat.push(t.elapsed());
        if !out.status.success() {
            return Err(internal(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
    }
    lat.sort_unstable();
    Ok(lat)
}

/// Runs `cmd` with `input` on its standard input `runs` times; the sorted wall times.
pub(super) fn time_runs_with_input(
    runs: u32,
    what: &str,
    input: &[u8],
    mut cmd: impl FnMut() -> std::process::Command,
) -> CliResult<Vec<Duration>> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut lat = Vec::with_capacity(runs as usize);
    for _ in 0..runs.max(1) {
        let mut c = cmd();
        c.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let t = Instant::now();
        let mut child = c.spawn().map_err(|e| internal(format!("cannot run {what}: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).map_err(|e| internal(format!("cannot feed {what}: {e}")))?;
        }
        let out = child.wait_with_output().map_err(|e| internal(format!("{what} failed: {e}")))?;
        lat.push(t.elapsed());
        if !out.status.success() {
            return Err(internal(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
    }
    lat.sort_unstable();
    Ok(lat)
}

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// A process's memory, from `/proc/<pid>/status`, in bytes.
pub(super) struct Memory {
    /// VmRSS: resident, in all (anonymous + file-backed + shared).
    pub(super) rss: u64,
    /// RssAnon: the heap, stacks and other private memory.
    pub(super) anon: u64,
    /// RssFile: resident pages of mapped files, mostly the executable itself.
    pub(super) file: u64,
    /// VmHWM: the peak VmRSS.
    pub(super) peak: u64,
}

pub(super) fn memory(pid: u32) -> CliResult<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| internal(format!("cannot read /proc/{pid}/status: {e}")))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .ok_or_else(|| internal(format!("no {name} in /proc/{pid}/status")))
    };
    Ok(Memory { rss: field("VmRSS:")?, anon: field("RssAnon:")?, file: field("RssFile:")?, peak: field("VmHWM:")? })
}

/// CPU time (user + system, all threads) a process has used so far, in seconds.
fn cpu_seconds(pid: &str) -> CliResult<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| internal(format!("cannot read /proc/{pid}/stat: {e}")))?;
    // The fields after the command name (which may contain anything, so find its closing parenthesis).
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    match (tick(11), tick(12)) {
        (Some(utime), Some(stime)) => Ok((utime + stime) as f64 / CLOCK_TICKS),
        _ => Err(internal(format!("cannot parse /proc/{pid}/stat"))),
    }
}

/// CPU seconds used by the server and by this process (the client) so far.
pub(super) fn cpu_split(server: u32) -> CliResult<(f64, f64)> {
    Ok((cpu_seconds(&server.to_string())?, cpu_seconds("self")?))
}
