//! `cargo xtask gradcheck` prints exactly what `ebdiff_model::gradcheck::check_model` writes for
//! the same config (both on one thread, so that every sum is taken in the same order).

mod common;

use common::{ok, xtask};
use ebdiff_core::NamedDevice;
use ebdiff_model::gradcheck::{GradcheckOptions, check_model};
use ebdiff_trainer::config::ModelSection;

#[test]
fn the_cli_prints_what_the_library_writes() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/tiny/toy2d.toml");
    let out = xtask(&[
        "gradcheck",
        "--all",
        "--fd-samples",
        "3",
        "--config",
        config,
    ]);
    ok(&out);

    let section = ModelSection::load(Some(config.as_ref())).unwrap();
    let opts = GradcheckOptions {
        all: true,
        fd_samples: 3,
        ..GradcheckOptions::default()
    };
    let mut written = Vec::new();
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| {
            check_model(
                &section.model,
                section.diffusion.timesteps(),
                &opts,
                &NamedDevice::cpu(),
                &mut written,
            )
        })
        .unwrap();
    let written = String::from_utf8(written).unwrap();
    assert!(written.contains("∂(DSM loss)/∂θ"), "{written}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), written);
}
