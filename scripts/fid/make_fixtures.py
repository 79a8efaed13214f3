#!/usr/bin/env python3
"""Writes the reference fixtures for ebdiff-eval's FID / KID / precision-recall tests.

    pip install -r scripts/fid/requirements.txt
    python3 scripts/fid/make_fixtures.py

Output (crates/ebdiff-eval/tests/fixtures/, < 1 MB in all, read by the Rust tests; Python is not
needed at test time):

  frechet_cases.npz   per case NAME: NAME_mu1, NAME_sigma1, NAME_mu2, NAME_sigma2 and NAME_fid,
                      the FID from pytorch-fid's calculate_frechet_distance (copied verbatim
                      below, scipy.linalg.sqrtm). The D = 256 case is stored as float32 to keep
                      the file small; its expected FID is computed from exactly those float32
                      values widened to float64, which is what the Rust loader returns.
  kid_pr_cases.npz    seeded float32 features `real` [200, 32] and `generated` [160, 32], their
                      np.mean / np.cov, KID references (full-set unbiased MMD², and per-subset
                      values for stored subset indices) and precision/recall for k = 1, 3, 5,
                      from the straightforward numpy implementations below.
  stats_*.npz         FID statistics files written by numpy itself (np.savez,
                      np.savez_compressed) with analytic contents mu_i = i/4,
                      sigma_ij = 1/(i+j+1) + [i=j], plus malformed ones the loader must refuse.

Everything is seeded, so rerunning gives the same files up to the scipy version's rounding.
"""

import pathlib
import sys

import numpy as np
import scipy
from scipy import linalg

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "crates" / "ebdiff-eval" / "tests" / "fixtures"
SEED = 20240607


# --- pytorch-fid (github.com/mseitzer/pytorch-fid, src/pytorch_fid/fid_score.py, Apache-2.0,
# (c) Maximilian Seitzer), copied verbatim: the reference the Rust FID must match. ---------------
def calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """Numpy implementation of the Frechet Distance.
    The Frechet distance between two multivariate Gaussians X_1 ~ N(mu_1, C_1)
    and X_2 ~ N(mu_2, C_2) is
            d^2 = ||mu_1 - mu_2||^2 + Tr(C_1 + C_2 - 2*sqrt(C_1*C_2)).

    Stable version by Dougal J. Sutherland.

    Params:
    -- mu1   : Numpy array containing the activations of a layer of the
               inception net (like returned by the function 'get_predictions')
               for generated samples.
    -- mu2   : The sample mean over activations, precalculated on an
               representative data set.
    -- sigma1: The covariance matrix over activations for generated samples.
    -- sigma2: The covariance matrix over activations, precalculated on an
               representative data set.

    Returns:
    --   : The Frechet Distance.
    """

    mu1 = np.atleast_1d(mu1)
    mu2 = np.atleast_1d(mu2)

    sigma1 = np.atleast_2d(sigma1)
    sigma2 = np.atleast_2d(sigma2)

    assert mu1.shape == mu2.shape, \
        'Training and test mean vectors have different lengths'
    assert sigma1.shape == sigma2.shape, \
        'Training and test covariances have different dimensions'

    diff = mu1 - mu2

    # Product might be almost singular
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        msg = ('fid calculation produces singular product; '
               'adding %s to diagonal of cov estimates') % eps
        print(msg)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))

    # Numerical error might give slight imaginary component
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError('Imaginary component {}'.format(m))
        covmean = covmean.real

    tr_covmean = np.trace(covmean)

    return (diff.dot(diff) + np.trace(sigma1)
            + np.trace(sigma2) - 2 * tr_covmean)
# --------------------------------------------------------------------------------------------------


def frechet_distance_eigh(mu1, sigma1, mu2, sigma2):
    """The symmetric-eigendecomposition route the Rust code takes; printed for comparison only."""
    w, v = np.linalg.eigh(sigma1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root @ sigma2 @ root
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    diff = mu1 - mu2
    return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(np.clip(lam, 0, None)).sum()


def sample_covariance(rng, dim, n_samples):
    """np.cov of n_samples rows of N(0, Q diag(s²) Qᵀ), s in [0.3, 2]: well conditioned when
    n_samples > dim, of rank n_samples − 1 when n_samples ≤ dim (FID with few samples)."""
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    scales = rng.uniform(0.3, 2.0, size=dim)
    x = rng.standard_normal((n_samples, dim)) @ (q * scales).T
    return np.cov(x, rowvar=False)


def frechet_cases(rng):
    # name: (dim, samples for sigma1, samples for sigma2, storage dtype)
    specs = {
        "d8": (8, 200, 150, np.float64),
        "d64": (64, 500, 400, np.float64),
        "d64_rank_deficient": (64, 40, 50, np.float64),
        "d256_float32": (256, 2000, 1500, np.float32),
    }
    arrays = {}
    for name, (dim, n1, n2, dtype) in specs.items():
        mu1 = rng.normal(0.4, 0.3, size=dim).astype(dtype)
        mu2 = (mu1 + rng.normal(0.0, 0.1, size=dim)).astype(dtype)
        sigma1 = sample_covariance(rng, dim, n1).astype(dtype)
        sigma2 = sample_covariance(rng, dim, n2).astype(dtype)
        wide = [a.astype(np.float64) for a in (mu1, sigma1, mu2, sigma2)]
        fid = calculate_frechet_distance(*wide)
        fid_eigh = frechet_distance_eigh(*wide)
        print(f"  {name:20s} D={dim:3d} pytorch-fid {fid:.15g}  eigh {fid_eigh:.15g}  "
              f"rel gap {abs(fid - fid_eigh) / abs(fid):.2e}")
        arrays.update({f"{name}_mu1": mu1, f"{name}_sigma1": sigma1, f"{name}_mu2": mu2,
                       f"{name}_sigma2": sigma2, f"{name}_fid": np.float64(fid)})
    # A near-identical pair: FID ≪ the traces, so cancellation is tested too.
    dim = 64
    mu1 = rng.normal(0.4, 0.3, size=dim)
    sigma1 = sample_covariance(rng, dim, 500)
    mu2 = mu1 + 1e-3 * rng.standard_normal(dim)
    sigma2 = 0.99 * sigma1 + 0.01 * sample_covariance(rng, dim, 500)
    fid = calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    fid_eigh = frechet_distance_eigh(mu1, sigma1, mu2, sigma2)
    print(f"  {'d64_close':20s} D={dim:3d} pytorch-fid {fid:.15g}  eigh {fid_eigh:.15g}  "
          f"rel gap {abs(fid - fid_eigh) / abs(fid):.2e}  (trace {np.trace(sigma1):.1f})")
    arrays.update({"d64_close_mu1": mu1, "d64_close_sigma1": sigma1, "d64_close_mu2": mu2,
                   "d64_close_sigma2": sigma2, "d64_close_fid": np.float64(fid)})
    return arrays


# --- KID: torch-fidelity's polynomial kernel and unbiased estimator, written out plainly ---------
def polynomial_kernel(x, y):
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y):
    """Σ_{i≠j} k(xi,xj)/(n(n−1)) + Σ_{i≠j} k(yi,yj)/(m(m−1)) − 2 Σ k(xi,yj)/(nm)."""
    n, m = len(x), len(y)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return ((k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
            + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
            - 2.0 * k_xy.sum() / (n * m))


# --- Improved precision/recall (Kynkäänniemi et al. 2019), direct pairwise distances -------------
def pairwise_distances(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))


def coverage(manifold, probes, k):
    """Fraction of probes within the k-th-neighbour ball of some manifold point, and the smallest
    relative gap |d − r| / r over all probe–point pairs (how far the answer is from a tie)."""
    radii = np.sort(pairwise_distances(manifold, manifold), axis=1)[:, k]  # column 0 is the point
    d = pairwise_distances(probes, manifold)
    inside = (d <= radii[None, :]).any(axis=1)
    return float(inside.mean()), float((np.abs(d - radii[None, :]) / radii[None, :]).min())


def kid_pr_cases(rng):
    dim = 32
    real = rng.standard_normal((200, dim)).astype(np.float32)
    generated = np.concatenate([
        rng.standard_normal((80, dim)),
        rng.normal(0.75, 1.2, size=(80, dim)),
    ]).astype(np.float32)
    real64, gen64 = real.astype(np.float64), generated.astype(np.float64)

    arrays = {
        "real": real,
        "generated": generated,
        "real_mean": real64.mean(axis=0),
        "real_cov": np.cov(real64, rowvar=False),
        "mmd2_full": np.float64(mmd2_unbiased(real64, gen64)),
        "mmd2_equal_sizes": np.float64(mmd2_unbiased(real64[:160], gen64)),
    }

    subsets, size = 5, 50
    idx_real = np.stack([rng.choice(len(real), size, replace=False) for _ in range(subsets)])
    idx_gen = np.stack([rng.choice(len(generated), size, replace=False) for _ in range(subsets)])
    per_subset = np.array([mmd2_unbiased(real64[r], gen64[g]) for r, g in zip(idx_real, idx_gen)])
    arrays.update({
        # float64 indices: the Rust loader reads float arrays only (exact below 2^53).
        "kid_subset_idx_real": idx_real.astype(np.float64),
        "kid_subset_idx_generated": idx_gen.astype(np.float64),
        "kid_subset_mmd2": per_subset,
        "kid_mean": np.float64(per_subset.mean()),
        "kid_std": np.float64(per_subset.std()),
    })
    print(f"  KID full {arrays['mmd2_full']:.6g}, subsets mean {per_subset.mean():.6g} "
          f"std {per_subset.std():.3g}")

    for k in (1, 3, 5):
        precision, gap_p = coverage(real64, gen64, k)
        recall, gap_r = coverage(gen64, real64, k)
        # A reference decided by a near-tie would not be a fair test of another implementation.
        assert min(gap_p, gap_r) > 1e-9, f"k={k}: a distance ties a radius ({min(gap_p, gap_r)})"
        arrays[f"precision_k{k}"] = np.float64(precision)
        arrays[f"recall_k{k}"] = np.float64(recall)
        print(f"  k={k}: precision {precision:.4f} recall {recall:.4f} "
              f"(closest tie {min(gap_p, gap_r):.1e})")
    return arrays


def stats_files(fixtures):
    dim = 16
    i = np.arange(dim)
    mu = i / 4.0
    sigma = 1.0 / (i[:, None] + i[None, :] + 1.0) + np.eye(dim)
    np.savez(fixtures / "stats_savez.npz", mu=mu, sigma=sigma)
    # As pytorch-fid / clean-fid save them: compressed, mu float32 (mean of float32 features).
    np.savez_compressed(fixtures / "stats_savez_compressed_mu_float32.npz",
                        mu=mu.astype(np.float32), sigma=sigma)
    np.savez(fixtures / "stats_fortran_order.npz", mu=mu, sigma=np.asfortranarray(sigma))
    np.savez(fixtures / "stats_missing_sigma.npz", mu=mu)
    np.savez(fixtures / "stats_wrong_shape.npz", mu=mu, sigma=sigma[:, :15])
    np.savez(fixtures / "stats_float16.npz", mu=mu.astype(np.float16), sigma=sigma)


def main():
    FIXTURES.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    print(f"numpy {np.__version__}, scipy {scipy.__version__}, python {sys.version.split()[0]}")
    print("frechet_cases.npz")
    np.savez_compressed(FIXTURES / "frechet_cases.npz", **frechet_cases(rng))
    print("kid_pr_cases.npz")
    np.savez_compressed(FIXTURES / "kid_pr_cases.npz", **kid_pr_cases(rng))
    stats_files(FIXTURES)
    total = sum(p.stat().st_size for p in FIXTURES.glob("*.npz"))
    print(f"wrote {FIXTURES} ({total / 1024:.0f} KiB of .npz)")
    assert total < 1024 * 1024, "fixtures must stay under 1 MB"


if __name__ == "__main__":
    main()
