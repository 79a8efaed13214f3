//! Seeded initialization that is actually seeded. Burn's initializers create *lazy* parameters:
//! the random draw happens at the first access, not in `init`. So `device.seed(s); cfg.init(..)`
//! fixes nothing by itself: the draws come from whatever the process-wide RNG holds at first use
//! (another thread may have reseeded it or drawn from it; the training step reseeds it for
//! dropout). [`seeded_init`] draws every parameter inside the seeded section, in module order.
//! Plain `init` stays lazy on purpose: a model built only to receive a checkpoint draws nothing.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

struct Touch;

impl ModuleVisitor for Touch {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // `val` runs the deferred initializer (once; clones share it).
        let _ = param.val();
    }
}

/// The module `init` builds, with every parameter drawn from the backend RNG seeded with `seed`
/// while no other thread can touch that RNG (`ebdiff_core::burn_globals`).
pub fn seeded_init<M: Module>(device: &Device, seed: u64, init: impl FnOnce() -> M) -> M {
    ebdiff_core::burn_globals::seeded(device, seed, || {
        let module = init();
        module.visit(&mut Touch);
        module
    })
}
