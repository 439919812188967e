//! Incident-triggered approval end to end (issue 6): a real `breakglass
//! serve` receives a PagerDuty v3 webhook (the fixture's documented shape,
//! signed with HMAC-SHA256 as PagerDuty signs) over real HTTP; alice, its
//! responder, gets access at once through the CLI, bob waits for a human;
//! the incident resolves and alice's grant ends. Notifications reach a real
//! HTTP receiver, and a server killed mid-delivery loses none of them.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use breakglass_testkit::fixtures::incident_text as fixture;
use breakglass_testkit::ssh::keygen;

use crate::served::Served;

#[path = "../../../breakglass-server/tests/it/receiver.rs"]
mod receiver;
use receiver::Receiver;

const PD_SECRET: &str = "pagerduty-e2e-secret-0123456789";
const WEBHOOK_SECRET: &str = "webhook-e2e-secret-0123456789";
const MAIN: &str = "git:payments/api@refs/heads/main";

/// A PagerDuty delivery as PagerDuty sends it: the fixture with its times
/// moved to `at` (the server's clock), signed over the exact bytes.
fn pagerduty(srv: &Served, name: &str, at_ms: i64) -> (u16, Value) {
    let at = time_rfc3339(at_ms);
    let body = fixture(name)
        .replace("2021-03-04T10:00:00.000Z", &at)
        .replace("2021-03-04T11:00:00.000Z", &at)
        .replace("2021-03-04T10:03:00.000Z", &at);
    let mut mac = Hmac::<Sha256>::new_from_slice(PD_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let sig = format!("v1={}", hex(&mac.finalize().into_bytes()));
    post_raw(srv, "/v1/incidents/pagerduty", &[("X-PagerDuty-Signature", &sig)], body.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn time_rfc3339(ms: i64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{}", ms / 1000), "+%Y-%m-%dT%H:%M:%S.000Z"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn post_raw(srv: &Served, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let addr = srv.url.trim_start_matches("http://");
    let (status, body) = breakglass_testkit::http::request(addr, "POST", path, headers, Some(body));
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn start(receiver: &Receiver) -> (Served, std::path::PathBuf, std::path::PathBuf) {
    let config = format!(
        "[log]\norigin = \"e2e.breakglass.test/log\"\n\n\
         [incidents]\npagerduty_secrets = [\"{PD_SECRET}\"]\nresolve_grace = \"5m\"\n\n\
         [notify]\nexpiring_soon = \"0\"\n\n\
         [[notify.webhook]]\nname = \"ops\"\nurl = \"{}/hook\"\nsecret = \"{WEBHOOK_SECRET}\"\n",
        receiver.url
    );
    let srv = Served::start_with_config(&config);
    let keydir = srv.path("keys");
    std::fs::create_dir(&keydir).unwrap();
    let (alice_key, alice_pub) = keygen(&keydir, "alice").into_parts();
    let (bob_key, bob_pub) = keygen(&keydir, "bob").into_parts();
    let (_, carol_pub) = keygen(&keydir, "carol").into_parts();
    std::fs::write(
        srv.data.join("principals.toml"),
        format!(
            "[[principal]]\nname = \"alice\"\ngroups = [\"oncall\"]\nssh_keys = [\"{alice_pub}\"]\naccounts = [\"pagerduty:PALICE1\"]\n\n\
             [[principal]]\nname = \"bob\"\ngroups = [\"oncall\"]\nssh_keys = [\"{bob_pub}\"]\n\n\
             [[principal]]\nname = \"carol\"\ngroups = [\"approvers\"]\nssh_keys = [\"{carol_pub}\"]\n"
        ),
    )
    .unwrap();
    srv.ok("admin", &["policy", "reload"]);
    (srv, alice_key, bob_key)
}

fn events_of(got: &[receiver::Received]) -> Vec<(String, String)> {
    got.iter()
        .map(|r| {
            let v: Value = serde_json::from_str(&r.body).unwrap();
            (v["event"].as_str().unwrap().to_owned(), r.headers["x-breakglass-delivery"].clone())
        })
        .collect()
}

#[test]
fn a_pagerduty_incident_approves_its_responder_at_once_and_its_resolution_ends_the_grant() {
    let receiver = Receiver::start();
    let (srv, alice_key, bob_key) = start(&receiver);
    srv.ok("alice", &["login", "--principal", "alice", "--key", alice_key.to_str().unwrap()]);
    srv.ok("bob", &["login", "--principal", "bob", "--key", bob_key.to_str().unwrap()]);

    // A mis-signed delivery is refused and stores nothing.
    let (status, v) = post_raw(&srv, "/v1/incidents/pagerduty", &[("X-PagerDuty-Signature", "v1=00ff")], b"{}");
    assert_eq!(status, 401, "{v}");
    assert!(srv.json("admin", &["incidents"])["incidents"].as_array().unwrap().is_empty());

    // PagerDuty opens the incident, naming alice (PALICE1) as assignee.
    let mut clock = now_ms();
    let (status, r) = pagerduty(&srv, "pagerduty-incident-triggered.json", clock);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["recorded"][0], "pagerduty:PBGINC1");
    let inc = srv.json("admin", &["incidents", "show", "PBGINC1"]);
    assert_eq!((inc["severity"].as_i64(), inc["status"].as_str()), (Some(1), Some("triggered")));
    assert_eq!(inc["responders"][0]["principal"], "alice");

    // alice responds: active at once, no human in the loop.
    let g =
        srv.json("alice", &["request", "--scope", MAIN, "--cap", "push", "--for", "60m", "--reason", "PBGINC1 fix"]);
    assert_eq!((g["state"].as_str(), g["incident"].as_str()), (Some("active"), Some("pagerduty:PBGINC1")), "{g}");
    let alice_grant = g["id"].as_str().unwrap().to_owned();
    // bob is on call but not a responder: he waits for an approver.
    let g = srv.json("bob", &["request", "--scope", MAIN, "--cap", "push", "--for", "60m", "--reason", "helping"]);
    assert_eq!(g["state"], "pending", "{g}");

    // The incident resolves: alice's grant ends after the 5-minute grace.
    srv.advance_clock(10 * 60_000);
    clock += 10 * 60_000;
    let (status, r) = pagerduty(&srv, "pagerduty-incident-resolved.json", clock);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["ending_grants"][0].as_str(), Some(alice_grant.as_str()), "{r}");
    srv.advance_clock(5 * 60_000);
    let g = srv.json("alice", &["show", &alice_grant]);
    assert_eq!(g["state"], "expired", "{g}");
    assert!(g["end_reason"].as_str().unwrap().contains("incident pagerduty:PBGINC1 resolved"), "{g}");
    // A captured delivery replayed 45 minutes later is refused.
    let (status, _) = pagerduty(&srv, "pagerduty-incident-resolved.json", clock - 30 * 60_000);
    assert_eq!(status, 401, "a delivery 45 minutes old is a replay");

    // The log has it all, and verifies.
    let tail = srv.ok("admin", &["audit", "tail", "--data-dir", srv.data.to_str().unwrap(), "-n", "50"]);
    for kind in ["incident.opened", "incident.resolved", "grant.ending", "grant.expired"] {
        assert!(tail.contains(kind), "{kind} missing from:\n{tail}");
    }
    srv.ok("admin", &["audit", "verify", "--data-dir", srv.data.to_str().unwrap()]);

    // Notifications: bob's request to the approvers, alice's activation, and
    // the end because the incident resolved; each delivered once here.
    let got = receiver.wait_for(3);
    let events: Vec<String> = events_of(&got).into_iter().map(|(e, _)| e).collect();
    for e in ["activated", "requested", "incident_resolved_ended"] {
        assert!(events.contains(&e.to_owned()), "{e} not in {events:?}");
    }
    assert!(receiver.received().iter().all(|r| r.path == "/hook"));
    let requested = got.iter().find(|r| r.body.contains("\"requested\"")).unwrap();
    let v: Value = serde_json::from_str(&requested.body).unwrap();
    assert_eq!(v["approvers"], serde_json::json!(["carol"]), "{v}");
}

#[test]
fn a_server_killed_mid_delivery_delivers_again_with_the_same_id() {
    let receiver = Receiver::start();
    let (mut srv, alice_key, _) = start(&receiver);
    srv.ok("alice", &["login", "--principal", "alice", "--key", alice_key.to_str().unwrap()]);
    // The receiver takes the first delivery and never answers.
    receiver.fail_next(&[0]);
    let g = srv.json("alice", &["request", "--scope", MAIN, "--cap", "push", "--for", "30m", "--reason", "INC-1"]);
    assert_eq!(g["state"], "pending");
    let first = receiver.wait_for(1);
    // The server dies while it waits for the answer.
    srv.stop();
    srv.restart();
    let pending = srv.json("admin", &["notifications", "--status", "pending"]);
    assert_eq!(pending["notifications"].as_array().unwrap().len(), 1, "{pending}");
    // Its claim runs out after a minute; then it is delivered again.
    srv.advance_clock(61_000);
    let got = receiver.wait_for(2);
    let ids: Vec<String> = events_of(&got).into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids[0], ids[1], "the same idempotency id");
    assert_eq!(first[0].body.len(), got[1].body.len());
    // The server records the delivery once the receiver answered: wait for
    // that (an event; the bound only turns a hang into a failure).
    let delivered = (0..500)
        .map(|_| srv.json("admin", &["notifications", "--status", "delivered"]))
        .find(|v| !v["notifications"].as_array().unwrap().is_empty())
        .expect("the notification is recorded as delivered");
    assert_eq!(delivered["notifications"][0]["attempts"], 2, "{delivered}");
    assert!(srv.ok("admin", &["notifications"]).contains("delivered"));
}
