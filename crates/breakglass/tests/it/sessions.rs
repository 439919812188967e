//! Sessions from the command line against a real `breakglass serve`:
//! `sessions`, `sessions revoke`, `logout` ending the session on the server,
//! an admin ending every session of a principal. (Issue 14, finding 3.)

use serde_json::{Value, json};

use breakglass_testkit::ssh::keygen;

use crate::served::Served;

/// The session token `who`'s credentials file holds (its `token = "bgs_…"` line).
fn stored_token(srv: &Served, who: &str) -> String {
    let text = std::fs::read_to_string(srv.path(&format!("{who}.credentials.toml"))).unwrap();
    let line = text.lines().find_map(|l| l.trim().strip_prefix("token = ")).expect("a stored session token");
    line.trim_matches('"').to_owned()
}

#[test]
fn sessions_are_listed_and_ended_from_the_cli() {
    let srv = Served::start();
    let keys = srv.path("keys");
    std::fs::create_dir(&keys).unwrap();
    let (alice_key, alice_pub) = keygen(&keys, "alice").into_parts();
    let principals = format!("[[principal]]\nname = \"alice\"\ngroups = [\"oncall\"]\nssh_keys = [\"{alice_pub}\"]\n");
    std::fs::write(srv.data.join("principals.toml"), principals).unwrap();
    srv.ok("admin", &["policy", "reload"]);
    let key = alice_key.to_str().unwrap();
    // Alice logs in from two machines (two credentials files) and a third.
    for who in ["laptop", "desktop", "phone"] {
        srv.ok(who, &["login", "--principal", "alice", "--key", key]);
    }

    let list = srv.json("laptop", &["sessions"]);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{list}");
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let table = srv.ok("laptop", &["sessions"]);
    assert!(table.contains("PRINCIPAL") && table.contains(" *"), "{table}");

    // From the laptop, end the desktop's session: the desktop is out at once.
    let desktop = srv.json("desktop", &["sessions"])["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ended = srv.json("laptop", &["sessions", "revoke", &desktop]);
    assert_eq!(ended["ended"][0]["id"], desktop.as_str(), "{ended}");
    srv.refused("desktop", &["whoami"], 1, "revoked");

    // Logout ends the session on the server, not only here: a copy of the
    // token is worthless afterwards.
    let copy = stored_token(&srv, "laptop");
    assert_eq!(srv.http("GET", "/v1/whoami", &copy, &json!({})).0, 200);
    let out = srv.json("laptop", &["logout"]);
    assert_eq!(out["ended_on_server"], true, "{out}");
    assert_eq!(srv.http("GET", "/v1/whoami", &copy, &json!({})).0, 401);

    // Only an admin ends all of a principal's sessions.
    srv.refused("phone", &["sessions", "revoke", "--principal", "alice"], 1, "admin");
    let ended = srv.json("admin", &["sessions", "revoke", "--principal", "alice"]);
    assert_eq!(ended["ended"].as_array().unwrap().len(), 1, "only the phone's was left: {ended}");
    srv.refused("phone", &["whoami"], 1, "");
    let all = srv.json("admin", &["sessions", "--principal", "alice", "--all"]);
    assert!(all["sessions"].as_array().unwrap().iter().all(|s| s["state"] == "ended"), "{all}");

    // A server that cannot be reached: logout fails and says how to forget the session anyway.
    srv.ok("laptop", &["login", "--principal", "alice", "--key", key]);
    let mut srv = srv;
    srv.stop();
    let out = srv.cli("laptop", &["logout"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("breakglass logout --local --server"), "{err}");
    let hint = err.lines().find_map(|l| l.split("here only: ").nth(1)).unwrap().to_owned();
    let args: Vec<&str> = hint.split_whitespace().skip(1).collect();
    // The printed command runs as printed.
    let out = srv.cli("laptop", &args);
    assert!(out.status.success(), "{hint}: {}", String::from_utf8_lossy(&out.stderr));
}
