//! The flags of every command whose options a library crate defines: given no flag, the parsed
//! options are the library's defaults (clap's defaults are written beside the fields, the
//! library's in `Default` or `new`; this keeps the two one).

use clap::{Args, Parser};
use ebdiff_bench::profile::ProfileStepsOptions;
use ebdiff_bench::{DataParallelOptions, EvalOptions, FidFeaturesOptions, TrainStepOptions};
use ebdiff_eval::fid_commands::{FeatureOptions, FidOptions, FidStatsOptions};
use ebdiff_model::gradcheck::GradcheckOptions;
use ebdiff_trainer::fid_eval::FidEvalOptions;
use std::fmt::Debug;

#[derive(Parser)]
struct Cli<T: Args> {
    #[command(flatten)]
    options: T,
}

fn parsed<T: Args>(flags: &[&str]) -> T {
    Cli::<T>::parse_from(std::iter::once("xtask").chain(flags.iter().copied())).options
}

fn defaults_agree<T: Args + Default + PartialEq + Debug>() {
    assert_eq!(parsed::<T>(&[]), T::default());
}

#[test]
fn no_flag_gives_the_library_defaults() {
    defaults_agree::<GradcheckOptions>();
    defaults_agree::<FeatureOptions>();
    defaults_agree::<TrainStepOptions>();
    defaults_agree::<EvalOptions>();
    defaults_agree::<DataParallelOptions>();
    defaults_agree::<FidFeaturesOptions>();
    assert_eq!(parsed::<FidOptions>(&["a", "b"]), FidOptions::new("a", "b"));
    assert_eq!(
        parsed::<FidEvalOptions>(&["--checkpoint", "runs/x"]),
        FidEvalOptions::new("runs/x")
    );
    let stats: FidStatsOptions = parsed(&["--folder", "f", "--out", "o.npz"]);
    assert_eq!(stats.features, FeatureOptions::default());
    assert_eq!((stats.data, stats.limit), (None, None));
    let child: ProfileStepsOptions = parsed(&["--batch", "2", "--steps", "3", "--marks", "m"]);
    assert_eq!((child.batch, child.steps, child.config), (2, 3, None));
}
