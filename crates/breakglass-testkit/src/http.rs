//! One raw HTTP/1.1 request on a new connection (`Connection: close`), for
//! tests that must see exactly what goes over the wire, or that talk to a
//! route the client library has no call for.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

/// Sends `METHOD PATH` to `addr` (`host:port`) with `headers` and, when
/// given, a JSON `body`; returns the status and the response body.
pub fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> (u16, String) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.write_all(head.as_bytes()).expect("send the request head");
    s.write_all(body.unwrap_or_default()).expect("send the request body");
    let mut res = String::new();
    s.read_to_string(&mut res).expect("read the response");
    let status = res.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an HTTP response: {res:?}"));
    let body = res.split_once("\r\n\r\n").map_or("", |x| x.1);
    (status, body.to_owned())
}
