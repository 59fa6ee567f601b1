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
        bitandnot_m128i, cmp_eq_mask_i8_m128i, cmp_gt_mask_i8_m128i, cmp_lt_mask_i8_m128i,
        load_unaligned_m128i, m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };

    /// Sixteen copies of `n`.
    #[inline(always)]
    fn splat(n: u8) -> m128i {
        set_splat_i8_m128i(i8::from_ne_bytes([n]))
    }

    /// Lanes in `lo..=hi` (both below 0x80: lanes of 0x80 and above, negative as `i8`, are
    /// never in).
    #[inline(always)]
    fn within(v: m128i, lo: u8, hi: u8) -> m128i {
        cmp_gt_mask_i8_m128i(v, splat(lo - 1)) & cmp_lt_mask_i8_m128i(v, splat(hi + 1))
    }

    /// The sign bits of the 16 lanes.
    #[inline(always)]
    fn mask(v: m128i) -> u32 {
        move_mask_i8_m128i(v) as u32
    }

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
            mask(cmp_eq_mask_i8_m128i(self.0, splat(n)))
        }

        /// The host-name classes of the octets (RFC 3261 `hostname`): masks of the octets
        /// that are letters, digits, `-` or `.` (any of them), of the letters, of the dots and
        /// of the dashes.
        #[inline(always)]
        pub(crate) fn host_classes(self) -> super::HostClasses {
            let v = self.0;
            // OR-ing 0x20 maps the capital letters onto the small ones and no other octet.
            let letters = within(v | splat(0x20), b'a', b'z');
            // '-', '.', the digits, and '/' between them taken out.
            let dd = bitandnot_m128i(cmp_eq_mask_i8_m128i(v, splat(b'/')), within(v, b'-', b'9'));
            super::HostClasses {
                host: mask(letters | dd),
                letters: mask(letters),
                dots: mask(cmp_eq_mask_i8_m128i(v, splat(b'.'))),
                dashes: mask(cmp_eq_mask_i8_m128i(v, splat(b'-'))),
            }
        }
    }
}

/// What [`Chunk::host_classes`] gives: one mask per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostClasses {
    /// Letters, digits, `-` and `.`.
    pub(crate) host: u32,
    /// Letters.
    pub(crate) letters: u32,
    /// `.`.
    pub(crate) dots: u32,
    /// `-`.
    pub(crate) dashes: u32,
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

        /// See the x86-64 version.
        #[inline(always)]
        pub(crate) fn host_classes(self) -> super::HostClasses {
            let bits = |f: fn(u8) -> bool| {
                self.0
                    .iter()
                    .enumerate()
                    .fold(0, |m, (i, &b)| m | (u32::from(f(b)) << i))
            };
            super::HostClasses {
                host: bits(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'),
                letters: bits(|b| b.is_ascii_alphabetic()),
                dots: bits(|b| b == b'.'),
                dashes: bits(|b| b == b'-'),
            }
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
    fn host_classes_agree_on_every_octet() {
        for b in 0..=255u8 {
            let c = [b; 16];
            assert_eq!(
                Chunk::load(&c).host_classes(),
                portable::Chunk::load(&c).host_classes(),
                "{b:#x}"
            );
        }
    }

    #[test]
    fn simd_and_portable_masks_agree() {
        let mut next = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15u64);
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
            assert_eq!(
                Chunk::load(&c).host_classes(),
                portable::Chunk::load(&c).host_classes(),
                "{c:?}"
            );
        }
    }
}
