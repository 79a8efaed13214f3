#!/usr/bin/env python3
"""Writes the first N MNIST train and test images (from the IDX files of `cargo xtask fetch
mnist`) as grey PNGs, so that our FID CLI and the PyTorch reference read the very same files.

  /usr/bin/python3 scripts/fid/mnist_png.py   # numpy + PIL (Debian python3-pil) --idx datasets/mnist --out datasets/mnist-png --count 1000
"""
import argparse
import os

import numpy as np
from PIL import Image


def read_idx_images(path):
    with open(path, 'rb') as f:
        data = f.read()
    magic, n, h, w = np.frombuffer(data[:16], dtype='>u4')
    assert magic == 2051, f'{path}: not an IDX image file'
    return np.frombuffer(data[16:], dtype=np.uint8).reshape(n, h, w)


p = argparse.ArgumentParser()
p.add_argument('--idx', default='datasets/mnist')
p.add_argument('--out', default='datasets/mnist-png')
p.add_argument('--count', type=int, default=1000)
a = p.parse_args()
for split, name in [('train', 'train-images-idx3-ubyte'), ('test', 't10k-images-idx3-ubyte')]:
    images = read_idx_images(os.path.join(a.idx, name))[:a.count]
    folder = os.path.join(a.out, f'{split}-{a.count}')
    os.makedirs(folder, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img, mode='L').save(os.path.join(folder, f'{i:05d}.png'))
    print(f'{len(images)} {split} images -> {folder}')
