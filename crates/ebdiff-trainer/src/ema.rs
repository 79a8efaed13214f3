//! Exponential moving average of the weights (Burn has none built in). The EMA copy lives on the
//! inference (non-autodiff) device; sampling and evaluation use it. It is kept in f32 whatever
//! the device computes in (`--dtype bf16`): with β = 0.999 each update moves a weight by 1e-3 of
//! the difference, below half precision's resolution.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{DType, Device, FloatDType, Tensor};
use ebdiff_model::DiffusionModel;

/// How fast the EMA forgets: a fixed decay per step, or EDM's half-life in training examples with
/// an optional ramp-up (the half-life is capped at `rampup_ratio` × examples seen so far, so that
/// early in training the EMA is not dominated by the random initialization).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EmaSchedule {
    Decay(f64),
    HalfLife {
        examples: f64,
        rampup_ratio: Option<f64>,
    },
}

impl EmaSchedule {
    /// Decay β for the update after `examples_seen` examples (this step's included).
    pub fn beta(&self, batch_size: usize, examples_seen: u64) -> f64 {
        match *self {
            EmaSchedule::Decay(d) => d,
            EmaSchedule::HalfLife {
                examples,
                rampup_ratio,
            } => {
                let mut half = examples;
                if let Some(r) = rampup_ratio {
                    half = half.min(examples_seen as f64 * r);
                }
                0.5f64.powf(batch_size as f64 / half.max(1e-8))
            }
        }
    }
}

/// θ_ema ← β·θ_ema + (1 − β)·θ.
#[derive(Debug, Clone)]
pub struct Ema {
    pub model: DiffusionModel,
    pub updates: u64,
}

struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = in_f32(param.val().inner());
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

struct Blend {
    live: std::vec::IntoIter<Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let live = self
            .live
            .next()
            .expect("EMA and model have the same parameters");
        let decay = self.decay;
        param.map(|ema| {
            let shape = ema.shape();
            ema.mul_scalar(decay) + live.reshape(shape).mul_scalar(1.0 - decay)
        })
    }
}

/// Casts every float parameter to one dtype.
struct CastTo(FloatDType);

impl ModuleMapper for CastTo {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| {
            if t.dtype() == dtype.into() {
                t
            } else {
                t.cast(dtype)
            }
        })
    }
}

/// Half-precision tensors widened to f32; f32 and f64 as they are (no cast, no graph node).
pub(crate) fn in_f32<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    if matches!(t.dtype(), DType::F16 | DType::BF16) {
        t.cast(FloatDType::F32)
    } else {
        t
    }
}

fn is_half(dtype: FloatDType) -> bool {
    matches!(dtype, FloatDType::F16 | FloatDType::BF16)
}

/// Half-precision parameters widened to f32 (the EMA's own copy).
struct Widen;

impl ModuleMapper for Widen {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(in_f32)
    }
}

impl Ema {
    /// Starts the EMA at the current weights (copied to the non-autodiff device, in f32).
    pub fn new(model: &DiffusionModel) -> Self {
        Ema {
            model: model.valid().map(&mut Widen),
            updates: 0,
        }
    }

    /// An EMA loaded from a checkpoint (half-precision weights widened to f32).
    pub fn restored(model: DiffusionModel, updates: u64) -> Self {
        Ema {
            model: model.map(&mut Widen),
            updates,
        }
    }

    /// The EMA weights in the float type `device` computes in (they are kept in f32): what
    /// sampling during training uses, so that inputs and weights share one dtype.
    pub fn model_on(&self, device: &Device) -> DiffusionModel {
        let dtype = device.settings().float_dtype;
        if is_half(dtype) {
            self.model.clone().map(&mut CastTo(dtype))
        } else {
            self.model.clone()
        }
    }

    pub fn update(&mut self, live: &DiffusionModel, decay: f64) {
        assert!(
            (0.0..=1.0).contains(&decay),
            "EMA decay must be in [0, 1], got {decay}"
        );
        let mut collect = Collect(Vec::new());
        live.visit(&mut collect);
        let mut blend = Blend {
            live: collect.0.into_iter(),
            decay,
        };
        self.model = self.model.clone().map(&mut blend);
        self.updates += 1;
    }
}
