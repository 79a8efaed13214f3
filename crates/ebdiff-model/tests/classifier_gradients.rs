//! The noise-conditioned classifier's explicit input gradient ∇ₓ log p(y | x_t, t) against Burn's
//! autodiff and against central finite differences, in f64 (a process-wide setting, hence its
//! own test binary).

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use ebdiff_core::rng::stream;
use ebdiff_model::ClassifierConfig;
use ebdiff_model::gradcheck::{
    CheckResult, Reference, check_tree, randn, rel_err, to_vec, unreached_layers,
};

mod common;
use common::f64_device as device;

fn tiny() -> ClassifierConfig {
    let cfg = ClassifierConfig {
        channels: 8,
        channel_mult: vec![1, 2],
        res_blocks: 1,
        groups: 4,
        ..Default::default()
    };
    cfg.validate([3, 8, 8]).unwrap();
    cfg
}

fn ints(v: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

fn assert_ok(results: &[CheckResult], tol: f64) {
    for r in results {
        assert!(r.scale > 1e-8 && r.rel_err < tol, "{r:?}");
    }
}

/// The logits' VJP, and that of every layer of the classifier (reached by the visitor), against
/// autodiff and central differences.
#[test]
fn logits_vjp_matches_autodiff_and_finite_differences() {
    let device = device().autodiff();
    let mut rng = stream(11, "classifier-vjp");
    // Untracked parameters: see `LayerChecker`.
    let clf = tiny().init([3, 8, 8], 5, &device).no_grad();
    let t = ints(&[0, 3, 7], &device);
    let x = randn(&mut rng, [3, 192], &device);
    let auto = check_tree(
        "classifier",
        &clf,
        x.clone(),
        &t,
        Reference::Autodiff,
        &mut rng,
    );
    assert_eq!(auto[0].name, "classifier");
    assert_ok(&auto, 1e-10);
    assert!(auto.iter().any(|r| r.name == "levels.1.blocks.0.conv2"));
    let unreached = unreached_layers(&clf, &auto);
    assert!(unreached.is_empty(), "not reached: {unreached:?}");
    let fd = Reference::FiniteDiff { step: 1e-5 };
    assert_ok(&check_tree("classifier", &clf, x, &t, fd, &mut rng), 1e-6);
}

#[test]
fn log_prob_gradient_matches_autodiff() {
    // Builds and differentiates a graph: apart from the other tests' threads (`burn_globals`).
    let _exclusive = ebdiff_core::burn_globals::exclusive();
    let device = device().autodiff();
    let mut rng = stream(12, "classifier-logp");
    let clf = tiny().init([3, 8, 8], 5, &device);
    let (t, y) = (ints(&[1, 4, 9, 2], &device), ints(&[0, 4, 2, 2], &device));
    let x = randn(&mut rng, [4, 192], &device).require_grad();
    let (value, grad) = clf.log_prob_and_grad(x.clone(), t.clone(), y.clone());
    let reference = clf.log_prob(x.clone(), t, y);
    assert!(rel_err(&to_vec(value.clone()), &to_vec(reference.clone())) < 1e-12);
    let values = to_vec(value);
    assert!(
        values.iter().all(|&v| v < 0.0),
        "log-probabilities must be negative: {values:?}"
    );
    let grads = reference.sum().backward();
    let auto = to_vec(x.grad(&grads).unwrap());
    let err = rel_err(&to_vec(grad), &auto);
    assert!(err < 1e-10, "∇ₓ log p: relative error {err:e}");
    assert!(
        auto.iter().any(|v| v.abs() > 1e-6),
        "vacuous: zero gradient"
    );
}
