//! `breakglass bench core`: the in-process decisions every request pays
//! for: offline grant-token verification and policy decisions.

use std::time::Duration;

use serde_json::json;

use super::measure::time_us;
use crate::error::{CliResult, internal};
use crate::print_json;

pub fn core(iterations: u32, as_json: bool) -> CliResult {
    use breakglass_core::policy::{ContextInput, EXAMPLE_POLICY, Policy, RequestInput};
    use breakglass_core::scope::{Capability, Scope};
    use breakglass_core::time::Timestamp;
    use breakglass_core::token::{Expect, IssueRequest, KeySet, TokenSigner, verify};

    let now = Timestamp(1_795_262_400_000);
    let scope = Scope::parse("git:payments/api@refs/heads/main").map_err(|e| internal(e.to_string()))?;
    let signer = TokenSigner::from_seed(&[7; 32]);
    let token = signer
        .issue(
            &IssueRequest {
                issuer: "https://breakglass.example".into(),
                principal: "alice".into(),
                grant_id: "g_bench".into(),
                scopes: vec![scope.to_string()],
                capabilities: vec!["push".into()],
                activated_at: now,
                expires_at: Timestamp(now.0 + 30 * 60_000),
                token_id: "0123456789abcdef".into(),
            },
            now,
        )
        .map_err(|e| internal(e.to_string()))?;
    let keys = KeySet::new([signer.public_key().clone()]).map_err(|e| internal(e.to_string()))?;
    let expect = Expect::new("https://breakglass.example", Duration::from_secs(4 * 3600))
        .with_principal("alice")
        .with_scope(scope.clone())
        .with_capability(Capability::Push);
    let at = Timestamp(now.0 + 60_000);
    let token_figures = time_us(iterations, || verify(&token, &keys, &expect, at).is_ok())?;

    let policy = Policy::load(&[("breakglass.cedar".to_owned(), EXAMPLE_POLICY.to_owned())])
        .map_err(|e| internal(format!("the example policy does not load: {e}")))?;
    let groups = vec!["oncall".to_owned()];
    let ctx = ContextInput {
        requester: "alice".into(),
        duration_ms: 30 * 60_000,
        reason: "INC-42".into(),
        now,
        ..ContextInput::default()
    };
    let decide_figures = time_us(iterations, || policy.decide("alice", &groups, "push", &scope, &ctx).allowed)?;
    let request = RequestInput {
        principal: "alice".into(),
        groups: groups.clone(),
        scopes: vec![scope.clone()],
        capabilities: vec![Capability::Push],
        duration_ms: 30 * 60_000,
        reason: "INC-42".into(),
        incident: None,
        overdue_reviews: 0,
        now,
        pending_ttl_ms: 15 * 60_000,
    };
    let request_figures = time_us(iterations, || policy.decide_request(&request).allowed)?;
    let figures = json!({
        "iterations": iterations,
        "token_verify": token_figures,
        "policy_decide": decide_figures,
        "policy_decide_request_1x1": request_figures,
    });
    if as_json {
        print_json(&figures);
    } else {
        let line = |name: &str, v: &serde_json::Value| {
            println!("  {name}: p50 {} us, p99 {} us, mean {} us", v["p50_us"], v["p99_us"], v["mean_us"]);
        };
        println!("core benchmark ({iterations} iterations each)");
        line("offline grant-token verification", &figures["token_verify"]);
        line("one policy decision (push on a git scope)", &figures["policy_decide"]);
        line("a whole request decision (1 scope x 1 capability)", &figures["policy_decide_request_1x1"]);
    }
    Ok(())
}
