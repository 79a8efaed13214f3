//! The FID pipelines behind `cargo xtask fid`, `fid-stats` and `eval`, without a sampler:
//!
//! - [`compare_paths`]: two image folders or statistics files → a [`FidRecord`];
//! - [`dataset_set`], [`load_set`] and [`write_reference`]: reference statistics (with their
//!   features) of a dataset or folder, and the note of their convention beside them;
//! - [`evaluate_generator`]: images from a generator closure in resumable shards
//!   (`shard-NNNNN.npz` feature files; finished shards are kept and skipped on re-runs), compared
//!   with a reference that is computed once and cached when not given; writes `result.json`.
//!
//! The generator is injected (`FnMut(shard, start, count, seed) -> images in [−1, 1]`), so this
//! crate needs no sampler or trainer; progress goes to a callback (the CLI draws bars).
//!
//! The `*_on` variants run on every rank of a [`Collective`] group (`mpirun -np N`): ranks take
//! contiguous parts of a dataset or folder, or every N-th shard, and rank 0 gathers the feature
//! rows in their single-process order. KID and precision/recall need the rows themselves, and
//! statistics computed from the same rows in the same order are bit-identical to one process's,
//! so rank 0 writes the same files as a single process would (timings aside).

use crate::fid::{
    FeatureExtractor, FidConvention, FidRecord, FileSets, GeneratedSet, ReferenceRecord,
    SetFeatures, compare_sets, fid_image_shape, image_files, load_rgb_images,
};
use crate::inception::FEATURE_DIM;
use crate::{
    FrechetError, KidConfig, MODEL_PIXEL_QUANTIZATION, model_pixel_to_u8, save_features_npz,
    save_stats_npz_with_features, write_image_grid_png,
};
use ebdiff_core::collective::first_failure;
use ebdiff_core::{Collective, Solo};
use ebdiff_data::io::npz::{NpzError, read_npz_keys};
use ebdiff_data::{DataError, ImageDataConfig};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Progress of one pass over images: what is being done, images done, images in all.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub stage: &'a str,
    pub done: usize,
    pub total: usize,
}

/// Receives [`Progress`] after every batch or shard.
pub type OnProgress<'a> = &'a mut dyn FnMut(Progress);

/// What a generator closure may fail with (an `anyhow::Error` converts with `.into()`).
pub type GeneratorError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Settings or inputs that cannot work; the message says which and what to pass instead.
    #[error("{0}")]
    Invalid(String),
    /// An image folder or statistics file that cannot be read (the message names it).
    #[error("{0}")]
    Set(String),
    #[error(transparent)]
    Npz(#[from] NpzError),
    #[error(transparent)]
    Frechet(#[from] FrechetError),
    /// The FID network's weights cannot be loaded (the message says how to get them).
    #[error(transparent)]
    Inception(#[from] crate::inception::InceptionError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("generating shard {shard} (images {start}..{end}): {source}")]
    Generate {
        shard: usize,
        start: usize,
        end: usize,
        source: GeneratorError,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another rank of a multi-process run failed; this rank stopped with it.
    #[error("rank {rank} failed: {message}")]
    OtherRank { rank: usize, message: String },
}

/// The same outcome on every rank: this rank's error, or the first failing rank's.
fn agree<T>(group: &dyn Collective, result: Result<T, PipelineError>) -> Result<T, PipelineError> {
    let mine = result.as_ref().err().map(|e| e.to_string());
    match first_failure(group, mine) {
        Some((rank, message)) if result.is_ok() => Err(PipelineError::OtherRank { rank, message }),
        _ => result,
    }
}

/// Features of this rank's contiguous part of `pixels` (all images of `shape`), gathered on
/// rank 0 in image order; rank 0 also gets the images per second of the whole pass.
fn extract_on(
    group: &dyn Collective,
    fx: &FeatureExtractor,
    pixels: &[u8],
    shape: [usize; 3],
    stage: &str,
    progress: OnProgress,
) -> Option<(Vec<f32>, f64)> {
    let per: usize = shape.iter().product();
    let total = pixels.len() / per;
    let mine = group.share(total);
    let t0 = Instant::now();
    let (features, _) = extract(
        fx,
        &pixels[mine.start * per..mine.end * per],
        shape,
        stage,
        progress,
    );
    let all = group.gather_f32(&features)?;
    Some((all, total as f64 / t0.elapsed().as_secs_f64()))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PipelineError + '_ {
    move |source| PipelineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a record as pretty JSON (the format of every FID result and note).
pub fn write_record(path: &Path, record: &impl Serialize) -> Result<(), PipelineError> {
    let text = serde_json::to_string_pretty(record).map_err(|e| PipelineError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    std::fs::write(path, text).map_err(io_error(path))
}

/// Features of uint8 CHW `pixels` of `shape`, reporting progress under `stage`; also returns
/// images per second.
pub fn extract(
    fx: &FeatureExtractor,
    pixels: &[u8],
    shape: [usize; 3],
    stage: &str,
    progress: OnProgress,
) -> (Vec<f32>, f64) {
    let total = pixels.len() / shape.iter().product::<usize>();
    let t0 = Instant::now();
    let features = fx.features_u8(pixels, shape, &mut |done| {
        progress(Progress { stage, done, total })
    });
    (features, total as f64 / t0.elapsed().as_secs_f64())
}

/// A folder of images (the first `limit`, sorted by path) or an `.npz` of statistics; returns
/// the set and, for folders, the images per second of the feature pass.
pub fn load_set(
    path: &Path,
    fx: &FeatureExtractor,
    limit: Option<usize>,
    progress: OnProgress,
) -> Result<(SetFeatures, Option<f64>), PipelineError> {
    let (set, rate) = load_set_on(&Solo, path, fx, limit, progress)?;
    Ok((set.expect("one process is rank 0"), rate))
}

/// [`load_set`] on every rank of `group`: each rank decodes and passes its part of the folder;
/// rank 0 receives the set (the others `None`).
pub fn load_set_on(
    group: &dyn Collective,
    path: &Path,
    fx: &FeatureExtractor,
    limit: Option<usize>,
    progress: OnProgress,
) -> Result<(Option<SetFeatures>, Option<f64>), PipelineError> {
    if path.is_file() {
        return Ok(if group.is_root() {
            (
                Some(SetFeatures::load(path).map_err(PipelineError::Set)?),
                None,
            )
        } else {
            (None, None)
        });
    }
    if !path.is_dir() {
        return Err(PipelineError::Invalid(format!(
            "{} is neither an image folder nor an .npz statistics file",
            path.display()
        )));
    }
    let loaded = image_files(path)
        .and_then(|mut files| {
            if let Some(l) = limit {
                files.truncate(l);
            }
            let mine = group.share(files.len());
            load_rgb_images(&files[mine]).map(|(pixels, shape)| (pixels, shape, files.len()))
        })
        .map_err(PipelineError::Set);
    let (pixels, shape, total) = agree(group, loaded)?;
    let t0 = Instant::now();
    let (features, _) = extract(fx, &pixels, shape, &path.display().to_string(), progress);
    Ok(match group.gather_f32(&features) {
        Some(all) => (
            Some(SetFeatures::from_features(all)),
            Some(total as f64 / t0.elapsed().as_secs_f64()),
        ),
        None => (None, None),
    })
}

/// The first `limit` (default: all) images of a dataset brought to `shape`, with their features.
pub fn dataset_set(
    data: &ImageDataConfig,
    shape: [usize; 3],
    limit: Option<usize>,
    fx: &FeatureExtractor,
    stage: &str,
    progress: OnProgress,
) -> Result<SetFeatures, PipelineError> {
    dataset_set_on(&Solo, data, shape, limit, fx, stage, progress)
        .map(|s| s.expect("one process is rank 0"))
}

/// [`dataset_set`] on every rank of `group` (each passes its contiguous part of the images);
/// rank 0 receives the set, the others `None`.
pub fn dataset_set_on(
    group: &dyn Collective,
    data: &ImageDataConfig,
    shape: [usize; 3],
    limit: Option<usize>,
    fx: &FeatureExtractor,
    stage: &str,
    progress: OnProgress,
) -> Result<Option<SetFeatures>, PipelineError> {
    let built = fid_image_shape(&shape)
        .map_err(PipelineError::Invalid)
        .and_then(|shape| Ok((data.build(shape, true)?, shape)));
    let (mut ds, shape) = agree(group, built)?;
    let n = limit.unwrap_or(ds.len()).min(ds.len());
    ds.images.truncate(n * ds.pixels_per_image());
    Ok(extract_on(group, fx, &ds.images, shape, stage, progress)
        .map(|(features, _)| SetFeatures::from_features(features)))
}

/// `cargo xtask fid`: FID (and KID, precision/recall when both sides have features) between two
/// image folders or statistics files. Both paths are checked before minutes go into the first.
pub fn compare_paths(
    reference: &Path,
    evaluated: &Path,
    limit: Option<usize>,
    fx: &FeatureExtractor,
    kid: &KidConfig,
    progress: OnProgress,
) -> Result<FidRecord, PipelineError> {
    kid.validate().map_err(PipelineError::Invalid)?;
    for p in [reference, evaluated] {
        if !p.exists() {
            return Err(PipelineError::Invalid(format!(
                "{} does not exist (expected an image folder or an .npz)",
                p.display()
            )));
        }
    }
    let (a, rate_a) = load_set(reference, fx, limit, progress)?;
    let (b, rate_b) = load_set(evaluated, fx, limit, progress)?;
    Ok(FidRecord {
        reference: reference.to_path_buf(),
        metrics: compare_sets(&a, &b, kid)?,
        convention: FidConvention::new(fx.provenance(), kid),
        quantization: None,
        files: Some(FileSets {
            evaluated: evaluated.to_path_buf(),
            limit,
            images_per_second: [rate_a, rate_b],
        }),
        generated: None,
    })
}

/// Writes `set` as reference statistics `out` (`.npz` with `mu`, `sigma` and `features`) and
/// the note `out.json` beside it ([`ReferenceRecord`]: source, count, convention).
pub fn write_reference(
    out: &Path,
    set: &SetFeatures,
    source: &str,
    fx: &FeatureExtractor,
    kid: &KidConfig,
) -> Result<(), PipelineError> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    save_stats_npz_with_features(out, &set.mu, &set.sigma, set.features.as_deref())?;
    let note = ReferenceRecord {
        source: source.to_string(),
        count: set.count,
        convention: FidConvention::new(fx.provenance(), kid),
    };
    write_record(&out.with_extension("json"), &note)
}

/// The reference of [`evaluate_generator`].
pub enum Reference<'a> {
    /// A statistics file.
    Stats(PathBuf),
    /// The first `limit` images of `data` at `shape`, computed once and cached as reference
    /// statistics in `cache`; the note records `"{count} [data] of {owner}"` as the source.
    Data {
        data: &'a ImageDataConfig,
        shape: [usize; 3],
        limit: Option<usize>,
        cache: PathBuf,
        owner: String,
    },
}

/// The path and contents of `reference`, computing and caching it first when needed.
pub fn reference_set(
    reference: Reference,
    fx: &FeatureExtractor,
    kid: &KidConfig,
    progress: OnProgress,
) -> Result<(PathBuf, SetFeatures), PipelineError> {
    let (path, set) = reference_set_on(&Solo, reference, fx, kid, progress)?;
    Ok((path, set.expect("one process is rank 0")))
}

/// [`reference_set`] on every rank of `group`: a missing cache is computed by all ranks and
/// written by rank 0, which alone loads the set (the others get `None`).
pub fn reference_set_on(
    group: &dyn Collective,
    reference: Reference,
    fx: &FeatureExtractor,
    kid: &KidConfig,
    progress: OnProgress,
) -> Result<(PathBuf, Option<SetFeatures>), PipelineError> {
    let path = match reference {
        Reference::Stats(path) => path,
        Reference::Data {
            data,
            shape,
            limit,
            cache,
            owner,
        } => {
            // Rank 0's view of the cache decides for everyone.
            let cached = group.broadcast_bytes(&[u8::from(cache.is_file())]) == [1];
            if !cached {
                let set = dataset_set_on(
                    group,
                    data,
                    shape,
                    limit,
                    fx,
                    "reference (training data)",
                    progress,
                )?;
                let written = match set {
                    Some(set) => {
                        let source = format!("{} [data] of {owner}", set.count);
                        write_reference(&cache, &set, &source, fx, kid)
                    }
                    None => Ok(()),
                };
                agree(group, written)?;
            }
            cache
        }
    };
    let set = if group.is_root() {
        SetFeatures::load(&path)
            .map(Some)
            .map_err(PipelineError::Set)
    } else {
        Ok(None)
    };
    Ok((path, agree(group, set)?))
}

/// How [`evaluate_generator`] splits the images it generates.
#[derive(Debug, Clone)]
pub struct ShardPlan {
    /// Where the shards, `samples.png` and `result.json` go.
    pub dir: PathBuf,
    /// Images in all.
    pub samples: usize,
    /// Images per shard (one `shard-NNNNN.npz` each).
    pub shard_size: usize,
    /// Shard k is generated with seed `seed + k`.
    pub seed: u64,
    /// `[c, h, w]` of one image.
    pub shape: [usize; 3],
}

impl ShardPlan {
    pub fn shards(&self) -> usize {
        self.samples.div_ceil(self.shard_size)
    }

    /// Which seed made which images, for the result record.
    pub fn seeds(&self) -> String {
        format!(
            "{}..{} (shard k of {} images uses seed {} + k)",
            self.seed,
            self.seed + self.shards().saturating_sub(1) as u64,
            self.shard_size,
            self.seed
        )
    }

    fn validate(&self) -> Result<(), PipelineError> {
        fid_image_shape(&self.shape).map_err(PipelineError::Invalid)?;
        if self.shard_size == 0 {
            return Err(PipelineError::Invalid(
                "the shard size must be at least 1 image (--shard-size)".into(),
            ));
        }
        if self.samples < 2 {
            return Err(PipelineError::Invalid(format!(
                "FID needs at least 2 generated images for a covariance, got {} (--samples)",
                self.samples
            )));
        }
        Ok(())
    }
}

/// Features of all images of a [`ShardPlan`] and what this invocation did.
pub struct ShardedFeatures {
    pub set: SetFeatures,
    /// Images generated now (the others were read from finished shards).
    pub generated_here: usize,
    pub seconds: f64,
}

/// Features of the plan's images, shard by shard: a shard whose `shard-NNNNN.npz` holds features
/// of the right shape is reused; any other is generated by `generate(shard, start, count, seed)`
/// (flat images in [−1, 1]), quantized as a PNG would be ([`model_pixel_to_u8`], EDM's
/// convention), passed through the network and saved. The first 100 images of shard 0 also go to
/// `samples.png` when shard 0 is generated.
pub fn shard_features(
    plan: &ShardPlan,
    fx: &FeatureExtractor,
    generate: impl FnMut(usize, usize, usize, u64) -> Result<Vec<f32>, GeneratorError>,
    progress: OnProgress,
) -> Result<ShardedFeatures, PipelineError> {
    shard_features_on(&Solo, plan, fx, generate, progress)
        .map(|s| s.expect("one process is rank 0"))
}

/// [`shard_features`] on every rank of `group`: rank r takes shards r, r + N, … (a shard's images
/// depend only on its index and seed, so the split does not change them); after all ranks are
/// done, rank 0 reads every shard in order and returns the features (the others `None`).
/// `generated_here` counts the images every rank generated.
pub fn shard_features_on(
    group: &dyn Collective,
    plan: &ShardPlan,
    fx: &FeatureExtractor,
    mut generate: impl FnMut(usize, usize, usize, u64) -> Result<Vec<f32>, GeneratorError>,
    progress: OnProgress,
) -> Result<Option<ShardedFeatures>, PipelineError> {
    plan.validate()?;
    let per: usize = plan.shape.iter().product();
    let t0 = Instant::now();
    let shard_range = |k: usize| {
        let start = k * plan.shard_size;
        (start, plan.shard_size.min(plan.samples - start))
    };
    let shard_path = |k: usize| plan.dir.join(format!("shard-{k:05}.npz"));
    let read_finished = |k: usize, n: usize| {
        read_npz_keys(&shard_path(k), |key| key == "features")
            .ok()
            .and_then(|mut npz| npz.arrays.remove("features"))
            .filter(|f| f.shape == [n, FEATURE_DIM])
            .map(|f| f.to_f32())
    };
    let owned: Vec<usize> = (group.rank()..plan.shards())
        .step_by(group.size())
        .collect();
    let owned_images: usize = owned.iter().map(|&k| shard_range(k).1).sum();
    // Features of the shards this rank holds in memory (rank 0 then need not read them back).
    let mut held: Vec<Option<Vec<f32>>> = vec![None; plan.shards()];
    let mut generated_here = 0usize;
    let mut done = 0usize;
    let mut work = || -> Result<(), PipelineError> {
        std::fs::create_dir_all(&plan.dir).map_err(io_error(&plan.dir))?;
        for &k in &owned {
            let (start, n) = shard_range(k);
            let shard = match read_finished(k, n) {
                Some(f) => f,
                None => {
                    let generate_error = |source| PipelineError::Generate {
                        shard: k,
                        start,
                        end: start + n,
                        source,
                    };
                    let x = generate(k, start, n, plan.seed + k as u64).map_err(generate_error)?;
                    if x.len() != n * per {
                        return Err(generate_error(
                            format!(
                                "the generator returned {} values, not {n} images of {:?}",
                                x.len(),
                                plan.shape
                            )
                            .into(),
                        ));
                    }
                    let pixels: Vec<u8> = x.iter().map(|&v| model_pixel_to_u8(v)).collect();
                    if k == 0 {
                        let first = &x[..n.min(100) * per];
                        write_image_grid_png(&plan.dir.join("samples.png"), first, plan.shape, 10)
                            .map_err(PipelineError::Set)?;
                    }
                    let f = fx.features_u8(&pixels, plan.shape, &mut |_| {});
                    save_features_npz(&shard_path(k), &f, FEATURE_DIM)?;
                    generated_here += n;
                    f
                }
            };
            if group.is_root() {
                held[k] = Some(shard);
            }
            done += n;
            progress(Progress {
                stage: "generating + features",
                done,
                total: owned_images,
            });
        }
        Ok(())
    };
    let worked = work();
    agree(group, worked)?;
    let mut count = [generated_here as f64];
    group.all_reduce_sum_f64(&mut count);
    if !group.is_root() {
        return Ok(None);
    }
    let mut features = Vec::with_capacity(plan.samples * FEATURE_DIM);
    for (k, shard) in held.into_iter().enumerate() {
        let (start, n) = shard_range(k);
        let shard = shard.or_else(|| read_finished(k, n)).ok_or_else(|| {
            PipelineError::Set(format!(
                "{}: shard {k} (images {start}..{}) is missing or damaged after every rank \
                 finished; are the ranks writing to a directory rank 0 cannot see?",
                shard_path(k).display(),
                start + n
            ))
        })?;
        features.extend(shard);
    }
    Ok(Some(ShardedFeatures {
        set: SetFeatures::from_features(features),
        generated_here: count[0] as usize,
        seconds: t0.elapsed().as_secs_f64(),
    }))
}

/// `cargo xtask eval`: the reference (computed and cached first when needed), the plan's images
/// from `generate` (see [`shard_features`]), their comparison, written with `generator` (what
/// made the images: checkpoint, sampler, …) to `<plan.dir>/result.json`. Returns the record and
/// that path.
pub fn evaluate_generator(
    plan: &ShardPlan,
    reference: Reference,
    fx: &FeatureExtractor,
    kid: &KidConfig,
    generator: serde_json::Map<String, serde_json::Value>,
    generate: impl FnMut(usize, usize, usize, u64) -> Result<Vec<f32>, GeneratorError>,
    progress: OnProgress,
) -> Result<(FidRecord, PathBuf), PipelineError> {
    evaluate_generator_on(
        &Solo, plan, reference, fx, kid, generator, generate, progress,
    )
    .map(|r| r.expect("one process is rank 0"))
}

/// [`evaluate_generator`] on every rank of `group` (see [`shard_features_on`]); rank 0 compares
/// and writes `result.json` and returns it, the others return `None`.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_generator_on(
    group: &dyn Collective,
    plan: &ShardPlan,
    reference: Reference,
    fx: &FeatureExtractor,
    kid: &KidConfig,
    generator: serde_json::Map<String, serde_json::Value>,
    generate: impl FnMut(usize, usize, usize, u64) -> Result<Vec<f32>, GeneratorError>,
    progress: OnProgress,
) -> Result<Option<(FidRecord, PathBuf)>, PipelineError> {
    kid.validate().map_err(PipelineError::Invalid)?;
    plan.validate()?;
    let (reference_path, reference) = reference_set_on(group, reference, fx, kid, progress)?;
    let generated = shard_features_on(group, plan, fx, generate, progress)?;
    let (Some(reference), Some(generated)) = (reference, generated) else {
        return Ok(None);
    };
    let record = FidRecord {
        reference: reference_path,
        metrics: compare_sets(&reference, &generated.set, kid)?,
        convention: FidConvention::new(fx.provenance(), kid),
        quantization: Some(MODEL_PIXEL_QUANTIZATION.into()),
        files: None,
        generated: Some(GeneratedSet {
            samples: plan.samples,
            seeds: plan.seeds(),
            reference_count: reference.count,
            generated_in_this_run: generated.generated_here,
            seconds_in_this_run: generated.seconds,
            generator,
        }),
    };
    let path = plan.dir.join("result.json");
    write_record(&path, &record)?;
    Ok(Some((record, path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(samples: usize, shard_size: usize, shape: [usize; 3]) -> ShardPlan {
        ShardPlan {
            dir: PathBuf::from("unused"),
            samples,
            shard_size,
            seed: 7,
            shape,
        }
    }

    #[test]
    fn shard_plans_name_their_seeds_and_refuse_what_cannot_run() {
        let p = plan(10, 4, [3, 8, 8]);
        assert_eq!(p.shards(), 3);
        assert_eq!(p.seeds(), "7..9 (shard k of 4 images uses seed 7 + k)");
        assert!(p.validate().is_ok());
        let msg = |p: ShardPlan| p.validate().unwrap_err().to_string();
        assert!(msg(plan(10, 0, [3, 8, 8])).contains("--shard-size"));
        assert!(msg(plan(1, 4, [3, 8, 8])).contains("--samples"));
        assert!(msg(plan(10, 4, [2, 8, 8])).contains("[2, 8, 8]"));
    }
}
