//! Importance-weight bookkeeping for SMC (smc.md §5): log-sum-exp, effective sample size and
//! systematic resampling, on host f64 log-weights.

/// log Σ exp(aᵢ), stable; −∞ for an empty or all −∞ input.
pub fn log_sum_exp(a: &[f64]) -> f64 {
    let max = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + a.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Normalized weights Wᵢ = exp(aᵢ − LSE(a)).
pub fn normalized(log_w: &[f64]) -> Vec<f64> {
    let lse = log_sum_exp(log_w);
    log_w.iter().map(|v| (v - lse).exp()).collect()
}

/// Effective sample size (Σw)²/Σw² of log-weights, in particles (1 … N).
pub fn ess(log_w: &[f64]) -> f64 {
    let lse = log_sum_exp(log_w);
    let lse2 = log_sum_exp(&log_w.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
    (2.0 * lse - lse2).exp()
}

/// Systematic resampling: one uniform `u` ∈ [0, 1), N stratified points (u + i)/N through the
/// cumulative weights. Returns N ancestor indices, non-decreasing; particle i is copied
/// ⌊N Wᵢ⌋ or ⌈N Wᵢ⌉ times, so the expected count is exactly N Wᵢ (unbiased).
pub fn systematic(log_w: &[f64], u: f64) -> Vec<usize> {
    let n = log_w.len();
    let w = normalized(log_w);
    let mut out = Vec::with_capacity(n);
    let mut cumulative = w[0];
    let mut j = 0;
    for i in 0..n {
        let point = (u + i as f64) / n as f64;
        while point >= cumulative && j + 1 < n {
            j += 1;
            cumulative += w[j];
        }
        out.push(j);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sum_exp_and_ess_match_direct_sums() {
        let a = [0.1, -2.0, 3.5, 1.0];
        let direct: f64 = a.iter().map(|v: &f64| v.exp()).sum::<f64>().ln();
        assert!((log_sum_exp(&a) - direct).abs() < 1e-12);
        // Shifting all log-weights changes nothing; huge values do not overflow.
        let shifted: Vec<f64> = a.iter().map(|v| v + 1e4).collect();
        assert!((ess(&shifted) - ess(&a)).abs() < 1e-9);
        let w: Vec<f64> = a.iter().map(|v| v.exp()).collect();
        let want = w.iter().sum::<f64>().powi(2) / w.iter().map(|v| v * v).sum::<f64>();
        assert!((ess(&a) - want).abs() < 1e-9);
        assert!((ess(&[0.0; 7]) - 7.0).abs() < 1e-12);
        assert_eq!(log_sum_exp(&[f64::NEG_INFINITY; 3]), f64::NEG_INFINITY);
    }

    #[test]
    fn systematic_resampling_copies_each_particle_floor_or_ceil_of_n_w_times() {
        let log_w: Vec<f64> = [0.05, 0.4, 0.0001, 0.3, 0.2499]
            .iter()
            .map(|w: &f64| w.ln())
            .collect();
        let w = normalized(&log_w);
        for k in 0..50 {
            let u = (k as f64 + 0.5) / 50.0;
            let idx = systematic(&log_w, u);
            assert_eq!(idx.len(), 5);
            assert!(idx.windows(2).all(|p| p[0] <= p[1]));
            for (i, wi) in w.iter().enumerate() {
                let count = idx.iter().filter(|&&j| j == i).count() as f64;
                let nw = 5.0 * wi;
                assert!(
                    count >= nw.floor() - 1e-9 && count <= nw.ceil() + 1e-9,
                    "{i}: {count} vs {nw}"
                );
            }
        }
    }

    #[test]
    fn systematic_resampling_is_unbiased_over_the_uniform() {
        // E_u[count_i] = N Wᵢ exactly: average the counts over a fine grid of u.
        let log_w: Vec<f64> = [0.13, 0.02, 0.5, 0.35]
            .iter()
            .map(|w: &f64| w.ln())
            .collect();
        let grid = 100_000;
        let mut counts = [0.0f64; 4];
        for k in 0..grid {
            for i in systematic(&log_w, (k as f64 + 0.5) / grid as f64) {
                counts[i] += 1.0;
            }
        }
        for (c, w) in counts.iter().zip([0.13, 0.02, 0.5, 0.35]) {
            assert!((c / grid as f64 - 4.0 * w).abs() < 1e-4, "{c} vs {w}");
        }
    }
}
