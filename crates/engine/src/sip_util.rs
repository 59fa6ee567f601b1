//! SIP building blocks of the stateless core: local replies (RFC 3261 §8.2.6), the
//! `received`/`rport` parameters (RFC 3261 §18.2.1, RFC 3581), where replies go (RFC 3261
//! §18.2.2), next hops from URIs, and the stateless branch (RFC 3261 §16.11).

use sable_sip::{HeaderName, Message, SipUri, Uri, Via};
use sable_transport::Proto;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// FNV-1a, 64 bits: a stable hash for tags and branches (the same input gives the same
/// value in every run, which stateless branches need).
pub fn hash64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A number written out in ASCII on the stack (see [`hex`], [`dec`]): what `format!` would
/// write, without the formatting machinery, for the ids and tags of every request.
#[derive(Debug, Clone, Copy)]
pub struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// `v` in lower-case hexadecimal, zero-padded to `width` digits (at most 16): `{v:0width$x}`.
pub fn hex(v: u64, width: usize) -> Digits {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut d = Digits {
        buf: [0; 20],
        start: 20,
    };
    let mut rest = v;
    while d.start > 4 && (rest != 0 || d.start == 20 || 20 - d.start < width) {
        d.start -= 1;
        if let Some(slot) = d.buf.get_mut(d.start) {
            *slot = DIGITS.get((rest & 0xf) as usize).copied().unwrap_or(b'0');
        }
        rest >>= 4;
    }
    d
}

/// `v` in decimal: `{v}`.
pub fn dec(v: u64) -> Digits {
    let mut d = Digits {
        buf: [0; 20],
        start: 20,
    };
    let mut rest = v;
    loop {
        d.start -= 1;
        if let Some(slot) = d.buf.get_mut(d.start) {
            *slot = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 || d.start == 0 {
            return d;
        }
    }
}

/// The transport of a Via (`UDP`, `TCP`); `None` for ones Sable does not speak yet.
pub fn via_proto(via: &Via<'_>) -> Option<Proto> {
    if via.transport.eq_ignore_ascii_case(b"UDP") {
        Some(Proto::Udp)
    } else if via.transport.eq_ignore_ascii_case(b"TCP") {
        Some(Proto::Tcp)
    } else {
        None
    }
}

/// The text of a Via value with `received` and `rport` set for a request received from
/// `src` (RFC 3261 §18.2.1: `received` when the sent-by host is not the source address;
/// RFC 3581: with `rport` (or `force_rport`) the source port is filled in and `received` is
/// always added). `None` when nothing changes.
pub fn via_with_received(via: &Via<'_>, src: SocketAddr, force_rport: bool) -> Option<String> {
    let rport = via.rport().is_some() || force_rport;
    let same_host = via.host.ip() == Some(src.ip());
    if same_host && !rport {
        return None;
    }
    let mut out = String::with_capacity(via.sent_by.len() + 64);
    let _ = write!(
        out,
        "{}/{}/{} {}",
        String::from_utf8_lossy(via.protocol_name),
        String::from_utf8_lossy(via.protocol_version),
        String::from_utf8_lossy(via.transport),
        String::from_utf8_lossy(via.sent_by)
    );
    let mut wrote_rport = false;
    for p in via.params.iter() {
        if p.name.eq_ignore_ascii_case(b"received") {
            continue;
        }
        if p.name.eq_ignore_ascii_case(b"rport") {
            if rport {
                let _ = write!(out, ";rport={}", src.port());
                wrote_rport = true;
            }
            continue;
        }
        out.push(';');
        out.push_str(&String::from_utf8_lossy(p.name));
        if let Some(v) = p.value {
            out.push('=');
            out.push_str(&String::from_utf8_lossy(v));
        }
    }
    let _ = write!(out, ";received={}", src.ip());
    if rport && !wrote_rport {
        let _ = write!(out, ";rport={}", src.port());
    }
    Some(out)
}

/// Where a reply to a request goes (RFC 3261 §18.2.2 with RFC 3581): the source address,
/// with the source port when the top Via has `rport` (or `force_rport()` was called), else
/// the Via's port (5060 when absent). With `reply_to_via`, the Via host instead of the
/// source address.
pub fn reply_destination(
    via: &Via<'_>,
    src: SocketAddr,
    force_rport: bool,
    reply_to_via: bool,
) -> SocketAddr {
    let port = if via.rport().is_some() || force_rport {
        src.port()
    } else {
        via.port.unwrap_or(5060)
    };
    let ip = if reply_to_via {
        via.host.ip().unwrap_or(src.ip())
    } else {
        src.ip()
    };
    SocketAddr::new(ip, port)
}

/// Where a relayed reply goes: the (second) Via it is addressed to, by its `received` and
/// `rport` when present (RFC 3261 §18.2.2, RFC 3581 §4).
pub fn reply_next_hop(via: &Via<'_>) -> Result<(Proto, SocketAddr), String> {
    let proto = via_proto(via).ok_or_else(|| {
        format!(
            "Via transport {} is not supported",
            String::from_utf8_lossy(via.transport)
        )
    })?;
    let port = match via.rport() {
        Some(Some(p)) => p,
        _ => via.port.unwrap_or(5060),
    };
    let ip = match via
        .received()
        .and_then(|r| std::str::from_utf8(r).ok()?.parse::<IpAddr>().ok())
    {
        Some(ip) => ip,
        // No name resolution here (it would block the worker on the network's say-so): a
        // Via naming a host without `received` is not relayed.
        None => via.host.ip().ok_or_else(|| {
            format!(
                "the next Via names a host ({}) without received=: not resolved",
                String::from_utf8_lossy(via.host.as_bytes())
            )
        })?,
    };
    Ok((proto, SocketAddr::new(ip, port)))
}

/// A resolved next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    pub proto: Proto,
    pub addr: SocketAddr,
}

/// Resolves `host:port` (an IP literal, or a name through the system resolver).
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (bare, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{bare}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{bare}' resolves to no address"))
}

/// The next hop of a SIP URI (RFC 3263 without NAPTR/SRV for now: the host, the port or
/// 5060, the `transport` parameter or UDP; `maddr` wins over the host).
pub fn next_hop_of_uri(text: &str) -> Result<NextHop, String> {
    let uri = Uri::parse(text.trim().as_bytes()).map_err(|e| format!("bad URI '{text}': {e}"))?;
    let Uri::Sip(sip) = uri else {
        return Err(format!("cannot route to a non-SIP URI '{text}'"));
    };
    next_hop_of_sip(&sip, text)
}

/// [`next_hop_of_uri`] of a parsed SIP URI (`text`: its text, for errors).
fn next_hop_of_sip(sip: &SipUri<'_>, text: &str) -> Result<NextHop, String> {
    if sip.secure() {
        return Err(format!("sips: is not supported yet ('{text}')"));
    }
    let proto = match sip.transport() {
        None => Proto::Udp,
        Some(t) if t.eq_ignore_ascii_case(b"udp") => Proto::Udp,
        Some(t) if t.eq_ignore_ascii_case(b"tcp") => Proto::Tcp,
        Some(t) => {
            return Err(format!(
                "transport={} is not supported yet",
                String::from_utf8_lossy(t)
            ))
        }
    };
    let host_bytes = sip.maddr().unwrap_or(sip.host().as_bytes());
    let host = String::from_utf8_lossy(host_bytes);
    let addr = resolve(&host, sip.port().unwrap_or(5060))?;
    Ok(NextHop { proto, addr })
}

/// The next hop of a SIP URI whose host (or `maddr`) is an IP address: one that no DNS
/// answer can change, so a caller may keep it. `None` for a name, or a URI
/// [`next_hop_of_uri`] refuses.
pub fn literal_next_hop_of_uri(text: &str) -> Option<NextHop> {
    let uri = Uri::parse(text.trim().as_bytes()).ok()?;
    let Uri::Sip(sip) = uri else {
        return None;
    };
    let host = sip.maddr().unwrap_or(sip.host().as_bytes());
    let bare = std::str::from_utf8(host).ok()?;
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().ok()?;
    next_hop_of_sip(&sip, text).ok()
}

/// Parses a `forward("host[:port]")`-style destination: a SIP URI, or `host[:port]`.
pub fn next_hop_of_target(target: &str, port: Option<u16>) -> Result<NextHop, String> {
    let t = target.trim();
    let has_scheme = |scheme: &str| {
        t.get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
    };
    if has_scheme("sip:") || has_scheme("sips:") {
        let mut hop = next_hop_of_uri(t)?;
        if let Some(p) = port {
            hop.addr.set_port(p);
        }
        return Ok(hop);
    }
    let (host, inline_port) = match t.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (
            h,
            Some(p.parse::<u16>().map_err(|_| format!("bad port in '{t}'"))?),
        ),
        _ => (t, None),
    };
    let addr = resolve(host, port.or(inline_port).unwrap_or(5060))?;
    Ok(NextHop {
        proto: Proto::Udp,
        addr,
    })
}

/// The branch of a statelessly forwarded request (RFC 3261 §16.11): derived from the
/// incoming top Via branch (so that a retransmission, its CANCEL and the ACK of a failure
/// get the same one), or, for RFC 2543 peers, from the transaction's identifying fields.
pub fn stateless_branch(msg: &Message<'_>, out_uri: &str) -> String {
    let mut key: Vec<u8> = Vec::with_capacity(128);
    match msg
        .top_via()
        .ok()
        .and_then(|v| v.branch().filter(|_| v.has_rfc3261_branch()))
    {
        Some(b) => key.extend_from_slice(b),
        None => {
            key.extend_from_slice(msg.call_id().unwrap_or_default());
            if let Ok(f) = msg.from() {
                key.extend_from_slice(f.tag().unwrap_or_default());
            }
            if let Ok(c) = msg.cseq() {
                key.extend_from_slice(c.number.to_string().as_bytes());
            }
            key.extend_from_slice(out_uri.as_bytes());
        }
    }
    format!("z9hG4bKsl{:016x}", hash64(&key))
}

/// Builds a reply to `req` (RFC 3261 §8.2.6): status line, the request's Vias (the top one
/// with `received`/`rport` as computed by [`via_with_received`]), From, To (with `to_tag`
/// added when the request's To has none), Call-ID, CSeq, `extra` header lines (each ending
/// in CRLF), the Server header, then the body.
pub struct ReplySpec<'s> {
    pub code: u16,
    pub reason: &'s str,
    pub to_tag: Option<&'s str>,
    pub top_via: Option<&'s str>,
    pub extra_headers: &'s str,
    pub server_header: Option<&'s str>,
    pub body: &'s [u8],
    pub content_type: Option<&'s str>,
}

impl std::fmt::Debug for ReplySpec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplySpec({} {})", self.code, self.reason)
    }
}

/// See [`ReplySpec`].
pub fn build_reply(req: &Message<'_>, spec: &ReplySpec<'_>) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(512 + spec.body.len());
    let _ = write!(Bytes(&mut out), "SIP/2.0 {} {}\r\n", spec.code, spec.reason);
    let mut first_via = true;
    for h in req.headers_named(HeaderName::Via) {
        out.extend_from_slice(b"Via: ");
        match (first_via, spec.top_via) {
            (true, Some(v)) => out.extend_from_slice(v.as_bytes()),
            _ => out.extend_from_slice(req.value(h)),
        }
        out.extend_from_slice(b"\r\n");
        first_via = false;
    }
    for (name, hn) in [("From", HeaderName::From), ("To", HeaderName::To)] {
        if let Some(h) = req.header(hn) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(req.value(h));
            if hn == HeaderName::To {
                let has_tag = req.to().ok().is_some_and(|t| t.tag().is_some());
                if let (false, Some(tag)) = (has_tag, spec.to_tag) {
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(tag.as_bytes());
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    for (name, hn) in [("Call-ID", HeaderName::CallId), ("CSeq", HeaderName::CSeq)] {
        if let Some(h) = req.header(hn) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(req.value(h));
            out.extend_from_slice(b"\r\n");
        }
    }
    // A reply that may establish a dialog (101..299) carries the request's Record-Route
    // (RFC 3261 §12.1.1), as Kamailio's local replies do.
    if (101..300).contains(&spec.code) {
        for h in req.headers_named(HeaderName::RecordRoute) {
            out.extend_from_slice(b"Record-Route: ");
            out.extend_from_slice(req.value(h));
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(spec.extra_headers.as_bytes());
    if let Some(server) = spec.server_header {
        out.extend_from_slice(server.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(ct) = spec.content_type.filter(|_| !spec.body.is_empty()) {
        let _ = write!(Bytes(&mut out), "Content-Type: {ct}\r\n");
    }
    let _ = write!(
        Bytes(&mut out),
        "Content-Length: {}\r\n\r\n",
        spec.body.len()
    );
    out.extend_from_slice(spec.body);
    out
}

/// `fmt::Write` into a byte vector.
struct Bytes<'v>(&'v mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The To-tag of a stateless reply: the instance prefix, `-`, and a hash of the request's
/// identifying fields (so a retransmitted request gets the same tag).
pub fn stateless_to_tag(prefix: &str, req: &Message<'_>) -> String {
    let mut key: Vec<u8> = Vec::with_capacity(96);
    key.extend_from_slice(req.call_id().unwrap_or_default());
    if let Ok(f) = req.from() {
        key.extend_from_slice(f.tag().unwrap_or_default());
    }
    if let Ok(v) = req.top_via() {
        key.extend_from_slice(v.branch().unwrap_or_default());
    }
    format!("{prefix}-{:08x}", hash64(&key) as u32)
}

#[cfg(test)]
mod tests {

    #[test]
    fn literal_next_hops_are_ip_addresses_only() {
        let hop = literal_next_hop_of_uri("sip:gw@192.0.2.7:5071;transport=tcp").unwrap();
        assert_eq!(hop.proto, Proto::Tcp);
        assert_eq!(hop.addr, "192.0.2.7:5071".parse().unwrap());
        let hop = literal_next_hop_of_uri("sip:[2001:db8::1]").unwrap();
        assert_eq!(hop.addr, "[2001:db8::1]:5060".parse().unwrap());
        let hop = literal_next_hop_of_uri("sip:gw.example.com;maddr=192.0.2.9").unwrap();
        assert_eq!(hop.addr, "192.0.2.9:5060".parse().unwrap());
        assert_eq!(literal_next_hop_of_uri("sip:localhost:5060"), None);
        assert_eq!(literal_next_hop_of_uri("sips:192.0.2.7"), None);
        assert_eq!(literal_next_hop_of_uri("tel:+123"), None);
    }

    #[test]
    fn hex_and_dec_write_what_format_writes() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut values = vec![0, 1, 9, 10, 15, 16, 255, 256, u64::MAX, u64::MAX - 1];
        for _ in 0..2000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            values.push(rng >> (rng % 64));
        }
        for v in values {
            for width in [0, 1, 8, 16] {
                assert_eq!(
                    hex(v, width).as_str(),
                    format!("{v:0width$x}"),
                    "{v} {width}"
                );
            }
            assert_eq!(dec(v).as_str(), v.to_string());
            assert_eq!(dec(v).as_bytes(), v.to_string().as_bytes());
        }
    }

    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP host.example.com:5062;rport;branch=z9hG4bKabc\r\n\
Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKdef\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: c1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn received_and_rport_are_filled() {
        let m = Message::parse(INVITE).unwrap();
        let v = m.top_via().unwrap();
        let src: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let s = via_with_received(v, src, false).unwrap();
        assert_eq!(
            s,
            "SIP/2.0/UDP host.example.com:5062;rport=40000;branch=z9hG4bKabc;received=192.0.2.1"
        );
        assert_eq!(reply_destination(v, src, false, false), src);
    }

    #[test]
    fn no_received_when_the_host_is_the_source() {
        let m = Message::parse(INVITE).unwrap();
        let v = &m.vias().unwrap()[1];
        let src: SocketAddr = "192.0.2.9:5060".parse().unwrap();
        assert_eq!(via_with_received(v, src, false), None);
        let other: SocketAddr = "192.0.2.9:7000".parse().unwrap();
        // No rport: the reply goes to the Via port.
        assert_eq!(reply_destination(v, other, false, false).port(), 5060);
        assert_eq!(reply_destination(v, other, true, false).port(), 7000);
    }

    #[test]
    fn reply_copies_the_dialog_headers() {
        let m = Message::parse(INVITE).unwrap();
        let r = build_reply(
            &m,
            &ReplySpec {
                code: 404,
                reason: "Not Found",
                to_tag: Some("t1"),
                top_via: Some("SIP/2.0/UDP x;branch=z9hG4bKabc;received=192.0.2.1"),
                extra_headers: "",
                server_header: Some("Server: Sable"),
                body: b"",
                content_type: None,
            },
        );
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("SIP/2.0 404 Not Found\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKabc;received=192.0.2.1\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKdef\r\n"));
        assert!(text.contains("To: <sip:bob@example.com>;tag=t1\r\n"));
        assert!(text.ends_with("Server: Sable\r\nContent-Length: 0\r\n\r\n"));
        let parsed = Message::parse(text.as_bytes()).unwrap();
        parsed.validate().unwrap();
    }

    #[test]
    fn dialog_creating_replies_copy_record_route() {
        let with_rr = String::from_utf8(INVITE.to_vec()).unwrap().replace(
            "Call-ID: c1\r\n",
            "Call-ID: c1\r\nRecord-Route: <sip:p1;lr>, <sip:p2;lr>\r\n",
        );
        let m = Message::parse(with_rr.as_bytes()).unwrap();
        let spec = |code| ReplySpec {
            code,
            reason: "x",
            to_tag: None,
            top_via: None,
            extra_headers: "",
            server_header: None,
            body: b"",
            content_type: None,
        };
        let ok = String::from_utf8(build_reply(&m, &spec(200))).unwrap();
        assert!(
            ok.contains("Record-Route: <sip:p1;lr>\r\nRecord-Route: <sip:p2;lr>\r\n"),
            "{ok}"
        );
        let busy = String::from_utf8(build_reply(&m, &spec(486))).unwrap();
        assert!(!busy.contains("Record-Route"));
    }

    #[test]
    fn next_hops() {
        let h = next_hop_of_uri("sip:bob@127.0.0.1:5090;transport=tcp").unwrap();
        assert_eq!(
            (h.proto, h.addr.to_string()),
            (Proto::Tcp, "127.0.0.1:5090".to_owned())
        );
        let h = next_hop_of_target("127.0.0.1", None).unwrap();
        assert_eq!(h.addr.port(), 5060);
        let h = next_hop_of_target("[::1]:5070", None).unwrap();
        assert_eq!(h.addr.to_string(), "[::1]:5070");
        assert!(next_hop_of_uri("tel:+123").is_err());
    }
}
