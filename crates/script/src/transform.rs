//! Transformations: `{s.len}`, `{param.value,name}`... The language's own classes (`s`,
//! `param`) live here; SIP classes (`uri`, `nameaddr`) come from the host.

use crate::value::Value;
use std::sync::Arc;

/// A transformation ready to run: the input value and the evaluated parameters give the
/// output, or `None` when the transformation fails (the pseudo-variable is then null).
pub type TransformFn = Arc<dyn Fn(Value, &[Value]) -> Option<Value> + Send + Sync>;

/// A transformation class: from a name (`substr`) and a parameter count, the function, or
/// why there is none.
pub type TransformClass = Box<dyn Fn(&str, usize) -> Result<TransformFn, String> + Send + Sync>;

fn arity(name: &str, got: usize, min: usize, max: usize) -> Result<(), String> {
    if got < min || got > max {
        Err(if min == max {
            format!("{name} takes {min} parameter(s), {got} given")
        } else {
            format!("{name} takes {min} to {max} parameters, {got} given")
        })
    } else {
        Ok(())
    }
}

fn f(func: impl Fn(Value, &[Value]) -> Option<Value> + Send + Sync + 'static) -> TransformFn {
    Arc::new(func)
}

fn param_str(params: &[Value], k: usize) -> String {
    params
        .get(k)
        .map(|v| v.as_str().into_owned())
        .unwrap_or_default()
}

fn param_int(params: &[Value], k: usize) -> Option<i64> {
    params.get(k).and_then(Value::to_int)
}

/// Character index → byte index, clamped to the string.
fn char_slice(s: &str, start: i64, len: Option<i64>) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    let n = i64::try_from(chars.len()).ok()?;
    let begin = if start < 0 { n + start } else { start };
    if begin < 0 || begin > n {
        return None;
    }
    let end = match len {
        None | Some(0) => n,
        Some(l) if l < 0 => n + l,
        Some(l) => (begin + l).min(n),
    };
    if end < begin {
        return None;
    }
    let b = usize::try_from(begin).ok()?;
    let e = usize::try_from(end).ok()?;
    Some(chars.get(b..e)?.iter().collect())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        out.push(char::from(
            HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
        ));
        out.push(char::from(
            HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'),
        ));
    }
    out
}

fn hex_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks(2) {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        out.push(u8::try_from(hi * 16 + lo).ok()?);
    }
    String::from_utf8(out).ok()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(s: &str) -> String {
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b0 = u32::from(chunk.first().copied().unwrap_or(0));
        let b1 = u32::from(chunk.get(1).copied().unwrap_or(0));
        let b2 = u32::from(chunk.get(2).copied().unwrap_or(0));
        let n = (b0 << 16) | (b1 << 8) | b2;
        for k in 0..4 {
            if k <= chunk.len() {
                let idx = ((n >> (18 - 6 * k)) & 63) as usize;
                out.push(char::from(B64.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        let v = u32::try_from(B64.iter().position(|&b| b == c)?).ok()?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes every octet outside `keep` (and outside unreserved characters).
fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(
                char::from(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'))
                    .to_ascii_uppercase(),
            );
            out.push(
                char::from(HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'))
                    .to_ascii_uppercase(),
            );
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = char::from(*bytes.get(i + 1)?).to_digit(16)?;
            let lo = char::from(*bytes.get(i + 2)?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `s` class (strings).
pub fn string_class() -> TransformClass {
    Box::new(|name, n| {
        let t: TransformFn = match name {
            "len" => {
                arity(name, n, 0, 0)?;
                f(|v, _| Some(Value::Int(i64::try_from(v.as_str().chars().count()).ok()?)))
            }
            "int" => {
                arity(name, n, 0, 0)?;
                f(|v, _| {
                    let s = v.as_str();
                    let t = s.trim_start();
                    let digits: String = t
                        .char_indices()
                        .take_while(|(i, c)| {
                            c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+'))
                        })
                        .map(|(_, c)| c)
                        .collect();
                    Some(Value::Int(digits.parse().unwrap_or(0)))
                })
            }
            "substr" => {
                arity(name, n, 2, 2)?;
                f(|v, p| {
                    let len = param_int(p, 1)?;
                    char_slice(&v.as_str(), param_int(p, 0)?, Some(len)).map(Value::Str)
                })
            }
            "select" => {
                arity(name, n, 2, 2)?;
                f(|v, p| {
                    let index = param_int(p, 0)?;
                    let sep = param_str(p, 1).chars().next()?;
                    let s = v.as_str();
                    let parts: Vec<&str> = s.split(sep).collect();
                    let k = if index < 0 {
                        i64::try_from(parts.len()).ok()? + index
                    } else {
                        index
                    };
                    parts
                        .get(usize::try_from(k).ok()?)
                        .map(|x| Value::Str((*x).to_owned()))
                })
            }
            "tolower" => {
                arity(name, n, 0, 0)?;
                f(|v, _| Some(Value::Str(v.as_str().to_lowercase())))
            }
            "toupper" => {
                arity(name, n, 0, 0)?;
                f(|v, _| Some(Value::Str(v.as_str().to_uppercase())))
            }
            "strip" => {
                arity(name, n, 1, 1)?;
                f(|v, p| {
                    let k = param_int(p, 0)?;
                    Some(Value::Str(
                        char_slice(&v.as_str(), k.max(0), None).unwrap_or_default(),
                    ))
                })
            }
            "striptail" => {
                arity(name, n, 1, 1)?;
                f(|v, p| {
                    let k = param_int(p, 0)?.max(0);
                    let s = v.as_str();
                    let keep = s.chars().count().saturating_sub(usize::try_from(k).ok()?);
                    Some(Value::Str(s.chars().take(keep).collect()))
                })
            }
            "prefixes" | "prefixes.quoted" => {
                arity(name, n, 0, 1)?;
                let quoted = name == "prefixes.quoted";
                f(move |v, p| {
                    let s = v.as_str();
                    let max = param_int(p, 0).and_then(|m| usize::try_from(m).ok());
                    let chars: Vec<char> = s.chars().collect();
                    let limit = max
                        .filter(|&m| m > 0)
                        .unwrap_or(chars.len())
                        .min(chars.len());
                    let list: Vec<String> = (1..=limit)
                        .map(|k| {
                            let pre: String = chars.iter().take(k).collect();
                            if quoted {
                                format!("'{pre}'")
                            } else {
                                pre
                            }
                        })
                        .collect();
                    Some(Value::Str(list.join(",")))
                })
            }
            "trim" | "rtrim" | "ltrim" => {
                arity(name, n, 0, 0)?;
                let which = name.to_owned();
                f(move |v, _| {
                    let s = v.as_str();
                    let ws: &[char] = &[' ', '\t', '\r', '\n'];
                    Some(Value::Str(
                        match which.as_str() {
                            "trim" => s.trim_matches(ws),
                            "rtrim" => s.trim_end_matches(ws),
                            _ => s.trim_start_matches(ws),
                        }
                        .to_owned(),
                    ))
                })
            }
            "rm" => {
                arity(name, n, 1, 1)?;
                f(|v, p| Some(Value::Str(v.as_str().replace(&param_str(p, 0), ""))))
            }
            "replace" => {
                arity(name, n, 2, 2)?;
                f(|v, p| {
                    Some(Value::Str(
                        v.as_str().replace(&param_str(p, 0), &param_str(p, 1)),
                    ))
                })
            }
            "encode.hexa" => {
                arity(name, n, 0, 0)?;
                f(|v, _| Some(Value::Str(hex_encode(&v.as_str()))))
            }
            "decode.hexa" => {
                arity(name, n, 0, 0)?;
                f(|v, _| hex_decode(&v.as_str()).map(Value::Str))
            }
            "encode.base64" => {
                arity(name, n, 0, 0)?;
                f(|v, _| Some(Value::Str(base64_encode(&v.as_str()))))
            }
            "decode.base64" => {
                arity(name, n, 0, 0)?;
                f(|v, _| base64_decode(&v.as_str()).map(Value::Str))
            }
            "escape.user" => {
                arity(name, n, 0, 0)?;
                f(|v, _| Some(Value::Str(percent_encode(&v.as_str(), b"&=+$,;?/"))))
            }
            "escape.param" => {
                arity(name, n, 0, 0)?;
                f(|v, _| Some(Value::Str(percent_encode(&v.as_str(), b"[]/:&+$"))))
            }
            "unescape.user" | "unescape.param" | "urldecode.param" => {
                arity(name, n, 0, 0)?;
                f(|v, _| percent_decode(&v.as_str()).map(Value::Str))
            }
            "urlencode.param" => {
                arity(name, n, 0, 0)?;
                f(|v, _| Some(Value::Str(percent_encode(&v.as_str(), b""))))
            }
            "escape.common" => {
                arity(name, n, 0, 0)?;
                f(|v, _| {
                    let mut out = String::new();
                    for c in v.as_str().chars() {
                        match c {
                            '\'' | '"' | '\\' => {
                                out.push('\\');
                                out.push(c);
                            }
                            '\0' => out.push_str("\\0"),
                            _ => out.push(c),
                        }
                    }
                    Some(Value::Str(out))
                })
            }
            "unescape.common" => {
                arity(name, n, 0, 0)?;
                f(|v, _| {
                    let mut out = String::new();
                    let mut chars = v.as_str().chars().collect::<Vec<_>>().into_iter();
                    while let Some(c) = chars.next() {
                        if c == '\\' {
                            match chars.next() {
                                Some('0') => out.push('\0'),
                                Some(x) => out.push(x),
                                None => out.push('\\'),
                            }
                        } else {
                            out.push(c);
                        }
                    }
                    Some(Value::Str(out))
                })
            }
            "unquote" => {
                arity(name, n, 0, 0)?;
                f(|v, _| {
                    let s = v.as_str();
                    let t = s
                        .strip_prefix('"')
                        .and_then(|x| x.strip_suffix('"'))
                        .or_else(|| s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                        .unwrap_or(&s);
                    Some(Value::Str(t.to_owned()))
                })
            }
            "unbracket" => {
                arity(name, n, 0, 0)?;
                f(|v, _| {
                    let s = v.as_str();
                    let t = s
                        .strip_prefix('<')
                        .and_then(|x| x.strip_suffix('>'))
                        .unwrap_or(&s);
                    Some(Value::Str(t.to_owned()))
                })
            }
            "before" | "after" | "rbefore" | "rafter" => {
                arity(name, n, 1, 1)?;
                let which = name.to_owned();
                f(move |v, p| {
                    let s = v.as_str();
                    let needle = param_str(p, 0);
                    let c = needle.chars().next()?;
                    let pos = if which.starts_with('r') {
                        s.rfind(c)
                    } else {
                        s.find(c)
                    };
                    let out = match pos {
                        None => s.to_string(),
                        Some(k) if which.ends_with("before") => s.get(..k)?.to_owned(),
                        Some(k) => s.get(k + c.len_utf8()..)?.to_owned(),
                    };
                    Some(Value::Str(out))
                })
            }
            "numeric" => {
                arity(name, n, 0, 0)?;
                f(|v, _| {
                    let s = v.as_str();
                    Some(Value::Int(i64::from(
                        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
                    )))
                })
            }
            "fill.left" | "fill.right" => {
                arity(name, n, 2, 2)?;
                let left = name == "fill.left";
                f(move |v, p| {
                    let s = v.as_str().into_owned();
                    let fill = param_str(p, 0);
                    let width = usize::try_from(param_int(p, 1)?).ok()?;
                    let mut out = s.clone();
                    let count = s.chars().count();
                    if count < width && !fill.is_empty() {
                        let pad: String = fill.chars().cycle().take(width - count).collect();
                        out = if left { pad + &s } else { s + &pad };
                    }
                    Some(Value::Str(out))
                })
            }
            _ => return Err(format!("unknown transformation s.{name}")),
        };
        Ok(t)
    })
}

/// Splits `a=1;b=2` into (name, value) pairs at `sep` (outside double quotes).
fn split_params(s: &str, sep: char) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut push = |cur: &mut String| {
        let item = cur.trim();
        if !item.is_empty() {
            let (n, v) = match item.split_once('=') {
                Some((n, v)) => (n.trim().to_owned(), v.trim().to_owned()),
                None => (item.to_owned(), String::new()),
            };
            out.push((n, v));
        }
        cur.clear();
    };
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == sep && !quoted {
            push(&mut cur);
        } else {
            cur.push(c);
        }
    }
    push(&mut cur);
    out
}

fn sep_param(p: &[Value], k: usize) -> char {
    p.get(k)
        .and_then(|v| v.as_str().chars().next())
        .unwrap_or(';')
}

/// The `param` class (parameter lists such as `a=1;b=2`).
pub fn param_class() -> TransformClass {
    Box::new(|name, n| {
        let t: TransformFn = match name {
            "value" => {
                arity(name, n, 1, 2)?;
                f(|v, p| {
                    let want = param_str(p, 0);
                    split_params(&v.as_str(), sep_param(p, 1))
                        .into_iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&want))
                        .map(|(_, v)| Value::Str(v))
                        .or(Some(Value::Str(String::new())))
                })
            }
            "valueat" | "name" => {
                arity(name, n, 1, 2)?;
                let want_name = name == "name";
                f(move |v, p| {
                    let idx = usize::try_from(param_int(p, 0)?).ok()?;
                    split_params(&v.as_str(), sep_param(p, 1))
                        .into_iter()
                        .nth(idx)
                        .map(|(k, v)| Value::Str(if want_name { k } else { v }))
                })
            }
            "count" => {
                arity(name, n, 0, 1)?;
                f(|v, p| {
                    Some(Value::Int(
                        i64::try_from(split_params(&v.as_str(), sep_param(p, 0)).len()).ok()?,
                    ))
                })
            }
            "in" => {
                arity(name, n, 1, 2)?;
                f(|v, p| {
                    let want = param_str(p, 0);
                    Some(Value::Int(i64::from(
                        split_params(&v.as_str(), sep_param(p, 1))
                            .iter()
                            .any(|(k, _)| k.eq_ignore_ascii_case(&want)),
                    )))
                })
            }
            _ => return Err(format!("unknown transformation param.{name}")),
        };
        Ok(t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(class: &TransformClass, name: &str, input: &str, params: &[Value]) -> Option<Value> {
        let t = class(name, params.len()).unwrap();
        t(Value::from(input), params)
    }

    #[test]
    fn string_transformations() {
        let s = string_class();
        assert_eq!(run(&s, "len", "héllo", &[]), Some(Value::Int(5)));
        assert_eq!(
            run(&s, "substr", "abcdef", &[Value::Int(1), Value::Int(3)]),
            Some("bcd".into())
        );
        assert_eq!(
            run(&s, "substr", "abcdef", &[Value::Int(-2), Value::Int(0)]),
            Some("ef".into())
        );
        assert_eq!(
            run(&s, "select", "a,b,c", &[Value::Int(1), ",".into()]),
            Some("b".into())
        );
        assert_eq!(
            run(&s, "select", "a,b,c", &[Value::Int(-1), ",".into()]),
            Some("c".into())
        );
        assert_eq!(run(&s, "toupper", "aB", &[]), Some("AB".into()));
        assert_eq!(
            run(&s, "strip", "+4912", &[Value::Int(1)]),
            Some("4912".into())
        );
        assert_eq!(
            run(&s, "striptail", "12345", &[Value::Int(2)]),
            Some("123".into())
        );
        assert_eq!(run(&s, "int", "42abc", &[]), Some(Value::Int(42)));
        assert_eq!(run(&s, "prefixes", "123", &[]), Some("1,12,123".into()));
        assert_eq!(run(&s, "encode.hexa", "A", &[]), Some("41".into()));
        assert_eq!(run(&s, "decode.hexa", "4142", &[]), Some("AB".into()));
        assert_eq!(
            run(&s, "encode.base64", "hello", &[]),
            Some("aGVsbG8=".into())
        );
        assert_eq!(
            run(&s, "decode.base64", "aGVsbG8=", &[]),
            Some("hello".into())
        );
        assert_eq!(run(&s, "escape.user", "a b", &[]), Some("a%20b".into()));
        assert_eq!(run(&s, "unescape.user", "a%20b", &[]), Some("a b".into()));
        assert_eq!(
            run(&s, "before", "user@host", &["@".into()]),
            Some("user".into())
        );
        assert_eq!(
            run(&s, "after", "user@host", &["@".into()]),
            Some("host".into())
        );
        assert!(s("nope", 0).is_err());
        assert!(s("substr", 1).is_err());
    }

    #[test]
    fn param_transformations() {
        let p = param_class();
        assert_eq!(run(&p, "value", "a=1;b=2", &["b".into()]), Some("2".into()));
        assert_eq!(
            run(&p, "valueat", "a=1;b=2", &[Value::Int(0)]),
            Some("1".into())
        );
        assert_eq!(
            run(&p, "name", "a=1;b=2", &[Value::Int(1)]),
            Some("b".into())
        );
        assert_eq!(run(&p, "count", "a=1;b=2;c", &[]), Some(Value::Int(3)));
        assert_eq!(
            run(&p, "value", "a=1,b=2", &["b".into(), ",".into()]),
            Some("2".into())
        );
    }
}
