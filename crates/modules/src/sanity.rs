//! `sanity`: checks of a request's well-formedness, with the reply each failure implies.
//!
//! Sable's parser already refuses (with a 400) most of what these checks look for before
//! the script runs; `sanity_check()` repeats them on what did parse, plus the checks the
//! parser leaves to the script (URI schemes, Proxy-Require, URIs of From/To/Contact).

use sable_engine::{
    function, int_param, send_reply, str_param, take_arg, Module, MsgCtx, ParamError, Sip,
};
use sable_script::{ArgError, IntArg, Registry, RouteMask};
use sable_sip::{HeaderName, Message, Uri};

/// Check flags (Kamailio's values).
pub mod checks {
    // 1 (R-URI SIP version) needs no check here: the parser answers any other version
    // with 505 before the script runs.
    pub const RURI_SCHEME: i64 = 2;
    pub const REQUIRED_HEADERS: i64 = 4;
    pub const VIA_SIP_VERSION: i64 = 8;
    pub const VIA_PROTOCOL: i64 = 16;
    pub const CSEQ_METHOD: i64 = 32;
    pub const CSEQ_VALUE: i64 = 64;
    pub const CONTENT_LENGTH: i64 = 128;
    pub const EXPIRES_VALUE: i64 = 256;
    pub const PROXY_REQUIRE: i64 = 512;
    pub const PARSE_URIS: i64 = 1024;
    pub const DIGEST: i64 = 2048;
    pub const DUPLICATE_TAGS: i64 = 4096;
}

/// URI check flags of the second argument.
pub mod uri_checks {
    pub const RURI: i64 = 1;
    pub const FROM: i64 = 2;
    pub const TO: i64 = 4;
    pub const CONTACT: i64 = 8;
}

#[derive(Debug)]
pub struct Sanity {
    default_checks: i64,
    uri_checks: i64,
    proxy_require: Vec<String>,
    autodrop: bool,
    noreply: bool,
}

impl Default for Sanity {
    fn default() -> Self {
        Sanity {
            default_checks: 999,
            uri_checks: 7,
            proxy_require: Vec::new(),
            autodrop: true,
            noreply: false,
        }
    }
}

/// A failed check: the reply it implies, plus header lines for the reply.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: u16,
    pub reason: &'static str,
    pub headers: String,
}

fn fail(code: u16, reason: &'static str) -> Failure {
    Failure {
        code,
        reason,
        headers: String::new(),
    }
}

/// Runs the checks selected by `flags` and `uris` on a request.
pub fn check(
    msg: &Message<'_>,
    flags: i64,
    uris: i64,
    supported: &[String],
) -> Result<(), Failure> {
    use checks::*;
    if !msg.is_request() {
        return Ok(());
    }
    if flags & RURI_SCHEME != 0 {
        match msg.request_uri() {
            Ok(Uri::Sip(_) | Uri::Tel(_)) => {}
            Ok(Uri::Other(_)) => return Err(fail(416, "Unsupported URI Scheme in Request URI")),
            Err(_) => return Err(fail(400, "Bad Request URI")),
        }
    }
    if flags & REQUIRED_HEADERS != 0 {
        for h in [
            HeaderName::To,
            HeaderName::From,
            HeaderName::CSeq,
            HeaderName::CallId,
            HeaderName::Via,
        ] {
            if msg.header(h).is_none() {
                return Err(fail(400, "Missing Required Header in Request"));
            }
        }
    }
    if flags & (VIA_SIP_VERSION | VIA_PROTOCOL) != 0 {
        let vias = msg.vias().map_err(|_| fail(400, "Bad Via"))?;
        for v in vias {
            if flags & VIA_SIP_VERSION != 0
                && !(v.protocol_name.eq_ignore_ascii_case(b"SIP") && v.protocol_version == b"2.0")
            {
                return Err(fail(505, "Version Not Supported (Via)"));
            }
            if flags & VIA_PROTOCOL != 0 {
                let known = ["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]
                    .iter()
                    .any(|p| v.transport.eq_ignore_ascii_case(p.as_bytes()));
                if !known {
                    return Err(fail(400, "Unsupported Transport in Topmost Via"));
                }
            }
        }
    }
    if flags & (CSEQ_METHOD | CSEQ_VALUE) != 0 {
        let cseq = msg.cseq().map_err(|_| fail(400, "Bad CSeq"))?;
        if flags & CSEQ_METHOD != 0 && Some(cseq.method) != msg.method() {
            return Err(fail(400, "CSeq method does not match request method"));
        }
    }
    if flags & CONTENT_LENGTH != 0 {
        if let Some(cl) = msg.content_length() {
            if cl as usize != msg.body().len() {
                return Err(fail(400, "Content-Length mis-match"));
            }
        }
    }
    if flags & EXPIRES_VALUE != 0 {
        if let Some(Err(_)) = msg.expires() {
            return Err(fail(400, "Expires not a number"));
        }
    }
    if flags & PROXY_REQUIRE != 0 {
        let unsupported: Vec<String> = msg
            .tokens(HeaderName::ProxyRequire)
            .filter_map(Result::ok)
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .filter(|t| !supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            return Err(Failure {
                code: 420,
                reason: "Bad Extension",
                headers: format!("Unsupported: {}\r\n", unsupported.join(", ")),
            });
        }
    }
    if flags & PARSE_URIS != 0 {
        if uris & uri_checks::RURI != 0 && msg.request_uri().is_err() {
            return Err(fail(400, "Bad Request URI"));
        }
        if uris & uri_checks::FROM != 0 && msg.from().is_err() {
            return Err(fail(400, "Bad From URI"));
        }
        if uris & uri_checks::TO != 0 && msg.to().is_err() {
            return Err(fail(400, "Bad To URI"));
        }
        if uris & uri_checks::CONTACT != 0 && msg.contacts().is_err() {
            return Err(fail(400, "Bad Contact URI"));
        }
    }
    if flags & DIGEST != 0 {
        for h in [HeaderName::Authorization, HeaderName::ProxyAuthorization] {
            if msg.credentials(h).is_err() {
                return Err(fail(400, "Bad Authorization Header"));
            }
        }
    }
    if flags & DUPLICATE_TAGS != 0 {
        let tags = |n: HeaderName| {
            msg.addresses(n)
                .filter_map(Result::ok)
                .map(|a| {
                    a.params
                        .iter()
                        .filter(|p| p.name.eq_ignore_ascii_case(b"tag"))
                        .count()
                })
                .sum::<usize>()
        };
        if tags(HeaderName::From) > 1 || tags(HeaderName::To) > 1 {
            return Err(fail(400, "Duplicate tag"));
        }
    }
    Ok(())
}

impl Module for Sanity {
    fn name(&self) -> &'static str {
        "sanity"
    }

    fn set_param(
        &mut self,
        name: &str,
        value: &sable_script::ast::Literal,
    ) -> Result<(), ParamError> {
        match name {
            "default_checks" => self.default_checks = int_param(value)?,
            "uri_checks" => self.uri_checks = int_param(value)?,
            "proxy_require" => {
                self.proxy_require = str_param(value)?
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
            }
            "autodrop" => self.autodrop = int_param(value)? != 0,
            "noreply" => self.noreply = int_param(value)? != 0,
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        let (dflt, duri) = (self.default_checks, self.uri_checks);
        let supported = self.proxy_require.clone();
        let (autodrop, noreply) = (self.autodrop, self.noreply);
        reg.function(
            "sanity_check",
            function(
                "sanity",
                0,
                2,
                RouteMask(
                    RouteMask::REQUEST.0
                        | RouteMask::ONREPLY.0
                        | RouteMask::BRANCH.0
                        | RouteMask::FAILURE.0,
                ),
                move |_, mut a| {
                    let flags: IntArg<Sip> = match take_arg(&mut a, 0) {
                        Some(x) => x.into_int(1)?,
                        None => IntArg::Const(dflt),
                    };
                    let uris: IntArg<Sip> = match take_arg(&mut a, 0) {
                        Some(x) => x.into_int(2)?,
                        None => IntArg::Const(duri),
                    };
                    if flags.as_const().is_some_and(|f| f < 0) {
                        return Err(ArgError::new(1, "check flags must be positive"));
                    }
                    let supported = supported.clone();
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        let f = flags.eval(ctx).unwrap_or(dflt);
                        let u = uris.eval(ctx).unwrap_or(duri);
                        match check(&ctx.msg, f, u, &supported) {
                            Ok(()) => 1,
                            Err(failure) => {
                                tracing::debug!(
                                    "sanity check failed: {} {}",
                                    failure.code,
                                    failure.reason
                                );
                                if !noreply && ctx.msg.method() != Some(sable_sip::Method::Ack) {
                                    if let Err(e) = send_reply(
                                        ctx,
                                        failure.code,
                                        failure.reason,
                                        &failure.headers,
                                        b"",
                                        None,
                                    ) {
                                        tracing::warn!("sanity: reply not sent: {e}");
                                    }
                                }
                                if autodrop {
                                    0
                                } else {
                                    -1
                                }
                            }
                        }
                    }))
                },
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(extra: &str, uri: &str) -> Vec<u8> {
        format!(
            "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n{extra}Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn checks_give_kamailios_replies() {
        let ok = req("", "sip:c@d");
        let m = Message::parse(&ok).unwrap();
        assert_eq!(check(&m, 0xffff, 15, &[]), Ok(()));
        let pr = req("Proxy-Require: foo, bar\r\n", "sip:c@d");
        let m = Message::parse(&pr).unwrap();
        let f = check(&m, checks::PROXY_REQUIRE, 0, &[]).unwrap_err();
        assert_eq!(
            (f.code, f.headers.as_str()),
            (420, "Unsupported: foo, bar\r\n")
        );
        assert_eq!(
            check(&m, checks::PROXY_REQUIRE, 0, &["foo".into(), "bar".into()]),
            Ok(())
        );
        let http = req("", "http://example.com/");
        let m = Message::parse(&http).unwrap();
        assert_eq!(
            check(&m, checks::RURI_SCHEME, 0, &[]).unwrap_err().code,
            416
        );
        let exp = req("Expires: soon\r\n", "sip:c@d");
        let m = Message::parse(&exp).unwrap();
        assert_eq!(
            check(&m, checks::EXPIRES_VALUE, 0, &[]).unwrap_err().code,
            400
        );
    }
}
