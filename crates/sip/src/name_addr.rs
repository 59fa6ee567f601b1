//! `name-addr` / `addr-spec` values with header parameters: From, To (RFC 3261 §20.20,
//! §20.39), Contact (§20.10), Route, Record-Route (§20.34, §20.30), Path (RFC 3327).

use std::borrow::Cow;

use crate::error::{ParseError, ParseErrorKind, Result};
use crate::params::Params;
use crate::scan::{is_lws, is_token_char, quoted_string_end, skip_lws, trim_lws, unquote};
use crate::uri::Uri;

/// `( name-addr / addr-spec ) *( SEMI param )`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written (quotes kept), if any.
    pub display_name: Option<&'a [u8]>,
    /// The URI.
    pub uri: Uri<'a>,
    /// True when the URI was enclosed in `<...>`.
    pub bracketed: bool,
    /// Header parameters (after the URI, outside `<...>`).
    pub params: Params<'a>,
}

fn bad(what: &'static str, at: usize) -> ParseError {
    ParseError::new(ParseErrorKind::BadHeaderValue(what), at)
}

impl<'a> NameAddr<'a> {
    /// Parses one value (the header index has already split comma-separated values).
    ///
    /// In the `addr-spec` form (no `<...>`) the URI ends at the first `;`: what follows is a
    /// header parameter, not a URI parameter (RFC 3261 §20.10), and a URI with `?` headers is
    /// refused there (RFC 4475 §3.1.2.13).
    pub fn parse(s: &'a [u8]) -> Result<NameAddr<'a>> {
        let start = skip_lws(s, 0);
        let mut display_name = None;
        let laquot;
        match s.get(start) {
            None => return Err(bad("empty address", start)),
            Some(b'"') => {
                let end = quoted_string_end(s, start)?;
                display_name = s.get(start..end);
                laquot = skip_lws(s, end);
                if s.get(laquot) != Some(&b'<') {
                    return Err(bad("expected '<' after the display name", laquot));
                }
            }
            Some(_) => {
                // Either `*(token LWS) <uri>` or a bare addr-spec: look for '<' before any
                // octet a display name may not hold. Octets above 0x7F (UTF-8 names such as
                // `José Müller`) are tolerated there; a comma or a quote is not (RFC 4475
                // §3.1.2.15).
                // (`start` is not LWS: the name ends after its last octet that is not LWS.)
                let mut i = start;
                let mut dn_end = start;
                while let Some(&b) = s.get(i) {
                    if is_token_char(b) || b >= 0x80 {
                        dn_end = i + 1;
                    } else if !is_lws(b) {
                        break;
                    }
                    i += 1;
                }
                if s.get(i) == Some(&b'<') {
                    if dn_end > start {
                        display_name = s.get(start..dn_end);
                    }
                    laquot = i;
                } else {
                    return Self::parse_addr_spec(s, start);
                }
            }
        }
        let uri_start = laquot + 1;
        let uri_end =
            crate::find::find1(s, uri_start, b'>').ok_or_else(|| bad("missing '>'", laquot))?;
        let uri = Uri::parse(s.get(uri_start..uri_end).unwrap_or_default())
            .map_err(|e| e.shifted(uri_start))?;
        let p_start = uri_end + 1;
        let params =
            Params::parse(s.get(p_start..).unwrap_or_default()).map_err(|e| e.shifted(p_start))?;
        Ok(NameAddr {
            display_name,
            uri,
            bracketed: true,
            params,
        })
    }

    fn parse_addr_spec(s: &'a [u8], start: usize) -> Result<NameAddr<'a>> {
        let end = crate::find::find1(s, start, b';').unwrap_or(s.len());
        let uri_text = trim_lws(s.get(start..end).unwrap_or_default());
        if uri_text.contains(&b'?') {
            return Err(bad("a URI with headers must be enclosed in '<...>'", start));
        }
        if uri_text.iter().any(|&b| is_lws(b)) {
            return Err(bad("white space inside the address", start));
        }
        let uri = Uri::parse(uri_text).map_err(|e| e.shifted(start))?;
        let params = Params::parse(s.get(end..).unwrap_or_default()).map_err(|e| e.shifted(end))?;
        Ok(NameAddr {
            display_name: None,
            uri,
            bracketed: false,
            params,
        })
    }

    /// The display name without quotes (quoted pairs resolved), empty if none.
    pub fn display_name_unquoted(&self) -> Cow<'a, [u8]> {
        self.display_name.map(unquote).unwrap_or(Cow::Borrowed(b""))
    }

    /// The `tag` parameter (From/To, RFC 3261 §19.3).
    #[inline]
    pub fn tag(&self) -> Option<&'a [u8]> {
        self.params.get(b"tag").flatten()
    }
}

/// One Contact value: `*` or an address with contact parameters (RFC 3261 §20.10,
/// RFC 5626 `+sip.instance` and `reg-id`).
// `*` is rare and boxing the address would cost an allocation per Contact value.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (only valid in a REGISTER with Expires: 0).
    Star,
    /// An address.
    Address(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    /// Parses one Contact value.
    pub fn parse(s: &'a [u8]) -> Result<Contact<'a>> {
        if trim_lws(s) == b"*" {
            return Ok(Contact::Star);
        }
        NameAddr::parse(s).map(Contact::Address)
    }

    /// The address, unless this is `*`.
    pub fn address(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Star => None,
            Contact::Address(a) => Some(a),
        }
    }

    fn param(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.address().and_then(|a| a.params.get(name).flatten())
    }

    /// The `q` value in thousandths (`q=0.5` is 500), if present and well-formed
    /// (`qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`).
    pub fn q(&self) -> Option<u16> {
        parse_qvalue(self.param(b"q")?)
    }

    /// The `expires` contact parameter in seconds, if present and a number.
    pub fn expires(&self) -> Option<u32> {
        let v = self.param(b"expires")?;
        crate::scan::parse_decimal(v, u64::from(u32::MAX))
            .ok()
            .and_then(|v| u32::try_from(v).ok())
    }

    /// The `+sip.instance` parameter without its quotes (RFC 5626 §4.1).
    pub fn instance(&self) -> Option<Cow<'a, [u8]>> {
        self.param(b"+sip.instance").map(unquote)
    }

    /// The `reg-id` parameter (RFC 5626 §4.2).
    pub fn reg_id(&self) -> Option<u32> {
        let v = self.param(b"reg-id")?;
        crate::scan::parse_decimal(v, u64::from(u32::MAX))
            .ok()
            .and_then(|v| u32::try_from(v).ok())
    }
}

/// Parses a qvalue into thousandths.
pub fn parse_qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match memchr::memchr(b'.', v) {
        Some(p) => (v.get(..p)?, v.get(p + 1..)?),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_display_name_uri_and_tag() {
        let a = NameAddr::parse(br#" "Bob \"B\"" <sip:bob@biloxi.com>;tag=a6c85cf"#).unwrap();
        assert_eq!(a.display_name, Some(&br#""Bob \"B\"""#[..]));
        assert_eq!(&*a.display_name_unquoted(), b"Bob \"B\"");
        assert_eq!(a.uri.as_bytes(), b"sip:bob@biloxi.com");
        assert_eq!(a.tag(), Some(&b"a6c85cf"[..]));
        assert!(a.bracketed);
    }

    #[test]
    fn token_display_name_without_space_before_angle() {
        let a = NameAddr::parse(b"caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(a.display_name, Some(&b"caller"[..]));
        assert_eq!(a.tag(), Some(&b"323"[..]));
    }

    #[test]
    fn addr_spec_params_belong_to_the_header() {
        let a = NameAddr::parse(b"sip:user@example.com;unknownparam").unwrap();
        assert_eq!(a.uri.as_bytes(), b"sip:user@example.com");
        assert!(a.params.contains(b"unknownparam"));
        assert!(!a.bracketed);
    }

    #[test]
    fn unterminated_quote_and_spaces_in_uri_are_rejected() {
        assert!(NameAddr::parse(br#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse(b"\"Watson, Thomas\" < sip:t.watson@example.org >").is_err());
        assert!(NameAddr::parse(b"sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(NameAddr::parse(b"").is_err());
        assert!(NameAddr::parse(b"Kaiser Keyser, <sip:k@example.com>").is_err());
    }

    #[test]
    fn unquoted_utf8_display_name_is_tolerated() {
        let a = NameAddr::parse("José Müller <sip:a@h>;tag=1".as_bytes()).unwrap();
        assert_eq!(a.display_name, Some("José Müller".as_bytes()));
        assert_eq!(a.tag(), Some(&b"1"[..]));
    }

    #[test]
    fn contact_star_q_expires_instance_reg_id() {
        assert_eq!(Contact::parse(b" * ").unwrap(), Contact::Star);
        let c = Contact::parse(
            b"<sip:a@h>;q=0.7;expires=3600;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";reg-id=1",
        )
        .unwrap();
        assert_eq!(c.q(), Some(700));
        assert_eq!(c.expires(), Some(3600));
        assert_eq!(
            &*c.instance().unwrap(),
            b"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"
        );
        assert_eq!(c.reg_id(), Some(1));
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue(b"1"), Some(1000));
        assert_eq!(parse_qvalue(b"1.000"), Some(1000));
        assert_eq!(parse_qvalue(b"0.33"), Some(330));
        assert_eq!(parse_qvalue(b"1.5"), None);
        assert_eq!(parse_qvalue(b"0.1234"), None);
        assert_eq!(parse_qvalue(b"2"), None);
    }
}
