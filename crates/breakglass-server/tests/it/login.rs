//! SSH-key login: real keys from `ssh-keygen`, real `ssh-keygen -Y sign`
//! signatures, and the ways a login must fail. (Issue 3.)

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use breakglass_testkit::ssh::wire_strings as strings;
use ed25519_dalek::Signer as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256, Sha512};

use crate::harness::*;

async fn challenge(srv: &Server, principal: &str) -> (StatusCode, Value) {
    srv.call(Method::POST, "/v1/login/challenge", None, Some(json!({ "principal": principal }))).await
}

async fn login_with(srv: &Server, principal: &str, challenge: &str, signature: &str) -> (StatusCode, Value) {
    let body = json!({ "principal": principal, "challenge": challenge, "signature": signature });
    srv.call(Method::POST, "/v1/login", None, Some(body)).await
}

fn message(v: &Value) -> String {
    v["error"]["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_works_once_per_challenge_and_only_with_the_principals_key() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let ns = breakglass_core::sshsig::LOGIN_NAMESPACE;

    // An unknown principal gets a challenge like anyone (issue 14: the
    // answer must not say who exists); its login fails like a wrong key.
    let (status, e) = challenge(&srv, "mallory").await;
    assert_eq!(status, StatusCode::OK, "{e}");

    let (_, ch) = challenge(&srv, "alice").await;
    let text = ch["challenge"].as_str().unwrap();
    assert_eq!(ch["namespace"], ns);
    let before = srv.log_size().await;

    // Wrong SSH key: mallory's, and bob's (a real principal, but not alice).
    for key in [&setup.keys.mallory, &setup.keys.bob] {
        let (status, e) = login_with(&srv, "alice", text, &ssh_sign(key, ns, text)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
    }
    // Another namespace, another principal's challenge, an edited challenge.
    let (status, _) = login_with(&srv, "alice", text, &ssh_sign(&setup.keys.alice, "git", text)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, e) = login_with(&srv, "bob", text, &ssh_sign(&setup.keys.bob, ns, text)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
    let edited = text.replacen("alice", "alicf", 1);
    let (status, _) = login_with(&srv, "alice", &edited, &ssh_sign(&setup.keys.alice, ns, &edited)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Refused logins are recorded (at a bounded rate, see security_api), and only as such.
    assert!(srv.kinds_since(before).await.iter().all(|k| k == "login.failed"));
    let before = srv.log_size().await;

    // The right key logs in once; the same challenge and signature again are refused.
    let sig = ssh_sign(&setup.keys.alice, ns, text);
    let (status, ok) = login_with(&srv, "alice", text, &sig).await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert!(ok["key_fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    let token = ok["token"].as_str().unwrap();
    assert_eq!(srv.get("/v1/whoami", token).await.1["name"], "alice");
    assert_eq!(srv.kinds_since(before).await, ["login"]);
    let before = srv.log_size().await;
    let (status, e) = login_with(&srv, "alice", text, &sig).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message(&e).contains("already used"), "{e}");
    assert_eq!(srv.kinds_since(before).await, ["login.failed"], "a replayed login is recorded");
    // The log holds no secret: neither the session token nor the signature.
    let all = srv.store.entries(0, u64::MAX).await.unwrap();
    let text_log: String = all.iter().map(|r| String::from_utf8_lossy(&r.data).into_owned()).collect();
    assert!(!text_log.contains(token) && !text_log.contains(&token[21..]));

    // A challenge used after its time is refused; so is a session after its time.
    let (_, ch) = challenge(&srv, "alice").await;
    let text = ch["challenge"].as_str().unwrap().to_owned();
    srv.clock.advance(120_000);
    let (status, e) = login_with(&srv, "alice", &text, &ssh_sign(&setup.keys.alice, ns, &text)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message(&e).contains("expired"), "{e}");
    srv.clock.advance(12 * 3_600_000);
    assert_eq!(srv.get("/v1/whoami", token).await.0, StatusCode::UNAUTHORIZED);
    srv.verify().await;
}

/// A simulated FIDO `sk-ssh-ed25519` key: what a YubiKey would sign, with
/// the flags the authenticator reports.
struct SkKey(ed25519_dalek::SigningKey);

impl SkKey {
    const TYPE: &str = "sk-ssh-ed25519@openssh.com";
    const APP: &str = "ssh:";

    fn blob(&self) -> Vec<u8> {
        strings(&[Self::TYPE.as_bytes(), self.0.verifying_key().as_bytes(), Self::APP.as_bytes()])
    }

    fn line(&self) -> String {
        format!("{} {} erin@yubikey", Self::TYPE, base64::engine::general_purpose::STANDARD.encode(self.blob()))
    }

    fn sign(&self, namespace: &str, message: &[u8], flags: u8) -> String {
        let mut data = b"SSHSIG".to_vec();
        data.extend(strings(&[namespace.as_bytes(), b"", b"sha512", &Sha512::digest(message)]));
        let mut to_sign = Sha256::digest(Self::APP.as_bytes()).to_vec();
        to_sign.push(flags);
        to_sign.extend_from_slice(&7u32.to_be_bytes());
        to_sign.extend_from_slice(&Sha256::digest(&data));
        let raw = self.0.sign(&to_sign).to_bytes();
        let mut signature = strings(&[Self::TYPE.as_bytes(), &raw]);
        signature.push(flags);
        signature.extend_from_slice(&7u32.to_be_bytes());
        let mut blob = b"SSHSIG\0\0\0\x01".to_vec();
        blob.extend(strings(&[&self.blob(), namespace.as_bytes(), b"", b"sha512", &signature]));
        let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
        format!("-----BEGIN SSH SIGNATURE-----\n{b64}\n-----END SSH SIGNATURE-----\n")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_key_logins_need_user_presence() {
    let sk = SkKey(ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]));
    let extra = format!("\n[[principal]]\nname = \"erin\"\ngroups = [\"oncall\"]\nssh_keys = [\"{}\"]\n", sk.line());
    let setup = Setup::with_principals(&extra);
    let srv = Server::sqlite(&setup).await;
    let ns = breakglass_core::sshsig::LOGIN_NAMESPACE;
    let (_, ch) = challenge(&srv, "erin").await;
    let text = ch["challenge"].as_str().unwrap();
    // Flags 0: the key was not touched.
    let (status, e) = login_with(&srv, "erin", text, &sk.sign(ns, text.as_bytes(), 0x00)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
    assert!(message(&e).to_lowercase().contains("presence"), "{e}");
    // Touched (user present): accepted, once.
    let (status, ok) = login_with(&srv, "erin", text, &sk.sign(ns, text.as_bytes(), 0x01)).await;
    assert_eq!(status, StatusCode::OK, "{ok}");
}
