//! Incident webhooks (`breakglass_core::incident`): signature and token
//! checks as tables, every fixture in `tests/fixtures/incidents/` parsed to
//! its full normalised update, and malformed or hostile bodies refused with a
//! message that names the field.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use breakglass_core::incident::{
    AlertmanagerOptions, AuthError, IncidentStatus, IncidentUpdate, MAX_BODY_BYTES, ParseError, Responder, Source,
    check_fresh, parse_alertmanager, parse_generic, parse_opsgenie, parse_pagerduty, sign_generic, verify_bearer,
    verify_generic, verify_opsgenie, verify_pagerduty,
};
use breakglass_core::time::Timestamp;
use breakglass_testkit::fixtures::incident as fixture;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// 2021-03-04T10:00:00Z, when the fixtures' incident starts.
const T0: i64 = 1_614_852_000_000;
const MINUTE: i64 = 60_000;

fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// PagerDuty's v1 signature, computed here without the module.
fn pd_sig(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The name of an [`AuthError`] variant, so tables can say which is expected.
fn auth_kind(e: &AuthError) -> &'static str {
    match e {
        AuthError::NotConfigured => "NotConfigured",
        AuthError::Missing(_) => "Missing",
        AuthError::Malformed(_) => "Malformed",
        AuthError::NoSupportedSignature { .. } => "NoSupportedSignature",
        AuthError::WrongScheme { .. } => "WrongScheme",
        AuthError::BadSignature => "BadSignature",
        AuthError::BadCredentials => "BadCredentials",
        AuthError::Stale { .. } => "Stale",
        AuthError::FromTheFuture { .. } => "FromTheFuture",
    }
}

/// Checks one authentication outcome: `want` is "ok" or a variant name. A
/// refusal's message must not repeat any of `secrets`.
fn check_auth(name: &str, got: Result<(), AuthError>, want: &str, secrets: &[&str]) {
    match got {
        Ok(()) => assert_eq!(want, "ok", "{name}: accepted, expected {want}"),
        Err(e) => {
            let msg = e.to_string();
            assert_eq!(auth_kind(&e), want, "{name}: {msg}");
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                assert!(!msg.contains(secret), "{name}: message repeats a secret: {msg}");
            }
            assert!(msg.len() < 400, "{name}: message too long ({} bytes)", msg.len());
        }
    }
}

// ---------------------------------------------------------------------------
// PagerDuty signatures
// ---------------------------------------------------------------------------

/// (name, X-PagerDuty-Signature, body, configured secrets, "ok" or the error).
type PdCase<'a> = (&'a str, Option<String>, &'a [u8], &'a [Vec<u8>], &'a str);

const PD_OLD: &[u8] = b"pd-secret-old-0123456789";
const PD_NEW: &[u8] = b"pd-secret-new-9876543210";
const PD_WRONG: &[u8] = b"pd-secret-someone-else";

#[test]
fn pagerduty_signatures() {
    let body = fixture("pagerduty-incident-triggered.json");
    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'P').unwrap();
    tampered[at] = b'Q';
    let old = pd_sig(PD_OLD, &body);
    let new = pd_sig(PD_NEW, &body);
    let wrong = pd_sig(PD_WRONG, &body);
    let empty_key = pd_sig(b"", &body);
    let both = vec![PD_OLD.to_vec(), PD_NEW.to_vec()];
    let only_new = vec![PD_NEW.to_vec()];
    let empty_and_new = vec![vec![], PD_NEW.to_vec()];
    let only_empty = vec![vec![]];
    let hex_of = |sig: &str| sig.trim_start_matches("v1=").to_owned();
    let too_many = vec![new.clone(); 17].join(",");
    let too_long = format!("{new},{}", "v2=0".repeat(1100));

    #[rustfmt::skip]
    let cases: Vec<PdCase> = vec![
        ("one v1, right secret", Some(new.clone()), &body, &only_new, "ok"),
        ("rotation here: signed with the new secret", Some(new.clone()), &body, &both, "ok"),
        ("rotation here: signed with the old secret", Some(old.clone()), &body, &both, "ok"),
        ("rotation there: two v1, only the second matches", Some(format!("{wrong},{new}")), &body, &only_new, "ok"),
        ("rotation there: two v1, only the first matches", Some(format!("{new},{wrong}")), &body, &only_new, "ok"),
        ("spaces after commas", Some(format!("{wrong}, {new}")), &body, &only_new, "ok"),
        ("unknown version skipped", Some(format!("v2=abc,{new}")), &body, &only_new, "ok"),
        ("upper-case hex", Some(format!("v1={}", hex_of(&new).to_uppercase())), &body, &only_new, "ok"),
        ("wrong secret", Some(wrong.clone()), &body, &only_new, "BadSignature"),
        ("two v1, neither matches", Some(format!("{wrong},{old}")), &body, &only_new, "BadSignature"),
        ("tampered body (one byte)", Some(new.clone()), &tampered, &only_new, "BadSignature"),
        ("empty configured secret is ignored", Some(empty_key.clone()), &body, &empty_and_new, "BadSignature"),
        ("missing header", None, &body, &only_new, "Missing"),
        ("empty header", Some(String::new()), &body, &only_new, "Malformed"),
        ("blank header", Some("  ".into()), &body, &only_new, "Malformed"),
        ("v1=zz", Some("v1=zz".into()), &body, &only_new, "Malformed"),
        ("v1 with 63 hex digits", Some(format!("v1={}", &hex_of(&new)[1..])), &body, &only_new, "Malformed"),
        ("v1 empty", Some("v1=".into()), &body, &only_new, "Malformed"),
        ("no '='", Some(hex_of(&new)), &body, &only_new, "Malformed"),
        ("empty version", Some(format!("={}", hex_of(&new))), &body, &only_new, "Malformed"),
        ("empty entry", Some(format!("{new},")), &body, &only_new, "Malformed"),
        ("bad v1 next to a good one", Some(format!("{new},v1=zz")), &body, &only_new, "Malformed"),
        ("only v2", Some("v2=00112233".into()), &body, &only_new, "NoSupportedSignature"),
        ("versions are case-sensitive", Some(format!("V1={}", hex_of(&new))), &body, &only_new, "NoSupportedSignature"),
        ("more than 16 entries", Some(too_many), &body, &only_new, "Malformed"),
        ("header longer than 4096 bytes", Some(too_long), &body, &only_new, "Malformed"),
        ("no secret configured", Some(new.clone()), &body, &[], "NotConfigured"),
        ("only an empty secret configured", Some(empty_key), &body, &only_empty, "NotConfigured"),
    ];
    for (name, header, body, secrets, want) in cases {
        let got = verify_pagerduty(header.as_deref(), body, secrets);
        check_auth(name, got, want, &[&hex_of(&new), &hex_of(&old), "pd-secret"]);
    }
}

/// A known answer computed with `openssl dgst -sha256 -hmac`, so the check is
/// not only consistent with itself.
#[test]
fn pagerduty_signature_known_answer() {
    let header = "v1=4e13e4c2f7eecd95bbdc0cdfddbf2958146e3bf07b041fa9f3add3f5ea1aa59b";
    let body = br#"{"event":{"id":"x"}}"#;
    assert_eq!(verify_pagerduty(Some(header), body, &[b"pd-secret-old".to_vec()]), Ok(()));
    assert_eq!(
        verify_pagerduty(Some(header), b"{\"event\":{\"id\":\"y\"}}", &[b"pd-secret-old".to_vec()]),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn not_configured_says_so() {
    let msg = verify_pagerduty(Some("v1=00"), b"{}", &[]).unwrap_err().to_string();
    assert!(msg.contains("not configured"), "{msg}");
    let msg = verify_bearer(Some("Bearer x"), &[]).unwrap_err().to_string();
    assert!(msg.contains("not configured"), "{msg}");
}

// ---------------------------------------------------------------------------
// Freshness
// ---------------------------------------------------------------------------

#[test]
fn freshness() {
    let now = Timestamp(T0 + 10 * MINUTE);
    let max = 5 * MINUTE;
    #[rustfmt::skip]
    let cases: Vec<(&str, Option<Timestamp>, &str)> = vec![
        ("just now", Some(now), "ok"),
        ("at the limit, past", Some(Timestamp(now.0 - max)), "ok"),
        ("at the limit, future", Some(Timestamp(now.0 + max)), "ok"),
        ("one ms too old", Some(Timestamp(now.0 - max - 1)), "Stale"),
        ("one ms too far ahead", Some(Timestamp(now.0 + max + 1)), "FromTheFuture"),
        ("the fixtures' time", Some(Timestamp(T0 - 365 * 24 * 60 * MINUTE)), "Stale"),
        ("missing", None, "Missing"),
        ("the earliest time there is", Some(Timestamp(i64::MIN)), "Stale"),
        ("the latest time there is", Some(Timestamp(i64::MAX)), "FromTheFuture"),
    ];
    for (name, at, want) in cases {
        check_auth(name, check_fresh(at, now, max), want, &[]);
    }
    assert_eq!(
        check_fresh(Some(Timestamp(now.0 - 3_600_000)), now, max),
        Err(AuthError::Stale { age_secs: 3600, max_secs: 300 })
    );
    assert_eq!(
        check_fresh(Some(Timestamp(now.0 + 600_000)), now, max),
        Err(AuthError::FromTheFuture { ahead_secs: 600, max_secs: 300 })
    );
}

#[test]
fn pagerduty_replay_guard_uses_the_parsed_time() {
    let body = fixture("pagerduty-incident-triggered.json");
    let update = parse_pagerduty(&body).unwrap().unwrap();
    // Signed, but long ago: a replay.
    assert!(matches!(
        check_fresh(update.occurred_at, Timestamp(T0 + 3_600_000), 5 * MINUTE),
        Err(AuthError::Stale { .. })
    ));
    // The same body with a fresh time (what the server's tests do).
    let fresh = String::from_utf8(body).unwrap().replace("2021-03-04T10:00:00.000Z", "2021-03-04T11:00:00.000Z");
    let update = parse_pagerduty(fresh.as_bytes()).unwrap().unwrap();
    assert_eq!(check_fresh(update.occurred_at, Timestamp(T0 + 3_600_000 + 1_000), 5 * MINUTE), Ok(()));
}

// ---------------------------------------------------------------------------
// Generic signatures
// ---------------------------------------------------------------------------

/// (name, X-Breakglass-Timestamp, X-Breakglass-Signature, body, configured
/// secrets, "ok" or the error).
type GenericCase<'a> = (&'a str, Option<String>, Option<String>, &'a [u8], &'a [Vec<u8>], &'a str);

const GEN_SECRET: &[u8] = b"generic-secret-current";
const GEN_OLD: &[u8] = b"generic-secret-previous";

#[test]
fn generic_signatures() {
    let body = fixture("generic-triggered.json");
    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'1').unwrap();
    tampered[at] = b'2';
    let now_s = T0 / 1000 + 3600;
    let now = Timestamp(now_s * 1000);
    let tol = 5 * MINUTE;
    let sig = |secret: &[u8], ts: i64| sign_generic(secret, ts, &body);
    let current = vec![GEN_SECRET.to_vec()];
    let both = vec![GEN_OLD.to_vec(), GEN_SECRET.to_vec()];
    let ts = |t: i64| Some(t.to_string());

    #[rustfmt::skip]
    let cases: Vec<GenericCase> = vec![
        ("valid", ts(now_s), Some(sig(GEN_SECRET, now_s)), &body, &current, "ok"),
        ("rotation here: old secret still accepted", ts(now_s), Some(sig(GEN_OLD, now_s)), &body, &both, "ok"),
        ("rotation there: two v1, one matches", ts(now_s), Some(format!("{},{}", sig(b"other", now_s), sig(GEN_SECRET, now_s))), &body, &current, "ok"),
        ("at the tolerance, past", ts(now_s - 300), Some(sig(GEN_SECRET, now_s - 300)), &body, &current, "ok"),
        ("at the tolerance, future", ts(now_s + 300), Some(sig(GEN_SECRET, now_s + 300)), &body, &current, "ok"),
        ("replay: one second too old", ts(now_s - 301), Some(sig(GEN_SECRET, now_s - 301)), &body, &current, "Stale"),
        ("replay: an hour old", ts(now_s - 3600), Some(sig(GEN_SECRET, now_s - 3600)), &body, &current, "Stale"),
        ("future: one second too far", ts(now_s + 301), Some(sig(GEN_SECRET, now_s + 301)), &body, &current, "FromTheFuture"),
        ("future: an hour ahead", ts(now_s + 3600), Some(sig(GEN_SECRET, now_s + 3600)), &body, &current, "FromTheFuture"),
        ("timestamp moved after signing", ts(now_s), Some(sig(GEN_SECRET, now_s - 1)), &body, &current, "BadSignature"),
        ("wrong secret", ts(now_s), Some(sig(b"someone-else", now_s)), &body, &current, "BadSignature"),
        ("tampered body", ts(now_s), Some(sig(GEN_SECRET, now_s)), &tampered, &current, "BadSignature"),
        ("forged and stale: told only the signature", ts(now_s - 3600), Some(sig(b"someone-else", now_s - 3600)), &body, &current, "BadSignature"),
        ("timestamp not a number", Some("yesterday".into()), Some(sig(GEN_SECRET, now_s)), &body, &current, "Malformed"),
        ("timestamp negative", Some("-5".into()), Some(sig(GEN_SECRET, -5)), &body, &current, "Malformed"),
        ("timestamp fractional", Some(format!("{now_s}.5")), Some(sig(GEN_SECRET, now_s)), &body, &current, "Malformed"),
        ("timestamp in milliseconds", ts(now_s * 1000), Some(sig(GEN_SECRET, now_s * 1000)), &body, &current, "Malformed"),
        ("timestamp empty", Some(String::new()), Some(sig(GEN_SECRET, now_s)), &body, &current, "Malformed"),
        ("timestamp missing", None, Some(sig(GEN_SECRET, now_s)), &body, &current, "Missing"),
        ("signature missing", ts(now_s), None, &body, &current, "Missing"),
        ("signature v1=zz", ts(now_s), Some("v1=zz".into()), &body, &current, "Malformed"),
        ("signature only v0", ts(now_s), Some("v0=abcd".into()), &body, &current, "NoSupportedSignature"),
        ("no secret configured", ts(now_s), Some(sig(GEN_SECRET, now_s)), &body, &[], "NotConfigured"),
    ];
    for (name, ts_header, sig_header, body, secrets, want) in cases {
        let got = verify_generic(ts_header.as_deref(), sig_header.as_deref(), body, secrets, now, tol);
        let sig_hex = sig(GEN_SECRET, now_s).trim_start_matches("v1=").to_owned();
        check_auth(name, got, want, &[&sig_hex, "generic-secret"]);
    }
}

#[test]
fn generic_signature_known_answer() {
    // printf '1614852000.{"id":"INC-1"}' | openssl dgst -sha256 -hmac generic-secret
    let expected = "v1=3e9e1f9775f83c2d9cde4cad815da45ec9dc1d2c9c5cf12809a32e2a271806f8";
    assert_eq!(sign_generic(b"generic-secret", 1_614_852_000, br#"{"id":"INC-1"}"#), expected);
    let ok = verify_generic(
        Some("1614852000"),
        Some(expected),
        br#"{"id":"INC-1"}"#,
        &[b"generic-secret".to_vec()],
        Timestamp(T0 + 1000),
        MINUTE,
    );
    assert_eq!(ok, Ok(()));
}

// ---------------------------------------------------------------------------
// Bearer tokens (Alertmanager) and Opsgenie's Authorization header
// ---------------------------------------------------------------------------

#[test]
fn bearer_tokens() {
    let expected = vec!["am-token-current-0123456789".to_owned(), "am-token-previous-9876543210".to_owned()];
    let only_empty = vec![String::new()];
    #[rustfmt::skip]
    let cases: Vec<(&str, Option<&str>, &[String], &str)> = vec![
        ("current token", Some("Bearer am-token-current-0123456789"), &expected, "ok"),
        ("previous token (rotation)", Some("Bearer am-token-previous-9876543210"), &expected, "ok"),
        ("scheme in lower case", Some("bearer am-token-current-0123456789"), &expected, "ok"),
        ("two spaces after the scheme", Some("Bearer  am-token-current-0123456789"), &expected, "ok"),
        ("wrong token", Some("Bearer am-token-guess"), &expected, "BadCredentials"),
        ("a prefix of the token", Some("Bearer am-token-current-012345678"), &expected, "BadCredentials"),
        ("the token and more", Some("Bearer am-token-current-0123456789x"), &expected, "BadCredentials"),
        ("wrong scheme: Basic", Some("Basic YW0tdG9rZW4tY3VycmVudC0wMTIzNDU2Nzg5"), &expected, "WrongScheme"),
        ("wrong scheme: Token", Some("Token am-token-current-0123456789"), &expected, "WrongScheme"),
        ("no scheme", Some("am-token-current-0123456789"), &expected, "Malformed"),
        ("scheme without token", Some("Bearer "), &expected, "Malformed"),
        ("token with a space", Some("Bearer am-token current"), &expected, "Malformed"),
        ("empty header", Some(""), &expected, "Malformed"),
        ("missing header", None, &expected, "Missing"),
        ("empty configured list", Some("Bearer am-token-current-0123456789"), &[], "NotConfigured"),
        ("only an empty configured token", Some("Bearer x"), &only_empty, "NotConfigured"),
    ];
    for (name, header, expected, want) in cases {
        check_auth(
            name,
            verify_bearer(header, expected),
            want,
            &["am-token-current", "am-token-previous", "am-token-guess"],
        );
    }
}

#[test]
fn opsgenie_authorization() {
    let expected = vec!["opsgenie:correct-horse-battery-staple".to_owned(), "og-token-0123456789".to_owned()];
    let basic = |s: &str| format!("Basic {}", B64.encode(s));
    #[rustfmt::skip]
    let cases: Vec<(&str, Option<String>, &[String], &str)> = vec![
        ("basic user:password", Some(basic("opsgenie:correct-horse-battery-staple")), &expected, "ok"),
        ("bearer token", Some("Bearer og-token-0123456789".into()), &expected, "ok"),
        ("a credential is accepted in either form", Some("Bearer opsgenie:correct-horse-battery-staple".into()), &expected, "ok"),
        ("scheme case ignored", Some(basic("opsgenie:correct-horse-battery-staple").replace("Basic", "BASIC")), &expected, "ok"),
        ("basic wrong password", Some(basic("opsgenie:wrong")), &expected, "BadCredentials"),
        ("basic wrong user", Some(basic("someone:correct-horse-battery-staple")), &expected, "BadCredentials"),
        ("bearer wrong token", Some("Bearer og-token-guess".into()), &expected, "BadCredentials"),
        ("basic without a colon", Some(basic("og-token-0123456789")), &expected, "Malformed"),
        ("basic not base64", Some("Basic !!!not-base64!!!".into()), &expected, "Malformed"),
        ("GenieKey is for Opsgenie's API, not its webhooks", Some("GenieKey og-token-0123456789".into()), &expected, "WrongScheme"),
        ("missing header", None, &expected, "Missing"),
        ("empty configured list", Some("Bearer og-token-0123456789".into()), &[], "NotConfigured"),
    ];
    for (name, header, expected, want) in cases {
        check_auth(name, verify_opsgenie(header.as_deref(), expected), want, &["correct-horse", "og-token-0123456789"]);
    }
}

// ---------------------------------------------------------------------------
// Fixtures parse to their full normalised updates
// ---------------------------------------------------------------------------

fn pd_alice() -> Responder {
    Responder { id: Some("PALICE1".into()), email: None, name: Some("Alice Example".into()) }
}

fn email(e: &str) -> Responder {
    Responder { id: None, email: Some(e.into()), name: None }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

const TITLE: &str = "Payments API error rate above 5%";
const OG_ALERT: &str = "5c3e7d2a-9b1f-4e6a-8c2d-1f0e9a8b7c6d";
const AM_GROUP: &str = r#"{}/{service="payments-api"}:{alertname="PaymentsHighErrorRate", service="payments-api"}"#;

fn pagerduty(
    event: &str,
    event_type: &str,
    status: IncidentStatus,
    responders: Vec<Responder>,
    at: i64,
) -> IncidentUpdate {
    IncidentUpdate {
        source: Source::PagerDuty,
        external_id: "PBGINC1".into(),
        event_id: format!("7d4b2c1e-0a1f-4c3b-9e51-3f1a0000000{event}"),
        event_type: event_type.into(),
        title: TITLE.into(),
        severity: Some(1),
        status,
        status_known: true,
        services: strings(&["payments-api"]),
        responders,
        occurred_at: Some(Timestamp(at)),
        url: Some("https://example.pagerduty.com/incidents/PBGINC1".into()),
    }
}

fn opsgenie(
    file: &str,
    action: &str,
    status: IncidentStatus,
    severity: Option<i64>,
    responders: Vec<Responder>,
    at: i64,
) -> IncidentUpdate {
    IncidentUpdate {
        source: Source::Opsgenie,
        external_id: OG_ALERT.into(),
        event_id: sha256_hex(&fixture(file)),
        event_type: action.into(),
        title: TITLE.into(),
        severity,
        status,
        status_known: true,
        services: strings(&["payments-api"]),
        responders,
        occurred_at: Some(Timestamp(at)),
        url: None,
    }
}

fn alertmanager(file: &str, firing: bool, at: i64) -> IncidentUpdate {
    IncidentUpdate {
        source: Source::Alertmanager,
        external_id: AM_GROUP.into(),
        event_id: sha256_hex(&fixture(file)),
        event_type: if firing { "firing" } else { "resolved" }.into(),
        title: TITLE.into(),
        severity: Some(1),
        status: if firing { IncidentStatus::Triggered } else { IncidentStatus::Resolved },
        status_known: true,
        services: strings(&["payments-api"]),
        responders: vec![email("alice@example.com"), email("bob@example.com")],
        occurred_at: Some(Timestamp(at)),
        url: Some("http://alertmanager.example.com:9093".into()),
    }
}

#[test]
fn fixtures_parse_to_their_updates() {
    use IncidentStatus::*;
    let og_alice = Responder {
        id: Some("7f3c1b9e-2d4a-4c8b-a1e5-6b9d0c2f3a41".into()),
        email: Some("alice@example.com".into()),
        name: None,
    };
    let cases: Vec<(&str, Vec<IncidentUpdate>)> = vec![
        (
            "pagerduty-incident-triggered.json",
            vec![pagerduty("1", "incident.triggered", Triggered, vec![pd_alice()], T0)],
        ),
        (
            "pagerduty-incident-acknowledged.json",
            vec![pagerduty("2", "incident.acknowledged", Acknowledged, vec![pd_alice()], T0 + 3 * MINUTE)],
        ),
        (
            "pagerduty-incident-resolved.json",
            vec![pagerduty("3", "incident.resolved", Resolved, vec![], T0 + 60 * MINUTE)],
        ),
        ("pagerduty-ping.json", vec![]),
        ("opsgenie-create.json", vec![opsgenie("opsgenie-create.json", "Create", Triggered, Some(1), vec![], T0)]),
        (
            "opsgenie-acknowledge.json",
            vec![opsgenie(
                "opsgenie-acknowledge.json",
                "Acknowledge",
                Acknowledged,
                None,
                vec![og_alice],
                T0 + 3 * MINUTE,
            )],
        ),
        (
            "opsgenie-close.json",
            vec![opsgenie("opsgenie-close.json", "Close", Resolved, None, vec![], T0 + 60 * MINUTE)],
        ),
        ("alertmanager-firing.json", vec![alertmanager("alertmanager-firing.json", true, T0 + MINUTE)]),
        ("alertmanager-resolved.json", vec![alertmanager("alertmanager-resolved.json", false, T0 + 60 * MINUTE)]),
        (
            "generic-triggered.json",
            vec![IncidentUpdate {
                source: Source::Generic,
                external_id: "INC-2021-0042".into(),
                event_id: "evt-0042-triggered".into(),
                event_type: "triggered".into(),
                title: TITLE.into(),
                severity: Some(1),
                status: Triggered,
                status_known: true,
                services: strings(&["payments-api"]),
                responders: vec![Responder {
                    id: Some("alice".into()),
                    email: Some("alice@example.com".into()),
                    name: Some("Alice Example".into()),
                }],
                occurred_at: Some(Timestamp(T0)),
                url: Some("https://status.example.com/incidents/INC-2021-0042".into()),
            }],
        ),
    ];
    for (file, want) in cases {
        let got = parse_any(file, &fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(got, want, "{file}");
        // Updates survive the server's storage as JSON.
        for update in got {
            let json = serde_json::to_string(&update).unwrap();
            assert_eq!(serde_json::from_str::<IncidentUpdate>(&json).unwrap(), update, "{file}");
        }
    }
}

/// Parses with the parser the file name says.
fn parse_any(file: &str, body: &[u8]) -> Result<Vec<IncidentUpdate>, ParseError> {
    if file.starts_with("pagerduty") {
        parse_pagerduty(body).map(|u| u.into_iter().collect())
    } else if file.starts_with("opsgenie") {
        parse_opsgenie(body).map(|u| u.into_iter().collect())
    } else if file.starts_with("alertmanager") {
        parse_alertmanager(body, &AlertmanagerOptions::default())
    } else {
        parse_generic(body).map(|u| vec![u])
    }
}

#[test]
fn serde_names() {
    let update = parse_generic(&fixture("generic-triggered.json")).unwrap();
    let json: serde_json::Value = serde_json::to_value(&update).unwrap();
    assert_eq!(json["source"], "generic");
    assert_eq!(json["status"], "triggered");
    assert_eq!(json["occurred_at"], T0);
    assert_eq!(serde_json::to_value(Source::PagerDuty).unwrap(), "pagerduty");
    assert_eq!(serde_json::to_value(IncidentStatus::Acknowledged).unwrap(), "acknowledged");
    for (status, word, open) in [
        (IncidentStatus::Triggered, "triggered", true),
        (IncidentStatus::Acknowledged, "acknowledged", true),
        (IncidentStatus::Resolved, "resolved", false),
    ] {
        assert_eq!((status.as_str(), status.is_open()), (word, open));
    }
}

#[test]
fn alertmanager_one_incident_per_alert() {
    let body = fixture("alertmanager-firing.json");
    let opts = AlertmanagerOptions { one_incident_per_alert: true, ..AlertmanagerOptions::default() };
    let got = parse_alertmanager(&body, &opts).unwrap();
    let digest = sha256_hex(&body);
    let url = "http://prometheus.example.com:9090/graph?g0.expr=payments_http_5xx_ratio+%3E+0.05&g0.tab=1";
    let summary: Vec<_> = got
        .iter()
        .map(|u| {
            (
                u.external_id.as_str(),
                u.event_id.clone(),
                u.severity,
                u.responders.clone(),
                u.occurred_at,
                u.url.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "c0ffee0000000001",
                format!("{digest}:0"),
                Some(1),
                vec![email("alice@example.com")],
                Some(Timestamp(T0)),
                Some(url)
            ),
            (
                "c0ffee0000000002",
                format!("{digest}:1"),
                Some(3),
                vec![email("alice@example.com"), email("bob@example.com")],
                Some(Timestamp(T0 + MINUTE)),
                Some(url),
            ),
        ]
    );
    assert!(
        got.iter().all(|u| u.title == TITLE && u.status == IncidentStatus::Triggered && u.services == ["payments-api"])
    );
}

// ---------------------------------------------------------------------------
// Other events, inline
// ---------------------------------------------------------------------------

fn pd_event(event_type: &str, data: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"event": {
        "id": "evt-1", "event_type": event_type, "resource_type": "incident",
        "occurred_at": "2021-03-04T10:00:00Z", "agent": null, "client": null, "data": data,
    }}))
    .unwrap()
}

fn pd_incident(extra: serde_json::Value) -> serde_json::Value {
    let mut data = serde_json::json!({"id": "PBGINC1", "type": "incident", "status": "triggered", "title": "t"});
    for (k, v) in extra.as_object().unwrap() {
        data[k] = v.clone();
    }
    data
}

#[test]
fn pagerduty_events() {
    use serde_json::json;
    let responder_data = |state: &str| {
        json!({"type": "incident_responder", "state": state, "message": "please help",
            "incident": {"id": "PBGINC1", "summary": "Payments down", "html_url": "https://example.pagerduty.com/incidents/PBGINC1"},
            "user": {"id": "PBOB001", "summary": "Bob Example", "type": "user_reference"}})
    };
    // Responder events say who, not what state the incident is in.
    let added = parse_pagerduty(&pd_event("incident.responder.added", responder_data("pending"))).unwrap().unwrap();
    assert_eq!(added.external_id, "PBGINC1");
    assert_eq!(added.title, "Payments down");
    assert_eq!(
        added.responders,
        vec![Responder { id: Some("PBOB001".into()), email: None, name: Some("Bob Example".into()) }]
    );
    assert!(!added.status_known);
    assert_eq!(added.severity, None);
    assert!(parse_pagerduty(&pd_event("incident.responder.replied", responder_data("accepted"))).unwrap().is_some());
    assert_eq!(parse_pagerduty(&pd_event("incident.responder.replied", responder_data("declined"))).unwrap(), None);

    // Nothing to record.
    let note = json!({"type": "incident_note", "id": "PNOTE1", "content": "hi", "incident": {"id": "PBGINC1"}});
    assert_eq!(parse_pagerduty(&pd_event("incident.annotated", note)).unwrap(), None);
    let service = serde_json::to_vec(&json!({"event": {"id": "e", "event_type": "service.updated",
        "resource_type": "service", "data": {"id": "PPAYAPI", "type": "service"}}}))
    .unwrap();
    assert_eq!(parse_pagerduty(&service).unwrap(), None);

    // Severity: priority first, then urgency.
    let severity = |extra: serde_json::Value| {
        parse_pagerduty(&pd_event("incident.priority_updated", pd_incident(extra))).unwrap().unwrap().severity
    };
    assert_eq!(severity(json!({"priority": {"summary": "P2"}, "urgency": "low"})), Some(2));
    assert_eq!(severity(json!({"priority": {"summary": "p5"}})), Some(5));
    assert_eq!(severity(json!({"priority": {"summary": "SEV-1 (custom)"}, "urgency": "high"})), Some(2));
    assert_eq!(severity(json!({"priority": null, "urgency": "low"})), Some(4));
    assert_eq!(severity(json!({"urgency": "high"})), Some(2));
    assert_eq!(severity(json!({})), None);

    // Status from the event type when data.status is absent.
    for (event_type, want) in [
        ("incident.triggered", IncidentStatus::Triggered),
        ("incident.reopened", IncidentStatus::Triggered),
        ("incident.unacknowledged", IncidentStatus::Triggered),
        ("incident.acknowledged", IncidentStatus::Acknowledged),
        ("incident.resolved", IncidentStatus::Resolved),
    ] {
        let data = json!({"id": "PBGINC1", "type": "incident", "title": "t"});
        assert_eq!(parse_pagerduty(&pd_event(event_type, data)).unwrap().unwrap().status, want, "{event_type}");
    }
    // data.status wins over the event type (a reassigned, acknowledged incident).
    let reassigned = pd_event("incident.reassigned", pd_incident(json!({"status": "acknowledged"})));
    assert_eq!(parse_pagerduty(&reassigned).unwrap().unwrap().status, IncidentStatus::Acknowledged);

    // A title-less incident gets a placeholder naming it.
    let untitled = pd_event("incident.triggered", json!({"id": "PBGINC1", "type": "incident", "status": "triggered"}));
    assert_eq!(parse_pagerduty(&untitled).unwrap().unwrap().title, "PagerDuty incident PBGINC1");
}

#[test]
fn opsgenie_actions() {
    use serde_json::json;
    let body = |action: &str, extra: serde_json::Value, root_extra: serde_json::Value| {
        let mut alert = json!({"alertId": OG_ALERT, "message": "m", "username": "alice@example.com",
            "userId": "U-ALICE", "tags": [], "createdAt": T0, "updatedAt": (T0 + 5) * 1_000_000});
        for (k, v) in extra.as_object().unwrap() {
            alert[k] = v.clone();
        }
        let mut root = json!({"action": action, "alert": alert, "source": {"name": "", "type": "web"}});
        for (k, v) in root_extra.as_object().unwrap() {
            root[k] = v.clone();
        }
        serde_json::to_vec(&root).unwrap()
    };
    let parse = |b: Vec<u8>| parse_opsgenie(&b).unwrap().unwrap();
    let alice = Responder { id: Some("U-ALICE".into()), email: Some("alice@example.com".into()), name: None };

    for (action, status, known) in [
        ("Create", IncidentStatus::Triggered, true),
        ("UnAcknowledge", IncidentStatus::Triggered, true),
        ("Acknowledge", IncidentStatus::Acknowledged, true),
        ("Close", IncidentStatus::Resolved, true),
        ("Delete", IncidentStatus::Resolved, true),
        ("AddNote", IncidentStatus::Triggered, false),
        ("AddTags", IncidentStatus::Triggered, false),
        ("TakeOwnership", IncidentStatus::Triggered, false),
        ("MyCustomAction", IncidentStatus::Triggered, false),
    ] {
        let u = parse(body(action, json!({}), json!({})));
        assert_eq!((u.status, u.status_known, u.event_type.as_str()), (status, known, action), "{action}");
    }
    assert_eq!(parse(body("Acknowledge", json!({}), json!({}))).responders, vec![alice.clone()]);
    assert_eq!(parse(body("TakeOwnership", json!({}), json!({}))).responders, vec![alice]);
    // Who closed or created it is not a responder.
    assert_eq!(parse(body("Close", json!({}), json!({}))).responders, vec![]);
    assert_eq!(parse(body("Create", json!({"recipients": ["team-id"]}), json!({}))).responders, vec![]);
    assert_eq!(
        parse(body("AssignOwnership", json!({"owner": "bob@example.com"}), json!({}))).responders,
        vec![email("bob@example.com")]
    );
    assert_eq!(
        parse(body("AddRecipient", json!({"recipient": "payments_escalation"}), json!({}))).responders,
        vec![Responder { id: None, email: None, name: Some("payments_escalation".into()) }]
    );
    let escalate = json!({"escalationNotify": {"name": "carol@example.com", "id": "U-CAROL", "type": "default", "entity": "user"}});
    assert_eq!(
        parse(body("Escalate", json!({}), escalate)).responders,
        vec![Responder { id: Some("U-CAROL".into()), email: Some("carol@example.com".into()), name: None }]
    );

    // Priority as the documented string or the number some deliveries carry.
    assert_eq!(parse(body("Create", json!({"priority": "P2"}), json!({}))).severity, Some(2));
    assert_eq!(parse(body("Create", json!({"priority": 3}), json!({}))).severity, Some(3));
    assert_eq!(parse(body("Create", json!({}), json!({}))).severity, None);

    // Services from service: tags only, distinct, prefix case ignored.
    let tags = json!({"tags": ["vip", "SERVICE:payments-api", "service: ledger ", "service:payments-api", "service:", "servicex"]});
    assert_eq!(parse(body("Create", tags, json!({}))).services, strings(&["payments-api", "ledger"]));

    // Times: nanoseconds in updatedAt, else createdAt (milliseconds).
    assert_eq!(parse(body("Create", json!({}), json!({}))).occurred_at, Some(Timestamp(T0 + 5)));
    assert_eq!(parse(body("Create", json!({"updatedAt": null}), json!({}))).occurred_at, Some(Timestamp(T0)));

    // The Escalate payload carries only the alert id: the title names it.
    let bare = serde_json::to_vec(&json!({"action": "Escalate", "alert": {"alertId": OG_ALERT}})).unwrap();
    assert_eq!(parse(bare).title, format!("Opsgenie alert {OG_ALERT}"));
}

#[test]
fn alertmanager_variants() {
    use serde_json::json;
    let alert = |status: &str, labels: serde_json::Value, annotations: serde_json::Value| {
        json!({"status": status, "labels": labels, "annotations": annotations,
            "startsAt": "2021-03-04T10:00:00Z", "endsAt": "2021-03-04T10:30:00Z", "fingerprint": "f1"})
    };
    let body = |status: &str, alerts: Vec<serde_json::Value>, common: serde_json::Value| {
        serde_json::to_vec(&json!({"version": "4", "groupKey": "{}:{alertname=\"X\"}", "status": status,
            "receiver": "breakglass", "groupLabels": {"alertname": "X"}, "commonLabels": {}, "commonAnnotations": common,
            "externalURL": "http://am.example.com", "alerts": alerts}))
        .unwrap()
    };
    let one = |b: Vec<u8>, opts: &AlertmanagerOptions| {
        let mut all = parse_alertmanager(&b, opts).unwrap();
        assert_eq!(all.len(), 1);
        all.remove(0)
    };
    let d = AlertmanagerOptions::default();

    // A resolved alert in a firing group does not set the group's severity.
    let u = one(
        body(
            "firing",
            vec![
                alert("resolved", json!({"severity": "critical"}), json!({})),
                alert("firing", json!({"severity": "info"}), json!({})),
            ],
            json!({}),
        ),
        &d,
    );
    assert_eq!((u.severity, u.status), (Some(4), IncidentStatus::Triggered));
    // Without any severity label the payload says nothing.
    let u = one(body("firing", vec![alert("firing", json!({"alertname": "Disk"}), json!({}))], json!({})), &d);
    assert_eq!(u.severity, None);
    // Title: commonAnnotations.summary, else an alertname.
    assert_eq!(u.title, "X");
    // Labels configured by name.
    let opts = AlertmanagerOptions { severity_label: "priority".into(), service_label: "app".into(), ..d.clone() };
    let u = one(
        body(
            "firing",
            vec![alert(
                "firing",
                json!({"priority": "P2", "severity": "critical", "app": "ledger", "service": "other"}),
                json!({}),
            )],
            json!({}),
        ),
        &opts,
    );
    assert_eq!((u.severity, u.services.clone()), (Some(2), strings(&["ledger"])));
    // Responders from a label when no annotation has them, and from commonAnnotations.
    let u = one(
        body(
            "firing",
            vec![alert("firing", json!({"responders": "Dave Example"}), json!({}))],
            json!({"responders": "carol@example.com", "summary": "Common summary"}),
        ),
        &d,
    );
    assert_eq!(
        u.responders,
        vec![email("carol@example.com"), Responder { id: None, email: None, name: Some("Dave Example".into()) }]
    );
    assert_eq!(u.title, "Common summary");
    // No alerts at all (Alertmanager never sends it, but nothing breaks).
    let u = one(body("resolved", vec![], json!({})), &d);
    assert_eq!((u.severity, u.status, u.occurred_at), (None, IncidentStatus::Resolved, None));
}

#[test]
fn generic_minimal_form() {
    let body = br#"{"id": "INC-7", "title": "Something", "status": "acknowledged", "extra": {"ignored": true}}"#;
    let u = parse_generic(body).unwrap();
    assert_eq!(
        u,
        IncidentUpdate {
            source: Source::Generic,
            external_id: "INC-7".into(),
            event_id: sha256_hex(body),
            event_type: "acknowledged".into(),
            title: "Something".into(),
            severity: None,
            status: IncidentStatus::Acknowledged,
            status_known: true,
            services: vec![],
            responders: vec![],
            occurred_at: None,
            url: None,
        }
    );
}

// ---------------------------------------------------------------------------
// Malformed bodies
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum P {
    Pd,
    Og,
    Am,
    AmPerAlert,
    Gen,
}

fn parse_with(p: P, body: &[u8]) -> Result<Vec<IncidentUpdate>, ParseError> {
    match p {
        P::Pd => parse_pagerduty(body).map(|u| u.into_iter().collect()),
        P::Og => parse_opsgenie(body).map(|u| u.into_iter().collect()),
        P::Am => parse_alertmanager(body, &AlertmanagerOptions::default()),
        P::AmPerAlert => {
            parse_alertmanager(body, &AlertmanagerOptions { one_incident_per_alert: true, ..Default::default() })
        }
        P::Gen => parse_generic(body).map(|u| vec![u]),
    }
}

/// The field an error names, or `""` for whole-body errors.
fn error_field(e: &ParseError) -> &str {
    match e {
        ParseError::MissingField { field, .. } | ParseError::InvalidField { field, .. } => field,
        ParseError::TooLarge { .. } | ParseError::NotJson { .. } => "",
    }
}

const GEN_OK: &str = r#""id": "INC-1", "title": "t", "status": "triggered""#;

#[test]
fn malformed_bodies_name_the_field() {
    let pd = |data: &str| {
        format!(
            r#"{{"event": {{"id": "e1", "event_type": "incident.triggered", "resource_type": "incident", "data": {data}}}}}"#
        )
    };
    let og = |alert: &str| format!(r#"{{"action": "Create", "alert": {alert}}}"#);
    let am = |extra: &str| {
        format!(
            r#"{{"version": "4", "groupKey": "g", "status": "firing", "alerts": [{{"status": "firing", "labels": {{}}}}]{extra}}}"#
        )
    };
    let am_alert =
        |alert: &str| format!(r#"{{"version": "4", "groupKey": "g", "status": "firing", "alerts": [{alert}]}}"#);
    let long_id = "x".repeat(2000);

    #[rustfmt::skip]
    let cases: Vec<(P, String, &str, &str)> = vec![
        // (parser, body, field named, words in the message)
        (P::Gen, "not json".into(), "", "not valid JSON"),
        (P::Gen, "".into(), "", "not valid JSON"),
        (P::Gen, "{\"id\": ".into(), "", "not valid JSON"),
        (P::Gen, "[]".into(), "(the body)", "expected a JSON object, found an array"),
        (P::Gen, r#"{"title": "t", "status": "triggered"}"#.into(), "id", "has no id"),
        (P::Gen, r#"{"id": "", "title": "t", "status": "triggered"}"#.into(), "id", "must not be empty"),
        (P::Gen, r#"{"id": "   ", "title": "t", "status": "triggered"}"#.into(), "id", "must not be empty"),
        (P::Gen, r#"{"id": 42, "title": "t", "status": "triggered"}"#.into(), "id", "expected a string, found number 42"),
        (P::Gen, r#"{"id": "a\u0000b", "title": "t", "status": "triggered"}"#.into(), "id", "control characters"),
        (P::Gen, format!(r#"{{"id": "{long_id}", "title": "t", "status": "triggered"}}"#), "id", "longer than 1024"),
        (P::Gen, format!(r#"{{{GEN_OK}, "severity": 0}}"#), "severity", "from 1 (most severe) to 5, found number 0"),
        (P::Gen, format!(r#"{{{GEN_OK}, "severity": 6}}"#), "severity", "found number 6"),
        (P::Gen, format!(r#"{{{GEN_OK}, "severity": -1}}"#), "severity", "found number -1"),
        (P::Gen, format!(r#"{{{GEN_OK}, "severity": 1.5}}"#), "severity", "found number 1.5"),
        (P::Gen, format!(r#"{{{GEN_OK}, "severity": "high"}}"#), "severity", "found string \"high\""),
        (P::Gen, format!(r#"{{{GEN_OK}, "severity": "1"}}"#), "severity", "found string \"1\""),
        (P::Gen, r#"{"id": "INC-1", "title": "t", "status": "open"}"#.into(), "status", "expected triggered, acknowledged or resolved, found \"open\""),
        (P::Gen, r#"{"id": "INC-1", "title": "t", "status": "Triggered"}"#.into(), "status", "found \"Triggered\""),
        (P::Gen, r#"{"id": "INC-1", "title": "t"}"#.into(), "status", "has no status"),
        (P::Gen, r#"{"id": "INC-1", "status": "triggered"}"#.into(), "title", "has no title"),
        (P::Gen, r#"{"id": "INC-1", "title": " \n ", "status": "triggered"}"#.into(), "title", "must not be empty"),
        (P::Gen, format!(r#"{{{GEN_OK}, "services": "payments"}}"#), "services", "expected an array"),
        (P::Gen, format!(r#"{{{GEN_OK}, "services": [1]}}"#), "services[0]", "expected a string"),
        (P::Gen, format!(r#"{{{GEN_OK}, "services": ["ok", ""]}}"#), "services[1]", "must not be empty"),
        (P::Gen, format!(r#"{{{GEN_OK}, "responders": [{{}}]}}"#), "responders[0]", "at least one of email, name and id"),
        (P::Gen, format!(r#"{{{GEN_OK}, "responders": ["alice"]}}"#), "responders[0]", "expected a JSON object"),
        (P::Gen, format!(r#"{{{GEN_OK}, "responders": [{{"email": "alice"}}]}}"#), "responders[0].email", "not an e-mail"),
        (P::Gen, format!(r#"{{{GEN_OK}, "responders": [{{"email": "a b@example.com"}}]}}"#), "responders[0].email", "not an e-mail"),
        (P::Gen, format!(r#"{{{GEN_OK}, "responders": [{{"name": 7}}]}}"#), "responders[0].name", "expected a string"),
        (P::Gen, format!(r#"{{{GEN_OK}, "occurred_at": "yesterday"}}"#), "occurred_at", "RFC 3339"),
        (P::Gen, format!(r#"{{{GEN_OK}, "occurred_at": 1614852000}}"#), "occurred_at", "expected a string"),
        (P::Gen, format!(r#"{{{GEN_OK}, "url": "javascript:alert(1)"}}"#), "url", "not an http or https URL"),
        (P::Gen, format!(r#"{{{GEN_OK}, "event_id": ""}}"#), "event_id", "must not be empty"),
        (P::Pd, "{}".into(), "event", "has no event"),
        (P::Pd, r#"{"event": []}"#.into(), "event", "expected a JSON object"),
        (P::Pd, r#"{"event": {"id": "e1"}}"#.into(), "event.event_type", "has no event.event_type"),
        (P::Pd, r#"{"event": {"event_type": "incident.triggered", "data": {}}}"#.into(), "event.id", "has no event.id"),
        (P::Pd, r#"{"event": {"id": "e1", "event_type": "incident.triggered"}}"#.into(), "event.data", "has no event.data"),
        (P::Pd, pd(r#"{"id": "P1"}"#), "event.data.type", "has no event.data.type"),
        (P::Pd, pd(r#"{"id": 123, "type": "incident", "status": "triggered"}"#), "event.data.id", "expected a string, found number 123"),
        (P::Pd, pd(r#"{"id": "P1", "type": "incident", "status": "open"}"#), "event.data.status", "found \"open\""),
        (P::Pd, pd(r#"{"id": "P1", "type": "incident", "status": "triggered", "assignees": {}}"#), "event.data.assignees", "expected an array"),
        (P::Pd, pd(r#"{"id": "P1", "type": "incident", "status": "triggered", "assignees": ["PALICE1"]}"#), "event.data.assignees[0]", "expected a JSON object"),
        (P::Pd, pd(r#"{"id": "P1", "type": "incident", "status": "triggered", "service": {"summary": "a\u001bb"}}"#), "event.data.service.summary", "control characters"),
        (P::Pd, pd(r#"{"id": "P1", "type": "incident", "status": "triggered", "html_url": "file:///etc/passwd"}"#), "event.data.html_url", "not an http or https URL"),
        (P::Pd, pd(r#"{"id": "P1", "type": "incident", "status": "triggered", "priority": "P1"}"#), "event.data.priority", "expected a JSON object"),
        (P::Pd, r#"{"event": {"id": "e1", "event_type": "incident.triggered", "occurred_at": "noon", "data": {}}}"#.into(), "event.occurred_at", "RFC 3339"),
        (P::Og, r#"{"alert": {"alertId": "a"}}"#.into(), "action", "has no action"),
        (P::Og, r#"{"action": "Create"}"#.into(), "alert", "has no alert"),
        (P::Og, og(r#"{"message": "m"}"#), "alert.alertId", "has no alert.alertId"),
        (P::Og, og(r#"{"alertId": "a", "priority": "P9"}"#), "alert.priority", "expected P1, P2, P3, P4 or P5, found \"P9\""),
        (P::Og, og(r#"{"alertId": "a", "priority": 7}"#), "alert.priority", "expected 1 to 5"),
        (P::Og, og(r#"{"alertId": "a", "priority": true}"#), "alert.priority", "found boolean true"),
        (P::Og, og(r#"{"alertId": "a", "tags": "service:x"}"#), "alert.tags", "expected an array"),
        (P::Og, og(r#"{"alertId": "a", "tags": ["ok", 1]}"#), "alert.tags[1]", "expected a string"),
        (P::Og, og(r#"{"alertId": "a", "updatedAt": "soon"}"#), "alert.updatedAt", "expected an integer"),
        (P::Og, og(r#"{"alertId": "a", "updatedAt": 1.5}"#), "alert.updatedAt", "expected an integer"),
        (P::Am, r#"{"groupKey": "g", "status": "firing", "alerts": []}"#.into(), "version", "has no version"),
        (P::Am, r#"{"version": "3", "groupKey": "g", "status": "firing", "alerts": []}"#.into(), "version", "expected \"4\""),
        (P::Am, r#"{"version": 4, "groupKey": "g", "status": "firing", "alerts": []}"#.into(), "version", "expected a string"),
        (P::Am, r#"{"version": "4", "status": "firing", "alerts": []}"#.into(), "groupKey", "has no groupKey"),
        (P::Am, r#"{"version": "4", "groupKey": "g", "status": "pending", "alerts": []}"#.into(), "status", "expected firing or resolved"),
        (P::Am, r#"{"version": "4", "groupKey": "g", "status": "firing"}"#.into(), "alerts", "has no alerts"),
        (P::Am, am(r#", "commonAnnotations": []"#), "commonAnnotations", "expected a JSON object"),
        (P::Am, am(r#", "externalURL": "ftp://am""#), "externalURL", "not an http or https URL"),
        (P::Am, am_alert(r#"{"status": "ok"}"#), "alerts[0].status", "expected firing or resolved"),
        (P::Am, am_alert(r#"{"status": "firing", "labels": {"severity": 1}}"#), "alerts[0].labels.severity", "expected a string"),
        (P::Am, am_alert(r#"{"status": "firing", "startsAt": "then"}"#), "alerts[0].startsAt", "RFC 3339"),
        (P::Am, am_alert(r#"{"status": "firing", "labels": {"responders": "not@"}}"#), "alerts[0].labels.responders", "not an e-mail"),
        (P::AmPerAlert, am_alert(r#"{"status": "firing", "labels": {}}"#), "alerts[0].fingerprint", "has no alerts[0].fingerprint"),
    ];
    for (p, body, field, words) in cases {
        let err = match parse_with(p, body.as_bytes()) {
            Ok(got) => panic!("{p:?} {body}: accepted: {got:?}"),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert_eq!(error_field(&err), field, "{p:?} {body}: {msg}");
        assert!(msg.contains(words), "{p:?} {body}: {msg:?} lacks {words:?}");
        if !field.is_empty() {
            assert!(msg.contains(field), "{p:?}: {msg:?} does not name {field}");
        }
        assert!(msg.len() < 400, "{p:?}: message too long: {msg}");
    }
}

#[test]
fn body_size_limit() {
    let at_limit = |body: &str| {
        let mut b = body.as_bytes().to_vec();
        b.resize(MAX_BODY_BYTES, b' ');
        b
    };
    for p in [P::Pd, P::Og, P::Am, P::Gen] {
        let mut over = at_limit("{}");
        over.push(b' ');
        match parse_with(p, &over) {
            Err(ParseError::TooLarge { len, max, .. }) => assert_eq!((len, max), (MAX_BODY_BYTES + 1, MAX_BODY_BYTES)),
            other => panic!("{p:?}: {other:?}"),
        }
    }
    // Exactly at the limit is fine.
    let body = at_limit(&format!("{{{GEN_OK}}}"));
    assert_eq!(parse_generic(&body).unwrap().external_id, "INC-1");
}

// ---------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------

#[test]
fn long_untrusted_strings_are_cut_in_messages() {
    let huge = "A".repeat(100_000);
    let errors: Vec<String> = vec![
        parse_generic(format!(r#"{{"id": "INC-1", "title": "t", "status": "{huge}"}}"#).as_bytes()).unwrap_err().to_string(),
        parse_generic(format!(r#"{{{GEN_OK}, "severity": "{huge}"}}"#).as_bytes()).unwrap_err().to_string(),
        parse_generic(format!(r#"{{"id": "{huge}", "title": "t", "status": "triggered"}}"#).as_bytes()).unwrap_err().to_string(),
        parse_pagerduty(format!(r#"{{"event": {{"id": "e", "event_type": "incident.x", "data": {{"id": "P", "type": "incident", "status": "{huge}"}}}}}}"#).as_bytes())
            .unwrap_err()
            .to_string(),
        parse_alertmanager(format!(r#"{{"version": "{huge}"}}"#).as_bytes(), &AlertmanagerOptions::default()).unwrap_err().to_string(),
        verify_pagerduty(Some(&format!("{}=abc", &huge[..4000])), b"{}", &[b"k".to_vec()]).unwrap_err().to_string(),
        verify_bearer(Some(&format!("{} token", &huge[..4000])), &["t".into()]).unwrap_err().to_string(),
        verify_generic(Some(&huge[..4000]), Some("v1=00"), b"{}", &[b"k".to_vec()], Timestamp(T0), MINUTE).unwrap_err().to_string(),
    ];
    for msg in errors {
        assert!(msg.len() < 400, "message not cut ({} bytes): {}…", msg.len(), &msg[..200]);
    }
    // A long key name of an Alertmanager label is cut too.
    let key = "k".repeat(10_000);
    let body = format!(
        r#"{{"version": "4", "groupKey": "g", "status": "firing", "alerts": [{{"status": "firing", "labels": {{"{key}": 1}}}}]}}"#
    );
    let msg = parse_alertmanager(body.as_bytes(), &AlertmanagerOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("alerts[0].labels.kkk") && msg.len() < 400, "{}", &msg[..200]);
}

#[test]
fn deep_and_odd_json_is_refused_without_panic() {
    let deep_array = "[".repeat(100_000);
    let deep_in_field = format!(r#"{{"event": {}{}}}"#, "[".repeat(5_000), "]".repeat(5_000));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let bodies: Vec<Vec<u8>> = vec![
        deep_array.into_bytes(),
        deep_in_field.into_bytes(),
        deep_object.into_bytes(),
        b"{\"id\": \"\xff\xfe\", \"title\": \"t\", \"status\": \"triggered\"}".to_vec(),
        br#"{"id": "\ud800", "title": "t", "status": "triggered"}"#.to_vec(),
        b"\xef\xbb\xbf{}".to_vec(),
        b"{} {}".to_vec(),
        vec![0u8; 64],
    ];
    for body in &bodies {
        for p in [P::Pd, P::Og, P::Am, P::Gen] {
            match parse_with(p, body) {
                Err(ParseError::NotJson { .. }) => {}
                other => panic!("{p:?} {:?}: {other:?}", String::from_utf8_lossy(&body[..body.len().min(40)])),
            }
        }
    }
}

#[test]
fn odd_unicode_is_cleaned_or_refused() {
    // Titles are displayed: escapes and bidi overrides become spaces.
    let body = r#"{"id": "INC-1", "title": "Pay\u001b[31mments \u202edown\u202c 🔥\n", "status": "triggered"}"#;
    assert_eq!(parse_generic(body.as_bytes()).unwrap().title, "Pay [31mments down 🔥");
    // Names are matched: an invisible character is refused, not dropped.
    for (field_json, field) in [
        (r#""services": ["pay\u200bments"]"#, "services[0]"),
        (r#""responders": [{"email": "alice@example.com\u202e"}]"#, "responders[0].email"),
    ] {
        let body = format!("{{{GEN_OK}, {field_json}}}");
        let err = parse_generic(body.as_bytes()).unwrap_err();
        assert_eq!(error_field(&err), field, "{err}");
    }
    let body = r#"{"id": "INC\u202e1", "title": "t", "status": "triggered"}"#;
    assert_eq!(error_field(&parse_generic(body.as_bytes()).unwrap_err()), "id");
    // Non-ASCII that is just text is kept as it is.
    let body = r#"{"id": "ÉVÉNEMENT-1", "title": "Zahlungen gestört", "status": "triggered", "services": ["zahlungs-dienst-ü"]}"#;
    let u = parse_generic(body.as_bytes()).unwrap();
    assert_eq!(
        (u.external_id.as_str(), u.title.as_str(), u.services[0].as_str()),
        ("ÉVÉNEMENT-1", "Zahlungen gestört", "zahlungs-dienst-ü")
    );
}

#[test]
fn list_sizes_are_bounded() {
    let services: Vec<String> = (0..300).map(|n| format!("\"svc-{n}\"")).collect();
    let body = format!(r#"{{{GEN_OK}, "services": [{}]}}"#, services.join(","));
    let err = parse_generic(body.as_bytes()).unwrap_err();
    assert_eq!(error_field(&err), "services", "{err}");
    // Repeats count once.
    let same = vec!["\"svc\""; 300].join(",");
    let body = format!(r#"{{{GEN_OK}, "services": [{same}]}}"#);
    assert_eq!(parse_generic(body.as_bytes()).unwrap().services, strings(&["svc"]));
}

// Issue 14: a signed body that names a member twice was read last-wins; the
// API refuses such bodies, and so does every receiver now, at any depth.
#[test]
fn issue14_a_member_named_twice_is_refused_by_every_parser() {
    let twice = |name: &str, member: &str, decoy: &str| {
        let body = String::from_utf8(fixture(name)).unwrap();
        assert!(body.contains(member), "{name} has {member}");
        (body.clone(), body.replacen(member, &format!("{decoy}{member}"), 1))
    };
    let refused = |what: &str, r: Result<(), ParseError>| match r {
        Err(e @ ParseError::NotJson { .. }) => {
            assert!(e.to_string().contains("appears twice in one object"), "{what}: {e}");
        }
        other => panic!("{what}: expected a refusal, got {other:?}"),
    };
    // PagerDuty: the status inside event.data, resolved first, triggered last.
    let (ok, bad) =
        twice("pagerduty-incident-triggered.json", "\"status\": \"triggered\",", "\"status\": \"resolved\", ");
    parse_pagerduty(ok.as_bytes()).unwrap().unwrap();
    refused("pagerduty", parse_pagerduty(bad.as_bytes()).map(|_| ()));
    // Opsgenie: the action at the top level.
    let (ok, bad) = twice("opsgenie-create.json", "\"action\": \"Create\"", "\"action\": \"Close\", ");
    parse_opsgenie(ok.as_bytes()).unwrap().unwrap();
    refused("opsgenie", parse_opsgenie(bad.as_bytes()).map(|_| ()));
    // Alertmanager: a label deep inside an alert.
    let opts = AlertmanagerOptions::default();
    let (ok, bad) = twice("alertmanager-firing.json", "\"severity\": \"critical\"", "\"severity\": \"info\", ");
    parse_alertmanager(ok.as_bytes(), &opts).unwrap();
    refused("alertmanager", parse_alertmanager(bad.as_bytes(), &opts).map(|_| ()));
    // Generic: the severity.
    let (ok, bad) = twice("generic-triggered.json", "\"severity\": 1", "\"severity\": 5, ");
    parse_generic(ok.as_bytes()).unwrap();
    refused("generic", parse_generic(bad.as_bytes()).map(|_| ()));
}
