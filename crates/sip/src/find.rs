//! Byte searches tuned for the short and medium haystacks of a SIP message (a header line is
//! typically 20 to 100 octets): no call, no setup, sixteen octets per step.
//!
//! Each step computes the mask of the needles among sixteen octets ([`Chunk`]: SSE2 compares
//! and a mask move on x86-64) and takes its lowest bit. Fewer than sixteen octets left at the
//! end of a haystack of sixteen or more are searched as its last sixteen octets with the ones
//! already searched shifted out; a shorter haystack octet by octet.

use crate::simd::Chunk;

macro_rules! finder {
    ($(#[$doc:meta])* $name:ident, $($n:ident),+) => {
        $(#[$doc])*
        #[inline(always)]
        pub(crate) fn $name(hay: &[u8], from: usize, $($n: u8),+) -> Option<usize> {
            let mut chunks = hay.get(from..)?.chunks_exact(16);
            let mut p = from;
            for chunk in &mut chunks {
                if let Ok(c) = <&[u8; 16]>::try_from(chunk) {
                    let v = Chunk::load(c);
                    let m = 0 $(| v.eq($n))+;
                    if m != 0 {
                        return Some(p + m.trailing_zeros() as usize);
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
                // before the tail shifted out.
                Some(last) => {
                    let v = Chunk::load(last);
                    let m = (0 $(| v.eq($n))+) >> (16 - tail.len());
                    (m != 0).then(|| p + m.trailing_zeros() as usize)
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
/// header name): one chunk, then the general search.
#[inline(always)]
pub(crate) fn find2_near(hay: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    match hay.get(from..).and_then(<[u8]>::first_chunk::<16>) {
        Some(chunk) => {
            let v = Chunk::load(chunk);
            let m = v.eq(a) | v.eq(b);
            if m != 0 {
                Some(from + m.trailing_zeros() as usize)
            } else {
                find2(hay, from + 16, a, b)
            }
        }
        None => find2(hay, from, a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
