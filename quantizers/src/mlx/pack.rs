//! MLX's bit packing: each group's codes form one little-endian bit stream, LSB first, cut into
//! `u32` words. For 3, 5 and 6 bits a code can straddle two words (MLX writes 8 codes into
//! 3 or 5 bytes, or 4 codes into 3 bytes, which is the same stream).

/// Packs runs of eight codes (each below `2^B`, one a byte) into `out`, `B` bytes a run: the
/// group's bit stream.
///
/// Read as a little-endian `u64`, a run holds code `i` at bit `8 i`; three steps close the
/// gaps, in every 16-bit, then 32-bit, then the whole 64-bit unit moving the upper half down to
/// sit right above the lower half's bits (by 8 - `B`, then 16 - 2`B`, then 32 - 4`B` places),
/// as a bit stream lays the codes out (code `i` at bit `B i`).
#[inline(always)]
pub(super) fn pack_runs<const B: usize>(runs: &[[u8; 8]], out: &mut [u8]) {
    let (outs, _) = out.as_chunks_mut::<B>();
    for (o, run) in outs.iter_mut().zip(runs) {
        let p = u64::from_le_bytes(*run);
        let p = close::<16>(p, 8 - B);
        let p = close::<32>(p, 16 - 2 * B);
        let p = close::<64>(p, 32 - 4 * B);
        o.copy_from_slice(&p.to_le_bytes()[..B]);
    }
}

/// In every `UNIT`-bit unit of `p`, the upper half shifted down by `gap` and joined to the
/// lower half.
#[inline(always)]
fn close<const UNIT: u32>(p: u64, gap: usize) -> u64 {
    let low = low_halves(UNIT);
    (p & low) | ((p & !low) >> gap)
}

/// The lower half of every `unit`-bit unit of a `u64`.
const fn low_halves(unit: u32) -> u64 {
    let half = (1u64 << (unit / 2)) - 1;
    let mut mask = 0;
    let mut at = 0;
    while at < 64 {
        mask |= half << at;
        at += unit;
    }
    mask
}

/// Packs `codes` (each below `2^bits`) into `out`, which must hold `codes.len() * bits / 32`
/// words; `codes.len() * bits` must be a multiple of 32. The plain bit stream, the reference
/// for [`pack_runs`].
#[cfg(test)]
pub(super) fn pack(codes: &[u32], bits: u32, out: &mut [u32]) {
    match bits {
        2 => pack_whole::<2>(codes, out),
        4 => pack_whole::<4>(codes, out),
        8 => pack_whole::<8>(codes, out),
        _ => pack_stream(codes, bits, out),
    }
}

/// [`pack`] for a width that divides 32: word `w` is codes `w * n .. (w + 1) * n`, code `i`
/// at bit `BITS * i`, with no carry between words (a loop that vectorises).
#[cfg(test)]
fn pack_whole<const BITS: u32>(codes: &[u32], out: &mut [u32]) {
    let n = (32 / BITS) as usize;
    for (w, c) in out.iter_mut().zip(codes.chunks_exact(n)) {
        *w = c
            .iter()
            .enumerate()
            .fold(0, |acc, (i, &q)| acc | (q << (BITS as usize * i)));
    }
}

/// [`pack`] for any width, as one bit stream.
#[cfg(test)]
fn pack_stream(codes: &[u32], bits: u32, out: &mut [u32]) {
    let mut acc: u64 = 0;
    let mut filled = 0;
    let mut words = out.iter_mut();
    for &code in codes {
        acc |= u64::from(code) << filled;
        filled += bits;
        if filled >= 32 {
            if let Some(w) = words.next() {
                *w = acc as u32;
            }
            acc >>= 32;
            filled -= 32;
        }
    }
}

/// Unpacks `out.len()` codes of `bits` bits from `words`.
pub(super) fn unpack(words: &[u32], bits: u32, out: &mut [u32]) {
    let mask = (1u64 << bits) - 1;
    let mut acc: u64 = 0;
    let mut avail = 0;
    let mut words = words.iter();
    for code in out.iter_mut() {
        if avail < bits {
            let next = words.next().copied().unwrap_or(0);
            acc |= u64::from(next) << avail;
            avail += 32;
        }
        *code = (acc & mask) as u32;
        acc >>= bits;
        avail -= bits;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_bit_element_zero_is_low_nibble() {
        let codes: Vec<u32> = (0..8).collect();
        let mut w = [0u32; 1];
        pack(&codes, 4, &mut w);
        assert_eq!(w[0], 0x7654_3210);
    }

    #[test]
    fn three_bit_codes_straddle_words() {
        let codes: Vec<u32> = (0..32).map(|i| (i * 5) % 8).collect();
        let mut w = [0u32; 3];
        pack(&codes, 3, &mut w);
        // Code 10 occupies bits 30..33: two bits in word 0, one in word 1.
        assert_eq!(w[0] >> 30, codes[10] & 3);
        assert_eq!(w[1] & 1, codes[10] >> 2);
        let mut back = [0u32; 32];
        unpack(&w, 3, &mut back);
        assert_eq!(back.to_vec(), codes);
    }

    #[test]
    fn whole_word_widths_pack_as_the_stream() {
        for bits in [2u32, 4, 8] {
            let codes: Vec<u32> = (0..128).map(|i| (i * 13 + 5) % (1 << bits)).collect();
            let mut a = vec![0u32; 128 * bits as usize / 32];
            let mut b = a.clone();
            pack(&codes, bits, &mut a);
            pack_stream(&codes, bits, &mut b);
            assert_eq!(a, b, "{bits} bits");
        }
    }

    #[test]
    fn round_trip_all_widths() {
        for bits in [2u32, 3, 4, 5, 6, 8] {
            let codes: Vec<u32> = (0..64).map(|i| (i * 7 + 3) % (1 << bits)).collect();
            let mut w = vec![0u32; 64 * bits as usize / 32];
            pack(&codes, bits, &mut w);
            let mut back = vec![0u32; 64];
            unpack(&w, bits, &mut back);
            assert_eq!(back, codes, "{bits} bits");
        }
    }
}
