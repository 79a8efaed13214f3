//! Sweep tests on tiny untrained models (a few seconds in all).

use super::cell::{CellResult, STATUS_NA, STATUS_OK};
use super::report::write_report;
use super::spec::parse;
use super::*;
use ebdiff_core::BackendKind;
use ebdiff_data::io::npy::read_npy;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::time::SystemTime;

/// A run directory (config.toml + ema.safetensors) of a randomly initialized model of `config`.
fn untrained_run(dir: PathBuf, config: &str, seed: u64) -> PathBuf {
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let cfg = ebdiff_trainer::ExperimentConfig::load(&dir.join("config.toml")).unwrap();
    let device = BackendKind::Flex.device().unwrap();
    let model = ebdiff_model::seeded_init(&device, seed, || {
        cfg.model.init(cfg.diffusion.build().len(), &device)
    });
    ebdiff_core::module_weights::save_module(
        &model,
        &dir.join("ema.safetensors"),
        Default::default(),
    )
    .unwrap();
    dir
}

/// A run directory of a tiny randomly initialized 2-D model.
fn tiny_model(root: &Path, name: &str, parameterization: &str) -> PathBuf {
    untrained_run(root.join(name), &tiny_config_text(parameterization), 1)
}

/// The tiny 2-D training config with `parameterization` and 6 diffusion levels.
fn tiny_config_text(parameterization: &str) -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/tiny/toy2d.toml"
    ))
    .unwrap()
    .replace("timesteps = 20", "timesteps = 6")
    .replace(
        "parameterization = \"energy\"",
        &format!("parameterization = \"{parameterization}\""),
    )
}

fn sweep_text(models: &str, extra: &str) -> String {
    format!(
        r#"
name = "t"
metrics = ["log-density", "mmd", "w2", "acceptance", "nfe", "wall-time"]
[base]
count = 12
[base.sampler]
kind = "ancestral"
steps_per_level = 1
[base.models]
{models}
[base.composition]
op = "product"
weights = [1.0, 1.0]
terms = [{{ op = "model", model = "a" }}, {{ op = "model", model = "b" }}]
[eval]
target = "ring-x-bar"
{extra}
"#
    )
}

fn opts(stop: Arc<AtomicBool>, on_cell: Option<CellCallback>) -> RunOptions {
    RunOptions {
        jobs: 1,
        stop,
        device: BackendKind::Flex.device().unwrap(),
        on_cell,
        group: ebdiff_core::collective::solo(),
    }
}

fn mtime_and_bytes(p: &Path) -> (SystemTime, Vec<u8>) {
    (
        std::fs::metadata(p).unwrap().modified().unwrap(),
        std::fs::read(p).unwrap(),
    )
}

#[test]
fn grid_axes_and_lists_expand_to_their_product_with_stable_ids() {
    let text = sweep_text(
        "a = \"runs/a\"\nb = \"runs/b\"",
        r#"
[grid]
"sampler.kind" = ["ula", "hmc"]
"sampler.step_size" = [{ law = "constant", value = 0.01 }, { law = "constant", value = 0.1 }]
seed = [0, 1, 2]
[axes.param.energy]
"models.a" = "runs/a"
[axes.param.eps]
"models.a" = "runs/a-eps"
"eval.score_mh" = "line-integral"
"#,
    );
    let s = parse(&text, "t.toml").unwrap();
    assert_eq!(s.cells.len(), 2 * 2 * 2 * 3);
    // Axes in order: [axes] by name, then grid keys by name with the seed last.
    assert_eq!(
        s.axes,
        vec!["param", "sampler.kind", "sampler.step_size", "seed"]
    );
    let c = &s.cells[1];
    assert!(
        c.name.starts_with("energy-ula-step_size-") && c.name.ends_with("-seed1"),
        "{}",
        c.name
    );
    assert_eq!(c.sampling.seed, 1);
    assert_eq!(c.group(), s.cells[0].group());
    assert_ne!(c.group(), s.cells[3].group());
    let eps = s
        .cells
        .iter()
        .find(|c| c.label("param") == Some("eps"))
        .unwrap();
    assert_eq!(eps.sampling.models["a"], "runs/a-eps".into());
    assert_eq!(eps.eval.score_mh, spec::ScoreMh::LineIntegral);
    // Ids: unique, stable across parses, and a function of the resolved config only.
    let ids: std::collections::BTreeSet<_> = s.cells.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), s.cells.len());
    let again = parse(&text, "t.toml").unwrap();
    assert_eq!(
        s.cells.iter().map(|c| &c.id).collect::<Vec<_>>(),
        again.cells.iter().map(|c| &c.id).collect::<Vec<_>>()
    );
    let changed = parse(&text.replace("count = 12", "count = 13"), "t.toml").unwrap();
    assert!(
        s.cells
            .iter()
            .zip(&changed.cells)
            .all(|(a, b)| a.id != b.id && a.name == b.name)
    );
    // A default written out explicitly resolves to the same cell.
    let explicit = parse(
        &text.replace("steps_per_level = 1", "steps_per_level = 1\nleapfrog = 3"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(s.cells[0].id, explicit.cells[0].id);

    // [[list]]: explicit cells, crossed with the grid.
    let listed = parse(
        &sweep_text(
            "a = \"runs/a\"\nb = \"runs/b\"",
            r#"
[[list]]
name = "fast"
"sampler.kind" = "ula"
[[list]]
name = "careful"
"sampler.kind" = "mala"
"sampler.steps_per_level" = 20
[grid]
seed = [0, 1]
"#,
        ),
        "t.toml",
    )
    .unwrap();
    let names: Vec<&str> = listed.cells.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["fast-seed0", "fast-seed1", "careful-seed0", "careful-seed1"]
    );
    assert_eq!(listed.cells[2].sampling.sampler.steps_per_level, 20);
    assert_eq!(listed.cells[0].sampling.sampler.steps_per_level, 1);

    // Array values label as their items; tables by a short hash of their text.
    let windows = parse(
        &sweep_text(
            "a = \"runs/a\"\nb = \"runs/b\"",
            "[grid]\n\"sampler.window\" = [[0, 3], [2, 5]]\n",
        ),
        "t.toml",
    )
    .unwrap();
    let names: Vec<&str> = windows.cells.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["window0_3", "window2_5"]);
    assert_eq!(windows.cells[1].sampling.sampler.window, Some([2, 5]));
}

#[test]
fn exclude_entries_drop_exactly_the_matching_combinations_and_name_bad_axes() {
    let grid = r#"
[grid]
"sampler.kind" = ["ula", "hmc", "mala"]
seed = [0, 1]
[axes.param.energy]
"models.a" = "runs/a"
[axes.param.eps]
"models.a" = "runs/a-eps"
"#;
    let all = parse(
        &sweep_text("a = \"runs/a\"\nb = \"runs/b\"", grid),
        "t.toml",
    )
    .unwrap();
    let text = format!(
        "{grid}\n[[exclude]]\nparam = \"eps\"\n\"sampler.kind\" = \"hmc\"\n[[exclude]]\nseed = \"seed1\"\n\"sampler.kind\" = \"mala\"\n"
    );
    let s = parse(
        &sweep_text("a = \"runs/a\"\nb = \"runs/b\"", &text),
        "t.toml",
    )
    .unwrap();
    let names: Vec<&str> = s.cells.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "energy-ula-seed0",
            "energy-ula-seed1",
            "energy-hmc-seed0",
            "energy-hmc-seed1",
            "energy-mala-seed0",
            "eps-ula-seed0",
            "eps-ula-seed1",
            "eps-mala-seed0",
        ]
    );
    // The remaining cells keep the ids they have without the exclusions (finished cells stay).
    for c in &s.cells {
        assert_eq!(
            all.cells.iter().find(|a| a.name == c.name).unwrap().id,
            c.id
        );
    }
    for (bad, says) in [
        (
            "[[exclude]]\nsampler = \"hmc\"\n",
            "`sampler` is not an axis",
        ),
        (
            "[[exclude]]\nparam = \"score\"\n",
            "axis `param` has no label `score`",
        ),
        ("[[exclude]]\n", "is empty"),
    ] {
        let err = parse(
            &sweep_text("a = \"runs/a\"\nb = \"runs/b\"", &format!("{grid}\n{bad}")),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn unknown_keys_and_unavailable_metrics_are_errors_naming_them() {
    let base = sweep_text("a = \"runs/a\"\nb = \"runs/b\"", "");
    let err = |text: &str| parse(text, "t.toml").expect_err("must fail").to_string();
    // A grid key that is not in the sampling config: named, with the allowed keys.
    let m = err(&format!("{base}[grid]\n\"sampler.leap_frog\" = [1, 2]\n"));
    assert!(
        m.contains("leap_frog") && m.contains("leapfrog") && m.contains("steps_per_level"),
        "{m}"
    );
    let m = err(&format!("{base}[grid]\n\"temperature\" = [1.0]\n"));
    assert!(
        m.contains("temperature") && m.contains("allowed") && m.contains("sampler"),
        "{m}"
    );
    let m = err(&format!("{base}[grid]\n\"count.x\" = [1]\n"));
    assert!(m.contains("`count` is not a table"), "{m}");
    let m = err(&format!(
        "{base}[grid]\n\"eval.targt\" = [\"ring-x-bar\"]\n"
    ));
    assert!(m.contains("targt") && m.contains("target"), "{m}");
    let m = err(&format!("{base}[grid]\n\"eval.target\" = [\"moon\"]\n"));
    assert!(m.contains("moon") && m.contains("blob-mixture"), "{m}");
    let m = err(&format!("{base}[axes.x.y]\n\"sampler.damp\" = 0.5\n"));
    assert!(
        m.contains("[axes.x.y]") && m.contains("damp") && m.contains("damping"),
        "{m}"
    );
    // A value of the wrong type.
    let m = err(&format!("{base}[grid]\n\"sampler.kind\" = [\"nuts\"]\n"));
    assert!(m.contains("nuts") && m.contains("mala"), "{m}");
    // Unknown keys of the sweep file itself.
    let m = err(&base.replace("name = \"t\"", "name = \"t\"\nseeds = [0]"));
    assert!(m.contains("seeds") && m.contains("grid"), "{m}");
    // Metrics: unknown, not available yet, or missing what they need.
    let m = err(&base.replace("\"w2\",", "\"w3\","));
    assert!(m.contains("w3") && m.contains("log-density"), "{m}");
    let m = err(&base.replace("\"w2\",", "\"fid\","));
    assert!(m.contains("fid") && m.contains("eval.reference"), "{m}");
    let m = err(&format!("{base}[report]\nx = \"sampler.kind\"\n"));
    assert!(m.contains("report.x") && m.contains("not a number"), "{m}");
    let m = err(&base.replace("target = \"ring-x-bar\"", ""));
    assert!(
        m.contains("eval.target") && m.contains("log-density"),
        "{m}"
    );
    let m = err(&format!("{base}[report]\npanels = \"composition\"\n"));
    assert!(
        m.contains("composition") && m.contains("not an axis"),
        "{m}"
    );
    // An axis that changes nothing would give two cells one directory.
    let m = err(&format!("{base}[grid]\n\"sampler.leapfrog\" = [3, 3]\n"));
    assert!(m.contains("same config"), "{m}");
}

#[test]
fn an_interrupted_sweep_resumes_without_recomputing_finished_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tiny_model(tmp.path(), "a", "energy");
    let b = tiny_model(tmp.path(), "b", "energy");
    let text = sweep_text(
        &format!(
            "a = {:?}\nb = {:?}",
            a.display().to_string(),
            b.display().to_string()
        ),
        "[grid]\n\"sampler.kind\" = [\"ancestral\", \"ula\", \"mala\"]\nseed = [0, 1]\n",
    );
    let sweep = parse(&text, "t.toml").unwrap();
    assert_eq!(sweep.cells.len(), 6);
    let out = tmp.path().join("out");

    // First run: stopped (as by Ctrl-C) once two cells have finished.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let (s2, d2) = (stop.clone(), done.clone());
    let first = run_cells(
        &sweep,
        &out,
        &opts(
            stop.clone(),
            Some(Box::new(move |_, o| {
                assert_eq!(*o, Outcome::Computed);
                if d2.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
                    s2.store(true, Ordering::SeqCst);
                }
            })),
        ),
    )
    .unwrap();
    assert_eq!(first.computed.len(), 2);
    assert_eq!(first.not_started, 4);
    let finished_before: Vec<(PathBuf, (SystemTime, Vec<u8>))> = sweep.cells[..2]
        .iter()
        .map(|c| {
            let p = cell_dir(&out, c).join("result.json");
            let r: CellResult = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            assert_eq!(r.status, STATUS_OK);
            assert!(r.metrics["w2"].is_finite() && r.metrics["nfe"] > 0.0);
            (p.clone(), mtime_and_bytes(&p))
        })
        .collect();
    for c in &sweep.cells[2..] {
        assert!(
            !cell_dir(&out, c).exists(),
            "{} started after the stop",
            c.name
        );
    }
    // A cell killed half-way: its directory has files but no result.json.
    let half = cell_dir(&out, &sweep.cells[2]);
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("samples.npy"), b"truncated").unwrap();
    std::fs::write(half.join("result.json.tmp"), b"{\"cell\":").unwrap();
    // A result recorded for another config (e.g. a hand-edited or stale directory) is redone too.
    let stale = cell_dir(&out, &sweep.cells[3]);
    std::fs::create_dir_all(&stale).unwrap();
    let mut r: CellResult = serde_json::from_slice(&finished_before[0].1.1).unwrap();
    r.config["sampling"]["count"] = serde_json::json!(999);
    std::fs::write(stale.join("result.json"), serde_json::to_vec(&r).unwrap()).unwrap();

    std::thread::sleep(std::time::Duration::from_millis(20));
    let computed = Arc::new(Mutex::new(Vec::new()));
    let c2 = computed.clone();
    let second = run_cells(
        &sweep,
        &out,
        &opts(
            Arc::new(AtomicBool::new(false)),
            Some(Box::new(move |c, o| {
                if *o == Outcome::Computed {
                    c2.lock().unwrap().push(c.name.clone());
                }
            })),
        ),
    )
    .unwrap();
    assert_eq!(second.skipped.len(), 2, "{second:?}");
    assert_eq!(second.computed.len(), 4, "{second:?}");
    assert_eq!(
        *computed.lock().unwrap(),
        sweep.cells[2..]
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    );
    for (p, before) in &finished_before {
        assert_eq!(&mtime_and_bytes(p), before, "{} was rewritten", p.display());
    }
    // The half-written cell was redone from scratch.
    assert!(!half.join("result.json.tmp").exists());
    let npy = std::fs::read(half.join("samples.npy")).unwrap();
    assert!(npy.starts_with(b"\x93NUMPY"));
    assert!(finished(&out, &sweep.cells[2]).is_some());
    assert_eq!(
        finished(&out, &sweep.cells[3]).unwrap().config["sampling"]["count"],
        serde_json::json!(12)
    );
    // A third run has nothing left to do.
    let third = run_cells(&sweep, &out, &opts(Arc::new(AtomicBool::new(false)), None)).unwrap();
    assert_eq!((third.skipped.len(), third.computed.len()), (6, 0));
}

#[test]
fn a_failing_cell_is_recorded_and_the_others_finish_and_score_only_cells_are_not_applicable() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tiny_model(tmp.path(), "a", "energy");
    let b = tiny_model(tmp.path(), "b", "energy");
    let ae = tiny_model(tmp.path(), "a-eps", "eps");
    let be = tiny_model(tmp.path(), "b-eps", "eps");
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    let text = sweep_text(
        &format!("a = {}\nb = {}", q(&a), q(&b)),
        &format!(
            r#"
[axes.param.energy]
models = {{ a = {}, b = {} }}
[axes.param.eps]
models = {{ a = {}, b = {} }}
[axes.param.missing]
models = {{ a = {}, b = {} }}
[axes.comp.product]
[axes.comp.mixture]
composition = {{ op = "mixture", weights = [0.5, 0.5], components = [{{ op = "model", model = "a" }}, {{ op = "model", model = "b" }}] }}
[grid]
"sampler.kind" = ["ula", "mala"]
[report]
panels = "comp"
series = "sampler.kind"
"#,
            q(&a),
            q(&b),
            q(&ae),
            q(&be),
            q(&tmp.path().join("nowhere")),
            q(&b)
        ),
    );
    let sweep = parse(&text, "t.toml").unwrap();
    assert_eq!(sweep.cells.len(), 3 * 2 * 2);
    let out = tmp.path().join("out");
    // Two cells at a time: outcomes do not depend on the order.
    let mut o = opts(Arc::new(AtomicBool::new(false)), None);
    o.jobs = 2;
    let summary = run_cells(&sweep, &out, &o).unwrap();
    let status = |param: &str, comp: &str, kind: &str| -> String {
        let c = sweep
            .cells
            .iter()
            .find(|c| {
                c.label("param") == Some(param)
                    && c.label("comp") == Some(comp)
                    && c.label("sampler.kind") == Some(kind)
            })
            .unwrap();
        match finished(&out, c) {
            Some(r) => r.status,
            None => {
                let e = std::fs::read_to_string(cell_dir(&out, c).join("error.json")).unwrap();
                assert!(e.contains("nowhere"), "{e}");
                "failed".into()
            }
        }
    };
    for comp in ["product", "mixture"] {
        for kind in ["ula", "mala"] {
            assert_eq!(status("energy", comp, kind), STATUS_OK);
            assert_eq!(status("missing", comp, kind), "failed");
        }
    }
    // Score models: ULA runs on a product; MALA has no energy for its MH step; a mixture has
    // no responsibilities.
    assert_eq!(status("eps", "product", "ula"), STATUS_OK);
    assert_eq!(status("eps", "product", "mala"), STATUS_NA);
    assert_eq!(status("eps", "mixture", "ula"), STATUS_NA);
    assert_eq!(status("eps", "mixture", "mala"), STATUS_NA);
    assert_eq!(summary.failed.len(), 4);
    assert_eq!(summary.computed.len() + summary.not_applicable.len(), 8);
    assert_eq!(summary.not_applicable.len(), 3);

    // The report: one CSV row per cell, the failures listed, every <img> resolves to a file.
    let dir = report::write_report(&sweep, &out, None).unwrap();
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + sweep.cells.len());
    assert_eq!(csv.lines().filter(|l| l.contains(",failed,")).count(), 4);
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(
        md.contains("## Failed cells") && md.contains("nowhere"),
        "{md}"
    );
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let srcs: Vec<&str> = html
        .split("src=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert!(
        srcs.iter()
            .any(|s| s.ends_with("acceptance-vs-level-product.svg")),
        "{srcs:?}"
    );
    assert!(
        srcs.iter().any(|s| s.ends_with("w2-vs-nfe-mixture.svg")),
        "{srcs:?}"
    );
    assert!(
        srcs.iter().filter(|s| s.ends_with("samples.png")).count() >= 3,
        "{srcs:?}"
    );
    for s in &srcs {
        assert!(
            !s.contains("://") && !s.starts_with('/'),
            "{s} is not relative"
        );
        let f = dir.join(s);
        assert!(f.exists(), "{} is missing", f.display());
        if s.ends_with(".svg") {
            let svg = std::fs::read_to_string(&f).unwrap();
            assert!(
                svg.contains("<svg") && svg.contains("<circle"),
                "{s} has no points"
            );
        }
    }
    let by_cell: BTreeMap<_, _> = summary.failed.iter().cloned().collect();
    assert!(by_cell.values().all(|m| m.contains("nowhere")));
}

#[test]
fn models_listed_under_train_are_trained_once_when_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tiny_model(tmp.path(), "b", "energy");
    let a = tmp.path().join("trained-a");
    let train_cfg = tmp.path().join("a.toml");
    std::fs::write(&train_cfg, tiny_config_text("eps")).unwrap();
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    let text = sweep_text(
        &format!("a = {}\nb = {}", q(&a), q(&b)),
        &format!("[train]\n{} = {}\n", q(&a), q(&train_cfg)),
    );
    let sweep = parse(&text, "t.toml").unwrap();
    assert!(!a.exists());
    let device = BackendKind::Flex.device().unwrap();
    let no_stop = || Arc::new(AtomicBool::new(false));
    train_missing(
        &sweep,
        &device,
        &ebdiff_core::collective::solo(),
        no_stop(),
        |_, _| {},
    )
    .unwrap();
    let weights = a.join("ema.safetensors");
    let before = mtime_and_bytes(&weights);
    let cfg = ebdiff_trainer::RunDir::open(&a)
        .unwrap()
        .load(&device)
        .unwrap()
        .config;
    assert_eq!(
        cfg.model.parameterization,
        ebdiff_model::config::ParameterizationKind::Eps,
        "trained from the [train] config"
    );
    // Present now: not trained again.
    train_missing(
        &sweep,
        &device,
        &ebdiff_core::collective::solo(),
        no_stop(),
        |_, _| {},
    )
    .unwrap();
    assert_eq!(mtime_and_bytes(&weights), before);
    let out = tmp.path().join("out");
    let s = run_cells(&sweep, &out, &opts(Arc::new(AtomicBool::new(false)), None)).unwrap();
    assert_eq!(s.computed.len(), 1, "{s:?}");
}

/// A run directory of a tiny randomly initialized cell-conditional shapes model (12×12, 2×2).
fn tiny_shapes_model(root: &Path) -> PathBuf {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/tiny/shapes.toml"
    ))
    .unwrap()
    .replace("size = 16", "size = 12")
    .replace("data_shape = [3, 16, 16]", "data_shape = [3, 12, 12]")
    .replace("attention_resolutions = [8]", "attention_resolutions = []")
    .replace("timesteps = 50", "timesteps = 25");
    untrained_run(root.join("shapes"), &text, 2)
}

#[test]
fn shapes_cells_score_composition_accuracy_on_the_cells_the_composition_asks_for() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_shapes_model(tmp.path());
    let text = format!(
        r#"
name = "shapes"
metrics = ["composition-accuracy", "acceptance", "nfe"]
[base]
count = 6
[base.sampler]
kind = "mala"
mode = "reverse-then-same"
step_size = {{ law = "beta-scaled", c = 0.05 }}
[base.models]
shapes = {:?}
[base.composition]
op = "guided"
weight = 2.0
uncond = {{ op = "model", model = "shapes" }}
conds = [{{ op = "model", model = "shapes", label = 3 }}, {{ op = "model", model = "shapes", label = 0 }}]
[grid]
"sampler.steps_per_level" = [0, 1]
[report]
x = "sampler.steps_per_level"
"#,
        model.display().to_string()
    );
    let sweep = parse(&text, "t.toml").unwrap();
    let out = tmp.path().join("out");
    let s = run_cells(&sweep, &out, &opts(Arc::new(AtomicBool::new(false)), None)).unwrap();
    assert_eq!(s.computed.len(), 2, "{s:?}");
    let shapes = ebdiff_data::image::ShapesConfig {
        size: 12,
        grid: 2,
        max_objects: 2,
        ..Default::default()
    };
    for c in &sweep.cells {
        let dir = cell_dir(&out, c);
        let r: CellResult =
            serde_json::from_slice(&std::fs::read(dir.join("result.json")).unwrap()).unwrap();
        assert_eq!(r.status, STATUS_OK);
        // Independently: the requested cells are the conditional labels, 3 and 0.
        let samples = read_npy(&dir.join("samples.npy")).unwrap().to_f32();
        let expect = ebdiff_eval::composition_accuracy(&samples, &shapes, &[0, 3]).unwrap();
        assert_eq!(r.metrics["accuracy"], expect.accuracy);
        assert_eq!(r.metrics["cell_recall"], expect.cell_recall);
        assert_eq!(r.metrics["objects"], expect.mean_objects);
        // K = 0 is reverse diffusion: one evaluation per level (25) and no MH steps.
        if c.sampling.sampler.steps_per_level == 0 {
            assert_eq!(r.metrics["nfe"], 25.0);
        }
        assert_eq!(
            r.metrics.contains_key("acceptance"),
            c.sampling.sampler.steps_per_level > 0
        );
    }
    write_report(&sweep, &out, None).unwrap();
    let plot = out.join("report/plots/accuracy-vs-sampler.steps_per_level.svg");
    assert!(plot.exists(), "{}", plot.display());
    // A model that was not trained on shapes cannot be scored: the cell records why. (Same
    // network and classes, trained on another image set.)
    let other_data = std::fs::read_to_string(model.join("config.toml"))
        .unwrap()
        .replace("kind = \"shapes\"", "kind = \"mnist\"")
        .replace("count = 40\nseed = 1\n", "")
        .replace("[data.shapes]\nsize = 12\ngrid = 2\nmax_objects = 2\n", "");
    let mnist_like = untrained_run(tmp.path().join("mnist-like"), &other_data, 2);
    let bad = text
        .replace(
            &model.display().to_string(),
            &mnist_like.display().to_string(),
        )
        .replace(
            "\"sampler.steps_per_level\" = [0, 1]",
            "\"sampler.steps_per_level\" = [0]",
        );
    let sweep = parse(&bad, "t.toml").unwrap();
    let out = tmp.path().join("out-bad");
    let s = run_cells(&sweep, &out, &opts(Arc::new(AtomicBool::new(false)), None)).unwrap();
    assert_eq!(s.failed.len(), 1, "{s:?}");
    let e = std::fs::read_to_string(cell_dir(&out, &sweep.cells[0]).join("error.json")).unwrap();
    assert!(e.contains("shapes"), "{e}");
    // A label on an unconditional model is refused when the composition is built, by name.
    let toy = tiny_model(tmp.path(), "toy", "energy");
    let sweep = parse(
        &bad.replace(
            &mnist_like.display().to_string(),
            &toy.display().to_string(),
        ),
        "t.toml",
    )
    .unwrap();
    let out = tmp.path().join("out-unconditional");
    let s = run_cells(&sweep, &out, &opts(Arc::new(AtomicBool::new(false)), None)).unwrap();
    assert_eq!(s.failed.len(), 1, "{s:?}");
    let e = std::fs::read_to_string(cell_dir(&out, &sweep.cells[0]).join("error.json")).unwrap();
    assert!(
        e.contains("unconditional") && e.contains("label = 3"),
        "{e}"
    );
    assert!(e.contains("shapes"), "{e}");
}

#[test]
#[ignore = "needs `cargo xtask fetch inception`"]
fn fid_and_kid_cells_score_image_samples_against_the_reference_statistics() {
    use ebdiff_eval::fid::{FeatureExtractor, SetFeatures};
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/inception");
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_shapes_model(tmp.path());
    let text = |reference: &Path| {
        format!(
            r#"
name = "fid"
metrics = ["fid", "kid"]
[base]
count = 8
[base.sampler]
kind = "ancestral"
[base.models]
default = {:?}
[eval]
reference = {:?}
inception = {:?}
[grid]
seed = [0, 1]
"#,
            model.display().to_string(),
            reference.display().to_string(),
            weights.display().to_string()
        )
    };
    // Reference: the statistics (and features) of seed 0's own samples, computed here by hand.
    let reference = tmp.path().join("ref.npz");
    let first = parse(&text(&reference), "t.toml").unwrap();
    let out = tmp.path().join("out");
    let s = run_cells(&first, &out, &opts(Arc::new(AtomicBool::new(false)), None)).unwrap();
    assert_eq!(s.failed.len(), 2, "no reference yet: {s:?}");
    let e = std::fs::read_to_string(cell_dir(&out, &first.cells[0]).join("error.json")).unwrap();
    assert!(e.contains("fid-stats"), "{e}");

    let samples: Vec<f32> = {
        // Draw seed 0 with the sample command's code path, outside the sweep.
        let cell = &first.cells[0];
        let device = BackendKind::Flex.device().unwrap();
        let loaded = ebdiff_trainer::load_components(&cell.sampling, None, None, &device).unwrap();
        let target = loaded.build(&cell.sampling.composition_spec()).unwrap();
        ebdiff_sampler::sample(&cell.sampling, &target, &loaded.schedule, &device, |_| {})
            .unwrap()
            .samples_vec()
    };
    let pixels: Vec<u8> = samples
        .iter()
        .map(|&v| ebdiff_eval::model_pixel_to_u8(v))
        .collect();
    let fx = FeatureExtractor::load(&weights, BackendKind::Flex.device().unwrap(), 8).unwrap();
    let set = SetFeatures::from_features(fx.features_u8(&pixels, [3, 12, 12], &mut |_| {}));
    ebdiff_eval::save_stats_npz_with_features(
        &reference,
        &set.mu,
        &set.sigma,
        set.features.as_deref(),
    )
    .unwrap();

    let s = run_cells(&first, &out, &opts(Arc::new(AtomicBool::new(false)), None)).unwrap();
    assert_eq!(s.computed.len(), 2, "failed cells are redone: {s:?}");
    let result = |c: &Cell| -> CellResult {
        serde_json::from_slice(&std::fs::read(cell_dir(&out, c).join("result.json")).unwrap())
            .unwrap()
    };
    let same = result(&first.cells[0]);
    let other = result(&first.cells[1]);
    // The same images as the reference: FID 0 (up to the eigen-solver), KID ≤ 0 in expectation
    // (unbiased); another seed's images: clearly positive.
    assert!(same.metrics["fid"].abs() < 1e-6, "{:?}", same.metrics);
    assert!(other.metrics["fid"] > 1.0, "{:?}", other.metrics);
    assert!(
        other.metrics["kid"] > same.metrics["kid"],
        "{:?} {:?}",
        same,
        other
    );
    let fid_json =
        std::fs::read_to_string(cell_dir(&out, &first.cells[0]).join("fid.json")).unwrap();
    assert!(fid_json.contains("weights_sha256"), "{fid_json}");
}

#[test]
fn exact_components_from_toml_are_sampled_like_models_and_smc_reports_its_weights() {
    // Oracle components in [models] (the exact diffused ring and bar), no run directories:
    // ancestral sampling and SMC of their product, scored against the exact product.
    let tmp = tempfile::tempdir().unwrap();
    let text = r#"
name = "oracle"
metrics = ["log-density", "nfe", "ess"]
[base]
count = 300
[base.sampler]
kind = "ancestral"
variance = "fixed-large"
[base.models]
ring = { exact = { kind = "ring", modes = 8, radius = 0.5, std = 0.075 }, diffusion = { kind = "cosine", timesteps = 30 } }
bar = { exact = { kind = "rect", x = [-0.2, 0.2], y = [-1.0, 1.0] }, diffusion = { kind = "cosine", timesteps = 30 } }
[base.composition]
op = "product"
weights = [1.0, 1.0]
terms = [{ op = "model", model = "ring" }, { op = "model", model = "bar" }]
[eval]
target = "ring-x-bar"
[grid]
"sampler.kind" = ["ancestral", "smc"]
"#;
    let sweep = parse(text, "t.toml").unwrap();
    let out = tmp.path().join("out");
    let s = run_cells(&sweep, &out, &opts(Arc::new(AtomicBool::new(false)), None)).unwrap();
    assert_eq!(s.computed.len(), 2, "{s:?}");
    let result = |kind: &str| -> CellResult {
        let c = sweep
            .cells
            .iter()
            .find(|c| c.sampling.sampler.kind.name() == kind)
            .unwrap();
        serde_json::from_slice(&std::fs::read(cell_dir(&out, c).join("result.json")).unwrap())
            .unwrap()
    };
    let (anc, smc) = (result("ancestral"), result("smc"));
    assert!(!anc.metrics.contains_key("ess_min"), "{anc:?}");
    assert!(smc.metrics["ess_min"] > 0.0 && smc.metrics["ess_final"] <= 1.0);
    // The exact samples of ring × bar score ≈ 1.53 nats (README); SMC with exact components
    // gets close, summed-score reverse diffusion does not.
    let exact = spec::exact_target("ring-x-bar").unwrap();
    let reference = exact.sample(300, &mut ebdiff_core::rng::stream(0, "exact-reference"));
    let best = exact.mean_log_density(&reference);
    assert!(
        (smc.metrics["log_density"] - best).abs() < 0.25,
        "SMC {} vs exact {best}",
        smc.metrics["log_density"]
    );
    assert!(
        anc.metrics["log_density"] < best - 0.5,
        "ancestral {} vs exact {best}",
        anc.metrics["log_density"]
    );
    // A label on an exact component is refused by name.
    let bad = text.replace(
        "{ op = \"model\", model = \"bar\" }",
        "{ op = \"model\", model = \"bar\", label = 1 }",
    );
    let sweep = parse(&bad, "t.toml").unwrap();
    let out = tmp.path().join("bad");
    let s = run_cells(&sweep, &out, &opts(Arc::new(AtomicBool::new(false)), None)).unwrap();
    assert_eq!(s.failed.len(), 2, "{s:?}");
    assert!(s.failed[0].1.contains("without classes"), "{:?}", s.failed);
    // An exact table that is not a 2-D toy is a parse error naming the allowed kinds.
    let msg = parse(
        &text.replace("kind = \"ring\"", "kind = \"mnist\""),
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("mnist") || msg.contains("ring"), "{msg}");
}
