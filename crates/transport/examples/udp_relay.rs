//! The floor of the end-to-end benchmark: a bare UDP relay with one blocking socket, no SIP
//! at all. Datagrams from the UAS port go to the UAC port, all others to the UAS port.
//!
//! Usage: `udp_relay LISTEN UAS UAC` (e.g. `127.0.0.1:5060 127.0.0.1:5070 127.0.0.1:5080`).
//! SIPp's UAS answers the Via of the request it got, so only requests pass through this
//! relay: compare CPU per relayed datagram, not per call (see `bench/run-e2e.sh`).

// A measuring tool: exiting with a message on a bad address is its error handling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::{SocketAddr, UdpSocket};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen: SocketAddr = args
        .get(1)
        .expect("LISTEN")
        .parse()
        .expect("LISTEN address");
    let uas: SocketAddr = args.get(2).expect("UAS").parse().expect("UAS address");
    let uac: SocketAddr = args.get(3).expect("UAC").parse().expect("UAC address");
    let socket = UdpSocket::bind(listen).expect("bind");
    let mut buf = vec![0u8; 65536];
    let mut relayed: u64 = 0;
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let to = if from == uas { uac } else { uas };
        if socket.send_to(&buf[..n], to).is_ok() {
            relayed += 1;
            if relayed % 10_000 == 0 {
                eprintln!("relayed {relayed}");
            }
        }
    }
}
