//! `breakglass drift` (issue 8): a clean setup reports nothing; each kind of
//! drift, injected, is found, with what to do about it.

use std::process::Command;

use breakglass_core::checkpoint::Checkpoint;
use breakglass_core::hash::Hash;
use breakglass_core::note::NoteSigner;
use serde_json::Value;

use crate::git::{GitSetup, MAIN, git_ok};
use crate::support::BIN;

fn drift(s: &GitSetup, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["drift", "--json"];
    args.extend(extra);
    let out = s.srv.cli("admin", &args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v)
}

fn kinds(v: &Value) -> Vec<String> {
    v["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_clean_setup_has_no_drift_and_each_injected_drift_is_found() {
    let s = GitSetup::new();
    let srv = &s.srv;
    let g = s.grant(MAIN, &["push"], "30m");
    srv.advance_clock(31 * 60_000);

    // A checkpoint saved now, and the log's key.
    let key = String::from_utf8(
        Command::new(BIN).args(["audit", "key", "--data-dir"]).arg(&srv.data).output().unwrap().stdout,
    )
    .unwrap();
    let key = key.lines().find(|l| l.contains('+')).unwrap_or(key.trim()).trim().to_owned();
    let saved = srv.path("saved-checkpoint");
    let out = Command::new(BIN).args(["audit", "checkpoint", "--data-dir"]).arg(&srv.data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&saved, &out.stdout).unwrap();

    let (code, v) = drift(&s, &["--checkpoint", saved.to_str().unwrap(), "--key", &key]);
    assert_eq!((code, kinds(&v)), (Some(0), Vec::<String>::new()), "{v}");
    // The log grows; it still extends the saved checkpoint.
    s.grant(MAIN, &["push"], "30m");
    let (code, _) = drift(&s, &["--checkpoint", saved.to_str().unwrap(), "--key", &key]);
    assert_eq!(code, Some(0));

    // Hooks: one removed, one changed; push options off.
    let hooks = s.bare.join("hooks");
    std::fs::rename(hooks.join("post-receive"), srv.path("post-receive.removed")).unwrap();
    let pre = std::fs::read_to_string(hooks.join("pre-receive")).unwrap();
    std::fs::write(hooks.join("pre-receive"), pre.replacen("\n", "\nexit 0\n", 1)).unwrap();
    git_ok(&s.bare, &["config", "receive.advertisePushOptions", "false"]);
    // Policy: a standing backdoor.
    std::fs::write(
        srv.data.join("policy/backdoor.cedar"),
        r#"@id("everyone-may-push") permit (principal, action in [Breakglass::Action::"request", Breakglass::Action::"push"], resource);"#,
    )
    .unwrap();
    srv.ok("admin", &["policy", "reload"]);
    // The database edited behind breakglass's back: an expired grant stored active again.
    let db = srv.data.join("breakglass.db");
    let sql = format!("UPDATE state_objects SET status = 'active', due = 1 WHERE kind = 'grant' AND id = '{g}'");
    let out = Command::new("python3")
        .args([
            "-c",
            &format!("import sqlite3; c = sqlite3.connect({:?}); c.execute({sql:?}); c.commit()", db.to_str().unwrap()),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A "saved" checkpoint the log does not extend (signed with the log's own key, another root).
    let signer = NoteSigner::parse(std::fs::read_to_string(srv.data.join("log-signing.key")).unwrap().trim()).unwrap();
    let size: u64 = std::fs::read_to_string(&saved).unwrap().lines().nth(1).unwrap().parse().unwrap();
    let forged = Checkpoint { origin: signer.name().to_owned(), size, root: Hash([7; 32]) }.sign(&signer).unwrap();
    let forged_file = srv.path("forged-checkpoint");
    std::fs::write(&forged_file, forged).unwrap();

    let (code, v) = drift(&s, &["--checkpoint", forged_file.to_str().unwrap(), "--key", &key]);
    assert_eq!(code, Some(1), "{v}");
    let mut found = kinds(&v);
    found.sort();
    assert_eq!(
        found,
        [
            "grant.past_expiry",
            "grant.state_mismatch",
            "log.inconsistent",
            "policy.standing_backdoor",
            "policy.standing_backdoor",
            "repo.hook_missing",
            "repo.hook_modified",
            "repo.push_options_off",
        ],
        "{v}"
    );
    assert!(v["findings"].as_array().unwrap().iter().all(|f| !f["fix"].as_str().unwrap().is_empty()));
    // Readable output names each, and the exit status says drift.
    let out = srv.cli("admin", &["drift"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("everyone-may-push") && text.contains("fix:"), "{text}");
}
