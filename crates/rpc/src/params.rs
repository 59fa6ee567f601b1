//! Positional parameters with typed accessors.

use serde_json::Value;

use crate::error::RpcError;
use crate::Json;

/// The parameters of one call, by position.
///
/// A request's `params` may be an array or an object; for an object only the order of the
/// values counts and the names are ignored, as in Kamailio (section 11.2 of the notes). The
/// accessors take a 0-based index; their error messages count from 1, as operators do
/// ("parameter 2: ..."). Like Kamailio's auto-conversion, a number is accepted where a string is
/// asked for (its decimal text) and a numeric string where an integer is asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    values: Vec<Json>,
    /// The text of every value that is a number, computed once so [`Params::str`] can lend it.
    number_texts: Vec<Option<String>>,
}

impl Params {
    /// Parameters from values in order.
    pub fn new(values: Vec<Json>) -> Self {
        let number_texts = values
            .iter()
            .map(|value| match value {
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            })
            .collect();
        Params {
            values,
            number_texts,
        }
    }

    /// Parameters from a request's `params` member: absent or `null` is no parameters, an array
    /// is taken as is, an object gives its values in the order sent. Anything else is -32602.
    pub fn from_json(params: Option<&Json>) -> Result<Self, RpcError> {
        match params {
            None | Some(Value::Null) => Ok(Params::default()),
            Some(Value::Array(values)) => Ok(Params::new(values.clone())),
            Some(Value::Object(members)) => Ok(Params::new(members.values().cloned().collect())),
            Some(_) => Err(RpcError::invalid_params(
                "params must be an array or an object",
            )),
        }
    }

    /// How many parameters were given.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// No parameters at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// All parameters as given.
    pub fn values(&self) -> &[Json] {
        &self.values
    }

    /// The raw value at `index`, if there is one.
    pub fn raw(&self, index: usize) -> Option<&Json> {
        self.values.get(index)
    }

    /// A required string parameter. Numbers are accepted as their decimal text.
    pub fn str(&self, index: usize) -> Result<&str, RpcError> {
        match self.values.get(index) {
            None => Err(missing(index)),
            Some(value) => self.text(index, value),
        }
    }

    /// An optional string parameter: `None` when absent or `null`.
    pub fn opt_str(&self, index: usize) -> Result<Option<&str>, RpcError> {
        match self.values.get(index) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => self.text(index, value).map(Some),
        }
    }

    /// A required integer parameter. A string holding an integer is accepted, and so is a
    /// number with no fractional part.
    pub fn int(&self, index: usize) -> Result<i64, RpcError> {
        match self.values.get(index) {
            None => Err(missing(index)),
            Some(value) => integer(index, value),
        }
    }

    /// An optional integer parameter: `None` when absent or `null`.
    pub fn opt_int(&self, index: usize) -> Result<Option<i64>, RpcError> {
        match self.values.get(index) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => integer(index, value).map(Some),
        }
    }

    /// Every parameter from `index` on, as strings (numbers as their text). Empty when there
    /// are none.
    pub fn strings_from(&self, index: usize) -> Result<Vec<&str>, RpcError> {
        self.values
            .iter()
            .enumerate()
            .skip(index)
            .map(|(position, value)| self.text(position, value))
            .collect()
    }

    fn text<'a>(&'a self, index: usize, value: &'a Json) -> Result<&'a str, RpcError> {
        match value {
            Value::String(text) => Ok(text),
            Value::Number(_) => match self.number_texts.get(index) {
                Some(Some(text)) => Ok(text),
                _ => Err(RpcError::internal("parameter text missing")),
            },
            other => Err(RpcError::invalid_params(format!(
                "parameter {}: expected a string, got {}",
                index + 1,
                kind(other)
            ))),
        }
    }
}

impl From<Vec<Json>> for Params {
    fn from(values: Vec<Json>) -> Self {
        Params::new(values)
    }
}

fn missing(index: usize) -> RpcError {
    RpcError::invalid_params(format!("parameter {} is missing", index + 1))
}

fn integer(index: usize, value: &Json) -> Result<i64, RpcError> {
    let bad = || {
        RpcError::invalid_params(format!(
            "parameter {}: expected an integer, got {}",
            index + 1,
            value
        ))
    };
    match value {
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                return Ok(int);
            }
            // 5.0 is an integer to an operator; 5.5 and 2^64 are not.
            match number.as_f64() {
                Some(float)
                    if float.fract() == 0.0
                        && float >= i64::MIN as f64
                        && float < i64::MAX as f64 =>
                {
                    Ok(float as i64)
                }
                _ => Err(bad()),
            }
        }
        Value::String(text) => text.trim().parse::<i64>().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn kind(value: &Json) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(value: Json) -> Params {
        Params::from_json(Some(&value)).unwrap()
    }

    #[test]
    fn strings_accept_numbers_as_text() {
        let p = params(json!(["abc", 42, -7, 1.5]));
        assert_eq!(p.len(), 4);
        assert_eq!(p.str(0).unwrap(), "abc");
        assert_eq!(p.str(1).unwrap(), "42");
        assert_eq!(p.str(2).unwrap(), "-7");
        assert_eq!(p.str(3).unwrap(), "1.5");
    }

    #[test]
    fn integers_accept_numeric_strings() {
        let p = params(json!([5, "17", " -3 ", 4.0, "x", 4.5, true]));
        assert_eq!(p.int(0).unwrap(), 5);
        assert_eq!(p.int(1).unwrap(), 17);
        assert_eq!(p.int(2).unwrap(), -3);
        assert_eq!(p.int(3).unwrap(), 4);
        for index in 4..7 {
            let error = p.int(index).unwrap_err();
            assert_eq!(error.code, -32602);
            assert!(
                error.message.contains(&format!("parameter {}", index + 1)),
                "{error}"
            );
        }
    }

    #[test]
    fn missing_parameters_name_their_position() {
        let p = params(json!(["a"]));
        let error = p.str(1).unwrap_err();
        assert_eq!(error.code, -32602);
        assert_eq!(error.message, "parameter 2 is missing");
        assert!(p.int(3).unwrap_err().message.contains("parameter 4"));
    }

    #[test]
    fn optional_accessors() {
        let p = params(json!(["a", null, "12"]));
        assert_eq!(p.opt_str(0).unwrap(), Some("a"));
        assert_eq!(p.opt_str(1).unwrap(), None);
        assert_eq!(p.opt_str(9).unwrap(), None);
        assert_eq!(p.opt_int(2).unwrap(), Some(12));
        assert_eq!(p.opt_int(5).unwrap(), None);
        assert!(p.opt_int(0).is_err());
    }

    #[test]
    fn wrong_types_are_invalid_params() {
        let p = params(json!([{"a": 1}, [1], true, null]));
        for index in 0..4 {
            let error = p.str(index).unwrap_err();
            assert_eq!(error.code, -32602);
            assert!(error
                .message
                .starts_with(&format!("parameter {}:", index + 1)));
        }
        assert_eq!(p.raw(0), Some(&json!({"a": 1})));
        assert_eq!(p.raw(4), None);
    }

    #[test]
    fn strings_from_takes_the_rest() {
        let p = params(json!(["cmd", "a", 2, "c"]));
        assert_eq!(p.strings_from(1).unwrap(), vec!["a", "2", "c"]);
        assert!(p.strings_from(4).unwrap().is_empty());
        assert!(params(json!(["a", [1]])).strings_from(0).is_err());
    }

    #[test]
    fn object_params_keep_the_order_sent_and_ignore_names() {
        let p: Params = Params::from_json(Some(
            &serde_json::from_str(r#"{"z": "first", "a": 2, "m": "third"}"#).unwrap(),
        ))
        .unwrap();
        assert_eq!(p.strings_from(0).unwrap(), vec!["first", "2", "third"]);
    }

    #[test]
    fn params_must_be_array_object_or_absent() {
        assert!(Params::from_json(None).unwrap().is_empty());
        assert!(Params::from_json(Some(&Json::Null)).unwrap().is_empty());
        for bad in [json!("x"), json!(1), json!(true)] {
            assert_eq!(Params::from_json(Some(&bad)).unwrap_err().code, -32602);
        }
    }
}
