//! `breakglass drift`: what would make a deliberate act a silent hole. The
//! server reports what it sees for itself (grants lagging or contradicting
//! their log, standing backdoors in policy); this command adds what only
//! this host sees (the registered repositories that live here: hooks missing
//! or changed since `git install`, push options turned off) and what only
//! an auditor holding a saved checkpoint can check (the log still extends
//! it). Exit 0 when nothing drifted, 1 when something did.

use std::path::{Path, PathBuf};

use breakglass_core::api::DriftFinding;
use breakglass_core::checkpoint::Checkpoint;
use breakglass_core::hash::Hash;
use breakglass_core::proof::verify_consistency;
use serde_json::json;

use crate::cli::ClientArgs;
use crate::client::connect;
use crate::datadir::parse_verifier_key;
use crate::error::{CliError, CliResult, ExitCode, bad_input};
use crate::git::{hook, repo};
use crate::print_json;

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// The registered repositories whose path is on this host.
async fn repos(client: &breakglass_client::Client) -> CliResult<Vec<DriftFinding>> {
    let mut out = Vec::new();
    for r in client.repos().await?.repos {
        let git_dir = PathBuf::from(&r.path);
        if !r.installed || !git_dir.join("HEAD").is_file() {
            continue;
        }
        let hooks = hook::hooks_dir(&git_dir);
        for (name, want) in &r.hooks {
            let path = hooks.join(name);
            match std::fs::read(&path) {
                Err(_) => out.push(DriftFinding {
                    kind: "repo.hook_missing".into(),
                    subject: r.path.clone(),
                    what: format!("{} of repository {} is missing", path.display(), r.name),
                    fix: format!("run `breakglass git install --repo {}` again, and find out who removed it", r.path),
                }),
                Ok(text) if &sha256_hex(&text) != want => out.push(DriftFinding {
                    kind: "repo.hook_modified".into(),
                    subject: r.path.clone(),
                    what: format!("{} of repository {} is not the script `git install` wrote", path.display(), r.name),
                    fix: format!("compare it, then run `breakglass git install --repo {}` again", r.path),
                }),
                Ok(_) => {}
            }
        }
        let options = repo::get_config(&git_dir, "receive.advertisePushOptions").ok().flatten();
        if options.as_deref() != Some("true") {
            out.push(DriftFinding {
                kind: "repo.push_options_off".into(),
                subject: r.path.clone(),
                what: format!(
                    "receive.advertisePushOptions is {} in {}",
                    options.as_deref().unwrap_or("unset"),
                    r.path
                ),
                fix: format!(
                    "git -C {} config receive.advertisePushOptions true (grant tokens travel as push options)",
                    r.path
                ),
            });
        }
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
        for f in &findings {
            println!("{}  {}\n    {}\n    fix: {}", f.kind, f.subject, f.what, f.fix);
        }
    }
    if findings.is_empty() {
        Ok(())
    } else {
        Err(CliError { code: ExitCode::CheckFailed, message: format!("{} drift finding(s)", findings.len()) })
    }
}
