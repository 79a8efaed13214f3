//! An in-memory image dataset (u8 pixels, CHW) and the shape conversions that bring it to the
//! model's data shape: centred zero padding, bilinear resizing and channel conversion.

use super::error::DataError;
use ::image::{GrayImage, imageops::FilterType};
use serde::{Deserialize, Serialize};
use std::ops::{Bound, RangeBounds};

/// Which half of a dataset to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    #[default]
    Train,
    Test,
}

/// `N` images of `channels × height × width` u8 pixels, each with a class label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDataset {
    /// `N × C × H × W` pixels, image after image, each in CHW order.
    pub images: Vec<u8>,
    /// Class of each image, in `0..num_classes`.
    pub labels: Vec<u32>,
    pub num_classes: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Shapes dataset only: every label present in image `i` (its occupied grid cells);
    /// `labels[i]` is one of them.
    pub objects: Option<Vec<Vec<u32>>>,
}

impl ImageDataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[C, H, W]` of one image.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// Pixels of one image: `C·H·W` bytes.
    pub fn pixels_per_image(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The CHW pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.pixels_per_image();
        &self.images[i * n..(i + 1) * n]
    }

    /// Checks that the buffers agree with the declared shape and classes; `name` (the dataset or
    /// file) is put in the error.
    pub fn validate(&self, name: &str) -> Result<(), DataError> {
        let fail = |message: String| Err(DataError::invalid(name, message));
        if self.channels == 0 || self.height == 0 || self.width == 0 {
            return fail(format!("empty image shape {:?}", self.shape()));
        }
        if self.images.len() != self.len() * self.pixels_per_image() {
            return fail(format!(
                "{} pixel bytes for {} labels of shape {:?} (expected {})",
                self.images.len(),
                self.len(),
                self.shape(),
                self.len() * self.pixels_per_image()
            ));
        }
        if let Some((i, &l)) = self
            .labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= self.num_classes)
        {
            return fail(format!(
                "label {l} of image {i} is not below num_classes = {}",
                self.num_classes
            ));
        }
        if let Some(objects) = &self.objects {
            if objects.len() != self.len() {
                return fail(format!(
                    "{} object lists for {} images",
                    objects.len(),
                    self.len()
                ));
            }
            for (i, (objs, &label)) in objects.iter().zip(&self.labels).enumerate() {
                if !objs.contains(&label) || objs.iter().any(|&o| o as usize >= self.num_classes) {
                    return fail(format!(
                        "image {i}: objects {objs:?} must contain its label {label} and lie \
                         below num_classes = {}",
                        self.num_classes
                    ));
                }
            }
        }
        Ok(())
    }

    /// A copy of the images in `range` (e.g. `..n` for the first `n`).
    pub fn subset(&self, range: impl RangeBounds<usize>) -> Result<Self, DataError> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e + 1,
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.len(),
        };
        if start > end || end > self.len() {
            return Err(DataError::invalid(
                "subset",
                format!(
                    "asked for images {start}..{end} of a dataset of {} images",
                    self.len()
                ),
            ));
        }
        let n = self.pixels_per_image();
        Ok(Self {
            images: self.images[start * n..end * n].to_vec(),
            labels: self.labels[start..end].to_vec(),
            objects: self.objects.as_ref().map(|o| o[start..end].to_vec()),
            ..*self
        })
    }

    /// Zero-pads every image, centred, to `height × width` (MNIST 28×28 → 32×32 puts 2 rows and
    /// columns of black on each side). Odd margins put the extra pixel at the bottom/right.
    pub fn pad_to(self, height: usize, width: usize) -> Result<Self, DataError> {
        if height < self.height || width < self.width {
            return Err(DataError::invalid(
                "model.data_shape",
                format!(
                    "cannot pad {}×{} images to the smaller {height}×{width}: set the model's \
                     data_shape to at least [{}, {}, {}], or use a resizing source \
                     (kind = \"image-folder\")",
                    self.height, self.width, self.channels, self.height, self.width
                ),
            ));
        }
        if (height, width) == (self.height, self.width) {
            return Ok(self);
        }
        let (top, left) = ((height - self.height) / 2, (width - self.width) / 2);
        let mut images = vec![0u8; self.len() * self.channels * height * width];
        for (src, dst) in self
            .images
            .chunks_exact(self.width)
            .zip(0..self.len() * self.channels * self.height)
        {
            // Row `dst` of the source is row `y` of plane `plane`.
            let (plane, y) = (dst / self.height, dst % self.height);
            let at = (plane * height + top + y) * width + left;
            images[at..at + self.width].copy_from_slice(src);
        }
        Ok(Self {
            images,
            height,
            width,
            ..self
        })
    }

    /// Resizes every image to `height × width` with the `image` crate's triangle filter: bilinear
    /// when enlarging, and widened to cover every source pixel when shrinking, so that
    /// downscaling does not alias.
    pub fn resize_to(self, height: usize, width: usize) -> Self {
        if (height, width) == (self.height, self.width) {
            return self;
        }
        let plane = self.height * self.width;
        let mut images = Vec::with_capacity(self.len() * self.channels * height * width);
        for channel in self.images.chunks_exact(plane) {
            let src = GrayImage::from_raw(self.width as u32, self.height as u32, channel.to_vec())
                .expect("a plane has height·width bytes");
            let dst =
                ::image::imageops::resize(&src, width as u32, height as u32, FilterType::Triangle);
            images.extend_from_slice(dst.as_raw());
        }
        Self {
            images,
            height,
            width,
            ..self
        }
    }

    /// Converts to `channels` channels: 1 → 3 replicates the grey plane, 3 → 1 takes the ITU-R
    /// 601-2 luminance 0.299 R + 0.587 G + 0.114 B (the convention of PIL and torchvision).
    pub fn to_channels(self, channels: usize) -> Result<Self, DataError> {
        let plane = self.height * self.width;
        let images = match (self.channels, channels) {
            (from, to) if from == to => return Ok(self),
            (1, 3) => self
                .images
                .chunks_exact(plane)
                .flat_map(|grey| grey.iter().chain(grey).chain(grey).copied())
                .collect(),
            (3, 1) => self
                .images
                .chunks_exact(3 * plane)
                .flat_map(|rgb| {
                    let (r, gb) = rgb.split_at(plane);
                    let (g, b) = gb.split_at(plane);
                    (0..plane).map(|k| luminance(r[k], g[k], b[k]))
                })
                .collect(),
            (from, to) => {
                return Err(DataError::invalid(
                    "model.data_shape",
                    format!(
                        "cannot convert {from}-channel images to {to} channels (only 1 ↔ 3): set \
                         the model's data_shape to [{from}, {}, {}] or [3, ...]",
                        self.height, self.width
                    ),
                ));
            }
        };
        Ok(Self {
            images,
            channels,
            ..self
        })
    }
}

/// ITU-R 601-2 luminance, rounded.
pub(crate) fn luminance(r: u8, g: u8, b: u8) -> u8 {
    (0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32)
        .round()
        .clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(channels: usize, height: usize, width: usize, images: Vec<u8>) -> ImageDataset {
        let n = images.len() / (channels * height * width);
        ImageDataset {
            images,
            labels: (0..n as u32).collect(),
            num_classes: n.max(1),
            channels,
            height,
            width,
            objects: None,
        }
    }

    #[test]
    fn image_returns_the_chw_bytes_of_one_image() {
        let d = dataset(2, 1, 2, (0..12).collect());
        assert_eq!(d.len(), 3);
        assert_eq!(d.image(1), &[4, 5, 6, 7]);
    }

    #[test]
    fn subset_takes_a_range_or_a_prefix() {
        let d = dataset(1, 1, 2, (0..10).collect());
        let first = d.subset(..2).unwrap();
        assert_eq!((first.images, first.labels), (vec![0, 1, 2, 3], vec![0, 1]));
        let mid = d.subset(3..5).unwrap();
        assert_eq!((mid.images, mid.labels), (vec![6, 7, 8, 9], vec![3, 4]));
        let err = d.subset(..6).unwrap_err().to_string();
        assert!(err.contains("0..6") && err.contains("5 images"), "{err}");
    }

    #[test]
    fn pad_centres_the_image_in_zeros() {
        // One 2-channel 2×2 image padded to 4×5: margins 1 top/bottom, 1 left, 2 right.
        let d = dataset(2, 2, 2, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        let p = d.pad_to(4, 5).unwrap();
        assert_eq!(p.shape(), [2, 4, 5]);
        #[rustfmt::skip]
        let expected = vec![
            0, 0, 0, 0, 0,  0, 1, 2, 0, 0,  0, 3, 4, 0, 0,  0, 0, 0, 0, 0,
            0, 0, 0, 0, 0,  0, 5, 6, 0, 0,  0, 7, 8, 0, 0,  0, 0, 0, 0, 0,
        ];
        assert_eq!(p.images, expected);
    }

    #[test]
    fn pad_to_a_smaller_size_is_an_error_naming_both_sizes() {
        let err = dataset(1, 28, 28, vec![0; 784])
            .pad_to(16, 16)
            .unwrap_err()
            .to_string();
        assert!(err.contains("28×28") && err.contains("16×16"), "{err}");
    }

    #[test]
    fn resize_enlarges_bilinearly() {
        // Centres of 4 output pixels over 2 inputs sit at −0.25, 0.25, 0.75, 1.25 in input
        // pixel units: edge-clamped linear interpolation of 0 and 200.
        let d = dataset(1, 1, 2, vec![0, 200]).resize_to(1, 4);
        assert_eq!(d.images, vec![0, 50, 150, 200]);
    }

    #[test]
    fn resize_shrinks_a_constant_image_to_the_same_constant() {
        let d = dataset(3, 8, 6, vec![77; 3 * 8 * 6]).resize_to(3, 2);
        assert_eq!(d.shape(), [3, 3, 2]);
        assert_eq!(d.images, vec![77; 3 * 3 * 2]);
    }

    #[test]
    fn channels_replicate_and_take_luminance() {
        let grey = dataset(1, 1, 2, vec![10, 20]).to_channels(3).unwrap();
        assert_eq!(grey.images, vec![10, 20, 10, 20, 10, 20]);
        // Planes R = [255, 0], G = [0, 255], B = [0, 0].
        let rgb = dataset(3, 1, 2, vec![255, 0, 0, 255, 0, 0]);
        assert_eq!(rgb.to_channels(1).unwrap().images, vec![76, 150]);
        let err = dataset(2, 1, 1, vec![0, 0])
            .to_channels(3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2-channel"), "{err}");
    }

    #[test]
    fn validate_rejects_labels_beyond_the_classes_and_short_buffers() {
        let mut d = dataset(1, 1, 1, vec![0, 0]);
        d.validate("toy").unwrap();
        d.labels[1] = 5;
        assert!(
            d.validate("toy")
                .unwrap_err()
                .to_string()
                .contains("label 5")
        );
        let mut d = dataset(1, 1, 1, vec![0, 0]);
        d.images.pop();
        let err = d.validate("toy").unwrap_err().to_string();
        assert!(
            err.starts_with("toy:") && err.contains("1 pixel bytes"),
            "{err}"
        );
    }
}
