//! The flipped-convolution VJP of stride-1 convolutions (`ConvVjpKernel::FlippedConv`, for GPUs)
//! gives the transposed convolution's values, matches Burn's autodiff and central finite
//! differences, and trains: ∂(DSM loss)/∂θ through it matches finite differences. The kernel
//! choice is process-wide, so this binary holds one test that sets it.

mod common;

use burn::tensor::Tensor;
use common::f64_device as device;
use ebdiff_core::rng::stream;
use ebdiff_model::Vjp;
use ebdiff_model::gradcheck::{
    CheckResult, Reference, check_dsm_param_grads, check_layer, randn, rel_err, to_vec,
};
use ebdiff_model::layers::Conv2d;
use ebdiff_model::layers::conv::{ConvVjpKernel, set_vjp_kernel, vjp_kernel};

fn assert_ok(results: &[CheckResult], tol: f64) {
    assert!(!results.is_empty());
    for r in results {
        assert!(r.scale > 1e-8, "{}: vacuous check", r.name);
        assert!(
            r.rel_err <= tol,
            "{}: relative error {:.3e} > {tol:e}",
            r.name,
            r.rel_err
        );
    }
}

#[test]
fn flipped_conv_vjp_is_exact_and_trains() {
    let d = device().autodiff();
    let mut rng = stream(21, "flipped");
    assert_eq!(vjp_kernel(), ConvVjpKernel::Transposed, "the default");
    // (kernel, stride, padding, size); the stride-2 case keeps the transposed convolution.
    let shapes = [
        (3, 1, 1, 6),
        (1, 1, 0, 5),
        (3, 1, 0, 7),
        (5, 1, 2, 6),
        (3, 2, 1, 7),
    ];
    let mut results = Vec::new();
    for (k, s, p, n) in shapes {
        let conv = Conv2d::new(3, 4, k, s, p, false, &d);
        let x = randn(&mut rng, [2, 3, n, n], &d);
        let g: Tensor<4> = randn(&mut rng, conv.forward(x.clone()).dims(), &d);
        set_vjp_kernel(ConvVjpKernel::Transposed);
        let transposed = to_vec(Vjp::<Tensor<4>>::vjp(&conv, &[n, n], g.clone()));
        set_vjp_kernel(ConvVjpKernel::FlippedConv);
        let flipped = to_vec(Vjp::<Tensor<4>>::vjp(&conv, &[n, n], g));
        assert_eq!(
            flipped.len(),
            2 * 3 * n * n,
            "k{k} s{s} p{p} n{n}: input size restored"
        );
        let err = rel_err(&flipped, &transposed);
        assert!(
            err < 1e-12,
            "k{k} s{s} p{p} n{n}: {err:e} from the transposed convolution"
        );
        for (reference, tag) in [
            (Reference::Autodiff, "ad"),
            (Reference::FiniteDiff { step: 1e-6 }, "fd"),
        ] {
            let name = format!("conv k{k} s{s} p{p} n{n} {tag}");
            results.push(check_layer(
                &name,
                &conv,
                x.clone(),
                &(),
                reference,
                &mut rng,
            ));
        }
    }
    assert_ok(&results, 1e-6);

    // Training differentiates the flipped convolution (flip, swap_dims, conv2d) with respect to
    // the weight: a whole UNet energy model's parameter gradients against finite differences.
    let cfg = common::tiny_unet("energy", "reconstruction", 0.0, None, "conv");
    let model = ebdiff_model::seeded_init(&d, 22, || cfg.init(10, &d));
    let results = check_dsm_param_grads(&model, 2, 10, 8, 1e-5, &mut stream(22, "unet"));
    assert_ok(&results, 1e-5);
    set_vjp_kernel(ConvVjpKernel::Transposed);
}
