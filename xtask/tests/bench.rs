//! `cargo xtask bench`: `train-step` reports the FLOPs of each step counted from the architecture,
//! and the throughput they imply (checked on the default 2-D config, whose count is worked out by
//! hand); `fid-features` without weights names the command that fetches them.

use std::process::Command;

#[test]
fn train_step_reports_flops_counted_by_hand() {
    let dir = std::env::temp_dir().join(format!("ebdiff-bench-flops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([
            "bench",
            "train-step",
            "--config",
            "configs/toy2d.toml",
            "--batch",
            "8",
        ])
        .args(["--warmup", "0", "--iters", "1", "--peak-tflops", "1"])
        .arg("--json")
        .arg(&json)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("xtask runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("fraction of the 1 TFLOP/s peak"),
        "{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ours = &v["ebdiff"];
    assert_eq!(ours["dtype"], "f32");
    // configs/toy2d.toml: data 2, hidden 64, 3 blocks (64→128→128→64 and the embedding's
    // 32→128), embedding width 32. Multiply-adds per example on the data path and in the
    // embedding; a pass is 2 FLOPs each, the VJP repeats the data path, a step is 3 passes.
    let data_path = 2 * 64 + 64 * 2 + 3 * (64 * 128 + 128 * 128 + 128 * 64);
    let embedding = 3 * 32 * 128;
    let batch = 8.0;
    let score = 3.0 * 2.0 * batch * f64::from(data_path + embedding);
    let energy = 3.0 * 2.0 * batch * f64::from(2 * data_path + embedding);
    for (step, want) in [("score", score), ("energy", energy)] {
        let got = ours[step]["flops_per_step"].as_f64().unwrap();
        assert_eq!(got, want, "{step}");
        let rate = ours[step]["tflops_per_s"].as_f64().unwrap();
        let median = ours[step]["median_s"].as_f64().unwrap();
        assert!(
            (rate * median * 1e12 / want - 1.0).abs() < 1e-9,
            "{step}: {rate}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Without the FID weights, `bench fid-features` says where they come from instead of failing
/// deep inside the loader.
#[test]
fn fid_features_without_weights_names_the_fetch_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "bench",
            "fid-features",
            "--weights",
            "/nonexistent/inception",
        ])
        .output()
        .expect("xtask runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cargo xtask fetch inception"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
