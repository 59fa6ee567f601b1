//! The one error type of this crate: what is wrong with a config, where, and how to fix it.
//!
//! The parse steps (preprocessor, lexer, parser) and the compile step (name resolution and
//! argument checks, done later against the loaded modules) share [`ErrorKind`], so every fault
//! of a config is reported the same way: `file:line:col: message`, then an optional hint.

// `ScriptError` is large (its public fields are fixed: kind, file, pos, hint), and a config is
// parsed once at load, so returning it by value costs nothing that matters.
#![allow(clippy::result_large_err)]

use std::fmt;

use crate::ast::Pos;

/// What is wrong. Variants carry the data that explains the fault; where it is lives in
/// [`ScriptError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    // ----- lexical -----
    /// A character that starts no token.
    #[error("unexpected character '{}'", .0.escape_debug())]
    UnexpectedChar(char),
    /// A quoted string has no closing quote (the position is the opening quote).
    #[error("unterminated string")]
    UnterminatedString,
    /// A `/* ... */` comment has no `*/` (the position is the opening `/*`).
    #[error("unterminated comment")]
    UnterminatedComment,
    /// A number that is not a decimal or `0x` hexadecimal integer, or out of range.
    #[error("bad number '{0}'")]
    BadNumber(String),
    /// A pseudo-variable that does not follow `$name`, `$name(inner)` or `$(...)`.
    #[error("bad pseudo-variable '{0}'")]
    BadPseudoVariable(String),
    /// A transformation that does not follow `{class.name[,param...]}`.
    #[error("bad transformation '{0}'")]
    BadTransformation(String),

    // ----- syntax -----
    /// A token that does not fit where it is.
    #[error("unexpected {found}, expected {expected}")]
    UnexpectedToken { found: String, expected: String },
    /// The text ends where more is needed.
    #[error("unexpected end of file, expected {expected}")]
    UnexpectedEof { expected: String },
    /// A `{` without its `}` (the position is the opening brace) or a `}` that closes nothing.
    #[error("unbalanced braces")]
    UnbalancedBrace,
    /// A statement is not terminated by `;`.
    #[error("missing ';'")]
    MissingSemicolon,
    /// Blocks, expressions, includes or `#!ifdef`s nested deeper than the limit.
    #[error("nesting too deep: more than {limit} nested {what}")]
    NestingTooDeep { what: String, limit: usize },
    /// A route name that is empty or not of the form its block needs.
    #[error("bad route name '{0}'")]
    BadRouteName(String),
    /// Two route blocks of the same kind with the same name.
    #[error("duplicate {kind} '{name}'")]
    DuplicateRoute { kind: String, name: String },

    // ----- preprocessor -----
    /// An `#!ifdef`/`#!ifndef` without its `#!endif` (the position is that directive).
    #[error("#!ifdef without #!endif")]
    UnclosedIfdef,
    /// An `#!else` outside any `#!ifdef`/`#!ifndef`.
    #[error("#!else without #!ifdef")]
    ElseWithoutIfdef,
    /// An `#!endif` outside any `#!ifdef`/`#!ifndef`.
    #[error("#!endif without #!ifdef")]
    EndifWithoutIfdef,
    /// A directive with missing or malformed arguments, or one this version does not support.
    #[error("bad preprocessor directive: {0}")]
    BadDirective(String),
    /// `#!define` of a name that is already defined.
    #[error("'{0}' is already defined")]
    AlreadyDefined(String),
    /// `#!defenv` of an environment variable that is not set.
    #[error("environment variable '{0}' is not set")]
    UndefinedEnv(String),
    /// A define whose expansion uses itself (directly or through other defines), or whose
    /// expansion grows beyond the limit.
    #[error("define '{0}' expands to itself")]
    DefineLoop(String),
    /// `include_file` of a file that does not exist.
    #[error("included file '{0}' not found")]
    IncludeNotFound(String),
    /// A file that includes itself, directly or through other files.
    #[error("file '{0}' includes itself")]
    IncludeRecursion(String),
    /// A file could not be read.
    #[error("cannot read '{path}': {error}")]
    Io { path: String, error: String },
    /// A `#!subst` rule that is not `/regex/replacement/flags`.
    #[error("bad substitution rule '{0}'")]
    BadSubst(String),
    /// A regular expression that does not compile.
    #[error("bad regular expression '{pattern}': {error}")]
    BadRegex { pattern: String, error: String },

    // ----- compile step (names resolved against the loaded modules) -----
    /// A function no loaded module (nor the core) exports.
    #[error("unknown function '{name}'")]
    UnknownFunction { name: String },
    /// `modparam` or `loadmodule` of a module that does not exist.
    #[error("unknown module '{name}'")]
    UnknownModule { name: String },
    /// A core parameter that does not exist.
    #[error("unknown core parameter '{name}'")]
    UnknownParameter { name: String },
    /// A `modparam` parameter the module does not have.
    #[error("module '{module}' has no parameter '{param}'")]
    UnknownModuleParameter { module: String, param: String },
    /// A parameter value of the wrong type or out of range.
    #[error("bad value for '{name}': expected {expected}")]
    BadParameterValue { name: String, expected: String },
    /// A function called with a number of arguments it does not take.
    #[error("function '{function}' takes {expected} argument(s), got {got}")]
    WrongArgumentCount {
        function: String,
        expected: String,
        got: usize,
    },
    /// An argument (1-based `index`) a function does not accept.
    #[error("bad argument {index} of '{function}': {reason}")]
    BadArgument {
        function: String,
        index: usize,
        reason: String,
    },
    /// A pseudo-variable class no loaded module provides.
    #[error("unknown pseudo-variable '${name}'")]
    UnknownPseudoVariable { name: String },
    /// A transformation no loaded module provides.
    #[error("unknown transformation '{name}'")]
    UnknownTransformation { name: String },
    /// An assignment to a pseudo-variable that cannot be written.
    #[error("pseudo-variable '${name}' is read-only")]
    ReadOnlyPseudoVariable { name: String },
    /// A function used in a route type where it may not run.
    #[error("function '{function}' cannot be used in {route}")]
    FunctionNotAllowedHere { function: String, route: String },
    /// `route(NAME)` (or `t_on_*`) naming a route block that does not exist.
    #[error("route '{name}' is not defined")]
    UnknownRoute { name: String },
    /// The config has no `request_route` (nor `route`/`route[0]`).
    #[error("no request_route block")]
    MissingRequestRoute,
    /// A `listen` value that cannot be used.
    #[error("bad listen value '{value}': {reason}")]
    BadListen { value: String, reason: String },
}

/// A fault in a config: what ([`ErrorKind`]), in which file, where, and an optional hint.
///
/// Displays as `file:line:col: message`, followed by `\n  hint: ...` when there is a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    pub kind: ErrorKind,
    /// The file name as given to the parser (or found by an include).
    pub file: String,
    pub pos: Pos,
    pub hint: Option<String>,
}

impl ScriptError {
    /// An error without hint.
    pub fn new(kind: ErrorKind, file: impl Into<String>, pos: Pos) -> Self {
        ScriptError {
            kind,
            file: file.into(),
            pos,
            hint: None,
        }
    }

    /// The same error with a hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.pos.line, self.pos.col, self.kind
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScriptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_location_message_and_hint() {
        let e = ScriptError::new(
            ErrorKind::UnexpectedChar('@'),
            "kamailio.cfg",
            Pos {
                file: 0,
                line: 3,
                col: 7,
            },
        )
        .with_hint("select syntax (@...) is not supported");
        assert_eq!(
            e.to_string(),
            "kamailio.cfg:3:7: unexpected character '@'\n  hint: select syntax (@...) is not supported"
        );
    }

    #[test]
    fn display_without_hint_is_one_line() {
        let e = ScriptError::new(
            ErrorKind::WrongArgumentCount {
                function: "sl_send_reply".into(),
                expected: "2".into(),
                got: 1,
            },
            "a.cfg",
            Pos::default(),
        );
        assert_eq!(
            e.to_string(),
            "a.cfg:0:0: function 'sl_send_reply' takes 2 argument(s), got 1"
        );
    }

    #[test]
    fn control_characters_are_escaped_in_unexpected_char() {
        assert_eq!(
            ErrorKind::UnexpectedChar('\u{1}').to_string(),
            "unexpected character '\\u{1}'"
        );
    }
}
