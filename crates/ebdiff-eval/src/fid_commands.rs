//! The `cargo xtask fid` and `fid-stats` commands as library calls: their options, the run over
//! [`crate::pipeline`], and what they print. (`cargo xtask eval`, which samples a trained run,
//! is `ebdiff_trainer::fid_eval`: this crate knows no sampler.)

use crate::fid::{DEFAULT_BATCH, FeatureExtractor, FidRecord, SetFeatures};
use crate::inception::DEFAULT_WEIGHTS_DIR;
use crate::kid::KidConfig;
use crate::pipeline::{self, OnProgress, PipelineError};
use burn::tensor::Device;
use ebdiff_core::Collective;
use ebdiff_data::ImageDataConfig;
use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

/// The FID network and the KID settings, shared by every FID command.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct FeatureOptions {
    /// Folder of converted FID weights (`cargo xtask fetch inception`).
    #[cfg_attr(feature = "clap", arg(long, default_value = DEFAULT_WEIGHTS_DIR))]
    pub weights: PathBuf,
    /// Images per forward pass of the FID network.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = DEFAULT_BATCH))]
    pub batch: usize,
    /// KID subsets and subset size (defaults: clean-fid's and torch-fidelity's).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = KidConfig::default().subsets))]
    pub kid_subsets: usize,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = KidConfig::default().subset_size))]
    pub kid_subset_size: usize,
}

impl Default for FeatureOptions {
    fn default() -> Self {
        FeatureOptions {
            weights: PathBuf::from(DEFAULT_WEIGHTS_DIR),
            batch: DEFAULT_BATCH,
            kid_subsets: KidConfig::default().subsets,
            kid_subset_size: KidConfig::default().subset_size,
        }
    }
}

impl FeatureOptions {
    /// The FID network of `weights` on `device`.
    pub fn extractor(&self, device: Device) -> Result<FeatureExtractor, PipelineError> {
        Ok(FeatureExtractor::load(&self.weights, device, self.batch)?)
    }

    pub fn kid(&self) -> KidConfig {
        KidConfig {
            subsets: self.kid_subsets,
            subset_size: self.kid_subset_size,
            ..KidConfig::default()
        }
    }
}

/// What `cargo xtask fid A B` compares.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct FidOptions {
    /// Reference: image folder or .npz statistics.
    pub reference: PathBuf,
    /// Evaluated: image folder or .npz statistics.
    pub evaluated: PathBuf,
    /// Use only the first N images of each folder (sorted by path).
    #[cfg_attr(feature = "clap", arg(long))]
    pub limit: Option<usize>,
    /// Write the result (with its convention) to this JSON file.
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    #[cfg_attr(feature = "clap", command(flatten))]
    pub features: FeatureOptions,
}

impl FidOptions {
    /// Every image of both, the default network and KID settings, no file written.
    pub fn new(reference: impl Into<PathBuf>, evaluated: impl Into<PathBuf>) -> Self {
        FidOptions {
            reference: reference.into(),
            evaluated: evaluated.into(),
            limit: None,
            out: None,
            features: FeatureOptions::default(),
        }
    }
}

/// A comparison and the KID settings it was made with, displayed as `cargo xtask fid` prints it.
#[derive(Debug, Clone)]
pub struct FidReport {
    pub record: FidRecord,
    pub kid: KidConfig,
}

impl fmt::Display for FidReport {
    /// FID to 9 decimals, KID and precision/recall when computed, then the images/s of each
    /// image folder.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmp = &self.record.metrics;
        writeln!(f, "FID {:.9}", cmp.fid)?;
        if let Some(k) = cmp.kid_summary(&self.kid) {
            writeln!(f, "KID {k}")?;
        }
        if let (Some(p), Some(r)) = (cmp.precision, cmp.recall) {
            writeln!(f, "precision {p:.4}  recall {r:.4}")?;
        }
        if let Some(files) = &self.record.files {
            for (path, rate) in [&self.record.reference, &files.evaluated]
                .into_iter()
                .zip(files.images_per_second)
            {
                if let Some(r) = rate {
                    writeln!(f, "{}: {r:.2} images/s", path.display())?;
                }
            }
        }
        Ok(())
    }
}

/// `cargo xtask fid`: FID (and KID, precision/recall when both sides have features) between two
/// image folders or statistics files on `device`, written to `opts.out` when given.
///
/// ```no_run
/// use ebdiff_eval::fid_commands::{FidOptions, fid};
///
/// let opts = FidOptions::new("datasets/cifar10-train.npz", "runs/cifar10/samples");
/// let report = fid(&opts, burn::tensor::Device::flex(), &mut |_progress| {})?;
/// print!("{report}");
/// assert!(report.record.metrics.fid >= 0.0);
/// # Ok::<(), ebdiff_eval::pipeline::PipelineError>(())
/// ```
pub fn fid(
    opts: &FidOptions,
    device: Device,
    progress: OnProgress,
) -> Result<FidReport, PipelineError> {
    let kid = opts.features.kid();
    let fx = opts.features.extractor(device)?;
    let record = pipeline::compare_paths(
        &opts.reference,
        &opts.evaluated,
        opts.limit,
        &fx,
        &kid,
        progress,
    )?;
    if let Some(out) = &opts.out {
        pipeline::write_record(out, &record)?;
    }
    Ok(FidReport { record, kid })
}

/// A dataset whose reference statistics `fid-stats --data` computes, from its default folder
/// under `datasets/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ReferenceData {
    Cifar10Train,
    Cifar10Test,
    MnistTrain,
    MnistTest,
    FashionMnistTrain,
    FashionMnistTest,
}

impl ReferenceData {
    /// The `[data]` table that loads it, and its image shape.
    pub fn config(self) -> (ImageDataConfig, [usize; 3]) {
        let (kind, split, shape) = match self {
            Self::Cifar10Train => ("cifar10", "train", [3, 32, 32]),
            Self::Cifar10Test => ("cifar10", "test", [3, 32, 32]),
            Self::MnistTrain => ("mnist", "train", [1, 28, 28]),
            Self::MnistTest => ("mnist", "test", [1, 28, 28]),
            Self::FashionMnistTrain => ("fashion-mnist", "train", [1, 28, 28]),
            Self::FashionMnistTest => ("fashion-mnist", "test", [1, 28, 28]),
        };
        let text = format!("kind = \"{kind}\"\nsplit = \"{split}\"\n");
        let table = ebdiff_core::parse_toml(&text, "built-in dataset table");
        (table.expect("valid built-in table"), shape)
    }
}

/// What `cargo xtask fid-stats` computes statistics of (one of `data` and `folder`), and where
/// they go.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct FidStatsOptions {
    /// Dataset (its default folder under datasets/) …
    #[cfg_attr(
        feature = "clap",
        arg(long, conflicts_with = "folder", required_unless_present = "folder")
    )]
    pub data: Option<ReferenceData>,
    /// … or a folder of images.
    #[cfg_attr(feature = "clap", arg(long))]
    pub folder: Option<PathBuf>,
    /// Use only the first N images.
    #[cfg_attr(feature = "clap", arg(long))]
    pub limit: Option<usize>,
    /// Output .npz (mu, sigma, features); a JSON of the convention is written beside it.
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: PathBuf,
    #[cfg_attr(feature = "clap", command(flatten))]
    pub features: FeatureOptions,
}

/// Reference statistics as written, displayed as `cargo xtask fid-stats` prints them.
#[derive(Debug, Clone)]
pub struct ReferenceStats {
    pub set: SetFeatures,
    /// The dataset's name or the folder's path.
    pub source: String,
    pub out: PathBuf,
    pub seconds: f64,
}

impl fmt::Display for ReferenceStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} images of {} → {} ({:.0} s)",
            self.set.count,
            self.source,
            self.out.display(),
            self.seconds
        )
    }
}

/// `cargo xtask fid-stats`: reference statistics (`.npz` with mu, sigma and features, and the
/// note of their convention beside it) of a dataset or folder, on every rank of `group`: each
/// rank passes its part of the images, rank 0 gathers them, writes and returns the statistics
/// (the other ranks get `None`).
///
/// ```no_run
/// use ebdiff_eval::fid_commands::{FeatureOptions, FidStatsOptions, ReferenceData, fid_stats};
///
/// let opts = FidStatsOptions {
///     data: Some(ReferenceData::MnistTest),
///     folder: None,
///     limit: Some(1000),
///     out: "datasets/mnist-test-1000.npz".into(),
///     features: FeatureOptions::default(),
/// };
/// let solo = ebdiff_core::Solo;
/// let stats = fid_stats(&opts, burn::tensor::Device::flex(), &solo, &mut |_| {})?;
/// print!("{}", stats.expect("one process is rank 0"));
/// # Ok::<(), ebdiff_eval::pipeline::PipelineError>(())
/// ```
pub fn fid_stats(
    opts: &FidStatsOptions,
    device: Device,
    group: &dyn Collective,
    progress: OnProgress,
) -> Result<Option<ReferenceStats>, PipelineError> {
    if opts.data.is_none() && opts.folder.is_none() {
        return Err(PipelineError::Invalid(
            "pass --data DATASET or --folder DIR".into(),
        ));
    }
    let fx = opts.features.extractor(device)?;
    let t0 = Instant::now();
    let (set, source) = match (opts.data, &opts.folder) {
        (Some(d), _) => {
            let (cfg, shape) = d.config();
            let name = format!("{d:?}");
            let set =
                pipeline::dataset_set_on(group, &cfg, shape, opts.limit, &fx, &name, progress)?;
            (set, name)
        }
        (None, Some(folder)) => (
            pipeline::load_set_on(group, folder, &fx, opts.limit, progress)?.0,
            folder.display().to_string(),
        ),
        (None, None) => unreachable!("checked above"),
    };
    let Some(set) = set else {
        return Ok(None);
    };
    pipeline::write_reference(&opts.out, &set, &source, &fx, &opts.features.kid())?;
    Ok(Some(ReferenceStats {
        set,
        source,
        out: opts.out.clone(),
        seconds: t0.elapsed().as_secs_f64(),
    }))
}
