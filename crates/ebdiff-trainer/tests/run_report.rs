//! The run report of a trained, interrupted and resumed 2-D run: every curve is drawn, every saved
//! sample image appears (and exists), the resumption is listed, and results and config are shown.

use burn::tensor::Device;
use ebdiff_trainer::report::write_run_report;
use ebdiff_trainer::{ExperimentConfig, RunOptions, train_to_dir};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn report_of_a_resumed_run_shows_curves_samples_resumption_results_and_config() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny/toy2d.toml");
    let mut cfg = ExperimentConfig::load(&path).unwrap();
    cfg.train.sample_every = 4;
    let out = std::env::temp_dir().join(format!("ebdiff-report-{}", std::process::id()));
    std::fs::remove_dir_all(&out).ok();
    let device = Device::flex();
    let stop = Arc::new(AtomicBool::new(false));
    let opts = |resume| RunOptions {
        out: out.clone(),
        resume,
        stop: stop.clone(),
        group: ebdiff_core::collective::solo(),
    };
    let first = train_to_dir(&cfg, &device, &opts(false), |r| {
        if r.step == 5 {
            stop.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert!(first.outcome.interrupted);
    stop.store(false, Ordering::SeqCst);
    train_to_dir(&cfg, &device, &opts(true), |_| {}).unwrap();

    // Written when training ended; regenerating it gives the same page.
    let index = out.join("report/index.html");
    let written = std::fs::read_to_string(&index).unwrap();
    assert_eq!(write_run_report(&out).unwrap(), index);
    let html = std::fs::read_to_string(&index).unwrap();
    assert_eq!(html, written);

    let srcs: Vec<&str> = html
        .split("src=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    for plot in [
        "loss.svg",
        "lr.svg",
        "grad-norm.svg",
        "ema-beta.svg",
        "throughput.svg",
    ] {
        assert!(srcs.contains(&plot), "{plot} not on the page: {srcs:?}");
        let svg = std::fs::read_to_string(out.join("report").join(plot)).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("step"),
            "{plot} is not a chart"
        );
    }
    for step in [4, 8, 12] {
        let src = format!("../samples/step-{step:08}.png");
        assert!(
            srcs.contains(&src.as_str()),
            "step {step} sample missing: {srcs:?}"
        );
    }
    assert!(srcs.contains(&"../samples.png"));
    for src in &srcs {
        assert!(
            out.join("report").join(src).is_file(),
            "{src} does not exist"
        );
    }
    assert!(
        html.contains("<td>resumed</td><td>5</td>"),
        "resumption not listed"
    );
    assert!(html.contains("interrupted at step 5"));
    assert!(html.contains("gap_nats") && html.contains("summary.json"));
    assert!(html.contains("kind = &quot;ring&quot;") || html.contains("kind = \"ring\""));
    std::fs::remove_dir_all(&out).ok();
}
