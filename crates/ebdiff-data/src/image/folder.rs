//! A folder of images sorted into one subfolder per class: `root/<class>/*.png|jpg|jpeg`.
//! Classes are numbered in the order of their names; images are resized to one size.

use super::dataset::ImageDataset;
use super::error::DataError;
use std::path::{Path, PathBuf};

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Loads every image under `root/<class>/`, resized (triangle filter) to `height × width` with
/// `channels` (1 or 3) channels. Label `k` is the `k`-th class folder by name; images within a
/// class are in file-name order. Hidden entries (names starting with `.`) are skipped.
pub fn load_image_folder(
    root: &Path,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<ImageDataset, DataError> {
    if !matches!(channels, 1 | 3) || height == 0 || width == 0 {
        return Err(DataError::invalid(
            "model.data_shape",
            format!(
                "an image folder gives [1 or 3, H ≥ 1, W ≥ 1] images, not [{channels}, {height}, {width}]"
            ),
        ));
    }
    let classes = sorted_entries(root, |p| p.is_dir())?;
    if classes.is_empty() {
        return Err(DataError::bad_format(
            root,
            "one subfolder per class holding .png/.jpg/.jpeg images",
            "no subfolders",
        ));
    }
    let mut dataset = ImageDataset {
        images: Vec::new(),
        labels: Vec::new(),
        num_classes: classes.len(),
        channels: 3,
        height,
        width,
        objects: None,
    };
    for (label, class) in classes.iter().enumerate() {
        let files = sorted_entries(class, |p| p.is_file() && has_image_extension(p))?;
        if files.is_empty() {
            return Err(DataError::bad_format(
                class,
                "at least one .png/.jpg/.jpeg image (every subfolder is a class)",
                "none",
            ));
        }
        for file in files {
            let rgb = ::image::open(&file)
                .map_err(|e| {
                    DataError::bad_format(&file, "a readable PNG or JPEG image", e.to_string())
                })?
                .to_rgb8();
            let resized = ::image::imageops::resize(
                &rgb,
                width as u32,
                height as u32,
                ::image::imageops::FilterType::Triangle,
            );
            // HWC interleaved → CHW planes.
            let plane = height * width;
            let start = dataset.images.len();
            dataset.images.resize(start + 3 * plane, 0);
            for (k, px) in resized.pixels().enumerate() {
                for c in 0..3 {
                    dataset.images[start + c * plane + k] = px.0[c];
                }
            }
            dataset.labels.push(label as u32);
        }
    }
    // Grey images were expanded to RGB on decoding; one luminance formula for every source.
    dataset.to_channels(channels)
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Non-hidden entries of `dir` that satisfy `keep`, sorted by name.
fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing {
                path: dir.to_path_buf(),
                fix: "create it with one subfolder of .png/.jpg/.jpeg images per class, or \
                      point `root` of the image-folder data source at such a folder"
                    .into(),
            }
        } else {
            DataError::io(dir, e)
        }
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && keep(&path) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::image::{Rgb, RgbImage};

    fn write_png(path: &Path, width: u32, height: u32, colour: [u8; 3]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        RgbImage::from_pixel(width, height, Rgb(colour))
            .save(path)
            .unwrap();
    }

    #[test]
    fn classes_are_sorted_folders_and_images_are_resized() {
        let root = tempfile::tempdir().unwrap();
        // Written out of order: labels must follow folder names, images their file names.
        write_png(&root.path().join("zebra/b.png"), 6, 4, [0, 0, 200]);
        write_png(&root.path().join("zebra/a.PNG"), 3, 9, [0, 100, 0]);
        write_png(&root.path().join("apple/x.png"), 8, 8, [255, 0, 0]);
        RgbImage::from_pixel(5, 5, Rgb([10, 200, 30]))
            .save(root.path().join("apple/y.jpg"))
            .unwrap();
        std::fs::write(root.path().join("apple/notes.txt"), "not an image").unwrap();
        std::fs::create_dir_all(root.path().join(".cache/junk")).unwrap();

        let d = load_image_folder(root.path(), 3, 4, 5).unwrap();
        assert_eq!((d.len(), d.num_classes, d.shape()), (4, 2, [3, 4, 5]));
        assert_eq!(d.labels, vec![0, 0, 1, 1]);
        let plane = 20;
        // A constant image stays constant under resizing; planes are R, G, B.
        assert_eq!(d.image(0)[..plane], [255; 20]);
        assert_eq!(d.image(0)[plane..], [0; 40]);
        // JPEG is lossy: a flat colour comes back within a few levels.
        for (c, v) in [10u8, 200, 30].into_iter().enumerate() {
            let channel = &d.image(1)[c * plane..(c + 1) * plane];
            assert!(
                channel.iter().all(|p| p.abs_diff(v) <= 3),
                "{c}: {channel:?}"
            );
        }
        assert_eq!(d.image(2)[plane..2 * plane], [100; 20]);
        assert_eq!(d.image(3)[2 * plane..], [200; 20]);

        let grey = load_image_folder(root.path(), 1, 2, 2).unwrap();
        assert_eq!(grey.shape(), [1, 2, 2]);
        assert_eq!(grey.image(0), &[76; 4]); // 0.299 · 255
    }

    #[test]
    fn empty_class_folder_is_named() {
        let root = tempfile::tempdir().unwrap();
        write_png(&root.path().join("cats/1.png"), 2, 2, [1, 2, 3]);
        std::fs::create_dir_all(root.path().join("dogs")).unwrap();
        let err = load_image_folder(root.path(), 3, 2, 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dogs") && err.contains("at least one"),
            "{err}"
        );
    }

    #[test]
    fn root_without_classes_and_missing_root_are_errors() {
        let root = tempfile::tempdir().unwrap();
        let err = load_image_folder(root.path(), 3, 2, 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no subfolders"), "{err}");
        let missing = root.path().join("nowhere");
        let err = load_image_folder(&missing, 3, 2, 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nowhere not found"), "{err}");
    }

    #[test]
    fn unreadable_image_is_named() {
        let root = tempfile::tempdir().unwrap();
        write_png(&root.path().join("a/good.png"), 2, 2, [1, 2, 3]);
        std::fs::write(root.path().join("a/bad.jpg"), b"not a jpeg").unwrap();
        let err = load_image_folder(root.path(), 3, 2, 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.jpg") && err.contains("readable PNG or JPEG"),
            "{err}"
        );
    }
}
