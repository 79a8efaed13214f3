//! Every explicit VJP equals Burn's own first-order input gradient (f32, relative error ≤ 1e-4).

mod common;

use burn::tensor::{Device, Tensor};
use ebdiff_core::rng::stream;
use ebdiff_model::gradcheck::{CheckResult, check_model_layers, check_vjp_autodiff, randn};
use ebdiff_model::layers::resample::{
    avg_pool2, avg_pool2_vjp, upsample_nearest2, upsample_nearest2_vjp,
};
use ebdiff_model::layers::{Conv2d, LayerNorm, Linear, concat_channels_vjp, silu, silu_vjp};

const TOL: f64 = 1e-4;

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

#[test]
fn linear_rank2_and_rank3() {
    let d = device();
    let mut rng = stream(1, "t");
    let l = Linear::new(5, 7, true, false, &d);
    let x2 = randn(&mut rng, [3, 5], &d);
    let x3 = randn(&mut rng, [2, 4, 5], &d);
    assert_ok(&[
        check_vjp_autodiff(
            "linear2",
            x2,
            |x| (l.forward(x), ()),
            |_, g| l.vjp(g),
            &mut rng,
        ),
        check_vjp_autodiff(
            "linear3",
            x3,
            |x| (l.forward(x), ()),
            |_, g| l.vjp(g),
            &mut rng,
        ),
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
        results.push(check_vjp_autodiff(
            &format!("conv k{k} s{s} p{p} n{n}"),
            x,
            |x| (conv.forward(x), ()),
            |_, g| conv.vjp(g, [n, n]),
            &mut rng,
        ));
    }
    assert_ok(&results);
}

#[test]
fn norms_activation_resampling_concat() {
    let d = device();
    let mut rng = stream(3, "t");
    let ln = LayerNorm::new(6, &d);
    let gn = ebdiff_model::layers::GroupNorm::new(2, 4, &d);
    let x2 = randn(&mut rng, [3, 6], &d);
    let x4 = randn(&mut rng, [2, 4, 6, 6], &d);
    let results = vec![
        check_vjp_autodiff(
            "layer_norm",
            x2.clone(),
            |x| ln.forward_cached(x),
            |c, g| ln.vjp(c, g),
            &mut rng,
        ),
        check_vjp_autodiff(
            "group_norm",
            x4.clone(),
            |x| gn.forward_cached(x),
            |c, g| gn.vjp(c, g),
            &mut rng,
        ),
        check_vjp_autodiff(
            "silu",
            x2,
            |x| (silu(x.clone()), x),
            |x, g| silu_vjp(x.clone(), g),
            &mut rng,
        ),
        check_vjp_autodiff(
            "upsample",
            x4.clone(),
            |x| (upsample_nearest2(x), ()),
            |_, g| upsample_nearest2_vjp(g),
            &mut rng,
        ),
        check_vjp_autodiff(
            "avg_pool",
            x4.clone(),
            |x| (avg_pool2(x), ()),
            |_, g| avg_pool2_vjp(g),
            &mut rng,
        ),
    ];
    assert_ok(&results);
    // Concat: both parts of the split cotangent, against autodiff on each input.
    let a = randn(&mut rng, [2, 3, 4, 4], &d).require_grad();
    let b = randn(&mut rng, [2, 5, 4, 4], &d).require_grad();
    let y = Tensor::cat(vec![a.clone(), b.clone()], 1);
    let v = randn(&mut rng, [2, 8, 4, 4], &d);
    let (ga, gb) = concat_channels_vjp(v.clone(), 3);
    let (ga, gb) = (
        ebdiff_model::gradcheck::to_vec(ga),
        ebdiff_model::gradcheck::to_vec(gb),
    );
    let grads = (y * v).sum().backward();
    let ra = ebdiff_model::gradcheck::to_vec(a.grad(&grads).unwrap());
    let rb = ebdiff_model::gradcheck::to_vec(b.grad(&grads).unwrap());
    assert!(
        ebdiff_model::gradcheck::rel_err(&ga, &ra) <= TOL
            && ebdiff_model::gradcheck::rel_err(&gb, &rb) <= TOL
    );
}

#[test]
fn every_layer_of_a_small_unet_energy_model() {
    let d = device();
    for (down, dropout, classes) in [("conv", 0.0, None), ("avg-pool", 0.2, Some(3))] {
        let cfg = common::tiny_unet("energy", "reconstruction", dropout, classes, down);
        let model = cfg.init(10, &d);
        let results = check_model_layers(&model, 2, 10, &mut stream(4, down));
        // conv_in, res/attn blocks, down/upsample, norm_out, conv_out, backbone, energy.
        assert!(results.len() >= 12, "only {} checks ran", results.len());
        assert!(
            results.iter().any(|r| r.name.contains("attn")),
            "attention was not checked"
        );
        assert!(results.iter().any(|r| r.name == "energy ∇ₓE"));
        assert_ok(&results);
    }
}

#[test]
fn every_energy_form_of_the_mlp() {
    let d = device();
    for form in ["reconstruction", "squared-norm", "inner-product"] {
        let cfg = common::tiny_mlp("energy", form, Some(4));
        let model = cfg.init(20, &d);
        assert_ok(&check_model_layers(&model, 4, 20, &mut stream(5, form)));
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
    let xv = ebdiff_model::gradcheck::to_vec(x);
    let ev = ebdiff_model::gradcheck::to_vec(e);
    let gv = ebdiff_model::gradcheck::to_vec(eps);
    for i in 0..3 {
        let n2 = xv[2 * i].powi(2) + xv[2 * i + 1].powi(2);
        assert!((ev[i] - 0.7 * n2).abs() < 1e-5);
        assert!((gv[2 * i] - 1.4 * xv[2 * i]).abs() < 1e-5);
    }
}
