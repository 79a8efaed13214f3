//! `cargo xtask fid-stats` and `fid` write what `ebdiff_eval::fid_commands` returns for the same
//! options: the same statistics file byte for byte, and the same result (images/s aside), on a
//! randomly initialized FID network (the real weights are a download).

mod common;

use burn::tensor::Device;
use common::{ok, write_images, xtask};
use ebdiff_core::Solo;
use ebdiff_eval::fid_commands::{FeatureOptions, FidOptions, FidStatsOptions, fid, fid_stats};
use std::path::Path;

fn json(path: &Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("images_per_second");
    v
}

#[test]
fn the_cli_writes_what_the_library_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name);
    let weights = path("inception");
    ebdiff_eval::inception::save_random_weights(&weights, 5).unwrap();
    let images = path("images");
    write_images(&images, 5, 8);
    let features = FeatureOptions {
        weights: weights.clone(),
        batch: 5,
        kid_subsets: 3,
        kid_subset_size: 4,
    };
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let flags = [
        "--weights".into(),
        s(&weights),
        "--batch".into(),
        "5".into(),
        "--kid-subsets".into(),
        "3".into(),
        "--kid-subset-size".into(),
        "4".into(),
    ];
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().chain(&flags).map(String::as_str).collect();
        let out = xtask(&args);
        ok(&out);
        String::from_utf8(out.stdout).unwrap()
    };

    let cli_stats = path("cli.npz");
    run(vec![
        "fid-stats".into(),
        "--folder".into(),
        s(&images),
        "--out".into(),
        s(&cli_stats),
    ]);
    let opts = FidStatsOptions {
        data: None,
        folder: Some(images.clone()),
        limit: None,
        out: path("lib.npz"),
        features: features.clone(),
    };
    fid_stats(&opts, Device::flex(), &Solo, &mut |_| {})
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read(&cli_stats).unwrap(),
        std::fs::read(path("lib.npz")).unwrap()
    );

    let printed = run(vec![
        "fid".into(),
        s(&cli_stats),
        s(&images),
        "--out".into(),
        s(&path("cli.json")),
    ]);
    let mut opts = FidOptions::new(&cli_stats, &images);
    opts.out = Some(path("lib.json"));
    opts.features = features;
    let report = fid(&opts, Device::flex(), &mut |_| {}).unwrap();
    assert_eq!(json(&path("cli.json")), json(&path("lib.json")));
    // Printed: the same FID, KID and precision/recall lines, then the folder's images/s.
    let expected = report.to_string();
    let (cli, lib): (Vec<&str>, Vec<&str>) =
        (printed.lines().collect(), expected.lines().collect());
    assert_eq!(cli.len(), lib.len(), "{printed}");
    let last = lib.len() - 1;
    assert_eq!(cli[..last], lib[..last]);
    assert!(
        cli[last].starts_with(&format!("{}: ", images.display())),
        "{printed}"
    );
}
