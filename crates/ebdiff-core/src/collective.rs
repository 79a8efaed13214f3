//! The few collective operations ebdiff's multi-process paths need (data-parallel training,
//! sharded evaluation and sweeps), behind one object-safe trait so that the trainer, the eval
//! pipelines and the sweep runner stay free of any MPI dependency.
//!
//! [`Solo`] is the one-process group every command uses by default; `ebdiff-dist` provides the
//! MPI group (cargo feature `mpi`) and the launch-environment checks. Every rank must call the
//! same collectives in the same order, as with MPI itself.

/// A fixed group of processes ("ranks") that compute together.
pub trait Collective: Send + Sync {
    /// This process's index, `0..size()`.
    fn rank(&self) -> usize;
    /// Processes in the group.
    fn size(&self) -> usize;
    /// Element-wise sum over ranks, in place; every rank receives the same result.
    fn all_reduce_sum_f32(&self, values: &mut [f32]);
    /// Element-wise sum over ranks in f64, in place.
    fn all_reduce_sum_f64(&self, values: &mut [f64]);
    /// Every rank's bytes, in rank order, on rank 0 (`None` on the others).
    fn gather_bytes(&self, mine: &[u8]) -> Option<Vec<Vec<u8>>>;
    /// Every rank's bytes, in rank order, on every rank.
    fn all_gather_bytes(&self, mine: &[u8]) -> Vec<Vec<u8>>;
    /// Returns when every rank has called it.
    fn barrier(&self);
    /// What runs the group, for logs and result files ("single process", "Open MPI 4.1.4").
    fn describe(&self) -> String;

    /// Rank 0 writes files and logs; the others compute.
    fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// The contiguous part `[start, end)` of `0..n` that this rank owns: the first `n % size`
    /// ranks take one item more, so the parts cover `0..n` in rank order.
    fn share(&self, n: usize) -> std::ops::Range<usize> {
        share(n, self.rank(), self.size())
    }

    /// Rank 0's `value`, on every rank (e.g. a decision only rank 0 can take).
    fn broadcast_bytes(&self, value: &[u8]) -> Vec<u8> {
        let mine = if self.is_root() { value } else { &[] };
        self.all_gather_bytes(mine).swap_remove(0)
    }

    /// Concatenates every rank's `f32` values in rank order, on rank 0.
    fn gather_f32(&self, mine: &[f32]) -> Option<Vec<f32>> {
        let bytes: Vec<u8> = mine.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.gather_bytes(&bytes).map(|parts| {
            parts
                .iter()
                .flat_map(|p| p.chunks_exact(4))
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect()
        })
    }
}

/// The first rank that failed and its message, on every rank (`None` when all succeeded). Every
/// rank calls it after a step that may fail on some ranks only, so that all stop together
/// instead of leaving the others waiting in the next collective.
pub fn first_failure(group: &dyn Collective, mine: Option<String>) -> Option<(usize, String)> {
    if group.size() == 1 {
        return mine.map(|m| (0, m));
    }
    let all = group.all_gather_bytes(mine.unwrap_or_default().as_bytes());
    all.iter()
        .position(|m| !m.is_empty())
        .map(|r| (r, String::from_utf8_lossy(&all[r]).into_owned()))
}

/// The part of `0..n` that rank `rank` of `size` owns (see [`Collective::share`]).
pub fn share(n: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// The one-process group, shared (what `RunOptions::group` holds by default).
pub fn solo() -> std::sync::Arc<dyn Collective> {
    std::sync::Arc::new(Solo)
}

/// One process: every collective is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum_f32(&self, _values: &mut [f32]) {}
    fn all_reduce_sum_f64(&self, _values: &mut [f64]) {}
    fn gather_bytes(&self, mine: &[u8]) -> Option<Vec<Vec<u8>>> {
        Some(vec![mine.to_vec()])
    }
    fn all_gather_bytes(&self, mine: &[u8]) -> Vec<Vec<u8>> {
        vec![mine.to_vec()]
    }
    fn barrier(&self) {}
    fn describe(&self) -> String {
        "single process".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_range_in_rank_order_and_differ_by_at_most_one() {
        for n in 0..40 {
            for size in 1..7 {
                let parts: Vec<_> = (0..size).map(|r| share(n, r, size)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[size - 1].end, n);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start, "n {n} size {size}");
                    assert!(w[0].len() >= w[1].len() && w[0].len() - w[1].len() <= 1);
                }
            }
        }
        assert_eq!(share(10, 1, 4), 3..6);
    }

    #[test]
    fn solo_is_the_identity() {
        let mut v = vec![1.5f32, -2.0];
        Solo.all_reduce_sum_f32(&mut v);
        assert_eq!(v, [1.5, -2.0]);
        assert_eq!(Solo.gather_f32(&[3.0, 4.0]), Some(vec![3.0, 4.0]));
        assert_eq!(Solo.broadcast_bytes(b"x"), b"x");
        assert_eq!(Solo.share(5), 0..5);
    }
}
