//! `token …`: grant tokens for a grant (written to a private file), and API
//! tokens (create, list, revoke).

use std::io::Write as _;
use std::path::Path;

use breakglass_core::api::{ApiTokenView, CreateApiToken};

use super::{connect, non_empty, opt_time, print_table, short_time};
use crate::cli::{TokenArgs, TokenCommand};
use crate::error::{CliResult, bad_input};
use crate::print_json;

pub async fn token(args: TokenArgs) -> CliResult {
    match args.command {
        Some(TokenCommand::Create { name, role, expires_in, json, client }) => {
            let name = non_empty("--name", &name)?;
            let client = connect(&client)?;
            let created =
                client.create_api_token(&CreateApiToken { name, role: role.as_str().to_owned(), expires_in }).await?;
            if json {
                print_json(&created);
            } else {
                println!("{}", created.token);
            }
            let _ = std::io::stdout().flush();
            eprintln!(
                "warning: this is the only time API token {} ({}, role {}) is shown; store it now. Expires: {}.",
                created.view.id,
                created.view.name,
                created.view.role,
                created.view.expires_at.map_or_else(|| "never".into(), short_time)
            );
            Ok(())
        }
        Some(TokenCommand::List { json, client }) => {
            let client = connect(&client)?;
            let list = client.list_api_tokens().await?;
            if json {
                print_json(&list);
            } else if list.tokens.is_empty() {
                println!("no API tokens");
            } else {
                let rows: Vec<Vec<String>> = list.tokens.iter().map(api_token_row).collect();
                print_table(&["ID", "NAME", "ROLE", "CREATED", "BY", "EXPIRES", "REVOKED"], &rows);
            }
            Ok(())
        }
        Some(TokenCommand::Revoke { id, json, client }) => {
            let client = connect(&client)?;
            let view = client.revoke_api_token(&id).await?;
            if json {
                print_json(&view);
            } else {
                println!("revoked API token {} ({}, role {})", view.id, view.name, view.role);
            }
            Ok(())
        }
        None => {
            let Some(id) = args.id else {
                return Err(bad_input("give a grant id (breakglass token ID) or a subcommand: create, list, revoke"));
            };
            let client = connect(&args.client)?;
            let res = client.grant_token(&id).await?;
            if let Some(out) = &args.out {
                write_private(out, format!("{}\n", res.token).as_bytes())?;
                eprintln!("wrote the grant token to {} (expires {})", out.display(), short_time(res.expires_at));
            } else if args.json {
                print_json(&res);
            } else {
                println!("{}", res.token);
            }
            Ok(())
        }
    }
}

fn api_token_row(t: &ApiTokenView) -> Vec<String> {
    vec![
        t.id.clone(),
        t.name.clone(),
        t.role.clone(),
        short_time(t.created_at),
        t.created_by.clone(),
        t.expires_at.map_or_else(|| "never".into(), short_time),
        opt_time(t.revoked_at),
    ]
}

/// Writes a secret to `path` with mode 0600 (also when the file existed with another mode).
fn write_private(path: &Path, bytes: &[u8]) -> CliResult {
    let fail = |e: std::io::Error| bad_input(format!("cannot write {}: {e}", path.display()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(path).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    }
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::cli::{Command, TokenCommand};
    use crate::client::tests::parse;

    #[test]
    fn token_with_an_id_prints_a_grant_token() {
        let cli = parse(&["token", "g_0123", "--out", "t.jwt"]).unwrap();
        let Command::Token(args) = cli.command else { panic!("not token: {cli:?}") };
        assert!(args.command.is_none());
        assert_eq!(args.id.as_deref(), Some("g_0123"));
        assert_eq!(args.out, Some(PathBuf::from("t.jwt")));
    }

    #[test]
    fn token_create_list_revoke_are_subcommands() {
        let cli = parse(&["token", "create", "--name", "ci", "--role", "service", "--expires-in", "720h"]).unwrap();
        let Command::Token(args) = cli.command else { panic!("not token") };
        assert!(args.id.is_none());
        let Some(TokenCommand::Create { name, role, expires_in, .. }) = args.command else { panic!("not create") };
        assert_eq!((name.as_str(), role.as_str(), expires_in.as_deref()), ("ci", "service", Some("720h")));

        let cli = parse(&["token", "list", "--json"]).unwrap();
        let Command::Token(args) = cli.command else { panic!("not token") };
        assert!(matches!(args.command, Some(TokenCommand::List { json: true, .. })));

        let cli = parse(&["token", "revoke", "tok_1", "--server", "https://bg.example"]).unwrap();
        let Command::Token(args) = cli.command else { panic!("not token") };
        let Some(TokenCommand::Revoke { id, client, .. }) = args.command else { panic!("not revoke") };
        assert_eq!((id.as_str(), client.server.as_str()), ("tok_1", "https://bg.example"));
    }

    #[test]
    fn token_needs_an_id_or_a_subcommand() {
        assert!(parse(&["token"]).is_err());
        assert!(parse(&["token", "create", "--name", "ci"]).is_err(), "--role is required");
        assert!(parse(&["token", "create", "--name", "ci", "--role", "root"]).is_err(), "unknown role");
        // A grant id and a subcommand together make no sense.
        assert!(parse(&["token", "g_1", "list"]).is_err());
    }
}
