//! Distances between two flat `[n, 2]` sample sets: kernel MMD² and the exact empirical
//! 2-Wasserstein distance (optimal assignment, as in Sjöberg et al.'s 2-D metrics).

const DIM: usize = 2;

fn points(name: &str, flat: &[f32]) -> Vec<[f64; 2]> {
    assert!(
        flat.len().is_multiple_of(DIM),
        "{name}: length {} is not a multiple of {DIM}",
        flat.len()
    );
    flat.chunks_exact(DIM)
        .map(|p| [p[0] as f64, p[1] as f64])
        .collect()
}

fn dist2(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
}

/// The bandwidths the toy metrics use with [`mmd2_rbf`] (sweeps and their reports): from below the
/// toys' mode width (σ = 0.075) to ring scale.
pub const MMD_BANDWIDTHS: [f64; 4] = [0.025, 0.05, 0.1, 0.2];

/// Unbiased MMD² between the laws of `a` and `b` (flat `[n, 2]`, `[m, 2]`, n, m ≥ 2) with the
/// kernel k(x, y) = Σ_h exp(−‖x − y‖² / (2h²)) over `bandwidths`. Being unbiased, it can be
/// slightly negative when the laws agree; a sum over bandwidths avoids tuning a single scale.
pub fn mmd2_rbf(a: &[f32], b: &[f32], bandwidths: &[f64]) -> f64 {
    assert!(
        !bandwidths.is_empty() && bandwidths.iter().all(|h| *h > 0.0 && h.is_finite()),
        "bandwidths must be a non-empty list of positive numbers, got {bandwidths:?}"
    );
    let (a, b) = (points("a", a), points("b", b));
    let (n, m) = (a.len(), b.len());
    assert!(
        n >= 2 && m >= 2,
        "need at least 2 points per set, got {n} and {m}"
    );
    let scales: Vec<f64> = bandwidths.iter().map(|h| -0.5 / (h * h)).collect();
    let k = |x: [f64; 2], y: [f64; 2]| {
        let d = dist2(x, y);
        scales.iter().map(|s| (s * d).exp()).sum::<f64>()
    };
    // Off-diagonal sums within a set, each unordered pair counted twice.
    let within = |s: &[[f64; 2]]| {
        let mut t = 0.0;
        for i in 0..s.len() {
            for j in 0..i {
                t += k(s[i], s[j]);
            }
        }
        2.0 * t / (s.len() * (s.len() - 1)) as f64
    };
    let cross: f64 = a
        .iter()
        .map(|&x| b.iter().map(|&y| k(x, y)).sum::<f64>())
        .sum();
    within(&a) + within(&b) - 2.0 * cross / (n * m) as f64
}

/// Exact 2-Wasserstein distance between two equal-size empirical laws (flat `[n, 2]`):
/// √(min over permutations σ of (1/n) Σ_i ‖a_i − b_σ(i)‖²), by an optimal assignment in f64.
pub fn w2_exact(a: &[f32], b: &[f32]) -> f64 {
    let (a, b) = (points("a", a), points("b", b));
    assert_eq!(a.len(), b.len(), "w2_exact needs equally many points");
    let n = a.len();
    if n == 0 {
        return 0.0;
    }
    let cost: Vec<f64> = a
        .iter()
        .flat_map(|&x| b.iter().map(move |&y| dist2(x, y)))
        .collect();
    let total: f64 = optimal_assignment(&cost, n)
        .iter()
        .enumerate()
        .map(|(i, &j)| cost[i * n + j])
        .sum();
    (total / n as f64).sqrt()
}

/// Minimum-cost perfect assignment for a row-major n × n cost matrix: returns `col[i]` for each
/// row i. Shortest augmenting paths with potentials (Hungarian / Jonker–Volgenant), O(n³).
pub fn optimal_assignment(cost: &[f64], n: usize) -> Vec<usize> {
    solve_assignment(cost, n).0
}

/// The assignment plus dual potentials (u, v) with u_i + v_j ≤ c_ij and equality on the
/// assignment: a certificate of optimality.
fn solve_assignment(cost: &[f64], n: usize) -> (Vec<usize>, Vec<f64>, Vec<f64>) {
    assert_eq!(cost.len(), n * n, "cost must be n × n");
    assert!(cost.iter().all(|c| c.is_finite()), "costs must be finite");
    // 1-based rows/columns; column 0 is the virtual start of each augmenting path.
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; n + 1];
    let mut row_of = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    let mut min_slack = vec![0.0; n + 1];
    let mut used = vec![false; n + 1];
    for i in 1..=n {
        row_of[0] = i;
        let mut j0 = 0;
        min_slack.fill(f64::INFINITY);
        used.fill(false);
        loop {
            used[j0] = true;
            let i0 = row_of[j0];
            let row = &cost[(i0 - 1) * n..i0 * n];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=n {
                if !used[j] {
                    let cur = row[j - 1] - u[i0] - v[j];
                    if cur < min_slack[j] {
                        min_slack[j] = cur;
                        way[j] = j0;
                    }
                    if min_slack[j] < delta {
                        delta = min_slack[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_slack[j] -= delta;
                }
            }
            j0 = j1;
            if row_of[j0] == 0 {
                break;
            }
        }
        // Flip the augmenting path.
        loop {
            let j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut col = vec![0; n];
    for j in 1..=n {
        col[row_of[j] - 1] = j - 1;
    }
    (col, u[1..].to_vec(), v[1..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebdiff_data::{ExactTarget2d, Toy2d};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::time::Instant;

    fn random_points(n: usize, rng: &mut StdRng) -> Vec<f32> {
        (0..2 * n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = vec![];
        for p in permutations(n - 1) {
            for k in 0..n {
                let mut q = p.clone();
                q.insert(k, n - 1);
                out.push(q);
            }
        }
        out
    }

    /// Minimum mean squared distance over all permutations.
    fn brute_force_w2(a: &[f32], b: &[f32]) -> f64 {
        let (a, b) = (points("a", a), points("b", b));
        let n = a.len();
        permutations(n)
            .iter()
            .map(|s| (0..n).map(|i| dist2(a[i], b[s[i]])).sum::<f64>())
            .fold(f64::INFINITY, f64::min)
            / n as f64
    }

    #[test]
    fn w2_matches_brute_force_on_tiny_sets() {
        let mut rng = StdRng::seed_from_u64(1);
        for n in 1..=7 {
            for _ in 0..20 {
                let a = random_points(n, &mut rng);
                let b = random_points(n, &mut rng);
                let w2 = w2_exact(&a, &b);
                let brute = brute_force_w2(&a, &b).sqrt();
                assert!((w2 - brute).abs() < 1e-12, "n = {n}: {w2} vs {brute}");
            }
        }
    }

    #[test]
    fn w2_of_a_translation_is_its_length() {
        let mut rng = StdRng::seed_from_u64(2);
        let a = random_points(300, &mut rng);
        let t = [0.3f32, -0.4];
        let b: Vec<f32> = a.iter().enumerate().map(|(i, x)| x + t[i % 2]).collect();
        assert!((w2_exact(&a, &b) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn w2_on_a_line_pairs_sorted_points() {
        let mut rng = StdRng::seed_from_u64(3);
        let n = 400;
        let xs: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let ys: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..2.0)).collect();
        let flat = |v: &[f64]| v.iter().flat_map(|&x| [x as f32, 0.0]).collect::<Vec<_>>();
        let (a, b) = (flat(&xs), flat(&ys));
        let mut sx: Vec<f64> = xs.iter().map(|&x| x as f32 as f64).collect();
        let mut sy: Vec<f64> = ys.iter().map(|&y| y as f32 as f64).collect();
        sx.sort_by(f64::total_cmp);
        sy.sort_by(f64::total_cmp);
        let sorted = (sx
            .iter()
            .zip(&sy)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            / n as f64)
            .sqrt();
        assert!((w2_exact(&a, &b) - sorted).abs() < 1e-12);
    }

    #[test]
    fn assignment_of_1000_points_is_certified_optimal() {
        let mut rng = StdRng::seed_from_u64(4);
        let n = 1000;
        let a = ExactTarget2d::ring_times_bar().sample(n, &mut rng);
        let b = Toy2d::ring(8, 0.5, 0.075).sample(n, &mut rng);
        let (pa, pb) = (points("a", &a), points("b", &b));
        let cost: Vec<f64> = pa
            .iter()
            .flat_map(|&x| pb.iter().map(move |&y| dist2(x, y)))
            .collect();
        let start = Instant::now();
        let (col, u, v) = solve_assignment(&cost, n);
        eprintln!("assignment of {n} points: {:.2?}", start.elapsed());
        let mut seen = vec![false; n];
        for &j in &col {
            assert!(!seen[j], "not a permutation");
            seen[j] = true;
        }
        // Dual feasibility and equal primal and dual values prove optimality.
        for i in 0..n {
            for j in 0..n {
                assert!(u[i] + v[j] <= cost[i * n + j] + 1e-9);
            }
        }
        let primal: f64 = (0..n).map(|i| cost[i * n + col[i]]).sum();
        let dual: f64 = u.iter().sum::<f64>() + v.iter().sum::<f64>();
        assert!(
            (primal - dual).abs() < 1e-9 * primal.max(1.0),
            "{primal} vs {dual}"
        );
        let identity: f64 = (0..n).map(|i| cost[i * n + i]).sum();
        assert!(primal < 0.5 * identity);
        assert!((w2_exact(&a, &b) - (primal / n as f64).sqrt()).abs() < 1e-12);
    }

    const BANDWIDTHS: [f64; 3] = [0.05, 0.2, 0.8];

    #[test]
    fn mmd_is_near_zero_for_one_law_and_positive_for_different_laws() {
        let mut rng = StdRng::seed_from_u64(5);
        let n = 1000;
        let ring = Toy2d::ring(8, 0.5, 0.075);
        let (x, y) = (ring.sample(n, &mut rng), ring.sample(n, &mut rng));
        let same = mmd2_rbf(&x, &y, &BANDWIDTHS);
        let product = ExactTarget2d::ring_times_bar().sample(n, &mut rng);
        let different = mmd2_rbf(&x, &product, &BANDWIDTHS);
        let wider = Toy2d::ring(8, 0.5, 0.1).sample(n, &mut rng);
        let close = mmd2_rbf(&x, &wider, &BANDWIDTHS);
        eprintln!("MMD²: same {same:.2e}, wider ring {close:.2e}, ring vs product {different:.2e}");
        assert!(same.abs() < 2e-3, "{same}");
        assert!(close > 5.0 * same.abs(), "{close} vs {same}");
        assert!(different > 0.1, "{different}");
        // Symmetric, and exactly unbiased structure: swapping the sets changes nothing.
        assert!((mmd2_rbf(&product, &x, &BANDWIDTHS) - different).abs() < 1e-12);
    }

    #[test]
    fn mmd_matches_a_hand_computed_value() {
        // a = {0, 1}, b = {0, 2} on the x-axis, one bandwidth h = 1: k(d) = exp(−d²/2).
        let a = [0.0, 0.0, 1.0, 0.0];
        let b = [0.0, 0.0, 2.0, 0.0];
        let k = |d: f64| (-d * d / 2.0).exp();
        let expected = k(1.0) + k(2.0) - 0.5 * (k(0.0) + k(2.0) + k(1.0) + k(1.0));
        assert!((mmd2_rbf(&a, &b, &[1.0]) - expected).abs() < 1e-15);
    }
}
