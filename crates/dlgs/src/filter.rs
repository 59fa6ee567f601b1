//! The `field op data` filters of `dlgs_count()`, `dlgs.get` and `dlgs.getall`.
//!
//! Names are case-insensitive, as in the module. [`Field::parse`] and [`Op::parse`] fail with
//! [`DlgsError`] so that a script module can turn static names into load-time errors;
//! [`Filter::new`] also compiles the regular expression of `re` once.

use crate::DlgsError;
use regex::{Regex, RegexBuilder};
use std::fmt;

/// Which record attribute a filter looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `any`: every ongoing record; the operator and the value are ignored by `dlgs_count()`.
    /// The RPC commands treat it as `src` (the module does so).
    Any,
    /// `src`: the first argument of `dlgs_init()`.
    Src,
    /// `dst`: the second argument of `dlgs_init()`.
    Dst,
    /// `data`: the third argument of `dlgs_init()`.
    Data,
}

impl Field {
    /// Parses `any`, `src`, `dst` or `data` (any case).
    pub fn parse(name: &str) -> Result<Self, DlgsError> {
        match name.to_ascii_lowercase().as_str() {
            "any" => Ok(Self::Any),
            "src" => Ok(Self::Src),
            "dst" => Ok(Self::Dst),
            "data" => Ok(Self::Data),
            _ => Err(DlgsError::InvalidField(name.to_owned())),
        }
    }

    /// The name as the module spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::Src => "src",
            Self::Dst => "dst",
            Self::Data => "data",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the field is compared with the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `eq`: byte-for-byte equal.
    Eq,
    /// `ne`: not equal.
    Ne,
    /// `re`: the regular expression (case-insensitive, POSIX-extended style, found anywhere in
    /// the field as `regexec` does) matches.
    Re,
    /// `sw`: the field starts with the value.
    Sw,
    /// `fm`: the value is a shell glob (`fnmatch(3)` without flags) matching the whole field.
    Fm,
}

impl Op {
    /// Parses `eq`, `ne`, `re`, `sw` or `fm` (any case).
    pub fn parse(name: &str) -> Result<Self, DlgsError> {
        match name.to_ascii_lowercase().as_str() {
            "eq" => Ok(Self::Eq),
            "ne" => Ok(Self::Ne),
            "re" => Ok(Self::Re),
            "sw" => Ok(Self::Sw),
            "fm" => Ok(Self::Fm),
            _ => Err(DlgsError::InvalidOperator(name.to_owned())),
        }
    }

    /// The name as the module spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Re => "re",
            Self::Sw => "sw",
            Self::Fm => "fm",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated `field op data` triple, with the regular expression compiled once.
#[derive(Debug, Clone)]
pub struct Filter {
    field: Field,
    op: Op,
    value: String,
    regex: Option<Regex>,
}

impl Filter {
    /// Builds a filter; `re` compiles `value` case-insensitively and fails with
    /// [`DlgsError::InvalidMatchingValue`] when it is not a valid expression.
    pub fn new(field: Field, op: Op, value: &str) -> Result<Self, DlgsError> {
        let regex = if op == Op::Re && field != Field::Any {
            Some(compile_regex(value)?)
        } else {
            None
        };
        Ok(Self {
            field,
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// Parses the three strings of a script call or an RPC command.
    pub fn parse(field: &str, op: &str, value: &str) -> Result<Self, DlgsError> {
        Self::new(Field::parse(field)?, Op::parse(op)?, value)
    }

    /// The field.
    pub fn field(&self) -> Field {
        self.field
    }

    /// The operator.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The value compared with.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether `subject` (the field's value in a record) passes the operator.
    pub fn matches(&self, subject: &str) -> bool {
        match self.op {
            Op::Eq => subject == self.value,
            Op::Ne => subject != self.value,
            Op::Sw => subject.starts_with(self.value.as_str()),
            Op::Fm => fnmatch(&self.value, subject),
            Op::Re => match &self.regex {
                Some(re) => re.is_match(subject),
                // Only `any` has no compiled expression: compile on the fly (RPC `any` = `src`).
                None => compile_regex(&self.value).is_ok_and(|re| re.is_match(subject)),
            },
        }
    }
}

fn compile_regex(value: &str) -> Result<Regex, DlgsError> {
    RegexBuilder::new(value)
        .case_insensitive(true)
        .build()
        .map_err(|e| DlgsError::InvalidMatchingValue {
            value: value.to_owned(),
            reason: e.to_string(),
        })
}

/// `fnmatch(pattern, subject, 0)`: `*` matches any run of characters (`/` and a leading `.`
/// included, as without `FNM_PATHNAME`/`FNM_PERIOD`), `?` any one character, `[...]` a
/// bracket expression (`!` or `^` negates, `a-z` ranges, a `]` first is literal), `\` quotes
/// the next character. A `[` without its `]` is an ordinary character. Works on characters,
/// not bytes.
pub fn fnmatch(pattern: &str, subject: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = subject.chars().collect();
    let (mut pi, mut si) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, subject index it ate to).
    let mut star: Option<(usize, usize)> = None;
    loop {
        let step = match p.get(pi) {
            None => {
                if si == s.len() {
                    return true;
                }
                None
            }
            Some('*') => {
                pi += 1;
                star = Some((pi, si));
                continue;
            }
            Some(&pc) => match s.get(si) {
                None => None,
                Some(&sc) => match pc {
                    '?' => Some(1),
                    '[' => match bracket(&p, pi, sc) {
                        Some((true, len)) => Some(len),
                        Some((false, _)) => None,
                        None => (sc == '[').then_some(1),
                    },
                    '\\' => match p.get(pi + 1) {
                        Some(&q) => (q == sc).then_some(2),
                        None => (sc == '\\').then_some(1),
                    },
                    c => (c == sc).then_some(1),
                },
            },
        };
        match step {
            Some(len) => {
                pi += len;
                si += 1;
            }
            None => match star {
                Some((sp, ss)) if ss < s.len() => {
                    star = Some((sp, ss + 1));
                    pi = sp;
                    si = ss + 1;
                }
                _ => return false,
            },
        }
    }
}

/// Matches `c` against the bracket expression starting at `p[start] == '['`. Returns whether
/// it matched and the expression's length, or `None` when the bracket is not closed.
fn bracket(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((matched != negate, i + 1 - start));
        }
        first = false;
        if lo == '\\' {
            i += 1;
            lo = *p.get(i)?;
        }
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&n| n != ']') {
            hi = *p.get(i + 1)?;
            i += 2;
            if hi == '\\' {
                hi = *p.get(i)?;
                i += 1;
            }
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_star_question_and_literals() {
        assert!(fnmatch("*", ""));
        assert!(fnmatch("*", "sip:alice@example.com"));
        assert!(fnmatch("sip:*@example.com", "sip:alice@example.com"));
        assert!(!fnmatch("sip:*@example.com", "sip:alice@example.org"));
        assert!(fnmatch("sip:?ob@*", "sip:bob@x"));
        assert!(!fnmatch("sip:?ob@*", "sip:bbob@x"));
        assert!(fnmatch("a*b*c", "aXXbYYc"));
        assert!(fnmatch("a*b*c", "abcbc"));
        assert!(!fnmatch("a*b*c", "abcbd"));
        assert!(fnmatch("*/*", "a/b"), "no FNM_PATHNAME: * crosses /");
        assert!(!fnmatch("abc", "abcd"));
        assert!(!fnmatch("abcd", "abc"));
    }

    #[test]
    fn fnmatch_brackets_ranges_negation_and_escapes() {
        assert!(fnmatch("user[0-9]", "user7"));
        assert!(!fnmatch("user[0-9]", "userx"));
        assert!(fnmatch("user[!0-9]", "userx"));
        assert!(fnmatch("user[^0-9]", "userx"));
        assert!(!fnmatch("user[!0-9]", "user3"));
        assert!(fnmatch("[]x]", "]"));
        assert!(fnmatch("[a-]", "-"));
        assert!(fnmatch("[abc]*", "caller"));
        assert!(fnmatch("a[", "a["), "an unclosed bracket is literal");
        assert!(fnmatch("\\*", "*"));
        assert!(!fnmatch("\\*", "x"));
        assert!(fnmatch("é?", "éé"));
    }

    #[test]
    fn names_are_case_insensitive_and_validated() {
        assert_eq!(Field::parse("SRC").ok(), Some(Field::Src));
        assert_eq!(Op::parse("Fm").ok(), Some(Op::Fm));
        assert!(matches!(
            Field::parse("from"),
            Err(DlgsError::InvalidField(_))
        ));
        assert!(matches!(
            Op::parse("gt"),
            Err(DlgsError::InvalidOperator(_))
        ));
        assert!(matches!(
            Filter::parse("src", "re", "(unclosed"),
            Err(DlgsError::InvalidMatchingValue { .. })
        ));
    }

    #[test]
    fn operators_compare_as_the_module_does() -> Result<(), DlgsError> {
        let s = "sip:Alice@example.com";
        assert!(Filter::parse("src", "eq", s)?.matches(s));
        assert!(!Filter::parse("src", "eq", "sip:alice@example.com")?.matches(s));
        assert!(Filter::parse("src", "ne", "x")?.matches(s));
        assert!(Filter::parse("src", "sw", "sip:Al")?.matches(s));
        assert!(
            Filter::parse("src", "re", "ALICE@")?.matches(s),
            "re ignores case"
        );
        assert!(Filter::parse("src", "re", "^sip:[a-z]+@example\\.com$")?.matches(s));
        assert!(Filter::parse("src", "fm", "sip:*@example.com")?.matches(s));
        Ok(())
    }
}
