//! HTTPS with rustls when a certificate and key are configured: a client
//! that trusts the certificate gets answers; a plain-HTTP client gets none.
//! (Issue 3.) Slow TLS clients are cut off by the header-read timeout (issue 14).

use std::sync::Arc;

use breakglass_server::listen::{ConnectionLimits, serve, tls_config};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::*;

/// A throwaway self-signed certificate for `localhost`, written into the
/// setup's directory, and the server configuration made from its files.
fn throwaway_tls(setup: &Setup) -> (rcgen::CertifiedKey<rcgen::KeyPair>, Arc<rustls::ServerConfig>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (setup.dir.path().join("tls.crt"), setup.dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let tls = tls_config(&cert_path, &key_path).unwrap();
    (cert, tls)
}

/// A TLS client that trusts only `cert`.
fn client_for(cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_speaks_tls_with_a_configured_certificate() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let (cert, tls) = throwaway_tls(&setup);
    let (cert_path, key_path) = (setup.dir.path().join("tls.crt"), setup.dir.path().join("tls.key"));
    assert!(tls_config(&key_path, &cert_path).is_err(), "swapped files are refused with an error");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve(listener, srv.app.clone(), Some(tls), ConnectionLimits::default(), stop_rx));

    let connector = client_for(&cert);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut res = String::new();
    tls.read_to_string(&mut res).await.unwrap_or_default();
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.contains("\"ok\""), "{res}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200"), "plain HTTP must not be served");

    stop_tx.send(true).unwrap();
    server.await.unwrap().unwrap();
}

/// Reads until the peer closes (end of file or reset), bounded only so that a
/// hang fails the test; the server's timeout is far shorter.
async fn closed_by_server<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut got)).await;
    match read {
        Ok(Ok(_)) => got,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => got,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => got,
        Ok(Err(e)) => panic!("unexpected error while waiting for the close: {e}"),
        Err(_) => panic!("the server never closed the slow connection"),
    }
}

// Issue 14: slow clients on the TLS port are cut off too, by the same
// configured header-read timeout: one that never starts its handshake, and
// one that completes it and then sends half its request headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_slow_tls_clients_are_cut_off_by_the_header_read_timeout() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let (cert, tls) = throwaway_tls(&setup);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits =
        ConnectionLimits { header_read_timeout: std::time::Duration::from_millis(200), ..ConnectionLimits::default() };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve(listener, srv.app.clone(), Some(tls), limits, stop_rx));

    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(closed_by_server(&mut silent).await.is_empty(), "no handshake, no answer");

    let connector = client_for(&cert);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut slow = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
    slow.flush().await.unwrap();
    let got = closed_by_server(&mut slow).await;
    assert!(!String::from_utf8_lossy(&got).contains("200"), "half a request is never answered");

    // A complete request is still answered.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut ok = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut res = String::new();
    ok.read_to_string(&mut res).await.unwrap_or_default();
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");

    stop_tx.send(true).unwrap();
    server.await.unwrap().unwrap();
}

// Issue 14: the connection limit holds on the TLS port too: with one slot
// held by a kept-alive connection, another is closed at once (its handshake
// fails), not left waiting; a request on the held one is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_a_tls_connection_over_the_limit_is_refused_at_once() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let (cert, tls) = throwaway_tls(&setup);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ConnectionLimits { max_connections: 1, ..ConnectionLimits::default() };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve(listener, srv.app.clone(), Some(tls), limits, stop_rx));

    let connector = client_for(&cert);
    let get = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut held = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    held.write_all(get).await.unwrap();
    let mut buf = [0u8; 512];
    let n = held.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let over = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .expect("the refusal is immediate, not a wait");
    assert!(over.is_err(), "the connection over the limit is closed before its handshake");

    held.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    let _ = held.read_to_end(&mut rest).await;
    assert!(String::from_utf8_lossy(&rest).contains("HTTP/1.1 200"), "the held connection still works");
    drop(held);
    stop_tx.send(true).unwrap();
    server.await.unwrap().unwrap();
}
