//! The one progress/diagnostics callback type every sampler reports through.

/// Passed to a sampler's callback after each level (progress bars, live diagnostics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// The level just finished (the sample now lives at `level` − 1 for reverse steps).
    pub level: usize,
    /// Levels finished so far, 1 … `levels_total`.
    pub levels_done: usize,
    pub levels_total: usize,
    /// Target evaluations per chain so far.
    pub nfe: usize,
    /// Mean Metropolis acceptance at this level (MALA/HMC, SMC rejuvenation).
    pub acceptance: Option<f64>,
    /// Effective sample size of the SMC weights after this level, as a fraction of the particles.
    pub ess: Option<f64>,
}

impl Progress {
    /// A level of a sampler without acceptance or weights.
    pub fn plain(level: usize, levels_done: usize, levels_total: usize, nfe: usize) -> Self {
        Progress {
            level,
            levels_done,
            levels_total,
            nfe,
            acceptance: None,
            ess: None,
        }
    }
}
