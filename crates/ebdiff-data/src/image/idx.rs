//! MNIST and Fashion-MNIST in their IDX files, raw or gzipped.
//!
//! An IDX file is a big-endian header — magic (2051 for u8 images, 2049 for u8 labels), count,
//! then rows and columns for images — followed by the bytes. Each file may sit as `name` or
//! `name.gz`; gzip is recognised by its magic bytes 0x1f 0x8b, so a gzipped file that lost its
//! suffix still loads.

use super::dataset::{ImageDataset, Split};
use super::error::{DataError, read_file};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;
const NUM_CLASSES: usize = 10;

/// MNIST from `dir`: `train-images-idx3-ubyte` + `train-labels-idx1-ubyte` (60 000) or
/// `t10k-images-idx3-ubyte` + `t10k-labels-idx1-ubyte` (10 000), each raw or `.gz`.
pub fn load_mnist(dir: &Path, split: Split) -> Result<ImageDataset, DataError> {
    load_idx_pair(dir, split, "mnist", "MNIST")
}

/// Fashion-MNIST from `dir`: the same four file names and format as MNIST.
pub fn load_fashion_mnist(dir: &Path, split: Split) -> Result<ImageDataset, DataError> {
    load_idx_pair(dir, split, "fashion-mnist", "Fashion-MNIST")
}

fn load_idx_pair(
    dir: &Path,
    split: Split,
    fetch_name: &str,
    display_name: &str,
) -> Result<ImageDataset, DataError> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    // Fashion-MNIST ships in a Debian package rather than through `cargo xtask fetch`.
    let how = if fetch_name == "fashion-mnist" {
        "on Debian/Ubuntu run `apt-get download dataset-fashion-mnist && dpkg -x \
         dataset-fashion-mnist_*.deb /tmp/fm` and copy /tmp/fm/usr/share/datasets/fashion-mnist/*"
            .to_string()
    } else {
        format!("run `cargo xtask fetch {fetch_name}`")
    };
    let fix = format!(
        "{how}, or put the four {display_name} IDX files \
         (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, \
         t10k-labels-idx1-ubyte; raw or .gz) in {}",
        dir.display()
    );
    let (images_path, images) =
        read_maybe_gz(&dir.join(format!("{prefix}-images-idx3-ubyte")), &fix)?;
    let (labels_path, labels) =
        read_maybe_gz(&dir.join(format!("{prefix}-labels-idx1-ubyte")), &fix)?;
    let (n, height, width, pixels) = parse_images(&images_path, &images)?;
    let labels = parse_labels(&labels_path, &labels)?;
    if labels.len() != n {
        return Err(DataError::bad_format(
            &labels_path,
            format!("{n} labels, one per image of {}", images_path.display()),
            format!("{} labels", labels.len()),
        ));
    }
    let dataset = ImageDataset {
        images: pixels,
        labels,
        num_classes: NUM_CLASSES,
        channels: 1,
        height,
        width,
        objects: None,
    };
    dataset.validate(&labels_path.display().to_string())?;
    Ok(dataset)
}

/// Reads `path`, or `path.gz` when `path` is absent, gunzipping when the content starts with the
/// gzip magic. Returns the path actually read, for error messages.
fn read_maybe_gz(path: &Path, fix: &str) -> Result<(PathBuf, Vec<u8>), DataError> {
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let chosen = if !path.exists() && gz.exists() {
        gz
    } else {
        path.to_path_buf()
    };
    let bytes = read_file(&chosen, fix)?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut raw)
            .map_err(|e| DataError::bad_format(&chosen, "a complete gzip stream", e.to_string()))?;
        Ok((chosen, raw))
    } else {
        Ok((chosen, bytes))
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn check_header(path: &Path, bytes: &[u8], magic: u32, header_len: usize) -> Result<(), DataError> {
    let what = if magic == IMAGES_MAGIC {
        "images"
    } else {
        "labels"
    };
    if bytes.len() < header_len {
        return Err(DataError::bad_format(
            path,
            format!("an IDX {what} header of {header_len} bytes"),
            format!("a file of {} bytes", bytes.len()),
        ));
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(DataError::bad_format(
            path,
            format!("IDX {what} magic number {magic}"),
            format!("{found}"),
        ));
    }
    Ok(())
}

/// `(count, rows, cols, pixels)` of an IDX3 u8 image file.
fn parse_images(path: &Path, bytes: &[u8]) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    check_header(path, bytes, IMAGES_MAGIC, 16)?;
    let [n, h, w] = [4, 8, 12].map(|at| be_u32(bytes, at) as usize);
    let expected = 16 + n * h * w;
    if bytes.len() != expected {
        return Err(DataError::bad_format(
            path,
            format!("16 + {n}·{h}·{w} = {expected} bytes for {n} images of {h}×{w}"),
            format!("{} bytes", bytes.len()),
        ));
    }
    Ok((n, h, w, bytes[16..].to_vec()))
}

fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u32>, DataError> {
    check_header(path, bytes, LABELS_MAGIC, 8)?;
    let n = be_u32(bytes, 4) as usize;
    if bytes.len() != 8 + n {
        return Err(DataError::bad_format(
            path,
            format!("8 + {n} bytes for {n} labels"),
            format!("{} bytes", bytes.len()),
        ));
    }
    Ok(bytes[8..].iter().map(|&l| l as u32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn images_file(n: usize, h: usize, w: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for v in [IMAGES_MAGIC, n as u32, h as u32, w as u32] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        bytes.extend((0..n * h * w).map(|k| (k * 7 % 256) as u8));
        bytes
    }

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut bytes = LABELS_MAGIC.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        bytes.extend_from_slice(labels);
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn loads_raw_and_gzipped_files_alike() {
        let raw = tempfile::tempdir().unwrap();
        std::fs::write(
            raw.path().join("t10k-images-idx3-ubyte"),
            images_file(3, 4, 5),
        )
        .unwrap();
        std::fs::write(
            raw.path().join("t10k-labels-idx1-ubyte"),
            labels_file(&[7, 2, 1]),
        )
        .unwrap();
        let gz = tempfile::tempdir().unwrap();
        std::fs::write(
            gz.path().join("t10k-images-idx3-ubyte.gz"),
            gzip(&images_file(3, 4, 5)),
        )
        .unwrap();
        // A gzipped file without the .gz suffix is recognised by its magic bytes.
        std::fs::write(
            gz.path().join("t10k-labels-idx1-ubyte"),
            gzip(&labels_file(&[7, 2, 1])),
        )
        .unwrap();

        let a = load_mnist(raw.path(), Split::Test).unwrap();
        let b = load_fashion_mnist(gz.path(), Split::Test).unwrap();
        assert_eq!(a, b);
        assert_eq!((a.len(), a.shape(), a.num_classes), (3, [1, 4, 5], 10));
        assert_eq!(a.labels, vec![7, 2, 1]);
        assert_eq!(a.image(1), &images_file(3, 4, 5)[16 + 20..16 + 40]);
    }

    #[test]
    fn missing_files_name_the_path_and_the_fetch_command() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_mnist(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("train-images-idx3-ubyte not found"), "{err}");
        assert!(err.contains("cargo xtask fetch mnist"), "{err}");
    }

    #[test]
    fn bad_magic_names_the_file_and_both_numbers() {
        let dir = tempfile::tempdir().unwrap();
        // Images and labels swapped: the images file has the labels magic.
        std::fs::write(
            dir.path().join("train-images-idx3-ubyte"),
            labels_file(&[1; 16]),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            labels_file(&[1]),
        )
        .unwrap();
        let err = load_mnist(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("train-images-idx3-ubyte"), "{err}");
        assert!(err.contains("2051") && err.contains("found 2049"), "{err}");
    }

    #[test]
    fn truncated_images_name_the_file_and_the_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let mut images = images_file(3, 4, 5);
        images.truncate(images.len() - 1);
        std::fs::write(dir.path().join("train-images-idx3-ubyte.gz"), gzip(&images)).unwrap();
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            labels_file(&[1, 2, 3]),
        )
        .unwrap();
        let err = load_mnist(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");
        assert!(
            err.contains("76 bytes") && err.contains("found 75 bytes"),
            "{err}"
        );
    }

    #[test]
    fn truncated_gzip_stream_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let gz = gzip(&images_file(3, 4, 5));
        std::fs::write(
            dir.path().join("train-images-idx3-ubyte.gz"),
            &gz[..gz.len() / 2],
        )
        .unwrap();
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            labels_file(&[1, 2, 3]),
        )
        .unwrap();
        let err = load_mnist(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train-images-idx3-ubyte.gz") && err.contains("gzip"),
            "{err}"
        );
    }

    #[test]
    fn label_count_must_match_image_count() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("train-images-idx3-ubyte"),
            images_file(3, 2, 2),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            labels_file(&[1, 2]),
        )
        .unwrap();
        let err = load_mnist(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train-labels-idx1-ubyte") && err.contains("3 labels"),
            "{err}"
        );
    }

    /// Directory of the real files: `$EBDIFF_MNIST_DIR`, else the workspace's `datasets/mnist`.
    fn real_dir(var: &str, default: &str) -> PathBuf {
        std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(default)
        })
    }

    #[test]
    #[ignore = "needs the real MNIST files: EBDIFF_MNIST_DIR or datasets/mnist"]
    fn real_mnist_has_the_published_counts_and_first_labels() {
        let dir = real_dir("EBDIFF_MNIST_DIR", "datasets/mnist");
        let train = load_mnist(&dir, Split::Train).unwrap();
        let test = load_mnist(&dir, Split::Test).unwrap();
        assert_eq!((train.len(), test.len()), (60_000, 10_000));
        assert_eq!(train.shape(), [1, 28, 28]);
        assert_eq!(train.labels[..5], [5, 0, 4, 1, 9]);
        assert_eq!(test.labels[..5], [7, 2, 1, 0, 4]);
    }

    #[test]
    #[ignore = "needs the real Fashion-MNIST files: EBDIFF_FASHION_MNIST_DIR or datasets/fashion-mnist"]
    fn real_fashion_mnist_has_the_published_counts_and_first_labels() {
        let dir = real_dir("EBDIFF_FASHION_MNIST_DIR", "datasets/fashion-mnist");
        let train = load_fashion_mnist(&dir, Split::Train).unwrap();
        let test = load_fashion_mnist(&dir, Split::Test).unwrap();
        assert_eq!((train.len(), test.len()), (60_000, 10_000));
        assert_eq!(train.labels[..6], [9, 0, 0, 3, 0, 2]);
        assert_eq!(test.labels[..5], [9, 2, 1, 1, 6]);
    }
}
