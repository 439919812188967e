//! `grant verify`: checking a grant token offline against a key or a JWKS,
//! for a scope and capability, as a hook or CI step does.

use std::io::Read as _;
use std::time::Duration;

use breakglass_client::Client;
use breakglass_core::grant::{GrantState, parse_duration};
use breakglass_core::scope::{Capability, Scope};
use breakglass_core::token::{Expect, KeySet, MAX_TOKEN_BYTES};
use serde_json::json;

use super::{connect, now, server_url, when};
use crate::cli::{GrantCommand, GrantVerifyArgs};
use crate::error::{CliResult, bad_input, check_failed, not_found};
use crate::print_json;

pub async fn grant(cmd: GrantCommand) -> CliResult {
    match cmd {
        GrantCommand::Verify(args) => verify(*args).await,
    }
}

fn read_token(arg: &str) -> CliResult<String> {
    if arg != "-" {
        return Ok(arg.trim().to_owned());
    }
    let mut text = String::new();
    // A little over the limit, so that verify reports an oversized token as such.
    std::io::stdin()
        .take(MAX_TOKEN_BYTES as u64 + 1024)
        .read_to_string(&mut text)
        .map_err(|e| bad_input(format!("cannot read the token from standard input: {e}")))?;
    Ok(text.trim().to_owned())
}

async fn verify(args: GrantVerifyArgs) -> CliResult {
    let token = read_token(&args.token)?;
    if token.is_empty() {
        return Err(bad_input("the grant token is empty"));
    }
    let scope = Scope::parse(&args.scope).map_err(|e| bad_input(format!("--scope: {e}")))?;
    let cap = Capability::parse(&args.cap).map_err(|e| bad_input(format!("--cap: {e}")))?;
    let max_lifetime = parse_duration(&args.max_lifetime)
        .map(|ms| Duration::from_millis(ms.unsigned_abs()))
        .map_err(|e| bad_input(format!("--max-lifetime: {e}")))?;
    let server = server_url(&args.client)?;
    let (source, text) = if let Some(path) = &args.key {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => not_found(format!("key file {} not found", path.display())),
            _ => bad_input(format!("cannot read the key file {}: {e}", path.display())),
        })?;
        (path.display().to_string(), text)
    } else if let Some(url) = &args.jwks_url {
        (url.clone(), breakglass_client::fetch_jwks(url).await?)
    } else {
        let client = Client::new(&server, None)?;
        (format!("{server}/.well-known/jwks.json"), client.jwks().await?)
    };
    let keys = KeySet::parse(&text).map_err(|e| bad_input(format!("the keys from {source}: {e}")))?;
    let issuer = args.issuer.clone().unwrap_or_else(|| server.clone());
    let mut expect = Expect::new(issuer, max_lifetime).with_scope(scope).with_capability(cap);
    if let Some(principal) = &args.principal {
        expect = expect.with_principal(principal.clone());
    }
    let refuse = |why: String| {
        if args.json {
            print_json(&json!({ "valid": false, "error": why }));
        }
        check_failed(why)
    };
    let claims = match breakglass_core::token::verify(&token, &keys, &expect, now()) {
        Ok(claims) => claims,
        Err(e) => return Err(refuse(format!("the grant token is not valid: {e}"))),
    };
    let mut online = None;
    if args.also_online {
        let client = connect(&args.client)?;
        let status = client.grant_status(&claims.grant_id).await?;
        if status.state != GrantState::Active || !status.effective {
            return Err(refuse(format!(
                "the grant token verifies offline, but the server says grant {} is {}{}",
                claims.grant_id,
                status.state.as_str(),
                if status.state == GrantState::Active { " and not effective now" } else { "" }
            )));
        }
        online = Some(status);
    }
    if args.json {
        print_json(&json!({
            "valid": true,
            "claims": {
                "grant": claims.grant_id,
                "principal": claims.principal,
                "scopes": claims.scopes,
                "capabilities": claims.capabilities,
                "issuer": claims.issuer,
                "audience": claims.audience,
                "key_id": claims.key_id,
                "not_before": claims.not_before,
                "expires_at": claims.expires_at,
                "issued_at": claims.issued_at,
                "token_id": claims.token_id,
            },
            "online": online,
        }));
    } else {
        println!(
            "valid: grant {} of {} allows {} on {}",
            claims.grant_id,
            claims.principal,
            expect.capability.as_ref().map(ToString::to_string).unwrap_or_default(),
            expect.scope.as_ref().map(ToString::to_string).unwrap_or_default()
        );
        println!("expires  {}", when(claims.expires_at, now()));
        println!("key      {} (issuer {})", claims.key_id, claims.issuer);
        if online.is_some() {
            println!("online   the server says the grant is active");
        } else {
            println!("online   not checked: a revocation would not show here (use --also-online)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::client::tests::parse;

    #[test]
    fn grant_verify_key_and_jwks_url_conflict() {
        let base = ["grant", "verify", "-", "--scope", "git:a/b@refs/heads/main", "--cap", "push"];
        assert!(parse(&base).is_ok());
        let both = [&base[..], &["--key", "k.json", "--jwks-url", "https://x/jwks.json"]].concat();
        assert!(parse(&both).is_err());
        assert!(parse(&["grant", "verify", "-", "--cap", "push"]).is_err(), "--scope is required");
    }
}
