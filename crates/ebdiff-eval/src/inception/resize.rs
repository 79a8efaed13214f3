//! TF1 `tf.image.resize_bilinear` (align_corners=False, no half-pixel centres), the resize of the
//! original FID graph: output index i reads source coordinate i·in/out, bilinearly, with the far
//! neighbour clamped to the last row/column. Separable, so it is two matrix products.

use burn::tensor::{Device, Tensor, TensorData};

/// `[out, in]` interpolation weights; each row has at most two non-zeros summing to 1.
pub fn tf1_bilinear_weights(input: usize, output: usize) -> Vec<f32> {
    let mut w = vec![0f32; output * input];
    let scale = input as f64 / output as f64;
    for i in 0..output {
        let src = i as f64 * scale;
        let lo = (src.floor() as usize).min(input - 1);
        let hi = (lo + 1).min(input - 1);
        let frac = (src - lo as f64) as f32;
        w[i * input + lo] += 1.0 - frac;
        w[i * input + hi] += frac;
    }
    w
}

fn weights_tensor(input: usize, output: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(tf1_bilinear_weights(input, output), [output, input]),
        device,
    )
}

/// Resizes `[n, c, h, w]` to `[n, c, out_h, out_w]`.
pub fn resize_tf1_bilinear(x: Tensor<4>, out_h: usize, out_w: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    if (h, w) == (out_h, out_w) {
        return x;
    }
    let device = x.device();
    // Rows: [n·c·h, w] · [w, out_w].
    let x = x
        .reshape([n * c * h, w])
        .matmul(weights_tensor(w, out_w, &device).transpose());
    // Columns: move h last, then [n·c·out_w, h] · [h, out_h].
    let x = x
        .reshape([n * c, h, out_w])
        .swap_dims(1, 2)
        .reshape([n * c * out_w, h])
        .matmul(weights_tensor(h, out_h, &device).transpose());
    x.reshape([n * c, out_w, out_h])
        .swap_dims(1, 2)
        .reshape([n, c, out_h, out_w])
}
