//! The benchmarks' `--json` files.

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;

/// Writes `report` as pretty JSON to `path`, keys in sorted order (through a
/// [`serde_json::Value`]), as every benchmark JSON has them.
pub fn write_json(path: &Path, report: &impl Serialize) -> Result<()> {
    let value = serde_json::to_value(report)?;
    std::fs::write(path, serde_json::to_string_pretty(&value)?)
        .with_context(|| format!("cannot write {}", path.display()))
}
