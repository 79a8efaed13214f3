//! Minimal scatter plot of 2-D samples as a PNG (axes frame, grid at 0.5 steps, coloured dots).

use image::{Rgb, RgbImage};
use std::path::Path;

pub struct ScatterSeries<'a> {
    /// Flat `[n, 2]` points.
    pub points: &'a [f32],
    pub color: [u8; 3],
}

/// Plots the series over the square [−extent, extent]² into a `size`×`size` PNG.
pub fn write_scatter_png(
    path: &Path,
    series: &[ScatterSeries],
    extent: f32,
    size: u32,
) -> Result<(), String> {
    let mut img = RgbImage::from_pixel(size, size, Rgb([255, 255, 255]));
    let to_px = |v: f32| ((v + extent) / (2.0 * extent) * (size - 1) as f32).round() as i64;
    let grid = Rgb([225, 225, 225]);
    let mut g = -extent;
    while g <= extent + 1e-6 {
        let p = to_px(g).clamp(0, size as i64 - 1) as u32;
        for i in 0..size {
            img.put_pixel(p, i, grid);
            img.put_pixel(i, p, grid);
        }
        g += 0.5;
    }
    let axis = Rgb([150, 150, 150]);
    for i in 0..size {
        for edge in [0, size - 1] {
            img.put_pixel(edge, i, axis);
            img.put_pixel(i, edge, axis);
        }
    }
    for s in series {
        for p in s.points.chunks_exact(2) {
            let (cx, cy) = (to_px(p[0]), to_px(-p[1]));
            for dx in -1..=1 {
                for dy in -1..=1 {
                    let (x, y) = (cx + dx, cy + dy);
                    if x >= 0 && y >= 0 && x < size as i64 && y < size as i64 {
                        img.put_pixel(x as u32, y as u32, Rgb(s.color));
                    }
                }
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
