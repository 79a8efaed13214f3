//! The FID Inception-v3 trunk (TF `inception-2015-12-05`, pool3, 2048 features) in Burn, for
//! inference on any backend. Layer names follow the TorchScript FID network (`default_1.pt`):
//! `mixed_4.tower_1.conv_2` here is `net.layers.mixed_4.tower_1.conv_2` there.
//!
//! Every convolution of the original is conv → batch norm (no scale, ε = 1e-3) → ReLU; the
//! batch norm is folded into the convolution's weight and bias when weights are imported
//! (`weights.rs`), so a layer here is conv(+bias) → ReLU.

use super::resize::resize_tf1_bilinear;
use burn::module::{Module, Param};
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

/// Input side the network was trained at.
pub const INCEPTION_SIZE: usize = 299;
/// Feature dimension (pool3).
pub const FEATURE_DIM: usize = 2048;

/// Shape and placement of one convolution, as the weight import needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvSpec {
    /// TorchScript path below `net.layers.`, e.g. `mixed_4.tower_1.conv_2`.
    pub name: String,
    pub c_out: usize,
    pub c_in: usize,
    pub kernel: [usize; 2],
    pub stride: usize,
    pub padding: [usize; 2],
}

/// Folded parameters of one conv: weight `[c_out, c_in, kh, kw]` and bias `[c_out]`.
pub struct FoldedConv {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Where the parameters of each convolution come from while the network is built.
pub trait ConvSource {
    fn conv(&mut self, spec: &ConvSpec) -> Result<FoldedConv, String>;
}

/// Zero parameters: the skeleton a saved record is loaded into.
pub struct ZeroSource;

impl ConvSource for ZeroSource {
    fn conv(&mut self, s: &ConvSpec) -> Result<FoldedConv, String> {
        Ok(FoldedConv {
            weight: vec![0.0; s.c_out * s.c_in * s.kernel[0] * s.kernel[1]],
            bias: vec![0.0; s.c_out],
        })
    }
}

/// Uniform He-initialized weights (bias 0.01) from a seeded generator: a network whose features
/// mean nothing, for testing the pipelines around it without the real weights' download.
pub struct RandomSource(pub rand::rngs::StdRng);

impl ConvSource for RandomSource {
    fn conv(&mut self, s: &ConvSpec) -> Result<FoldedConv, String> {
        use rand::Rng;
        let fan_in = s.c_in * s.kernel[0] * s.kernel[1];
        let a = (6.0 / fan_in as f32).sqrt();
        Ok(FoldedConv {
            weight: (0..s.c_out * fan_in)
                .map(|_| self.0.random_range(-a..a))
                .collect(),
            bias: vec![0.01; s.c_out],
        })
    }
}

/// conv (bias = folded batch norm) → ReLU.
#[derive(Module, Debug)]
pub struct ConvRelu {
    pub weight: Param<Tensor<4>>,
    pub bias: Param<Tensor<1>>,
    pub stride: usize,
    pub pad_h: usize,
    pub pad_w: usize,
}

impl ConvRelu {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = conv2d(
            x,
            self.weight.val(),
            Some(self.bias.val()),
            ConvOptions::new(
                [self.stride, self.stride],
                [self.pad_h, self.pad_w],
                [1, 1],
                1,
            ),
        );
        burn::tensor::activation::relu(y)
    }
}

fn chain(layers: &[ConvRelu], x: Tensor<4>) -> Tensor<4> {
    layers.iter().fold(x, |x, l| l.forward(x))
}

/// The A and C blocks: 1×1 | tower | tower_1 | avg-pool → 1×1, concatenated on channels.
fn four_branches(
    conv: &ConvRelu,
    tower: &[ConvRelu],
    tower_1: &[ConvRelu],
    pool_conv: &ConvRelu,
    x: Tensor<4>,
) -> Tensor<4> {
    Tensor::cat(
        vec![
            conv.forward(x.clone()),
            chain(tower, x.clone()),
            chain(tower_1, x.clone()),
            pool_conv.forward(avg_pool_3x3_same(x)),
        ],
        1,
    )
}

fn max_pool_3x3_s2(x: Tensor<4>) -> Tensor<4> {
    max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2]))
}

/// 3×3, stride 1, padding 1; padded cells are not counted (TF's `SAME` average pooling).
fn avg_pool_3x3_same(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(
        x,
        AvgPoolOptions::new([3, 3])
            .with_stride([1, 1])
            .with_padding([1, 1])
            .with_count_include_pad(false),
    )
}

fn max_pool_3x3_same(x: Tensor<4>) -> Tensor<4> {
    max_pool2d(
        x,
        MaxPoolOptions::new([3, 3])
            .with_stride([1, 1])
            .with_padding([1, 1]),
    )
}

/// Builds layers in order, asking a [`ConvSource`] for each one's parameters.
/// One convolution of a tower: (c_in, c_out, kernel, stride, padding).
type TowerLayer = (usize, usize, [usize; 2], usize, [usize; 2]);

struct Builder<'a> {
    source: &'a mut dyn ConvSource,
    device: &'a Device,
}

impl Builder<'_> {
    fn conv(
        &mut self,
        name: String,
        c_in: usize,
        c_out: usize,
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
    ) -> Result<ConvRelu, String> {
        let spec = ConvSpec {
            name,
            c_out,
            c_in,
            kernel,
            stride,
            padding,
        };
        let p = self.source.conv(&spec)?;
        let shape = [c_out, c_in, kernel[0], kernel[1]];
        if p.weight.len() != shape.iter().product::<usize>() || p.bias.len() != c_out {
            return Err(format!(
                "{}: parameters of the wrong size for weight {shape:?}",
                spec.name
            ));
        }
        Ok(ConvRelu {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(p.weight, shape),
                self.device,
            )),
            bias: Param::from_tensor(Tensor::from_data(
                TensorData::new(p.bias, [c_out]),
                self.device,
            )),
            stride,
            pad_h: padding[0],
            pad_w: padding[1],
        })
    }

    /// `prefix.conv`, `prefix.conv_1`, … chained: (c_in → c_out, kernel, stride, padding).
    fn tower(&mut self, prefix: &str, layers: &[TowerLayer]) -> Result<Vec<ConvRelu>, String> {
        layers
            .iter()
            .enumerate()
            .map(|(i, &(ci, co, k, s, p))| {
                let name = if i == 0 {
                    format!("{prefix}.conv")
                } else {
                    format!("{prefix}.conv_{i}")
                };
                self.conv(name, ci, co, k, s, p)
            })
            .collect()
    }
}

const K1: [usize; 2] = [1, 1];
const K3: [usize; 2] = [3, 3];
const K5: [usize; 2] = [5, 5];
const K1X7: [usize; 2] = [1, 7];
const K7X1: [usize; 2] = [7, 1];
const K1X3: [usize; 2] = [1, 3];
const K3X1: [usize; 2] = [3, 1];
const P0: [usize; 2] = [0, 0];
const P1: [usize; 2] = [1, 1];

/// 35×35 block: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg-pool→1×1.
#[derive(Module, Debug)]
pub struct InceptionA {
    conv: ConvRelu,
    tower: Vec<ConvRelu>,
    tower_1: Vec<ConvRelu>,
    tower_2_conv: ConvRelu,
}

impl InceptionA {
    fn build(b: &mut Builder, name: &str, c_in: usize, pool: usize) -> Result<Self, String> {
        Ok(Self {
            conv: b.conv(format!("{name}.conv"), c_in, 64, K1, 1, P0)?,
            tower: b.tower(
                &format!("{name}.tower"),
                &[(c_in, 48, K1, 1, P0), (48, 64, K5, 1, [2, 2])],
            )?,
            tower_1: b.tower(
                &format!("{name}.tower_1"),
                &[
                    (c_in, 64, K1, 1, P0),
                    (64, 96, K3, 1, P1),
                    (96, 96, K3, 1, P1),
                ],
            )?,
            tower_2_conv: b.conv(format!("{name}.tower_2.conv"), c_in, pool, K1, 1, P0)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        four_branches(
            &self.conv,
            &self.tower,
            &self.tower_1,
            &self.tower_2_conv,
            x,
        )
    }
}

/// 35→17 reduction: 3×3/2 | 1×1→3×3→3×3/2 | max-pool/2.
#[derive(Module, Debug)]
pub struct InceptionB {
    conv: ConvRelu,
    tower: Vec<ConvRelu>,
}

impl InceptionB {
    fn build(b: &mut Builder, name: &str, c_in: usize) -> Result<Self, String> {
        Ok(Self {
            conv: b.conv(format!("{name}.conv"), c_in, 384, K3, 2, P0)?,
            tower: b.tower(
                &format!("{name}.tower"),
                &[
                    (c_in, 64, K1, 1, P0),
                    (64, 96, K3, 1, P1),
                    (96, 96, K3, 2, P0),
                ],
            )?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        Tensor::cat(
            vec![
                self.conv.forward(x.clone()),
                chain(&self.tower, x.clone()),
                max_pool_3x3_s2(x),
            ],
            1,
        )
    }
}

/// 17×17 block with factorised 7×7 convolutions.
#[derive(Module, Debug)]
pub struct InceptionC {
    conv: ConvRelu,
    tower: Vec<ConvRelu>,
    tower_1: Vec<ConvRelu>,
    tower_2_conv: ConvRelu,
}

impl InceptionC {
    fn build(b: &mut Builder, name: &str, c7: usize) -> Result<Self, String> {
        let (p17, p71) = ([0, 3], [3, 0]);
        Ok(Self {
            conv: b.conv(format!("{name}.conv"), 768, 192, K1, 1, P0)?,
            tower: b.tower(
                &format!("{name}.tower"),
                &[
                    (768, c7, K1, 1, P0),
                    (c7, c7, K1X7, 1, p17),
                    (c7, 192, K7X1, 1, p71),
                ],
            )?,
            tower_1: b.tower(
                &format!("{name}.tower_1"),
                &[
                    (768, c7, K1, 1, P0),
                    (c7, c7, K7X1, 1, p71),
                    (c7, c7, K1X7, 1, p17),
                    (c7, c7, K7X1, 1, p71),
                    (c7, 192, K1X7, 1, p17),
                ],
            )?,
            tower_2_conv: b.conv(format!("{name}.tower_2.conv"), 768, 192, K1, 1, P0)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        four_branches(
            &self.conv,
            &self.tower,
            &self.tower_1,
            &self.tower_2_conv,
            x,
        )
    }
}

/// 17→8 reduction.
#[derive(Module, Debug)]
pub struct InceptionD {
    tower: Vec<ConvRelu>,
    tower_1: Vec<ConvRelu>,
}

impl InceptionD {
    fn build(b: &mut Builder, name: &str) -> Result<Self, String> {
        Ok(Self {
            tower: b.tower(
                &format!("{name}.tower"),
                &[(768, 192, K1, 1, P0), (192, 320, K3, 2, P0)],
            )?,
            tower_1: b.tower(
                &format!("{name}.tower_1"),
                &[
                    (768, 192, K1, 1, P0),
                    (192, 192, K1X7, 1, [0, 3]),
                    (192, 192, K7X1, 1, [3, 0]),
                    (192, 192, K3, 2, P0),
                ],
            )?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        Tensor::cat(
            vec![
                chain(&self.tower, x.clone()),
                chain(&self.tower_1, x.clone()),
                max_pool_3x3_s2(x),
            ],
            1,
        )
    }
}

/// 8×8 block with split 1×3 / 3×1 branches. The first (`mixed_9`) pools by average, the
/// second (`mixed_10`) by maximum: a quirk of the TF graph that FID depends on.
#[derive(Module, Debug)]
pub struct InceptionE {
    conv: ConvRelu,
    tower_conv: ConvRelu,
    tower_mixed_conv: ConvRelu,
    tower_mixed_conv_1: ConvRelu,
    tower_1_conv: ConvRelu,
    tower_1_conv_1: ConvRelu,
    tower_1_mixed_conv: ConvRelu,
    tower_1_mixed_conv_1: ConvRelu,
    tower_2_conv: ConvRelu,
    max_pool: bool,
}

impl InceptionE {
    fn build(b: &mut Builder, name: &str, c_in: usize, max_pool: bool) -> Result<Self, String> {
        let mut c =
            |suffix: &str, ci, co, k, p| b.conv(format!("{name}.{suffix}"), ci, co, k, 1, p);
        Ok(Self {
            conv: c("conv", c_in, 320, K1, P0)?,
            tower_conv: c("tower_conv", c_in, 384, K1, P0)?,
            tower_mixed_conv: c("tower_mixed_conv", 384, 384, K1X3, [0, 1])?,
            tower_mixed_conv_1: c("tower_mixed_conv_1", 384, 384, K3X1, [1, 0])?,
            tower_1_conv: c("tower_1_conv", c_in, 448, K1, P0)?,
            tower_1_conv_1: c("tower_1_conv_1", 448, 384, K3, P1)?,
            tower_1_mixed_conv: c("tower_1_mixed_conv", 384, 384, K1X3, [0, 1])?,
            tower_1_mixed_conv_1: c("tower_1_mixed_conv_1", 384, 384, K3X1, [1, 0])?,
            tower_2_conv: c("tower_2_conv", c_in, 192, K1, P0)?,
            max_pool,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let a = self.tower_conv.forward(x.clone());
        let b = self
            .tower_1_conv_1
            .forward(self.tower_1_conv.forward(x.clone()));
        let pooled = if self.max_pool {
            max_pool_3x3_same(x.clone())
        } else {
            avg_pool_3x3_same(x.clone())
        };
        Tensor::cat(
            vec![
                self.conv.forward(x),
                self.tower_mixed_conv.forward(a.clone()),
                self.tower_mixed_conv_1.forward(a),
                self.tower_1_mixed_conv.forward(b.clone()),
                self.tower_1_mixed_conv_1.forward(b),
                self.tower_2_conv.forward(pooled),
            ],
            1,
        )
    }
}

/// The FID feature network: images in → pool3 features out.
#[derive(Module, Debug)]
pub struct InceptionV3 {
    /// `conv` … `conv_4`, max-pools after `conv_2` and `conv_4`.
    stem: Vec<ConvRelu>,
    mixed: InceptionA,
    mixed_1: InceptionA,
    mixed_2: InceptionA,
    mixed_3: InceptionB,
    mixed_4: InceptionC,
    mixed_5: InceptionC,
    mixed_6: InceptionC,
    mixed_7: InceptionC,
    mixed_8: InceptionD,
    mixed_9: InceptionE,
    mixed_10: InceptionE,
}

impl InceptionV3 {
    /// Builds the network, taking every convolution's parameters from `source` in a fixed order.
    pub fn build(source: &mut dyn ConvSource, device: &Device) -> Result<Self, String> {
        let b = &mut Builder { source, device };
        let stem = vec![
            b.conv("conv".into(), 3, 32, K3, 2, P0)?,
            b.conv("conv_1".into(), 32, 32, K3, 1, P0)?,
            b.conv("conv_2".into(), 32, 64, K3, 1, P1)?,
            b.conv("conv_3".into(), 64, 80, K1, 1, P0)?,
            b.conv("conv_4".into(), 80, 192, K3, 1, P0)?,
        ];
        Ok(Self {
            stem,
            mixed: InceptionA::build(b, "mixed", 192, 32)?,
            mixed_1: InceptionA::build(b, "mixed_1", 256, 64)?,
            mixed_2: InceptionA::build(b, "mixed_2", 288, 64)?,
            mixed_3: InceptionB::build(b, "mixed_3", 288)?,
            mixed_4: InceptionC::build(b, "mixed_4", 128)?,
            mixed_5: InceptionC::build(b, "mixed_5", 160)?,
            mixed_6: InceptionC::build(b, "mixed_6", 160)?,
            mixed_7: InceptionC::build(b, "mixed_7", 192)?,
            mixed_8: InceptionD::build(b, "mixed_8")?,
            mixed_9: InceptionE::build(b, "mixed_9", 1280, false)?,
            mixed_10: InceptionE::build(b, "mixed_10", 2048, true)?,
        })
    }

    /// An all-zero network of the right shape, to load a saved record into.
    pub fn skeleton(device: &Device) -> Self {
        Self::build(&mut ZeroSource, device).expect("zero parameters always fit")
    }

    /// Features of `[n, 3, h, w]` images with pixel values in [0, 255] (not rounded: generated
    /// images may be fractional). Resized to 299×299 with the TF1 bilinear resize, mapped to
    /// (p − 128)/128, and run through the trunk: `[n, 2048]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let [n, c, _, _] = images.dims();
        assert_eq!(c, 3, "the FID network takes RGB images; got {c} channels");
        let x = resize_tf1_bilinear(images, INCEPTION_SIZE, INCEPTION_SIZE);
        let x = (x - 128.0) / 128.0;
        let x = self.stem[0].forward(x);
        let x = self.stem[1].forward(x);
        let x = max_pool_3x3_s2(self.stem[2].forward(x));
        let x = self.stem[3].forward(x);
        let x = max_pool_3x3_s2(self.stem[4].forward(x));
        let x = self.mixed.forward(x);
        let x = self.mixed_1.forward(x);
        let x = self.mixed_2.forward(x);
        let x = self.mixed_3.forward(x);
        let x = self.mixed_4.forward(x);
        let x = self.mixed_5.forward(x);
        let x = self.mixed_6.forward(x);
        let x = self.mixed_7.forward(x);
        let x = self.mixed_8.forward(x);
        let x = self.mixed_9.forward(x);
        let x = self.mixed_10.forward(x);
        // pool2: the 8×8 map averaged to one value per channel.
        x.mean_dim(3).mean_dim(2).reshape([n, FEATURE_DIM])
    }
}
