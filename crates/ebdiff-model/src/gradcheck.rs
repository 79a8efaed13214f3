//! Gradient checks for explicit VJPs, shared by the test-suite and `cargo xtask gradcheck`.
//!
//! One generic check, [`check_layer`], works for any [`Layer`], against either reference:
//! * Burn's own first-order input gradient: for a random cotangent v, ∂⟨f(x), v⟩/∂x by autodiff
//!   must equal `vjp(v)`.
//! * Central finite differences: along a random direction u, (⟨f(x+hu),v⟩ − ⟨f(x−hu),v⟩)/2h must
//!   equal ⟨vjp(v), u⟩.
//!
//! One visitor, [`LayerChecker`], rides on a model's forward pass and runs that check on every
//! layer the blocks expose (see [`crate::vjp::Visitor`]), with the input the layer really
//! receives there. A new layer is checked as soon as a block runs it through the visitor.
//!
//! For the DSM loss, perturbing single parameters must reproduce the autodiff ∂loss/∂θ
//! ([`check_dsm_param_grads`]; this is what validates differentiating *through* the VJPs).
//!
//! [`check_model`] runs all of it on one model config with tolerances and a verdict: the
//! `cargo xtask gradcheck` command, callable from Rust.

mod model_check;

pub use model_check::{
    AUTODIFF_TOL, GradcheckError, GradcheckOptions, GradcheckReport, check_model,
};

use crate::backbone::Backbone;
use crate::model::DiffusionModel;
use crate::traits::Conditioning;
use crate::vjp::{Layer, Value, Visitor};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Gradients;
use burn::tensor::{Device, Int, Tensor, TensorData};
use ebdiff_core::rng::normal_vec;
use rand::Rng;
use rand::rngs::StdRng;
use std::fmt::Display;

/// Outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// Where the layer sits (module path), or the name given to [`check_layer`].
    pub name: String,
    /// The layer's kind ([`crate::vjp::Vjp::kind`]), for per-kind summaries.
    pub kind: String,
    /// What the VJP was compared with: "autodiff" or "finite-diff".
    pub reference: &'static str,
    pub rel_err: f64,
    /// Magnitude of the reference values (to judge the relative error).
    pub scale: f64,
}

/// What a VJP is checked against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reference {
    /// Burn's input gradient; needs an autodiff device. Relative error ~1e-7 in f32.
    Autodiff,
    /// Central differences with this step; meaningful in f64 (in f32 expect ~1e-3).
    FiniteDiff { step: f64 },
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.to_f64()
}

/// max|a − b| / max|b| (∞-norm relative error; 0 when both vanish).
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "compared vectors differ in length");
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = max_abs(b);
    if scale == 0.0 { diff } else { diff / scale }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().map(|y| y.abs()).fold(0.0, f64::max)
}

pub fn randn<const D: usize>(rng: &mut StdRng, shape: [usize; D], device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(normal_vec(rng, n), shape), device)
}

/// The generic check: `layer`'s VJP at `x` (under `ctx`) against `reference`.
pub fn check_layer<X: Value, C, L: Layer<X, C>>(
    name: &str,
    layer: &L,
    x: X,
    ctx: &C,
    reference: Reference,
    rng: &mut StdRng,
) -> CheckResult {
    let (rel_err, scale) = match reference {
        Reference::Autodiff => {
            let _exclusive = ebdiff_core::burn_globals::exclusive();
            let x = x.leaf();
            let (y, cache) = layer.forward_cached(x.clone(), ctx);
            let v = y.randn_like(rng);
            // Evaluate the VJP before backward consumes the graph the cache belongs to.
            let explicit = layer.vjp(&cache, v.clone()).to_f64();
            let grads = y.dot(&v).backward();
            let auto = x
                .grad(&grads)
                .expect("input gradient (is the device an autodiff device?)")
                .to_f64();
            (rel_err(&explicit, &auto), max_abs(&auto))
        }
        Reference::FiniteDiff { step } => {
            let (y, cache) = layer.forward_cached(x.clone(), ctx);
            let v = y.randn_like(rng);
            let u = x.randn_like(rng);
            let analytic = layer.vjp(&cache, v.clone()).dot(&u).to_f64()[0];
            let f = |x: X| layer.forward_cached(x, ctx).0.dot(&v).to_f64()[0];
            let numeric = (f(x.plus_scaled(&u, step)) - f(x.plus_scaled(&u, -step))) / (2.0 * step);
            (
                (analytic - numeric).abs() / numeric.abs().max(1e-12),
                numeric.abs(),
            )
        }
    };
    CheckResult {
        name: name.to_string(),
        kind: layer.kind(),
        reference: match reference {
            Reference::Autodiff => "autodiff",
            Reference::FiniteDiff { .. } => "finite-diff",
        },
        rel_err,
        scale,
    }
}

/// The visitor that checks every layer it meets on a forward pass, with [`check_layer`], and
/// recurses into its children. Results are named by module path (`down.0.blocks.1.conv2`).
///
/// For [`Reference::Autodiff`] the network's parameters must not be tracked (`Module::no_grad`):
/// a context computed from parameters (the time embedding) is shared by many children, and the
/// first check's backward pass would consume its graph. Input gradients do not need them.
pub struct LayerChecker<'r> {
    reference: Reference,
    rng: &'r mut StdRng,
    path: Vec<String>,
    pub results: Vec<CheckResult>,
}

impl<'r> LayerChecker<'r> {
    pub fn new(reference: Reference, rng: &'r mut StdRng) -> Self {
        LayerChecker {
            reference,
            rng,
            path: Vec::new(),
            results: Vec::new(),
        }
    }

    /// Checks `root` as a whole (named `name`), then every layer below it (named by their paths
    /// relative to `root`).
    pub fn check_root<X: Value, C, L: Layer<X, C>>(&mut self, name: &str, root: &L, x: X, ctx: &C) {
        let result = check_layer(name, root, x.clone(), ctx, self.reference, self.rng);
        self.results.push(result);
        root.forward_visit(x, ctx, self);
    }
}

impl Visitor for LayerChecker<'_> {
    fn child<X: Value, C, L: Layer<X, C>>(
        &mut self,
        name: &dyn Display,
        layer: &L,
        x: X,
        ctx: &C,
    ) -> (L::Output, L::Cache) {
        self.path.push(name.to_string());
        let path = self.path.join(".");
        let result = check_layer(&path, layer, x.clone(), ctx, self.reference, self.rng);
        self.results.push(result);
        let out = layer.forward_visit(x, ctx, self);
        self.path.pop();
        out
    }
}

/// Checks `root` and every layer below it: [`LayerChecker::check_root`] (mind the note on
/// untracked parameters there).
pub fn check_tree<X: Value, C, L: Layer<X, C>>(
    name: &str,
    root: &L,
    x: X,
    ctx: &C,
    reference: Reference,
    rng: &mut StdRng,
) -> Vec<CheckResult> {
    let mut checker = LayerChecker::new(reference, rng);
    checker.check_root(name, root, x, ctx);
    checker.results
}

/// Deterministic per-example levels and labels for checks.
pub fn random_conditioning(
    rng: &mut StdRng,
    batch: usize,
    timesteps: usize,
    num_classes: Option<usize>,
    device: &Device,
) -> Conditioning {
    let t: Vec<i64> = (0..batch)
        .map(|_| rng.random_range(0..timesteps) as i64)
        .collect();
    let mut cond = Conditioning::new(Tensor::<1, Int>::from_data(
        TensorData::new(t, [batch]),
        device,
    ));
    if let Some(n) = num_classes {
        // Include the null label (index n) so the CFG branch is exercised too.
        let y: Vec<i64> = (0..batch).map(|_| rng.random_range(0..=n) as i64).collect();
        cond = cond.with_labels(Tensor::<1, Int>::from_data(
            TensorData::new(y, [batch]),
            device,
        ));
    }
    cond
}

fn num_classes(model: &DiffusionModel) -> Option<usize> {
    match &model.backbone {
        Backbone::Mlp2d(m) => m.class_emb.as_ref().map(|c| c.num_classes),
        Backbone::Unet(u) => u.class_emb.as_ref().map(|c| c.num_classes),
    }
}

/// Checks every layer of `model` against `reference` at a random input and conditioning: for
/// energy models the energy's input gradient ∇ₓE ("energy ∇ₓE"), the backbone ("backbone") and
/// every layer below it ("backbone.…"); for score models the backbone and below. Against
/// autodiff the conditioning is in training mode, so dropout masks are part of what is checked;
/// finite differences need a deterministic forward pass and use evaluation mode. `model` must
/// live on an autodiff device for [`Reference::Autodiff`].
pub fn check_model_layers(
    model: &DiffusionModel,
    batch: usize,
    timesteps: usize,
    reference: Reference,
    rng: &mut StdRng,
) -> Vec<CheckResult> {
    let model = &model.clone().no_grad();
    let device = model.devices()[0].clone();
    let cond = random_conditioning(rng, batch, timesteps, num_classes(model), &device)
        .training(reference == Reference::Autodiff);
    let x = randn(rng, [batch, model.data_dim], &device);
    let mut checker = LayerChecker::new(reference, rng);
    match model.as_energy() {
        Some(energy) => checker.check_root("energy ∇ₓE", &energy, x, &cond),
        None => {
            model.backbone.forward_visit(x, &cond, &mut checker);
        }
    }
    checker.results
}

/// Modules that only embed the conditioning (time and class embeddings). Their output does not
/// depend on x, so they have a forward pass and no VJP (DEVELOPERS.md rule 2), and the visitor
/// does not meet them.
pub const CONDITIONING_MODULES: [&str; 2] = ["time_mlp", "class_emb"];

/// Module paths (`backbone.Unet.down.0.blocks.0.conv1`) that own a float parameter, in visit
/// order.
pub fn parameter_owners<M: Module>(module: &M) -> Vec<String> {
    struct Owners {
        path: Vec<String>,
        out: Vec<String>,
    }
    impl ModuleVisitor for Owners {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
            // The innermost entry is the parameter's own field name.
            let owner = self.path[..self.path.len().saturating_sub(1)].join(".");
            if self.out.last() != Some(&owner) {
                self.out.push(owner);
            }
        }
    }
    let mut v = Owners {
        path: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut v);
    v.out
}

/// Modules of `module` that own parameters but were not checked in `results` (names as
/// [`check_model_layers`] / [`check_tree`] give them), apart from [`CONDITIONING_MODULES`]: the
/// layers that some block runs without exposing them to the visitor.
pub fn unreached_layers<M: Module>(module: &M, results: &[CheckResult]) -> Vec<String> {
    let checked: std::collections::HashSet<&str> =
        results.iter().map(|r| r.name.as_str()).collect();
    parameter_owners(module)
        .into_iter()
        .filter(|owner| {
            let conditioning = owner
                .split('.')
                .any(|part| CONDITIONING_MODULES.contains(&part));
            !conditioning && !checked.contains(owner.as_str())
        })
        .collect()
}

/// Adds N(0, std²) noise to every float parameter. Zero-initialized output layers make a fresh
/// model's backbone gradients identically zero, and a check of zeros against zeros proves
/// nothing; checking at a random point of parameter space does.
pub fn perturb_parameters(model: DiffusionModel, std: f64, rng: &mut StdRng) -> DiffusionModel {
    struct Noise<'a> {
        rng: &'a mut StdRng,
        std: f64,
    }
    impl ModuleMapper for Noise<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (rng, std) = (&mut *self.rng, self.std);
            param.map(|t| {
                let noise = randn(rng, t.dims(), &t.device()).mul_scalar(std);
                let moved = t.clone() + noise;
                // Keep the parameter a leaf of the autodiff graph.
                if t.is_autodiff() {
                    moved.detach().require_grad()
                } else {
                    moved
                }
            })
        }
    }
    model.map(&mut Noise { rng, std })
}

// ---------------------------------------------------------------------------------------------
// Parameter gradients of the DSM loss, against finite differences.

/// The DSM ε-loss used for training: mean over batch and dims of (ε̂(x_t) − ε)².
pub fn dsm_loss_on(
    model: &DiffusionModel,
    x_t: Tensor<2>,
    eps: Tensor<2>,
    cond: &Conditioning,
) -> Tensor<1> {
    (model.eps(x_t, cond) - eps).square().mean()
}

/// Collects (name, values, gradient) of every float parameter in visit order.
struct GradCollector<'a> {
    grads: &'a Gradients,
    path: Vec<String>,
    out: Vec<(String, Vec<usize>, Option<Vec<f64>>)>,
}

impl ModuleVisitor for GradCollector<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let shape = t.dims().to_vec();
        let g = t.grad(self.grads).map(to_vec);
        self.out.push((self.path.join("."), shape, g));
    }
}

/// Adds `delta` to element `flat` of the `target`-th float parameter (visit order).
struct Perturb {
    target: usize,
    flat: usize,
    delta: f64,
    seen: usize,
}

impl ModuleMapper for Perturb {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let idx = self.seen;
        self.seen += 1;
        if idx != self.target {
            return param;
        }
        let (flat, delta) = (self.flat, self.delta);
        param.map(|t| {
            let shape = t.dims();
            let n: usize = shape.iter().product();
            let mut bump = vec![0.0f64; n];
            bump[flat] = delta;
            let bump = Tensor::<D>::from_data(TensorData::new(bump, shape), &t.device());
            t + bump
        })
    }
}

/// Checks ∂(DSM loss)/∂θ for `samples` random parameter entries against central differences.
/// `model` must live on an autodiff device; the check is meaningful in f64.
pub fn check_dsm_param_grads(
    model: &DiffusionModel,
    batch: usize,
    timesteps: usize,
    samples: usize,
    step: f64,
    rng: &mut StdRng,
) -> Vec<CheckResult> {
    let device = model.devices()[0].clone();
    let cond = random_conditioning(rng, batch, timesteps, num_classes(model), &device);
    let x_t = randn(rng, [batch, model.data_dim], &device);
    let eps = randn(rng, [batch, model.data_dim], &device);
    let grads = {
        let _exclusive = ebdiff_core::burn_globals::exclusive();
        dsm_loss_on(model, x_t.clone(), eps.clone(), &cond).backward()
    };
    let mut collector = GradCollector {
        grads: &grads,
        path: Vec::new(),
        out: Vec::new(),
    };
    model.visit(&mut collector);
    let params = collector.out;
    let eval = |m: &DiffusionModel| to_vec(dsm_loss_on(m, x_t.clone(), eps.clone(), &cond))[0];
    // Parameters with some non-zero gradient entry (zero-initialized layers block some paths;
    // comparing a zero with a zero would prove nothing). A parameter is drawn uniformly, then one
    // of its non-zero entries, so that small tensors (norms, biases) are checked as often as
    // large convolutions.
    let nonzero: Vec<(usize, Vec<usize>)> = params
        .iter()
        .enumerate()
        .filter_map(|(i, (_, _, g))| {
            let idx: Vec<usize> = g
                .as_ref()?
                .iter()
                .enumerate()
                .filter(|(_, v)| **v != 0.0)
                .map(|(j, _)| j)
                .collect();
            (!idx.is_empty()).then_some((i, idx))
        })
        .collect();
    assert!(
        !nonzero.is_empty(),
        "no parameter received a non-zero gradient"
    );
    // Errors are relative to max(|analytic|, |numeric|, floor): the floor (1e-3 of the largest
    // gradient entry) keeps round-off on negligible entries from reading as a large relative error.
    let floor = 1e-3
        * params
            .iter()
            .filter_map(|(_, _, g)| g.as_ref())
            .flatten()
            .fold(0.0f64, |m, v| m.max(v.abs()));
    let mut results = Vec::new();
    for _ in 0..samples {
        let (p, idx) = &nonzero[rng.random_range(0..nonzero.len())];
        let (p, flat) = (*p, idx[rng.random_range(0..idx.len())]);
        let name = &params[p].0;
        let analytic = params[p].2.as_ref().unwrap()[flat];
        let plus = model.clone().map(&mut Perturb {
            target: p,
            flat,
            delta: step,
            seen: 0,
        });
        let minus = model.clone().map(&mut Perturb {
            target: p,
            flat,
            delta: -step,
            seen: 0,
        });
        let numeric = (eval(&plus) - eval(&minus)) / (2.0 * step);
        let err = (analytic - numeric).abs() / analytic.abs().max(numeric.abs()).max(floor);
        results.push(CheckResult {
            name: format!("∂L/∂{name}[{flat}]"),
            kind: "∂(DSM loss)/∂θ".into(),
            reference: "finite-diff",
            rel_err: err,
            scale: numeric.abs(),
        });
    }
    results
}
