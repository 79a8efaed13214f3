//! Image samples as one PNG grid (what a researcher looks at first).

use image::{Rgb, RgbImage};
use std::path::Path;

/// [`model_pixel_to_u8`] in words, for result files.
pub const MODEL_PIXEL_QUANTIZATION: &str =
    "samples clipped to [-1, 1], round((x + 1) * 127.5) to uint8";

/// A model-space pixel in [−1, 1] as a byte: clipped, then round((v + 1)·127.5) — the one
/// quantization of generated images (PNG grids, FID features, composition accuracy).
pub fn model_pixel_to_u8(v: f32) -> u8 {
    ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
}

/// Writes `[n, c, h, w]` images with values in [−1, 1] (c = 1 or 3) as a grid of `cols`
/// columns with a 2-pixel gap. Values outside [−1, 1] are clamped.
pub fn write_image_grid_png(
    path: &Path,
    images: &[f32],
    shape: [usize; 3],
    cols: usize,
) -> Result<(), String> {
    let [c, h, w] = shape;
    if c != 1 && c != 3 {
        return Err(format!("image grids need 1 or 3 channels, got {c}"));
    }
    let per = c * h * w;
    if per == 0 || !images.len().is_multiple_of(per) || images.is_empty() {
        return Err(format!(
            "{} values are not a whole number of {c}×{h}×{w} images",
            images.len()
        ));
    }
    let n = images.len() / per;
    let cols = cols.clamp(1, n);
    let rows = n.div_ceil(cols);
    let gap = 2;
    let (gw, gh) = (cols * (w + gap) + gap, rows * (h + gap) + gap);
    let mut img = RgbImage::from_pixel(gw as u32, gh as u32, Rgb([32, 32, 32]));
    for i in 0..n {
        let (r, q) = (i / cols, i % cols);
        let (ox, oy) = (gap + q * (w + gap), gap + r * (h + gap));
        let im = &images[i * per..(i + 1) * per];
        for y in 0..h {
            for x in 0..w {
                let px = |ch: usize| model_pixel_to_u8(im[ch * h * w + y * w + x]);
                let rgb = if c == 1 {
                    [px(0); 3]
                } else {
                    [px(0), px(1), px(2)]
                };
                img.put_pixel((ox + x) as u32, (oy + y) as u32, Rgb(rgb));
            }
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    img.save(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_places_each_image_and_maps_the_value_range() {
        let dir = std::env::temp_dir().join(format!("ebdiff-grid-{}", std::process::id()));
        let path = dir.join("g.png");
        // Two 1×2×2 images: the first all −1 (black), the second all +1 (white).
        let images = [-1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0];
        write_image_grid_png(&path, &images, [1, 2, 2], 2).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (2 * 4 + 2, 4 + 2));
        assert_eq!(img.get_pixel(2, 2).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(3, 3).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(6, 2).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(0, 0).0, [32, 32, 32], "gap colour");
        assert!(write_image_grid_png(&path, &images[..7], [1, 2, 2], 2).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
