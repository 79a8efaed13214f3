//! Data-parallel training over a [`Collective`] group (MPI ranks): every rank builds the same
//! global batch (a pure function of (seed, step)) and differentiates its own contiguous share;
//! the gradients are summed across ranks through one flat f32 host buffer, so every rank applies
//! the same update and keeps identical weights, EMA and optimizer state. A digest of that state,
//! compared across ranks at every checkpoint, catches a rank that drifted.
//!
//! Exactness: the per-rank gradients are weighted by (share / global batch), so their sum is the
//! single-process gradient in real arithmetic. In floating point the batch reduction inside each
//! backward happens in another order (two partial sums instead of one), which moves the result by
//! rounding only (≈1e-7 relative in f32); the tests bound weights, EMA and losses to 1e-6.

use crate::error::RunError;
use crate::optim_weights::optim_to_safetensors;
use crate::state::TrainState;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use ebdiff_core::Collective;
use ebdiff_core::module_weights::named_tensors;
use ebdiff_core::safetensors::SafeTensors;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One parameter's slot in the flat buffer.
struct Slot {
    id: ParamId,
    shape: Vec<usize>,
    offset: usize,
    present: bool,
}

/// Collects every float parameter's gradient (zeros where this rank has none) into one buffer.
struct Flatten<'a> {
    grads: &'a mut GradientsParams,
    slots: Vec<Slot>,
    buffer: Vec<f32>,
    device: Option<Device>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let offset = self.buffer.len();
        let (shape, present) = match self.grads.remove::<D>(param.id) {
            Some(g) => {
                self.device.get_or_insert_with(|| g.device());
                let shape = g.shape().dims::<D>().to_vec();
                let values = g
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("f32 gradient");
                self.buffer.extend_from_slice(&values);
                (shape, true)
            }
            None => {
                let shape = param.lazy_shape().dims::<D>().to_vec();
                self.buffer
                    .resize(offset + shape.iter().product::<usize>(), 0.0);
                (shape, false)
            }
        };
        self.slots.push(Slot {
            id: param.id,
            shape,
            offset,
            present,
        });
    }
}

/// Rebuilds [`GradientsParams`] from the reduced buffer.
struct Restore<'a> {
    slots: &'a [Slot],
    next: usize,
    buffer: &'a [f32],
    present: &'a [f64],
    device: &'a Device,
    grads: GradientsParams,
}

impl ModuleVisitor for Restore<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let (slot, present) = (&self.slots[self.next], self.present[self.next]);
        self.next += 1;
        debug_assert_eq!(slot.id, param.id, "the same walk as Flatten's");
        if present > 0.0 {
            let n: usize = slot.shape.iter().product();
            let values = self.buffer[slot.offset..slot.offset + n].to_vec();
            let data = TensorData::new(values, slot.shape.clone());
            self.grads
                .register::<D>(slot.id, Tensor::from_data(data, self.device));
        }
    }
}

/// Sums `grads` over the ranks of `group` (every rank calls this with its share's gradients,
/// already weighted by share / global batch) and `loss` alike. Returns the summed gradients
/// and loss, identical on every rank. ≈4 bytes per parameter go through the network per step.
pub fn all_reduce_gradients<M: Module>(
    group: &dyn Collective,
    model: &M,
    mut grads: GradientsParams,
    loss: f64,
) -> (GradientsParams, f64) {
    let mut flat = Flatten {
        grads: &mut grads,
        slots: Vec::new(),
        buffer: Vec::new(),
        device: None,
    };
    model.visit(&mut flat);
    let Flatten {
        slots,
        mut buffer,
        device,
        ..
    } = flat;
    // Which parameters received a gradient anywhere, and the loss, in f64 (exact counts).
    let mut side: Vec<f64> = slots
        .iter()
        .map(|s| f64::from(u8::from(s.present)))
        .collect();
    side.push(loss);
    group.all_reduce_sum_f32(&mut buffer);
    group.all_reduce_sum_f64(&mut side);
    let loss = side.pop().expect("pushed above");
    let device = device.unwrap_or_else(|| model.devices()[0].clone().inner());
    let mut restore = Restore {
        slots: &slots,
        next: 0,
        buffer: &buffer,
        present: &side,
        device: &device,
        grads: GradientsParams::new(),
    };
    model.visit(&mut restore);
    (restore.grads, loss)
}

/// sha256 of the training state every rank must share: live weights, EMA weights and optimizer
/// moments, as the checkpoint files would hold them.
pub fn state_digest(state: &TrainState) -> Result<String, String> {
    let mut h = Sha256::new();
    for tensors in [named_tensors(&state.model), named_tensors(&state.ema.model)] {
        h.update(
            SafeTensors {
                tensors,
                metadata: BTreeMap::new(),
            }
            .to_bytes(),
        );
    }
    h.update(optim_to_safetensors(&state.optim, &state.model)?.to_bytes());
    h.update(state.step.to_le_bytes());
    h.update(state.ema.updates.to_le_bytes());
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares [`state_digest`] across ranks (every rank calls it at the same step); an error names
/// the ranks whose state differs from rank 0's.
pub fn check_replicas(group: &dyn Collective, state: &TrainState) -> Result<(), RunError> {
    if group.size() == 1 {
        return Ok(());
    }
    let mine = state_digest(state).map_err(|e| RunError::Replicas(format!("digest: {e}")))?;
    let all = group.all_gather_bytes(mine.as_bytes());
    let differing: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(_, d)| *d != &all[0])
        .map(|(r, d)| {
            format!(
                "rank {r} ({})",
                String::from_utf8_lossy(&d[..12.min(d.len())])
            )
        })
        .collect();
    if differing.is_empty() {
        Ok(())
    } else {
        Err(RunError::Replicas(format!(
            "at step {} the weights, EMA or optimizer state of {} differ from rank 0's ({}); \
             the ranks no longer train the same model (a nondeterministic kernel, or different \
             binaries or data on different nodes). The last checkpoint before this step is \
             intact: resume from it after fixing the cause",
            state.step,
            differing.join(", "),
            String::from_utf8_lossy(&all[0][..12])
        )))
    }
}

/// Makes every rank return the same outcome of a step that may fail on some ranks only (setup,
/// rank 0's file writes): the first failing rank's error, named, on every rank. Without it a
/// rank that failed alone would leave the others waiting forever in the next collective.
pub fn agree<T>(group: &dyn Collective, result: Result<T, RunError>) -> Result<T, RunError> {
    if group.size() == 1 {
        return result;
    }
    let mine = result.as_ref().err().map(|e| e.to_string());
    match ebdiff_core::collective::first_failure(group, mine) {
        Some((rank, message)) if result.is_ok() => Err(RunError::OtherRank { rank, message }),
        _ => result,
    }
}

/// True on every rank when any rank asks to stop (Ctrl-C reaches ranks at different steps).
pub fn any_rank(group: &dyn Collective, flag: bool) -> bool {
    if group.size() == 1 {
        return flag;
    }
    let mut v = [f64::from(u8::from(flag))];
    group.all_reduce_sum_f64(&mut v);
    v[0] > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExperimentConfig;
    use crate::state::TrainState;
    use burn::tensor::Device;

    /// Two ranks where the other rank holds exactly this rank's values (sums double), except
    /// that `other_digest`, when set, is what the other rank reports in gathers.
    struct Mirror {
        other: Option<Vec<u8>>,
    }

    impl Collective for Mirror {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            2
        }
        fn all_reduce_sum_f32(&self, v: &mut [f32]) {
            v.iter_mut().for_each(|x| *x *= 2.0);
        }
        fn all_reduce_sum_f64(&self, v: &mut [f64]) {
            v.iter_mut().for_each(|x| *x *= 2.0);
        }
        fn gather_bytes(&self, mine: &[u8]) -> Option<Vec<Vec<u8>>> {
            Some(self.all_gather_bytes(mine))
        }
        fn all_gather_bytes(&self, mine: &[u8]) -> Vec<Vec<u8>> {
            vec![mine.to_vec(), self.other.clone().unwrap_or(mine.to_vec())]
        }
        fn barrier(&self) {}
        fn describe(&self) -> String {
            "mirror".into()
        }
    }

    fn state() -> TrainState {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/tiny/toy2d.toml");
        let cfg = ExperimentConfig::load(std::path::Path::new(path)).unwrap();
        let d = Device::flex().autodiff();
        let model = ebdiff_model::seeded_init(&d, 1, || cfg.model.init(20, &d));
        TrainState::new(model, &cfg.train_options().optimizer)
    }

    fn one_step_grads(state: &TrainState) -> GradientsParams {
        let d = state.model.devices()[0].clone();
        let schedule = ebdiff_core::ScheduleConfig::linear(20).build();
        let mut rng = ebdiff_core::rng::stream(3, "t");
        let x0: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
        let batch = crate::noise_batch(&x0, 2, None, &schedule, &mut rng, &d);
        // Burn's autodiff graph is process-wide: no other test may differentiate meanwhile.
        let _g = ebdiff_core::burn_globals::exclusive();
        GradientsParams::from_grads(
            crate::dsm_loss(&state.model, &batch).backward(),
            &state.model,
        )
    }

    #[test]
    fn gradients_and_loss_are_summed_over_ranks_and_rebuilt_for_every_parameter() {
        let s = state();
        let grads = one_step_grads(&s);
        let before = crate::GradNorms::compute(&s.model, &grads);
        let (summed, loss) = all_reduce_gradients(&Mirror { other: None }, &s.model, grads, 0.75);
        let after = crate::GradNorms::compute(&s.model, &summed);
        assert_eq!(loss, 1.5);
        assert_eq!(before.per_param.len(), after.per_param.len());
        for ((name, a), (_, b)) in before.per_param.iter().zip(&after.per_param) {
            assert!(
                (b - 2.0 * a).abs() <= 1e-6 * a.max(1e-12),
                "{name}: {a} → {b}"
            );
        }
    }

    #[test]
    fn a_rank_whose_state_differs_is_named() {
        let s = state();
        assert!(check_replicas(&Mirror { other: None }, &s).is_ok());
        let other = Mirror {
            other: Some(b"0123456789abcdef".to_vec()),
        };
        let msg = check_replicas(&other, &s).unwrap_err().to_string();
        assert!(
            msg.contains("rank 1 (0123456789ab)") && msg.contains("step 0"),
            "{msg}"
        );
        // The digest covers the EMA and the optimizer, not only the live weights.
        let d0 = state_digest(&s).unwrap();
        let mut t = state();
        t.ema.updates += 1;
        assert_ne!(state_digest(&t).unwrap(), d0);
        let mut t = state();
        let grads = one_step_grads(&t);
        t.model = t.optim.step(0.0, t.model, grads);
        assert_eq!(
            named_tensors(&t.model),
            named_tensors(&s.model),
            "lr 0: the weights stay"
        );
        assert_ne!(state_digest(&t).unwrap(), d0, "but Adam's moments moved");
    }

    #[test]
    fn one_failing_rank_fails_every_rank_with_its_message() {
        let failing = Mirror {
            other: Some(b"disk full".to_vec()),
        };
        match agree(&failing, Ok::<_, RunError>(3)) {
            Err(RunError::OtherRank { rank: 1, message }) => assert_eq!(message, "disk full"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        let own = agree(&failing, Err::<(), _>(RunError::Data("mine".into())));
        assert!(matches!(own, Err(RunError::Data(m)) if m == "mine"));
        assert!(any_rank(&Mirror { other: None }, true));
        assert!(!any_rank(&Mirror { other: None }, false));
    }
}
