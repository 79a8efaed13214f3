//! Every explicit VJP equals Burn's own first-order input gradient (f32, relative error ≤ 1e-4):
//! single layers in configurations the backbones do not use, and every layer of small models
//! through the visitor, which also proves that it reaches every layer with parameters.

mod common;

use burn::tensor::{Device, Tensor};
use ebdiff_core::rng::stream;
use ebdiff_model::gradcheck::{
    CheckResult, Reference, check_layer, check_model_layers, randn, rel_err, to_vec,
    unreached_layers,
};
use ebdiff_model::layers::{
    AvgPool2, Conv2d, GroupNorm, LayerNorm, Linear, NearestUpsample2, Silu, concat_channels_vjp,
};
use ebdiff_model::vjp::{Flatten, Named, Stack, Unflatten, residual};
use ebdiff_model::{DiffusionModel, seq};
use std::collections::BTreeSet;

const TOL: f64 = 1e-4;
const AD: Reference = Reference::Autodiff;

fn device() -> Device {
    Device::flex().autodiff()
}

fn assert_ok(results: &[CheckResult]) {
    assert!(!results.is_empty());
    for r in results {
        assert!(
            r.scale > 0.0,
            "{}: reference gradient is identically zero, the check would be vacuous",
            r.name
        );
        assert!(
            r.rel_err <= TOL,
            "{}: relative error {:.3e} > {TOL:e} (scale {:.3e})",
            r.name,
            r.rel_err,
            r.scale
        );
    }
}

/// The checks cover every layer with parameters, and at least the given kinds.
fn assert_complete(model: &DiffusionModel, results: &[CheckResult], kinds: &[&str]) {
    let unreached = unreached_layers(model, results);
    assert!(
        unreached.is_empty(),
        "layers with parameters that the visitor did not reach: {unreached:?}"
    );
    let seen: BTreeSet<&str> = results.iter().map(|r| r.kind.as_str()).collect();
    for k in kinds {
        assert!(
            seen.contains(k),
            "no {k} was checked; checked kinds: {seen:?}"
        );
    }
}

#[test]
fn linear_rank2_and_rank3() {
    let d = device();
    let mut rng = stream(1, "t");
    let l = Linear::new(5, 7, true, false, &d);
    let x2 = randn(&mut rng, [3, 5], &d);
    let x3 = randn(&mut rng, [2, 4, 5], &d);
    assert_ok(&[
        check_layer("linear2", &l, x2, &(), AD, &mut rng),
        check_layer("linear3", &l, x3, &(), AD, &mut rng),
    ]);
}

#[test]
fn conv_strides_paddings_and_odd_sizes() {
    let d = device();
    let mut rng = stream(2, "t");
    let mut results = Vec::new();
    // (kernel, stride, padding, size): stride 2 on odd sizes needs the padding_out correction.
    for (k, s, p, n) in [
        (3, 1, 1, 6),
        (1, 1, 0, 5),
        (3, 2, 1, 8),
        (3, 2, 1, 7),
        (3, 2, 0, 9),
    ] {
        let conv = Conv2d::new(3, 4, k, s, p, false, &d);
        let x = randn(&mut rng, [2, 3, n, n], &d);
        let name = format!("conv k{k} s{s} p{p} n{n}");
        results.push(check_layer(&name, &conv, x, &(), AD, &mut rng));
    }
    assert_ok(&results);
}

#[test]
fn norms_activation_resampling_and_combinators() {
    let d = device();
    let mut rng = stream(3, "t");
    let ln = LayerNorm::new(6, &d);
    let gn = GroupNorm::new(2, 4, &d);
    let convs = [
        Conv2d::new(4, 4, 3, 1, 1, false, &d),
        Conv2d::new(4, 4, 1, 1, 0, false, &d),
    ];
    let x2 = randn(&mut rng, [3, 6], &d);
    let x4 = randn(&mut rng, [2, 4, 6, 6], &d);
    let flat = randn(&mut rng, [2, 4 * 6 * 6], &d);
    // A small block from the combinators: x + conv(silu(GN(x))), stacked convs, reshapes.
    let block = residual(seq![Named("norm", &gn), Silu, Named("conv", &convs[0])]);
    let reshaped = seq![Unflatten([4, 6, 6]), Stack("convs", &convs), Flatten];
    let results = vec![
        check_layer("layer_norm", &ln, x2.clone(), &(), AD, &mut rng),
        check_layer("group_norm", &gn, x4.clone(), &(), AD, &mut rng),
        check_layer("silu", &Silu, x2, &(), AD, &mut rng),
        check_layer("upsample", &NearestUpsample2, x4.clone(), &(), AD, &mut rng),
        check_layer("avg_pool", &AvgPool2, x4.clone(), &(), AD, &mut rng),
        check_layer("residual", &block, x4, &(), AD, &mut rng),
        check_layer("stack", &reshaped, flat, &(), AD, &mut rng),
    ];
    assert_ok(&results);
    // Concat: both parts of the split cotangent, against autodiff on each input.
    let _exclusive = ebdiff_core::burn_globals::exclusive();
    let a = randn(&mut rng, [2, 3, 4, 4], &d).require_grad();
    let b = randn(&mut rng, [2, 5, 4, 4], &d).require_grad();
    let y = Tensor::cat(vec![a.clone(), b.clone()], 1);
    let v = randn(&mut rng, [2, 8, 4, 4], &d);
    let (ga, gb) = concat_channels_vjp(v.clone(), 3);
    let (ga, gb) = (to_vec(ga), to_vec(gb));
    let grads = (y * v).sum().backward();
    let ra = to_vec(a.grad(&grads).unwrap());
    let rb = to_vec(b.grad(&grads).unwrap());
    assert!(rel_err(&ga, &ra) <= TOL && rel_err(&gb, &rb) <= TOL);
}

#[test]
fn every_layer_of_a_small_unet_energy_model() {
    let d = device();
    for (down, dropout, classes) in [("conv", 0.0, None), ("avg-pool", 0.2, Some(3))] {
        let cfg = common::tiny_unet("energy", "reconstruction", dropout, classes, down);
        let model = cfg.init(10, &d);
        let results = check_model_layers(&model, 2, 10, AD, &mut stream(4, down));
        assert_ok(&results);
        assert_complete(
            &model,
            &results,
            &[
                "energy ∇ₓE",
                "Unet",
                "ResBlock",
                "AttentionBlock",
                "Downsample",
                "Upsample",
                "Conv2d",
                "GroupNorm",
                "Linear",
                "Shift",
                "Silu",
                "Dropout",
            ],
        );
        assert_eq!(results[0].name, "energy ∇ₓE");
        assert!(results.iter().any(|r| r.name == "backbone.Unet.mid_attn.q"));
    }
}

#[test]
fn every_layer_of_the_mlp_in_every_energy_form_and_as_a_score_model() {
    let d = device();
    for (param, form) in [
        ("energy", "reconstruction"),
        ("energy", "squared-norm"),
        ("energy", "inner-product"),
        ("eps", "reconstruction"),
    ] {
        let cfg = common::tiny_mlp(param, form, Some(4));
        let model = cfg.init(20, &d);
        let results = check_model_layers(&model, 4, 20, AD, &mut stream(5, form));
        assert_ok(&results);
        let mut kinds = vec![
            "ResidualMlp",
            "MlpBlock",
            "LayerNorm",
            "Linear",
            "Shift",
            "Silu",
        ];
        if param == "energy" {
            kinds.push("energy ∇ₓE");
        }
        assert_complete(&model, &results, &kinds);
    }
}

#[test]
fn zero_initialized_reconstruction_energy_is_c_times_norm_squared() {
    // With a zero output layer g ≡ 0, so E = c‖x‖² and ε̂ = ∇E = 2c·x exactly.
    let d = Device::flex();
    let text = r#"
parameterization = "energy"
energy_scale = 0.7
data_shape = [2]
[backbone]
kind = "mlp2d"
hidden = 8
blocks = 1
emb_dim = 4
"#;
    let cfg: ebdiff_model::ModelConfig = toml::from_str(text).unwrap();
    let model = cfg.init(5, &d);
    let mut rng = stream(6, "t");
    let x = randn(&mut rng, [3, 2], &d);
    let cond = ebdiff_model::gradcheck::random_conditioning(&mut rng, 3, 5, None, &d);
    let (e, eps) = model.energy_and_eps(x.clone(), &cond);
    let xv = to_vec(x);
    let ev = to_vec(e);
    let gv = to_vec(eps);
    for i in 0..3 {
        let n2 = xv[2 * i].powi(2) + xv[2 * i + 1].powi(2);
        assert!((ev[i] - 0.7 * n2).abs() < 1e-5);
        assert!((gv[2 * i] - 1.4 * xv[2 * i]).abs() < 1e-5);
    }
}
