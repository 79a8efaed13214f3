//! Arithmetic count of a pass through a model, from the shapes its layers actually see.
//!
//! Convolutions (forward and transposed), linear maps and attention's matrix products add
//! 2·m·n·k each: a multiply-add is two FLOPs, the convention of FLOP tables and of a device's
//! quoted peak. Normalizations, activations and other elementwise ops are not counted: they are
//! memory traffic, not arithmetic, and a few per cent of the products' FLOPs. The counter is
//! thread-local and off outside [`count`], so a layer pays one branch per call.
//!
//! For a training step, [`training_step`] applies the usual rule that a product's backward
//! computes two products of its own size (one per operand), so a step costs three times the
//! counted pass: 3·F for the score model, 3·(F + F_vjp) for an energy model, whose graph holds
//! the forward pass and the VJP. It slightly overcounts: the data's own gradient is not needed.

use std::cell::Cell;

thread_local! {
    static COUNTER: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` and returns its result with the FLOPs of the products it ran on this thread.
/// Nested calls each see their own part; the outer count includes the inner one.
pub fn count<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let outer = COUNTER.with(|c| c.replace(Some(0)));
    let out = f();
    let inner = COUNTER.with(|c| c.get()).unwrap_or(0);
    COUNTER.with(|c| c.set(outer.map(|o| o + inner)));
    (out, inner)
}

/// Whether a [`count`] is running on this thread: layers check it before reading the shapes
/// they count, so that outside a count they pay only this.
pub(crate) fn counting() -> bool {
    COUNTER.with(|c| c.get().is_some())
}

/// Adds `flops` to the running count, if one is running.
pub(crate) fn add(flops: u64) {
    COUNTER.with(|c| {
        if let Some(n) = c.get() {
            c.set(Some(n + flops));
        }
    });
}

/// 2·m·n·k: one `[m, k] × [k, n]` product.
pub(crate) fn matmul(m: usize, n: usize, k: usize) {
    add(2 * (m as u64) * (n as u64) * (k as u64));
}

/// A training step's FLOPs from the counted pass (see the module docs): three times it.
pub fn training_step(counted_pass: u64) -> u64 {
    3 * counted_pass
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_inside_and_nests() {
        matmul(2, 3, 4); // outside any count: dropped
        let ((), outer) = count(|| {
            matmul(2, 3, 4);
            let ((), inner) = count(|| matmul(1, 1, 5));
            assert_eq!(inner, 10);
        });
        assert_eq!(outer, 48 + 10);
        let ((), again) = count(|| ());
        assert_eq!(again, 0);
    }
}
