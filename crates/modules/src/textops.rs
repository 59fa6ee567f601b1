//! `textops` and `textopsx`: header and text operations on the message (`append_hf`,
//! `remove_hf`, `is_method`, `search`, `subst`...).

use sable_engine::{function, required, take_arg, Header, Module, MsgCtx, Sip};
use sable_script::{Arg, ArgError, Registry, RouteMask, StrArg};
use sable_sip::message::Span;
use std::sync::Arc;

#[derive(Debug)]
pub struct Textops;

#[derive(Debug)]
pub struct Textopsx;

/// REQUEST | ONREPLY | FAILURE | BRANCH: where Kamailio lets header functions run.
const HDR_ROUTES: RouteMask = RouteMask(
    RouteMask::REQUEST.0 | RouteMask::ONREPLY.0 | RouteMask::FAILURE.0 | RouteMask::BRANCH.0,
);

/// A regex of a textops function: POSIX extended, case-insensitive, `^`/`$` at line
/// boundaries (Kamailio compiles them with `REG_EXTENDED|REG_ICASE|REG_NEWLINE`).
fn textops_regex(pattern: &str, index: usize) -> Result<regex::bytes::Regex, ArgError> {
    regex::bytes::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .multi_line(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ArgError::new(index, format!("bad regular expression: {e}")))
}

fn const_regex(arg: Arg<Sip>, index: usize) -> Result<regex::bytes::Regex, ArgError> {
    let text = arg
        .const_str()
        .ok_or_else(|| ArgError::new(index, "the regular expression must be a constant"))?
        .into_owned();
    textops_regex(&text, index)
}

/// A sed-style substitution `/re/replacement/flags` (`i` case-insensitive, `g` every match).
#[derive(Debug, Clone)]
pub struct Subst {
    re: regex::bytes::Regex,
    /// Replacement in the regex crate's syntax (`${1}`).
    replacement: Vec<u8>,
    global: bool,
}

impl Subst {
    /// Parses `/re/repl/flags` (any delimiter: the first character).
    pub fn parse(expr: &str) -> Result<Subst, String> {
        let mut chars = expr.chars();
        let delim = chars.next().ok_or("empty substitution")?;
        if delim.is_alphanumeric() || delim == '\\' {
            return Err(format!("bad delimiter '{delim}'"));
        }
        let mut parts: Vec<String> = vec![String::new()];
        let mut escaped = false;
        for c in chars {
            if escaped {
                if c != delim {
                    if let Some(p) = parts.last_mut() {
                        p.push('\\');
                    }
                }
                if let Some(p) = parts.last_mut() {
                    p.push(c);
                }
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == delim {
                parts.push(String::new());
            } else if let Some(p) = parts.last_mut() {
                p.push(c);
            }
        }
        if parts.len() != 3 {
            return Err(format!(
                "expected {delim}regex{delim}replacement{delim}flags"
            ));
        }
        let (pattern, repl, flags) = match parts.as_slice() {
            [a, b, c] => (a.clone(), b.clone(), c.clone()),
            _ => return Err("bad substitution".to_owned()),
        };
        let mut icase = false;
        let mut global = false;
        for f in flags.chars() {
            match f {
                'i' => icase = true,
                'g' => global = true,
                's' => {}
                other => return Err(format!("unknown flag '{other}'")),
            }
        }
        let re = regex::bytes::RegexBuilder::new(&pattern)
            .case_insensitive(icase)
            .multi_line(true)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("bad regular expression: {e}"))?;
        // \N back-references become ${N}; a literal '$' is escaped.
        let mut replacement = Vec::with_capacity(repl.len());
        let mut it = repl.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '\\' => match it.next() {
                    Some(d) if d.is_ascii_digit() => {
                        replacement.extend_from_slice(format!("${{{d}}}").as_bytes())
                    }
                    Some('n') => replacement.push(b'\n'),
                    Some('r') => replacement.push(b'\r'),
                    Some('t') => replacement.push(b'\t'),
                    Some(o) => {
                        let mut buf = [0u8; 4];
                        replacement.extend_from_slice(o.encode_utf8(&mut buf).as_bytes());
                    }
                    None => replacement.push(b'\\'),
                },
                '$' => replacement.extend_from_slice(b"$$"),
                o => {
                    let mut buf = [0u8; 4];
                    replacement.extend_from_slice(o.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        Ok(Subst {
            re,
            replacement,
            global,
        })
    }

    /// Applies to a text; `None` when nothing matched.
    pub fn apply(&self, text: &[u8]) -> Option<Vec<u8>> {
        if !self.re.is_match(text) {
            return None;
        }
        let out = if self.global {
            self.re.replace_all(text, self.replacement.as_slice())
        } else {
            self.re.replace(text, self.replacement.as_slice())
        };
        Some(out.into_owned())
    }

    /// The (span, replacement) of each match in `text`, which starts at `base`.
    fn edits(&self, text: &[u8], base: usize) -> Vec<(Span, Vec<u8>)> {
        let mut out = Vec::new();
        for caps in self.re.captures_iter(text) {
            let Some(m) = caps.get(0) else { continue };
            let mut rep = Vec::new();
            caps.expand(&self.replacement, &mut rep);
            out.push((Span::new(base + m.start(), base + m.end()), rep));
            if !self.global {
                break;
            }
        }
        out
    }
}

fn subst_arg(arg: Arg<Sip>, index: usize) -> Result<Subst, ArgError> {
    let text = arg
        .const_str()
        .ok_or_else(|| ArgError::new(index, "the substitution must be a constant"))?
        .into_owned();
    Subst::parse(&text).map_err(|e| ArgError::new(index, e))
}

/// Where the header section starts (after the start line) and the message ends.
fn headers_and_body(ctx: &MsgCtx<'_>) -> (usize, usize) {
    let msg = &ctx.msg;
    let start = msg.start_line_span().range().end;
    let start = msg
        .buffer()
        .get(start..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        .map_or(start, |k| start + k + 1);
    (start, msg.message_span().range().end)
}

fn header_arg(arg: Arg<Sip>, index: usize) -> Result<Header, ArgError> {
    let name = arg
        .const_str()
        .ok_or_else(|| ArgError::new(index, "the header name must be a constant"))?
        .into_owned();
    if name.trim().is_empty() || name.contains([':', ' ', '\r', '\n']) {
        return Err(ArgError::new(
            index,
            format!("'{name}' is not a header name"),
        ));
    }
    Ok(Header::new(&name))
}

fn first_line_of(ctx: &MsgCtx<'_>, h: &Header) -> Option<Span> {
    ctx.msg
        .headers()
        .iter()
        .find(|v| h.matches(&ctx.msg, v))
        .map(|v| v.line)
}

/// Adds header text at the end of the headers (or after the last `hdr` line); `insert`
/// puts it before the first header (or before the first `hdr` line).
fn add_hf(
    insert: bool,
) -> impl Fn(
    &mut sable_script::FixupCtx<'_, '_, Sip>,
    Vec<Arg<Sip>>,
) -> Result<sable_script::Action<Sip>, ArgError> {
    move |_, mut args| {
        let text = required(&mut args, 1, "header text")?.into_str();
        let anchor = match take_arg(&mut args, 0) {
            Some(a) => Some(header_arg(a, 2)?),
            None => None,
        };
        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
            let t = text.eval(ctx).into_owned();
            if t.is_empty() {
                return -1;
            }
            // With a header name: after (append) or before (insert) the first line of that
            // header; when the message has none, at the end (append) or the start (insert)
            // of the headers, as Kamailio's textops.
            let first_header = ctx
                .msg
                .headers()
                .first()
                .map_or(ctx.msg.headers_end(), |h| h.line.range().start);
            let anchor_line = anchor.as_ref().and_then(|h| first_line_of(ctx, h));
            let at = match (anchor_line, insert) {
                (Some(l), false) => l.range().end,
                (Some(l), true) => l.range().start,
                (None, false) => ctx.msg.headers_end(),
                (None, true) => first_header,
            };
            ctx.edits.insert_raw(at, t.as_bytes());
            1
        }))
    }
}

fn method_list(arg: Arg<Sip>) -> Result<Vec<String>, ArgError> {
    let text = arg
        .const_str()
        .ok_or_else(|| ArgError::new(1, "the method list must be a constant"))?
        .into_owned();
    let list: Vec<String> = text
        .split('|')
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    if list.is_empty() {
        return Err(ArgError::new(1, "empty method list"));
    }
    Ok(list)
}

impl Module for Textops {
    fn name(&self) -> &'static str {
        "textops"
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        reg.function(
            "is_method",
            sable_engine::function("textops", 1, 1, RouteMask::ANY, |_, mut a| {
                let list = method_list(required(&mut a, 1, "methods")?)?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let m = ctx.method_bytes();
                    if list.iter().any(|x| x.as_bytes().eq_ignore_ascii_case(m)) {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
        reg.function(
            "append_hf",
            function("textops", 1, 2, HDR_ROUTES, add_hf(false)),
        );
        reg.function(
            "insert_hf",
            function("textops", 1, 2, HDR_ROUTES, add_hf(true)),
        );
        reg.function(
            "remove_hf",
            function("textops", 1, 1, HDR_ROUTES, |_, mut a| {
                let h = header_arg(required(&mut a, 1, "header name")?, 1)?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let lines: Vec<Span> = ctx
                        .msg
                        .headers()
                        .iter()
                        .filter(|v| v.index_in_line == 0 && h.matches(&ctx.msg, v))
                        .map(|v| v.line)
                        .collect();
                    for l in &lines {
                        ctx.edits.delete(*l);
                    }
                    if lines.is_empty() {
                        -1
                    } else {
                        1
                    }
                }))
            }),
        );
        reg.function(
            "is_present_hf",
            function("textops", 1, 1, RouteMask::ANY, |_, mut a| {
                let h = header_arg(required(&mut a, 1, "header name")?, 1)?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    if first_line_of(ctx, &h).is_some() {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
        reg.function(
            "search",
            function("textops", 1, 1, RouteMask::ANY, |_, mut a| {
                let re = const_regex(required(&mut a, 1, "regular expression")?, 1)?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    if re.is_match(ctx.msg.as_bytes()) {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
        reg.function(
            "search_body",
            function("textops", 1, 1, RouteMask::ANY, |_, mut a| {
                let re = const_regex(required(&mut a, 1, "regular expression")?, 1)?;
                Ok(Box::new(
                    move |ctx: &mut MsgCtx<'_>| {
                        if re.is_match(ctx.msg.body()) {
                            1
                        } else {
                            -1
                        }
                    },
                ))
            }),
        );
        reg.function(
            "search_append",
            function("textops", 2, 2, HDR_ROUTES, |_, mut a| {
                let re = const_regex(required(&mut a, 1, "regular expression")?, 1)?;
                let text = required(&mut a, 2, "text")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(m) = re.find(ctx.msg.as_bytes()) else {
                        return -1;
                    };
                    let base = ctx.msg.message_span().range().start;
                    let t = text.eval(ctx).into_owned();
                    ctx.edits.insert_raw(base + m.end(), t.as_bytes());
                    1
                }))
            }),
        );
        reg.function(
            "subst",
            function("textops", 1, 1, HDR_ROUTES, |_, mut a| {
                let s = subst_arg(required(&mut a, 1, "substitution")?, 1)?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let (start, end) = headers_and_body(ctx);
                    let Some(text) = ctx.msg.buffer().get(start..end) else {
                        return -1;
                    };
                    let edits = s.edits(text, start);
                    if edits.is_empty() {
                        return -1;
                    }
                    for (span, rep) in edits {
                        ctx.edits.replace(span, &rep);
                    }
                    1
                }))
            }),
        );
        for (name, user_only) in [("subst_uri", false), ("subst_user", true)] {
            reg.function(
                name,
                function(
                    "textops",
                    1,
                    1,
                    RouteMask(RouteMask::REQUEST.0 | RouteMask::FAILURE.0 | RouteMask::BRANCH.0),
                    move |_, mut a| {
                        let s = Arc::new(subst_arg(required(&mut a, 1, "substitution")?, 1)?);
                        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                            if !ctx.is_request() {
                                return -1;
                            }
                            let uri = ctx.ruri_text().into_owned();
                            if user_only {
                                let Some(mut parts) = sable_engine::UriParts::of(&uri) else {
                                    return -1;
                                };
                                let user = parts.user.clone().unwrap_or_default();
                                let Some(new) = s.apply(user.as_bytes()) else {
                                    return -1;
                                };
                                let new = String::from_utf8_lossy(&new).into_owned();
                                parts.user = if new.is_empty() { None } else { Some(new) };
                                ctx.new_uri = Some(parts.render());
                            } else {
                                let Some(new) = s.apply(uri.as_bytes()) else {
                                    return -1;
                                };
                                ctx.new_uri = Some(String::from_utf8_lossy(&new).into_owned());
                            }
                            1
                        }))
                    },
                ),
            );
        }
        reg.function(
            "starts_with",
            function("textops", 2, 2, RouteMask::ANY, |_, mut a| {
                let s = required(&mut a, 1, "text")?.into_str();
                let p = required(&mut a, 2, "prefix")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let text = s.eval(ctx).into_owned();
                    if text.starts_with(p.eval(ctx).as_ref()) {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
        for (name, icase) in [("cmp_str", false), ("cmp_istr", true)] {
            reg.function(
                name,
                function("textops", 2, 2, RouteMask::ANY, move |_, mut a| {
                    let x = required(&mut a, 1, "text")?.into_str();
                    let y = required(&mut a, 2, "text")?.into_str();
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        let l = x.eval(ctx).into_owned();
                        let r = y.eval(ctx);
                        let equal = if icase {
                            l.eq_ignore_ascii_case(&r)
                        } else {
                            l == r
                        };
                        if equal {
                            1
                        } else {
                            -2
                        }
                    }))
                }),
            );
        }
        reg.function(
            "in_list",
            function("textops", 3, 3, RouteMask::ANY, |_, mut a| {
                let subject = required(&mut a, 1, "subject")?.into_str();
                let list = required(&mut a, 2, "list")?.into_str();
                let sep: StrArg<Sip> = required(&mut a, 3, "separator")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let s = subject.eval(ctx).into_owned();
                    let l = list.eval(ctx).into_owned();
                    let sep = sep.eval(ctx).chars().next().unwrap_or(',');
                    if l.split(sep).any(|x| x.trim() == s) {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
        reg.function(
            "has_body",
            function("textops", 0, 1, RouteMask::ANY, |_, mut a| {
                let mime = take_arg(&mut a, 0).map(Arg::into_str);
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    if ctx.msg.body().is_empty() {
                        return -1;
                    }
                    let Some(m) = &mime else { return 1 };
                    let want = m.eval(ctx).into_owned();
                    let Some((t, s)) = want.split_once('/') else {
                        return -1;
                    };
                    match ctx.msg.content_type() {
                        Some(Ok(ct)) if ct.is(t, s) => 1,
                        _ => -1,
                    }
                }))
            }),
        );
        reg.function(
            "append_to_reply",
            function(
                "textops",
                1,
                1,
                RouteMask(RouteMask::REQUEST.0 | RouteMask::FAILURE.0 | RouteMask::BRANCH.0),
                |_, mut a| {
                    let text = required(&mut a, 1, "header text")?.into_str();
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        let t = text.eval(ctx).into_owned();
                        ctx.reply_headers.push_str(&t);
                        1
                    }))
                },
            ),
        );
    }
}

/// Shell-style wildcard match (`*`, `?`, `[...]`), as fnmatch(3) without flags.
pub fn fnmatch(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let (mut star_p, mut star_t) = (None::<usize>, 0usize);
    while t < text.len() {
        let pc = pattern.get(p).copied();
        let tc = text.get(t).copied();
        let single = match pc {
            Some(b'?') => Some(1),
            Some(b'[') => class_match(pattern, p, tc.unwrap_or(0)),
            Some(b'*') => None,
            Some(c) if Some(c) == tc => Some(1),
            _ => Some(0),
        };
        match (pc, single) {
            (Some(b'*'), _) => {
                star_p = Some(p);
                star_t = t;
                p += 1;
            }
            (_, Some(adv)) if adv > 0 => {
                p += if pc == Some(b'[') { adv } else { 1 };
                t += 1;
            }
            _ => match star_p {
                Some(sp) => {
                    p = sp + 1;
                    star_t += 1;
                    t = star_t;
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// For a `[...]` class at `p`: `Some(len of the class)` when `c` matches, `Some(0)` when not.
fn class_match(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    let mut k = p + 1;
    let negate = matches!(pattern.get(k), Some(b'!' | b'^'));
    if negate {
        k += 1;
    }
    let mut hit = false;
    let mut first = true;
    while let Some(&x) = pattern.get(k) {
        if x == b']' && !first {
            let len = k + 1 - p;
            return Some(if hit != negate { len } else { 0 });
        }
        first = false;
        if pattern.get(k + 1) == Some(&b'-') && pattern.get(k + 2).is_some_and(|&e| e != b']') {
            let hi = pattern.get(k + 2).copied().unwrap_or(x);
            if (x..=hi).contains(&c) {
                hit = true;
            }
            k += 3;
        } else {
            if x == c {
                hit = true;
            }
            k += 1;
        }
    }
    // No closing ']': the '[' is an ordinary character.
    Some(usize::from(c == b'['))
}

impl Module for Textopsx {
    fn name(&self) -> &'static str {
        "textopsx"
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        reg.function(
            "remove_body",
            function("textopsx", 0, 0, HDR_ROUTES, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                    if ctx.msg.body().is_empty() {
                        return -1;
                    }
                    ctx.edits.remove_body();
                    1
                }))
            }),
        );
        reg.function(
            "change_reply_status",
            function("textopsx", 2, 2, RouteMask::ONREPLY, |_, mut a| {
                let code = required(&mut a, 1, "code")?.into_int(1)?;
                if let Some(c) = code.as_const() {
                    if !(100..=699).contains(&c) {
                        return Err(ArgError::new(
                            1,
                            format!("reply code {c} is not in 100..699"),
                        ));
                    }
                }
                let reason = required(&mut a, 2, "reason")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(old) = ctx.msg.status_code() else {
                        return -1;
                    };
                    let Some(new) = code.eval(ctx).filter(|c| (100..=699).contains(c)) else {
                        return -1;
                    };
                    // A final reply stays final and a provisional one provisional.
                    if (old < 200) != (new < 200) {
                        tracing::warn!("change_reply_status: {old} cannot become {new}");
                        return -1;
                    }
                    let r = reason.eval(ctx).into_owned();
                    if r.contains(['\r', '\n']) {
                        return -1;
                    }
                    let line = format!("SIP/2.0 {new} {r}");
                    let span = ctx.msg.start_line_span();
                    ctx.edits.replace(span, line.as_bytes());
                    1
                }))
            }),
        );
        reg.function(
            "fnmatch",
            function("textopsx", 2, 3, RouteMask::ANY, |_, mut a| {
                let value = required(&mut a, 1, "value")?.into_str();
                let pattern = required(&mut a, 2, "pattern")?.into_str();
                let flags = take_arg(&mut a, 0).map(Arg::into_str);
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let v = value.eval(ctx).into_owned();
                    let p = pattern.eval(ctx).into_owned();
                    let icase = flags.as_ref().is_some_and(|f| f.eval(ctx).contains('i'));
                    let hit = if icase {
                        fnmatch(
                            p.to_ascii_lowercase().as_bytes(),
                            v.to_ascii_lowercase().as_bytes(),
                        )
                    } else {
                        fnmatch(p.as_bytes(), v.as_bytes())
                    };
                    if hit {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_patterns() {
        assert!(fnmatch(b"*", b"anything"));
        assert!(fnmatch(b"10.0.*", b"10.0.3.4"));
        assert!(!fnmatch(b"10.0.*", b"10.1.3.4"));
        assert!(fnmatch(b"a?c", b"abc"));
        assert!(fnmatch(b"[a-c]x[!0-9]", b"bxz"));
        assert!(!fnmatch(b"[a-c]x[!0-9]", b"bx5"));
        assert!(fnmatch(b"*@example.com", b"alice@example.com"));
        assert!(!fnmatch(b"abc", b"abcd"));
        assert!(fnmatch(b"a*b*c", b"aXXbYYc"));
        assert!(fnmatch(b"[", b"["));
    }

    #[test]
    fn subst_expressions() {
        let s = Subst::parse("/^(sip:)?\\+49/sip:0049/").unwrap();
        assert_eq!(s.apply(b"sip:+4912345").unwrap(), b"sip:004912345");
        let s = Subst::parse("/a/b/g").unwrap();
        assert_eq!(s.apply(b"banana").unwrap(), b"bbnbnb");
        let s = Subst::parse("/A/b/i").unwrap();
        assert_eq!(s.apply(b"banana").unwrap(), b"bbnana");
        let s = Subst::parse("/(\\d+)-(\\d+)/\\2-\\1/").unwrap();
        assert_eq!(s.apply(b"12-34").unwrap(), b"34-12");
        let s = Subst::parse("#x#$#").unwrap();
        assert_eq!(s.apply(b"x").unwrap(), b"$");
        assert!(Subst::parse("/a/b").is_err());
        assert!(Subst::parse("/(/b/").is_err());
        assert!(Subst::parse("/a/b/q").is_err());
        assert_eq!(Subst::parse("/z/y/").unwrap().apply(b"abc"), None);
    }
}
