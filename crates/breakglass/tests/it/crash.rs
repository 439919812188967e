//! Crash safety and concurrency, with real processes: SIGKILL during
//! concurrent appends loses nothing acknowledged, and two processes appending
//! to one log never fork it.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use serde_json::Value;

use crate::support::{INIT_ENTRIES, Scratch};

/// "ack INDEX WRITER SEQ" lines, as `debug append` prints them.
fn parse_ack(line: &str) -> Option<(u64, u64, u64)> {
    let mut it = line.strip_prefix("ack ")?.split(' ').map(|x| x.parse().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// Checks that every acknowledged (index, writer, seq) is in the log with that content.
fn assert_acked_present(s: &Scratch, label: &str, acked: &BTreeMap<u64, (u64, u64)>) {
    let entries = s.entries();
    for (&index, &(writer, seq)) in acked {
        let entry = entries.get(index as usize).unwrap_or_else(|| panic!("acknowledged entry {index} is missing"));
        let v: Value = serde_json::from_slice(entry).unwrap();
        assert_eq!(v["data"]["label"], label, "entry {index}");
        assert_eq!(
            (v["data"]["writer"].as_u64(), v["data"]["seq"].as_u64()),
            (Some(writer), Some(seq)),
            "entry {index}"
        );
    }
}

#[test]
fn sigkill_during_concurrent_appends_loses_nothing_acknowledged() {
    let s = Scratch::new();
    let mut acked_total = BTreeMap::new();
    // Kill at several points, each time after a different number of acknowledgements.
    for (round, kill_after) in [(0u32, 50usize), (1, 400), (2, 1500)] {
        let label = format!("round-{round}");
        let mut child = s
            .cmd(&["debug", "append", "--count", "100000", "--writers", "8", "--label", &label])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = BTreeMap::new();
        while acked.len() < kill_after {
            let line = lines.next().expect("appender exited early").unwrap();
            let (index, writer, seq) = parse_ack(&line).unwrap();
            acked.insert(index, (writer, seq));
        }
        child.kill().unwrap(); // SIGKILL on Unix.
        child.wait().unwrap();
        // Acknowledgements printed before the kill count too.
        for line in lines.map_while(Result::ok) {
            if let Some((index, writer, seq)) = parse_ack(&line) {
                acked.insert(index, (writer, seq));
            }
        }
        assert_acked_present(&s, &label, &acked);
        // The log verifies after the crash (the sink may lag by the batch in flight, never lead).
        s.ok(&["audit", "verify"]);
        acked_total.extend(acked.keys().map(|k| (*k, round)));
    }
    // Appending again catches the sink up; everything still verifies and the sink is complete.
    s.append(1, 1);
    let v: Value = serde_json::from_str(&s.ok(&["audit", "verify", "--json"])).unwrap();
    let size = v["report"]["size"].as_u64().unwrap();
    assert_eq!(v["report"]["sink_lines"].as_u64().unwrap(), size);
    assert!(size > acked_total.len() as u64);
}

#[test]
fn two_processes_appending_at_once_never_fork_the_log() {
    two_processes_on(Scratch::new());
}

/// The same with the log on PostgreSQL: two processes stand for two servers
/// over one database (here they share a data directory, keys and sink).
#[test]
fn two_processes_on_one_postgres_database_never_fork_the_log() {
    let Some(s) = Scratch::postgres() else { return };
    assert!(!s.db().exists(), "the log must not be in SQLite");
    two_processes_on(s);
}

fn two_processes_on(s: Scratch) {
    let spawn = |label: &str| {
        s.cmd(&["debug", "append", "--count", "150", "--writers", "4", "--label", label])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a"), spawn("b"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let acks = |out: &[u8]| -> BTreeMap<u64, (u64, u64)> {
        String::from_utf8_lossy(out).lines().filter_map(parse_ack).map(|(i, w, q)| (i, (w, q))).collect()
    };
    let (acked_a, acked_b) = (acks(&a.stdout), acks(&b.stdout));
    assert_eq!(acked_a.len(), 600);
    assert_eq!(acked_b.len(), 600);
    // No index was handed out twice, and together they are exactly the 1200
    // indexes after init's entries.
    assert!(acked_a.keys().all(|k| !acked_b.contains_key(k)));
    let all: Vec<u64> =
        acked_a.keys().chain(acked_b.keys()).copied().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    assert_eq!(all, (INIT_ENTRIES..INIT_ENTRIES + 1200).collect::<Vec<_>>());
    assert_acked_present(&s, "a", &acked_a);
    assert_acked_present(&s, "b", &acked_b);
    // One tree, every checkpoint consistent with the next, and the shared sink in order.
    let v: Value = serde_json::from_str(&s.ok(&["audit", "verify", "--json"])).unwrap();
    assert_eq!(v["report"]["size"], INIT_ENTRIES + 1200);
    assert_eq!(v["report"]["sink_lines"], INIT_ENTRIES + 1200);
}
