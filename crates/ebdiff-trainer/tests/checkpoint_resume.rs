//! Runs on disk: an interrupted and resumed run equals an uninterrupted one bit for bit; corrupt
//! or mismatched checkpoints are refused with the file and the difference named; a non-finite
//! step stops the run with the step and tensor named and the last good state saved.

mod common;
use common::flat;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use ebdiff_trainer::checkpoint::list_checkpoints;
use ebdiff_trainer::{
    Batch, BatchSource, ExperimentConfig, RunError, RunOptions, RunOutcome, toy2d_source, train_run,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn tiny() -> ExperimentConfig {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny/toy2d.toml");
    ExperimentConfig::load(&path).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebdiff-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn run(
    cfg: &ExperimentConfig,
    out: &Path,
    resume: bool,
    stop_at: Option<u64>,
) -> Result<RunOutcome, RunError> {
    run_with(cfg, &toy2d_source(cfg), out, resume, stop_at)
}

fn run_with(
    cfg: &ExperimentConfig,
    source: &impl BatchSource,
    out: &Path,
    resume: bool,
    stop_at: Option<u64>,
) -> Result<RunOutcome, RunError> {
    let stop = Arc::new(AtomicBool::new(false));
    let opts = RunOptions {
        out: out.to_path_buf(),
        resume,
        stop: stop.clone(),
        group: ebdiff_core::collective::solo(),
    };
    train_run(
        cfg,
        source,
        &Device::flex(),
        &opts,
        // The same flag Ctrl-C sets.
        |r| {
            if Some(r.step) == stop_at {
                stop.store(true, Ordering::SeqCst);
            }
        },
        |_| {},
    )
}

#[test]
fn interrupted_and_resumed_run_equals_the_uninterrupted_run() {
    let cfg = tiny();
    let whole_dir = scratch("whole");
    let whole = run(&cfg, &whole_dir, false, None).unwrap();
    assert_eq!(whole.losses.len(), 12);
    assert!(!whole.interrupted);

    let split_dir = scratch("split");
    let first = run(&cfg, &split_dir, false, Some(6)).unwrap();
    assert!(first.interrupted);
    assert_eq!(first.state.step, 6);
    assert!(first.checkpoint.ends_with("step-00000006"));
    // Starting over in a directory that holds a run is refused, not silently overwritten.
    let again = run(&cfg, &split_dir, false, None).err().expect("refused");
    assert!(matches!(again, RunError::Exists(_)), "{again}");
    let second = run(&cfg, &split_dir, true, None).unwrap();
    assert_eq!(second.first_step, 6);

    let mut resumed = first.losses.clone();
    resumed.extend(&second.losses);
    assert_eq!(
        resumed, whole.losses,
        "loss sequences differ after resuming"
    );
    assert_eq!(
        flat(&second.state.model),
        flat(&whole.state.model),
        "live weights differ"
    );
    assert_eq!(
        flat(&second.state.ema.model),
        flat(&whole.state.ema.model),
        "EMA differs"
    );
    assert_eq!(second.state.examples_seen, whole.state.examples_seen);

    // Every step logged exactly once across the interruption; only the newest 2 checkpoints kept.
    let steps: Vec<u64> = std::fs::read_to_string(split_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, (1..=12).collect::<Vec<_>>());
    let kept: Vec<u64> = list_checkpoints(&split_dir).iter().map(|c| c.0).collect();
    assert_eq!(kept, vec![8, 12]);
    assert!(split_dir.join("config.toml").exists() && split_dir.join("run.json").exists());
    let log = std::fs::read_to_string(split_dir.join("train.log")).unwrap();
    assert!(
        log.contains("interrupted at step 6") && log.contains("resumed at step 6"),
        "{log}"
    );
    std::fs::remove_dir_all(&whole_dir).ok();
    std::fs::remove_dir_all(&split_dir).ok();
}

#[test]
fn gradient_accumulation_matches_the_full_batch_update() {
    let mut cfg = tiny();
    cfg.train.grad_clip = None;
    cfg.train.steps = 5;
    let source = toy2d_source(&cfg);
    let device = Device::flex();
    // One initialization for every run (seeding and drawing under the lock on Burn's
    // process-wide RNG, which the tests running in parallel share).
    let ad = device.clone().autodiff();
    let init = ebdiff_model::seeded_init(&ad, 1, || cfg.model.init(20, &ad));
    let train = |accum: usize| {
        let mut c = cfg.clone();
        c.train.grad_accum = accum;
        let opts = c.train_options();
        let (state, r) = ebdiff_trainer::train_dsm(
            ebdiff_trainer::TrainState::new(init.clone(), &opts.optimizer),
            &c.diffusion.build(),
            &source,
            &opts,
            |_, _| ebdiff_trainer::Control::Continue,
        );
        r.unwrap();
        flat(&state.model)
    };
    let (one, four) = (train(1), train(4));
    let worst = one
        .iter()
        .zip(&four)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-5, "accumulated update differs by {worst}");
    let moved = one.iter().zip(train(1).iter()).all(|(a, b)| a == b);
    assert!(moved, "training is not deterministic");
}

fn corrupt_and_expect(mutate: impl Fn(&Path), expect: &[&str]) {
    let cfg = tiny();
    let dir = scratch(&format!("corrupt-{}", expect[0].replace(['.', ' '], "")));
    run(&cfg, &dir, false, Some(4)).unwrap();
    let ckpt = dir.join("checkpoints/step-00000004");
    mutate(&ckpt);
    let msg = run(&cfg, &dir, true, None)
        .err()
        .expect("refused")
        .to_string();
    for e in expect {
        assert!(msg.contains(e), "message lacks {e:?}: {msg}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn flipped_byte_in_weights_is_refused_naming_the_file() {
    corrupt_and_expect(
        |c| {
            let p = c.join("model.safetensors");
            let mut bytes = std::fs::read(&p).unwrap();
            let i = bytes.len() - 5;
            bytes[i] ^= 0x40;
            std::fs::write(&p, bytes).unwrap();
        },
        &["model.safetensors", "sha256"],
    );
}

#[test]
fn truncated_optimizer_state_is_refused_naming_the_file() {
    corrupt_and_expect(
        |c| {
            let p = c.join("optim.safetensors");
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        },
        &["optim.safetensors", "truncated"],
    );
}

#[test]
fn unreadable_state_is_refused() {
    corrupt_and_expect(
        |c| std::fs::write(c.join("state.json"), "{ not json").unwrap(),
        &["state.json", "unreadable"],
    );
}

#[test]
fn resuming_with_a_different_model_names_the_differing_keys() {
    let cfg = tiny();
    let dir = scratch("mismatch");
    run(&cfg, &dir, false, Some(4)).unwrap();
    let mut other = cfg.clone();
    if let ebdiff_model::BackboneConfig::Mlp2d { hidden, .. } = &mut other.model.backbone {
        *hidden = 32;
    } else {
        panic!("tiny config is an MLP");
    }
    other.train.steps = 20; // allowed to change
    let msg = run(&other, &dir, true, None)
        .err()
        .expect("refused")
        .to_string();
    assert!(msg.contains("model.backbone.hidden"), "{msg}");
    assert!(msg.contains("16") && msg.contains("32"), "{msg}");
    assert!(!msg.contains("train.steps"), "{msg}");
    // Changing only resumable settings works, and training continues to the new step count.
    let mut longer = cfg.clone();
    longer.train.steps = 6;
    let r = run(&longer, &dir, true, None).unwrap();
    assert_eq!((r.first_step, r.state.step), (4, 6));
    std::fs::remove_dir_all(&dir).ok();
}

/// Toy data that turns to NaN at one step.
struct PoisonedAt<S>(S, u64);
impl<S: BatchSource> BatchSource for PoisonedAt<S> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn batch(&self, step: u64, size: usize) -> Batch {
        let mut b = self.0.batch(step, size);
        if step + 1 == self.1 {
            b.x[3] = f32::NAN;
        }
        b
    }
}

#[test]
fn non_finite_step_stops_with_step_and_tensor_and_keeps_the_last_good_state() {
    let cfg = tiny();
    let dir = scratch("nan");
    let source = PoisonedAt(toy2d_source(&cfg), 6);
    let err = run_with(&cfg, &source, &dir, false, None)
        .err()
        .expect("diverges");
    let msg = err.to_string();
    assert!(msg.contains("step 6") && msg.contains("loss"), "{msg}");
    let RunError::NonFinite {
        failure,
        checkpoint,
        report,
    } = err
    else {
        panic!("{msg}")
    };
    assert_eq!(failure.step, 6);
    let ckpt = checkpoint.expect("last good state saved");
    assert!(ckpt.ends_with("step-00000005"), "{}", ckpt.display());
    let failure_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(failure_json["step"], 6);
    assert_eq!(failure_json["tensor"], "loss");
    // The saved state is intact and resumable (with clean data it trains on).
    let r = run(&cfg, &dir, true, None).unwrap();
    assert_eq!((r.first_step, r.state.step), (5, 12));
    assert!(r.losses.iter().all(|l| l.is_finite()));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn gradient_norms_name_the_non_finite_parameter() {
    use burn::optim::GradientsParams;
    use ebdiff_trainer::GradNorms;
    let cfg = tiny();
    // Builds and differentiates a graph: apart from the other tests' threads (`burn_globals`).
    let _exclusive = ebdiff_core::burn_globals::exclusive();
    let device = Device::flex().autodiff();
    let model = cfg.model.init(20, &device);
    let x = Tensor::<2>::ones([4, 2], &device);
    let cond = ebdiff_model::Conditioning::new(Tensor::<1, burn::tensor::Int>::zeros([4], &device));
    let grads = model.eps(x, &cond).sum().backward();
    let mut grads = GradientsParams::from_grads(grads, &model);
    let clean = GradNorms::compute(&model, &grads);
    assert!(clean.first_non_finite().is_none());
    assert!(clean.global > 0.0 && clean.per_param.len() > 3);
    // Poison the third parameter's gradient.
    struct Nth(usize, Option<burn::module::ParamId>);
    impl ModuleVisitor for Nth {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if self.0 == 2 {
                self.1 = Some(p.id);
            }
            self.0 += 1;
        }
    }
    let mut nth = Nth(0, None);
    model.visit(&mut nth);
    let id = nth.1.unwrap();
    let g: Tensor<2> = grads.remove(id).expect("rank-2 weight");
    grads.register(id, g.mul_scalar(f32::NAN));
    let bad = GradNorms::compute(&model, &grads);
    let expected = &clean.per_param[2].0;
    assert_eq!(bad.first_non_finite(), Some(expected.as_str()));
    assert!(
        expected.contains('.'),
        "parameter path {expected:?} should name its module"
    );
}
