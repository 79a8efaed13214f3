//! Every benchmark run through the library on the small 2-D config (and the FID network with
//! random weights): the numbers returned are the ones printed and written as JSON, and what can
//! be known exactly is: the FLOPs of a step (counted by hand), batch sizes, image and rank
//! counts. Timings themselves are only checked to be consistent with each other.

use ebdiff_bench::{
    DataParallelOptions, EvalOptions, FidFeaturesOptions, TrainStepOptions, data_parallel, eval,
    fid_features, train_step,
};
use ebdiff_core::{NamedDevice, Solo};
use std::path::{Path, PathBuf};

fn toy2d() -> Option<PathBuf> {
    Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/toy2d.toml"))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `report` as [`json`] reads it back (the same text parser, so floats compare equal).
fn reread(report: &impl serde::Serialize) -> serde_json::Value {
    serde_json::from_str(&serde_json::to_string(report).unwrap()).unwrap()
}

#[test]
fn train_step_counts_the_flops_of_each_step_and_writes_what_it_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = TrainStepOptions {
        config: toy2d(),
        batch: 8,
        warmup: 0,
        iters: 1,
        peak_tflops: Some(1.0),
        json: Some(tmp.path().join("bench.json")),
        ..TrainStepOptions::default()
    };
    let mut out = Vec::new();
    let report = train_step(&opts, &NamedDevice::cpu(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    // configs/toy2d.toml: data 2, hidden 64, 3 blocks (64→128→128→64 and the embedding's
    // 32→128), embedding width 32. A pass is 2 FLOPs per multiply-add, the VJP repeats the data
    // path, a step is 3 passes.
    let data_path = 2 * 64 + 64 * 2 + 3 * (64 * 128 + 128 * 128 + 128 * 64);
    let embedding = 3 * 32 * 128;
    let score = 3.0 * 2.0 * 8.0 * f64::from(data_path + embedding);
    let energy = 3.0 * 2.0 * 8.0 * f64::from(2 * data_path + embedding);
    let ours = &report.ebdiff;
    assert_eq!(ours.score.flops_per_step, score);
    assert_eq!(ours.energy.flops_per_step, energy);
    assert_eq!(
        (ours.backend.as_str(), ours.dtype.as_str()),
        ("flex", "f32")
    );
    assert_eq!(ours.ratio, ours.energy.median_s / ours.score.median_s);
    for (row, n) in [("score (eps)", &ours.score), ("energy (", &ours.energy)] {
        let line = text.lines().find(|l| l.starts_with(row)).unwrap();
        assert!(
            line.contains(&format!("{:.2}", n.flops_per_step / 1e9)),
            "{line}"
        );
    }
    assert!(text.contains("fraction of the 1 TFLOP/s peak"), "{text}");
    assert!(text.ends_with(&format!(
        "wrote {}\n",
        tmp.path().join("bench.json").display()
    )));
    assert_eq!(json(&tmp.path().join("bench.json")), reread(&report));
}

#[test]
fn a_profile_without_its_child_process_is_refused_before_any_timing() {
    let opts = TrainStepOptions {
        config: toy2d(),
        profile: true,
        ..TrainStepOptions::default()
    };
    let mut out = Vec::new();
    let err = train_step(&opts, &NamedDevice::cpu(), &mut out).unwrap_err();
    assert!(err.to_string().contains("profile_child"), "{err}");
    assert!(out.is_empty());
}

#[test]
fn eval_times_every_batch_size_in_order() {
    let opts = EvalOptions {
        config: toy2d(),
        batch: vec![1, 4],
        warmup: 0,
        iters: 2,
        ..EvalOptions::default()
    };
    let mut out = Vec::new();
    let report = eval(&opts, &NamedDevice::cpu(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let batches: Vec<usize> = report.ebdiff.iter().map(|t| t.batch).collect();
    assert_eq!(batches, [1, 4]);
    let rows: Vec<&str> = text.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{text}");
    for (row, t) in rows.iter().zip(&report.ebdiff) {
        assert_eq!(
            *row,
            format!(
                "{:>8} {:>12.2} {:>14.0}",
                t.batch,
                t.median_s * 1e3,
                t.examples_per_s()
            )
        );
    }
}

#[test]
fn data_parallel_on_one_rank_reports_its_sizes_and_writes_its_json() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = DataParallelOptions {
        config: toy2d(),
        batch: 8,
        warmup: 0,
        iters: 2,
        sizes: vec![1000, 5000],
        json: Some(tmp.path().join("dp.json")),
    };
    let mut out = Vec::new();
    let report = data_parallel(&opts, &NamedDevice::cpu(), &Solo, &mut out)
        .unwrap()
        .expect("one process is rank 0");
    assert_eq!((report.ranks, report.global_batch), (1, 8));
    let sizes: Vec<usize> = report
        .bare_all_reduce_seconds
        .iter()
        .map(|b| b.values)
        .collect();
    assert_eq!(sizes, [1000, 5000]);
    assert_eq!(report.examples_per_second, 8.0 / report.step_seconds_median);
    assert_eq!(json(&tmp.path().join("dp.json")), reread(&report));
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("bench data-parallel: backend flex, 1 ranks"),
        "{text}"
    );
}

#[test]
fn fid_features_times_the_requested_images() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("inception");
    ebdiff_eval::inception::save_random_weights(&weights, 5).unwrap();
    let opts = FidFeaturesOptions {
        weights,
        count: 3,
        size: 8,
        batch: 2,
        json: Some(tmp.path().join("fid.json")),
        ..FidFeaturesOptions::default()
    };
    let mut out = Vec::new();
    let report = fid_features(&opts, &NamedDevice::cpu(), &mut out).unwrap();
    assert_eq!((report.ebdiff.images, report.ebdiff.size), (3, 8));
    assert_eq!(report.ebdiff.images_per_s, 3.0 / report.ebdiff.seconds);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(&format!(
            "ebdiff: {:.2} s, {:.2} images/s",
            report.ebdiff.seconds, report.ebdiff.images_per_s
        )),
        "{text}"
    );
    assert_eq!(json(&tmp.path().join("fid.json")), reread(&report));
}
