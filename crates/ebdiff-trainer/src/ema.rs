//! Exponential moving average of the weights (Burn has none built in). The EMA copy lives on the
//! inference (non-autodiff) device; sampling and evaluation use it.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;
use ebdiff_model::DiffusionModel;

/// θ_ema ← d·θ_ema + (1 − d)·θ.
#[derive(Debug, Clone)]
pub struct Ema {
    pub model: DiffusionModel,
    pub decay: f64,
    pub updates: u64,
}

struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val().inner();
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

impl Ema {
    /// Starts the EMA at the current weights (copied to the non-autodiff device).
    pub fn new(model: &DiffusionModel, decay: f64) -> Self {
        assert!(
            (0.0..1.0).contains(&decay),
            "EMA decay must be in [0, 1), got {decay}"
        );
        Ema {
            model: model.valid(),
            decay,
            updates: 0,
        }
    }

    pub fn update(&mut self, live: &DiffusionModel) {
        let mut collect = Collect(Vec::new());
        live.visit(&mut collect);
        let mut blend = Blend {
            live: collect.0.into_iter(),
            decay: self.decay,
        };
        self.model = self.model.clone().map(&mut blend);
        self.updates += 1;
    }
}
