//! `fid_eval::evaluate_run`, `cargo xtask eval` as a library call, on the tiny class-conditional
//! shapes run and a randomly initialized FID network (the real weights are a download): the
//! default output folder and reference cache, the labels and sampler recorded with the result,
//! and resumption from finished shards (a second call generates nothing and finds the same FID).

use burn::tensor::Device;
use ebdiff_core::Solo;
use ebdiff_eval::fid_commands::FeatureOptions;
use ebdiff_trainer::fid_eval::{FidEvalOptions, evaluate_run};
use ebdiff_trainer::{ExperimentConfig, RunOptions, train_to_dir};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

#[test]
fn a_run_is_evaluated_in_shards_and_a_second_call_resumes_from_them() {
    let tmp = tempfile::tempdir().unwrap();
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/tiny/shapes.toml"
    );
    let cfg = ExperimentConfig::load(config.as_ref()).unwrap();
    let run = tmp.path().join("run");
    let device = Device::flex();
    let opts = RunOptions {
        out: run.clone(),
        resume: false,
        stop: Arc::new(AtomicBool::new(false)),
        group: ebdiff_core::collective::solo(),
    };
    train_to_dir(&cfg, &device, &opts, |_| {}).unwrap();
    let weights = tmp.path().join("inception");
    ebdiff_eval::inception::save_random_weights(&weights, 5).unwrap();

    let mut eval = FidEvalOptions::new(&run);
    eval.samples = 5;
    eval.shard_size = 2;
    eval.steps = Some(3);
    eval.reference_limit = Some(6);
    eval.features = FeatureOptions {
        weights,
        batch: 4,
        kid_subsets: 2,
        kid_subset_size: 4,
    };
    let first = evaluate_run(&eval, &device, &Solo, &mut |_| {})
        .unwrap()
        .expect("one process is rank 0");
    let out = run.join("eval/ancestral-3-n5-seed0");
    assert_eq!(first.result, out.join("result.json"));
    assert!(run.join("eval/reference-6.npz").exists());
    for k in 0..3 {
        assert!(out.join(format!("shard-{k:05}.npz")).exists(), "shard {k}");
    }
    let m = &first.record.metrics;
    assert_eq!((m.count_evaluated, m.count_reference), (5, 6));
    let generated = first.record.generated.as_ref().unwrap();
    assert_eq!(generated.generated_in_this_run, 5);
    assert_eq!(generated.generator["labels"], "image i gets class i mod 4");
    assert_eq!(generated.generator["steps"], 3);
    // result.json holds the record returned (both read back by the same parser).
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&first.result).unwrap()).unwrap();
    let returned: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&first.record).unwrap()).unwrap();
    assert_eq!(written, returned);
    assert_eq!(
        first.to_string(),
        format!(
            "FID {:.4} (5 generated vs 6 reference); KID {:.4}; precision {:.4} recall {:.4} → {}\n",
            m.fid,
            m.kid_mean.unwrap(),
            m.precision.unwrap(),
            m.recall.unwrap(),
            first.result.display()
        )
    );

    let second = evaluate_run(&eval, &device, &Solo, &mut |_| {})
        .unwrap()
        .unwrap();
    assert_eq!(
        second
            .record
            .generated
            .as_ref()
            .unwrap()
            .generated_in_this_run,
        0
    );
    assert_eq!(second.record.metrics, first.record.metrics);
}
