//! Composition accuracy on the shapes dataset, the paper's CLEVR metric at our scale
//! (method.md §5.2): the share of generated images that hold an object in *every* requested
//! cell. The detector is the dataset's own exact pixel test [`object_present`] (deviation from
//! the background over the cell), not a trained classifier, so the metric has no error of its
//! own on clean images.

use crate::grid::model_pixel_to_u8;
use ebdiff_data::image::{ShapesConfig, object_present};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompositionScore {
    /// Fraction of images with an object in every requested cell.
    pub accuracy: f64,
    /// Mean fraction of the requested cells that hold an object.
    pub cell_recall: f64,
    /// Mean number of occupied cells per image (requested or not): a sampler that fills every
    /// cell would score accuracy 1, and this shows it.
    pub mean_objects: f64,
    pub count: usize,
}

/// Scores `images`: CHW RGB images of `shapes.size`², pixels in [−1, 1] (model space, clipped
/// and quantized to bytes as when saved), against the requested `cells`.
pub fn composition_accuracy(
    images: &[f32],
    shapes: &ShapesConfig,
    cells: &[usize],
) -> Result<CompositionScore, String> {
    let per = 3 * shapes.size * shapes.size;
    if images.is_empty() || !images.len().is_multiple_of(per) {
        return Err(format!(
            "composition accuracy needs RGB images of {0}×{0} (the shapes model's size): got {1} values, not a positive multiple of {per}",
            shapes.size,
            images.len()
        ));
    }
    if cells.is_empty() {
        return Err(
            "composition accuracy needs requested cells: label the conditional models of the composition (`label = CELL`)".into(),
        );
    }
    let num_cells = shapes.num_cells();
    if let Some(bad) = cells.iter().find(|&&c| c >= num_cells) {
        return Err(format!(
            "requested cell {bad} does not exist: the {0}×{0} grid has cells 0..{num_cells}",
            shapes.grid
        ));
    }
    let count = images.len() / per;
    let (mut all, mut found, mut objects) = (0usize, 0usize, 0usize);
    let mut bytes = vec![0u8; per];
    for image in images.chunks_exact(per) {
        for (b, &v) in bytes.iter_mut().zip(image) {
            *b = model_pixel_to_u8(v);
        }
        let present: Vec<bool> = (0..num_cells)
            .map(|c| object_present(&bytes, shapes, c))
            .collect();
        let hits = cells.iter().filter(|&&c| present[c]).count();
        found += hits;
        all += usize::from(hits == cells.len());
        objects += present.iter().filter(|&&p| p).count();
    }
    let n = count as f64;
    Ok(CompositionScore {
        accuracy: all as f64 / n,
        cell_recall: found as f64 / (n * cells.len() as f64),
        mean_objects: objects as f64 / n,
        count,
    })
}

/// How many objects the images hold, against the training data's law (the generator draws the
/// number uniformly from `min_objects..=max_objects`): an unconditional model that renders
/// scenes with the data's object counts scores a total variation near 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectCounts {
    /// Share of images with n detected objects, n = 0 … grid².
    pub shares: Vec<f64>,
    /// The data's shares (uniform over the configured range).
    pub data_shares: Vec<f64>,
    /// Total variation ½ Σ |shares − data_shares|.
    pub total_variation: f64,
    pub count: usize,
}

/// Counts the objects in each image (pixels in [−1, 1], quantized as when saved) with the same
/// detector as [`composition_accuracy`].
pub fn object_counts(images: &[f32], shapes: &ShapesConfig) -> Result<ObjectCounts, String> {
    let per = 3 * shapes.size * shapes.size;
    if images.is_empty() || !images.len().is_multiple_of(per) {
        return Err(format!(
            "object counts need RGB images of {0}×{0} (the shapes model's size): got {1} values, not a positive multiple of {per}",
            shapes.size,
            images.len()
        ));
    }
    let cells = shapes.num_cells();
    let mut hist = vec![0usize; cells + 1];
    let mut bytes = vec![0u8; per];
    for image in images.chunks_exact(per) {
        for (b, &v) in bytes.iter_mut().zip(image) {
            *b = model_pixel_to_u8(v);
        }
        hist[(0..cells)
            .filter(|&c| object_present(&bytes, shapes, c))
            .count()] += 1;
    }
    let count = images.len() / per;
    let shares: Vec<f64> = hist.iter().map(|&h| h as f64 / count as f64).collect();
    let range = shapes.min_objects..=shapes.max_objects;
    let width = (shapes.max_objects - shapes.min_objects + 1) as f64;
    let data_shares: Vec<f64> = (0..=cells)
        .map(|n| if range.contains(&n) { 1.0 / width } else { 0.0 })
        .collect();
    let total_variation = 0.5
        * shares
            .iter()
            .zip(&data_shares)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>();
    Ok(ObjectCounts {
        shares,
        data_shares,
        total_variation,
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebdiff_data::image::generate;

    fn to_model_space(images: &[u8]) -> Vec<f32> {
        images.iter().map(|&p| p as f32 / 127.5 - 1.0).collect()
    }

    #[test]
    fn scores_agree_with_the_generators_ground_truth() {
        let cfg = ShapesConfig {
            size: 12,
            grid: 2,
            min_objects: 1,
            max_objects: 3,
            ..ShapesConfig::default()
        };
        let data = generate(&cfg, 200, 3).unwrap();
        let truth = data.objects.clone().unwrap();
        let x = to_model_space(&data.images);
        for requested in [vec![0usize], vec![0, 3], vec![1, 2, 3]] {
            let s = composition_accuracy(&x, &cfg, &requested).unwrap();
            let has = |i: usize, c: usize| truth[i].contains(&(c as u32));
            let n = truth.len() as f64;
            let all = (0..truth.len())
                .filter(|&i| requested.iter().all(|&c| has(i, c)))
                .count() as f64;
            let hits: usize = (0..truth.len())
                .map(|i| requested.iter().filter(|&&c| has(i, c)).count())
                .sum();
            let objects: usize = truth.iter().map(|o| o.len()).sum();
            assert_eq!(s.count, 200);
            assert_eq!(s.accuracy, all / n, "{requested:?}");
            assert_eq!(
                s.cell_recall,
                hits as f64 / (n * requested.len() as f64),
                "{requested:?}"
            );
            assert_eq!(s.mean_objects, objects as f64 / n);
            // Not a degenerate set: some images miss a requested cell, some have all.
            if requested.len() > 1 {
                assert!(s.accuracy > 0.0 && s.accuracy < 1.0, "{s:?}");
            }
        }
    }

    #[test]
    fn blank_images_score_zero_and_bad_input_is_refused() {
        let cfg = ShapesConfig {
            size: 12,
            grid: 2,
            ..ShapesConfig::default()
        };
        let bg: Vec<f32> = (0..3)
            .flat_map(|c| {
                std::iter::repeat_n(
                    ebdiff_data::image::shapes::BACKGROUND[c] as f32 / 127.5 - 1.0,
                    144,
                )
            })
            .collect();
        let s = composition_accuracy(&bg, &cfg, &[0, 1]).unwrap();
        assert_eq!((s.accuracy, s.cell_recall, s.mean_objects), (0.0, 0.0, 0.0));
        let e = composition_accuracy(&bg, &cfg, &[4]).unwrap_err();
        assert!(e.contains("cell 4 does not exist"), "{e}");
        let e = composition_accuracy(&bg, &cfg, &[]).unwrap_err();
        assert!(e.contains("label the conditional models"), "{e}");
        let e = composition_accuracy(&bg[..100], &cfg, &[0]).unwrap_err();
        assert!(e.contains("12×12"), "{e}");
    }

    #[test]
    fn the_datas_own_object_counts_are_its_law() {
        let cfg = ShapesConfig {
            size: 24,
            grid: 3,
            min_objects: 1,
            max_objects: 5,
            ..ShapesConfig::default()
        };
        let data = generate(&cfg, 2000, 5).unwrap();
        let c = object_counts(&to_model_space(&data.images), &cfg).unwrap();
        let truth: Vec<usize> = data.objects.unwrap().iter().map(|o| o.len()).collect();
        for (n, share) in c.shares.iter().enumerate() {
            let want = truth.iter().filter(|&&t| t == n).count() as f64 / 2000.0;
            assert_eq!(*share, want, "{n} objects");
        }
        // Sampling noise only: 2000 draws of a uniform law over 5 counts.
        assert!(c.total_variation < 0.04, "{c:?}");
        assert_eq!(c.data_shares[0], 0.0);
        assert!((c.data_shares[3] - 0.2).abs() < 1e-12);
        // A set with one object everywhere is far from the law.
        let single = generate(
            &ShapesConfig {
                max_objects: 1,
                ..cfg.clone()
            },
            200,
            1,
        )
        .unwrap();
        let c = object_counts(&to_model_space(&single.images), &cfg).unwrap();
        assert!((c.total_variation - 0.8).abs() < 1e-9, "{c:?}");
    }
}
