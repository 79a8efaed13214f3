//! Helpers shared by the integration tests that run the `xtask` binary.
#![allow(dead_code)] // each test binary uses some of them

use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary with `args` on one compute thread (the order of every sum then matches a
/// library call on a one-thread pool).
pub fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("xtask runs")
}

/// Fails the test with the command's stderr unless it succeeded.
pub fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `n` deterministic RGB images of `side`×`side` pixels, one PNG each (`00.png`, …), in `dir`.
pub fn write_images(dir: &Path, n: usize, side: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let px: Vec<f32> = (0..3 * side * side)
            .map(|j| (((i * 7919 + j * 104729) % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let path = dir.join(format!("{i:02}.png"));
        ebdiff_eval::write_image_grid_png(&path, &px, [3, side, side], 1).unwrap();
    }
}

/// `(step, loss)` of every line of a run's `metrics.jsonl`.
pub fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}
