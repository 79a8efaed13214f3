//! `cargo xtask fid`, `fid-stats` and `eval`: the options of [`ebdiff_eval::fid_commands`] and
//! [`ebdiff_trainer::fid_eval`], with progress bars.

use crate::progress::StageBars;
use anyhow::Result;
use ebdiff_core::BackendKind;
use ebdiff_eval::fid_commands::{FidOptions, FidStatsOptions};
use ebdiff_trainer::fid_eval::{FidEvalOptions, evaluate_run};

pub fn fid(opts: FidOptions, backend: BackendKind) -> Result<()> {
    let mut bars = StageBars::default();
    let report =
        ebdiff_eval::fid_commands::fid(&opts, crate::device(backend)?, &mut |p| bars.show(p))?;
    print!("{report}");
    Ok(())
}

/// On several ranks each passes its part of the images; rank 0 gets them all and writes.
pub fn fid_stats(opts: FidStatsOptions, backend: BackendKind) -> Result<()> {
    let group = crate::group();
    let mut bars = StageBars::for_rank(group.as_ref());
    let written = ebdiff_eval::fid_commands::fid_stats(
        &opts,
        crate::device(backend)?,
        group.as_ref(),
        &mut |p| bars.show(p),
    )?;
    if let Some(written) = written {
        print!("{written}");
    }
    Ok(())
}

/// On several ranks rank r generates shards r, r + N, …; rank 0 compares and writes.
pub fn eval(opts: FidEvalOptions, backend: BackendKind) -> Result<()> {
    let group = crate::group();
    let mut bars = StageBars::for_rank(group.as_ref());
    let device = crate::device(backend)?;
    if let Some(report) = evaluate_run(&opts, &device, group.as_ref(), &mut |p| bars.show(p))? {
        print!("{report}");
    }
    Ok(())
}
