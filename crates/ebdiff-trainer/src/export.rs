//! A model for other frameworks: `DIR/config.toml`, `DIR/model.safetensors` (tensors named by
//! module path; Burn stores linear weights as `[in, out]`, convolutions as PyTorch does) and
//! `DIR/probe.safetensors`, the network's outputs at fixed inputs for checking a
//! re-implementation (`scripts/torch/compare.py` does this for the PyTorch twin):
//!
//! | tensor | dtype, shape | |
//! |---|---|---|
//! | `x` | F32 `[n, dim]` | inputs, N(0, 1) |
//! | `t` | I64 `[n]` | level indices, spread over `[0, T)` |
//! | `labels` | I64 `[n]` | class labels incl. the null label `num_classes` (conditional models only) |
//! | `eps` | F32 `[n, dim]` | ε̂(x, t); for energy models ∇ₓE by the explicit VJP |
//! | `energy` | F32 `[n]` | E(x, t) (energy models only) |

use crate::config::ExperimentConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use ebdiff_core::module_weights::named_tensors;
use ebdiff_core::rng::stream;
use ebdiff_core::safetensors::{Dtype, RawTensor, SafeTensors, SafetensorsError};
use ebdiff_model::{Conditioning, DiffusionModel, Parameterization};
use rand::Rng;
use std::collections::BTreeMap;
use std::path::Path;

fn ints(values: &[i64]) -> RawTensor {
    RawTensor {
        dtype: Dtype::I64,
        shape: vec![values.len()],
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn floats<const D: usize>(t: Tensor<D>) -> RawTensor {
    let shape = t.dims().to_vec();
    let values: Vec<f32> = t
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("f32 data");
    RawTensor::f32(shape, &values)
}

/// `model`'s outputs at `count` fixed inputs drawn with `seed` (see the module docs).
pub fn probe(
    model: &DiffusionModel,
    timesteps: usize,
    num_classes: Option<usize>,
    count: usize,
    seed: u64,
    device: &Device,
) -> SafeTensors {
    let mut rng = stream(seed, "export-probe");
    let dim = model.data_dim;
    let x: Vec<f32> = (0..count * dim)
        .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
        .collect();
    // Levels spread over the whole range, first and last included.
    let t: Vec<i64> = (0..count)
        .map(|i| (i * (timesteps - 1) / count.saturating_sub(1).max(1)) as i64)
        .collect();
    let x_tensor = Tensor::<2>::from_data(TensorData::new(x.clone(), [count, dim]), device);
    let mut cond = Conditioning::new(Tensor::<1, Int>::from_data(
        TensorData::new(t.clone(), [count]),
        device,
    ));
    let mut out = SafeTensors::default();
    if let Some(k) = num_classes {
        // Every class and the null label (k) of classifier-free guidance.
        let labels: Vec<i64> = (0..count).map(|_| rng.random_range(0..=k) as i64).collect();
        cond = cond.with_labels(Tensor::<1, Int>::from_data(
            TensorData::new(labels.clone(), [count]),
            device,
        ));
        out.tensors.insert("labels".into(), ints(&labels));
    }
    out.tensors
        .insert("x".into(), RawTensor::f32(vec![count, dim], &x));
    out.tensors.insert("t".into(), ints(&t));
    match model.parameterization {
        Parameterization::Energy(_) => {
            let (e, eps) = model.energy_and_eps(x_tensor, &cond);
            out.tensors.insert("energy".into(), floats(e));
            out.tensors.insert("eps".into(), floats(eps));
        }
        Parameterization::Eps => {
            out.tensors
                .insert("eps".into(), floats(model.eps(x_tensor, &cond)));
        }
    }
    out.metadata.insert("seed".into(), seed.to_string());
    out.metadata.insert(
        "producer".into(),
        format!("ebdiff {}", env!("CARGO_PKG_VERSION")),
    );
    out
}

/// Writes `out/{config.toml, model.safetensors, probe.safetensors}` for `model` of `cfg`.
pub fn export_model(
    cfg: &ExperimentConfig,
    model: &DiffusionModel,
    out: &Path,
    count: usize,
    seed: u64,
    device: &Device,
) -> Result<(), SafetensorsError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| SafetensorsError::Io(p, e)
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let config = out.join("config.toml");
    std::fs::write(&config, cfg.to_toml()).map_err(io(&config))?;
    SafeTensors {
        tensors: named_tensors(model),
        metadata: BTreeMap::from([("format".to_string(), "ebdiff".to_string())]),
    }
    .write(&out.join("model.safetensors"))?;
    let timesteps = cfg.diffusion.build().len();
    probe(model, timesteps, cfg.model.num_classes, count, seed, device)
        .write(&out.join("probe.safetensors"))
}
