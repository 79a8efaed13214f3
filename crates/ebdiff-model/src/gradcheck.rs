//! Gradient checks for explicit VJPs, shared by the test-suite and `cargo xtask gradcheck`.
//!
//! Two independent references:
//! * Burn's own first-order input gradient: for a random cotangent v, ∂⟨f(x), v⟩/∂x by autodiff
//!   must equal `vjp(v)`.
//! * Central finite differences: along a random direction u, (⟨f(x+hu),v⟩ − ⟨f(x−hu),v⟩)/2h must
//!   equal ⟨vjp(v), u⟩; and for the DSM loss, perturbing single parameters must reproduce the
//!   autodiff ∂loss/∂θ (this is what validates differentiating *through* the VJPs).

use crate::backbone::{Backbone, ResBlock, Unet};
use crate::layers::{AttentionBlock, Conv2d, Downsample, GroupNorm, Upsample, silu, silu_vjp};
use crate::model::DiffusionModel;
use crate::traits::Conditioning;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Gradients;
use burn::tensor::{Device, Int, Tensor, TensorData};
use ebdiff_core::rng::normal_vec;
use rand::Rng;
use rand::rngs::StdRng;

/// Outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: String,
    /// What the VJP was compared with: "autodiff" or "finite-diff".
    pub reference: &'static str,
    pub rel_err: f64,
    /// Magnitude of the reference values (to judge the relative error).
    pub scale: f64,
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("float tensor data")
}

/// max|a − b| / max|b| (∞-norm relative error; 0 when both vanish).
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "compared vectors differ in length");
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    if scale == 0.0 { diff } else { diff / scale }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().map(|y| y.abs()).fold(0.0, f64::max)
}

pub fn randn<const D: usize>(rng: &mut StdRng, shape: [usize; D], device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(normal_vec(rng, n), shape), device)
}

/// Compares `vjp(v)` with autodiff's ∂⟨f(x), v⟩/∂x. `x` must live on an autodiff device.
pub fn check_vjp_autodiff<const DI: usize, const DO: usize, C>(
    name: &str,
    x: Tensor<DI>,
    forward: impl Fn(Tensor<DI>) -> (Tensor<DO>, C),
    vjp: impl Fn(&C, Tensor<DO>) -> Tensor<DI>,
    rng: &mut StdRng,
) -> CheckResult {
    let device = x.device();
    assert!(
        device.is_autodiff(),
        "check_vjp_autodiff needs an autodiff device"
    );
    let x = x.detach().require_grad();
    let (y, cache) = forward(x.clone());
    let v = randn(rng, y.dims(), &device);
    // Evaluate the VJP before backward consumes the graph the cache belongs to.
    let explicit = to_vec(vjp(&cache, v.clone()));
    let grads = (y * v).sum().backward();
    let auto = to_vec(x.grad(&grads).expect("input gradient"));
    CheckResult {
        name: name.to_string(),
        reference: "autodiff",
        rel_err: rel_err(&explicit, &auto),
        scale: max_abs(&auto),
    }
}

/// Compares ⟨vjp(v), u⟩ with a central difference of ⟨f(x), v⟩ along a random u.
/// Meaningful in f64; in f32 expect ~1e-3.
pub fn check_vjp_finite_diff<const DI: usize, const DO: usize, C>(
    name: &str,
    x: Tensor<DI>,
    forward: impl Fn(Tensor<DI>) -> (Tensor<DO>, C),
    vjp: impl Fn(&C, Tensor<DO>) -> Tensor<DI>,
    step: f64,
    rng: &mut StdRng,
) -> CheckResult {
    let device = x.device();
    let (y, cache) = forward(x.clone());
    let v = randn(rng, y.dims(), &device);
    let u = randn(rng, x.dims(), &device);
    let analytic = to_vec((vjp(&cache, v.clone()) * u.clone()).sum())[0];
    let f = |x: Tensor<DI>| to_vec((forward(x).0 * v.clone()).sum())[0];
    let numeric =
        (f(x.clone() + u.clone().mul_scalar(step)) - f(x - u.mul_scalar(step))) / (2.0 * step);
    let err = (analytic - numeric).abs() / numeric.abs().max(1e-12);
    CheckResult {
        name: name.to_string(),
        reference: "finite-diff",
        rel_err: err,
        scale: numeric.abs(),
    }
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

/// Checks every layer of `model` (which must live on an autodiff device), the whole backbone and
/// the whole energy gradient against autodiff. Returns one result per layer instance.
pub fn check_model_layers(
    model: &DiffusionModel,
    batch: usize,
    timesteps: usize,
    rng: &mut StdRng,
) -> Vec<CheckResult> {
    let device = model.devices()[0].clone();
    let mut out = Vec::new();
    match &model.backbone {
        Backbone::Mlp2d(m) => {
            let hidden = m.input.d_out();
            let emb_dim = m.time_table.val().dims()[1];
            let x = randn(rng, [batch, m.input.d_in()], &device);
            out.push(check_vjp_autodiff(
                "input.linear",
                x,
                |x| (m.input.forward(x), ()),
                |_, g| m.input.vjp(g),
                rng,
            ));
            for (i, block) in m.blocks.iter().enumerate() {
                let h = randn(rng, [batch, hidden], &device);
                let ln = &block.norm;
                out.push(check_vjp_autodiff(
                    &format!("blocks.{i}.layer_norm"),
                    h.clone(),
                    |x| ln.forward_cached(x),
                    |c, g| ln.vjp(c, g),
                    rng,
                ));
                let emb = randn(rng, [batch, emb_dim], &device);
                // A one-block MLP isolates the residual block's VJP.
                let single = block;
                out.push(check_vjp_autodiff(
                    &format!("blocks.{i}"),
                    h,
                    |x| single.forward_cached(x, emb.clone()),
                    |c, g| single.vjp(c, g),
                    rng,
                ));
            }
            let h = randn(rng, [batch, hidden], &device);
            out.push(check_vjp_autodiff(
                "output.linear",
                h,
                |x| (m.output.forward(x), ()),
                |_, g| m.output.vjp(g),
                rng,
            ));
        }
        Backbone::Unet(u) => out.extend(check_unet_layers(u, batch, rng, &device)),
    }
    let dim = model.data_dim;
    let cond = random_conditioning(rng, batch, timesteps, num_classes(model), &device);
    let x = randn(rng, [batch, dim], &device);
    out.push(check_vjp_autodiff(
        "backbone",
        x.clone(),
        |x| model.backbone.forward_cached(x, &cond),
        |c, g| model.backbone.vjp(c, g),
        rng,
    ));
    if model.is_energy() {
        // ∇ₓE by the explicit path vs autodiff of E itself.
        let xg = x.detach().require_grad();
        let (e, eps) = model.energy_and_eps(xg.clone(), &cond);
        let explicit = to_vec(eps);
        let grads = e.sum().backward();
        let auto = to_vec(xg.grad(&grads).expect("input gradient"));
        out.push(CheckResult {
            name: "energy ∇ₓE".into(),
            reference: "autodiff",
            rel_err: rel_err(&explicit, &auto),
            scale: max_abs(&auto),
        });
    }
    out
}

fn check_resblock(
    name: String,
    r: &ResBlock,
    res: usize,
    batch: usize,
    rng: &mut StdRng,
    device: &Device,
) -> CheckResult {
    let c_in = r.norm1.gamma.val().dims()[0];
    let temb_dim = r.temb.d_in();
    let temb = silu(randn(rng, [batch, temb_dim], device));
    let x = randn(rng, [batch, c_in, res, res], device);
    // Training mode so that a dropout mask (if any) is part of the cache being checked.
    check_vjp_autodiff(
        &name,
        x,
        |x| r.forward_cached(x, temb.clone(), true),
        |c, g| r.vjp(c, g),
        rng,
    )
}

fn check_attention(
    name: String,
    a: &AttentionBlock,
    res: usize,
    batch: usize,
    rng: &mut StdRng,
    device: &Device,
) -> CheckResult {
    let c = a.norm.gamma.val().dims()[0];
    let x = randn(rng, [batch, c, res, res], device);
    check_vjp_autodiff(
        &name,
        x,
        |x| a.forward_cached(x),
        |cache, g| a.vjp(cache, g),
        rng,
    )
}

fn check_conv(
    name: String,
    conv: &Conv2d,
    res: usize,
    batch: usize,
    rng: &mut StdRng,
    device: &Device,
) -> CheckResult {
    let c = conv.weight.val().dims()[1];
    let x = randn(rng, [batch, c, res, res], device);
    check_vjp_autodiff(
        &name,
        x,
        |x| (conv.forward(x), ()),
        |_, g| conv.vjp(g, [res, res]),
        rng,
    )
}

fn check_groupnorm(
    name: String,
    n: &GroupNorm,
    res: usize,
    batch: usize,
    rng: &mut StdRng,
    device: &Device,
) -> CheckResult {
    let c = n.gamma.val().dims()[0];
    let x = randn(rng, [batch, c, res, res], device);
    check_vjp_autodiff(
        &name,
        x,
        |x| n.forward_cached(x),
        |cache, g| n.vjp(cache, g),
        rng,
    )
}

fn check_down(
    name: String,
    d: &Downsample,
    c: usize,
    res: usize,
    batch: usize,
    rng: &mut StdRng,
    device: &Device,
) -> CheckResult {
    let x = randn(rng, [batch, c, res, res], device);
    check_vjp_autodiff(
        &name,
        x,
        |x| (d.forward(x), ()),
        |_, g| d.vjp(g, [res, res]),
        rng,
    )
}

fn check_up(
    name: String,
    u: &Upsample,
    res: usize,
    batch: usize,
    rng: &mut StdRng,
    device: &Device,
) -> CheckResult {
    let c = u.conv.weight.val().dims()[1];
    let x = randn(rng, [batch, c, res, res], device);
    check_vjp_autodiff(&name, x, |x| (u.forward(x), ()), |_, g| u.vjp(g), rng)
}

fn check_unet_layers(
    u: &Unet,
    batch: usize,
    rng: &mut StdRng,
    device: &Device,
) -> Vec<CheckResult> {
    let [_, h, _] = u.image_shape;
    let mut out = vec![check_conv(
        "conv_in".into(),
        &u.conv_in,
        h,
        batch,
        rng,
        device,
    )];
    let mut c_cur = u.conv_in.weight.val().dims()[0];
    for (i, level) in u.down.iter().enumerate() {
        let res = h >> i;
        for (j, r) in level.blocks.iter().enumerate() {
            out.push(check_resblock(
                format!("down.{i}.res.{j}"),
                r,
                res,
                batch,
                rng,
                device,
            ));
            c_cur = r.conv2.weight.val().dims()[0];
            if let Some(a) = level.attns.get(j) {
                out.push(check_attention(
                    format!("down.{i}.attn.{j}"),
                    a,
                    res,
                    batch,
                    rng,
                    device,
                ));
            }
        }
        if let Some(d) = &level.downsample {
            out.push(check_down(
                format!("down.{i}.downsample"),
                d,
                c_cur,
                res,
                batch,
                rng,
                device,
            ));
        }
    }
    let res_mid = h >> (u.down.len() - 1);
    out.push(check_resblock(
        "mid.res.0".into(),
        &u.mid1,
        res_mid,
        batch,
        rng,
        device,
    ));
    out.push(check_attention(
        "mid.attn".into(),
        &u.mid_attn,
        res_mid,
        batch,
        rng,
        device,
    ));
    out.push(check_resblock(
        "mid.res.1".into(),
        &u.mid2,
        res_mid,
        batch,
        rng,
        device,
    ));
    let levels = u.up.len();
    for (k, level) in u.up.iter().enumerate() {
        let i = levels - 1 - k;
        let res = h >> i;
        for (j, r) in level.blocks.iter().enumerate() {
            out.push(check_resblock(
                format!("up.{i}.res.{j}"),
                r,
                res,
                batch,
                rng,
                device,
            ));
            if let Some(a) = level.attns.get(j) {
                out.push(check_attention(
                    format!("up.{i}.attn.{j}"),
                    a,
                    res,
                    batch,
                    rng,
                    device,
                ));
            }
        }
        if let Some(us) = &level.upsample {
            out.push(check_up(
                format!("up.{i}.upsample"),
                us,
                res,
                batch,
                rng,
                device,
            ));
        }
    }
    out.push(check_groupnorm(
        "norm_out".into(),
        &u.norm_out,
        h,
        batch,
        rng,
        device,
    ));
    let c = u.norm_out.gamma.val().dims()[0];
    let x = randn(rng, [batch, c, h, h], device);
    out.push(check_vjp_autodiff(
        "silu",
        x,
        |x| (silu(x.clone()), x),
        |x, g| silu_vjp(x.clone(), g),
        rng,
    ));
    out.push(check_conv(
        "conv_out".into(),
        &u.conv_out,
        h,
        batch,
        rng,
        device,
    ));
    out
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
    let loss = dsm_loss_on(model, x_t.clone(), eps.clone(), &cond);
    let grads = loss.backward();
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
            reference: "finite-diff",
            rel_err: err,
            scale: numeric.abs(),
        });
    }
    results
}
