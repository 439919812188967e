//! placeholder
use crate::cli::BenchLedgerArgs;
use crate::error::CliResult;
pub async fn ledger(_args: BenchLedgerArgs) -> CliResult {
    Ok(())
}
