//! Header parameters: `*( SEMI generic-param )` with `generic-param = token [ EQUAL gen-value ]`
//! and `gen-value = token / host / quoted-string` (RFC 3261 §25.1), LWS allowed around `;`
//! and `=`.
//!
//! [`Params`] keeps the raw text and is validated once when built; lookups walk it again
//! (parameter lists are short, so this costs less than building a table).

use crate::error::{ParseError, ParseErrorKind, Result};
use crate::scan::{is_token_char, quoted_string_end, skip_lws};

/// A validated parameter list, kept as written (starting at its first `;`, or empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a [u8],
    /// The first parameter, found while validating (the one looked up most: `tag`, `branch`):
    /// offsets into `raw` of its name (start, end), of its value (start, end; both 0 for a
    /// flag) and of what follows it. All 0 when there is none or an offset exceeds 16 bits.
    /// A function of `raw`, so the derived equality still compares the text.
    first: [u16; 5],
}

/// One parameter: name as written, value as written (quotes included), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// Parameter name.
    pub name: &'a [u8],
    /// Value, quotes kept; `None` for a flag parameter such as `;lr`.
    pub value: Option<&'a [u8]>,
}

impl<'a> Params<'a> {
    /// Validates `raw`, which must be empty or start (after LWS) with `;`.
    pub fn parse(raw: &'a [u8]) -> Result<Params<'a>> {
        let mut pos = 0;
        let mut first = [0u16; 5];
        if let Some(((ns, ne), value)) = scan_spans(raw, &mut pos)? {
            let (vs, ve) = value.unwrap_or((0, 0));
            let offsets = [ns, ne, vs, ve, pos].map(|o| u16::try_from(o).ok());
            if let [Some(a), Some(b), Some(c), Some(d), Some(e)] = offsets {
                first = [a, b, c, d, e];
            }
            while scan_spans(raw, &mut pos)?.is_some() {}
        }
        Ok(Params { raw, first })
    }

    /// No parameters.
    pub fn empty() -> Params<'a> {
        Params {
            raw: b"",
            first: [0; 5],
        }
    }

    /// The text as written.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// True when there is no parameter.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The parameters in order.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            raw: self.raw,
            pos: 0,
        }
    }

    /// Looks a parameter up by name, case-insensitively: `None` when absent, `Some(None)` for
    /// a flag, `Some(Some(value))` otherwise (quotes kept).
    ///
    /// Inlined, so that the first parameter (the one looked up most: `tag`, `branch`) is
    /// compared with a name of known length; the others are searched out of line.
    #[inline]
    pub fn get(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        let [ns, ne, vs, ve, next] = self.first.map(usize::from);
        if ne != 0 {
            if self
                .raw
                .get(ns..ne)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
            {
                return Some(if vs == 0 { None } else { self.raw.get(vs..ve) });
            }
            return self.get_after(next, name);
        }
        if self.raw.is_empty() {
            return None;
        }
        self.get_after(0, name)
    }

    /// [`Params::get`] among the parameters from `pos` on.
    #[inline(never)]
    fn get_after(&self, pos: usize, name: &[u8]) -> Option<Option<&'a [u8]>> {
        ParamIter { raw: self.raw, pos }
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    /// True when a parameter of that name is present.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }

    /// Value of a parameter with quotes removed (quoted pairs resolved).
    pub fn get_unquoted(&self, name: &[u8]) -> Option<std::borrow::Cow<'a, [u8]>> {
        self.get(name).flatten().map(crate::scan::unquote)
    }
}

impl<'a> IntoIterator for Params<'a> {
    type Item = Param<'a>;
    type IntoIter = ParamIter<'a>;
    fn into_iter(self) -> ParamIter<'a> {
        self.iter()
    }
}

/// Iterator over a validated [`Params`].
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Param<'a>;
    fn next(&mut self) -> Option<Param<'a>> {
        // The text was validated when the Params was built, so an error cannot occur here.
        scan_one(self.raw, &mut self.pos).ok().flatten()
    }
}

fn bad(what: &'static str, at: usize) -> ParseError {
    ParseError::new(ParseErrorKind::BadHeaderValue(what), at)
}

/// True for octets allowed in an unquoted parameter value: token characters plus those of a
/// host (`:` and `[` `]` for IPv6 references).
#[inline]
fn is_value_char(b: u8) -> bool {
    is_token_char(b) || matches!(b, b':' | b'[' | b']')
}

/// Reads one `; name [= value]` at `*pos`; `Ok(None)` at the end.
#[inline]
fn scan_one<'a>(raw: &'a [u8], pos: &mut usize) -> Result<Option<Param<'a>>> {
    Ok(scan_spans(raw, pos)?.map(|((ns, ne), value)| Param {
        name: raw.get(ns..ne).unwrap_or_default(),
        value: value.and_then(|(vs, ve)| raw.get(vs..ve)),
    }))
}

/// A parameter's name span and value span, if any.
type Spans = ((usize, usize), Option<(usize, usize)>);

/// [`scan_one`] giving offsets into `raw`.
fn scan_spans(raw: &[u8], pos: &mut usize) -> Result<Option<Spans>> {
    let mut i = skip_lws(raw, *pos);
    match raw.get(i) {
        None => {
            *pos = i;
            return Ok(None);
        }
        Some(b';') => i += 1,
        Some(_) => return Err(bad("expected ';' before a parameter", i)),
    }
    i = skip_lws(raw, i);
    let name_start = i;
    while raw.get(i).is_some_and(|&b| is_token_char(b)) {
        i += 1;
    }
    if i == name_start {
        return Err(bad("empty parameter name", name_start));
    }
    let name = (name_start, i);
    let after_name = skip_lws(raw, i);
    let mut value = None;
    if raw.get(after_name) == Some(&b'=') {
        let v_start = skip_lws(raw, after_name + 1);
        let v_end = if raw.get(v_start) == Some(&b'"') {
            quoted_string_end(raw, v_start)?
        } else {
            let mut j = v_start;
            while raw.get(j).is_some_and(|&b| is_value_char(b)) {
                j += 1;
            }
            j
        };
        if v_end == v_start {
            return Err(bad("empty parameter value", v_start));
        }
        value = Some((v_start, v_end));
        i = v_end;
    } else {
        i = after_name;
    }
    // What follows must be LWS then ';' or the end.
    let next = skip_lws(raw, i);
    match raw.get(next) {
        None | Some(b';') => {}
        Some(_) => return Err(bad("unexpected octet in parameter", next)),
    }
    *pos = next;
    Ok(Some((name, value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_values_and_quoted_values_with_lws() {
        let p =
            Params::parse(b" ; newparam =\r\n newvalue ;\r\n secondparam ; q = 0.33; x=\"a;b\"")
                .unwrap();
        let v: Vec<_> = p.iter().map(|p| (p.name, p.value)).collect();
        assert_eq!(
            v,
            vec![
                (&b"newparam"[..], Some(&b"newvalue"[..])),
                (b"secondparam", None),
                (b"q", Some(b"0.33")),
                (b"x", Some(b"\"a;b\"")),
            ]
        );
        assert_eq!(p.get(b"Q"), Some(Some(&b"0.33"[..])));
        assert_eq!(p.get(b"secondparam"), Some(None));
        assert_eq!(p.get(b"nope"), None);
        assert_eq!(&*p.get_unquoted(b"x").unwrap(), b"a;b");
    }

    #[test]
    fn ipv6_reference_is_a_legal_value() {
        let p = Params::parse(b";received=[2001:db8::9:255]").unwrap();
        assert_eq!(p.get(b"received"), Some(Some(&b"[2001:db8::9:255]"[..])));
    }

    #[test]
    fn empty_parameters_are_rejected() {
        assert!(Params::parse(b";;").is_err());
        assert!(Params::parse(b";a=").is_err());
        assert!(Params::parse(b";a b").is_err());
        assert!(Params::parse(b"a").is_err());
        assert!(Params::parse(b";a=\"open").is_err());
        assert!(Params::parse(b"").unwrap().is_empty());
    }
}
