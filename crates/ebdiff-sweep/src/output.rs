//! Sampling one config into a directory: what `cargo xtask sample` and every sweep cell write.
//!
//! `<dir>/samples.npy` (`[count, dim]`, f32 or image pixels as uint8: [`SampleFormat`]),
//! `<dir>/diagnostics.json` (sampler, count, seed, data shape, wall time, NFE, per-level
//! diagnostics) and, from [`write_samples_png`], a scatter plot (2-D) or an image grid.

use anyhow::{Context, Result};
use burn::tensor::Device;
use ebdiff_core::Collective;
use ebdiff_core::collective::first_failure;
use ebdiff_data::io::npy::{write_npy_f32, write_npy_u8};
use ebdiff_eval::{
    MODEL_PIXEL_QUANTIZATION, ScatterSeries, model_pixel_to_u8, write_image_grid_png,
    write_scatter_png,
};
use ebdiff_sampler::{Components, Progress, SampleResult, SamplingConfig, Target, sample};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// How samples.npy stores the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SampleFormat {
    /// float32 values as sampled.
    #[default]
    F32,
    /// Image pixels as bytes, quantized exactly as PNG grids and the metrics see them
    /// ([`model_pixel_to_u8`]): a quarter of the size, and what a scorer of images reads.
    Uint8,
}

impl SampleFormat {
    pub fn is_default(&self) -> bool {
        *self == SampleFormat::F32
    }

    /// Writes `samples` (`[count, dim]`) to `path` in this format.
    pub fn write(self, path: &Path, samples: &[f32], count: usize, dim: usize) -> Result<()> {
        match self {
            SampleFormat::F32 => write_npy_f32(path, samples, &[count, dim])?,
            SampleFormat::Uint8 => {
                let pixels: Vec<u8> = samples.iter().map(|&v| model_pixel_to_u8(v)).collect();
                write_npy_u8(path, &pixels, &[count, dim])?
            }
        }
        Ok(())
    }

    /// What diagnostics.json says of the stored values.
    fn describe(self) -> &'static str {
        match self {
            SampleFormat::F32 => "float32, as sampled",
            SampleFormat::Uint8 => MODEL_PIXEL_QUANTIZATION,
        }
    }
}

/// A finished sampling run, as written to its directory.
pub struct SampleOutput {
    /// Flat `[count · dim]`.
    pub samples: Vec<f32>,
    pub count: usize,
    pub dim: usize,
    pub seconds: f64,
    pub result: SampleResult,
}

/// Creates `dir` for a sampling run; refuses one that already holds samples unless `force`
/// (an earlier result is never overwritten silently).
pub fn prepare_dir(dir: &Path, force: bool) -> Result<()> {
    if dir.join("samples.npy").exists() && !force {
        anyhow::bail!(
            "{} already holds samples: pass --force to overwrite them, or --out DIR",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Samples `target` (built from `components`) as `cfg` says and writes samples.npy (in
/// `format`) and diagnostics.json into `dir` (which must exist). Non-finite samples are an error
/// (after the files are written, so they can be inspected).
pub fn sample_to_dir(
    cfg: &SamplingConfig,
    components: &Components,
    target: &dyn Target,
    device: &Device,
    dir: &Path,
    format: SampleFormat,
    progress: impl FnMut(&Progress),
) -> Result<SampleOutput> {
    let start = Instant::now();
    let result =
        sample(cfg, target, &components.schedule, device, progress).map_err(anyhow::Error::msg)?;
    let samples = result.samples_vec();
    write_output(dir, cfg, components, samples, start, result, format, None)
}

/// Writes samples.npy and diagnostics.json (with `extra` keys) and refuses non-finite samples
/// (after writing them, so they can be inspected).
#[allow(clippy::too_many_arguments)]
fn write_output(
    dir: &Path,
    cfg: &SamplingConfig,
    components: &Components,
    samples: Vec<f32>,
    start: Instant,
    result: SampleResult,
    format: SampleFormat,
    extra: Option<(&str, serde_json::Value)>,
) -> Result<SampleOutput> {
    let seconds = start.elapsed().as_secs_f64();
    let count = cfg.count;
    let dim = samples.len() / count;
    format.write(&dir.join("samples.npy"), &samples, count, dim)?;
    let mut diagnostics = serde_json::json!({
        "sampler": cfg.sampler.kind.name(),
        "count": count,
        "seed": cfg.seed,
        "data_shape": components.data_shape,
        "samples_npy": format.describe(),
        "seconds": seconds,
        "nfe": result.nfe,
        "levels": result.levels,
    });
    if let Some((key, value)) = extra {
        diagnostics[key] = value;
    }
    if let Some(smc) = &result.smc {
        diagnostics["smc"] = serde_json::to_value(smc)?;
    }
    if let Some(law) = &result.step_law {
        diagnostics["step_law"] = serde_json::to_value(law)?;
    }
    std::fs::write(
        dir.join("diagnostics.json"),
        serde_json::to_string_pretty(&diagnostics)?,
    )?;
    if samples.iter().any(|v| !v.is_finite()) {
        anyhow::bail!(
            "the sampler produced non-finite samples (step size too large?); see {}",
            dir.display()
        );
    }
    Ok(SampleOutput {
        samples,
        count,
        dim,
        seconds,
        result,
    })
}

/// [`sample_to_dir`] in shards of `shard_size` samples, shard k drawn with seed `cfg.seed + k`
/// (each shard is its own batch; an SMC shard is its own particle population), spread over the
/// ranks of `group` (rank r draws shards r, r + N, …). Rank 0 gathers the shards in order, writes
/// the files and returns them (its `result` is shard 0's); the others return `None`. The files
/// depend on `shard_size`, not on the number of ranks; one shard is exactly [`sample_to_dir`].
#[allow(clippy::too_many_arguments)]
pub fn sample_shards_to_dir(
    group: &dyn Collective,
    cfg: &SamplingConfig,
    shard_size: usize,
    components: &Components,
    target: &dyn Target,
    device: &Device,
    dir: &Path,
    format: SampleFormat,
    mut progress: impl FnMut(&Progress),
) -> Result<Option<SampleOutput>> {
    anyhow::ensure!(shard_size > 0, "the shard size must be at least 1 sample");
    let shards = cfg.count.div_ceil(shard_size).max(1);
    if shards == 1 && group.size() == 1 {
        return sample_to_dir(cfg, components, target, device, dir, format, progress).map(Some);
    }
    let start = Instant::now();
    let shard_cfg = |k: usize| {
        let mut c = cfg.clone();
        c.seed = cfg.seed + k as u64;
        c.count = shard_size.min(cfg.count - k * shard_size);
        c
    };
    // This rank's shards: (index, NFE, seconds, samples), and shard 0's full result.
    let mut mine: Vec<(usize, usize, f64, Vec<f32>)> = Vec::new();
    let mut first: Option<SampleResult> = None;
    let drawn = (group.rank()..shards)
        .step_by(group.size())
        .try_for_each(|k| -> Result<()> {
            let t0 = Instant::now();
            let result = sample(
                &shard_cfg(k),
                target,
                &components.schedule,
                device,
                &mut progress,
            )
            .map_err(|e| anyhow::anyhow!("shard {k} (seed {}): {e}", cfg.seed + k as u64))?;
            mine.push((
                k,
                result.nfe,
                t0.elapsed().as_secs_f64(),
                result.samples_vec(),
            ));
            if k == 0 {
                first = Some(result);
            }
            Ok(())
        });
    if let Some((rank, message)) =
        first_failure(group, drawn.as_ref().err().map(|e| format!("{e:#}")))
    {
        anyhow::bail!("rank {rank}: {message}");
    }
    // One message per rank: a JSON list of (shard, NFE, seconds, count of values), then the
    // values of those shards as little-endian f32.
    let header: Vec<(usize, usize, f64, usize)> = mine
        .iter()
        .map(|(k, n, t, v)| (*k, *n, *t, v.len()))
        .collect();
    let header = serde_json::to_vec(&header)?;
    let mut message = (header.len() as u64).to_le_bytes().to_vec();
    message.extend_from_slice(&header);
    for (_, _, _, v) in &mine {
        message.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    }
    let Some(parts) = group.gather_bytes(&message) else {
        return Ok(None);
    };
    let mut by_shard: Vec<Option<(usize, f64, Vec<f32>)>> = vec![None; shards];
    for part in parts {
        let len = u64::from_le_bytes(part[..8].try_into().expect("8 bytes")) as usize;
        let header: Vec<(usize, usize, f64, usize)> = serde_json::from_slice(&part[8..8 + len])?;
        let mut values = part[8 + len..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")));
        for (k, nfe, seconds, n) in header {
            by_shard[k] = Some((nfe, seconds, values.by_ref().take(n).collect()));
        }
    }
    let by_shard: Vec<(usize, f64, Vec<f32>)> = by_shard
        .into_iter()
        .map(|s| s.expect("every shard was drawn by some rank"))
        .collect();
    let samples: Vec<f32> = by_shard.iter().flat_map(|s| s.2.iter().copied()).collect();
    let result = first.expect("rank 0 draws shard 0");
    let shards = serde_json::json!({
        "size": shard_size,
        "seeds": format!("shard k of {shard_size} samples uses seed {} + k", cfg.seed),
        "nfe": by_shard.iter().map(|s| s.0).collect::<Vec<_>>(),
        "seconds": by_shard.iter().map(|s| s.1).collect::<Vec<_>>(),
        "ranks": group.size(),
        "diagnostics": "`nfe`, `levels` and `smc` are shard 0's",
    });
    write_output(
        dir,
        cfg,
        components,
        samples,
        start,
        result,
        format,
        Some(("shards", shards)),
    )
    .map(Some)
}

/// A scatter plot (2-D; `reference` in grey under the samples in red) or an image grid of at
/// most the first `max_images` samples; nothing for other shapes.
pub fn write_samples_png(
    path: &Path,
    samples: &[f32],
    count: usize,
    data_shape: &[usize],
    reference: Option<&[f32]>,
    size: u32,
    max_images: usize,
) -> Result<()> {
    let dim = samples.len() / count.max(1);
    if dim == 2 {
        let mut series = Vec::new();
        if let Some(r) = reference {
            series.push(ScatterSeries {
                points: r,
                color: [190, 190, 190],
            });
        }
        series.push(ScatterSeries {
            points: samples,
            color: [200, 40, 40],
        });
        write_scatter_png(path, &series, 1.2, size).map_err(anyhow::Error::msg)
    } else if let Ok(shape) = <[usize; 3]>::try_from(data_shape.to_vec()) {
        let shown = count.min(max_images);
        let cols = (shown as f64).sqrt().ceil() as usize;
        write_image_grid_png(path, &samples[..shown * dim], shape, cols).map_err(anyhow::Error::msg)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_with_samples_is_not_overwritten_without_force() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        prepare_dir(&dir, false).unwrap();
        write_npy_f32(&dir.join("samples.npy"), &[1.0, 2.0], &[1, 2]).unwrap();
        let msg = prepare_dir(&dir, false).unwrap_err().to_string();
        assert!(
            msg.contains("--force") && msg.contains("already holds samples"),
            "{msg}"
        );
        prepare_dir(&dir, true).unwrap();
    }
}
