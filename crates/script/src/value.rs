//! Script values: what pseudo-variables hold and expressions compute.

use std::borrow::Cow;
use std::fmt;

/// A value in the script: no value (`$null`, an unset AVP), an integer or a string.
///
/// Kamailio's pseudo-variables may carry both a string and an integer form (`$rs` is `200`
/// either way); Sable keeps one and converts on use: the left operand of an operator decides
/// the type of the operation, as in Kamailio's rvalue rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Value {
    #[default]
    Null,
    Int(i64),
    Str(String),
}

impl Value {
    /// The integer form: a string converts when it is a decimal number (leading and trailing
    /// white space allowed), else 0; null is 0.
    pub fn as_int(&self) -> i64 {
        match self {
            Value::Null => 0,
            Value::Int(n) => *n,
            Value::Str(s) => parse_int(s).unwrap_or(0),
        }
    }

    /// The integer form, when there is one: `None` for null and for a string that is not a
    /// number.
    pub fn to_int(&self) -> Option<i64> {
        match self {
            Value::Null => None,
            Value::Int(n) => Some(*n),
            Value::Str(s) => parse_int(s),
        }
    }

    /// The string form: null is the empty string.
    pub fn as_str(&self) -> Cow<'_, str> {
        match self {
            Value::Null => Cow::Borrowed(""),
            Value::Int(n) => Cow::Owned(n.to_string()),
            Value::Str(s) => Cow::Borrowed(s),
        }
    }

    /// Consumes the value into its string form.
    pub fn into_string(self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Int(n) => n.to_string(),
            Value::Str(s) => s,
        }
    }

    /// Truth in a condition: an integer is true when positive (Kamailio's `return_mode=0`), a
    /// string when it is a positive number or, not being a number, not empty; null is false.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Int(n) => *n > 0,
            Value::Str(s) => parse_int(s).map_or(!s.is_empty(), |n| n > 0),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Appends the value as a format prints it: null prints as `<null>` (xlog's rendering).
    pub fn render(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("<null>"),
            Value::Int(n) => {
                use fmt::Write;
                let _ = write!(out, "{n}");
            }
            Value::Str(s) => out.push_str(s),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("<null>"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

/// Parses a decimal integer with an optional sign, surrounded by optional white space.
pub fn parse_int(s: &str) -> Option<i64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok();
    }
    t.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_follow_kamailio() {
        assert_eq!(Value::from("42").as_int(), 42);
        assert_eq!(Value::from(" 7 ").as_int(), 7);
        assert_eq!(Value::from("abc").as_int(), 0);
        assert_eq!(Value::from("0x1f").to_int(), Some(31));
        assert_eq!(Value::Null.as_str(), "");
        assert_eq!(Value::Int(-3).as_str(), "-3");
        assert!(!Value::Int(0).is_true());
        assert!(!Value::Int(-1).is_true());
        assert!(Value::Int(2).is_true());
        assert!(Value::from("x").is_true());
        assert!(!Value::from("").is_true());
        assert!(!Value::from("-1").is_true());
        assert!(!Value::Null.is_true());
        let mut s = String::new();
        Value::Null.render(&mut s);
        Value::Int(5).render(&mut s);
        assert_eq!(s, "<null>5");
    }
}
