//! `breakglass drift` (issue 8): a clean setup reports nothing; each kind of
//! drift, injected, is found, with what to do about it.

use std::process::Command;

use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::hash::Hash;
use breakglass_tlog::note::NoteSigner;
use serde_json::Value;

use breakglass_testkit::git::git_ok;

use crate::git::{GitSetup, MAIN};
use crate::served::Served;
use crate::support::BIN;

pub(crate) fn drift(s: &GitSetup, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["drift", "--json"];
    args.extend(extra);
    let out = s.srv.cli("admin", &args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v)
}

pub(crate) fn kinds(v: &Value) -> Vec<String> {
    v["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_clean_setup_has_no_drift_and_each_injected_drift_is_found() {
    let s = GitSetup::new();
    let srv = &s.srv;
    let g = s.grant(MAIN, &["push"], "30m");
    // Protected refs moved the recorded ways: the merge bot created main (in
    // GitSetup::new), alice pushes under her grant, the bot creates a release branch.
    s.commit("fix.txt", "fixed\n", "hotfix", Some(&g));
    let out = s.push_as(Some("alice"), &["origin", "main"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = s.push_as(Some("merge-bot"), &["origin", "main:refs/heads/release/1"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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
    // With the hooks out of the way, main moves and a release branch appears
    // with no recorded update; an undelivered event waits in the spool.
    s.commit("sneaky.txt", "sneaky\n", "no grant, no record", None);
    let out = s.push_as(Some("mallory"), &["origin", "main", "main:refs/heads/release/2"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::create_dir_all(s.bare.join("breakglass-spool")).unwrap();
    std::fs::write(s.bare.join("breakglass-spool/0123.json"), "{}").unwrap();
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
            "ref.unrecorded",
            "ref.unrecorded",
            "repo.hook_missing",
            "repo.hook_modified",
            "repo.push_options_off",
            "repo.spool_pending",
        ],
        "{v}"
    );
    assert!(v["findings"].as_array().unwrap().iter().all(|f| !f["fix"].as_str().unwrap().is_empty()));
    // Readable output names each, and the exit status says drift.
    let out = srv.cli("admin", &["drift"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("everyone-may-push") && text.contains("fix:"), "{text}");
    let unrecorded: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "ref.unrecorded")
        .map(|f| f["subject"].as_str().unwrap())
        .collect();
    assert_eq!(unrecorded, ["payments/api@refs/heads/main", "payments/api@refs/heads/release/2"], "{v}");

    // The server's periodic check, run now: the same findings, each recorded
    // once in the log (its own view of the log is its baseline: consistent).
    let record = |s: &GitSetup| {
        let out = s.srv.cli("admin", &["drift", "--record", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), v)
    };
    let (code, v) = record(&s);
    assert_eq!(code, Some(1), "{v}");
    let mut found: Vec<String> =
        v["check"]["found"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap().to_owned()).collect();
    found.sort();
    assert_eq!(
        found,
        [
            "grant.past_expiry",
            "grant.state_mismatch",
            "policy.standing_backdoor",
            "ref.unrecorded",
            "ref.unrecorded",
            "repo.hook_missing",
            "repo.hook_modified",
            "repo.push_options_off",
            "repo.spool_pending",
        ],
        "{v}"
    );
    assert_eq!(s.events("drift.found").len(), 9);
    let (_, v) = record(&s);
    assert_eq!(v["check"]["found"].as_array().unwrap().len(), 0, "recorded once: {v}");

    // Once accounted for, reinstalling takes the refs as they are as the new
    // baseline; the hooks are back and the spool is empty: no drift left there.
    std::fs::remove_file(s.bare.join("breakglass-spool/0123.json")).unwrap();
    let install = s.install();
    assert!(install.status.success(), "{}", String::from_utf8_lossy(&install.stderr));
    let (_, v) = drift(&s, &[]);
    assert!(kinds(&v).iter().all(|k| !k.starts_with("repo.") && !k.starts_with("ref.")), "{v}");
    let (_, v) = record(&s);
    let cleared = v["check"]["cleared"].as_array().unwrap();
    assert_eq!(cleared.len(), 6, "{v}");
    assert!(cleared.iter().all(|f| f["kind"].as_str().unwrap().starts_with("re")), "{v}");
    assert_eq!(s.events("drift.cleared").len(), 6);
}

#[test]
fn the_server_checks_for_drift_when_it_starts_and_records_what_it_finds() {
    let mut srv =
        Served::start_with_config("[log]\norigin = \"e2e.breakglass.test/log\"\n\n[drift]\ninterval = \"1h\"\n");
    let line = srv.wait_for_output("drift check:");
    assert!(line.contains("0 finding(s)"), "{line}");
    std::fs::write(
        srv.data.join("policy/backdoor.cedar"),
        r#"@id("everyone-may-request") permit (principal, action == Breakglass::Action::"request", resource);"#,
    )
    .unwrap();
    srv.restart();
    let line = srv.wait_for_output("drift check:");
    assert!(line.contains("1 finding(s), 1 new"), "{line}");
    let out = Command::new(BIN).args(["audit", "tail", "--json", "--data-dir"]).arg(&srv.data).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("drift.found") && text.contains("everyone-may-request"), "{text}");
}

#[test]
fn a_deleted_protected_ref_with_no_record_is_drift() {
    let s = GitSetup::new();
    let (code, v) = drift(&s, &[]);
    assert_eq!((code, kinds(&v)), (Some(0), Vec::<String>::new()), "{v}");
    // Deleted behind the hooks' back (git update-ref runs no hooks).
    git_ok(&s.bare, &["update-ref", "-d", "refs/heads/main"]);
    let (code, v) = drift(&s, &[]);
    assert_eq!((code, kinds(&v)), (Some(1), vec!["ref.unrecorded".to_owned()]), "{v}");
    assert!(v["findings"][0]["what"].as_str().unwrap().contains("deleted"), "{v}");
}
