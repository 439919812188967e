//! `breakglass debug …` (hidden): helpers for tests and for operators
//! reproducing a problem. `debug append` drives the real ledger with several
//! concurrent writers and prints each acknowledgement as it happens, so a
//! crash test can kill the process at any moment and then check that every
//! acknowledged entry survived.

use std::io::Write as _;
use std::sync::Arc;

use breakglass_core::entry::EntryDraft;
use serde_json::json;

use crate::cli::DebugCommand;
use crate::datadir::{DataDir, Location, SystemClock};
use crate::error::{CliResult, bad_input, internal};

pub async fn run(loc: &Location, cmd: DebugCommand) -> CliResult {
    let DebugCommand::Append { count, writers, label, pad } = cmd;
    let data = DataDir::open(loc)?;
    let ledger = data.ledger(Arc::new(SystemClock)).await?;
    let padding = "x".repeat(pad);
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let ledger = ledger.clone();
        let label = label.clone();
        let padding = padding.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 0..count {
                let draft = EntryDraft::new(
                    "debug",
                    "debug.append",
                    json!({ "label": label, "writer": writer, "seq": seq, "pad": padding }),
                );
                let receipt = ledger.append(draft).await?;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "ack {} {writer} {seq}", receipt.index);
                let _ = out.flush();
            }
            Ok::<_, breakglass_store::ledger::AppendError>(())
        }));
    }
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => return Err(internal(format!("writer task failed: {e}"))),
        }
    }
    ledger.shutdown().await;
    match first_err {
        None => Ok(()),
        Some(breakglass_store::ledger::AppendError::Invalid(e)) => Err(bad_input(format!("invalid entry: {e}"))),
        Some(e) => Err(internal(e.to_string())),
    }
}
