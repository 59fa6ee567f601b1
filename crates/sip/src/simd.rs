//! Sixteen octets at a time: which of them equal a given octet, as a 16-bit mask (bit `i` for
//! octet `i`).
//!
//! On x86-64 this is SSE2 (baseline there): one unaligned load, one `pcmpeqb` per needle and
//! one `pmovmskb`, through the `safe_arch` crate's safe wrappers (the workspace denies
//! `unsafe_code`; the intrinsics themselves are `unsafe` to call from a function without
//! `#[target_feature]`). Elsewhere a portable version computes the same masks; both are
//! compiled in tests and compared on random chunks.

#[cfg(target_arch = "x86_64")]
mod imp {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, load_unaligned_m128i, m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };

    /// Sixteen octets in a vector register.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Chunk(m128i);

    impl Chunk {
        /// Loads sixteen octets.
        #[inline(always)]
        pub(crate) fn load(c: &[u8; 16]) -> Chunk {
            Chunk(load_unaligned_m128i(c))
        }

        /// Bit `i` set when octet `i` equals `n`.
        #[inline(always)]
        pub(crate) fn eq(self, n: u8) -> u32 {
            let splat = set_splat_i8_m128i(i8::from_ne_bytes([n]));
            // The mask has 16 bits: the sign bits of the 16 lanes.
            move_mask_i8_m128i(cmp_eq_mask_i8_m128i(self.0, splat)) as u32
        }
    }
}

/// The portable version: the reference the SIMD one is tested against, and the one used on
/// targets other than x86-64.
#[cfg(any(test, not(target_arch = "x86_64")))]
pub(crate) mod portable {
    /// Sixteen octets.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Chunk([u8; 16]);

    impl Chunk {
        /// Loads sixteen octets.
        #[inline(always)]
        pub(crate) fn load(c: &[u8; 16]) -> Chunk {
            Chunk(*c)
        }

        /// Bit `i` set when octet `i` equals `n`.
        #[inline(always)]
        pub(crate) fn eq(self, n: u8) -> u32 {
            self.0
                .iter()
                .enumerate()
                .fold(0, |m, (i, &b)| m | (u32::from(b == n) << i))
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use imp::Chunk;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) use portable::Chunk;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_and_portable_masks_agree() {
        // A small xorshift generator: deterministic, no dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let mut c = [0u8; 16];
            for b in &mut c {
                // Mostly octets from a small alphabet, so that needles repeat.
                let r = next();
                let alphabet = b":,\n\r <\"\x80\xff\x00a";
                *b = if round % 2 == 0 {
                    alphabet[(r % alphabet.len() as u64) as usize]
                } else {
                    r as u8
                };
            }
            for n in [
                b':',
                b',',
                b'\n',
                b'\r',
                b'<',
                b'"',
                0x80,
                0xff,
                0,
                (next() as u8),
            ] {
                let want = c
                    .iter()
                    .enumerate()
                    .filter(|&(_, &b)| b == n)
                    .fold(0u32, |m, (i, _)| m | 1 << i);
                assert_eq!(Chunk::load(&c).eq(n), want, "{c:?} {n}");
                assert_eq!(portable::Chunk::load(&c).eq(n), want, "{c:?} {n}");
            }
        }
    }
}
