//! The diffusion model: a backbone g plus a parameterization that turns it into ε̂ (and, for
//! energy models, a scalar energy E whose input gradient is ε̂).
//!
//! Energy heads over g (method.md §2.2), and their input gradients, using the backbone VJP J_gᵀ:
//! (A) E = c‖g − x‖²   → ∇ₓE = J_gᵀ r − r,  r = 2c(g − x)
//! (B) E = ½‖g‖²       → ∇ₓE = J_gᵀ g
//! (C) E = ⟨x, g⟩      → ∇ₓE = g + J_gᵀ x
//! Because J_gᵀ(·) is built from differentiable ops, the DSM loss ‖∇ₓE − ε‖² has ordinary
//! first-order parameter gradients.

use crate::backbone::{Backbone, BackboneCache};
use crate::traits::{Conditioning, EnergyModel, EpsModel};
use crate::vjp::{Layer, Plain, Visitor, Vjp};
use burn::module::Module;
use burn::tensor::Tensor;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EnergyForm {
    /// (A) c‖g − x‖² (the authors' 2-D notebook uses c = 1).
    Reconstruction { scale: f64 },
    /// (B) ½‖g‖².
    SquaredNorm,
    /// (C) ⟨x, g⟩.
    InnerProduct,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Parameterization {
    /// The backbone output is ε̂ directly (a score model: no energy, no MH).
    Eps,
    /// The backbone defines a scalar energy; ε̂ = ∇ₓE.
    Energy(EnergyForm),
}

#[derive(Module, Debug)]
pub struct DiffusionModel {
    pub backbone: Backbone,
    #[module(skip)]
    pub parameterization: Parameterization,
    pub data_dim: usize,
}

impl DiffusionModel {
    pub fn is_energy(&self) -> bool {
        matches!(self.parameterization, Parameterization::Energy(_))
    }

    /// A view implementing [`EnergyModel`], or `None` for score-parameterized models.
    pub fn as_energy(&self) -> Option<EnergyView<'_>> {
        self.is_energy().then_some(EnergyView(self))
    }

    fn head_energy(form: EnergyForm, x: Tensor<2>, g: Tensor<2>) -> Tensor<1> {
        let e = match form {
            EnergyForm::Reconstruction { scale } => (g - x).square().sum_dim(1).mul_scalar(scale),
            EnergyForm::SquaredNorm => g.square().sum_dim(1).mul_scalar(0.5),
            EnergyForm::InnerProduct => (x * g).sum_dim(1),
        };
        e.squeeze_dim(1)
    }

    /// ∇ₓE from the input, the backbone output and its cache: the VJP half of [`Self::eps`]
    /// (public so a profiler can time the forward and the VJP apart).
    pub fn head_grad(
        form: EnergyForm,
        x: Tensor<2>,
        g: Tensor<2>,
        cache: &BackboneCache,
    ) -> Tensor<2> {
        match form {
            EnergyForm::Reconstruction { scale } => {
                let r = (g - x).mul_scalar(2.0 * scale);
                cache.vjp(r.clone()) - r
            }
            EnergyForm::SquaredNorm => cache.vjp(g),
            EnergyForm::InnerProduct => g + cache.vjp(x),
        }
    }

    fn check_input(&self, x: &Tensor<2>) {
        let [_, d] = x.dims();
        assert_eq!(
            d, self.data_dim,
            "input has {d} features per example but the model was built for data_dim = {} (check model.data_shape)",
            self.data_dim
        );
    }

    /// E and ∇ₓE; panics for score models (use [`DiffusionModel::as_energy`] to check first).
    pub fn energy_and_eps(&self, x: Tensor<2>, cond: &Conditioning) -> (Tensor<1>, Tensor<2>) {
        self.energy_and_eps_visit(x, cond, &mut Plain)
    }

    fn energy_and_eps_visit<V: Visitor>(
        &self,
        x: Tensor<2>,
        cond: &Conditioning,
        v: &mut V,
    ) -> (Tensor<1>, Tensor<2>) {
        let Parameterization::Energy(form) = self.parameterization else {
            panic!("energy requested from a score (eps) parameterized model");
        };
        self.check_input(&x);
        let (g, cache) = self.backbone.forward_visit(x.clone(), cond, v);
        let e = Self::head_energy(form, x.clone(), g.clone());
        let grad = Self::head_grad(form, x, g, &cache);
        (e, grad)
    }

    pub fn eps(&self, x: Tensor<2>, cond: &Conditioning) -> Tensor<2> {
        self.check_input(&x);
        match self.parameterization {
            Parameterization::Eps => self.backbone.forward(x, cond),
            Parameterization::Energy(form) => {
                let (g, cache) = self.backbone.forward_cached(x.clone(), cond);
                Self::head_grad(form, x, g, &cache)
            }
        }
    }

    pub fn energy(&self, x: Tensor<2>, cond: &Conditioning) -> Tensor<1> {
        let Parameterization::Energy(form) = self.parameterization else {
            panic!("energy requested from a score (eps) parameterized model");
        };
        self.check_input(&x);
        let g = self.backbone.forward(x.clone(), cond);
        Self::head_energy(form, x, g)
    }
}

impl EpsModel for DiffusionModel {
    fn data_dim(&self) -> usize {
        self.data_dim
    }
    fn eps(&self, x: Tensor<2>, cond: &Conditioning) -> Tensor<2> {
        DiffusionModel::eps(self, x, cond)
    }
}

/// Borrowed view of an energy-parameterized [`DiffusionModel`] as an [`EnergyModel`].
#[derive(Debug, Clone, Copy)]
pub struct EnergyView<'a>(pub &'a DiffusionModel);

impl EpsModel for EnergyView<'_> {
    fn data_dim(&self) -> usize {
        self.0.data_dim
    }
    fn eps(&self, x: Tensor<2>, cond: &Conditioning) -> Tensor<2> {
        self.0.eps(x, cond)
    }
}

impl EnergyModel for EnergyView<'_> {
    fn energy(&self, x: Tensor<2>, cond: &Conditioning) -> Tensor<1> {
        self.0.energy(x, cond)
    }
    fn energy_and_eps(&self, x: Tensor<2>, cond: &Conditioning) -> (Tensor<1>, Tensor<2>) {
        self.0.energy_and_eps(x, cond)
    }
}

/// The energy as a layer x ↦ E(x) `[B]`: its VJP is g ⊙ ∇ₓE (per example), and its cache is
/// ∇ₓE, computed by the explicit backbone VJP. This is what lets the generic checks compare
/// ∇ₓE with autodiff and finite differences; its child is the backbone.
impl Vjp<Tensor<2>> for EnergyView<'_> {
    type Output = Tensor<1>;
    type Cache = Tensor<2>;
    fn vjp(&self, eps: &Tensor<2>, g: Tensor<1>) -> Tensor<2> {
        eps.clone() * g.unsqueeze_dim::<2>(1)
    }
    fn kind(&self) -> String {
        "energy ∇ₓE".into()
    }
}

impl Layer<Tensor<2>, Conditioning> for EnergyView<'_> {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<2>,
        cond: &Conditioning,
        v: &mut V,
    ) -> (Tensor<1>, Tensor<2>) {
        self.0.energy_and_eps_visit(x, cond, v)
    }
}
