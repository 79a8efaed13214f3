//! The FLOP counter against counts worked out by hand from the layers' shapes.

mod common;

use burn::tensor::{Device, Distribution, Int, Tensor};
use ebdiff_model::backbone::Backbone;
use ebdiff_model::flops::{count, training_step};
use ebdiff_model::layers::{Conv2d, Linear};
use ebdiff_model::{Conditioning, Vjp};

fn device() -> Device {
    Device::flex()
}

fn randn<const D: usize>(shape: [usize; D], d: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), d)
}

#[test]
fn strided_conv_forward_and_vjp() {
    let d = device();
    let conv = Conv2d::new(3, 5, 3, 2, 1, false, &d);
    let x = randn([2, 3, 9, 9], &d);
    let (y, f) = count(|| conv.forward(x));
    assert_eq!(y.dims(), [2, 5, 5, 5]);
    // 2·(outputs = 2·5·5·5)·(c_in·k² = 27)
    assert_eq!(f, 2 * 250 * 27);
    let (_, b) = count(|| Vjp::<Tensor<4>>::vjp(&conv, &[9, 9], y));
    assert_eq!(b, f);
}

#[test]
fn linear_counts_every_leading_dimension() {
    let d = device();
    let lin = Linear::new(3, 6, true, false, &d);
    let (y, f) = count(|| lin.forward(randn([4, 7, 3], &d)));
    assert_eq!(f, 2 * 28 * 3 * 6);
    let (_, b) = count(|| Vjp::<Tensor<3>>::vjp(&lin, &(), y));
    assert_eq!(b, f);
}

/// The MLP is all linear maps on `[B, ·]` rows, so its count is 2·B·Σ in·out; the VJP passes
/// through every map but the embedding's (the context is not differentiated).
#[test]
fn mlp_forward_and_energy_gradient() {
    let d = device();
    let batch = 5;
    let (score, energy) = (
        common::tiny_mlp("eps", "reconstruction", None).init(10, &d),
        common::tiny_mlp("energy", "reconstruction", None).init(10, &d),
    );
    let Backbone::Mlp2d(mlp) = &score.backbone else {
        panic!("tiny_mlp is an MLP")
    };
    let macs = |l: &Linear| (l.d_in() * l.d_out()) as u64;
    let embedding: u64 = mlp.blocks.iter().map(|b| macs(&b.l_emb)).sum();
    let through_x = macs(&mlp.input)
        + macs(&mlp.output)
        + mlp
            .blocks
            .iter()
            .map(|b| macs(&b.l1) + macs(&b.l2) + macs(&b.l3))
            .sum::<u64>();
    let b = batch as u64;
    let cond = Conditioning::new(Tensor::<1, Int>::full([batch], 3, &d));
    let x = randn([batch, 2], &d);
    let (_, f) = count(|| score.eps(x.clone(), &cond));
    assert_eq!(f, 2 * b * (through_x + embedding));
    let (_, fe) = count(|| energy.energy_and_eps(x, &cond));
    assert_eq!(fe, 2 * b * (2 * through_x + embedding));
    assert_eq!(training_step(fe), 3 * fe);
}

/// A UNet's VJP repeats every convolution and linear map on the data path and has four
/// attention products to the forward's two, so the energy pass counts between 2·F and 3·F, and
/// the count grows linearly with the batch.
#[test]
fn unet_energy_pass_and_batch_scaling() {
    let d = device();
    let cfg = common::tiny_unet("energy", "reconstruction", 0.0, None, "conv");
    let energy = cfg.init(10, &d);
    let mut score_cfg = cfg.clone();
    score_cfg.parameterization = ebdiff_model::ParameterizationKind::Eps;
    let score = score_cfg.init(10, &d);
    let pass = |batch: usize, energy_pass: bool| {
        let cond = Conditioning::new(Tensor::<1, Int>::full([batch], 3, &d));
        let x = randn([batch, 3 * 8 * 8], &d);
        if energy_pass {
            count(|| energy.energy_and_eps(x, &cond)).1
        } else {
            count(|| score.eps(x, &cond)).1
        }
    };
    let (f1, f3, e1) = (pass(1, false), pass(3, false), pass(1, true));
    assert_eq!(f3, 3 * f1);
    assert!(
        e1 > 2 * f1 - f1 / 10 && e1 < 3 * f1,
        "F {f1}, F + F_vjp {e1}"
    );
}
