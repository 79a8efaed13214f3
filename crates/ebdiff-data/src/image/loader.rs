//! Training batches as a pure function of `(seed, step)`: resuming a run at step `s` replays
//! exactly the batches an uninterrupted run would have seen, with no loader state to checkpoint.
//!
//! Example `j` of step `s` is the `p`-th example of the run, `p = s·B + j`. It belongs to epoch
//! `p / N` and is entry `p mod N` of that epoch's permutation, a seeded shuffle of `0..N`; every
//! epoch therefore visits each image exactly once, even when a batch straddles two epochs. The
//! random flip and, for the shapes dataset, the conditioning object are drawn from seeds derived
//! from `(seed, p)`.

use super::dataset::ImageDataset;
use super::error::DataError;
use super::seeding::derive;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::sync::{Arc, Mutex};

/// Stream tags, so that the shuffle, the flips and the label choices use unrelated seeds.
const SHUFFLE: u64 = 1;
const FLIP: u64 = 2;
const LABEL: u64 = 3;

/// How batches are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderOptions {
    pub batch_size: usize,
    pub seed: u64,
    /// Mirror each example left–right with probability ½.
    pub hflip: bool,
    /// Threads that convert pixels; the batch does not depend on it.
    pub threads: usize,
}

impl LoaderOptions {
    pub fn new(batch_size: usize, seed: u64) -> Self {
        LoaderOptions {
            batch_size,
            seed,
            hflip: false,
            threads: 1,
        }
    }
}

/// One batch, ready to become a tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageBatch {
    /// `[B, C, H, W]` row-major, pixels mapped to [−1, 1] by `p / 127.5 − 1`.
    pub x: Vec<f32>,
    /// Class of each example (for the shapes dataset: one of its objects).
    pub labels: Vec<u32>,
    /// `[B, C, H, W]`.
    pub shape: [usize; 4],
}

pub struct ImageLoader {
    data: Arc<ImageDataset>,
    options: LoaderOptions,
    /// The last two epochs' permutations (a batch spans at most two epochs when B ≤ N; more
    /// are recomputed), cached because shuffling N indices per batch would dominate small batches.
    permutations: Mutex<Vec<(u64, Arc<Vec<u32>>)>>,
}

impl ImageLoader {
    pub fn new(data: Arc<ImageDataset>, options: LoaderOptions) -> Result<Self, DataError> {
        if data.is_empty() {
            return Err(DataError::invalid("data", "the dataset has no images"));
        }
        if options.batch_size == 0 || options.threads == 0 {
            return Err(DataError::invalid(
                "train.batch_size",
                format!(
                    "batch size and loader threads must be ≥ 1, got {} and {}",
                    options.batch_size, options.threads
                ),
            ));
        }
        if options.hflip && data.objects.is_some() {
            // The labels of the shapes dataset are grid cells: a mirrored image has its objects
            // in other cells than its labels say.
            return Err(DataError::invalid(
                "data.hflip",
                "horizontal flips would move the shapes to cells other than their labels; \
                 set hflip = false",
            ));
        }
        Ok(ImageLoader {
            data,
            options,
            permutations: Mutex::new(Vec::new()),
        })
    }

    pub fn dataset(&self) -> &ImageDataset {
        &self.data
    }

    pub fn options(&self) -> LoaderOptions {
        self.options
    }

    /// Global positions `p` of the examples of `step`.
    fn positions(&self, step: u64) -> impl Iterator<Item = u64> {
        let b = self.options.batch_size as u64;
        (0..b).map(move |j| step * b + j)
    }

    /// Dataset indices of the examples of `step`.
    pub fn indices(&self, step: u64) -> Vec<usize> {
        let n = self.data.len() as u64;
        self.positions(step)
            .map(|p| self.permutation(p / n)[(p % n) as usize] as usize)
            .collect()
    }

    fn permutation(&self, epoch: u64) -> Arc<Vec<u32>> {
        let mut cache = self
            .permutations
            .lock()
            .expect("permutation cache poisoned");
        if let Some((_, perm)) = cache.iter().find(|(e, _)| *e == epoch) {
            return perm.clone();
        }
        let mut perm: Vec<u32> = (0..self.data.len() as u32).collect();
        perm.shuffle(&mut StdRng::seed_from_u64(derive(&[
            self.options.seed,
            SHUFFLE,
            epoch,
        ])));
        let perm = Arc::new(perm);
        if cache.len() == 2 {
            cache.remove(0);
        }
        cache.push((epoch, perm.clone()));
        perm
    }

    pub fn batch(&self, step: u64) -> ImageBatch {
        let seed = self.options.seed;
        let indices = self.indices(step);
        let positions: Vec<u64> = self.positions(step).collect();
        let flips: Vec<bool> = positions
            .iter()
            .map(|&p| self.options.hflip && derive(&[seed, FLIP, p]) & 1 == 1)
            .collect();
        let labels = indices
            .iter()
            .zip(&positions)
            .map(|(&i, &p)| match &self.data.objects {
                Some(objects) => {
                    let objs = &objects[i];
                    objs[(derive(&[seed, LABEL, p]) % objs.len() as u64) as usize]
                }
                None => self.data.labels[i],
            })
            .collect();

        let [c, h, w] = self.data.shape();
        let chw = c * h * w;
        let b = indices.len();
        let mut x = vec![0f32; b * chw];
        let per_thread = b.div_ceil(self.options.threads.min(b));
        let fill = |first: usize, out: &mut [f32]| {
            for (k, example) in out.chunks_exact_mut(chw).enumerate() {
                let j = first + k;
                write_example(self.data.image(indices[j]), w, flips[j], example);
            }
        };
        if per_thread >= b {
            fill(0, &mut x);
        } else {
            std::thread::scope(|scope| {
                for (t, chunk) in x.chunks_mut(per_thread * chw).enumerate() {
                    let fill = &fill;
                    scope.spawn(move || fill(t * per_thread, chunk));
                }
            });
        }
        ImageBatch {
            x,
            labels,
            shape: [b, c, h, w],
        }
    }
}

/// Writes one CHW image into `out` as `p / 127.5 − 1`, mirrored left–right when `flip`.
fn write_example(image: &[u8], width: usize, flip: bool, out: &mut [f32]) {
    for (src, dst) in image.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        if flip {
            for (d, &s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = normalize(s);
            }
        } else {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = normalize(s);
            }
        }
    }
}

fn normalize(p: u8) -> f32 {
    p as f32 / 127.5 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::shapes::{ShapesConfig, generate};

    /// `n` images of 2×2×3 whose pixels encode the image index: pixel k of image i is 10 i + k.
    fn numbered(n: usize) -> Arc<ImageDataset> {
        Arc::new(ImageDataset {
            images: (0..n)
                .flat_map(|i| (0..12).map(move |k| (10 * i + k) as u8))
                .collect(),
            labels: (0..n as u32).map(|i| i % 3).collect(),
            num_classes: 3,
            channels: 2,
            height: 2,
            width: 3,
            objects: None,
        })
    }

    fn loader(
        data: Arc<ImageDataset>,
        batch_size: usize,
        hflip: bool,
        threads: usize,
    ) -> ImageLoader {
        let options = LoaderOptions {
            batch_size,
            seed: 42,
            hflip,
            threads,
        };
        ImageLoader::new(data, options).unwrap()
    }

    #[test]
    fn batches_depend_only_on_seed_and_step() {
        let data = numbered(20);
        let run = loader(data.clone(), 6, true, 1);
        let sequential: Vec<ImageBatch> = (0..10).map(|s| run.batch(s)).collect();
        // A resumed run starts with a fresh loader at step 7, then jumps back and forth.
        let resumed = loader(data.clone(), 6, true, 1);
        for s in [7, 8, 9, 0, 3] {
            assert_eq!(resumed.batch(s), sequential[s as usize], "step {s}");
        }
        let other_seed = ImageLoader::new(
            data,
            LoaderOptions {
                seed: 43,
                ..run.options()
            },
        )
        .unwrap();
        assert_ne!(other_seed.batch(0), sequential[0]);
    }

    #[test]
    fn every_epoch_visits_each_image_once_even_across_batch_boundaries() {
        // N = 10, B = 4: epoch 1 starts in the middle of step 2.
        let run = loader(numbered(10), 4, false, 1);
        let order: Vec<usize> = (0..5).flat_map(|s| run.indices(s)).collect();
        for epoch in order.chunks_exact(10) {
            let mut sorted = epoch.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(order[..10], order[10..], "epochs are reshuffled");
        assert_ne!(
            order[..10],
            (0..10).collect::<Vec<_>>()[..],
            "epoch 0 is shuffled"
        );
        // Labels follow the images.
        let batch = run.batch(1);
        let expected: Vec<u32> = run.indices(1).iter().map(|&i| (i % 3) as u32).collect();
        assert_eq!(batch.labels, expected);
    }

    #[test]
    fn flips_mirror_rows_and_happen_about_half_the_time() {
        let data = numbered(8);
        let run = loader(data.clone(), 8, true, 1);
        let mut flipped = 0;
        for step in 0..25 {
            let batch = run.batch(step);
            for (j, &i) in run.indices(step).iter().enumerate() {
                let x = &batch.x[j * 12..(j + 1) * 12];
                let plain: Vec<f32> = data.image(i).iter().map(|&p| normalize(p)).collect();
                let mirrored: Vec<f32> = data
                    .image(i)
                    .chunks(3)
                    .flat_map(|row| row.iter().rev().map(|&p| normalize(p)))
                    .collect();
                assert!(x == plain || x == mirrored, "step {step} example {j}");
                flipped += (x == mirrored) as usize;
            }
        }
        assert!((60..140).contains(&flipped), "{flipped} of 200 flipped");
        let unflipped = loader(data, 8, false, 1);
        assert!(unflipped.batch(0).x.iter().zip(0..).all(|(&v, k)| {
            let (j, p) = (k / 12, k % 12);
            v == normalize((10 * unflipped.indices(0)[j] + p) as u8)
        }));
    }

    #[test]
    fn pixels_map_0_to_minus_1_and_255_to_1() {
        let data = Arc::new(ImageDataset {
            images: vec![0, 255, 51, 128],
            labels: vec![0],
            num_classes: 1,
            channels: 1,
            height: 2,
            width: 2,
            objects: None,
        });
        let batch = loader(data, 1, false, 1).batch(0);
        assert_eq!(batch.shape, [1, 1, 2, 2]);
        assert_eq!(batch.x[..2], [-1.0, 1.0]);
        assert!((batch.x[2] + 0.6).abs() < 1e-6 && (batch.x[3] - 0.003_921_6).abs() < 1e-6);
    }

    #[test]
    fn threads_do_not_change_the_batch() {
        let data = numbered(30);
        let one = loader(data.clone(), 23, true, 1);
        let many = loader(data, 23, true, 4);
        for step in 0..4 {
            assert_eq!(one.batch(step), many.batch(step));
        }
    }

    #[test]
    fn shapes_examples_are_conditioned_on_each_of_their_objects() {
        let cfg = ShapesConfig {
            min_objects: 3,
            max_objects: 3,
            ..ShapesConfig::default()
        };
        let data = Arc::new(generate(&cfg, 4, 0).unwrap());
        let run = loader(data.clone(), 4, false, 1);
        let mut seen = vec![std::collections::BTreeSet::new(); 4];
        for step in 0..40 {
            let batch = run.batch(step);
            for (&i, &label) in run.indices(step).iter().zip(&batch.labels) {
                assert!(data.objects.as_ref().unwrap()[i].contains(&label));
                seen[i].insert(label);
            }
        }
        assert!(seen.iter().all(|s| s.len() == 3), "labels used: {seen:?}");
        let flip = ImageLoader::new(
            data,
            LoaderOptions {
                hflip: true,
                ..LoaderOptions::new(4, 0)
            },
        );
        assert!(flip.err().unwrap().to_string().starts_with("data.hflip"));
    }
}
