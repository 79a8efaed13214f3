//! The PyTorch side of the comparisons: `scripts/bench/torch_bench.py`, run with the Python the
//! user names, writing its numbers as JSON.

use anyhow::{Context, Result};
use std::path::Path;

/// Runs `scripts/bench/torch_bench.py COMMAND OPTIONS --json TMP` with `python` and returns the
/// JSON it writes. An option with an empty value is a bare flag; `packages` are what the
/// script needs, named in the error when `python` cannot be started.
pub fn run_torch_bench(
    python: &Path,
    command: &str,
    options: &[(&str, String)],
    packages: &str,
) -> Result<serde_json::Value> {
    let out = std::env::temp_dir().join(format!(
        "ebdiff-torch-bench-{command}-{}.json",
        std::process::id()
    ));
    let mut cmd = std::process::Command::new(python);
    cmd.arg("scripts/bench/torch_bench.py").arg(command);
    for (flag, value) in options {
        cmd.arg(flag);
        if !value.is_empty() {
            cmd.arg(value);
        }
    }
    let status = cmd.arg("--json").arg(&out).status().with_context(|| {
        format!(
            "cannot run {} (install: python3 -m venv .venv && .venv/bin/pip install {packages})",
            python.display()
        )
    })?;
    anyhow::ensure!(status.success(), "the PyTorch benchmark failed ({status})");
    let text = std::fs::read_to_string(&out)
        .with_context(|| format!("the PyTorch benchmark wrote no {}", out.display()))?;
    std::fs::remove_file(&out).ok();
    Ok(serde_json::from_str(&text)?)
}
