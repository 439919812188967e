//! `breakglass audit …`: the interfaces an outside auditor relies on.

use std::io::Write as _;
use std::path::Path;

use breakglass_core::entry::Entry;
use breakglass_core::time::Timestamp;
use breakglass_store::ledger::SINK_DEPTH;
use breakglass_store::verify::{SinkFloor, VerifyError, VerifyOptions, VerifyPlan, verify_log_planned};
use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::note::NoteVerifier;
use breakglass_tlog::tlog_proof::TlogProof;
use serde_json::json;

use crate::cli::AuditCommand;
use crate::datadir::{DataDir, Location, parse_verifier_key};
use crate::error::{CliResult, bad_input, check_failed, internal};
use crate::print_json;

fn write_out(path: Option<&Path>, bytes: &[u8]) -> CliResult {
    match path {
        Some(p) => std::fs::write(p, bytes).map_err(|e| bad_input(format!("cannot write {}: {e}", p.display()))),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|_| out.flush()).map_err(|e| internal(format!("cannot write to stdout: {e}")))
        }
    }
}

fn read_input(path: &Path, what: &str) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| bad_input(format!("cannot read {what} {}: {e}", path.display())))
}

pub async fn run(loc: &Location, cmd: AuditCommand) -> CliResult {
    // verify-proof is offline: it must work with no data directory at all.
    if let AuditCommand::VerifyProof { proof, entry, key, origin, json } = cmd {
        return verify_proof(&proof, &entry, &key, origin.as_deref(), json);
    }
    // So is a report's verification.
    if let AuditCommand::Verify { report: Some(report), key, json, .. } = &cmd {
        return verify_report(report, key.as_deref(), *json);
    }
    if let AuditCommand::Verify { bundle: Some(bundle), key, json, .. } = &cmd {
        return verify_bundle(bundle, key.as_deref(), *json);
    }
    let data = DataDir::open(loc)?;
    match cmd {
        AuditCommand::Key { json } => {
            let key = data.signer()?.verifier();
            if json {
                print_json(&json!({ "origin": data.config.log.origin, "verifier_key": key.to_string() }));
            } else {
                println!("{key}");
            }
        }
        AuditCommand::Checkpoint { json } => {
            let head = data.reader(None).await?.head().await?;
            if json {
                print_json(&json!({ "size": head.size, "root": head.root.to_base64(), "note": head.note }));
            } else {
                write_out(None, head.note.as_bytes())?;
            }
        }
        AuditCommand::Show { index, raw, json } => {
            let record = data.reader(None).await?.entry(index).await?;
            if raw {
                write_out(None, &record.data)?;
            } else {
                let entry = Entry::decode(&record.data)
                    .map_err(|e| check_failed(format!("entry {index} is not a valid entry: {e}")))?;
                if json {
                    print_json(&entry.to_json());
                } else {
                    print_entry(&entry, true);
                }
            }
        }
        AuditCommand::Tail { lines, json } => {
            let reader = data.reader(None).await?;
            let size = reader.size().await?;
            let records = reader.store().entries(size.saturating_sub(lines), size).await?;
            let entries = records
                .iter()
                .map(|r| {
                    Entry::decode(&r.data).map_err(|e| check_failed(format!("entry {} is not valid: {e}", r.index)))
                })
                .collect::<CliResult<Vec<_>>>()?;
            if json {
                print_json(&entries.iter().map(Entry::to_json).collect::<Vec<_>>());
            } else {
                for e in &entries {
                    print_entry(e, false);
                }
            }
        }
        AuditCommand::Prove { index, out, entry_out, json } => {
            let (proof, record) = data.reader(None).await?.tlog_proof(index).await?;
            if let Some(p) = entry_out {
                std::fs::write(&p, &record.data)
                    .map_err(|e| bad_input(format!("cannot write {}: {e}", p.display())))?;
            }
            if json {
                let body = &proof.checkpoint[..proof.checkpoint.find("\n\n").map_or(0, |i| i + 1)];
                let size = Checkpoint::parse_text(body).map(|c| c.size).ok();
                print_json(&json!({
                    "index": proof.index,
                    "size": size,
                    "hashes": proof.hashes.iter().map(|h| h.to_base64()).collect::<Vec<_>>(),
                    "checkpoint": proof.checkpoint,
                    "proof": proof.to_text(),
                    "entry": String::from_utf8_lossy(&record.data),
                }));
            } else {
                write_out(out.as_deref(), proof.to_text().as_bytes())?;
            }
        }
        AuditCommand::Verify { since, key, json, .. } => {
            let key = key.as_deref().map(parse_verifier_key).transpose()?;
            let reader = data.reader(key.as_ref()).await?;
            let saved = since
                .as_deref()
                .map(|p| read_saved_checkpoint(p, &data.config.log.origin, reader.verifier()))
                .transpose()?;
            let sink = data.sink_path();
            let opts = VerifyOptions { since: saved.as_ref(), sink: Some(&sink) };
            // Issue 14: the sink may lack only what a crash can leave out
            // (the batches in flight; on SQLite every writer writes this one
            // sink), and never entries the checkpoint the server saved after
            // catching it up covers.
            let anchor_path = data.path(breakglass_store::anchor::VERIFIED_CHECKPOINT_FILE);
            let anchor = match breakglass_store::anchor::load(&anchor_path, &data.config.log.origin, reader.verifier())
            {
                Ok(a) => a,
                // The file is signed by the data directory's key; an auditor
                // who pins another key does not trust it, and only loses its floor.
                Err(_) if key.is_some() => None,
                Err(e) => return Err(check_failed(e.to_string())),
            };
            let sink_floor = SinkFloor {
                at_least: anchor.map_or(0, |a| a.checkpoint.size),
                window: data.config.database.url.is_empty().then_some(SINK_DEPTH),
                enforce: true,
            };
            let plan = VerifyPlan { start: None, sink_floor };
            match verify_log_planned(&reader, opts, plan).await {
                Ok(report) => {
                    if json {
                        print_json(&json!({ "ok": true, "report": report }));
                    } else {
                        println!(
                            "ok: {} entries, root {}, {} signed checkpoints verified{}{}",
                            report.size,
                            report.root,
                            report.checkpoints,
                            report
                                .since
                                .map(|s| format!(", consistent with the saved checkpoint of size {s}"))
                                .unwrap_or_default(),
                            report
                                .sink_lines
                                .map(|n| match report.size - n.min(report.size) {
                                    0 => format!(", sink matches ({n} lines)"),
                                    k => format!(
                                        ", sink matches ({n} lines; it lacks the last {k} entries, of the batches in flight at the last stop, which the next append copies)"
                                    ),
                                })
                                .unwrap_or_default(),
                        );
                    }
                }
                Err(VerifyError::Failed(f)) => {
                    if json {
                        print_json(&json!({
                            "ok": false, "first_bad_index": f.index, "problem": f.problem, "sink_lacks": f.sink_lacks,
                        }));
                    }
                    let next = match f.sink_lacks {
                        Some(_) => format!(
                            "\nnext: keep the copy as evidence (cp {} {}.evidence) and compare it with your exported copies; the next 'breakglass serve --data-dir {}' copies the missing entries back from the database and records the repair in the log",
                            sink.display(),
                            sink.display(),
                            data.root.display()
                        ),
                        None => String::new(),
                    };
                    return Err(check_failed(format!("audit log verification failed: {f}{next}")));
                }
                Err(VerifyError::Store(e)) => return Err(e.into()),
                Err(e) => return Err(internal(e.to_string())),
            }
        }
        AuditCommand::Export { bundle: Some(file), from, to, json, .. } => {
            let reader = data.reader(None).await?;
            export_bundle(&reader, &file, from.as_deref().unwrap_or(""), to.as_deref().unwrap_or(""), json).await?;
        }
        AuditCommand::Export { out, json, .. } => {
            let out = out.ok_or_else(|| bad_input("--out DIR or --bundle FILE is required"))?;
            let reader = data.reader(None).await?;
            let report =
                breakglass_store::export::export_tiles(&reader, &out).await.map_err(|e| internal(e.to_string()))?;
            if json {
                print_json(&report);
            } else {
                println!(
                    "exported {} entries to {}: {} files written, {} already present",
                    report.size,
                    out.display(),
                    report.written,
                    report.skipped
                );
            }
        }
        AuditCommand::Digest { purpose, json } => {
            let mut secret = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut secret)
                .map_err(|e| bad_input(format!("cannot read the secret from standard input: {e}")))?;
            // A trailing newline from `echo` or a terminal is not part of the secret.
            while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                secret.pop();
            }
            if secret.is_empty() {
                return Err(bad_input("no secret on standard input"));
            }
            let digest = data.digester()?.digest(&purpose, &secret);
            if json {
                print_json(&json!({ "purpose": purpose, "digest": digest }));
            } else {
                println!("{digest}");
            }
        }
        AuditCommand::VerifyProof { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// An entry for a terminal. Its text was written by whoever caused it (a
/// requester's reason, a webhook's title), so every character a terminal
/// would obey is shown escaped (JSON escapes only those below U+0020).
fn print_entry(e: &Entry, full: bool) {
    use crate::display::{line, prose};
    let grant = line(e.grant.as_deref().unwrap_or("-")).into_owned();
    let (actor, kind) = (line(&e.actor), line(&e.kind));
    if full {
        println!("index  {}\ntime   {}\nactor  {actor}\nkind   {kind}\ngrant  {grant}", e.index, e.time);
        println!("data   {}", prose(&serde_json::to_string_pretty(&e.data).unwrap_or_default()));
    } else {
        println!("{:>8}  {}  {:<24}  {:<16}  {grant}", e.index, e.time, kind, actor);
    }
}

fn read_saved_checkpoint(path: &Path, origin: &str, key: &NoteVerifier) -> CliResult<Checkpoint> {
    let bytes = read_input(path, "saved checkpoint")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| bad_input(format!("saved checkpoint {} is not UTF-8 text", path.display())))?;
    Checkpoint::open(&text, origin, std::slice::from_ref(key)).map_err(|e| {
        bad_input(format!("saved checkpoint {} is not a valid checkpoint signed by this log: {e}", path.display()))
    })
}

/// A `--from`/`--to` value: a date (its first or last millisecond, UTC) or RFC 3339.
fn range_time(flag: &str, v: &str, end: bool) -> CliResult<Timestamp> {
    let v = v.trim();
    if v.len() == 10 && v.as_bytes()[4] == b'-' && v.as_bytes()[7] == b'-' {
        let t = if end { format!("{v}T23:59:59.999Z") } else { format!("{v}T00:00:00Z") };
        return Timestamp::parse(&t)
            .map_err(|_| bad_input(format!("{flag} {v:?}: expected a date like 2026-11-01 or RFC 3339")));
    }
    Timestamp::parse(v).map_err(|_| bad_input(format!("{flag} {v:?}: expected a date like 2026-11-01 or RFC 3339")))
}

async fn export_bundle(
    reader: &breakglass_store::reader::LogReader,
    file: &Path,
    from: &str,
    to: &str,
    json: bool,
) -> CliResult {
    use breakglass_core::bundle::{BUNDLE_FORMAT, Bundle};
    use breakglass_core::report::ProvenEntry;
    let (from, to) = (range_time("--from", from, false)?, range_time("--to", to, true)?);
    if to < from {
        return Err(bad_input(format!("--to {} is before --from {}", to.to_rfc3339(), from.to_rfc3339())));
    }
    let head = reader.head().await.map_err(|e| internal(e.to_string()))?;
    let time_of = |i: u64| async move {
        let rec = reader.entry(i).await.map_err(|e| internal(e.to_string()))?;
        Entry::decode(&rec.data).map(|e| e.time).map_err(|e| internal(format!("entry {i}: {e}")))
    };
    // The first index whose time is after `t` (or at it, when `inclusive`): entries' times never decrease.
    let bound = async |t: Timestamp, inclusive: bool| -> CliResult<u64> {
        let (mut lo, mut hi) = (0, head.size);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at = time_of(mid).await?;
            if (inclusive && at < t) || (!inclusive && at <= t) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    };
    let start = bound(from, true).await?;
    let end = bound(to, false).await?.max(start);
    let prove = |index: u64| async move {
        let rec = reader.entry(index).await.map_err(|e| internal(e.to_string()))?;
        let proof = reader.prove_inclusion(index, head.size).await.map_err(|e| internal(e.to_string()))?;
        Ok::<_, crate::error::CliError>(ProvenEntry {
            index,
            entry: String::from_utf8(rec.data).map_err(|_| internal(format!("entry {index} is not UTF-8")))?,
            proof: proof.iter().map(|h| h.to_base64()).collect(),
        })
    };
    let mut entries = Vec::new();
    for i in start..end {
        entries.push(prove(i).await?);
    }
    let before = if start > 0 { Some(prove(start - 1).await?) } else { None };
    let after = if end < head.size { Some(prove(end).await?) } else { None };
    let bundle = Bundle {
        format: BUNDLE_FORMAT.into(),
        origin: reader.origin().to_owned(),
        log_key: reader.verifier().to_string(),
        checkpoint: head.note.clone(),
        from: from.to_rfc3339(),
        to: to.to_rfc3339(),
        start,
        end,
        entries,
        before,
        after,
    };
    let text = serde_json::to_string_pretty(&bundle).map_err(|e| internal(e.to_string()))?;
    // Written whole or not at all: a temporary file beside it, renamed into place.
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(file).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| bad_input(format!("cannot write the bundle {}: {e}", file.display())))?;
    if json {
        print_json(&json!({ "bundle": file, "start": start, "end": end, "entries": end - start, "size": head.size }));
    } else {
        println!(
            "wrote {} entries ({}..{}, {} to {}) with their proofs at tree size {} to {}",
            end - start,
            start,
            end,
            bundle.from,
            bundle.to,
            head.size,
            file.display()
        );
    }
    Ok(())
}

fn verify_bundle(path: &Path, key: Option<&str>, json: bool) -> CliResult {
    let text = read_input(path, "bundle")?;
    let bundle: breakglass_core::bundle::Bundle = serde_json::from_slice(&text)
        .map_err(|e| check_failed(format!("bundle {} does not verify: not a bundle: {e}", path.display())))?;
    let pinned = key.map(parse_verifier_key).transpose()?;
    let v = breakglass_core::bundle::verify(&bundle, pinned.as_ref())
        .map_err(|e| check_failed(format!("bundle {} does not verify: {e}", path.display())))?;
    if json {
        print_json(&json!({
            "ok": true, "start": v.start, "end": v.end, "entries": v.end - v.start,
            "origin": v.checkpoint.origin, "size": v.checkpoint.size, "key_pinned": pinned.is_some(),
        }));
    } else {
        println!(
            "ok: entries {}..{} ({} to {}) are complete and each proven in {} at tree size {}{}",
            v.start,
            v.end,
            bundle.from,
            bundle.to,
            v.checkpoint.origin,
            v.checkpoint.size,
            if pinned.is_some() { "" } else { "; checked against the key the bundle carries (pass --key to pin it)" }
        );
    }
    Ok(())
}

fn verify_report(path: &Path, key: Option<&str>, json: bool) -> CliResult {
    let text = String::from_utf8(read_input(path, "report")?)
        .map_err(|_| bad_input(format!("report {} is not UTF-8 text", path.display())))?;
    let pinned = key.map(parse_verifier_key).transpose()?;
    let report = breakglass_core::report::read(&text)
        .map_err(|e| check_failed(format!("report {} does not verify: {e}", path.display())))?;
    let v = breakglass_core::report::verify(&report, pinned.as_ref())
        .map_err(|e| check_failed(format!("report {} does not verify: {e}", path.display())))?;
    let key_note =
        if pinned.is_some() { "the pinned key" } else { "the key the report carries (pass --key to pin it)" };
    if json {
        print_json(&json!({
            "ok": true, "review": v.review, "grant": v.grant, "events": v.events,
            "origin": v.checkpoint.origin, "size": v.checkpoint.size, "root": v.checkpoint.root.to_base64(),
            "key_pinned": pinned.is_some(),
        }));
    } else {
        println!(
            "ok: review {} of grant {}: {} entries, each proven in {} at tree size {}, none missing; checked against {key_note}",
            v.review, v.grant, v.events, v.checkpoint.origin, v.checkpoint.size
        );
    }
    Ok(())
}

fn verify_proof(proof: &Path, entry: &Path, key: &str, origin: Option<&str>, json: bool) -> CliResult {
    let key = parse_verifier_key(key)?;
    let text = String::from_utf8(read_input(proof, "proof")?)
        .map_err(|_| bad_input(format!("proof {} is not UTF-8 text", proof.display())))?;
    let parsed = TlogProof::parse(&text).map_err(|e| bad_input(format!("proof {}: {e}", proof.display())))?;
    let entry_bytes = read_input(entry, "entry")?;
    let origin = origin.unwrap_or(key.name());
    let cp = parsed
        .verify(&entry_bytes, origin, &key)
        .map_err(|e| check_failed(format!("proof {} does not verify: {e}", proof.display())))?;
    if json {
        print_json(
            &json!({ "ok": true, "index": parsed.index, "size": cp.size, "root": cp.root.to_base64(), "origin": cp.origin }),
        );
    } else {
        println!("ok: entry {} is in {} at tree size {} (root {})", parsed.index, cp.origin, cp.size, cp.root);
    }
    Ok(())
}
