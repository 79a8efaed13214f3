//! Sampling one config into a directory: what `cargo xtask sample` and every sweep cell write.
//!
//! `<dir>/samples.npy` (`[count, dim]` f32), `<dir>/diagnostics.json` (sampler, count, seed, data
//! shape, wall time, NFE, per-level diagnostics) and, from [`write_samples_png`], a scatter plot
//! (2-D) or an image grid.

use anyhow::{Context, Result};
use burn::tensor::Device;
use ebdiff_data::io::npy::write_npy_f32;
use ebdiff_eval::{ScatterSeries, write_image_grid_png, write_scatter_png};
use ebdiff_sampler::{Components, Progress, SampleResult, SamplingConfig, Target, sample};
use std::path::Path;
use std::time::Instant;

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

/// Samples `target` (built from `components`) as `cfg` says and writes samples.npy and
/// diagnostics.json into `dir` (which must exist). Non-finite samples are an error (after the
/// files are written, so they can be inspected).
pub fn sample_to_dir(
    cfg: &SamplingConfig,
    components: &Components,
    target: &dyn Target,
    device: &Device,
    dir: &Path,
    progress: impl FnMut(&Progress),
) -> Result<SampleOutput> {
    let start = Instant::now();
    let result =
        sample(cfg, target, &components.schedule, device, progress).map_err(anyhow::Error::msg)?;
    let seconds = start.elapsed().as_secs_f64();
    let samples = result.samples_vec();
    let count = cfg.count;
    let dim = samples.len() / count;
    write_npy_f32(&dir.join("samples.npy"), &samples, &[count, dim])?;
    let mut diagnostics = serde_json::json!({
        "sampler": cfg.sampler.kind.name(),
        "count": count,
        "seed": cfg.seed,
        "data_shape": components.data_shape,
        "seconds": seconds,
        "nfe": result.nfe,
        "levels": result.levels,
    });
    if let Some(smc) = &result.smc {
        diagnostics["smc"] = serde_json::to_value(smc)?;
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
