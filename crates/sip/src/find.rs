//! Byte searches tuned for the short and medium haystacks of a SIP message (a header line is
//! typically 20 to 100 octets): no call, no setup, sixteen octets per step.
//!
//! Each step asks "is any of the needles among these sixteen octets?" as a fold over a
//! `[u8; 16]`, which the compiler turns into one vector compare per needle and one mask test
//! (SSE2 on x86-64, NEON on AArch64) without any `unsafe`; only the chunk holding a hit is then
//! searched exactly, eight octets at a time (see [`zero_octets`]). Fewer than sixteen octets
//! left at the end of a haystack of sixteen or more are searched as its last sixteen octets
//! with the ones already searched shifted out; a shorter haystack octet by octet.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Flags the zero octets of `v` (the classic "has zero byte" test): the lowest flag is always
/// exact; flags above a true zero may be false positives, so only the lowest is ever used.
#[inline(always)]
pub(crate) fn zero_octets(v: u64) -> u64 {
    v.wrapping_sub(ONES) & !v & HIGH
}

/// Flags the octets of `w` equal to `n` (lowest flag exact, see [`zero_octets`]).
#[inline(always)]
pub(crate) fn eq_octets(w: u64, n: u8) -> u64 {
    zero_octets(w ^ (ONES * u64::from(n)))
}

/// The two little-endian words of a chunk.
#[inline(always)]
fn halves(c: &[u8; 16]) -> (u64, u64) {
    let (lo, hi) = c.split_at(8);
    (
        u64::from_le_bytes(lo.try_into().unwrap_or_default()),
        u64::from_le_bytes(hi.try_into().unwrap_or_default()),
    )
}

/// Position of the lowest flag of `lo`, else of `hi` (one of them has a flag).
#[inline(always)]
fn first_flag(lo: u64, hi: u64) -> usize {
    if lo != 0 {
        (lo.trailing_zeros() / 8) as usize
    } else {
        8 + (hi.trailing_zeros() / 8) as usize
    }
}

/// True when `n` is among the octets of `c`: one vector compare and one mask test (one fold
/// per needle: folding several needles at once defeats the vectorizer).
#[inline(always)]
fn has(c: &[u8; 16], n: u8) -> bool {
    c.iter().fold(false, |acc, &b| acc | (b == n))
}

macro_rules! finder {
    ($(#[$doc:meta])* $name:ident, $($n:ident),+) => {
        $(#[$doc])*
        #[inline(always)]
        pub(crate) fn $name(hay: &[u8], from: usize, $($n: u8),+) -> Option<usize> {
            let flags = |w: u64| 0 $(| eq_octets(w, $n))+;
            let mut chunks = hay.get(from..)?.chunks_exact(16);
            let mut p = from;
            for chunk in &mut chunks {
                if let Ok(c) = <&[u8; 16]>::try_from(chunk) {
                    if false $(| has(c, $n))+ {
                        let (lo, hi) = halves(c);
                        return Some(p + first_flag(flags(lo), flags(hi)));
                    }
                }
                p += 16;
            }
            let tail = chunks.remainder();
            if tail.is_empty() {
                return None;
            }
            match hay.last_chunk::<16>() {
                // The tail ends the haystack: search the last sixteen octets with the ones
                // before the tail shifted out. Zeros come in at the top: every caller's
                // needles are printable characters, never zero.
                Some(last) => {
                    let w = u128::from_le_bytes(*last) >> (8 * (16 - tail.len()));
                    let (lo, hi) = (flags(w as u64), flags((w >> 64) as u64));
                    (lo | hi != 0).then(|| p + first_flag(lo, hi))
                }
                None => tail
                    .iter()
                    .position(|&b| false $(|| b == $n)+)
                    .map(|q| p + q),
            }
        }
    };
}

finder!(
    /// Index of the first `a` in `hay` at or after `from`.
    find1, a
);
finder!(
    /// Index of the first `a` or `b` in `hay` at or after `from`.
    find2, a, b
);
finder!(
    /// Index of the first `a`, `b` or `c` in `hay` at or after `from`.
    find3, a, b, c
);

/// [`find2`] for a needle expected within sixteen octets of `from` (the colon after a
/// header name): those sixteen octets are searched as two words at once, without the vector
/// test and its setup.
#[inline(always)]
pub(crate) fn find2_near(hay: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    match hay.get(from..).and_then(<[u8]>::first_chunk::<16>) {
        Some(chunk) => {
            let (lo, hi) = halves(chunk);
            let (lo, hi) = (
                eq_octets(lo, a) | eq_octets(lo, b),
                eq_octets(hi, a) | eq_octets(hi, b),
            );
            if lo | hi != 0 {
                Some(from + first_flag(lo, hi))
            } else {
                find2(hay, from + 16, a, b)
            }
        }
        None => find2(hay, from, a, b),
    }
}

/// Flags the octets of `w` equal to `n`, every one exactly (0x80 in each; unlike
/// [`eq_octets`], no borrow crosses octets, so flags above the lowest are true too).
#[inline(always)]
fn eq_octets_exact(w: u64, n: u8) -> u64 {
    let x = w ^ (ONES * u64::from(n));
    !(((x & !HIGH).wrapping_add(!HIGH)) | x) & HIGH
}

/// Calls `f` with the index of every `n` in `hay`, in order, eight octets per step (every
/// octet equal to `n` is flagged at once). No allocation, no call per octet.
#[inline(always)]
pub(crate) fn for_each1(hay: &[u8], n: u8, mut f: impl FnMut(usize)) {
    let mut base = 0;
    let mut words = hay.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let mut flags = eq_octets_exact(w, n);
        while flags != 0 {
            f(base + (flags.trailing_zeros() / 8) as usize);
            flags &= flags - 1;
        }
        base += 8;
    }
    let tail = words.remainder();
    if tail.is_empty() {
        return;
    }
    // The last one to seven octets: the last eight of `hay`, those already seen shifted out
    // (zeros come in at the top, and a zero octet is flagged only for a zero needle, which
    // no caller uses), or copied when `hay` is shorter than eight.
    let w = match hay.last_chunk::<8>() {
        Some(last) => u64::from_le_bytes(*last) >> (8 * (8 - tail.len())),
        None => {
            let mut w = [0u8; 8];
            for (o, &b) in w.iter_mut().zip(tail) {
                *o = b;
            }
            u64::from_le_bytes(w)
        }
    };
    let mut flags = eq_octets_exact(w, n) & ((1u64 << (8 * tail.len())) - 1);
    while flags != 0 {
        f(base + (flags.trailing_zeros() / 8) as usize);
        flags &= flags - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_each1_reports_every_needle_in_order() {
        for len in 0..40 {
            for pattern in [0usize, 1, 2, 3, 5, 7] {
                let hay: Vec<u8> = (0..len)
                    .map(|i| {
                        if pattern > 0 && i % pattern == 0 {
                            b','
                        } else {
                            [b'a', b'\x2d', b'\x2b', 0x80, b' '][i % 5]
                        }
                    })
                    .collect();
                let mut seen = Vec::new();
                for_each1(&hay, b',', |i| seen.push(i));
                let want: Vec<usize> = (0..len).filter(|&i| hay[i] == b',').collect();
                assert_eq!(seen, want, "{len} {pattern}");
            }
        }
    }

    #[test]
    fn finds_the_first_needle_at_every_position() {
        for len in 0..70 {
            for at in 0..=len {
                let mut hay = vec![b'x'; len];
                if let Some(b) = hay.get_mut(at) {
                    *b = b'\n';
                }
                // Octets just above and below a needle must not be mistaken for it.
                if let Some(b) = hay.get_mut(at + 1) {
                    *b = b'\x0b';
                }
                let expected = (at < len).then_some(at);
                for from in 0..=len {
                    let want = expected.filter(|&e| e >= from);
                    assert_eq!(find1(&hay, from, b'\n'), want, "{len} {at} {from}");
                    assert_eq!(find2(&hay, from, b':', b'\n'), want);
                    assert_eq!(find2_near(&hay, from, b':', b'\n'), want);
                    assert_eq!(find3(&hay, from, b',', b'\n', b'<'), want);
                }
            }
        }
        assert_eq!(find1(b"abc", 7, b'a'), None);
        assert_eq!(find2(b"0123456789abcdef:\n", 0, b'\n', b':'), Some(16));
        assert_eq!(
            find3(
                b"\x80\x81\x82\x83\x84\x85\x86\x87\x88<",
                0,
                b',',
                b'"',
                b'<'
            ),
            Some(9)
        );
        assert_eq!(find3(b"\x2b\x2d\x2c", 0, b',', b'"', b'<'), Some(2));
    }
}
