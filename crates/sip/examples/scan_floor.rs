//! A floor for the header index of the benchmark 200 OK: the least work any index of it could
//! do, to compare with the 10x-over-rsip budget (bench/RESULTS.md, "Parser, sixth session").
//!
//! It finds each line end and the first colon of each header line from 64-octet SSE2 masks and
//! writes one 16-octet entry per line into a zeroed 32-entry array that the caller then owns:
//! no validation of any kind, no folding, no trimming, no list splitting, no Content-Length, no
//! start-line parse, and (without `lookup`) no header-name lookup. With `lookup`, each name
//! also goes through `HeaderName::from_bytes`. Its result is right only for well-formed input
//! such as the benchmark message (it checks that it found the expected 10 header lines).
//!
//! Usage: `scan_floor <bare|lookup> [iterations]`, under
//! `valgrind --tool=callgrind` like `parse_loop`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[cfg(target_arch = "x86_64")]
fn main() {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };
    use std::hint::black_box;

    /// An index entry as small as the positions allow (16 octets; Sable's is 24).
    #[derive(Clone, Copy, Default)]
    #[allow(dead_code)] // written, and read only through `black_box`
    struct Entry {
        value_start: u16,
        value_end: u16,
        line_start: u16,
        line_end: u16,
        name: u8,
        name_len: u8,
        index_in_line: u16,
        values_in_line: u16,
    }

    struct Index {
        entries: [Entry; 32],
        len: usize,
        body: usize,
    }

    /// Line-end and colon masks of the 64 octets at `base` (zero-padded past the end).
    #[inline(always)]
    fn block(buf: &[u8], base: usize) -> (u64, u64) {
        match buf.get(base..).and_then(<[u8]>::first_chunk::<64>) {
            Some(b) => masks(b),
            None => padded(buf.get(base..).unwrap_or_default()),
        }
    }

    #[inline(never)]
    fn padded(rest: &[u8]) -> (u64, u64) {
        let mut pad = [0u8; 64];
        pad[..rest.len()].copy_from_slice(rest);
        masks(&pad)
    }

    #[inline(always)]
    fn masks(b: &[u8; 64]) -> (u64, u64) {
        let lf = set_splat_i8_m128i(b'\n' as i8);
        let colon = set_splat_i8_m128i(b':' as i8);
        let (mut lfs, mut colons) = (0u64, 0u64);
        for (k, c) in b.chunks_exact(16).enumerate() {
            let v = load_unaligned_m128i(<&[u8; 16]>::try_from(c).unwrap());
            lfs |= u64::from(move_mask_i8_m128i(cmp_eq_mask_i8_m128i(v, lf)) as u16) << (16 * k);
            colons |=
                u64::from(move_mask_i8_m128i(cmp_eq_mask_i8_m128i(v, colon)) as u16) << (16 * k);
        }
        (lfs, colons)
    }

    #[inline(never)]
    fn index(buf: &[u8], idx: &mut Index, lookup: bool) {
        let mut base = 0;
        let (mut lfs, mut colons) = block(buf, base);
        let mut pos = lfs.trailing_zeros() as usize + 1;
        loop {
            if buf[pos] == b'\r' {
                idx.body = pos + 2;
                return;
            }
            while pos - base >= 64 {
                base += 64;
                (lfs, colons) = block(buf, base);
            }
            let off = pos - base;
            let colon = match colons >> off {
                0 => base + 64 + block(buf, base + 64).1.trailing_zeros() as usize,
                c => pos + c.trailing_zeros() as usize,
            };
            let lf = match lfs >> off {
                0 => loop {
                    base += 64;
                    (lfs, colons) = block(buf, base);
                    if lfs != 0 {
                        break base + lfs.trailing_zeros() as usize;
                    }
                },
                l => pos + l.trailing_zeros() as usize,
            };
            let name = if lookup {
                sable_sip::HeaderName::from_bytes(&buf[pos..colon]) as u8
            } else {
                0
            };
            if let Some(e) = idx.entries.get_mut(idx.len) {
                *e = Entry {
                    value_start: (colon + 2) as u16,
                    value_end: (lf - 1) as u16,
                    line_start: pos as u16,
                    line_end: (lf + 1) as u16,
                    name,
                    name_len: (colon - pos) as u8,
                    index_in_line: 0,
                    values_in_line: 1,
                };
                idx.len += 1;
            }
            pos = lf + 1;
        }
    }

    let bytes: &[u8] = include_bytes!("../benches/data/ok200.sip");
    let args: Vec<String> = std::env::args().collect();
    let lookup = args.get(1).map(String::as_str) == Some("lookup");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let mut sum = 0;
    for _ in 0..n {
        let mut idx = Index {
            entries: [Entry::default(); 32],
            len: 0,
            body: 0,
        };
        index(black_box(bytes), &mut idx, lookup);
        let idx = black_box(idx);
        assert_eq!((idx.len, idx.body), (10, bytes.len()));
        sum += idx.len;
    }
    println!("{sum}");
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("scan_floor: x86-64 only (SSE2 masks)");
}
