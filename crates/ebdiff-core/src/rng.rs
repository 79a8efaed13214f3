//! Seeded host-side randomness. Noise is drawn on the host from a named stream and uploaded, so
//! that a seed gives the same numbers on every backend (common random numbers across samplers).

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::StandardNormal;

/// A deterministic stream derived from a run seed and a purpose tag (e.g. "reverse-noise").
pub fn stream(seed: u64, purpose: &str) -> StdRng {
    // FNV-1a of the tag mixed into the seed: distinct purposes get independent streams.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in purpose.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    StdRng::seed_from_u64(seed ^ h.rotate_left(17))
}

/// The `index`-th member of a family of streams (e.g. one per training step), so that a run
/// resumed at step s draws exactly what an uninterrupted run draws there, with no RNG state to
/// save.
pub fn stream_at(seed: u64, purpose: &str, index: u64) -> StdRng {
    let mut base = stream(seed, purpose);
    let salt: u64 = base.random();
    // SplitMix64 finalizer of (salt + index): neighbouring indices give unrelated seeds.
    let mut z = salt.wrapping_add(index.wrapping_mul(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

pub fn normal_vec(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

pub fn uniform_vec(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random::<f32>()).collect()
}

/// A standard-normal tensor of the given shape drawn from `rng`.
pub fn randn<const D: usize>(rng: &mut StdRng, shape: [usize; D], device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(normal_vec(rng, n), shape), device)
}
