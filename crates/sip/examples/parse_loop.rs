//! Parses one benchmark message many times, with Sable or with rsip: a fixed workload for
//! `valgrind --tool=callgrind`, whose instruction counts repeat exactly where wall-clock time
//! on a shared machine does not (see bench/RESULTS.md).
//!
//! Usage: `parse_loop <sable|sable-typed|rsip|rsip-typed> <invite|register|200ok> [iterations]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rsip::prelude::*;
use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parser = args.get(1).map_or("sable", String::as_str);
    let bytes: &[u8] = match args.get(2).map_or("invite", String::as_str) {
        "register" => include_bytes!("../benches/data/register.sip"),
        "200ok" => include_bytes!("../benches/data/ok200.sip"),
        _ => include_bytes!("../benches/data/invite.sip"),
    };
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let mut sum = 0usize;
    for _ in 0..n {
        sum += match parser {
            "rsip" => rsip::SipMessage::try_from(black_box(bytes))
                .unwrap()
                .headers()
                .iter()
                .count(),
            "rsip-typed" => {
                let m = rsip::SipMessage::try_from(black_box(bytes)).unwrap();
                let via = m.via_header().unwrap().typed().unwrap();
                let from = m.from_header().unwrap().typed().unwrap();
                let to = m.to_header().unwrap().typed().unwrap();
                let cseq = m.cseq_header().unwrap().typed().unwrap();
                usize::from(via.branch().is_some())
                    + usize::from(from.tag().is_some())
                    + usize::from(to.tag().is_some())
                    + m.call_id_header().unwrap().value().len()
                    + cseq.seq as usize
            }
            "sable-typed" => {
                let m = sable_sip::Message::parse(black_box(bytes)).unwrap();
                m.top_via().unwrap().branch().map_or(0, <[u8]>::len)
                    + m.from().unwrap().tag().map_or(0, <[u8]>::len)
                    + m.to().unwrap().tag().map_or(0, <[u8]>::len)
                    + m.call_id().unwrap().len()
                    + m.cseq().unwrap().number as usize
            }
            _ => sable_sip::Message::parse(black_box(bytes))
                .unwrap()
                .headers()
                .len(),
        };
    }
    println!("{sum}");
}
