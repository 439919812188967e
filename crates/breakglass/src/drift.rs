//! `breakglass drift`: what would make a deliberate act a silent hole. The
//! server reports what it sees for itself (grants lagging or contradicting
//! their log, standing backdoors in policy); this command adds what only
//! this host sees (the registered repositories that live here: hooks missing
//! or changed since `git install`, push options turned off, events waiting
//! in a spool, protected refs no recorded update produced) and what only
//! an auditor holding a saved checkpoint can check (the log still extends
//! it). Exit 0 when nothing drifted, 1 when something did.

use std::path::{Path, PathBuf};

use breakglass_server::hostcheck;

use breakglass_core::api::DriftFinding;
use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::hash::Hash;
use breakglass_tlog::proof::verify_consistency;
use serde_json::json;

use crate::cli::ClientArgs;
use crate::client::connect;
use crate::datadir::parse_verifier_key;
use crate::error::{CliError, CliResult, ExitCode, bad_input};
use crate::print_json;

/// The registered repositories whose path is on this host.
async fn repos(client: &breakglass_client::Client) -> CliResult<Vec<DriftFinding>> {
    let host = hostcheck::host_name();
    let mut out = Vec::new();
    for r in client.repos().await?.repos {
        if !hostcheck::is_local(&r, &host) {
            continue;
        }
        let recorded = client.repo_refs(&r.name).await?.refs;
        out.extend(hostcheck::inspect(&r, Some(&recorded)));
    }
    Ok(out)
}

/// Whether the log still extends a checkpoint saved earlier.
async fn checkpoint(client: &breakglass_client::Client, saved: &Path, key: &str) -> CliResult<Option<DriftFinding>> {
    let key = parse_verifier_key(key)?;
    let text = std::fs::read_to_string(saved)
        .map_err(|e| bad_input(format!("cannot read the saved checkpoint {}: {e}", saved.display())))?;
    let old = Checkpoint::open(&text, key.name(), std::slice::from_ref(&key)).map_err(|e| {
        bad_input(format!("the saved checkpoint {} does not verify with the key: {e}", saved.display()))
    })?;
    let drift = |what: String| DriftFinding {
        kind: "log.inconsistent".into(),
        subject: saved.display().to_string(),
        what,
        fix: "stop and investigate: the log was rewritten or forked; keep the saved checkpoint as evidence".into(),
    };
    let c = client.consistency(old.size).await?;
    let new = match Checkpoint::open(&c.checkpoint, key.name(), std::slice::from_ref(&key)) {
        Ok(n) => n,
        Err(e) => return Ok(Some(drift(format!("the server's latest checkpoint does not verify: {e}")))),
    };
    let proof: Option<Vec<Hash>> = c.proof.iter().map(|h| Hash::from_base64(h)).collect();
    let Some(proof) = proof else { return Ok(Some(drift("the server's consistency proof is malformed".into()))) };
    if new.size != c.new || new.size < old.size {
        return Ok(Some(drift(format!(
            "the server's checkpoint (size {}) does not extend size {}",
            new.size, old.size
        ))));
    }
    Ok(verify_consistency(old.size, new.size, old.root.as_bytes(), new.root.as_bytes(), &proof).err().map(|e| {
        drift(format!(
            "the log at size {} is not consistent with the checkpoint saved at size {} ({e})",
            new.size, old.size
        ))
    }))
}

/// `breakglass drift --record`: the server's periodic check, now.
pub async fn record(client_args: ClientArgs, json: bool) -> CliResult {
    let client = connect(&client_args)?;
    let c = client.drift_check().await?;
    if json {
        print_json(&json!({ "drifted": !c.findings.is_empty(), "check": c }));
    } else {
        println!(
            "checked on {}: {} finding(s), {} new (recorded), {} cleared",
            c.host,
            c.findings.len(),
            c.found.len(),
            c.cleared.len()
        );
        if let Some(e) = &c.not_recorded {
            println!("NOT RECORDED in the log: {e}");
        }
        print_findings(&c.findings);
    }
    exit(c.findings.len())
}

fn print_findings(findings: &[DriftFinding]) {
    for f in findings {
        println!("{}  {}\n    {}\n    fix: {}", f.kind, f.subject, f.what, f.fix);
    }
}

fn exit(findings: usize) -> CliResult {
    if findings == 0 {
        Ok(())
    } else {
        Err(CliError { code: ExitCode::CheckFailed, message: format!("{findings} drift finding(s)") })
    }
}

pub async fn run(client_args: ClientArgs, saved: Option<PathBuf>, key: Option<String>, json: bool) -> CliResult {
    let client = connect(&client_args)?;
    let mut findings = client.drift().await?.findings;
    findings.extend(repos(&client).await?);
    if let Some(saved) = &saved {
        let key = key.as_deref().ok_or_else(|| bad_input("--checkpoint needs --key (the log's verifier key)"))?;
        findings.extend(checkpoint(&client, saved, key).await?);
    }
    if json {
        print_json(&json!({ "drifted": !findings.is_empty(), "findings": findings }));
    } else if findings.is_empty() {
        println!("no drift");
    } else {
        print_findings(&findings);
    }
    exit(findings.len())
}
