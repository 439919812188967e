//! The listener: plain HTTP (loopback by default, or behind a reverse proxy
//! that terminates TLS), or HTTPS with rustls (ring) when a certificate and
//! key are configured.
//!
//! Security: every peer that can reach the port controls how fast (or how
//! slowly) its bytes arrive. A client that trickles its request headers, stops
//! in the middle of a body or never reads its answer must not hold a
//! connection for ever, and many such clients must not exhaust the process.
//! So both paths serve connections with hyper directly (not `axum::serve`,
//! which gives no control over this) under [`ConnectionLimits`]: the request
//! headers (and, with TLS, the handshake) must arrive within
//! `header_read_timeout`, a connection that passes no byte in either
//! direction for `idle_timeout` is closed, and at most `max_connections` are
//! open at once; one over the limit is refused at once (plain HTTP gets a
//! `503` first) instead of waiting unseen in the kernel's queue.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long a connection may take over its parts, and how many may be open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the moment the server waits for a request (a new connection, or
    /// the next request on a kept-alive one) until its headers are complete;
    /// also the bound on a TLS handshake.
    pub header_read_timeout: Duration,
    /// The longest a connection may pass no byte in either direction.
    pub idle_timeout: Duration,
    /// Connections open at once; more are refused until one closes.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// A rustls server configuration from PEM files.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read the TLS certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid TLS certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the TLS private key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the TLS certificate and key do not fit together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `stop` turns true, then lets the open
/// connections finish their current request and returns. With `tls`, every
/// connection is a TLS handshake first (a failed handshake drops only that
/// connection).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut open = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stopped(&mut stop) => break,
        };
        // Finished connections' tasks are collected as we go, so the set
        // holds only open ones.
        while open.try_join_next().is_some() {}
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors, most likely: back off a little
                // rather than spin, as accepting again at once would fail alike.
                tracing::warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stopped(&mut stop) => break,
                }
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(tcp, acceptor.is_none());
            continue;
        };
        let (app, acceptor, stop) = (app.clone(), acceptor.clone(), stop.clone());
        open.spawn(async move {
            let _slot = slot;
            let _ = tcp.set_nodelay(true);
            let io = IdleTimeout::new(tcp, limits.idle_timeout);
            match acceptor {
                None => serve_connection(io, peer, app, limits, stop).await,
                Some(acceptor) => match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io)).await {
                    Ok(Ok(tls)) => serve_connection(tls, peer, app, limits, stop).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    while open.join_next().await.is_some() {}
    Ok(())
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is dropped here, not held across an await.
    let _ = stop.wait_for(|s| *s).await;
}

/// Turns away a connection over the limit without waiting on it: plain HTTP
/// gets a 503 if the socket takes it at once, then the connection closes.
fn refuse(tcp: TcpStream, plain: bool) {
    metrics::counter!("breakglass_connections_refused_total").increment(1);
    tracing::debug!("connection refused: the connection limit is reached");
    if plain {
        let _ = tcp.try_write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n",
        );
    }
}

/// One connection's HTTP/1.1 exchanges, with the header-read timeout; on
/// `stop`, the request in progress finishes and the connection closes.
async fn serve_connection<I>(
    io: I,
    peer: std::net::SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    let res = tokio::select! {
        res = conn.as_mut() => res,
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = res {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// A stream that fails with `TimedOut` once no byte has moved either way for
/// `timeout`; the deadline moves forward with every byte read or written.
struct IdleTimeout<T> {
    inner: T,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<T> IdleTimeout<T> {
    fn new(inner: T, timeout: Duration) -> IdleTimeout<T> {
        IdleTimeout { inner, timeout, deadline: Box::pin(tokio::time::sleep(timeout)) }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(tokio::time::Instant::now() + self.timeout);
    }

    /// Called when the inner stream has nothing to offer: an error once the
    /// deadline has passed (the deadline's waker is registered either way).
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no byte moved for {:?} (the idle timeout)", self.timeout),
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(res) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(res)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(res) => {
                if matches!(res, Ok(n) if n > 0) {
                    self.moved();
                }
                Poll::Ready(res)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(res) => {
                if matches!(res, Ok(n) if n > 0) {
                    self.moved();
                }
                Poll::Ready(res)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(res) => Poll::Ready(res),
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(res) => Poll::Ready(res),
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }
}
