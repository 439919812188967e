//! `policy reload`: asks the server to reload its policy and principals.

use super::connect;
use crate::cli::PolicyReloadArgs;
use crate::error::CliResult;
use crate::print_json;

pub async fn policy_reload(args: PolicyReloadArgs) -> CliResult {
    let client = connect(&args.client)?;
    let reloaded = client.reload_policy().await?;
    if args.json {
        print_json(&reloaded);
    } else {
        println!(
            "policy reloaded on {}: {} policies, {} principals",
            client.base_url(),
            reloaded.policies,
            reloaded.principals
        );
        for file in &reloaded.files {
            println!("  {file}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cli::Command;
    use crate::client::tests::parse;

    #[test]
    fn policy_reload_is_a_policy_subcommand() {
        let cli = parse(&["policy", "reload", "--json"]).unwrap();
        assert!(matches!(cli.command, Command::Policy(crate::cli::PolicyCommand::Reload(_))));
    }
}
