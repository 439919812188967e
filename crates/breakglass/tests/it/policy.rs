//! `breakglass policy check|test|explain` on the shipped example policy and
//! on broken policy directories, from the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::BIN;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../breakglass-core/policy/example")
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("BREAKGLASS_DATA_DIR").output().unwrap()
}

/// Runs and insists on the exit code; returns stdout and stderr together.
fn expect(args: &[&str], code: i32) -> String {
    let out = run(args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(code), "breakglass {args:?}: {text}");
    text
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A policy directory holding the example policy and the given extra files.
fn policy_dir(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(example().join("breakglass.cedar"), dir.path().join("breakglass.cedar")).unwrap();
    for (name, text) in extra {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn policy_commands_have_help_with_exit_codes() {
    for sub in ["check", "test", "explain"] {
        let text = expect(&["policy", sub, "--help"], 0);
        assert!(text.contains("Usage:") && text.contains("Exit codes:"), "{sub}: {text}");
    }
}

#[test]
fn check_accepts_the_example_and_names_every_broken_file() {
    let ex = example();
    assert_eq!(expect(&["policy", "check", s(&ex)], 0).trim(), "ok: 10 policies");
    let v: Value = serde_json::from_str(&expect(&["policy", "check", s(&ex), "--json"], 0)).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["policies"].as_array().unwrap().len(), 10);

    let dir = policy_dir(&[
        ("broken.cedar", "permit (principal, action, resource)\nwhen { true"),
        ("typo.cedar", "@id(\"colour\")\npermit (principal, action, resource)\nwhen { resource.colour == \"red\" };\n"),
    ]);
    let text = expect(&["policy", "check", s(dir.path())], 1);
    assert!(text.contains("broken.cedar:2:"), "{text}");
    assert!(text.contains("typo.cedar:3:") && text.contains("colour") && text.contains("not found"), "{text}");
    assert!(!text.contains("breakglass.cedar"), "the good file has no problem: {text}");
    let v: Value =
        serde_json::from_str(&String::from_utf8(run(&["policy", "check", s(dir.path()), "--json"]).stdout).unwrap())
            .unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["problems"].as_array().unwrap().len() >= 2, "{v}");

    // A bad annotation is a failed check too.
    let dir = policy_dir(&[(
        "approvals.cedar",
        "@approvals(\"two\")\npermit (principal, action == Breakglass::Action::\"request\", resource);\n",
    )]);
    let text = expect(&["policy", "check", s(dir.path())], 1);
    assert!(text.contains("approvals.cedar") && text.contains("invalid @approvals(\"two\")"), "{text}");

    // No policies at all, or no directory, is "not found".
    let empty = tempfile::tempdir().unwrap();
    assert!(expect(&["policy", "check", s(empty.path())], 3).contains("no *.cedar files"));
    expect(&["policy", "check", s(&empty.path().join("missing"))], 3);
}

#[test]
fn test_runs_the_example_table_and_fails_on_a_wrong_expectation() {
    let table = example().join("breakglass.test.toml");
    let text = expect(&["policy", "test", s(&table)], 0);
    assert!(text.contains("pass  secret scanning is never skippable") && text.contains(" 0 failed"), "{text}");
    let v: Value = serde_json::from_str(&expect(&["policy", "test", s(&table), "--json"], 0)).unwrap();
    assert_eq!(v["failed"], 0);

    let dir = policy_dir(&[]);
    let wrong = dir.path().join("wrong.test.toml");
    std::fs::write(
        &wrong,
        r#"
[[case]]
name = "on-call may request push to main"
principal = "alice"
groups = ["oncall"]
action = "request"
scope = "git:payments/api@refs/heads/main"
capability = "push"
expect = "allow"

[[case]]
name = "secret scanning is skippable (wrong)"
principal = "sam"
groups = ["sre"]
action = "skip-gate"
scope = "pipeline:payments/api/deploy@production"
capability = "skip-gate:secret-scan"
expect = "allow"
"#,
    )
    .unwrap();
    let text = expect(&["policy", "test", s(&wrong)], 1);
    assert!(text.contains("pass  on-call may request push to main"), "{text}");
    assert!(
        text.contains("FAIL  secret scanning is skippable (wrong): expected allow, got deny")
            && text.contains("secret-scan-never-skippable"),
        "{text}"
    );
    // --policies points elsewhere; a malformed table is bad input.
    expect(&["policy", "test", s(&wrong), "--policies", s(&example())], 1);
    std::fs::write(&wrong, "[[case]]\nname = \"x\"\n").unwrap();
    assert!(expect(&["policy", "test", s(&wrong)], 2).contains("wrong.test.toml"));
}

#[test]
fn explain_names_the_determining_policies() {
    let ex = example();
    let base = ["policy", "explain", "--policies", s(&ex)];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }

    let text = expect(
        &with(
            &base,
            &[
                "--principal",
                "alice",
                "--group",
                "oncall",
                "--action",
                "request",
                "--scope",
                "git:payments/api@refs/heads/main",
                "--cap",
                "push",
                "--reason",
                "INC-7",
                "--incident-severity",
                "1",
                "--responder",
            ],
        ),
        0,
    );
    assert!(text.starts_with("ALLOW\nauto-approved"), "{text}");
    assert!(
        text.contains("permitted by oncall-request-main") && text.contains("incident-responder-auto-approve"),
        "{text}"
    );

    let text = expect(
        &with(
            &base,
            &[
                "--principal",
                "sam",
                "--group",
                "sre",
                "--action",
                "skip-gate",
                "--scope",
                "pipeline:payments/api/deploy@production",
                "--cap",
                "skip-gate:secret-scan",
            ],
        ),
        0,
    );
    assert!(text.starts_with("DENY") && text.contains("forbidden by secret-scan-never-skippable"), "{text}");

    let v: Value = serde_json::from_str(&expect(
        &with(
            &base,
            &[
                "--principal",
                "carol",
                "--group",
                "approvers",
                "--action",
                "approve",
                "--scope",
                "git:payments/api@refs/heads/main",
                "--requester",
                "alice",
                "--json",
            ],
        ),
        0,
    ))
    .unwrap();
    assert_eq!(v["allowed"], true);
    assert_eq!(v["steps"][0]["determining"][0], "approvers-approve");

    let text = expect(
        &with(
            &base,
            &[
                "--principal",
                "carol",
                "--group",
                "approvers",
                "--action",
                "approve",
                "--scope",
                "git:a/b@refs/heads/main",
            ],
        ),
        0,
    );
    assert!(text.starts_with("DENY") && text.contains("cannot approve it"), "{text}");

    // Bad input: an unknown action, a bad scope, a capability of another action.
    for extra in [
        &["--principal", "a", "--action", "merge", "--scope", "git:a/b@refs/heads/main"][..],
        &["--principal", "a", "--action", "request", "--scope", "git:a/b"][..],
        &["--principal", "a", "--action", "push", "--scope", "git:a/b@refs/heads/main", "--cap", "deploy"][..],
    ] {
        expect(&with(&base, extra), 2);
    }
}
