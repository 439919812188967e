//! `breakglass bench ledger`: append, prove and verify benchmarks on the real
//! ledger, real SQLite (WAL, synchronous=FULL) and the real file sink, in a
//! scratch data directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use breakglass_core::entry::EntryDraft;
use breakglass_store::verify::{VerifyOptions, verify_log};
use breakglass_tlog::proof::verify_inclusion;
use serde::Serialize;
use serde_json::json;

use super::measure::{ms, percentile};
use crate::cli::BenchLedgerArgs;
use crate::datadir::{DataDir, Location, SystemClock};
use crate::error::{CliResult, bad_input, internal};
use crate::print_json;

#[derive(Debug, Serialize)]
struct Figures {
    data_dir: Option<String>,
    entries: u64,
    appenders: u64,
    append_seconds: f64,
    appends_per_second: f64,
    append_latency_ms_p50: f64,
    append_latency_ms_p99: f64,
    rate_target_per_second: u64,
    rate_achieved_per_second: f64,
    rate_latency_ms_p50: f64,
    rate_latency_ms_p99: f64,
    log_size: u64,
    proofs: u64,
    prove_cold_us_p50: f64,
    prove_cold_us_p99: f64,
    prove_warm_us_p50: f64,
    prove_warm_us_p99: f64,
    verify_seconds: f64,
    db_bytes: u64,
}

fn draft(writer: u64, seq: u64) -> EntryDraft {
    // A realistic entry: a protected push under a grant, about 300 bytes.
    EntryDraft::new(
        format!("engineer-{writer}"),
        "git.push",
        json!({
            "repo": "payments/api",
            "ref": "refs/heads/main",
            "old": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
            "new": "9fceb02d0ae598e95dc970b74767f19372d61af8",
            "commits": seq % 5 + 1,
            "writer": writer,
            "seq": seq,
        }),
    )
    .with_grant(format!("g_{writer:04}"))
}

pub async fn ledger(args: BenchLedgerArgs) -> CliResult {
    if args.appenders == 0 || args.entries == 0 {
        return Err(bad_input("--entries and --appenders must be at least 1"));
    }
    let scratch;
    let root = match &args.keep {
        Some(dir) if dir.exists() => {
            return Err(bad_input(format!("--keep {}: the directory already exists", dir.display())));
        }
        Some(dir) => dir.clone(),
        None => {
            scratch = tempfile::tempdir().map_err(|e| internal(format!("cannot make a scratch directory: {e}")))?;
            scratch.path().join("data")
        }
    };
    let (data, _) = DataDir::init(&Location::at(&root), Some("bench.breakglass.local/ledger".into())).await?;
    let ledger = data.ledger_with(Arc::new(SystemClock), !args.no_sink).await?;

    // Phase 1: throughput with N concurrent appenders, each waiting for its acknowledgement.
    eprintln!("appending {} entries with {} concurrent appenders...", args.entries, args.appenders);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..args.appenders {
        let ledger = ledger.clone();
        let next = next.clone();
        let total = args.entries;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    break;
                }
                let t = Instant::now();
                ledger.append(draft(writer, seq)).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, breakglass_store::ledger::AppendError>(lat)
        }));
    }
    let mut latencies = Vec::with_capacity(args.entries as usize);
    for t in tasks {
        let lat = t.await.map_err(|e| internal(e.to_string()))?.map_err(|e| internal(e.to_string()))?;
        latencies.extend(lat);
    }
    let append_elapsed = started.elapsed();
    latencies.sort_unstable();

    // Phase 2: acknowledged-append latency at a fixed offered rate (open loop).
    let rate = args.rate.max(1);
    let n_rate = rate * args.rate_seconds;
    eprintln!("appending {n_rate} entries at {rate}/s...");
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let rate_started = Instant::now();
    let mut rate_tasks = Vec::with_capacity(n_rate as usize);
    for seq in 0..n_rate {
        ticker.tick().await;
        let ledger = ledger.clone();
        rate_tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            ledger.append(draft(u64::MAX, seq)).await.map(|_| t.elapsed())
        }));
    }
    let mut rate_lat = Vec::with_capacity(n_rate as usize);
    for t in rate_tasks {
        rate_lat.push(t.await.map_err(|e| internal(e.to_string()))?.map_err(|e| internal(e.to_string()))?);
    }
    let rate_elapsed = rate_started.elapsed();
    rate_lat.sort_unstable();

    // Phase 3: inclusion proofs against the latest checkpoint, checked as
    // they are made: first with the reader's block cache cold (each proof may
    // read the database), then the same indexes again with it warm.
    let reader = ledger.reader().clone();
    let head = reader.head().await?;
    eprintln!("proving {} entries in a log of {}...", args.proofs, head.size);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let indexes: Vec<u64> = (0..args.proofs)
        .map(|_| {
            // xorshift: spread the indexes over the whole log without a dependency.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % head.size
        })
        .collect();
    let mut passes = Vec::new();
    for _pass in 0..2 {
        let mut lat = Vec::with_capacity(indexes.len());
        for &index in &indexes {
            let t = Instant::now();
            let proof = reader.prove_inclusion(index, head.size).await?;
            lat.push(t.elapsed());
            let entry = reader.store().entries(index, index + 1).await?;
            let leaf = entry.first().and_then(|e| e.hashes.first()).ok_or_else(|| internal("entry vanished"))?;
            verify_inclusion(index, head.size, &leaf.0, &proof, &head.root.0)
                .map_err(|e| internal(format!("benchmark proof for {index} did not verify: {e}")))?;
        }
        lat.sort_unstable();
        passes.push(lat);
    }
    let (cold, warm) = (&passes[0], &passes[1]);

    ledger.shutdown().await;

    // Phase 4: verify the whole log from the stored entries.
    eprintln!("verifying the whole log...");
    let reader = data.reader(None).await?;
    let sink = data.sink_path();
    let t = Instant::now();
    let sink = (!args.no_sink).then_some(sink.as_path());
    let report = verify_log(&reader, VerifyOptions { since: None, sink })
        .await
        .map_err(|e| internal(format!("benchmark log did not verify: {e}")))?;
    let verify_elapsed = t.elapsed();

    let db_bytes = ["breakglass.db", "breakglass.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.path(f)).ok())
        .map(|m| m.len())
        .sum();
    let figures = Figures {
        data_dir: args.keep.as_ref().map(|p| p.display().to_string()),
        entries: args.entries,
        appenders: args.appenders,
        append_seconds: append_elapsed.as_secs_f64(),
        appends_per_second: args.entries as f64 / append_elapsed.as_secs_f64(),
        append_latency_ms_p50: ms(percentile(&latencies, 0.5)),
        append_latency_ms_p99: ms(percentile(&latencies, 0.99)),
        rate_target_per_second: rate,
        rate_achieved_per_second: n_rate as f64 / rate_elapsed.as_secs_f64(),
        rate_latency_ms_p50: ms(percentile(&rate_lat, 0.5)),
        rate_latency_ms_p99: ms(percentile(&rate_lat, 0.99)),
        log_size: report.size,
        proofs: args.proofs,
        prove_cold_us_p50: percentile(cold, 0.5).as_secs_f64() * 1e6,
        prove_cold_us_p99: percentile(cold, 0.99).as_secs_f64() * 1e6,
        prove_warm_us_p50: percentile(warm, 0.5).as_secs_f64() * 1e6,
        prove_warm_us_p99: percentile(warm, 0.99).as_secs_f64() * 1e6,
        verify_seconds: verify_elapsed.as_secs_f64(),
        db_bytes,
    };
    if args.json {
        print_json(&figures);
    } else {
        println!("ledger benchmark (SQLite WAL, synchronous=FULL, file sink fsynced)");
        println!(
            "  append: {} entries, {} appenders: {:.0} entries/s ({:.2} s), latency p50 {:.2} ms, p99 {:.2} ms",
            figures.entries,
            figures.appenders,
            figures.appends_per_second,
            figures.append_seconds,
            figures.append_latency_ms_p50,
            figures.append_latency_ms_p99
        );
        println!(
            "  append at {}/s: achieved {:.0}/s, latency p50 {:.2} ms, p99 {:.2} ms",
            figures.rate_target_per_second,
            figures.rate_achieved_per_second,
            figures.rate_latency_ms_p50,
            figures.rate_latency_ms_p99
        );
        println!(
            "  prove: {} inclusion proofs in a log of {}: cache cold p50 {:.1} us, p99 {:.1} us; warm p50 {:.1} us, p99 {:.1} us",
            figures.proofs,
            figures.log_size,
            figures.prove_cold_us_p50,
            figures.prove_cold_us_p99,
            figures.prove_warm_us_p50,
            figures.prove_warm_us_p99
        );
        println!("  verify: {} entries in {:.2} s", figures.log_size, figures.verify_seconds);
        println!("  database: {:.1} MiB", figures.db_bytes as f64 / (1 << 20) as f64);
        if let Some(d) = &figures.data_dir {
            println!("  kept: {d}");
        }
    }
    Ok(())
}
