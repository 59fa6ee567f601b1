#![allow(clippy::unwrap_used)]
fn main() {
    let bytes = include_bytes!("../benches/data/invite.sip");
    let mut n = 0usize;
    for _ in 0..200_000 {
        let m = sable_sip::Message::parse(std::hint::black_box(bytes)).unwrap();
        n += m.headers().len();
    }
    println!("{n}");
}
