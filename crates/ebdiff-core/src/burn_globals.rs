//! Burn 0.22 keeps two pieces of state per *process*, not per device or thread:
//! - the backend RNG behind `Device::seed`, parameter initialization and dropout masks;
//! - the autodiff graph registry, whose cleanup at the end of every `backward()` can free the
//!   steps another thread is still building, so that thread silently loses gradients
//!   (tracel-ai/burn#5573). Measured with 0.22.1, the newest 0.22 release: two tiny trainings on
//!   two threads differ from the same trainings alone unless their steps take turns
//!   (`ebdiff-trainer/tests/threads.rs`).
//!
//! Every ebdiff function that seeds and then draws, or builds a graph and differentiates it,
//! holds [`exclusive`] for that section. Threads of one process (parallel tests, a host running
//! two trainings) then take turns there and stay bit-exact; a single thread pays one uncontended
//! lock per training step. The lock is not reentrant: take it only around leaf sections.

use burn::tensor::Device;
use std::sync::{Mutex, MutexGuard};

static BURN_GLOBALS: Mutex<()> = Mutex::new(());

/// Holds Burn's process-wide RNG and autodiff graph for this thread until the guard drops.
pub fn exclusive() -> MutexGuard<'static, ()> {
    // A panic while holding the lock leaves no state of ours behind it to repair.
    BURN_GLOBALS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Seeds the backend RNG of `device` and runs `draw` (an `init`, a `Tensor::random`) before any
/// other thread can reseed or draw from it.
pub fn seeded<T>(device: &Device, seed: u64, draw: impl FnOnce() -> T) -> T {
    let _guard = exclusive();
    device.seed(seed);
    draw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tensor};

    /// Two threads seeding and drawing at once each get their own seed's numbers: the property
    /// that a bare `device.seed(s); Tensor::random(..)` loses when another thread reseeds
    /// between the two calls.
    #[test]
    fn seeded_draws_are_not_disturbed_by_other_threads() {
        let device = Device::flex();
        let draw = |seed| {
            seeded(&device, seed, || {
                // Long enough that an unlocked reseed from the other thread lands inside it.
                (0..50)
                    .map(|_| {
                        Tensor::<1>::random([64], Distribution::Default, &device)
                            .into_data()
                            .try_to_vec::<f32>()
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        };
        let (a, b) = (draw(1), draw(2));
        assert_ne!(a, b);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..5 {
                        assert_eq!(draw(1), a);
                        assert_eq!(draw(2), b);
                    }
                });
            }
        });
    }
}
