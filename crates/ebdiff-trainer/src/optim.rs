//! Optimizer choice, global gradient-norm clipping and the finiteness check.
//!
//! Burn's built-in clipping works per tensor; diffusion training (DDPM, EDM) clips the *global*
//! norm over all parameters, so we compute the per-parameter norms ourselves. The same norms tell
//! us which tensor went non-finite when a step blows up.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    #[default]
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    Adamw,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerSettings {
    pub kind: OptimizerKind,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    /// Decoupled weight decay (AdamW only).
    pub weight_decay: f32,
}

impl OptimizerSettings {
    pub fn init(&self) -> ModuleOptimizer {
        match self.kind {
            OptimizerKind::Adam => AdamConfig::new()
                .with_beta_1(self.beta1)
                .with_beta_2(self.beta2)
                .with_epsilon(self.epsilon)
                .init(),
            OptimizerKind::Adamw => AdamWConfig::new()
                .with_beta_1(self.beta1)
                .with_beta_2(self.beta2)
                .with_epsilon(self.epsilon)
                .with_weight_decay(self.weight_decay)
                .init(),
        }
    }
}

/// Walks the parameters, keeping the module path, and collects ‖g‖² of each gradient.
struct SquaredNorms<'a> {
    grads: &'a GradientsParams,
    stack: Vec<String>,
    names: Vec<String>,
    squares: Vec<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorms<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let n = g.shape().num_elements();
            self.squares.push(g.reshape([n]).square().sum());
            self.names.push(if self.stack.is_empty() {
                format!("parameter #{}", self.names.len())
            } else {
                self.stack.join(".")
            });
        }
    }
}

/// Norms of one step's gradients.
#[derive(Debug, Clone)]
pub struct GradNorms {
    /// (parameter path, gradient L2 norm), for parameters that received a gradient.
    pub per_param: Vec<(String, f64)>,
    pub global: f64,
}

impl GradNorms {
    pub fn compute<M: Module>(model: &M, grads: &GradientsParams) -> Self {
        let mut sq = SquaredNorms {
            grads,
            stack: Vec::new(),
            names: Vec::new(),
            squares: Vec::new(),
        };
        model.visit(&mut sq);
        let values: Vec<f64> = if sq.squares.is_empty() {
            Vec::new()
        } else {
            // One host read for all parameters.
            Tensor::cat(sq.squares, 0)
                .into_data()
                .convert::<f64>()
                .try_to_vec()
                .expect("f64 norms")
        };
        let global = values.iter().sum::<f64>().sqrt();
        let per_param = sq
            .names
            .into_iter()
            .zip(values)
            .map(|(n, s)| (n, s.sqrt()))
            .collect();
        GradNorms { per_param, global }
    }

    /// The first parameter whose gradient is NaN or ±∞.
    pub fn first_non_finite(&self) -> Option<&str> {
        self.per_param
            .iter()
            .find(|(_, v)| !v.is_finite())
            .map(|(n, _)| n.as_str())
    }
}

/// Multiplies every gradient by `factor`.
struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads
                .register::<D>(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// Rescales the gradients so that their global norm is at most `max_norm`; returns the factor.
pub fn clip_global_norm<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    global_norm: f64,
    max_norm: f64,
) -> f64 {
    if global_norm <= max_norm || global_norm == 0.0 {
        return 1.0;
    }
    let factor = max_norm / global_norm;
    model.visit(&mut Scale { grads, factor });
    factor
}
