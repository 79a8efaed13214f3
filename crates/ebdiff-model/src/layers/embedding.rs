//! Conditioning embeddings. They depend on t and the label, never on x, so they need a forward
//! pass only: their parameters still get gradients through the blocks they modulate.

use super::activation::silu;
use super::linear::Linear;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Int, Tensor, TensorData};

/// DDPM sinusoidal embedding of integer levels: [sin(t·f_i), cos(t·f_i)], f_i = 10000^(−i/(d/2−1)).
pub fn sinusoidal_embedding(t: Tensor<1, Int>, dim: usize) -> Tensor<2> {
    assert!(
        dim.is_multiple_of(2) && dim >= 4,
        "sinusoidal embedding needs an even dim ≥ 4, got {dim}"
    );
    let device = t.device();
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(10000f64.ln()) * i as f64 / (half - 1) as f64).exp() as f32)
        .collect();
    let freqs = Tensor::<2>::from_data(TensorData::new(freqs, [1, half]), &device);
    let args = t.float().unsqueeze_dim::<2>(1) * freqs;
    Tensor::cat(vec![args.clone().sin(), args.cos()], 1)
}

/// Sinusoidal features → Linear → SiLU → Linear (DDPM's timestep MLP).
#[derive(Module, Debug)]
pub struct TimeMlp {
    pub l1: Linear,
    pub l2: Linear,
    pub base_dim: usize,
}

impl TimeMlp {
    pub fn new(base_dim: usize, out_dim: usize, device: &Device) -> Self {
        TimeMlp {
            l1: Linear::new(base_dim, out_dim, true, false, device),
            l2: Linear::new(out_dim, out_dim, true, false, device),
            base_dim,
        }
    }

    pub fn forward(&self, t: Tensor<1, Int>) -> Tensor<2> {
        self.l2.forward(silu(
            self.l1.forward(sinusoidal_embedding(t, self.base_dim)),
        ))
    }
}

/// Learned class embedding with one extra row, index `num_classes`, for the null label that
/// classifier-free guidance trains with condition dropout.
#[derive(Module, Debug)]
pub struct ClassEmbedding {
    pub table: Param<Tensor<2>>,
    pub num_classes: usize,
}

impl ClassEmbedding {
    pub fn new(num_classes: usize, dim: usize, device: &Device) -> Self {
        ClassEmbedding {
            table: Initializer::Normal {
                mean: 0.0,
                std: 1.0,
            }
            .init([num_classes + 1, dim], device),
            num_classes,
        }
    }

    pub fn null_label(&self) -> usize {
        self.num_classes
    }

    /// Embeddings for `labels` (`None` = all null).
    pub fn forward(
        &self,
        labels: Option<Tensor<1, Int>>,
        batch: usize,
        device: &Device,
    ) -> Tensor<2> {
        let labels = labels
            .unwrap_or_else(|| Tensor::<1, Int>::full([batch], self.num_classes as i64, device));
        self.table.val().select(0, labels)
    }
}
