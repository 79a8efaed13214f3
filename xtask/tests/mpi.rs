//! Several ranks as one job, under Open MPI's `mpirun` (2 ranks, `--oversubscribe`): built only
//! with `--features xtask/mpi`, run by `.ci/run` (which installs Open MPI first).
//!
//! Each test runs the real binary under `mpirun` and compares its files with a single process's:
//! data-parallel training (weights, EMA and losses within 1e-6 relative; not bit-exact because
//! each rank's backward sums its half of the batch before the ranks' halves are added, another
//! summation order than one backward over the whole batch), resumption across rank counts,
//! sharded FID statistics and evaluation (bit-identical: rank 0 gathers the feature rows in
//! order), a sweep split over ranks (the same cells), and a rank killed mid-run.
#![cfg(feature = "mpi")]

mod common;

use common::losses;
use ebdiff_core::safetensors::SafeTensors;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// `xtask ARGS` on `ranks` ranks (1: a plain process, no launcher).
fn xtask(ranks: usize, args: &[&str]) -> Output {
    let mut cmd = if ranks == 1 {
        Command::new(XTASK)
    } else {
        let mut c = Command::new("mpirun");
        c.args(["--oversubscribe", "--bind-to", "none", "-np"])
            .arg(ranks.to_string())
            .arg(XTASK);
        c
    };
    cmd.args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RUST_LOG", "warn");
    cmd.output().expect("mpirun (Open MPI) is installed")
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn tiny_toy2d(steps: usize) -> String {
    std::fs::read_to_string(format!("{ROOT}/configs/tiny/toy2d.toml"))
        .unwrap()
        .replace("steps = 12", &format!("steps = {steps}"))
}

/// As [`tiny_toy2d`] with a constant learning rate, so that a run continued to more steps is
/// the same run (a cosine schedule is stretched over `train.steps`).
fn tiny_toy2d_constant_lr(steps: usize) -> String {
    tiny_toy2d(steps).replace("lr_schedule = \"cosine\"", "lr_schedule = \"constant\"")
}

/// The tiny class-conditional UNet (attention, label dropout) without dropout: dropout masks
/// are drawn per rank, so they differ from one process's by construction.
fn tiny_unet(steps: usize) -> String {
    std::fs::read_to_string(format!("{ROOT}/configs/tiny/shapes.toml"))
        .unwrap()
        .replace("dropout = 0.2", "dropout = 0.0")
        .replace("steps = 6", &format!("steps = {steps}"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn train(ranks: usize, config: &Path, out: &Path, resume: bool) -> Output {
    let (c, o) = (config.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec!["train", "--config", c, "--out", o, "--quiet"];
    if resume {
        args.push("--resume");
    }
    ok(xtask(ranks, &args), &format!("train on {ranks} rank(s)"))
}

fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    SafeTensors::read(path)
        .unwrap()
        .tensors
        .into_iter()
        .map(|(k, t)| (k, t.to_f32().unwrap()))
        .collect()
}

/// The weights of `a` and `b` equal within `rel` relative (L2 over all parameters), and every
/// tensor within `10 rel`: a zero-initialized GroupNorm shift has gradients near zero, whose
/// rounding Adam's normalization (m / √v) turns into relative differences of ≈1e-6 in that small
/// tensor alone (measured: 1.5e-6 after 20 UNet steps, 2e-7 for the whole model). Attention key
/// biases are left out of the per-tensor check: they shift every logit of a query equally, which
/// softmax ignores, so their exact gradient is zero and what Adam applies is rounding noise
/// (they drift apart by ≈1e-4 relative, and would dominate the sum over all weights).
fn assert_close_weights(a: &Path, b: &Path, rel: f64) {
    let (ta, tb) = (tensors(a), tensors(b));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    let (mut total_diff, mut total_norm, mut worst) = (0.0f64, 0.0f64, (0.0f64, String::new()));
    for (name, x) in &ta {
        let y = &tb[name];
        let diff: f64 = x
            .iter()
            .zip(y)
            .map(|(p, q)| (*p as f64 - *q as f64).powi(2))
            .sum();
        let norm: f64 = x.iter().map(|p| (*p as f64).powi(2)).sum();
        let r = diff.sqrt() / norm.sqrt().max(1e-12);
        let noise_only = name.contains("attn") && name.ends_with(".k.bias");
        if !noise_only {
            total_diff += diff;
            total_norm += norm;
        }
        if r > worst.0 && !noise_only {
            worst = (r, name.clone());
        }
        assert!(
            noise_only || diff.sqrt() <= 10.0 * rel * norm.sqrt() + 1e-12,
            "{name} of {} and {}: relative difference {r:.2e} > {:.0e}",
            a.display(),
            b.display(),
            10.0 * rel
        );
    }
    let r = (total_diff / total_norm).sqrt();
    eprintln!(
        "{} vs {}: all weights {r:.2e}, worst tensor {} {:.2e}",
        a.display(),
        b.display(),
        worst.1,
        worst.0
    );
    assert!(
        r <= rel,
        "{} and {}: relative difference {r:.2e} > {rel:.0e}",
        a.display(),
        b.display()
    );
}

fn assert_same_run(a: &Path, b: &Path) {
    for f in ["model.safetensors", "ema.safetensors"] {
        assert_close_weights(&a.join(f), &b.join(f), 1e-6);
    }
    let (la, lb) = (losses(a), losses(b));
    assert_eq!(la.len(), lb.len(), "metrics lines");
    for ((sa, x), (sb, y)) in la.iter().zip(&lb) {
        assert_eq!(sa, sb);
        assert!(
            (x - y).abs() <= 1e-6 * x.abs(),
            "loss at step {sa}: {x} vs {y}"
        );
    }
}

#[test]
fn two_ranks_with_half_batches_train_the_model_of_one_rank_with_the_whole_batch() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, text) in [("mlp", tiny_toy2d(20)), ("unet", tiny_unet(20))] {
        let cfg = write(tmp.path(), &format!("{name}.toml"), &text);
        let (one, two) = (
            tmp.path().join(format!("{name}-1")),
            tmp.path().join(format!("{name}-2")),
        );
        train(1, &cfg, &one, false);
        train(2, &cfg, &two, false);
        assert_same_run(&one, &two);
        // Rank 0 alone wrote the run: one set of files, one start in run.json.
        let log: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(two.join("run.json")).unwrap()).unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(losses(&two).len(), 20);
    }
}

#[test]
fn a_checkpoint_resumes_with_any_number_of_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let short = write(tmp.path(), "short.toml", &tiny_toy2d_constant_lr(12));
    let long = write(tmp.path(), "long.toml", &tiny_toy2d_constant_lr(20));
    let reference = tmp.path().join("reference");
    train(1, &long, &reference, false);
    // 2 ranks, then 1; and 1 rank, then 2.
    for (first, then) in [(2, 1), (1, 2)] {
        let run = tmp.path().join(format!("{first}-then-{then}"));
        train(first, &short, &run, false);
        train(then, &long, &run, true);
        assert_same_run(&reference, &run);
    }
}

/// PIDs of the processes whose environment holds `KEY=VALUE` entries `marks`.
fn pids_with(marks: &[String]) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = env.split(|&b| b == 0).collect();
        if marks.iter().all(|m| vars.contains(&m.as_bytes())) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn a_killed_rank_ends_the_job_with_a_named_error_and_the_last_checkpoint_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let text =
        tiny_toy2d_constant_lr(1_000_000).replace("checkpoint_every = 4", "checkpoint_every = 25");
    let cfg = write(tmp.path(), "long.toml", &text);
    let run = tmp.path().join("run");
    let mark = format!("EBDIFF_TEST_RUN={}", run.display());
    let job = Command::new("mpirun")
        .args([
            "--oversubscribe",
            "--bind-to",
            "none",
            "-np",
            "2",
            "-x",
            "EBDIFF_TEST_RUN",
        ])
        .arg(XTASK)
        .args(["train", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&run)
        .env("EBDIFF_TEST_RUN", run.display().to_string())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill rank 1 once two checkpoints exist (mid-run, at no particular step).
    let t0 = Instant::now();
    while ebdiff_trainer::checkpoint::list_checkpoints(&run).len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoints");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rank1 = pids_with(&[mark, "OMPI_COMM_WORLD_RANK=1".into()]);
    assert_eq!(rank1.len(), 1, "rank 1's process: {rank1:?}");
    let killed = Command::new("kill")
        .args(["-9", &rank1[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = job.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the job must fail");
    assert!(
        stderr.contains("rank 1") && stderr.contains("signal 9"),
        "the launcher names the rank and the signal:\n{stderr}"
    );
    // The last finished checkpoint is whole (digests are checked on load) and continues the
    // same run on one rank.
    let (step, _) = *ebdiff_trainer::checkpoint::list_checkpoints(&run)
        .last()
        .unwrap();
    let steps = step as usize + 5;
    let resume_cfg = write(
        tmp.path(),
        "resume.toml",
        &text.replace("steps = 1000000", &format!("steps = {steps}")),
    );
    train(1, &resume_cfg, &run, true);
    let reference = tmp.path().join("reference");
    train(1, &resume_cfg, &reference, false);
    for f in ["model.safetensors", "ema.safetensors"] {
        assert_close_weights(&reference.join(f), &run.join(f), 1e-6);
    }
}

fn json_without_timings(path: &Path) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| {
                    !(k.contains("second") || k.contains("wall") || k.ends_with("_in_this_run"))
                });
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    strip(&mut v);
    v
}

#[test]
fn sharded_fid_stats_and_eval_write_the_files_of_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("inception");
    // A randomly initialized FID network (the real one is a download): the sharding, not the
    // network, is under test.
    ebdiff_eval::inception::save_random_weights(&weights, 5).unwrap();
    // Eleven 16×16 images (an odd count: the ranks' parts differ in size).
    let images = tmp.path().join("images");
    common::write_images(&images, 11, 16);
    let w = weights.to_str().unwrap();
    let features = [
        "--weights",
        w,
        "--batch",
        "3",
        "--kid-subsets",
        "4",
        "--kid-subset-size",
        "4",
    ];
    let stats = |ranks: usize| {
        let out = tmp.path().join(format!("ref-{ranks}.npz"));
        let mut args = vec![
            "fid-stats",
            "--folder",
            images.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(features);
        ok(xtask(ranks, &args), "fid-stats");
        out
    };
    let (s1, s2) = (stats(1), stats(2));
    assert_eq!(
        std::fs::read(&s1).unwrap(),
        std::fs::read(&s2).unwrap(),
        "mu, sigma and features"
    );

    // A tiny trained UNet, evaluated in 5 shards of 2 images (3 on rank 0, 2 on rank 1).
    let cfg = write(tmp.path(), "unet.toml", &tiny_unet(2));
    let run = tmp.path().join("unet");
    train(1, &cfg, &run, false);
    let eval = |ranks: usize| {
        let out = tmp.path().join(format!("eval-{ranks}"));
        let mut args = vec![
            "eval",
            "--checkpoint",
            run.to_str().unwrap(),
            "--samples",
            "10",
            "--shard-size",
            "2",
            "--steps",
            "5",
            "--ref",
            s1.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(features);
        ok(xtask(ranks, &args), "eval");
        out
    };
    let (e1, e2) = (eval(1), eval(2));
    for k in 0..5 {
        let shard = format!("shard-{k:05}.npz");
        assert_eq!(
            std::fs::read(e1.join(&shard)).unwrap(),
            std::fs::read(e2.join(&shard)).unwrap(),
            "{shard}"
        );
    }
    let (r1, r2) = (
        json_without_timings(&e1.join("result.json")),
        json_without_timings(&e2.join("result.json")),
    );
    let fid = |r: &serde_json::Value| r["metrics"]["fid"].as_f64().unwrap();
    assert!(
        (fid(&r1) - fid(&r2)).abs() <= 1e-9 * fid(&r1).abs(),
        "FID {} vs {}",
        fid(&r1),
        fid(&r2)
    );
    assert_eq!(r1, r2, "result.json (timings aside)");
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(e2.join("result.json")).unwrap()).unwrap();
    assert_eq!(
        raw["generated_in_this_run"], 10,
        "every rank's images counted"
    );
}

#[test]
fn a_sweep_or_sampling_split_over_ranks_produces_the_files_of_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "toy.toml", &tiny_toy2d(12));
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    train(1, &cfg, &a, false);
    train(1, &cfg.clone(), &b, false);
    let sweep = write(
        tmp.path(),
        "sweep.toml",
        &format!(
            r#"
name = "ranks"
metrics = ["log-density", "mmd", "acceptance", "nfe", "wall-time"]
[base]
count = 40
[base.sampler]
kind = "ancestral"
steps_per_level = 2
[base.models]
a = {a:?}
b = {b:?}
[base.composition]
op = "product"
weights = [1.0, 1.0]
terms = [{{ op = "model", model = "a" }}, {{ op = "model", model = "b" }}]
[eval]
target = "ring-x-bar"
[grid]
"sampler.kind" = ["ancestral", "ula", "mala"]
seed = [0, 1]
"#
        ),
    );
    let run_sweep = |ranks: usize| {
        let out = tmp.path().join(format!("sweep-{ranks}"));
        ok(
            xtask(
                ranks,
                &[
                    "sweep",
                    sweep.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                ],
            ),
            "sweep",
        );
        out
    };
    let (one, two) = (run_sweep(1), run_sweep(2));
    let cells = |root: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(root.join("cells"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(cells(&one), cells(&two));
    assert_eq!(cells(&one).len(), 6);
    for cell in cells(&one) {
        let (x, y) = (one.join("cells").join(&cell), two.join("cells").join(&cell));
        assert_eq!(
            std::fs::read(x.join("samples.npy")).unwrap(),
            std::fs::read(y.join("samples.npy")).unwrap(),
            "{cell}: samples"
        );
        assert_eq!(
            json_without_timings(&x.join("result.json")),
            json_without_timings(&y.join("result.json")),
            "{cell}: result.json"
        );
    }
    assert!(
        two.join("report").join("index.html").is_file(),
        "rank 0 wrote the report"
    );

    // `sample` in shards of 7 (5 shards: 3 on rank 0, 2 on rank 1) writes one process's file.
    let sample = |ranks: usize| {
        let out = tmp.path().join(format!("samples-{ranks}"));
        let (a, o) = (a.to_str().unwrap(), out.to_str().unwrap());
        let args = [
            "sample",
            "--checkpoint",
            a,
            "--sampler",
            "mala",
            "--count",
            "31",
        ];
        let mut args = args.to_vec();
        args.extend(["--shard-size", "7", "--out", o]);
        ok(xtask(ranks, &args), "sample");
        out
    };
    let (s1, s2) = (sample(1), sample(2));
    assert_eq!(
        std::fs::read(s1.join("samples.npy")).unwrap(),
        std::fs::read(s2.join("samples.npy")).unwrap(),
        "sharded samples"
    );
    assert_eq!(
        json_without_timings(&s1.join("diagnostics.json")),
        json_without_timings(&s2.join("diagnostics.json"))
            .as_object()
            .map(|m| {
                let mut m = m.clone();
                m["shards"]["ranks"] = 1.into();
                serde_json::Value::Object(m)
            })
            .unwrap(),
        "diagnostics (timings and rank count aside)"
    );
}

#[test]
fn commands_of_one_process_refuse_to_run_on_several_ranks() {
    let out = xtask(2, &["gradcheck"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("runs on one process"), "{stderr}");
}
