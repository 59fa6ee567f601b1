//! Pseudo-variables and format strings.
//!
//! The forms read here (Kamailio's, from its documentation and observed behaviour):
//!
//! - `$name`: the name is made of `[A-Za-z0-9_.]` (so `$fU.x` is the name `fU.x`, as in
//!   Kamailio, and `$fU-x` is `$fU` followed by the text `-x`);
//! - `$name(inner)`: `inner` is any text with balanced parentheses, kept as written
//!   (`$avp(s:caller)`, `$sht(ipban=>$si)`, `$xavp(x[0]=>b)`);
//! - `$(name(inner)[index]{class.name,param}{...})`: index `n`, `-n`, `*` or a
//!   pseudo-variable; any number of transformations.
//!
//! In a format string, `$$` is one literal `$` and a `$` that starts no valid name stays literal
//! text. A pseudo-variable never spans lines.

// `ScriptError` is large (its public fields are fixed: kind, file, pos, hint), and a config is
// parsed once at load, so returning it by value costs nothing that matters.
#![allow(clippy::result_large_err)]

use crate::ast::{FormatPart, Pos, PvIndex, PvRef, Transform, TransformParam};
use crate::error::{ErrorKind, ScriptError};

/// How deeply pseudo-variables may nest inside indexes and transformation parameters.
const MAX_PV_NESTING: usize = 16;

/// A fault found while scanning a pseudo-variable: what, and at which character offset of the
/// scanned text. The caller turns the offset into a position.
#[derive(Debug)]
pub(crate) struct PvError {
    pub kind: ErrorKind,
    pub at: usize,
    pub hint: Option<String>,
}

/// Reads pseudo-variables out of a slice of characters whose first character is at `base`.
pub(crate) struct PvScanner<'a> {
    s: &'a [char],
    base: Pos,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

fn is_transform_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'
}

impl<'a> PvScanner<'a> {
    pub(crate) fn new(s: &'a [char], base: Pos) -> Self {
        PvScanner { s, base }
    }

    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }

    /// The position of character `i`, counting lines and columns from `base`.
    pub(crate) fn pos(&self, i: usize) -> Pos {
        let mut p = self.base;
        for c in self.s.iter().take(i) {
            if *c == '\n' {
                p.line = p.line.saturating_add(1);
                p.col = 1;
            } else {
                p.col = p.col.saturating_add(1);
            }
        }
        p
    }

    /// The text from `from` up to (not including) `to`, or to the end of the line.
    fn text(&self, from: usize, to: usize) -> String {
        self.s
            .iter()
            .skip(from)
            .take(to.saturating_sub(from))
            .take_while(|c| **c != '\n')
            .collect()
    }

    fn bad_pv(&self, start: usize, upto: usize, at: usize, hint: &str) -> PvError {
        PvError {
            kind: ErrorKind::BadPseudoVariable(self.text(start, upto)),
            at,
            hint: Some(hint.to_string()),
        }
    }

    fn read_name(&self, mut i: usize) -> (String, usize) {
        let mut name = String::new();
        while let Some(c) = self.at(i).filter(|c| is_name_char(*c)) {
            name.push(c);
            i += 1;
        }
        (name, i)
    }

    /// Reads the pseudo-variable that starts with the `$` at `i`. `Ok(None)` when the `$` is
    /// not followed by a name or `(` (it is then plain text in a format). On success, returns
    /// the reference and the offset just after it.
    pub(crate) fn pv(&self, i: usize, depth: usize) -> Result<Option<(PvRef, usize)>, PvError> {
        if self.at(i) != Some('$') {
            return Ok(None);
        }
        if depth > MAX_PV_NESTING {
            return Err(self.bad_pv(
                i,
                i + 2,
                i,
                "pseudo-variables are nested too deeply in indexes or transformations",
            ));
        }
        let pos = self.pos(i);
        if self.at(i + 1) == Some('(') {
            return self.long_form(i, pos, depth).map(Some);
        }
        let (name, mut j) = self.read_name(i + 1);
        if name.is_empty() {
            return Ok(None);
        }
        let mut inner = None;
        if self.at(j) == Some('(') {
            let (text, next) = self.inner(i, j)?;
            inner = Some(text);
            j = next;
        }
        Ok(Some((
            PvRef {
                name,
                inner,
                index: None,
                transforms: Vec::new(),
                pos,
            },
            j,
        )))
    }

    /// `$(name(inner)[index]{tr}...)` with the `$` at `i`.
    fn long_form(&self, i: usize, pos: Pos, depth: usize) -> Result<(PvRef, usize), PvError> {
        let (name, mut j) = self.read_name(i + 2);
        if name.is_empty() {
            return Err(self.bad_pv(
                i,
                j + 1,
                j,
                "expected a name after '$(', as in $(avp(x)[0]) or $(ru{uri.user})",
            ));
        }
        let mut inner = None;
        if self.at(j) == Some('(') {
            let (text, next) = self.inner(i, j)?;
            inner = Some(text);
            j = next;
        }
        let mut index = None;
        if self.at(j) == Some('[') {
            let (idx, next) = self.index(i, j, depth)?;
            index = Some(idx);
            j = next;
        }
        let mut transforms = Vec::new();
        while self.at(j) == Some('{') {
            let (tr, next) = self.transform(j, depth)?;
            transforms.push(tr);
            j = next;
        }
        if self.at(j) != Some(')') {
            return Err(self.bad_pv(
                i,
                j + 1,
                j,
                "expected ')' to close '$(': the form is $(name(inner)[index]{transformation})",
            ));
        }
        Ok((
            PvRef {
                name,
                inner,
                index,
                transforms,
                pos,
            },
            j + 1,
        ))
    }

    /// The balanced-parenthesis text after the `(` at `open`; returns it and the offset after
    /// the closing `)`.
    fn inner(&self, start: usize, open: usize) -> Result<(String, usize), PvError> {
        let mut depth = 0usize;
        let mut k = open + 1;
        loop {
            match self.at(k) {
                None | Some('\n') => {
                    return Err(self.bad_pv(
                        start,
                        k,
                        open,
                        "the '(' of this pseudo-variable is not closed on its line",
                    ))
                }
                Some('(') => depth += 1,
                Some(')') => {
                    if depth == 0 {
                        return Ok((self.text(open + 1, k), k + 1));
                    }
                    depth -= 1;
                }
                Some(_) => {}
            }
            k += 1;
        }
    }

    /// `[n]`, `[-n]`, `[*]` or `[$pv]` with the `[` at `open`.
    fn index(&self, start: usize, open: usize, depth: usize) -> Result<(PvIndex, usize), PvError> {
        let k = open + 1;
        let hint = "an index is [n], [-n], [*] or [$var(i)]";
        let (idx, next) = match self.at(k) {
            Some('*') => (PvIndex::All, k + 1),
            Some('$') => match self.pv(k, depth + 1)? {
                Some((pv, next)) => (PvIndex::Pv(Box::new(pv)), next),
                None => return Err(self.bad_pv(start, k + 1, k, hint)),
            },
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let mut e = k + 1;
                while self.at(e).is_some_and(|c| c.is_ascii_digit()) {
                    e += 1;
                }
                let digits = self.text(k, e);
                match digits.parse::<i64>() {
                    Ok(n) => (PvIndex::Int(n), e),
                    Err(_) => return Err(self.bad_pv(start, e + 1, k, hint)),
                }
            }
            _ => return Err(self.bad_pv(start, k + 1, k, hint)),
        };
        if self.at(next) != Some(']') {
            return Err(self.bad_pv(start, next + 1, next, "expected ']' to close the index"));
        }
        Ok((idx, next + 1))
    }

    fn bad_tr(&self, open: usize, upto: usize, hint: &str) -> PvError {
        PvError {
            kind: ErrorKind::BadTransformation(self.text(open, upto)),
            at: open,
            hint: Some(hint.to_string()),
        }
    }

    /// `{class.name[,param...]}` with the `{` at `open`.
    fn transform(&self, open: usize, depth: usize) -> Result<(Transform, usize), PvError> {
        let unterminated = "a transformation is {class.name[,param...]} and ends with '}'";
        let mut k = open + 1;
        let mut full = String::new();
        while let Some(c) = self.at(k).filter(|c| is_transform_name_char(*c)) {
            full.push(c);
            k += 1;
        }
        match self.at(k) {
            Some(',') | Some('}') => {}
            _ => return Err(self.bad_tr(open, k + 1, unterminated)),
        }
        let (class, name) = match full.split_once('.') {
            Some((c, n)) if !c.is_empty() && !n.is_empty() => (c.to_string(), n.to_string()),
            _ => {
                return Err(self.bad_tr(
                    open,
                    k + 1,
                    "a transformation name is class.name, as in {s.len} or {uri.user}",
                ))
            }
        };
        let mut params = Vec::new();
        while self.at(k) == Some(',') {
            k += 1;
            let (param, next) = self.transform_param(open, k, depth)?;
            params.push(param);
            k = next;
        }
        if self.at(k) != Some('}') {
            return Err(self.bad_tr(open, k + 1, unterminated));
        }
        Ok((
            Transform {
                class,
                name,
                params,
                pos: self.pos(open),
            },
            k + 1,
        ))
    }

    /// One parameter starting at `k`; returns it and the offset of the `,` or `}` after it.
    fn transform_param(
        &self,
        open: usize,
        k: usize,
        depth: usize,
    ) -> Result<(TransformParam, usize), PvError> {
        let unterminated = "a transformation is {class.name[,param...]} and ends with '}'";
        let ends_param = |i: usize| matches!(self.at(i), Some(',') | Some('}'));
        let skip_spaces = |mut i: usize| {
            while matches!(self.at(i), Some(' ') | Some('\t')) {
                i += 1;
            }
            i
        };
        let first = skip_spaces(k);
        match self.at(first) {
            Some(q) if q == '"' || q == '\'' => {
                let mut text = String::new();
                let mut i = first + 1;
                loop {
                    match self.at(i) {
                        None | Some('\n') => return Err(self.bad_tr(open, i, unterminated)),
                        Some('\\') if self.at(i + 1).is_some_and(|c| c == q || c == '\\') => {
                            if let Some(c) = self.at(i + 1) {
                                text.push(c);
                            }
                            i += 2;
                        }
                        Some(c) if c == q => break,
                        Some(c) => {
                            text.push(c);
                            i += 1;
                        }
                    }
                }
                let after = skip_spaces(i + 1);
                if !ends_param(after) {
                    return Err(self.bad_tr(open, after + 1, unterminated));
                }
                return Ok((TransformParam::Text(text), after));
            }
            Some('$') => {
                if let Some((pv, next)) = self.pv(first, depth + 1)? {
                    let after = skip_spaces(next);
                    if ends_param(after) {
                        return Ok((TransformParam::Pv(pv), after));
                    }
                }
            }
            _ => {}
        }
        let mut i = k;
        let mut text = String::new();
        loop {
            match self.at(i) {
                None | Some('\n') => return Err(self.bad_tr(open, i, unterminated)),
                Some(',') | Some('}') => return Ok((TransformParam::Text(text), i)),
                Some(c) => {
                    text.push(c);
                    i += 1;
                }
            }
        }
    }

    /// A [`PvError`] as a [`ScriptError`] of `file`.
    pub(crate) fn error(&self, e: PvError, file: &str) -> ScriptError {
        ScriptError {
            kind: e.kind,
            file: file.to_string(),
            pos: self.pos(e.at),
            hint: e.hint,
        }
    }
}

/// Splits a format string (a function parameter such as `"for $rm the value is $avp(x)"`)
/// into text and pseudo-variables. `pos` is the position of the first character of `s`; the
/// positions of the parts are counted from it. Adjacent text is merged, `$$` is a literal `$`,
/// and a `$` that starts no name stays text.
///
/// The error's `file` is empty: the caller knows the file (`Config::files[pos.file]`).
pub fn parse_format(s: &str, pos: Pos) -> Result<Vec<FormatPart>, ScriptError> {
    let chars: Vec<char> = s.chars().collect();
    let scanner = PvScanner::new(&chars, pos);
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while let Some(c) = chars.get(i).copied() {
        if c != '$' {
            text.push(c);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'$') {
            text.push('$');
            i += 2;
            continue;
        }
        match scanner.pv(i, 0) {
            Ok(Some((pv, next))) => {
                if !text.is_empty() {
                    parts.push(FormatPart::Text(std::mem::take(&mut text)));
                }
                parts.push(FormatPart::Pv(pv));
                i = next;
            }
            Ok(None) => {
                text.push('$');
                i += 1;
            }
            Err(e) => return Err(scanner.error(e, "")),
        }
    }
    if !text.is_empty() {
        parts.push(FormatPart::Text(text));
    }
    Ok(parts)
}

/// Reads a string that must be exactly one pseudo-variable (a modparam value such as
/// `"$avp(caller)"`). `pos` is the position of the first character of `s`.
///
/// The error's `file` is empty: the caller knows the file.
pub fn parse_pv(s: &str, pos: Pos) -> Result<PvRef, ScriptError> {
    let chars: Vec<char> = s.chars().collect();
    let scanner = PvScanner::new(&chars, pos);
    let not_one = || {
        ScriptError::new(ErrorKind::BadPseudoVariable(s.to_string()), "", pos)
            .with_hint("expected exactly one pseudo-variable, such as $avp(name)")
    };
    match scanner.pv(0, 0) {
        Ok(Some((pv, next))) if next == chars.len() => Ok(pv),
        Ok(_) => Err(not_one()),
        Err(e) => Err(scanner.error(e, "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: u32, col: u32) -> Pos {
        Pos { file: 0, line, col }
    }

    fn pv(s: &str) -> PvRef {
        parse_pv(s, p(1, 1)).unwrap()
    }

    fn text(parts: &[FormatPart]) -> String {
        parts
            .iter()
            .map(|part| match part {
                FormatPart::Text(t) => t.clone(),
                FormatPart::Pv(pv) => format!("<{}>", pv.name),
            })
            .collect()
    }

    #[test]
    fn format_splits_text_and_pseudo_variables() {
        let parts = parse_format(
            "for $rm the value is $avp(x) and $(ru{uri.user}) $$",
            p(1, 1),
        )
        .unwrap();
        assert_eq!(text(&parts), "for <rm> the value is <avp> and <ru> $");
        assert_eq!(parts.len(), 7);
        let FormatPart::Pv(avp) = &parts[3] else {
            panic!("not a pv: {:?}", parts[3])
        };
        assert_eq!(avp.inner.as_deref(), Some("x"));
        assert_eq!(avp.pos, p(1, 22));
        let FormatPart::Pv(ru) = &parts[5] else {
            panic!("not a pv")
        };
        assert_eq!(ru.transforms.len(), 1);
        assert_eq!(ru.transforms[0].class, "uri");
        assert_eq!(ru.transforms[0].name, "user");
    }

    #[test]
    fn format_dollar_without_name_is_text_and_text_is_merged() {
        let parts = parse_format("cost: $ 5, $$$rU, end$", p(1, 1)).unwrap();
        assert_eq!(text(&parts), "cost: $ 5, $<rU>, end$");
        assert!(matches!(&parts[0], FormatPart::Text(t) if t == "cost: $ 5, $"));
    }

    #[test]
    fn format_names_stop_at_non_name_chars_but_include_dots() {
        let parts = parse_format("IP:$si:$sp\n$fU-x $fU.x", p(1, 1)).unwrap();
        assert_eq!(text(&parts), "IP:<si>:<sp>\n<fU>-x <fU.x>");
    }

    #[test]
    fn format_positions_follow_lines() {
        let parts = parse_format("a\nbc $ci", p(4, 10)).unwrap();
        let FormatPart::Pv(ci) = &parts[1] else {
            panic!("not a pv")
        };
        assert_eq!(ci.pos, p(5, 4));
    }

    #[test]
    fn format_empty_string_has_no_parts() {
        assert!(parse_format("", p(1, 1)).unwrap().is_empty());
    }

    #[test]
    fn inner_text_is_kept_with_balanced_parentheses() {
        assert_eq!(pv("$sht(ipban=>$si)").inner.as_deref(), Some("ipban=>$si"));
        assert_eq!(pv("$avp(s:caller)").inner.as_deref(), Some("s:caller"));
        assert_eq!(pv("$hdr(a(b)c)").inner.as_deref(), Some("a(b)c"));
        assert_eq!(pv("$xavp(x[0]=>b)").inner.as_deref(), Some("x[0]=>b"));
        assert_eq!(pv("$var($var(n))").inner.as_deref(), Some("$var(n)"));
        let sel = pv("$sel(cfg_get.pstn.gw_ip)");
        assert_eq!(sel.name, "sel");
        assert_eq!(sel.inner.as_deref(), Some("cfg_get.pstn.gw_ip"));
        let null = pv("$null");
        assert_eq!(null.name, "null");
        assert_eq!(null.inner, None);
        assert_eq!(pv("$T_reply_code").name, "T_reply_code");
    }

    #[test]
    fn long_form_with_indexes() {
        assert_eq!(pv("$(avp(a)[*])").index, Some(PvIndex::All));
        assert_eq!(pv("$(hdr(Via)[-1])").index, Some(PvIndex::Int(-1)));
        assert_eq!(pv("$(hdr(Via)[2])").index, Some(PvIndex::Int(2)));
        let Some(PvIndex::Pv(i)) = pv("$(avp(a)[$var(i)])").index else {
            panic!("not a pv index")
        };
        assert_eq!(i.name, "var");
        assert_eq!(i.inner.as_deref(), Some("i"));
        let plain = pv("$(ru)");
        assert_eq!(plain.name, "ru");
        assert!(plain.inner.is_none() && plain.index.is_none() && plain.transforms.is_empty());
    }

    #[test]
    fn transformations_have_class_name_and_params() {
        let r = pv("$(hdr(Via)[0]{via.branch}{s.encode.hexa}{s.substr,0,5}{uri.param,\"transport\"}{s.substr,$var(i),1})");
        let trs: Vec<(&str, &str, usize)> = r
            .transforms
            .iter()
            .map(|t| (t.class.as_str(), t.name.as_str(), t.params.len()))
            .collect();
        assert_eq!(
            trs,
            vec![
                ("via", "branch", 0),
                ("s", "encode.hexa", 0),
                ("s", "substr", 2),
                ("uri", "param", 1),
                ("s", "substr", 2)
            ]
        );
        assert_eq!(
            r.transforms[2].params,
            vec![
                TransformParam::Text("0".into()),
                TransformParam::Text("5".into())
            ]
        );
        assert_eq!(
            r.transforms[3].params,
            vec![TransformParam::Text("transport".into())]
        );
        assert!(matches!(&r.transforms[4].params[0], TransformParam::Pv(v) if v.name == "var"));
        assert_eq!(r.transforms[0].pos, p(1, 14));
    }

    #[test]
    fn transformation_params_keep_parentheses_and_odd_text() {
        let r = pv("$(rU{re.subst,/^(0+)(.*)/\\2/}{param.value,tag})");
        assert_eq!(
            r.transforms[0].params,
            vec![TransformParam::Text("/^(0+)(.*)/\\2/".into())]
        );
        assert_eq!(r.transforms[1].class, "param");
    }

    #[test]
    fn errors_point_at_the_fault() {
        let e = parse_pv("$(", p(3, 5)).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadPseudoVariable(_)), "{e}");
        assert_eq!(e.pos, p(3, 7));

        let e = parse_format("x $(ru{uri.user) y", p(1, 1)).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadTransformation(ref t) if t == "{uri.user)"));
        assert_eq!(e.pos, p(1, 7));

        let e = parse_format("$(ru{user})", p(1, 1)).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadTransformation(_)));

        let e = parse_format("$hdr(Via", p(1, 1)).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadPseudoVariable(_)));
        assert_eq!(e.pos, p(1, 5));

        let e = parse_format("$(avp(a)[x])", p(1, 1)).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadPseudoVariable(_)));
        assert_eq!(e.pos, p(1, 10));

        let e = parse_format("$(avp(a)[1)", p(1, 1)).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadPseudoVariable(_)));

        let e = parse_format("$(avp(a) x)", p(1, 1)).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadPseudoVariable(_)));
    }

    #[test]
    fn parse_pv_requires_exactly_one() {
        assert!(parse_pv("$avp(x) ", p(1, 1)).is_err());
        assert!(parse_pv("avp", p(1, 1)).is_err());
        assert!(parse_pv("$", p(1, 1)).is_err());
        assert!(parse_pv("", p(1, 1)).is_err());
        assert_eq!(pv("$avp(caller)").name, "avp");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut s = String::from("$var(x)");
        for _ in 0..100 {
            s = format!("$(avp(a)[{s}])");
        }
        assert!(parse_pv(&s, p(1, 1)).is_err());
    }
}
