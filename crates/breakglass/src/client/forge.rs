//! `forge install` and `forge status`: the protection breakglass owns on
//! hosted forges, and who holds a bypass there now.

use breakglass_core::api::ForgeRepoStatus;

use super::connect;
use crate::cli::ForgeCommand;
use crate::display::line as shown;
use crate::error::CliResult;
use crate::print_json;

pub async fn forge(cmd: ForgeCommand) -> CliResult {
    match cmd {
        ForgeCommand::Install { repo, forge, json, client } => {
            let client = connect(&client)?;
            let status = client.forge_install(&forge, &repo).await?;
            if json {
                print_json(&status);
            } else {
                println!(
                    "{} ({} on {}): protection recorded as the baseline (sha256 {})",
                    shown(&status.repo),
                    shown(&status.forge_repo),
                    shown(&status.forge),
                    status.baseline_sha256.as_deref().unwrap_or("-")
                );
                print_holders(&status);
            }
            Ok(())
        }
        ForgeCommand::Status { json, client } => {
            let client = connect(&client)?;
            let list = client.forges().await?;
            if json {
                print_json(&list);
                return Ok(());
            }
            if list.repos.is_empty() {
                println!("no forge repositories are configured ([[forge]] and [[forge.repo]] in breakglass.toml)");
            }
            for s in &list.repos {
                let baseline = match (s.protection.is_some(), s.protection_matches_baseline) {
                    (false, _) => "no protection breakglass owns".to_owned(),
                    (true, None) => {
                        format!("not installed: run breakglass forge install --forge {} --repo {}", s.forge, s.repo)
                    }
                    (true, Some(true)) => "protection as its baseline".to_owned(),
                    (true, Some(false)) => "protection CHANGED since its baseline (see breakglass drift)".to_owned(),
                };
                println!("{} ({} on {}): {baseline}", shown(&s.repo), shown(&s.forge_repo), shown(&s.forge));
                print_holders(s);
            }
            Ok(())
        }
    }
}

fn print_holders(s: &ForgeRepoStatus) {
    if s.holders.is_empty() {
        println!("  nobody holds a bypass");
    }
    for h in &s.holders {
        let why = if h.covered { "covered by an effective grant" } else { "NOT covered by any grant (drift)" };
        println!("  {} (id {}): {why}", shown(&h.login), h.id);
    }
}
