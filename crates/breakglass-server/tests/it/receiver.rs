//! A real HTTP receiver on 127.0.0.1 for notification tests: it records
//! every request (headers and body) and answers each with the next status
//! of a script (200 once the script runs out; 0 means: never answer, hold
//! the connection until the sender goes away). Shared by the server's and
//! the binary's tests.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

#[derive(Default)]
struct State {
    script: VecDeque<u16>,
    received: Vec<Received>,
}

pub struct Receiver {
    pub url: String,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let st = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve_one(stream, &st));
            }
        });
        Receiver { url, state }
    }

    /// The next requests get these statuses, in order (0: no answer at all).
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state.0.lock().unwrap().script.extend(statuses.iter().copied());
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.0.lock().unwrap().received.clone()
    }

    /// Blocks until `n` requests have arrived (an event, not a time: the
    /// bound only turns a hang into a failure).
    #[allow(dead_code)]
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        let (lock, cv) = &*self.state;
        let guard = lock.lock().unwrap();
        let (guard, timeout) = cv.wait_timeout_while(guard, Duration::from_secs(60), |s| s.received.len() < n).unwrap();
        assert!(!timeout.timed_out(), "only {} of {n} requests arrived", guard.received.len());
        guard.received.clone()
    }
}

fn serve_one(stream: std::net::TcpStream, st: &(Mutex<State>, Condvar)) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let status = {
        let mut s = st.0.lock().unwrap();
        let status = s.script.pop_front().unwrap_or(200);
        let body = String::from_utf8_lossy(&body).into_owned();
        s.received.push(Received { path, headers, body });
        st.1.notify_all();
        status
    };
    let mut stream = reader.into_inner();
    if status == 0 {
        // Hold: read until the sender closes the connection (or dies).
        let mut sink = [0u8; 64];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
        return;
    }
    let _ = write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
}
