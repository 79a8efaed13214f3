//! The PyTorch file reader on files written by PyTorch itself (`scripts/fid/make_torch_fixtures.py`,
//! Debian python3-torch 1.13): TorchScript, zip and legacy `torch.save`, including a
//! non-contiguous view and an `nn.Parameter`; damaged files are refused with the reason.

use ebdiff_eval::inception::import_torch_weights;
use ebdiff_eval::inception::torch_file::read_torch_file;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch")
        .join(name)
}

const A: [f32; 6] = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5];
const A_T: [f32; 6] = [0.5, 3.5, 1.5, 4.5, 2.5, 5.5];

#[test]
fn state_dicts_in_zip_and_legacy_format_read_alike() {
    for file in ["state_dict_zip.pth", "state_dict_legacy.pth"] {
        let s = read_torch_file(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let a = &s.tensors["layer.a"];
        assert_eq!(
            (a.shape.as_slice(), a.data.as_slice()),
            (&[2, 3][..], &A[..]),
            "{file}"
        );
        let b = &s.tensors["layer.b"];
        assert_eq!(
            (b.shape.as_slice(), b.data.as_slice()),
            (&[3, 2][..], &A_T[..]),
            "{file}"
        );
        assert_eq!(s.tensors["c"].data, vec![-1.25], "{file}");
        assert_eq!(s.tensors.len(), 3);
    }
}

#[test]
fn torchscript_module_attributes_and_parameters_are_found_by_path() {
    let s = read_torch_file(&fixture("script_module.pt")).unwrap();
    assert_eq!(s.tensors["inner.a"].data, A.to_vec());
    assert_eq!(s.tensors["c"].data, vec![-1.25]);
    assert_eq!(s.ints["inner.stride"], vec![2]);
    assert_eq!(s.ints["inner.padding"], vec![0, 3]);
}

#[test]
fn damaged_or_foreign_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("script_module.pt")).unwrap();
    let truncated = dir.path().join("truncated.pt");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_torch_file(&truncated).unwrap_err();
    assert!(err.contains("zip"), "{err}");

    let legacy = std::fs::read(fixture("state_dict_legacy.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &legacy[..legacy.len() - 7]).unwrap();
    let err = read_torch_file(&cut).unwrap_err();
    assert!(err.contains("file ends inside storage"), "{err}");

    let png = dir.path().join("image.pt");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n rest").unwrap();
    let err = read_torch_file(&png).unwrap_err();
    assert!(err.contains("neither a zip archive"), "{err}");

    // A real PyTorch file that is not the FID network: named as such, with what was found.
    let err = import_torch_weights(&fixture("state_dict_zip.pth"), &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("not an FID Inception network") && err.contains("layer.a"),
        "{err}"
    );
}
