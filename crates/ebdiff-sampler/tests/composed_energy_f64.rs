//! The Metropolis energy of an image composition is exactly the potential of the score its
//! proposals follow: for the guided composition of a class-conditional energy UNet over three
//! cells (the shapes study's form, k = 3, w = 2) on a respaced schedule, the central finite
//! difference of the composed log-density along random directions equals ⟨score, v⟩, per sample.
//! A mismatch (a weight applied to the score but not the energy, a label or level fed to one and
//! not the other) would make MALA/HMC and SMC target something other than what they move along.
//! This binary runs the flex device in f64 (process-wide).

use burn::tensor::{Device, FloatDType, Tensor};
use ebdiff_core::ScheduleConfig;
use ebdiff_sampler::{Composition, Labels, ModelTarget, Respaced, Target};

#[test]
fn guided_composition_log_density_is_the_potential_of_its_score() {
    let mut device = Device::flex();
    device
        .configure(FloatDType::F64)
        .expect("flex supports f64");
    let device = Device::flex();
    let model_cfg: ebdiff_model::ModelConfig = ebdiff_core::parse_toml(
        r#"
parameterization = "energy"
zero_init_output = false
data_shape = [3, 12, 12]
num_classes = 9
[backbone]
kind = "unet"
channels = 8
channel_mult = [1, 2]
res_blocks = 1
attention_resolutions = [6]
groups = 4
"#,
        "model",
    )
    .unwrap();
    let schedule = ScheduleConfig::linear(1000).build();
    device.seed(5);
    let model = model_cfg.init(1000, &device);
    let leaf = |labels| {
        Composition::leaf(ModelTarget {
            model: &model,
            schedule: &schedule,
            labels,
        })
    };
    let guided = Composition::guided(
        leaf(Labels::None),
        [1, 4, 7].map(|c| leaf(Labels::Class(c))).into(),
        2.0,
    )
    .unwrap();
    let levels = schedule.evenly_spaced_levels(100);
    let target = Respaced {
        inner: &guided,
        source: levels,
    };
    let (b, d) = (4, 3 * 12 * 12);
    let mut rng = ebdiff_core::rng::stream(1, "test");
    let x = ebdiff_core::rng::randn(&mut rng, [b, d], &device);
    let v = ebdiff_core::rng::randn(&mut rng, [b, d], &device);
    for level in [99, 60, 20, 3] {
        let e = target.evaluate(x.clone(), level);
        let f = |y: Tensor<2>| {
            target
                .evaluate(y, level)
                .log_density
                .unwrap()
                .into_data()
                .convert::<f64>()
                .try_into_vec::<f64>()
                .unwrap()
        };
        let h = 1e-4;
        let plus = f(x.clone() + v.clone().mul_scalar(h));
        let minus = f(x.clone() - v.clone().mul_scalar(h));
        let directional: Vec<f64> = (e.score.clone() * v.clone())
            .sum_dim(1)
            .into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .unwrap();
        for i in 0..b {
            let fd = (plus[i] - minus[i]) / (2.0 * h);
            let rel = (fd - directional[i]).abs() / directional[i].abs().max(1.0);
            assert!(
                rel < 1e-6,
                "level {level}, sample {i}: finite difference {fd}, ⟨score, v⟩ {}",
                directional[i]
            );
        }
    }
}
