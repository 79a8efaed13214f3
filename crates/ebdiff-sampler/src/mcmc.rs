//! MCMC kernels on a level target (method.md §4.3–4.6, §6): ULA, MALA, unadjusted HMC and HMC
//! with a Metropolis–Hastings correction. Accept/reject decisions are made per example.
//!
//! For score-only targets, MALA and HMC estimate f(x') − f(x) by integrating the score along a
//! path (Sjöberg et al.): the trapezoid rule on the straight line for MALA, on the leapfrog path
//! for HMC. For energy targets the difference is exact.

use crate::target::{Evaluation, Target};
use burn::tensor::{Bool, Tensor, TensorData};
use ebdiff_core::rng::{normal_vec, uniform_vec};
use rand::rngs::StdRng;

/// Row-wise ⟨a, b⟩, `[B]`.
pub fn row_dot(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    (a * b).sum_dim(1).squeeze_dim(1)
}

fn randn_like(x: &Tensor<2>, rng: &mut StdRng) -> Tensor<2> {
    let shape = x.dims();
    Tensor::from_data(
        TensorData::new(normal_vec(rng, shape[0] * shape[1]), shape),
        &x.device(),
    )
}

/// Per-example MH decision: accept where log U < log a.
fn accept_mask(log_a: Tensor<1>, rng: &mut StdRng) -> Tensor<1, Bool> {
    let b = log_a.dims()[0];
    let u: Vec<f32> = uniform_vec(rng, b)
        .into_iter()
        .map(|u| u.max(f32::MIN_POSITIVE).ln())
        .collect();
    let log_u = Tensor::<1>::from_data(TensorData::new(u, [b]), &log_a.device());
    // NaN log a (an exploded proposal) compares false: rejected.
    log_u.lower(log_a)
}

fn select2(mask: &Tensor<1, Bool>, yes: Tensor<2>, no: Tensor<2>) -> Tensor<2> {
    let d = no.dims()[1];
    let m = mask
        .clone()
        .unsqueeze_dim::<2>(1)
        .expand([mask.dims()[0], d]);
    no.mask_where(m, yes)
}

fn select1(mask: &Tensor<1, Bool>, yes: Tensor<1>, no: Tensor<1>) -> Tensor<1> {
    no.mask_where(mask.clone(), yes)
}

fn select_eval(mask: &Tensor<1, Bool>, yes: Evaluation, no: Evaluation) -> Evaluation {
    Evaluation {
        score: select2(mask, yes.score, no.score),
        log_density: match (yes.log_density, no.log_density) {
            (Some(a), Some(b)) => Some(select1(mask, a, b)),
            _ => None,
        },
    }
}

/// Trapezoid estimate of ∫ s·dz along the polyline through `points`, given the scores there.
fn trapezoid_path(points: &[Tensor<2>], scores: &[Tensor<2>]) -> Tensor<1> {
    let mut total: Option<Tensor<1>> = None;
    for k in 0..points.len() - 1 {
        let seg = row_dot(
            (scores[k].clone() + scores[k + 1].clone()).mul_scalar(0.5),
            points[k + 1].clone() - points[k].clone(),
        );
        total = Some(match total {
            Some(t) => t + seg,
            None => seg,
        });
    }
    total.expect("a path has at least two points")
}

/// Result of one kernel application.
pub struct StepOutcome {
    pub x: Tensor<2>,
    pub eval: Evaluation,
    pub momentum: Option<Tensor<2>>,
    /// Per-example acceptance (1/0) for MH kernels.
    pub accepted: Option<Tensor<1>>,
    /// Target evaluations spent.
    pub nfe: usize,
}

/// ULA: x' = x + η s(x) + √(2η) ξ. `eval` is the evaluation at x (reused, not recomputed).
pub fn ula_step(
    target: &dyn Target,
    x: Tensor<2>,
    eval: Evaluation,
    level: usize,
    eta: f64,
    rng: &mut StdRng,
) -> StepOutcome {
    let _ = eval.log_density;
    let xi = randn_like(&x, rng);
    let x_new = x + eval.score.mul_scalar(eta) + xi.mul_scalar((2.0 * eta).sqrt());
    let eval = target.evaluate(x_new.clone(), level);
    StepOutcome {
        x: x_new,
        eval,
        momentum: None,
        accepted: None,
        nfe: 1,
    }
}

/// MALA with per-example MH. Proposal N(x + η s(x), 2η I): log q(x'|x) = −‖x' − x − η s(x)‖²/(4η).
/// `line_points` (≥ 2) trapezoid points estimate Δf for score-only targets.
pub fn mala_step(
    target: &dyn Target,
    x: Tensor<2>,
    eval: Evaluation,
    level: usize,
    eta: f64,
    line_points: usize,
    rng: &mut StdRng,
) -> StepOutcome {
    let xi = randn_like(&x, rng);
    let prop = x.clone() + eval.score.clone().mul_scalar(eta) + xi.mul_scalar((2.0 * eta).sqrt());
    let eval_p = target.evaluate(prop.clone(), level);
    let mut nfe = 1;
    let fwd = prop.clone() - x.clone() - eval.score.clone().mul_scalar(eta);
    let bwd = x.clone() - prop.clone() - eval_p.score.clone().mul_scalar(eta);
    let log_q_ratio = (row_dot(fwd.clone(), fwd) - row_dot(bwd.clone(), bwd)).div_scalar(4.0 * eta);
    let delta_f = match (&eval.log_density, &eval_p.log_density) {
        (Some(f0), Some(f1)) => f1.clone() - f0.clone(),
        _ => {
            let n = line_points.max(2);
            let mut points = vec![x.clone()];
            let mut scores = vec![eval.score.clone()];
            for j in 1..n - 1 {
                let tau = j as f64 / (n - 1) as f64;
                let z = x.clone().mul_scalar(1.0 - tau) + prop.clone().mul_scalar(tau);
                scores.push(target.score(z.clone(), level));
                points.push(z);
                nfe += 1;
            }
            points.push(prop.clone());
            scores.push(eval_p.score.clone());
            trapezoid_path(&points, &scores)
        }
    };
    let mask = accept_mask(delta_f + log_q_ratio, rng);
    let accepted = mask.clone().float();
    StepOutcome {
        x: select2(&mask, prop, x),
        eval: select_eval(&mask, eval_p, eval),
        momentum: None,
        accepted: Some(accepted),
        nfe,
    }
}

/// Options of the HMC kernels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HmcParams {
    /// Leapfrog step ε.
    pub step: f64,
    /// Leapfrog steps L.
    pub leapfrog: usize,
    /// Momentum persistence γ: v' = γ v + √(1 − γ²) m ξ.
    pub damping: f64,
    /// Mass scale m (M = m² I).
    pub mass: f64,
    /// Metropolis–Hastings correction (HMC) or none (U-HMC).
    pub metropolis: bool,
    /// Negate the momentum on rejection (strict generalized HMC).
    pub flip_on_reject: bool,
    /// Extra score evaluations per leapfrog segment for the score-only line integral.
    pub extra_points: usize,
}

/// One (U-)HMC transition with partial momentum refresh. Uses L + 1 score evaluations per
/// trajectory: the end gradient of one leapfrog step starts the next, and the gradient at x is
/// the cached `eval`.
pub fn hmc_step(
    target: &dyn Target,
    x: Tensor<2>,
    v: Tensor<2>,
    eval: Evaluation,
    level: usize,
    p: &HmcParams,
    rng: &mut StdRng,
) -> StepOutcome {
    let m2 = p.mass * p.mass;
    let xi = randn_like(&v, rng);
    let v_ref =
        v.mul_scalar(p.damping) + xi.mul_scalar((1.0 - p.damping * p.damping).sqrt() * p.mass);
    let (mut xk, mut vk) = (x.clone(), v_ref.clone());
    let mut ek = eval.clone();
    let mut path = vec![x.clone()];
    let mut path_scores = vec![eval.score.clone()];
    let mut nfe = 0;
    for _ in 0..p.leapfrog {
        vk = vk + ek.score.clone().mul_scalar(p.step / 2.0);
        let x_next = xk.clone() + vk.clone().mul_scalar(p.step / m2);
        let e_next = target.evaluate(x_next.clone(), level);
        nfe += 1;
        vk = vk + e_next.score.clone().mul_scalar(p.step / 2.0);
        if p.metropolis && e_next.log_density.is_none() {
            // Extra points inside the segment for the score line integral.
            for j in 1..=p.extra_points {
                let tau = j as f64 / (p.extra_points + 1) as f64;
                let z = xk.clone().mul_scalar(1.0 - tau) + x_next.clone().mul_scalar(tau);
                path_scores.push(target.score(z.clone(), level));
                path.push(z);
                nfe += 1;
            }
            path.push(x_next.clone());
            path_scores.push(e_next.score.clone());
        }
        xk = x_next;
        ek = e_next;
    }
    if !p.metropolis {
        return StepOutcome {
            x: xk,
            eval: ek,
            momentum: Some(vk),
            accepted: None,
            nfe,
        };
    }
    let delta_f = match (&eval.log_density, &ek.log_density) {
        (Some(f0), Some(f1)) => f1.clone() - f0.clone(),
        _ => trapezoid_path(&path, &path_scores),
    };
    let kinetic = |u: Tensor<2>| row_dot(u.clone(), u).div_scalar(2.0 * m2);
    let log_a = delta_f - (kinetic(vk.clone()) - kinetic(v_ref.clone()));
    let mask = accept_mask(log_a, rng);
    let v_rejected = if p.flip_on_reject { v_ref.neg() } else { v_ref };
    StepOutcome {
        x: select2(&mask, xk, x),
        eval: select_eval(&mask, ek, eval),
        momentum: Some(select2(&mask, vk, v_rejected)),
        accepted: Some(mask.float()),
        nfe,
    }
}

/// One random-walk Metropolis step x' = x + s ξ on a log-density known only by value (the data
/// law of an oracle, which may be discontinuous): `log_density(x)` must be `lx`. Returns
/// (x, log-density, per-example acceptance 1/0).
pub fn rwm_step(
    log_density: &dyn Fn(Tensor<2>) -> Tensor<1>,
    x: Tensor<2>,
    lx: Tensor<1>,
    step: f64,
    rng: &mut StdRng,
) -> (Tensor<2>, Tensor<1>, Tensor<1>) {
    let prop = x.clone() + randn_like(&x, rng).mul_scalar(step);
    let lp = log_density(prop.clone());
    let mask = accept_mask(lp.clone() - lx.clone(), rng);
    (
        select2(&mask, prop, x),
        select1(&mask, lp, lx),
        mask.float(),
    )
}
