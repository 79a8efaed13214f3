//! Independent reference: central finite differences in f64. Input VJPs along random directions
//! (single layers, and every layer of small models through the visitor), and ∂(DSM loss)/∂θ of
//! energy models on random parameter entries. This binary runs the flex device in f64 (a
//! process-wide setting, hence its own test binary).

mod common;

use common::f64_device as device;
use ebdiff_core::rng::stream;
use ebdiff_model::gradcheck::{
    CheckResult, Reference, check_dsm_param_grads, check_layer, check_model_layers, randn,
    unreached_layers,
};
use ebdiff_model::layers::{AttentionBlock, Conv2d, GroupNorm, LayerNorm, Silu};

const FD: Reference = Reference::FiniteDiff { step: 1e-6 };

fn assert_ok(results: &[CheckResult], tol: f64) {
    assert!(!results.is_empty());
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
    let conv = Conv2d::new(3, 4, 3, 2, 1, false, &d);
    let gn = GroupNorm::new(2, 4, &d);
    let ln = LayerNorm::new(5, &d);
    let attn = AttentionBlock::new(4, 2, false, &d);
    let x4 = randn(&mut rng, [2, 4, 4, 4], &d);
    let x7 = randn(&mut rng, [2, 3, 7, 7], &d);
    let x2 = randn(&mut rng, [3, 5], &d);
    let results = vec![
        check_layer("conv s2 n7", &conv, x7, &(), FD, &mut rng),
        check_layer("group_norm", &gn, x4.clone(), &(), FD, &mut rng),
        check_layer("layer_norm", &ln, x2.clone(), &(), FD, &mut rng),
        check_layer("silu", &Silu, x2, &(), FD, &mut rng),
        check_layer("attention", &attn, x4, &(), FD, &mut rng),
    ];
    assert_ok(&results, 1e-6);
}

#[test]
fn every_layer_of_small_models_matches_central_differences() {
    let d = device();
    let models = [
        common::tiny_unet("energy", "reconstruction", 0.2, Some(2), "conv"),
        common::tiny_unet("energy", "inner-product", 0.0, None, "avg-pool"),
        common::tiny_mlp("energy", "squared-norm", Some(3)),
        common::tiny_mlp("eps", "reconstruction", None),
    ];
    for (i, cfg) in models.iter().enumerate() {
        // Seeded and locked: drawn from the shared backend RNG while the other tests of this
        // binary also draw, the weights differed from run to run, and with them how small the
        // reference derivative is next to the energy (the FD rounding error is ≈ε·|E|/h), which
        // failed the 1e-6 bound now and then (1 run in 7 here).
        let model = ebdiff_model::seeded_init(&d, 15 + i as u64, || cfg.init(10, &d));
        let results = check_model_layers(&model, 2, 10, FD, &mut stream(15, &i.to_string()));
        assert_ok(&results, 1e-6);
        let unreached = unreached_layers(&model, &results);
        assert!(unreached.is_empty(), "not reached: {unreached:?}");
    }
}

#[test]
fn dsm_parameter_gradients_of_mlp_energy_models() {
    let d = device().autodiff();
    for form in ["reconstruction", "squared-norm", "inner-product"] {
        let cfg = common::tiny_mlp("energy", form, Some(3));
        let model = ebdiff_model::seeded_init(&d, 12, || cfg.init(20, &d));
        let results = check_dsm_param_grads(&model, 4, 20, 8, 1e-5, &mut stream(12, form));
        assert_eq!(results.len(), 8);
        assert_ok(&results, 1e-5);
    }
}

#[test]
fn dsm_parameter_gradients_of_a_unet_energy_model() {
    let d = device().autodiff();
    let cfg = common::tiny_unet("energy", "reconstruction", 0.0, Some(2), "conv");
    let model = ebdiff_model::seeded_init(&d, 13, || cfg.init(10, &d));
    let results = check_dsm_param_grads(&model, 2, 10, 8, 1e-5, &mut stream(13, "unet"));
    assert_ok(&results, 1e-5);
}

#[test]
fn dsm_parameter_gradients_of_a_score_model() {
    // The eps path uses no VJP; checking it guards the shared loss code.
    let d = device().autodiff();
    let cfg = common::tiny_mlp("eps", "reconstruction", None);
    let model = ebdiff_model::seeded_init(&d, 14, || cfg.init(20, &d));
    let results = check_dsm_param_grads(&model, 4, 20, 4, 1e-5, &mut stream(14, "eps"));
    assert_ok(&results, 1e-5);
}
