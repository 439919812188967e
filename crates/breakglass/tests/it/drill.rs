//! `breakglass drill` (issue 8): the whole event in a sandbox passes, and a
//! broken sandbox fails at the step that is broken, saying why.

use std::process::Command;

use serde_json::Value;

use crate::support::BIN;

fn drill(args: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(BIN)
        .arg("drill")
        .args(args)
        .arg("--json")
        .env_remove("BREAKGLASS_DATABASE_URL")
        .env_remove("BREAKGLASS_SERVER")
        .env_remove("BREAKGLASS_TOKEN")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_drill_passes_every_step_in_its_sandbox() {
    let (code, v, err) = drill(&[]);
    assert_eq!(code, Some(0), "{err}\n{v}");
    let steps: Vec<&str> = v["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "sandbox",
            "repository with hooks",
            "incident arrives",
            "login (ssh-keygen -Y sign)",
            "request, approved by the incident",
            "grant token",
            "protected push, tagged commit",
            "CI gate relaxed",
            "expiry (clock moved 31m)",
            "same push refused again",
            "review opened",
            "log verified",
        ]
    );
    assert!(v["steps"].as_array().unwrap().iter().all(|s| s["ok"] == true && s["ms"].as_f64().unwrap() >= 0.0));
    assert_eq!(v["ok"], true);
}

#[test]
fn a_broken_sandbox_fails_the_drill_at_the_broken_step() {
    for (fault, step, needle) in [
        ("hooks-removed", "same push refused again", "are the hooks installed?"),
        ("policy-denies", "request, approved by the incident", "forbidden by drill-fault-deny-everything"),
    ] {
        let (code, v, err) = drill(&["--fault", fault]);
        assert_eq!(code, Some(1), "{fault}: {err}");
        assert_eq!(v["ok"], false);
        let last = v["steps"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((last["step"].as_str(), last["ok"].as_bool()), (Some(step), Some(false)), "{fault}: {v}");
        assert!(err.contains(step) && err.contains(needle), "{fault}: {err}");
    }
}
