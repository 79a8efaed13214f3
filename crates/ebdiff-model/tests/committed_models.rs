//! Committed models still load through the normal path (config `[model]`/`[diffusion]` →
//! `ModelConfig::init` → `try_load_file`) and still compute the same energies and ε̂.
//!
//! The reference numbers were recorded on the code *before* the VJP-trait refactor (commit
//! dfbd5e5), so this fails if a module field is renamed or re-nested (the `.bpk` keys), or if the
//! forward pass or a VJP changes numerically. A synthetic UNet with attention and average pooling
//! (neither is in a committed model) pins those paths the same way.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ebdiff_core::ScheduleConfig;
use ebdiff_core::rng::{normal_vec, stream};
use ebdiff_model::gradcheck::to_vec;
use ebdiff_model::{Conditioning, DiffusionModel, ModelConfig};
use std::path::PathBuf;

mod common;

/// Relative tolerance: the refactor was bit-identical on the machine that recorded the numbers;
/// this leaves room for SIMD differences between CPUs, not for a changed computation.
const TOL: f64 = 1e-5;

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// Builds the model of `dir/config.toml` and loads `dir/ema.bpk`, as the trainer and sampler do.
fn load(dir: &str, device: &Device) -> DiffusionModel {
    let dir = repo_path(dir);
    let text = std::fs::read_to_string(dir.join("config.toml")).expect("config.toml");
    let doc: toml::Value = toml::from_str(&text).expect("config.toml parses");
    let model: ModelConfig = doc["model"].clone().try_into().expect("[model]");
    model.validate().expect("valid [model]");
    let schedule: ScheduleConfig = doc["diffusion"].clone().try_into().expect("[diffusion]");
    model
        .init(schedule.timesteps(), device)
        .try_load_file(dir.join("ema.bpk"))
        .unwrap_or_else(|e| panic!("{}: ema.bpk does not load: {e:?}", dir.display()))
}

fn ints(v: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

fn input(rng_purpose: &str, batch: usize, dim: usize, device: &Device) -> Tensor<2> {
    let mut rng = stream(7, rng_purpose);
    Tensor::from_data(
        TensorData::new(normal_vec(&mut rng, batch * dim), [batch, dim]),
        device,
    )
}

/// A few numbers that pin ε̂: entries 0 and `dim − 1` of each row, and a weighted sum over all
/// entries (computed on the host in f64).
fn eps_fingerprint(eps: Tensor<2>) -> Vec<f64> {
    let [b, d] = eps.dims();
    let v = to_vec(eps);
    let mut out = Vec::new();
    for i in 0..b {
        out.push(v[i * d]);
        out.push(v[i * d + d - 1]);
    }
    out.push(
        v.iter()
            .enumerate()
            .map(|(j, x)| x * (1.0 + (j % 7) as f64))
            .sum(),
    );
    out
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    let list: Vec<String> = got.iter().map(|v| format!("{v:.9e}")).collect();
    println!("{what}: [{}]", list.join(", "));
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= TOL * w.abs().max(1e-3 * scale),
            "{what}[{i}]: got {g:.9e}, recorded {w:.9e}"
        );
    }
}

#[test]
fn compose2d_ring_energy_model() {
    let d = Device::flex();
    let model = load("experiments/compose2d/models/ring", &d);
    assert!(model.is_energy());
    let x = Tensor::<2>::from_data(
        TensorData::new(vec![0.3f32, -1.2, 1.5, 0.4, -0.7, -0.2, 0.0, 2.0], [4, 2]),
        &d,
    );
    let cond = Conditioning::new(ints(&[0, 10, 50, 99], &d));
    let (e, eps) = model.energy_and_eps(x.clone(), &cond);
    assert_close("ring energy", &to_vec(e), &RING_ENERGY);
    assert_close("ring eps", &eps_fingerprint(eps), &RING_EPS);
    // The energy-only path agrees with energy_and_eps.
    assert_close(
        "ring energy()",
        &to_vec(model.energy(x, &cond)),
        &RING_ENERGY,
    );
}

#[test]
fn compose2d_sweep_ring_score_model() {
    let d = Device::flex();
    let model = load("experiments/sweeps/compose2d/models/ring-eps", &d);
    assert!(!model.is_energy());
    let x = input("ring-eps", 4, 2, &d);
    let cond = Conditioning::new(ints(&[3, 30, 70, 95], &d));
    assert_close(
        "ring-eps eps",
        &eps_fingerprint(model.eps(x, &cond)),
        &RING_SCORE_EPS,
    );
}

#[test]
fn shapes12_class_conditional_unet_energy_model() {
    let d = Device::flex();
    let model = load("experiments/sweeps/shapes-compose/models/shapes12", &d);
    assert!(model.is_energy());
    let x = input("shapes12", 4, 3 * 12 * 12, &d);
    // Label 4 is the null label (CFG's unconditional branch).
    let cond = Conditioning::new(ints(&[0, 20, 60, 99], &d)).with_labels(ints(&[0, 1, 3, 4], &d));
    let (e, eps) = model.energy_and_eps(x, &cond);
    assert_close("shapes12 energy", &to_vec(e), &SHAPES12_ENERGY);
    assert_close("shapes12 eps", &eps_fingerprint(eps), &SHAPES12_EPS);
}

/// Sets every float parameter to N(0, 0.2²) draws in visit order (independent of the backend's
/// initializer RNG).
struct Deterministic(rand::rngs::StdRng);

impl ModuleMapper for Deterministic {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let rng = &mut self.0;
        param.map(|t| {
            let shape = t.dims();
            let n = shape.iter().product();
            Tensor::<D>::from_data(TensorData::new(normal_vec(rng, n), shape), &t.device())
                .mul_scalar(0.2)
        })
    }
}

#[test]
fn synthetic_unet_with_attention() {
    let d = Device::flex();
    let cfg = common::tiny_unet("energy", "reconstruction", 0.3, Some(3), "avg-pool");
    let model = cfg
        .init(10, &d)
        .map(&mut Deterministic(stream(8, "params")));
    let x = input("synthetic", 3, 3 * 8 * 8, &d);
    let cond = Conditioning::new(ints(&[1, 5, 9], &d)).with_labels(ints(&[0, 2, 3], &d));
    let (e, eps) = model.energy_and_eps(x.clone(), &cond);
    assert_close("synthetic energy", &to_vec(e), &SYNTH_ENERGY);
    assert_close("synthetic eps", &eps_fingerprint(eps.clone()), &SYNTH_EPS);
    // The same ε̂ by hand from the backbone's bound cache: E = ‖g − x‖², ∇ₓE = J_gᵀr − r.
    let (g, cache) = model.backbone.forward_cached(x.clone(), &cond);
    let r = (g - x).mul_scalar(2.0);
    let by_hand = cache.vjp(r.clone()) - r;
    assert_eq!(to_vec(by_hand), to_vec(eps));
}

#[test]
fn synthetic_noisy_classifier() {
    let d = Device::flex();
    let cfg = ebdiff_model::ClassifierConfig {
        channels: 8,
        channel_mult: vec![1, 2],
        res_blocks: 1,
        groups: 4,
        ..Default::default()
    };
    let clf = cfg
        .init([3, 8, 8], 5, &d)
        .map(&mut Deterministic(stream(9, "classifier")));
    let x = input("classifier", 3, 3 * 8 * 8, &d);
    let (logp, grad) = clf.log_prob_and_grad(x, ints(&[0, 4, 9], &d), ints(&[1, 0, 4], &d));
    assert_close("classifier log p", &to_vec(logp), &CLF_LOGP);
    assert_close("classifier grad", &eps_fingerprint(grad), &CLF_GRAD);
}

// Recorded on commit dfbd5e5 (before the refactor), flex f32.
const RING_ENERGY: [f64; 4] = [1.234055400e0, 2.534342766e0, 3.176076412e-1, 2.003586292e0];
const RING_EPS: [f64; 9] = [
    6.738079786e-1,
    -2.911275625e0,
    3.514278889e0,
    8.743364811e-1,
    -8.422216773e-1,
    -2.408241779e-1,
    -2.196587250e-2,
    1.985201478e0,
    5.066826236e0,
];
const RING_SCORE_EPS: [f64; 9] = [
    -3.514203072e0,
    -5.296397686e0,
    2.882849693e0,
    -1.779805183e0,
    5.565894842e-1,
    1.337190270e0,
    1.101622581e0,
    2.172829509e-1,
    6.157059968e0,
];
const SHAPES12_ENERGY: [f64; 4] = [5.511617432e2, 4.855168457e2, 5.228584595e2, 5.319133301e2];
const SHAPES12_EPS: [f64; 9] = [
    -1.148292184e0,
    -1.924606562e-1,
    4.858893156e-1,
    -6.511881351e-1,
    3.747352958e-1,
    -4.316175878e-1,
    7.591265440e-1,
    1.342243671e0,
    1.463899769e3,
];
const SYNTH_ENERGY: [f64; 3] = [2.095129700e2, 1.592631989e2, 1.803172913e2];
const SYNTH_EPS: [f64; 7] = [
    4.504288197e0,
    -1.042260170e0,
    -1.172320366e0,
    1.314566374e0,
    -1.901036024e0,
    8.834222704e-2,
    1.944469324e2,
];
const CLF_LOGP: [f64; 3] = [-9.415686131e-1, -1.635205626e0, -2.024658680e0];
const CLF_GRAD: [f64; 7] = [
    1.183438953e-2,
    -3.134813160e-3,
    1.595365070e-2,
    8.331770077e-4,
    -7.146390155e-3,
    2.912566531e-3,
    -1.652883285e0,
];
