//! `[model]` section of a config file: parameterization, energy head and backbone shape.

use crate::backbone::{Backbone, ResidualMlp, ResidualMlpShape, Unet, UnetShape};
use crate::layers::DownsampleKind;
use crate::model::{DiffusionModel, EnergyForm, Parameterization};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParameterizationKind {
    /// Score model: the backbone predicts ε directly.
    Eps,
    /// Energy model: ε̂ = ∇ₓE with E from `energy_form`.
    Energy,
}

impl std::str::FromStr for ParameterizationKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "eps" => Ok(ParameterizationKind::Eps),
            "energy" => Ok(ParameterizationKind::Energy),
            _ => Err(format!(
                "unknown parameterization `{s}`; allowed: eps, energy"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EnergyFormKind {
    /// E = c‖g − x‖² (default; the authors' 2-D notebook).
    #[default]
    Reconstruction,
    /// E = ½‖g‖².
    SquaredNorm,
    /// E = ⟨x, g⟩.
    InnerProduct,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum BackboneConfig {
    /// The paper's residual MLP for 2-D data.
    Mlp2d {
        #[serde(default = "default_hidden")]
        hidden: usize,
        #[serde(default = "default_blocks")]
        blocks: usize,
        #[serde(default = "default_emb_dim")]
        emb_dim: usize,
    },
    /// DDPM UNet for images.
    Unet {
        #[serde(default = "default_channels")]
        channels: usize,
        #[serde(default = "default_channel_mult")]
        channel_mult: Vec<usize>,
        #[serde(default = "default_res_blocks")]
        res_blocks: usize,
        #[serde(default = "default_attention_resolutions")]
        attention_resolutions: Vec<usize>,
        #[serde(default)]
        dropout: f64,
        #[serde(default = "default_groups")]
        groups: usize,
        #[serde(default)]
        downsample: DownsampleKind,
    },
}

fn default_hidden() -> usize {
    128
}
fn default_blocks() -> usize {
    4
}
fn default_emb_dim() -> usize {
    32
}
fn default_channels() -> usize {
    128
}
fn default_channel_mult() -> Vec<usize> {
    vec![1, 2, 2, 2]
}
fn default_res_blocks() -> usize {
    2
}
fn default_attention_resolutions() -> Vec<usize> {
    vec![16]
}
fn default_groups() -> usize {
    32
}
fn default_energy_scale() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `eps` (score model) or `energy`.
    pub parameterization: ParameterizationKind,
    /// Energy head over the backbone (energy models only).
    #[serde(default)]
    pub energy_form: EnergyFormKind,
    /// The constant c of `reconstruction` (E = c‖g − x‖²).
    #[serde(default = "default_energy_scale")]
    pub energy_scale: f64,
    /// Zero-initialize the output layers. Default: true, except for `squared-norm`, whose
    /// input gradient J_gᵀg is quadratic in the output weights and would start with zero
    /// parameter gradients.
    #[serde(default)]
    pub zero_init_output: Option<bool>,
    /// Number of classes for class-conditional models (a null label is added for CFG).
    #[serde(default)]
    pub num_classes: Option<usize>,
    /// Shape of one example: `[2]` for 2-D points, `[C, H, W]` for images.
    pub data_shape: Vec<usize>,
    pub backbone: BackboneConfig,
}

impl ModelConfig {
    pub fn parameterization(&self) -> Parameterization {
        match self.parameterization {
            ParameterizationKind::Eps => Parameterization::Eps,
            ParameterizationKind::Energy => Parameterization::Energy(match self.energy_form {
                EnergyFormKind::Reconstruction => EnergyForm::Reconstruction {
                    scale: self.energy_scale,
                },
                EnergyFormKind::SquaredNorm => EnergyForm::SquaredNorm,
                EnergyFormKind::InnerProduct => EnergyForm::InnerProduct,
            }),
        }
    }

    pub fn data_dim(&self) -> usize {
        self.data_shape.iter().product()
    }

    fn zero_init(&self) -> bool {
        self.zero_init_output.unwrap_or(!matches!(
            self.parameterization(),
            Parameterization::Energy(EnergyForm::SquaredNorm)
        ))
    }

    /// Range and consistency checks. Errors are `(key path below [model], message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_string(), m));
        if self.data_shape.is_empty() || self.data_shape.contains(&0) {
            return err(
                "data_shape",
                format!(
                    "must be non-empty with positive entries, got {:?}",
                    self.data_shape
                ),
            );
        }
        if !(self.energy_scale > 0.0 && self.energy_scale.is_finite()) {
            return err(
                "energy_scale",
                format!("must be a positive number, got {}", self.energy_scale),
            );
        }
        if self.num_classes == Some(0) {
            return err(
                "num_classes",
                "must be ≥ 1 (omit it for an unconditional model)".into(),
            );
        }
        match &self.backbone {
            BackboneConfig::Mlp2d {
                hidden,
                blocks,
                emb_dim,
            } => {
                if self.data_shape.len() != 1 {
                    return err(
                        "data_shape",
                        format!(
                            "the mlp2d backbone takes vectors, e.g. [2]; got {:?} (use kind = \"unet\" for images)",
                            self.data_shape
                        ),
                    );
                }
                if *hidden == 0 || *blocks == 0 || *emb_dim == 0 {
                    return err("backbone", "hidden, blocks and emb_dim must be ≥ 1".into());
                }
            }
            BackboneConfig::Unet {
                channels,
                channel_mult,
                res_blocks,
                attention_resolutions,
                dropout,
                groups,
                ..
            } => {
                let [_, h, w] = self.data_shape[..] else {
                    return err(
                        "data_shape",
                        format!(
                            "the unet backbone needs [C, H, W], got {:?}",
                            self.data_shape
                        ),
                    );
                };
                if channel_mult.is_empty() || channel_mult.contains(&0) {
                    return err(
                        "backbone.channel_mult",
                        format!("must be non-empty with positive entries, got {channel_mult:?}"),
                    );
                }
                let factor = 1usize << (channel_mult.len() - 1);
                if h % factor != 0 || w % factor != 0 {
                    return err(
                        "data_shape",
                        format!(
                            "H and W must be divisible by 2^(levels−1) = {factor} for {} levels, got {h}×{w}",
                            channel_mult.len()
                        ),
                    );
                }
                if *res_blocks == 0 {
                    return err("backbone.res_blocks", "must be ≥ 1".into());
                }
                if *groups == 0 {
                    return err("backbone.groups", "must be ≥ 1".into());
                }
                for (i, m) in channel_mult.iter().enumerate() {
                    if (channels * m) % groups != 0 || channels % groups != 0 {
                        return err(
                            "backbone.groups",
                            format!(
                                "channels·mult = {}·{} (level {i}) is not divisible into {groups} groups",
                                channels, m
                            ),
                        );
                    }
                }
                if channels % 2 != 0 || *channels < 4 {
                    return err(
                        "backbone.channels",
                        format!(
                            "must be even and ≥ 4 (it sizes the sinusoidal embedding), got {channels}"
                        ),
                    );
                }
                let resolutions: Vec<usize> = (0..channel_mult.len()).map(|i| h >> i).collect();
                if let Some(r) = attention_resolutions
                    .iter()
                    .find(|r| !resolutions.contains(r))
                {
                    return err(
                        "backbone.attention_resolutions",
                        format!("{r} is not a resolution of this UNet; allowed: {resolutions:?}"),
                    );
                }
                if !(0.0..1.0).contains(dropout) {
                    return err(
                        "backbone.dropout",
                        format!("must be in [0, 1), got {dropout}"),
                    );
                }
            }
        }
        Ok(())
    }

    /// Builds the model. `timesteps` sizes the learned time table of the MLP backbone.
    pub fn init(&self, timesteps: usize, device: &Device) -> DiffusionModel {
        let zero = self.zero_init();
        let backbone = match &self.backbone {
            BackboneConfig::Mlp2d {
                hidden,
                blocks,
                emb_dim,
            } => Backbone::Mlp2d(ResidualMlp::new(
                &ResidualMlpShape {
                    data_dim: self.data_dim(),
                    hidden: *hidden,
                    blocks: *blocks,
                    emb_dim: *emb_dim,
                    timesteps,
                    num_classes: self.num_classes,
                    zero_init_output: zero,
                },
                device,
            )),
            BackboneConfig::Unet {
                channels,
                channel_mult,
                res_blocks,
                attention_resolutions,
                dropout,
                groups,
                downsample,
            } => Backbone::Unet(Unet::new(
                &UnetShape {
                    image_shape: [self.data_shape[0], self.data_shape[1], self.data_shape[2]],
                    channels: *channels,
                    channel_mult: channel_mult.clone(),
                    res_blocks: *res_blocks,
                    attention_resolutions: attention_resolutions.clone(),
                    dropout: *dropout,
                    groups: *groups,
                    downsample: *downsample,
                    num_classes: self.num_classes,
                    zero_init_output: zero,
                },
                device,
            )),
        };
        DiffusionModel {
            backbone,
            parameterization: self.parameterization(),
            data_dim: self.data_dim(),
        }
    }
}
