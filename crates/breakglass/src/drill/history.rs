//! `breakglass drill history`: the timings of past drills, so a team sees
//! whether its break-glass path gets faster or slower. Drills against a
//! server are stored there (`GET /v1/drills`); sandbox drills are kept on
//! this machine, one JSON line each, in `$BREAKGLASS_DRILL_HISTORY`, else
//! `$XDG_STATE_HOME/breakglass/drills.jsonl`, else
//! `~/.local/state/breakglass/drills.jsonl`.

use std::io::Write as _;
use std::path::PathBuf;

use breakglass_client::Client;
use breakglass_core::api::{DrillRecord, DrillReport};
use breakglass_core::time::Timestamp;

use crate::cli::ClientArgs;
use crate::client::connect;
use crate::error::{CliResult, bad_input, internal};
use crate::print_json;

fn local_path() -> CliResult<PathBuf> {
    if let Some(p) = std::env::var_os("BREAKGLASS_DRILL_HISTORY").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Ok(dir.join("breakglass/drills.jsonl"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/breakglass/drills.jsonl")),
        None => Err(bad_input("cannot keep drill history: set BREAKGLASS_DRILL_HISTORY, XDG_STATE_HOME or HOME")),
    }
}

/// Appends a sandbox drill's result to this machine's history, as of `at`.
pub fn append_local(report: &DrillReport, at: Timestamp) -> CliResult {
    let path = local_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| internal(format!("cannot create {}: {e}", dir.display())))?;
    }
    let record = DrillRecord {
        id: format!("sandbox-{}", at.0),
        at,
        by: std::env::var("USER").unwrap_or_default(),
        index: None,
        report: report.clone(),
    };
    let mut line = serde_json::to_string(&record).map_err(|e| internal(e.to_string()))?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| internal(format!("cannot open {}: {e}", path.display())))?;
    f.write_all(line.as_bytes()).map_err(|e| internal(format!("cannot write {}: {e}", path.display())))
}

/// This machine's sandbox drills, newest first; a damaged line is named.
fn read_local(limit: usize) -> CliResult<Vec<DrillRecord>> {
    let path = local_path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(internal(format!("cannot read {}: {e}", path.display()))),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        out.push(
            serde_json::from_str(line)
                .map_err(|e| bad_input(format!("{} line {}: not a drill record: {e}", path.display(), n + 1)))?,
        );
    }
    out.reverse();
    out.truncate(limit);
    Ok(out)
}

pub async fn run(server: Option<String>, json: bool, limit: u32) -> CliResult {
    let (drills, source) = match server {
        Some(server) => {
            let client: Client = connect(&ClientArgs { server: server.clone() })?;
            (client.drills(limit).await?.drills, server)
        }
        None => (read_local(limit as usize)?, format!("sandbox drills on this machine ({})", local_path()?.display())),
    };
    if json {
        print_json(&serde_json::json!({ "source": source, "drills": drills }));
        return Ok(());
    }
    println!("{source}");
    if drills.is_empty() {
        println!("no drills yet: run `breakglass drill`");
        return Ok(());
    }
    println!("{:<24} {:<12} {:<6} {:>9}  slowest step", "when", "who", "result", "total ms");
    for d in &drills {
        let slowest = d
            .report
            .steps
            .iter()
            .max_by(|a, b| a.ms.total_cmp(&b.ms))
            .map_or(String::new(), |s| format!("{} ({:.1} ms)", s.step, s.ms));
        let when = d.at.to_rfc3339();
        println!(
            "{:<24} {:<12} {:<6} {:>9.1}  {slowest}",
            when.split('.').next().unwrap_or(&when),
            d.by,
            if d.report.ok { "passed" } else { "FAILED" },
            d.report.total_ms
        );
    }
    Ok(())
}
