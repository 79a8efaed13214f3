#!/usr/bin/env bash
# Prepares, on this (GPU-less) machine, what one call of the lent GPU machine needs: that
# machine has no Rust and reaches no registry, so the xtask binary is built here with the GPU
# backends, stripped, and carried, with the Vulkan loader the device's README names.
#   scripts/gpu/build_kit.sh            → .gpu/xtask.xz (+ .gpu/BUILD.txt), .gl/*.deb
# Both folders are git-ignored; name them in the device call's `carry` (scripts/gpu/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu .gl
# Same target dir as the CPU build; the GPU features make their own copies of burn and up.
cargo build --release --workspace --features xtask/vulkan,xtask/wgpu
# Stripped it is ≈125 MB, over what a call carries; xz takes it to ≈22 MB (measure.sh unpacks).
cp target/release/xtask /tmp/ebdiff-xtask
strip /tmp/ebdiff-xtask
xz -T0 -6 -c /tmp/ebdiff-xtask > .gpu/xtask.xz
rm -f .gpu/xtask /tmp/ebdiff-xtask
{
  echo "built $(date -u +%FT%TZ) on $(uname -m), $(rustc --version)"
  echo "commit $(git rev-parse HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
  echo "features: xtask/vulkan, xtask/wgpu; glibc $(ldd --version | head -1 | awk '{print $NF}')"
} > .gpu/BUILD.txt
# The Vulkan loader (libvulkan1) and GL/EGL libraries, amd64, as the device README says.
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  apt-get $o update -qq
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .gpu .gl
total=$(du -sm --exclude=target --exclude=.git . | cut -f1)
echo "working tree + kit: ${total} MiB (a device call carries at most 64 MiB)"
[ "$total" -lt 64 ] || { echo "error: too large to carry; see scripts/gpu/README.md" >&2; exit 1; }
