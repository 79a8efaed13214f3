//! FID, KID and precision/recall of image sets with the FID Inception network, the record of
//! the convention every result file carries (so a number can be compared with a published one),
//! and the one result record ([`FidRecord`]) every FID command and sweep cell writes.

use crate::inception::{
    FEATURE_DIM, InceptionError, InceptionV3, WeightsProvenance, load_inception,
};
use crate::{
    FeatureStats, KidConfig, KidEstimate, PR_NEIGHBOURHOOD, frechet_distance,
    kernel_inception_distance,
};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Images per forward pass of the FID network unless a caller says otherwise.
pub const DEFAULT_BATCH: usize = 50;

/// `shape` as the `[c, h, w]` of images the FID network takes (1 or 3 channels), or why not.
pub fn fid_image_shape(shape: &[usize]) -> Result<[usize; 3], String> {
    match *shape {
        [c, h, w] if (c == 1 || c == 3) && h > 0 && w > 0 => Ok([c, h, w]),
        _ => Err(format!(
            "FID, KID and precision/recall score grey or RGB images ([1 or 3, height, width]); \
             these samples have shape {shape:?}"
        )),
    }
}

/// How the features and metrics were computed: copied into every result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FidConvention {
    pub network: String,
    pub weights_source: String,
    pub weights_sha256: String,
    pub resize: String,
    pub input_mapping: String,
    pub statistics: String,
    pub kid: String,
    pub precision_recall: String,
}

impl FidConvention {
    pub fn new(p: &WeightsProvenance, kid: &KidConfig) -> Self {
        Self {
            network: p.network.clone(),
            weights_source: p.source_file.clone(),
            weights_sha256: p.source_sha256.clone(),
            resize: "TF1 bilinear to 299x299 without half-pixel offset (TF FID graph, \
                     clean-fid legacy_tensorflow, torch-fidelity)"
                .into(),
            input_mapping: "float pixels p in [0, 255] -> (p - 128) / 128; grey repeated to RGB"
                .into(),
            statistics: "float64 mean and unbiased covariance; Frechet distance by symmetric \
                         eigendecomposition"
                .into(),
            kid: format!(
                "unbiased MMD^2, kernel (x.y/d + 1)^3, {} subsets of {} (seed {})",
                kid.subsets, kid.subset_size, kid.seed
            ),
            precision_recall: format!(
                "k = {PR_NEIGHBOURHOOD} nearest neighbours on pool3 features"
            ),
        }
    }
}

/// The FID network on a device, fed in batches.
pub struct FeatureExtractor {
    net: InceptionV3,
    provenance: WeightsProvenance,
    device: Device,
    batch_size: usize,
}

impl FeatureExtractor {
    /// Loads converted weights from `weights_dir` (see `cargo xtask fetch inception`).
    pub fn load(
        weights_dir: &Path,
        device: Device,
        batch_size: usize,
    ) -> Result<Self, InceptionError> {
        let (net, provenance) = load_inception(weights_dir, &device)?;
        Ok(Self {
            net,
            provenance,
            device,
            batch_size: batch_size.max(1),
        })
    }

    pub fn provenance(&self) -> &WeightsProvenance {
        &self.provenance
    }

    /// Pool3 features `[n, 2048]` (row-major) of `n` uint8 CHW images of `shape` (1 or 3
    /// channels). `progress(done)` is called after every batch.
    pub fn features_u8(
        &self,
        images: &[u8],
        shape: [usize; 3],
        progress: &mut dyn FnMut(usize),
    ) -> Vec<f32> {
        let pixels: Vec<f32> = images.iter().map(|&p| p as f32).collect();
        self.features(&pixels, shape, progress)
    }

    /// As [`Self::features_u8`] for float pixels in [0, 255].
    pub fn features(
        &self,
        images: &[f32],
        shape: [usize; 3],
        progress: &mut dyn FnMut(usize),
    ) -> Vec<f32> {
        let [c, h, w] = shape;
        assert!(
            c == 1 || c == 3,
            "the FID network takes grey or RGB images, not {c} channels"
        );
        let per = c * h * w;
        assert_eq!(
            images.len() % per,
            0,
            "pixel count is not a multiple of {shape:?}"
        );
        let n = images.len() / per;
        let mut out = Vec::with_capacity(n * FEATURE_DIM);
        for start in (0..n).step_by(self.batch_size) {
            let b = self.batch_size.min(n - start);
            let chunk = images[start * per..(start + b) * per].to_vec();
            let x = Tensor::<4>::from_data(TensorData::new(chunk, [b, c, h, w]), &self.device);
            let x = if c == 1 { x.repeat_dim(1, 3) } else { x };
            let f = self.net.features(x);
            out.extend(
                f.into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("f32 features"),
            );
            progress(start + b);
        }
        out
    }
}

/// Statistics of one image set, with its features when kept (KID and precision/recall need them).
#[derive(Debug, Clone)]
pub struct SetFeatures {
    pub mu: Vec<f64>,
    pub sigma: Vec<f64>,
    pub count: usize,
    pub features: Option<Vec<f32>>,
}

impl SetFeatures {
    /// Statistics (and features when stored) of an `.npz` written by `fid-stats`, pytorch-fid or
    /// clean-fid (read by [`crate::load_stats_npz`]), checked to be of the FID network's 2048-d
    /// pool3 features.
    pub fn load(path: &Path) -> Result<Self, String> {
        let set = crate::load_stats_npz(path).map_err(|e| e.to_string())?;
        if set.mu.len() != FEATURE_DIM {
            return Err(format!(
                "{}: mu has {} entries: not statistics of {FEATURE_DIM}-d pool3 features",
                path.display(),
                set.mu.len()
            ));
        }
        Ok(set)
    }

    pub fn from_features(features: Vec<f32>) -> Self {
        let mut stats = FeatureStats::new(FEATURE_DIM);
        stats.add_batch(&features);
        Self {
            mu: stats.mean(),
            sigma: stats.covariance(),
            count: stats.count() as usize,
            features: Some(features),
        }
    }
}

/// FID (always), KID and precision/recall (when both sets kept their features).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetComparison {
    pub fid: f64,
    pub kid_mean: Option<f64>,
    pub kid_std: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub count_reference: usize,
    pub count_evaluated: usize,
}

impl SetComparison {
    /// KID as a person reads it (see [`KidEstimate::summary`]), given the subsets it was computed
    /// with; None when KID was not computed.
    pub fn kid_summary(&self, kid: &KidConfig) -> Option<String> {
        let estimate = KidEstimate {
            mean: self.kid_mean?,
            std: self.kid_std?,
            subset_size: kid.subset_size_for(self.count_reference, self.count_evaluated),
            subsets: kid.subsets,
        };
        Some(estimate.summary(self.count_reference, self.count_evaluated))
    }
}

/// Compares `evaluated` with `reference`.
pub fn compare_sets(
    reference: &SetFeatures,
    evaluated: &SetFeatures,
    kid: &KidConfig,
) -> Result<SetComparison, crate::FrechetError> {
    let fid = frechet_distance(
        &reference.mu,
        &reference.sigma,
        &evaluated.mu,
        &evaluated.sigma,
    )?;
    let (mut kid_mean, mut kid_std, mut precision, mut recall) = (None, None, None, None);
    if let (Some(r), Some(e)) = (&reference.features, &evaluated.features)
        && reference.count >= 2
        && evaluated.count >= 2
    {
        let k = kernel_inception_distance(r, e, FEATURE_DIM, kid);
        kid_mean = Some(k.mean);
        kid_std = Some(k.std);
        if reference.count > PR_NEIGHBOURHOOD && evaluated.count > PR_NEIGHBOURHOOD {
            let pr = crate::precision_recall(r, e, FEATURE_DIM, PR_NEIGHBOURHOOD);
            precision = Some(pr.precision);
            recall = Some(pr.recall);
        }
    }
    Ok(SetComparison {
        fid,
        kid_mean,
        kid_std,
        precision,
        recall,
        count_reference: reference.count,
        count_evaluated: evaluated.count,
    })
}

/// The record of one FID comparison, the JSON that `cargo xtask fid --out`, `cargo xtask eval`
/// (`result.json`) and sweep cells (`fid.json`) write: what was compared, the numbers with both
/// image counts, and the convention they were computed with.
#[derive(Debug, Clone, Serialize)]
pub struct FidRecord {
    /// The reference set: a statistics file or an image folder.
    pub reference: PathBuf,
    /// FID, KID, precision/recall and the image count of each set.
    pub metrics: SetComparison,
    pub convention: FidConvention,
    /// How generated images in [−1, 1] became uint8 ([`crate::MODEL_PIXEL_QUANTIZATION`]);
    /// absent when image files were compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// The compared image files or statistics (`cargo xtask fid`).
    #[serde(flatten)]
    pub files: Option<FileSets>,
    /// The generated images (`cargo xtask eval`).
    #[serde(flatten)]
    pub generated: Option<GeneratedSet>,
}

/// Sets read from files: the evaluated path and how they were read.
#[derive(Debug, Clone, Serialize)]
pub struct FileSets {
    /// The evaluated set: an image folder or a statistics file.
    pub evaluated: PathBuf,
    /// Only the first `limit` images of each folder were used.
    pub limit: Option<usize>,
    /// Feature extraction speed for (reference, evaluated); None for statistics files.
    pub images_per_second: [Option<f64>; 2],
}

/// Images generated in resumable shards.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratedSet {
    pub samples: usize,
    /// Which seed made which images.
    pub seeds: String,
    pub reference_count: usize,
    /// Images generated by this invocation (the others came from finished shards).
    pub generated_in_this_run: usize,
    pub seconds_in_this_run: f64,
    /// What generated the images (checkpoint, sampler, steps, labels, …), as the caller
    /// describes it.
    #[serde(flatten)]
    pub generator: serde_json::Map<String, serde_json::Value>,
}

/// The note written beside reference statistics (`<name>.json` next to `<name>.npz`).
#[derive(Debug, Clone, Serialize)]
pub struct ReferenceRecord {
    /// The dataset or folder the statistics are of.
    pub source: String,
    /// Images in them.
    pub count: usize,
    pub convention: FidConvention,
}

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Every .png/.jpg/.jpeg below `dir` (recursively), sorted by path.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", d.display()))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(format!("{}: no .png/.jpg/.jpeg images", dir.display()));
    }
    Ok(out)
}

/// Loads image files as RGB uint8 CHW; all must have the size of the first (the network
/// resizes, but one set should not mix sizes silently).
pub fn load_rgb_images(files: &[PathBuf]) -> Result<(Vec<u8>, [usize; 3]), String> {
    let mut pixels = Vec::new();
    let mut shape = None;
    for f in files {
        let img = image::open(f)
            .map_err(|e| format!("{}: {e}", f.display()))?
            .to_rgb8();
        let (w, h) = img.dimensions();
        let this = [3, h as usize, w as usize];
        match shape {
            None => shape = Some(this),
            Some(s) if s != this => {
                return Err(format!(
                    "{} is {w}x{h} but {} is {}x{}: resize the set to one size first",
                    f.display(),
                    files[0].display(),
                    s[2],
                    s[1]
                ));
            }
            _ => {}
        }
        let plane = (w * h) as usize;
        let start = pixels.len();
        pixels.resize(start + 3 * plane, 0);
        for (x, y, p) in img.enumerate_pixels() {
            for c in 0..3 {
                pixels[start + c * plane + (y * w + x) as usize] = p[c];
            }
        }
    }
    Ok((pixels, shape.expect("at least one file")))
}
