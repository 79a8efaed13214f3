//! The VJP contract as a trait, its combinators, and the layer visitor.
//!
//! * Every layer implements two traits. [`Vjp<X>`]: its output type, a typed [`Vjp::Cache`] and
//!   [`Vjp::vjp`], which pulls a cotangent of the output back to the input `X`.
//!   [`Layer<X, C>`]: the forward pass [`Layer::forward_cached`] that produces that cache, under a
//!   context `C` that is never differentiated (time/class embeddings, the training flag;
//!   DEVELOPERS.md rule 2). The cache is an associated type, so handing a layer another layer
//!   type's cache is a compile error; the split keeps the cache and the VJP independent of the
//!   context, so layers that ignore the context implement `Layer<X, C>` for every `C`.
//! * Combinators build blocks from parts, deriving the VJP: [`Seq`] (the [`seq!`] macro for
//!   longer chains), [`Sum`] / [`residual`], [`Stack`] (a `Vec` of equal layers in sequence),
//!   `Option<L>` (identity when absent), [`Named`] (exposes a child to the visitor) and the
//!   reshapes [`Flatten`] / [`Unflatten`].
//! * [`Visitor`]: every composite runs its children through [`Visitor::child`] inside
//!   [`Layer::forward_visit`]. The plain forward pass ([`Plain`]) just runs them; the gradient
//!   checker (`gradcheck::LayerChecker`) checks each child on the very input it receives in the
//!   model's forward pass and recurses. So a layer that a block runs through the visitor is
//!   checked without being registered anywhere.
//!
//! Everything here is ordinary differentiable Burn code: nothing is detached, so autodiff
//! differentiates a VJP with respect to the parameters (see DEVELOPERS.md).

use burn::tensor::{Gradients, Tensor, TensorData};
use ebdiff_core::rng::normal_vec;
use rand::rngs::StdRng;
use std::fmt::Display;

/// Something a layer takes or returns and that can be differentiated: what the generic gradient
/// checks need to draw random cotangents and directions, and to compare results.
pub trait Value: Clone {
    /// Standard normal values of the same shape, on the same device.
    fn randn_like(&self, rng: &mut StdRng) -> Self;
    /// ⟨self, other⟩ as a one-element tensor (differentiable).
    fn dot(&self, other: &Self) -> Tensor<1>;
    /// self + h·dir.
    fn plus_scaled(&self, dir: &Self, h: f64) -> Self;
    /// A fresh autodiff leaf with the same values.
    fn leaf(&self) -> Self;
    /// The gradient of a leaf made with [`Value::leaf`].
    fn grad(&self, grads: &Gradients) -> Option<Self>;
    /// All entries, flattened, as f64.
    fn to_f64(self) -> Vec<f64>;
}

impl<const D: usize> Value for Tensor<D> {
    fn randn_like(&self, rng: &mut StdRng) -> Self {
        let shape = self.dims();
        let n = shape.iter().product();
        Tensor::from_data(TensorData::new(normal_vec(rng, n), shape), &self.device())
    }
    fn dot(&self, other: &Self) -> Tensor<1> {
        (self.clone() * other.clone()).sum()
    }
    fn plus_scaled(&self, dir: &Self, h: f64) -> Self {
        self.clone() + dir.clone().mul_scalar(h)
    }
    fn leaf(&self) -> Self {
        self.clone().detach().require_grad()
    }
    fn grad(&self, grads: &Gradients) -> Option<Self> {
        Tensor::grad(self, grads)
    }
    fn to_f64(self) -> Vec<f64> {
        self.into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .expect("float tensor data")
    }
}

/// The backward half of a layer: an explicit, differentiable vector-Jacobian product with
/// respect to the input `X`.
pub trait Vjp<X: Value> {
    type Output: Value;
    /// What the VJP needs from the forward pass. Never detach anything stored here.
    type Cache;

    /// gᵀ·∂y/∂x for the forward pass that produced `cache`.
    fn vjp(&self, cache: &Self::Cache, g: Self::Output) -> X;

    /// What kind of layer this is, for reports (the type name without module paths).
    fn kind(&self) -> String {
        short_type_name(std::any::type_name::<Self>())
    }
}

/// The forward half of a layer: the output and the cache that [`Vjp::vjp`] takes. `C` is a
/// context that the output depends on but that is never differentiated. Layers that ignore it
/// implement the trait for every `C`, so they fit into any block.
pub trait Layer<X: Value, C = ()>: Vjp<X> {
    /// The forward pass. Composite layers run each child through `visitor.child(name, ..)`
    /// (or wrap it in [`Named`] / [`Stack`]); leaves ignore the visitor.
    fn forward_visit<V: Visitor>(
        &self,
        x: X,
        ctx: &C,
        visitor: &mut V,
    ) -> (Self::Output, Self::Cache);

    /// The forward pass and its cache.
    fn forward_cached(&self, x: X, ctx: &C) -> (Self::Output, Self::Cache) {
        self.forward_visit(x, ctx, &mut Plain)
    }
}

/// Sits on the forward pass of a model: every composite layer hands each child, with the input
/// and context it is about to receive, to [`Visitor::child`], which must return the child's
/// forward result (normally `layer.forward_visit(x, ctx, self)`).
pub trait Visitor {
    fn child<X: Value, C, L: Layer<X, C>>(
        &mut self,
        name: &dyn Display,
        layer: &L,
        x: X,
        ctx: &C,
    ) -> (L::Output, L::Cache);
}

/// The plain forward pass: runs the children and nothing else.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Visitor for Plain {
    fn child<X: Value, C, L: Layer<X, C>>(
        &mut self,
        _name: &dyn Display,
        layer: &L,
        x: X,
        ctx: &C,
    ) -> (L::Output, L::Cache) {
        layer.forward_visit(x, ctx, self)
    }
}

/// `crate::layers::conv::Conv2d` → `Conv2d`: module paths and lifetimes dropped, generic
/// arguments kept (`Stack<MlpBlock>`).
pub fn short_type_name(full: &str) -> String {
    let mut out = String::new();
    let mut segment = String::new();
    let flush = |segment: &mut String, out: &mut String| {
        if !segment.starts_with('\'') {
            out.push_str(segment.rsplit("::").next().unwrap_or(""));
        }
        segment.clear();
    };
    for ch in full.chars() {
        if ch.is_alphanumeric() || ch == '_' || ch == ':' || ch == '\'' {
            segment.push(ch);
        } else {
            flush(&mut segment, &mut out);
            out.push(ch);
        }
    }
    flush(&mut segment, &mut out);
    // What dropped lifetimes leave behind.
    let out = out
        .replace("<, ", "<")
        .replace("<>", "")
        .replace(", >", ">");
    out.trim_start_matches('&').to_string()
}

// ---------------------------------------------------------------------------------------------
// Combinators.

impl<X: Value, L: Vjp<X>> Vjp<X> for &L {
    type Output = L::Output;
    type Cache = L::Cache;
    fn vjp(&self, cache: &L::Cache, g: L::Output) -> X {
        (**self).vjp(cache, g)
    }
    fn kind(&self) -> String {
        (**self).kind()
    }
}

impl<X: Value, C, L: Layer<X, C>> Layer<X, C> for &L {
    fn forward_visit<V: Visitor>(&self, x: X, ctx: &C, v: &mut V) -> (L::Output, L::Cache) {
        (**self).forward_visit(x, ctx, v)
    }
}

/// A child exposed to the visitor under `name` (its module field name). `L` is usually a
/// reference to the field.
#[derive(Debug, Clone, Copy)]
pub struct Named<L>(pub &'static str, pub L);

impl<X: Value, L: Vjp<X>> Vjp<X> for Named<L> {
    type Output = L::Output;
    type Cache = L::Cache;
    fn vjp(&self, cache: &L::Cache, g: L::Output) -> X {
        self.1.vjp(cache, g)
    }
    fn kind(&self) -> String {
        self.1.kind()
    }
}

impl<X: Value, C, L: Layer<X, C>> Layer<X, C> for Named<L> {
    fn forward_visit<V: Visitor>(&self, x: X, ctx: &C, v: &mut V) -> (L::Output, L::Cache) {
        v.child(&self.0, &self.1, x, ctx)
    }
}

/// y = x.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

impl<X: Value> Vjp<X> for Identity {
    type Output = X;
    type Cache = ();
    fn vjp(&self, _: &(), g: X) -> X {
        g
    }
}

impl<X: Value, C> Layer<X, C> for Identity {
    fn forward_visit<V: Visitor>(&self, x: X, _: &C, _: &mut V) -> (X, ()) {
        (x, ())
    }
}

/// b ∘ a: y = b(a(x)); gᵀJ = (gᵀJ_b) J_a.
#[derive(Debug, Clone, Copy)]
pub struct Seq<A, B>(pub A, pub B);

impl<X: Value, A: Vjp<X>, B: Vjp<A::Output>> Vjp<X> for Seq<A, B> {
    type Output = B::Output;
    type Cache = (A::Cache, B::Cache);
    fn vjp(&self, cache: &Self::Cache, g: B::Output) -> X {
        self.0.vjp(&cache.0, self.1.vjp(&cache.1, g))
    }
}

impl<X: Value, C, A: Layer<X, C>, B: Layer<A::Output, C>> Layer<X, C> for Seq<A, B> {
    fn forward_visit<V: Visitor>(&self, x: X, ctx: &C, v: &mut V) -> (B::Output, Self::Cache) {
        let (y, ca) = self.0.forward_visit(x, ctx, v);
        let (z, cb) = self.1.forward_visit(y, ctx, v);
        (z, (ca, cb))
    }
}

/// `seq![a, b, c]` = `Seq(a, Seq(b, c))`: the layers applied left to right.
#[macro_export]
macro_rules! seq {
    ($a:expr $(,)?) => { $a };
    ($a:expr, $($rest:expr),+ $(,)?) => { $crate::vjp::Seq($a, $crate::seq!($($rest),+)) };
}

/// The type of [`seq!`]: `Seq![A, B, C]` = `Seq<A, Seq<B, C>>`.
#[macro_export]
macro_rules! Seq {
    ($a:ty $(,)?) => { $a };
    ($a:ty, $($rest:ty),+ $(,)?) => { $crate::vjp::Seq<$a, $crate::Seq!($($rest),+)> };
}

/// y = a(x) + b(x); gᵀJ = gᵀJ_a + gᵀJ_b.
#[derive(Debug, Clone, Copy)]
pub struct Sum<A, B>(pub A, pub B);

impl<X, Y, A, B> Vjp<X> for Sum<A, B>
where
    X: Value + std::ops::Add<Output = X>,
    Y: Value,
    A: Vjp<X, Output = Y>,
    B: Vjp<X, Output = Y>,
{
    type Output = Y;
    type Cache = (A::Cache, B::Cache);
    fn vjp(&self, cache: &Self::Cache, g: Y) -> X {
        self.0.vjp(&cache.0, g.clone()) + self.1.vjp(&cache.1, g)
    }
}

impl<X, Y, C, A, B> Layer<X, C> for Sum<A, B>
where
    X: Value + std::ops::Add<Output = X>,
    Y: Value + std::ops::Add<Output = Y>,
    A: Layer<X, C, Output = Y>,
    B: Layer<X, C, Output = Y>,
{
    fn forward_visit<V: Visitor>(&self, x: X, ctx: &C, v: &mut V) -> (Y, Self::Cache) {
        let (ya, ca) = self.0.forward_visit(x.clone(), ctx, v);
        let (yb, cb) = self.1.forward_visit(x, ctx, v);
        (ya + yb, (ca, cb))
    }
}

/// A residual connection y = x + f(x).
pub type Residual<F> = Sum<Identity, F>;

/// y = x + f(x).
pub fn residual<F>(f: F) -> Residual<F> {
    Sum(Identity, f)
}

/// An optional layer: the identity when absent. The cache comes from this same layer's forward
/// pass (as for every VJP), so it is `Some` exactly when the layer is.
impl<X: Value, L: Vjp<X, Output = X>> Vjp<X> for Option<L> {
    type Output = X;
    type Cache = Option<L::Cache>;
    fn vjp(&self, cache: &Self::Cache, g: X) -> X {
        match self.as_ref().zip(cache.as_ref()) {
            Some((layer, c)) => layer.vjp(c, g),
            None => g,
        }
    }
    fn kind(&self) -> String {
        match self {
            Some(layer) => layer.kind(),
            None => "Identity".into(),
        }
    }
}

impl<X: Value, C, L: Layer<X, C, Output = X>> Layer<X, C> for Option<L> {
    fn forward_visit<V: Visitor>(&self, x: X, ctx: &C, v: &mut V) -> (X, Self::Cache) {
        match self {
            Some(layer) => {
                let (y, c) = layer.forward_visit(x, ctx, v);
                (y, Some(c))
            }
            None => (x, None),
        }
    }
}

/// Equal layers applied in sequence (a `Vec` field of a module). Each is exposed to the visitor
/// as `name.i`.
#[derive(Debug, Clone, Copy)]
pub struct Stack<'a, L>(pub &'static str, pub &'a [L]);

impl<X: Value, L: Vjp<X, Output = X>> Vjp<X> for Stack<'_, L> {
    type Output = X;
    type Cache = Vec<L::Cache>;
    fn vjp(&self, cache: &Vec<L::Cache>, mut g: X) -> X {
        for (layer, c) in self.1.iter().zip(cache).rev() {
            g = layer.vjp(c, g);
        }
        g
    }
}

impl<X: Value, C, L: Layer<X, C, Output = X>> Layer<X, C> for Stack<'_, L> {
    fn forward_visit<V: Visitor>(&self, mut x: X, ctx: &C, v: &mut V) -> (X, Vec<L::Cache>) {
        let mut caches = Vec::with_capacity(self.1.len());
        for (i, layer) in self.1.iter().enumerate() {
            let (y, c) = v.child(&format_args!("{}.{i}", self.0), layer, x, ctx);
            x = y;
            caches.push(c);
        }
        (x, caches)
    }
}

/// `[B, C·H·W]` → `[B, C, H, W]`.
#[derive(Debug, Clone, Copy)]
pub struct Unflatten(pub [usize; 3]);

impl Vjp<Tensor<2>> for Unflatten {
    type Output = Tensor<4>;
    type Cache = ();
    fn vjp(&self, _: &(), g: Tensor<4>) -> Tensor<2> {
        let [b, c, h, w] = g.dims();
        g.reshape([b, c * h * w])
    }
}

impl<C> Layer<Tensor<2>, C> for Unflatten {
    fn forward_visit<V: Visitor>(&self, x: Tensor<2>, _: &C, _: &mut V) -> (Tensor<4>, ()) {
        let [c, h, w] = self.0;
        let b = x.dims()[0];
        (x.reshape([b, c, h, w]), ())
    }
}

/// `[B, C, H, W]` → `[B, C·H·W]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flatten;

impl Vjp<Tensor<4>> for Flatten {
    type Output = Tensor<2>;
    type Cache = [usize; 4];
    fn vjp(&self, dims: &[usize; 4], g: Tensor<2>) -> Tensor<4> {
        g.reshape(*dims)
    }
}

impl<C> Layer<Tensor<4>, C> for Flatten {
    fn forward_visit<V: Visitor>(&self, x: Tensor<4>, _: &C, _: &mut V) -> (Tensor<2>, [usize; 4]) {
        let dims = x.dims();
        (x.reshape([dims[0], dims[1] * dims[2] * dims[3]]), dims)
    }
}

#[cfg(test)]
mod tests {
    use super::short_type_name;

    #[test]
    fn short_type_names() {
        assert_eq!(
            short_type_name("ebdiff_model::layers::conv::Conv2d"),
            "Conv2d"
        );
        assert_eq!(
            short_type_name("&ebdiff_model::vjp::Stack<ebdiff_model::backbone::mlp2d::MlpBlock>"),
            "Stack<MlpBlock>"
        );
        assert_eq!(
            short_type_name("ebdiff_model::layers::conditioning::Shift<'_>"),
            "Shift"
        );
        assert_eq!(
            short_type_name("ebdiff_model::vjp::Stack<'_, ebdiff_model::layers::conv::Conv2d>"),
            "Stack<Conv2d>"
        );
    }
}
