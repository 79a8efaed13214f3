//! `gradcheck::check_model`, the `cargo xtask gradcheck` command as a library call: a correct
//! model passes with its tables written, a zero-initialized point is refused as vacuous, and a
//! precision too coarse for finite differences is refused before any work.

mod common;

use burn::tensor::Device;
use ebdiff_core::{BackendKind, NamedDevice, Precision};
use ebdiff_model::ModelConfig;
use ebdiff_model::gradcheck::{
    AUTODIFF_TOL, GradcheckError, GradcheckOptions, GradcheckReport, check_model,
};
use std::collections::BTreeMap;

fn check(
    cfg: &ModelConfig,
    opts: &GradcheckOptions,
    on: &NamedDevice,
) -> (Result<GradcheckReport, GradcheckError>, String) {
    let mut out = Vec::new();
    let result = check_model(cfg, 20, opts, on, &mut out);
    (result, String::from_utf8(out).unwrap())
}

#[test]
fn a_small_energy_model_passes_and_its_tables_list_every_layer_kind() {
    let cfg = common::tiny_mlp("energy", "reconstruction", None);
    let (report, text) = check(&cfg, &GradcheckOptions::default(), &NamedDevice::cpu());
    let report = report.unwrap();
    assert!(
        text.starts_with("gradcheck: backend flex, f32, batch 2, Energy("),
        "{text}"
    );
    assert!(report.worst_layer_error() <= AUTODIFF_TOL, "{text}");
    assert_eq!(report.parameter_grads.len(), 6, "--fd-samples default");
    assert!(report.worst_parameter_error() <= report.fd_tol, "{text}");
    // One summary row per layer kind, with the number of checks of that kind.
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &report.layers {
        *kinds.entry(r.kind.as_str()).or_default() += 1;
    }
    for (kind, n) in kinds {
        assert!(
            text.contains(&format!("  {kind:<20} {n:>6} ")),
            "{kind}: {text}"
        );
    }
    for r in &report.parameter_grads {
        assert!(text.contains(&r.name), "{}: {text}", r.name);
    }
    assert!(text.ends_with("\nall checks passed\n"), "{text}");
}

#[test]
fn a_score_model_has_no_parameter_gradient_table() {
    let cfg = common::tiny_mlp("eps", "reconstruction", None);
    let (report, text) = check(&cfg, &GradcheckOptions::default(), &NamedDevice::cpu());
    assert!(report.unwrap().parameter_grads.is_empty());
    assert!(!text.contains("finite differences"), "{text}");
}

#[test]
fn zero_initialized_output_layers_make_the_check_at_init_vacuous() {
    let mut cfg = common::tiny_mlp("energy", "reconstruction", None);
    cfg.zero_init_output = Some(true);
    let opts = GradcheckOptions {
        at_init: true,
        ..GradcheckOptions::default()
    };
    let (result, text) = check(&cfg, &opts, &NamedDevice::cpu());
    match result {
        Err(e @ GradcheckError::Vacuous(_)) => {
            assert!(e.to_string().contains("drop --at-init"), "{e}")
        }
        other => panic!("expected a vacuous check, got {other:?}\n{text}"),
    }
    assert!(!text.contains("all checks passed"), "{text}");
    // The same model at a perturbed point passes.
    let (result, _) = check(&cfg, &GradcheckOptions::default(), &NamedDevice::cpu());
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn half_precision_is_refused_with_the_fix_named_before_any_work() {
    let cfg = common::tiny_mlp("energy", "reconstruction", None);
    let bf16 = NamedDevice {
        backend: BackendKind::Flex,
        precision: Precision::Bf16,
        device: Device::flex(),
    };
    let (result, text) = check(&cfg, &GradcheckOptions::default(), &bf16);
    let err = result.unwrap_err();
    assert!(matches!(err, GradcheckError::Precision(Precision::Bf16)));
    assert!(
        err.to_string().contains("check f32 and train in bf16"),
        "{err}"
    );
    assert!(text.is_empty(), "{text}");
}
