//! Independent reference: central finite differences in f64. Input VJPs along random directions,
//! and ∂(DSM loss)/∂θ of energy models on random parameter entries. This binary runs the flex
//! device in f64 (a process-wide setting, hence its own test binary).

mod common;

use common::f64_device as device;
use ebdiff_core::rng::stream;
use ebdiff_model::gradcheck::{CheckResult, check_dsm_param_grads, check_vjp_finite_diff, randn};
use ebdiff_model::layers::{AttentionBlock, Conv2d, GroupNorm, LayerNorm, silu, silu_vjp};

fn assert_ok(results: &[CheckResult], tol: f64) {
    for r in results {
        assert!(
            r.scale > 1e-8,
            "{}: reference is ~0, the check would be vacuous",
            r.name
        );
        assert!(
            r.rel_err <= tol,
            "{}: relative error {:.3e} > {tol:e} (scale {:.3e})",
            r.name,
            r.rel_err,
            r.scale
        );
    }
}

#[test]
fn layer_vjps_match_central_differences() {
    let d = device();
    let mut rng = stream(11, "fd");
    let h = 1e-6;
    let conv = Conv2d::new(3, 4, 3, 2, 1, false, &d);
    let gn = GroupNorm::new(2, 4, &d);
    let ln = LayerNorm::new(5, &d);
    let attn = AttentionBlock::new(4, 2, false, &d);
    let x4 = randn(&mut rng, [2, 4, 4, 4], &d);
    let x7 = randn(&mut rng, [2, 3, 7, 7], &d);
    let x2 = randn(&mut rng, [3, 5], &d);
    let results = vec![
        check_vjp_finite_diff(
            "conv s2 n7",
            x7,
            |x| (conv.forward(x), ()),
            |_, g| conv.vjp(g, [7, 7]),
            h,
            &mut rng,
        ),
        check_vjp_finite_diff(
            "group_norm",
            x4.clone(),
            |x| gn.forward_cached(x),
            |c, g| gn.vjp(c, g),
            h,
            &mut rng,
        ),
        check_vjp_finite_diff(
            "layer_norm",
            x2.clone(),
            |x| ln.forward_cached(x),
            |c, g| ln.vjp(c, g),
            h,
            &mut rng,
        ),
        check_vjp_finite_diff(
            "silu",
            x2,
            |x| (silu(x.clone()), x),
            |x, g| silu_vjp(x.clone(), g),
            h,
            &mut rng,
        ),
        check_vjp_finite_diff(
            "attention",
            x4,
            |x| attn.forward_cached(x),
            |c, g| attn.vjp(c, g),
            h,
            &mut rng,
        ),
    ];
    assert_ok(&results, 1e-6);
}

#[test]
fn dsm_parameter_gradients_of_mlp_energy_models() {
    let d = device().autodiff();
    for form in ["reconstruction", "squared-norm", "inner-product"] {
        let model = common::tiny_mlp("energy", form, Some(3)).init(20, &d);
        let results = check_dsm_param_grads(&model, 4, 20, 8, 1e-5, &mut stream(12, form));
        assert_eq!(results.len(), 8);
        assert_ok(&results, 1e-5);
    }
}

#[test]
fn dsm_parameter_gradients_of_a_unet_energy_model() {
    let d = device().autodiff();
    let model = common::tiny_unet("energy", "reconstruction", 0.0, Some(2), "conv").init(10, &d);
    let results = check_dsm_param_grads(&model, 2, 10, 8, 1e-5, &mut stream(13, "unet"));
    assert_ok(&results, 1e-5);
}

#[test]
fn dsm_parameter_gradients_of_a_score_model() {
    // The eps path uses no VJP; checking it guards the shared loss code.
    let d = device().autodiff();
    let model = common::tiny_mlp("eps", "reconstruction", None).init(20, &d);
    let results = check_dsm_param_grads(&model, 4, 20, 4, 1e-5, &mut stream(14, "eps"));
    assert_ok(&results, 1e-5);
}
