//! The PyTorch twin (`scripts/torch/`) against ebdiff: E and ∇ₓE of a trained 2-D run and of a
//! random UNet with attention and classes agree to 1e-5 relative. Needs PyTorch, so ignored;
//! run with
//!   EBDIFF_TORCH_PYTHON=.venv/bin/python cargo test --release --workspace --test torch_twin -- --ignored
//! (install: `python3 -m venv .venv && .venv/bin/pip install torch safetensors numpy`).

use burn::tensor::Device;
use ebdiff_core::rng::stream;
use ebdiff_model::gradcheck::perturb_parameters;
use ebdiff_trainer::export::export_model;
use ebdiff_trainer::{ExperimentConfig, RunDir};
use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "needs PyTorch: EBDIFF_TORCH_PYTHON=path/to/python"]
fn pytorch_twin_reproduces_energy_and_gradient() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var("EBDIFF_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let device = Device::flex();
    let out = std::env::temp_dir().join(format!("ebdiff-torch-twin-{}", std::process::id()));
    std::fs::remove_dir_all(&out).ok();

    let ring = RunDir::open(repo.join("experiments/compose2d/models/ring"))
        .unwrap()
        .load(&device)
        .unwrap();
    export_model(&ring.config, &ring.model, &out.join("ring"), 16, 0, &device).unwrap();

    let cfg = ExperimentConfig::load(&repo.join("configs/tiny/shapes.toml")).unwrap();
    let t = cfg.diffusion.build().len();
    let model = ebdiff_model::seeded_init(&device, 1, || cfg.model.init(t, &device));
    let model = perturb_parameters(model, 0.05, &mut stream(1, "torch-twin"));
    export_model(&cfg, &model, &out.join("unet"), 16, 0, &device).unwrap();

    let run = Command::new(&python)
        .arg(repo.join("scripts/torch/compare.py"))
        .args([out.join("ring"), out.join("unet")])
        .args(["--tol", "1e-5"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e} (set EBDIFF_TORCH_PYTHON)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{text}");
    assert!(
        run.status.success(),
        "the twin disagrees or did not run:\n{text}"
    );
    std::fs::remove_dir_all(&out).ok();
}
