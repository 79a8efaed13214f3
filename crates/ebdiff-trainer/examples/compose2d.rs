//! Train two 2-D energy models (the 8-Gaussian ring and a vertical bar), compose them as a
//! product, and sample the composition with every sampler, scoring each against the exact
//! product. Library APIs only:   cargo run --release --example compose2d
use burn::tensor::Device;
use ebdiff_data::{ExactTarget2d, Toy2d};
use ebdiff_sampler::{Component, Components, CompositionSpec, SamplerConfig, SamplerKind};
use ebdiff_sampler::{SamplingConfig, sample};
use ebdiff_trainer::config::DataConfig;
use ebdiff_trainer::{ExperimentConfig, run_toy2d};
use std::collections::BTreeMap;

/// The default 2-D config (configs/toy2d.toml) trained on `toy` for 1500 steps, in memory.
fn train(toy: Toy2d, device: &Device) -> Component {
    let text = include_str!("../../../configs/toy2d.toml");
    let mut cfg = ExperimentConfig::parse(text, "configs/toy2d.toml").expect("valid config");
    cfg.data = DataConfig::Toy2d(toy.config().clone());
    cfg.train.steps = 1500;
    let trained = run_toy2d(&cfg, device, |_| {});
    let gap = trained.eval.report.gap();
    println!(
        "trained {}: {gap:.3} nats from exact samples",
        toy.config().kind()
    );
    Component::Trained {
        model: trained.state.ema.model,
        num_classes: None,
        run_dir: None,
    }
}

fn main() {
    let device = Device::flex();
    let components = Components {
        models: BTreeMap::from([
            ("ring".into(), train(Toy2d::ring(8, 0.5, 0.075), &device)),
            ("bar".into(), train(Toy2d::vertical_bar(0.2), &device)),
        ]),
        classifiers: BTreeMap::new(),
        schedule: ebdiff_core::ScheduleConfig::cosine(100).build(),
        data_shape: vec![2],
        device: device.clone(),
    };
    let product: CompositionSpec = toml::from_str(
        r#"op = "product"
           weights = [1.0, 1.0]
           terms = [{ op = "model", model = "ring" }, { op = "model", model = "bar" }]"#,
    )
    .expect("valid composition");
    let target = components.build(&product).expect("the models exist");
    let exact = ExactTarget2d::ring_times_bar();
    let reference = exact.sample(1000, &mut ebdiff_core::rng::stream(0, "exact"));
    let best = exact.mean_log_density(&reference);
    println!("exact samples: mean log-density {best:.3}");
    for kind in SamplerKind::ALL {
        let cfg = SamplingConfig::new(SamplerConfig::new(kind), 1000, 0);
        let run = sample(&cfg, &target, &components.schedule, &device, |_| {})
            .expect("a valid sampling config");
        let score = exact.mean_log_density(&run.samples_vec());
        println!(
            "{:>9}: mean log-density {score:.3}, {} evaluations",
            kind.name(),
            run.nfe
        );
    }
}
