//! Shared loaders for the numpy reference fixtures (`tests/fixtures/`, made by
//! `scripts/fid/make_fixtures.py`).
#![allow(dead_code)]

use ebdiff_data::io::npy::NpyArray;
use ebdiff_data::io::npz::read_npz;
use std::collections::BTreeMap;
use std::path::Path;

/// The seeded feature sets of `kid_pr_cases.npz` (stored as float32) and every reference array.
pub struct KidPrFixture {
    pub arrays: BTreeMap<String, NpyArray>,
    pub real: Vec<f32>,
    pub generated: Vec<f32>,
    pub dim: usize,
}

pub fn kid_pr_fixture() -> KidPrFixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kid_pr_cases.npz");
    let arrays = read_npz(&path).unwrap();
    let as_f32 = |key: &str| {
        arrays[key]
            .data
            .iter()
            .map(|&v| v as f32)
            .collect::<Vec<_>>()
    };
    KidPrFixture {
        real: as_f32("real"),
        generated: as_f32("generated"),
        dim: arrays["real"].shape[1],
        arrays,
    }
}

/// max |a − b| / max |b|.
pub fn max_relative_gap(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}
