//! `cargo xtask report RUN`: the run's HTML report (curves, samples by step, resumptions,
//! results, config) in RUN/report/index.html.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ReportArgs {
    /// Run directory (written by `cargo xtask train`).
    run: PathBuf,
}

pub fn run(args: ReportArgs) -> Result<()> {
    let index = ebdiff_trainer::report::write_run_report(&args.run)?;
    println!("report: {}", index.display());
    Ok(())
}
