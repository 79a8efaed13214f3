//! CIFAR-10 from its binary release (`cifar-10-batches-bin/`) or its python release
//! (`cifar-10-batches-py/`): 50 000 training images in five batches and 10 000 test images, 3×32×32.
//!
//! A binary batch is a sequence of 3073-byte records: the label byte, then 1024 red, 1024 green
//! and 1024 blue bytes (CHW, rows top to bottom). A python batch is a pickled dict whose `data` is
//! a 10000×3072 uint8 array of the same rows and whose `labels` is a list of ints.

use super::dataset::{ImageDataset, Split};
use super::error::{DataError, read_file};
use crate::io::pickle::{self, Value};
use std::path::Path;

pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
/// Binary release, the one `ensure_cifar10` downloads.
pub const CIFAR10_BINARY_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// MD5 of `cifar-10-binary.tar.gz` as commonly quoted (e.g. by torchvision); it could not be
/// checked here. The hard guarantee is the size check of every batch ([`SizeCheck::Strict`]).
pub const CIFAR10_BINARY_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;
const RECORD: usize = 1 + PIXELS;
const RECORDS_PER_BATCH: usize = 10_000;
const BIN_DIR: &str = "cifar-10-batches-bin";
const PY_DIR: &str = "cifar-10-batches-py";

/// How strictly batch sizes are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeCheck {
    /// Every batch holds exactly 10 000 images (30 730 000 bytes in the binary release), as
    /// published: catches truncated and partially extracted files.
    Strict,
    /// Any positive number of whole records, for small hand-made batches.
    Relaxed,
}

/// CIFAR-10 from `root/cifar-10-batches-bin` or else `root/cifar-10-batches-py`.
pub fn load_cifar10(
    root: &Path,
    split: Split,
    check: SizeCheck,
) -> Result<ImageDataset, DataError> {
    let (bin, py) = (root.join(BIN_DIR), root.join(PY_DIR));
    let (dir, read_batch): (_, fn(&Path, SizeCheck) -> _) = if bin.is_dir() {
        (bin, read_binary_batch)
    } else if py.is_dir() {
        (py, read_python_batch)
    } else {
        return Err(DataError::Missing {
            path: bin,
            fix: format!(
                "neither it nor {} exists: run `cargo xtask fetch cifar10` (downloads \
                 {CIFAR10_BINARY_URL}) or download that archive by hand and extract it into {}",
                py.display(),
                root.display()
            ),
        });
    };
    let ext = if dir.ends_with(BIN_DIR) { ".bin" } else { "" };
    let names: Vec<String> = match split {
        Split::Train => (1..=5).map(|b| format!("data_batch_{b}{ext}")).collect(),
        Split::Test => vec![format!("test_batch{ext}")],
    };
    let mut dataset = ImageDataset {
        images: Vec::new(),
        labels: Vec::new(),
        num_classes: CIFAR10_CLASSES.len(),
        channels: 3,
        height: SIDE,
        width: SIDE,
        objects: None,
    };
    for name in names {
        let (images, labels) = read_batch(&dir.join(name), check)?;
        dataset.images.extend_from_slice(&images);
        dataset.labels.extend_from_slice(&labels);
    }
    dataset.validate(&dir.display().to_string())?;
    Ok(dataset)
}

fn missing_batch_fix(path: &Path) -> String {
    let root = path
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    format!(
        "the CIFAR-10 folder is incomplete: extract the whole archive again into {}",
        root.display()
    )
}

fn check_label(path: &Path, index: usize, label: i64) -> Result<u32, DataError> {
    if (0..CIFAR10_CLASSES.len() as i64).contains(&label) {
        Ok(label as u32)
    } else {
        Err(DataError::bad_format(
            path,
            "labels in 0..10",
            format!("label {label} for image {index}"),
        ))
    }
}

/// `(pixels, labels)` of one binary batch.
fn read_binary_batch(path: &Path, check: SizeCheck) -> Result<(Vec<u8>, Vec<u32>), DataError> {
    let bytes = read_file(path, &missing_batch_fix(path))?;
    let full = RECORDS_PER_BATCH * RECORD;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(DataError::bad_format(
            path,
            format!("a positive multiple of {RECORD} bytes (records of 1 label + {PIXELS} pixels)"),
            format!("{} bytes", bytes.len()),
        ));
    }
    if check == SizeCheck::Strict && bytes.len() != full {
        return Err(DataError::bad_format(
            path,
            format!(
                "{full} bytes ({RECORDS_PER_BATCH} records; the file is truncated or not the official release)"
            ),
            format!("{} bytes", bytes.len()),
        ));
    }
    let mut pixels = Vec::with_capacity(bytes.len() / RECORD * PIXELS);
    let mut labels = Vec::with_capacity(bytes.len() / RECORD);
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        labels.push(check_label(path, i, record[0] as i64)?);
        pixels.extend_from_slice(&record[1..]);
    }
    Ok((pixels, labels))
}

/// `(pixels, labels)` of one python batch.
fn read_python_batch(path: &Path, check: SizeCheck) -> Result<(Vec<u8>, Vec<u32>), DataError> {
    let bytes = read_file(path, &missing_batch_fix(path))?;
    let bad = |found: String| {
        DataError::bad_format(
            path,
            "a pickled dict with `data` (uint8 array N×3072) and `labels` (list of N ints)",
            found,
        )
    };
    let dict = pickle::parse(&bytes).map_err(bad)?;
    let (Some(data), Some(labels)) = (dict.get("data"), dict.get("labels")) else {
        return Err(bad(dict.kind()));
    };
    let (Value::Array { shape, dtype, data }, Value::List(labels)) = (data, labels) else {
        return Err(bad(format!(
            "data: {}, labels: {}",
            data.kind(),
            labels.kind()
        )));
    };
    let n = labels.len();
    if !matches!(dtype.as_str(), "u1" | "|u1") || shape != &[n, PIXELS] || data.len() != n * PIXELS
    {
        return Err(bad(format!(
            "data: a {dtype} array of shape {shape:?}, labels: a list of {n}"
        )));
    }
    if n == 0 || (check == SizeCheck::Strict && n != RECORDS_PER_BATCH) {
        return Err(DataError::bad_format(
            path,
            format!("{RECORDS_PER_BATCH} images (the official release)"),
            format!("{n} images"),
        ));
    }
    let labels = labels
        .iter()
        .enumerate()
        .map(|(i, l)| match l {
            Value::Int(l) => check_label(path, i, *l),
            other => Err(bad(format!("label {i}: {}", other.kind()))),
        })
        .collect::<Result<Vec<u32>, _>>()?;
    Ok((data.clone(), labels))
}

/// Test support: fake batches whose pixels and labels follow [`fake_pixel`] and [`fake_label`].
#[cfg(test)]
pub(crate) mod fake {
    use super::*;

    /// Batch number of a file: 1..=5 for the training batches, 6 for the test batch.
    pub(crate) fn fake_pixel(batch: usize, record: usize, k: usize) -> u8 {
        ((31 * record + 7 * k + 13 * batch) % 256) as u8
    }

    pub(crate) fn fake_label(batch: usize, record: usize) -> u32 {
        ((batch + 3 * record) % 10) as u32
    }

    /// Writes `dir/cifar-10-batches-bin/` with `records` records per batch and a
    /// `batches.meta.txt`, like the binary release.
    pub(crate) fn write_binary_release(dir: &Path, records: usize) {
        let bin = dir.join(BIN_DIR);
        std::fs::create_dir_all(&bin).unwrap();
        let files = (1..=5).map(|b| (b, format!("data_batch_{b}.bin")));
        for (batch, name) in files.chain([(6, "test_batch.bin".to_string())]) {
            let mut bytes = Vec::new();
            for r in 0..records {
                bytes.push(fake_label(batch, r) as u8);
                bytes.extend((0..PIXELS).map(|k| fake_pixel(batch, r, k)));
            }
            std::fs::write(bin.join(name), bytes).unwrap();
        }
        std::fs::write(bin.join("batches.meta.txt"), CIFAR10_CLASSES.join("\n")).unwrap();
    }

    /// Asserts that `d` is the fake `split` with `records` records per batch.
    pub(crate) fn assert_is_fake(d: &ImageDataset, split: Split, records: usize) {
        let batches: Vec<usize> = match split {
            Split::Train => (1..=5).collect(),
            Split::Test => vec![6],
        };
        assert_eq!(d.len(), batches.len() * records);
        assert_eq!((d.shape(), d.num_classes), ([3, 32, 32], 10));
        for (i, (batch, r)) in batches
            .iter()
            .flat_map(|&b| (0..records).map(move |r| (b, r)))
            .enumerate()
        {
            assert_eq!(d.labels[i], fake_label(batch, r), "label of image {i}");
            let expected: Vec<u8> = (0..PIXELS).map(|k| fake_pixel(batch, r, k)).collect();
            assert!(d.image(i) == expected.as_slice(), "pixels of image {i}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cifar10-py")
    }

    #[test]
    fn binary_release_loads_labels_and_chw_pixels() {
        let dir = tempfile::tempdir().unwrap();
        write_binary_release(dir.path(), 3);
        let train = load_cifar10(dir.path(), Split::Train, SizeCheck::Relaxed).unwrap();
        assert_is_fake(&train, Split::Train, 3);
        let test = load_cifar10(dir.path(), Split::Test, SizeCheck::Relaxed).unwrap();
        assert_is_fake(&test, Split::Test, 3);
    }

    #[test]
    fn strict_check_rejects_batches_that_are_not_10000_records() {
        let dir = tempfile::tempdir().unwrap();
        write_binary_release(dir.path(), 3);
        let err = load_cifar10(dir.path(), Split::Test, SizeCheck::Strict)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test_batch.bin") && err.contains("30730000 bytes"),
            "{err}"
        );
        assert!(err.contains("found 9219 bytes"), "{err}");
    }

    #[test]
    fn partial_records_and_bad_labels_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write_binary_release(dir.path(), 2);
        let path = dir.path().join(BIN_DIR).join("data_batch_4.bin");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        let err = load_cifar10(dir.path(), Split::Train, SizeCheck::Relaxed)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data_batch_4.bin") && err.contains("multiple of 3073"),
            "{err}"
        );

        bytes.push(0);
        bytes[RECORD] = 10;
        std::fs::write(&path, &bytes).unwrap();
        let err = load_cifar10(dir.path(), Split::Train, SizeCheck::Relaxed)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data_batch_4.bin") && err.contains("label 10 for image 1"),
            "{err}"
        );
    }

    #[test]
    fn missing_release_points_to_the_fetch_command_and_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_cifar10(dir.path(), Split::Train, SizeCheck::Strict)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cifar-10-batches-bin not found"), "{err}");
        assert!(err.contains("cifar-10-batches-py"), "{err}");
        assert!(
            err.contains("cargo xtask fetch cifar10") && err.contains(CIFAR10_BINARY_URL),
            "{err}"
        );
    }

    #[test]
    fn missing_batch_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write_binary_release(dir.path(), 1);
        std::fs::remove_file(dir.path().join(BIN_DIR).join("data_batch_2.bin")).unwrap();
        let err = load_cifar10(dir.path(), Split::Train, SizeCheck::Relaxed)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data_batch_2.bin not found") && err.contains("incomplete"),
            "{err}"
        );
    }

    /// The fixtures come from `tests/fixtures/cifar10-py/make_fixtures.py` with 2 records per
    /// batch and the pixel and label formulas of [`fake`].
    #[test]
    fn python_release_written_like_the_official_files_loads() {
        let root = fixtures().join("python2-layout");
        let train = load_cifar10(&root, Split::Train, SizeCheck::Relaxed).unwrap();
        assert_is_fake(&train, Split::Train, 2);
        let test = load_cifar10(&root, Split::Test, SizeCheck::Relaxed).unwrap();
        assert_is_fake(&test, Split::Test, 2);
        let err = load_cifar10(&root, Split::Test, SizeCheck::Strict)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test_batch") && err.contains("found 2 images"),
            "{err}"
        );
    }

    #[test]
    fn python3_pickles_of_protocol_2_and_4_load_alike() {
        for protocol in [2, 4] {
            let path = fixtures().join(format!("python3-protocol{protocol}/data_batch_1"));
            let (pixels, labels) = read_python_batch(&path, SizeCheck::Relaxed).unwrap();
            assert_eq!(
                labels,
                vec![fake_label(1, 0), fake_label(1, 1)],
                "protocol {protocol}"
            );
            let expected: Vec<u8> = (0..2)
                .flat_map(|r| (0..PIXELS).map(move |k| fake_pixel(1, r, k)))
                .collect();
            assert!(pixels == expected, "pixels of protocol {protocol}");
        }
    }

    #[test]
    fn corrupt_python_batch_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let py = dir.path().join(PY_DIR);
        std::fs::create_dir_all(&py).unwrap();
        let good = std::fs::read(fixtures().join("python3-protocol4/data_batch_1")).unwrap();
        std::fs::write(py.join("test_batch"), &good[..good.len() / 2]).unwrap();
        let err = load_cifar10(dir.path(), Split::Test, SizeCheck::Relaxed)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test_batch") && err.contains("pickled dict"),
            "{err}"
        );
    }
}
