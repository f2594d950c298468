//! The eight-groups-at-a-time kernel against the straightforward per-group functions
//! (`affine::params`, `affine::group_codes`, `pack::pack`, one serial min/max chain per group),
//! for every group size and bit width, in both builds.

use wharf_core::DType;

use super::affine::{self, cxx_max, cxx_min};
use super::{Elements, MlxParams, pack, quantize_groups, quantize_groups_body};
use crate::fp8::round_to;

/// Weight bytes, scale bits, bias bits, and whether every group was finite.
type Out = (Vec<u8>, Vec<u32>, Vec<u32>, bool);

/// One group at a time, as MLX's kernel is written.
fn reference(src: &[f32], p: MlxParams, dtype: DType) -> Out {
    let (g, bits) = (p.group(), p.bits());
    let mut out: Out = (vec![], vec![], vec![], src.iter().all(|v| v.is_finite()));
    for group in src.chunks_exact(g) {
        let lo = group.iter().fold(f32::INFINITY, |a, &b| cxx_min(a, b));
        let hi = group.iter().fold(f32::NEG_INFINITY, |a, &b| cxx_max(a, b));
        let (s, b) = affine::params(lo, hi, bits);
        let mut codes = vec![0; g];
        affine::group_codes(group, bits, s, b, &mut codes);
        let mut words = vec![0; p.words_per_group()];
        pack::pack(&codes, bits, &mut words);
        out.0.extend(words.iter().flat_map(|w| w.to_le_bytes()));
        out.1.push(round_to(dtype, s).to_bits());
        out.2.push(round_to(dtype, b).to_bits());
    }
    out
}

/// Groups `first..` of `src` through the dispatched kernel or the baseline build of its body.
fn kernel(src: Elements<'_>, first: usize, p: MlxParams, dtype: DType, dispatched: bool) -> Out {
    let groups = src.len() / p.group() - first;
    let mut w = vec![0u8; groups * p.words_per_group() * 4];
    let (mut s, mut b) = (vec![0f32; groups], vec![0f32; groups]);
    let out = (&mut w[..], &mut s[..], &mut b[..]);
    let ok = if dispatched {
        quantize_groups(&src, first, p, dtype, out)
    } else {
        quantize_groups_body(&src, first, p, dtype, out)
    };
    let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect();
    (w, bits(s), bits(b), ok)
}

/// Every group size and width, both builds, groups from `first` on, scales in `dtype`.
fn check(src: &[f32], first_groups: &[usize], dtypes: &[DType]) {
    for group in [32, 64, 128] {
        for bits in [2, 3, 4, 5, 6, 8] {
            let p = MlxParams::new(group, bits).unwrap();
            let usable = src.len() / group * group;
            for &first in first_groups {
                let tail = &src[first * group..usable];
                for &dtype in dtypes {
                    let want = reference(tail, p, dtype);
                    for dispatched in [true, false] {
                        let got =
                            kernel(Elements::F32(&src[..usable]), first, p, dtype, dispatched);
                        if want.3 {
                            assert_eq!(got, want, "{group} {bits} {dtype:?} first {first}");
                        } else {
                            assert!(!got.3, "{group} {bits}: a NaN or infinity went unseen");
                        }
                    }
                }
            }
        }
    }
}

/// xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// 128 values of one kind (`kind` picks it), so that every group size sees whole runs of each.
fn block(rng: &mut Rng, kind: u64) -> Vec<f32> {
    let top = [3.0f32, 7.0, 15.0, 31.0, 63.0, 255.0][(kind / 16 % 6) as usize];
    let spread = [1.0f32, 1e-3, 1e3, 1e-30, 1e30, 1e-40][(kind / 7 % 6) as usize];
    (0..128)
        .map(|i| match kind % 10 {
            0 => 0.0,
            1 => [0.0, -0.0][(rng.next() % 2) as usize],
            2 => 3.25 * spread,
            // Ties: halves between the codes of a [0, top] group (scale -1, bias top), scaled
            // by a power of two so that they stay exact.
            3 => (rng.next() % (2 * top as u64 + 1)) as f32 * 0.5 * [1.0, 0.25, 64.0][i % 3],
            // One extreme far larger in magnitude than the other, either sign.
            4 => rng.unit().abs() * spread - 0.01 * spread,
            5 => -rng.unit().abs() * spread + 0.01 * spread,
            6 => (rng.unit() * 4.0).round() * spread,
            7 => rng.unit() * spread + [0.0, 0.0, 0.0, -0.0][i % 4],
            8 => [f32::MAX, -f32::MAX, 1.0, f32::MIN_POSITIVE][i % 4] * rng.unit().abs(),
            _ => rng.unit() * spread,
        })
        .collect()
}

#[test]
fn lanes_equal_the_per_group_functions() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    // 61 blocks of 128: 244, 122 or 61 groups, none a multiple of eight.
    let src: Vec<f32> = (0..61).flat_map(|k| block(&mut rng, k * 7 + 3)).collect();
    check(&src, &[0, 3], &[DType::BF16, DType::F16, DType::F32]);
}

#[test]
fn lanes_equal_the_per_group_functions_on_random_data() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..8 {
        let src: Vec<f32> = (0..128 * 21)
            .map(|i| rng.unit() * [1.0f32, 1e-3, 1e3, 1e-38][(round + i / 128) % 4])
            .collect();
        check(&src, &[0, 1], &[DType::BF16]);
    }
}

#[test]
fn lanes_flag_every_nan_and_infinity() {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    for bad in [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for at in [0, 31, 64, 127, 128 * 9 + 77, 128 * 13 - 1] {
            let mut src: Vec<f32> = (0..128 * 13).map(|_| rng.unit()).collect();
            src[at] = bad;
            check(&src, &[0], &[DType::BF16]);
        }
    }
}

#[test]
fn bf16_input_matches_its_f32_values() {
    let (bytes, f32s) = crate::elements::bf16_test_values(128 * 19);
    for group in [32, 64, 128] {
        for bits in [2, 3, 4, 5, 6, 8] {
            let p = MlxParams::new(group, bits).unwrap();
            for dispatched in [true, false] {
                let want = kernel(Elements::F32(&f32s), 1, p, DType::BF16, dispatched);
                let got = kernel(Elements::Bf16(&bytes), 1, p, DType::BF16, dispatched);
                assert_eq!(got, want, "{group} {bits}");
            }
        }
    }
}
