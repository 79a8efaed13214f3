//! Shared helpers for the gradient-check test binaries.
#![allow(dead_code)]

use burn::tensor::{Device, FloatDType};
use ebdiff_model::ModelConfig;
use std::sync::Once;

static F64: Once = Once::new();

/// The flex device switched to f64: a process-wide setting, so only binaries that run entirely
/// in f64 may call this.
pub fn f64_device() -> Device {
    F64.call_once(|| {
        let mut d = Device::flex();
        d.configure(FloatDType::F64).expect("flex supports f64");
    });
    Device::flex()
}

pub fn tiny_unet(
    parameterization: &str,
    energy_form: &str,
    dropout: f64,
    classes: Option<usize>,
    downsample: &str,
) -> ModelConfig {
    let classes = classes
        .map(|n| format!("num_classes = {n}\n"))
        .unwrap_or_default();
    let text = format!(
        r#"
parameterization = "{parameterization}"
energy_form = "{energy_form}"
zero_init_output = false
data_shape = [3, 8, 8]
{classes}
[backbone]
kind = "unet"
channels = 8
channel_mult = [1, 2]
res_blocks = 1
attention_resolutions = [4]
dropout = {dropout}
groups = 4
downsample = "{downsample}"
"#
    );
    let cfg: ModelConfig = toml::from_str(&text).expect("tiny unet config");
    cfg.validate().expect("valid tiny unet");
    cfg
}

pub fn tiny_mlp(parameterization: &str, energy_form: &str, classes: Option<usize>) -> ModelConfig {
    let classes = classes
        .map(|n| format!("num_classes = {n}\n"))
        .unwrap_or_default();
    let text = format!(
        r#"
parameterization = "{parameterization}"
energy_form = "{energy_form}"
zero_init_output = false
data_shape = [2]
{classes}
[backbone]
kind = "mlp2d"
hidden = 16
blocks = 2
emb_dim = 8
"#
    );
    let cfg: ModelConfig = toml::from_str(&text).expect("tiny mlp config");
    cfg.validate().expect("valid tiny mlp");
    cfg
}
