//! Seeds derived from several integers, so that every random choice (an epoch's order, one
//! example's flip, one generated image) depends only on its own coordinates and can be replayed
//! without replaying the choices before it.

/// SplitMix64 finaliser: a bijection of u64 that scatters nearby inputs.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit seed from an ordered list of integers; `derive(&[a, b]) != derive(&[b, a])`.
pub(crate) fn derive(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x6a09_e667_f3bc_c908, |h, &p| splitmix64(h ^ splitmix64(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_every_part_matter() {
        let base = derive(&[1, 2, 3]);
        assert_eq!(base, derive(&[1, 2, 3]));
        for other in [[2, 1, 3], [1, 2, 4], [0, 2, 3]] {
            assert_ne!(base, derive(&other), "{other:?}");
        }
        assert_ne!(derive(&[0]), derive(&[0, 0]));
    }
}
