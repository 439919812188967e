//! The push webhook as GitHub delivers it.

use breakglass_forgefake::{PushCommit, PushSpec, signature_256};
use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::common::*;

/// Accepts one request, answers 204, and returns its head and body.
async fn receive_one(listener: TcpListener) -> (String, Vec<u8>) {
    let (mut stream, _) = listener.accept().await.expect("a delivery");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read the delivery");
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            if raw.len() >= end + 4 + len || n == 0 {
                let body = raw[end + 4..].to_vec();
                stream
                    .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await
                    .unwrap();
                return (head, body);
            }
        }
        assert!(n > 0, "the connection closed early");
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn a_push_is_delivered_signed_with_the_documented_headers_and_payload() {
    let fake = fake().await;
    create(&fake, &breakglass_ruleset()).await;
    let record = fake.push_with(PushSpec {
        repo: "acme/payments".to_owned(),
        branch: "main".to_owned(),
        new_sha: SHA_C.to_owned(),
        actor: "alice".to_owned(),
        bypass: true,
        forced: true,
        commits: vec![
            PushCommit {
                id: SHA_B.to_owned(),
                message: "Fix the outage\n\nBreak-Glass: g-1".to_owned(),
                modified: vec!["src/lib.rs".to_owned()],
                ..PushCommit::default()
            },
            PushCommit {
                id: SHA_C.to_owned(),
                message: "Second".to_owned(),
                added: vec!["a.txt".to_owned()],
                ..PushCommit::default()
            },
        ],
    });
    let p = &record.payload;
    assert_eq!(
        (p["ref"].as_str(), p["before"].as_str(), p["after"].as_str()),
        (Some("refs/heads/main"), Some(SHA_A), Some(SHA_C))
    );
    assert_eq!(
        (p["forced"].as_bool(), p["created"].as_bool(), p["deleted"].as_bool()),
        (Some(true), Some(false), Some(false))
    );
    assert_eq!(p["commits"].as_array().map(Vec::len), Some(2));
    assert_eq!(p["head_commit"]["id"], SHA_C);
    assert_eq!(p["commits"][0]["modified"][0], "src/lib.rs");
    assert_eq!((p["sender"]["login"].as_str(), p["sender"]["id"].as_u64()), (Some("alice"), Some(1001)));
    assert_eq!(p["pusher"]["name"], "alice");
    assert_eq!(p["repository"]["full_name"], "acme/payments");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/github", listener.local_addr().unwrap());
    let receiver = tokio::spawn(receive_one(listener));
    let delivery = fake.deliver_push(&url, b"hook-secret", p).await.expect("delivered");
    assert_eq!(delivery.response.status, 204);
    let (head, body) = receiver.await.unwrap();
    assert!(head.starts_with("POST /hooks/github HTTP/1.1"), "{head}");
    assert_eq!(header(&head, "x-github-event"), Some("push"));
    assert_eq!(header(&head, "x-github-delivery"), Some(delivery.delivery_id.as_str()));
    assert_eq!(delivery.delivery_id.len(), 36);
    assert!(header(&head, "user-agent").unwrap().starts_with("GitHub-Hookshot/"));
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    // The signature, recomputed here without the fake's helper.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"hook-secret").unwrap();
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(header(&head, "x-hub-signature-256"), Some(expected.as_str()));
    assert_eq!(signature_256(b"hook-secret", &body), expected);
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(&sent, p);
}

#[tokio::test]
async fn a_new_branch_push_says_created() {
    let fake = fake().await;
    let record = fake.push("acme/payments", "hotfix/1", SHA_B, "bob", false);
    assert_eq!(record.payload["created"], true);
    assert_eq!(record.payload["before"], "0000000000000000000000000000000000000000");
    assert_eq!(record.payload["head_commit"]["id"], SHA_B);
    assert_eq!(fake.branch_head("acme/payments", "hotfix/1").as_deref(), Some(SHA_B));
}
