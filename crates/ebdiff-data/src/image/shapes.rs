//! A procedurally generated compositional dataset in the spirit of the paper's CLEVR experiment:
//! each image shows a few coloured shapes in distinct cells of a `grid × grid` layout on a dark
//! grey background. The class of an object is its cell, so a model conditioned on one cell can be
//! composed with models conditioned on others ("an object here AND one there"), and
//! [`object_present`] checks from the pixels which cells a generated image occupies.

use super::dataset::ImageDataset;
use super::error::DataError;
use super::seeding::derive;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Background colour of every image.
pub const BACKGROUND: [u8; 3] = [40, 40, 40];
/// Object colours: red, green, blue, yellow, magenta, cyan.
pub const COLOURS: [[u8; 3]; 6] = [
    [220, 60, 60],
    [60, 200, 80],
    [70, 110, 230],
    [230, 210, 60],
    [210, 70, 210],
    [60, 200, 220],
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Circle,
    Square,
    Triangle,
}

const SHAPES: [Shape; 3] = [Shape::Circle, Shape::Square, Shape::Triangle];

/// Layout and look of the shapes images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapesConfig {
    /// Side of the square images in pixels (e.g. 32 or 64); a multiple of `grid`.
    #[serde(default = "default_size")]
    pub size: usize,
    /// Cells per side: `grid²` cells, each one class.
    #[serde(default = "default_grid")]
    pub grid: usize,
    /// Fewest objects in an image (≥ 1).
    #[serde(default = "default_min_objects")]
    pub min_objects: usize,
    /// Most objects in an image (≤ grid²).
    #[serde(default = "default_max_objects")]
    pub max_objects: usize,
    /// Diameter of the circle enclosing a shape, as a fraction of the cell side, in (0, 1].
    #[serde(default = "default_object_scale")]
    pub object_scale: f64,
    /// Largest shift of a shape from its cell centre, as a fraction of the margin left by
    /// `object_scale`, in [0, 1]; at 1 a shape may touch its cell's border but never cross it.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Smooth edges (4×4 supersampling per pixel) instead of hard ones.
    #[serde(default = "default_antialias")]
    pub antialias: bool,
}

fn default_size() -> usize {
    32
}
fn default_grid() -> usize {
    4
}
fn default_min_objects() -> usize {
    1
}
fn default_max_objects() -> usize {
    3
}
fn default_object_scale() -> f64 {
    0.7
}
fn default_jitter() -> f64 {
    1.0
}
fn default_antialias() -> bool {
    true
}

impl Default for ShapesConfig {
    fn default() -> Self {
        ShapesConfig {
            size: default_size(),
            grid: default_grid(),
            min_objects: default_min_objects(),
            max_objects: default_max_objects(),
            object_scale: default_object_scale(),
            jitter: default_jitter(),
            antialias: default_antialias(),
        }
    }
}

impl ShapesConfig {
    pub fn validate(&self) -> Result<(), DataError> {
        let fail =
            |key: &str, message: String| Err(DataError::invalid(format!("shapes.{key}"), message));
        if self.grid == 0 || !self.size.is_multiple_of(self.grid) || self.cell() < 4 {
            return fail(
                "size",
                format!(
                    "must be a multiple of grid = {} with cells of at least 4 pixels, got {}",
                    self.grid, self.size
                ),
            );
        }
        let cells = self.grid * self.grid;
        if self.min_objects == 0 || self.min_objects > self.max_objects || self.max_objects > cells
        {
            return fail(
                "min_objects",
                format!(
                    "need 1 ≤ min_objects ≤ max_objects ≤ grid² = {cells}, got {} and {}",
                    self.min_objects, self.max_objects
                ),
            );
        }
        if !(self.object_scale > 0.0 && self.object_scale <= 1.0) {
            return fail(
                "object_scale",
                format!("must be in (0, 1], got {}", self.object_scale),
            );
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return fail("jitter", format!("must be in [0, 1], got {}", self.jitter));
        }
        Ok(())
    }

    /// Side of a cell in pixels.
    pub fn cell(&self) -> usize {
        self.size / self.grid.max(1)
    }

    /// Number of cells, i.e. of classes.
    pub fn num_cells(&self) -> usize {
        self.grid * self.grid
    }

    /// Radius of the circle enclosing a shape, in pixels.
    fn radius(&self) -> f64 {
        self.object_scale * self.cell() as f64 / 2.0
    }
}

/// `n` images; image `i` depends only on `(cfg, seed, i)`, so a larger `n` extends a smaller one.
/// `labels[i]` is one of the occupied cells `objects[i]` (sorted), picked by the same seed.
pub fn generate(cfg: &ShapesConfig, n: usize, seed: u64) -> Result<ImageDataset, DataError> {
    cfg.validate()?;
    let pixels = 3 * cfg.size * cfg.size;
    let mut images = vec![0u8; n * pixels];
    let mut labels = Vec::with_capacity(n);
    let mut objects = Vec::with_capacity(n);
    for (i, image) in images.chunks_exact_mut(pixels).enumerate() {
        let mut rng = StdRng::seed_from_u64(derive(&[seed, i as u64]));
        let (cells, label) = draw_image(cfg, &mut rng, image);
        labels.push(label);
        objects.push(cells);
    }
    let dataset = ImageDataset {
        images,
        labels,
        num_classes: cfg.num_cells(),
        channels: 3,
        height: cfg.size,
        width: cfg.size,
        objects: Some(objects),
    };
    dataset.validate("shapes")?;
    Ok(dataset)
}

/// Draws one image into `image` (CHW); returns its occupied cells and its label.
fn draw_image(cfg: &ShapesConfig, rng: &mut StdRng, image: &mut [u8]) -> (Vec<u32>, u32) {
    let plane = cfg.size * cfg.size;
    for (c, channel) in image.chunks_exact_mut(plane).enumerate() {
        channel.fill(BACKGROUND[c]);
    }
    let k = rng.random_range(cfg.min_objects..=cfg.max_objects);
    // The first k entries of a partial Fisher–Yates shuffle: k distinct cells.
    let mut cells: Vec<u32> = (0..cfg.num_cells() as u32).collect();
    for j in 0..k {
        let pick = rng.random_range(j..cells.len());
        cells.swap(j, pick);
    }
    cells.truncate(k);
    cells.sort_unstable();
    for &cell in &cells {
        let shape = SHAPES[rng.random_range(0..SHAPES.len())];
        let colour = COLOURS[rng.random_range(0..COLOURS.len())];
        let margin = (cfg.cell() as f64 / 2.0 - cfg.radius()) * cfg.jitter;
        let shift =
            [rng.random_range(-1.0..=1.0), rng.random_range(-1.0..=1.0)].map(|u| u * margin);
        draw_object(cfg, image, cell as usize, shape, colour, shift);
    }
    let label = cells[rng.random_range(0..cells.len())];
    (cells, label)
}

/// Blends one shape over the background of its cell; pixels outside the cell are untouched
/// because the shape's enclosing circle stays inside it.
fn draw_object(
    cfg: &ShapesConfig,
    image: &mut [u8],
    cell: usize,
    shape: Shape,
    colour: [u8; 3],
    shift: [f64; 2],
) {
    let side = cfg.cell();
    let (x0, y0) = ((cell % cfg.grid) * side, (cell / cfg.grid) * side);
    let centre = [
        x0 as f64 + side as f64 / 2.0 + shift[0],
        y0 as f64 + side as f64 / 2.0 + shift[1],
    ];
    let r = cfg.radius();
    let samples = if cfg.antialias { 4 } else { 1 };
    let plane = cfg.size * cfg.size;
    for y in y0..y0 + side {
        for x in x0..x0 + side {
            let mut hits = 0;
            for sy in 0..samples {
                for sx in 0..samples {
                    let px = x as f64 + (sx as f64 + 0.5) / samples as f64;
                    let py = y as f64 + (sy as f64 + 0.5) / samples as f64;
                    hits += inside(shape, px - centre[0], py - centre[1], r) as usize;
                }
            }
            if hits == 0 {
                continue;
            }
            let a = hits as f64 / (samples * samples) as f64;
            for c in 0..3 {
                let v = BACKGROUND[c] as f64 * (1.0 - a) + colour[c] as f64 * a;
                image[c * plane + y * cfg.size + x] = v.round() as u8;
            }
        }
    }
}

/// Whether the offset `(dx, dy)` from a shape's centre (y pointing down) is inside the shape whose
/// enclosing circle has radius `r`.
fn inside(shape: Shape, dx: f64, dy: f64, r: f64) -> bool {
    match shape {
        Shape::Circle => dx * dx + dy * dy <= r * r,
        Shape::Square => dx.abs().max(dy.abs()) <= r * std::f64::consts::FRAC_1_SQRT_2,
        // Equilateral, apex up: inside all three edges, each at distance r/2 from the centre
        // along its outward normal (down, up-left, up-right).
        Shape::Triangle => {
            let h = 3f64.sqrt() / 2.0;
            dy <= r / 2.0 && -h * dx - 0.5 * dy <= r / 2.0 && h * dx - 0.5 * dy <= r / 2.0
        }
    }
}

/// Mean absolute difference from the background over the pixels and channels of `cell` of a CHW
/// image (0–255 scale).
pub fn cell_deviation(image: &[u8], cfg: &ShapesConfig, cell: usize) -> f64 {
    let side = cfg.cell();
    let (x0, y0) = ((cell % cfg.grid) * side, (cell / cfg.grid) * side);
    let plane = cfg.size * cfg.size;
    let mut sum = 0u64;
    for c in 0..3 {
        for y in y0..y0 + side {
            let row = &image[c * plane + y * cfg.size + x0..][..side];
            sum += row
                .iter()
                .map(|&p| p.abs_diff(BACKGROUND[c]) as u64)
                .sum::<u64>();
        }
    }
    sum as f64 / (3 * side * side) as f64
}

/// Threshold of [`object_present`]: half the deviation of the faintest object the generator can
/// draw (the smallest shape, a triangle of area 3√3/4·r², in the colour closest to the background).
pub fn presence_threshold(cfg: &ShapesConfig) -> f64 {
    let contrast = COLOURS
        .iter()
        .map(|c| {
            (0..3)
                .map(|k| c[k].abs_diff(BACKGROUND[k]) as f64)
                .sum::<f64>()
                / 3.0
        })
        .fold(f64::INFINITY, f64::min);
    let r = cfg.radius();
    let area = 3.0 * 3f64.sqrt() / 4.0 * r * r;
    0.5 * contrast * area / (cfg.cell() * cfg.cell()) as f64
}

/// Whether `cell` of the CHW RGB image (generated, or sampled from a model of this dataset)
/// holds an object: its deviation from the background exceeds [`presence_threshold`]. The oracle
/// of composition accuracy.
pub fn object_present(image: &[u8], cfg: &ShapesConfig, cell: usize) -> bool {
    cell_deviation(image, cfg, cell) > presence_threshold(cfg)
}

/// The cells where [`object_present`] detects an object, in increasing order.
pub fn occupied_cells(image: &[u8], cfg: &ShapesConfig) -> Vec<u32> {
    (0..cfg.num_cells())
        .filter(|&cell| object_present(image, cfg, cell))
        .map(|cell| cell as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let cfg = ShapesConfig::default();
        let a = generate(&cfg, 20, 7).unwrap();
        assert_eq!(a, generate(&cfg, 20, 7).unwrap());
        let b = generate(&cfg, 20, 8).unwrap();
        assert_ne!(a.images, b.images);
        // Image i does not depend on how many images are generated.
        assert_eq!(generate(&cfg, 5, 7).unwrap(), a.subset(..5).unwrap());
    }

    #[test]
    fn images_hold_the_configured_number_of_objects_and_label_one_of_them() {
        let cfg = ShapesConfig {
            size: 64,
            grid: 4,
            min_objects: 2,
            max_objects: 4,
            ..ShapesConfig::default()
        };
        let d = generate(&cfg, 300, 1).unwrap();
        assert_eq!((d.shape(), d.num_classes), ([3, 64, 64], 16));
        let objects = d.objects.as_ref().unwrap();
        let mut counts = [0usize; 5];
        let mut cells = [0usize; 16];
        for (objs, &label) in objects.iter().zip(&d.labels) {
            assert!(
                objs.windows(2).all(|w| w[0] < w[1]),
                "distinct sorted cells {objs:?}"
            );
            assert!(objs.contains(&label));
            counts[objs.len()] += 1;
            objs.iter().for_each(|&c| cells[c as usize] += 1);
        }
        assert_eq!(counts[..2], [0, 0]);
        assert!(counts[2..].iter().all(|&c| c > 50), "counts {counts:?}");
        assert!(
            cells.iter().all(|&c| c > 20),
            "every cell is used: {cells:?}"
        );
    }

    #[test]
    fn empty_cells_are_pure_background() {
        // Large shapes at full jitter must not bleed into neighbouring cells.
        for antialias in [true, false] {
            let cfg = ShapesConfig {
                object_scale: 0.9,
                jitter: 1.0,
                antialias,
                max_objects: 8,
                ..ShapesConfig::default()
            };
            let d = generate(&cfg, 100, 3).unwrap();
            for i in 0..d.len() {
                let objs = &d.objects.as_ref().unwrap()[i];
                for cell in 0..16u32 {
                    let dev = cell_deviation(d.image(i), &cfg, cell as usize);
                    assert_eq!(
                        dev == 0.0,
                        !objs.contains(&cell),
                        "image {i} cell {cell}: {dev}"
                    );
                }
            }
        }
    }

    #[test]
    fn detector_finds_exactly_the_occupied_cells() {
        for cfg in [
            ShapesConfig::default(),
            ShapesConfig {
                size: 64,
                grid: 8,
                max_objects: 6,
                antialias: false,
                ..ShapesConfig::default()
            },
        ] {
            let d = generate(&cfg, 200, 11).unwrap();
            let objects = d.objects.as_ref().unwrap();
            let exact = (0..d.len())
                .filter(|&i| occupied_cells(d.image(i), &cfg) == objects[i])
                .count();
            assert!(exact >= 198, "{exact}/200 exact for {cfg:?}");
        }
    }

    #[test]
    fn shapes_have_the_expected_areas() {
        // Supersampled coverage of a large shape approaches its exact area.
        let r = 20.0;
        for (shape, area) in [
            (Shape::Circle, std::f64::consts::PI * r * r),
            (Shape::Square, 2.0 * r * r),
            (Shape::Triangle, 3.0 * 3f64.sqrt() / 4.0 * r * r),
        ] {
            let n = 400;
            let hits = (0..n * n)
                .filter(|k| {
                    let (x, y) = ((k % n) as f64 / 8.0 - 25.0, (k / n) as f64 / 8.0 - 25.0);
                    inside(shape, x, y, r)
                })
                .count();
            let measured = hits as f64 / 64.0;
            assert!(
                (measured - area).abs() / area < 0.02,
                "{shape:?}: {measured} vs {area}"
            );
        }
        // The triangle's apex points up (negative y).
        assert!(
            inside(Shape::Triangle, 0.0, -0.95 * r, r) && !inside(Shape::Triangle, 0.0, 0.6 * r, r)
        );
    }

    #[test]
    fn invalid_configs_name_the_key() {
        let bad = ShapesConfig {
            size: 30,
            ..ShapesConfig::default()
        };
        assert!(
            generate(&bad, 1, 0)
                .unwrap_err()
                .to_string()
                .starts_with("shapes.size")
        );
        let bad = ShapesConfig {
            max_objects: 17,
            ..ShapesConfig::default()
        };
        assert!(
            generate(&bad, 1, 0)
                .unwrap_err()
                .to_string()
                .contains("grid² = 16")
        );
    }

    #[test]
    fn config_keys_have_defaults_and_unknown_keys_are_rejected() {
        let cfg: ShapesConfig = toml::from_str("size = 64\ngrid = 8").unwrap();
        assert_eq!((cfg.size, cfg.grid, cfg.max_objects), (64, 8, 3));
        assert!(toml::from_str::<ShapesConfig>("colour = 1").is_err());
    }
}
