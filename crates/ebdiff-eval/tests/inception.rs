//! The FID Inception network: the TF1 resize against PyTorch's `grid_sample` formulation, the
//! architecture against the published parameter count, the torchvision name map, and (ignored:
//! needs `cargo xtask fetch inception foolbox-cifar10`) the features of 20 real CIFAR-10 images
//! against the reference network run by PyTorch (`scripts/fid/inception_reference.py`).

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use ebdiff_data::io::npz::read_npz;
use ebdiff_eval::inception::network::{ConvSource, ConvSpec, FoldedConv};
use ebdiff_eval::inception::weights::torchvision_name;
use ebdiff_eval::inception::{InceptionV3, load_inception, resize_tf1_bilinear};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn to_vec(t: Tensor<4>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

#[test]
fn tf1_resize_matches_pytorch_affine_grid_sample() {
    // fid-helper's `nv_bilinear` (affine_grid + grid_sample, border) on a random 2×3×7×5 input.
    let arrays = read_npz(&fixture("tf1_bilinear_resize.npz")).unwrap();
    let device = Device::default();
    let input = &arrays["input"];
    let x = Tensor::<4>::from_data(
        TensorData::new(
            input.data.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            [2, 3, 7, 5],
        ),
        &device,
    );
    for (key, (h, w)) in [("up", (17, 13)), ("down", (3, 4))] {
        let got = to_vec(resize_tf1_bilinear(x.clone(), h, w));
        let want = &arrays[key].data;
        assert_eq!(got.len(), want.len());
        let gap = got
            .iter()
            .zip(want)
            .fold(0f64, |m, (g, w)| m.max((*g as f64 - w).abs()));
        // Values are in [0, 255]; float32 rounding of the sampling grid in PyTorch is ~1e-5.
        assert!(gap < 1e-3, "{key}: max |ours − torch| = {gap}");
    }
}

/// Records the layer specs the network asks for.
struct Recorder(Vec<ConvSpec>);

impl ConvSource for Recorder {
    fn conv(&mut self, s: &ConvSpec) -> Result<FoldedConv, String> {
        self.0.push(s.clone());
        Ok(FoldedConv {
            weight: vec![0.0; s.c_out * s.c_in * s.kernel[0] * s.kernel[1]],
            bias: vec![0.0; s.c_out],
        })
    }
}

fn layer_specs() -> Vec<ConvSpec> {
    let mut rec = Recorder(Vec::new());
    InceptionV3::build(&mut rec, &Device::default()).unwrap();
    rec.0
}

#[test]
fn architecture_has_the_fid_networks_94_convolutions_and_parameter_count() {
    let specs = layer_specs();
    assert_eq!(specs.len(), 94);
    // The TorchScript network stores weight + (beta, mean, var) per conv: 21,802,784 numbers
    // (evaluation.md §2, counted from default_1.pt).
    let stored: usize = specs
        .iter()
        .map(|s| s.c_out * s.c_in * s.kernel[0] * s.kernel[1] + 3 * s.c_out)
        .sum();
    assert_eq!(stored, 21_802_784);
    let names: BTreeSet<_> = specs.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names.len(), 94, "layer names are unique");
}

#[test]
fn torchvision_names_are_unique_and_match_pytorch_fid() {
    let specs = layer_specs();
    let mapped: Vec<String> = specs
        .iter()
        .map(|s| torchvision_name(&s.name).unwrap())
        .collect();
    let unique: BTreeSet<_> = mapped.iter().collect();
    assert_eq!(unique.len(), 94);
    for (ours, theirs) in [
        ("conv", "Conv2d_1a_3x3"),
        ("conv_4", "Conv2d_4a_3x3"),
        ("mixed.tower.conv_1", "Mixed_5b.branch5x5_2"),
        ("mixed_2.tower_2.conv", "Mixed_5d.branch_pool"),
        ("mixed_3.tower.conv_2", "Mixed_6a.branch3x3dbl_3"),
        ("mixed_4.tower_1.conv_4", "Mixed_6b.branch7x7dbl_5"),
        ("mixed_7.tower.conv_2", "Mixed_6e.branch7x7_3"),
        ("mixed_8.tower_1.conv_3", "Mixed_7a.branch7x7x3_4"),
        ("mixed_10.tower_1_mixed_conv_1", "Mixed_7c.branch3x3dbl_3b"),
    ] {
        assert_eq!(torchvision_name(ours).unwrap(), theirs);
    }
    assert!(torchvision_name("mixed_4.tower_3.conv").is_err());
}

/// Loads `datasets/foolbox-cifar10/<name>` as `[1, 3, 32, 32]` in [0, 255].
fn load_png(dir: &Path, name: &str, device: &Device) -> Tensor<4> {
    let img = image::open(dir.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask fetch foolbox-cifar10`", name))
        .to_rgb8();
    let (w, h) = img.dimensions();
    let mut chw = vec![0f32; 3 * (w * h) as usize];
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            chw[c * (w * h) as usize + (y * w + x) as usize] = p[c] as f32;
        }
    }
    Tensor::from_data(TensorData::new(chw, [1, 3, h as usize, w as usize]), device)
}

#[test]
#[ignore = "needs `cargo xtask fetch inception` and `cargo xtask fetch foolbox-cifar10`"]
fn features_of_20_cifar10_images_match_the_pytorch_reference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let device = Device::default();
    let (net, provenance) =
        load_inception(&root.join("inception"), &device).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        provenance.source_sha256,
        ebdiff_eval::inception::weights::TORCHSCRIPT_SHA256
    );
    let names = std::fs::read_to_string(fixture("inception_foolbox_cifar10_files.txt")).unwrap();
    let images: Vec<Tensor<4>> = names
        .lines()
        .map(|n| load_png(&root.join("foolbox-cifar10"), n, &device))
        .collect();
    let n = images.len();
    assert_eq!(n, 20);
    let mut got = Vec::new();
    // Two batches of 10: batching must not change the features.
    for chunk in images.chunks(10) {
        let f = net.features(Tensor::cat(chunk.to_vec(), 0));
        got.extend(f.into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
    }
    let want = &read_npz(&fixture("inception_foolbox_cifar10_features.npz")).unwrap()["features"];
    assert_eq!(want.shape, vec![20, 2048]);
    let mut worst = 0f64;
    for i in 0..n {
        let (g, w) = (
            &got[i * 2048..(i + 1) * 2048],
            &want.data[i * 2048..(i + 1) * 2048],
        );
        let diff: f64 = g
            .iter()
            .zip(w)
            .map(|(a, b)| (*a as f64 - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = w.iter().map(|b| b * b).sum::<f64>().sqrt();
        worst = worst.max(diff / norm);
    }
    let max_abs = got
        .iter()
        .zip(&want.data)
        .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
    println!("worst per-image relative error {worst:.3e}, max abs {max_abs:.3e}");
    assert!(worst <= 1e-3, "per-image relative error {worst}");
}

#[test]
fn converted_weights_round_trip_and_damage_is_detected() {
    use ebdiff_eval::inception::weights::{CONVERTED_FILE, WeightLayout, save_converted};
    let dir = tempfile::tempdir().unwrap();
    let device = Device::default();
    let err = load_inception(dir.path(), &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cargo xtask fetch inception"), "{err}");

    // A recognisable network: zero weights, and the biases of the last block's first branch
    // (`mixed_10.conv`, features 0..320) are 0.25.
    struct Marked;
    impl ConvSource for Marked {
        fn conv(&mut self, s: &ConvSpec) -> Result<FoldedConv, String> {
            let b = if s.name == "mixed_10.conv" { 0.25 } else { 0.0 };
            Ok(FoldedConv {
                weight: vec![0.0; s.c_out * s.c_in * s.kernel[0] * s.kernel[1]],
                bias: vec![b; s.c_out],
            })
        }
    }
    let net = InceptionV3::build(&mut Marked, &device).unwrap();
    save_converted(
        net,
        WeightLayout::Torchscript,
        "x.pt".into(),
        "ab".into(),
        dir.path(),
    )
    .unwrap();
    let (loaded, provenance) = load_inception(dir.path(), &device).unwrap();
    assert_eq!(provenance.source_sha256, "ab");
    let x = Tensor::<4>::zeros([1, 3, 8, 8], &device);
    let f: Vec<f32> = loaded
        .features(x)
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .unwrap();
    assert!(f[..320].iter().all(|v| *v == 0.25), "{:?}", &f[..4]);
    assert!(f[320..].iter().all(|v| *v == 0.0));

    let record = dir.path().join(CONVERTED_FILE);
    let mut bytes = std::fs::read(&record).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&record, bytes).unwrap();
    let err = load_inception(dir.path(), &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("sha256") && err.contains("damaged"), "{err}");
}

/// A folder converted by an older ebdiff holds a Burn `.bpk` record; loading it converts it to
/// safetensors once (same network, same source hash) and removes the record.
#[test]
fn a_legacy_bpk_conversion_is_migrated_to_safetensors() {
    use burn::module::Module;
    use ebdiff_eval::inception::weights::{
        CONVERTED_FILE, LEGACY_CONVERTED_FILE, PROVENANCE_FILE, WeightLayout, WeightsProvenance,
        sha256_file,
    };
    struct Marked;
    impl ConvSource for Marked {
        fn conv(&mut self, s: &ConvSpec) -> Result<FoldedConv, String> {
            let b = if s.name == "mixed_10.conv" { 0.5 } else { 0.0 };
            Ok(FoldedConv {
                weight: vec![0.0; s.c_out * s.c_in * s.kernel[0] * s.kernel[1]],
                bias: vec![b; s.c_out],
            })
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let device = Device::default();
    let legacy = dir.path().join(LEGACY_CONVERTED_FILE);
    InceptionV3::build(&mut Marked, &device)
        .unwrap()
        .save_file(&legacy)
        .unwrap();
    let note = WeightsProvenance {
        network: "inception-2015-12-05 pool3 (FID)".into(),
        layout: WeightLayout::Torchscript,
        source_file: "x.pt".into(),
        source_sha256: "cd".into(),
        converted_sha256: sha256_file(&legacy).unwrap(),
    };
    std::fs::write(
        dir.path().join(PROVENANCE_FILE),
        serde_json::to_string(&note).unwrap(),
    )
    .unwrap();
    let (net, provenance) = load_inception(dir.path(), &device).unwrap();
    assert!(dir.path().join(CONVERTED_FILE).is_file() && !legacy.exists());
    assert_eq!(provenance.source_sha256, "cd");
    let f = to_vec(
        net.features(Tensor::<4>::zeros([1, 3, 8, 8], &device))
            .reshape([1, 2048, 1, 1]),
    );
    assert!(f[..320].iter().all(|v| *v == 0.5) && f[320..].iter().all(|v| *v == 0.0));
    // Loaded again: straight from the safetensors file.
    assert!(load_inception(dir.path(), &device).is_ok());
}
