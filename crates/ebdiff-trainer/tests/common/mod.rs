//! Shared helpers for the trainer's test binaries.
#![allow(dead_code)]

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use ebdiff_model::gradcheck::to_vec;

struct Flatten(Vec<f64>);

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.extend(to_vec(param.val()));
    }
}

/// Every float parameter of a module, in visiting order (for exact weight comparisons).
pub fn flat(m: &impl Module) -> Vec<f64> {
    let mut f = Flatten(Vec::new());
    m.visit(&mut f);
    f.0
}
