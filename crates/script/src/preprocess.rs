//! The preprocessor: directives, includes, defines and substitutions, between the lexer and
//! the parser.
//!
//! It hands the parser a stream of tokens in which:
//!
//! - `#!ifdef`/`#!ifndef`/`#!else`/`#!endif` have been applied (a false branch is skipped
//!   without being read, except for the nesting directives themselves);
//! - `include_file`/`import_file` (also as `#!` directives) have been replaced by the tokens
//!   of the file (tried as written, then relative to the directory of the including file);
//! - every identifier that names a define has been replaced by the tokens of its value
//!   (recursively; a define that needs itself is an error), never inside strings;
//! - `#!subst`/`#!substdef` rules have been applied to every string literal;
//! - `loadmodule "x.so"` has defined `MOD_x`.

// `ScriptError` is large (its public fields are fixed: kind, file, pos, hint), and a config is
// parsed once at load, so returning it by value costs nothing that matters.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use regex::{Regex, RegexBuilder};

use crate::ast::Pos;
use crate::error::{ErrorKind, ScriptError};
use crate::lexer::{Lexer, Tok, Token};

/// How many files may be open inside each other.
const MAX_INCLUDE_DEPTH: usize = 32;
/// How many `#!ifdef`s may be open inside each other (Kamailio's limit).
const MAX_IFDEF_DEPTH: usize = 512;
/// How many defines may be expanded inside each other.
const MAX_DEFINE_DEPTH: usize = 64;
/// How many tokens one identifier may expand to.
const MAX_EXPANSION_TOKENS: usize = 100_000;

/// The table of preprocessor defines (`#!define`, `-A NAME[=VALUE]`).
///
/// A value is source text: when the name is met as an identifier, the value is read as tokens
/// in its place (`"..."` gives a string, `5` a number). A define without value expands to
/// nothing.
#[derive(Debug, Clone, Default)]
pub struct Defines {
    map: BTreeMap<String, Option<String>>,
}

impl Defines {
    /// An empty table.
    pub fn new() -> Self {
        Defines::default()
    }

    /// The names Kamailio 5.6.3 predefines: `KAMAILIO_5`, `KAMAILIO_5_6`, `KAMAILIO_5_6_3`,
    /// `KAMAILIO_VERSION` (= `5006003`), `OS_NAME` (= `linux`), plus `SABLE`.
    pub fn with_predefined() -> Self {
        let mut d = Defines::new();
        d.define("KAMAILIO_5", None);
        d.define("KAMAILIO_5_6", None);
        d.define("KAMAILIO_5_6_3", None);
        d.define("KAMAILIO_VERSION", Some("5006003"));
        d.define("OS_NAME", Some("linux"));
        d.define("SABLE", None);
        d
    }

    /// Defines `name` (replacing any previous value).
    pub fn define(&mut self, name: &str, value: Option<&str>) {
        self.map.insert(name.to_string(), value.map(str::to_string));
    }

    /// Removes `name`; tells whether it was defined.
    pub fn undefine(&mut self, name: &str) -> bool {
        self.map.remove(name).is_some()
    }

    pub fn is_defined(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The value of `name`; `None` when it is not defined or defined without value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).and_then(|v| v.as_deref())
    }

    fn lookup(&self, name: &str) -> Option<&Option<String>> {
        self.map.get(name)
    }
}

/// One piece of a substitution's replacement.
#[derive(Debug, Clone, PartialEq)]
enum ReplPart {
    Text(String),
    /// `\0`..`\9`.
    Group(usize),
}

/// A `#!subst` rule: `/regex/replacement/flags` (any delimiter; flags `g` and `i`).
#[derive(Debug, Clone)]
struct SubstRule {
    re: Regex,
    replacement: Vec<ReplPart>,
    global: bool,
}

/// The parts of a rule as written: pattern, replacement, flags.
fn split_subst(spec: &str) -> Option<(String, String, String)> {
    let mut chars = spec.chars();
    let delim = chars.next()?;
    if delim.is_alphanumeric() || delim.is_whitespace() || delim == '\\' {
        return None;
    }
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in chars {
        if escaped {
            if c != delim {
                parts.last_mut()?.push('\\');
            }
            parts.last_mut()?.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            parts.push(String::new());
        } else {
            parts.last_mut()?.push(c);
        }
    }
    if escaped {
        parts.last_mut()?.push('\\');
    }
    let mut it = parts.into_iter();
    let (pattern, replacement, flags) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || pattern.is_empty() {
        return None;
    }
    Some((pattern, replacement, flags))
}

impl SubstRule {
    /// Parses `/regex/replacement/flags`; returns the rule and the pattern and replacement as
    /// written (for `#!substdef`).
    fn parse(spec: &str) -> Result<(SubstRule, String, String), (ErrorKind, Option<String>)> {
        let bad = || {
            (
                ErrorKind::BadSubst(spec.to_string()),
                Some("the form is \"/regex/replacement/flags\" (flags: g, i)".to_string()),
            )
        };
        let (pattern, replacement, flags) = split_subst(spec).ok_or_else(bad)?;
        let mut global = false;
        let mut icase = false;
        for f in flags.chars() {
            match f {
                'g' => global = true,
                'i' => icase = true,
                _ => return Err(bad()),
            }
        }
        let re = RegexBuilder::new(&pattern)
            .case_insensitive(icase)
            .build()
            .map_err(|e| {
                (
                    ErrorKind::BadRegex {
                        pattern: pattern.clone(),
                        error: e.to_string().lines().last().unwrap_or_default().to_string(),
                    },
                    None,
                )
            })?;
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = replacement.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\\' {
                text.push(c);
                continue;
            }
            match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    if !text.is_empty() {
                        parts.push(ReplPart::Text(std::mem::take(&mut text)));
                    }
                    parts.push(ReplPart::Group(d.to_digit(10).map_or(0, |n| n as usize)));
                }
                Some(other) => text.push(other),
                None => text.push('\\'),
            }
        }
        if !text.is_empty() {
            parts.push(ReplPart::Text(text));
        }
        Ok((
            SubstRule {
                re,
                replacement: parts,
                global,
            },
            pattern,
            replacement,
        ))
    }

    fn apply(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        for caps in self.re.captures_iter(s) {
            let Some(m) = caps.get(0) else { continue };
            out.push_str(s.get(last..m.start()).unwrap_or_default());
            for part in &self.replacement {
                match part {
                    ReplPart::Text(t) => out.push_str(t),
                    ReplPart::Group(g) => {
                        out.push_str(caps.get(*g).map_or("", |g| g.as_str()));
                    }
                }
            }
            last = m.end();
            if !self.global {
                break;
            }
        }
        out.push_str(s.get(last..).unwrap_or_default());
        out
    }
}

/// An open `#!ifdef`/`#!ifndef`.
#[derive(Debug)]
struct Cond {
    pos: Pos,
    /// The text around it is read.
    parent_active: bool,
    /// The condition holds.
    value: bool,
    /// After its `#!else`.
    in_else: bool,
}

impl Cond {
    fn active(&self) -> bool {
        self.parent_active && (self.value != self.in_else)
    }
}

/// A file being read.
#[derive(Debug)]
struct Frame {
    lexer: Lexer,
    conds: Vec<Cond>,
    /// Directory for relative includes.
    dir: Option<PathBuf>,
    /// Canonical path, to detect recursion (absent for text that is not a file).
    canonical: Option<PathBuf>,
}

impl Frame {
    fn active(&self) -> bool {
        self.conds.last().is_none_or(Cond::active)
    }
}

/// What the last tokens handed out were, to see `loadmodule "x"` / `loadmodule("x")`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Recent {
    LoadModule,
    LoadModuleParen,
    Other,
}

/// The token stream the parser reads.
#[derive(Debug)]
pub(crate) struct Preprocessor {
    defines: Defines,
    substs: Vec<SubstRule>,
    files: Vec<String>,
    stack: Vec<Frame>,
    pending: VecDeque<Token>,
    recent: Recent,
    eof: Option<Token>,
}

/// The rest of a directive argument after a leading identifier, and that identifier.
fn split_name(arg: &str) -> (&str, &str) {
    let end = arg
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(arg.len());
    (
        arg.get(..end).unwrap_or_default(),
        arg.get(end..).unwrap_or_default(),
    )
}

/// The module name of a `loadmodule` path: `/x/y/tm.so` → `tm`.
fn module_name(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.strip_suffix(".so").unwrap_or(base)
}

impl Preprocessor {
    /// Starts reading `text`, the content of the main file `name` (in `dir`).
    pub(crate) fn new(
        name: &str,
        text: &str,
        dir: Option<PathBuf>,
        canonical: Option<PathBuf>,
        defines: &Defines,
    ) -> Self {
        Preprocessor {
            defines: defines.clone(),
            substs: Vec::new(),
            files: vec![name.to_string()],
            stack: vec![Frame {
                lexer: Lexer::new(text, 0, name),
                conds: Vec::new(),
                dir,
                canonical,
            }],
            pending: VecDeque::new(),
            recent: Recent::Other,
            eof: None,
        }
    }

    pub(crate) fn into_files(self) -> Vec<String> {
        self.files
    }

    /// The name of file number `file`.
    pub(crate) fn file_name(&self, file: u32) -> &str {
        self.files
            .get(file as usize)
            .map_or("<config>", String::as_str)
    }

    fn error(&self, kind: ErrorKind, pos: Pos) -> ScriptError {
        ScriptError::new(kind, self.file_name(pos.file).to_string(), pos)
    }

    /// The next token for the parser; `Eof` (repeatedly) at the end of the main file.
    pub(crate) fn next_token(&mut self) -> Result<Token, ScriptError> {
        loop {
            if let Some(tok) = self.pending.pop_front() {
                return Ok(self.emit(tok));
            }
            if let Some(eof) = &self.eof {
                return Ok(eof.clone());
            }
            let Some(frame) = self.stack.last_mut() else {
                return Err(self.error(
                    ErrorKind::UnexpectedEof {
                        expected: "more input".into(),
                    },
                    Pos::default(),
                ));
            };
            let tok = frame.lexer.next_token()?;
            match &tok.kind {
                Tok::Directive { name, arg } => {
                    let (name, arg) = (name.clone(), arg.clone());
                    self.directive(&name, &arg, tok.pos)?;
                    self.skip_inactive()?;
                }
                Tok::Eof => {
                    let unclosed = frame.conds.last().map(|c| (c.pos, frame.conds.len()));
                    if let Some((pos, open)) = unclosed {
                        return Err(self.error(ErrorKind::UnclosedIfdef, pos).with_hint(
                            format!(
                                "add #!endif before the end of the file ({open} #!ifdef/#!ifndef still open)"
                            ),
                        ));
                    }
                    if self.stack.len() > 1 {
                        self.stack.pop();
                    } else {
                        self.eof = Some(tok);
                    }
                }
                Tok::Ident(word) if word == "include_file" || word == "import_file" => {
                    let import = word == "import_file";
                    let target = frame.lexer.next_token()?;
                    let Tok::Str(path) = &target.kind else {
                        let found = target.describe();
                        return Err(self
                            .error(
                                ErrorKind::UnexpectedToken {
                                    found,
                                    expected: "a quoted file name".into(),
                                },
                                target.pos,
                            )
                            .with_hint(format!("the form is {word} \"path/to/file.cfg\"")));
                    };
                    self.include(path, tok.pos, import)?;
                }
                Tok::Ident(name) if self.defines.is_defined(name) => {
                    let mut out = Vec::new();
                    let mut chain = Vec::new();
                    self.expand(tok, &mut out, &mut chain)?;
                    self.pending.extend(out);
                }
                _ => return Ok(self.emit(tok)),
            }
        }
    }

    /// Last step before a token goes out: substitutions on strings, `MOD_x` after
    /// `loadmodule "x"`.
    fn emit(&mut self, mut tok: Token) -> Token {
        if let Tok::Str(s) = &mut tok.kind {
            for rule in &self.substs {
                *s = rule.apply(s);
            }
            if matches!(self.recent, Recent::LoadModule | Recent::LoadModuleParen) {
                let name = format!("MOD_{}", module_name(s));
                if !self.defines.is_defined(&name) {
                    self.defines.define(&name, None);
                }
            }
        }
        self.recent = match (&tok.kind, self.recent) {
            (Tok::Ident(w), _) if w == "loadmodule" => Recent::LoadModule,
            (Tok::LParen, Recent::LoadModule) => Recent::LoadModuleParen,
            _ => Recent::Other,
        };
        tok
    }

    /// Replaces the identifier `tok` by the tokens of its define value, recursively.
    fn expand(
        &self,
        tok: Token,
        out: &mut Vec<Token>,
        chain: &mut Vec<String>,
    ) -> Result<(), ScriptError> {
        let Tok::Ident(name) = &tok.kind else {
            out.push(tok);
            return Ok(());
        };
        let Some(value) = self.defines.lookup(name) else {
            out.push(tok);
            return Ok(());
        };
        if chain.iter().any(|n| n == name) || chain.len() >= MAX_DEFINE_DEPTH {
            let path = chain
                .iter()
                .chain(std::iter::once(name))
                .cloned()
                .collect::<Vec<_>>()
                .join(" -> ");
            return Err(self
                .error(ErrorKind::DefineLoop(name.clone()), tok.pos)
                .with_hint(format!("expansion chain: {path}")));
        }
        let Some(value) = value else {
            return Ok(());
        };
        let file_name = self.file_name(tok.pos.file).to_string();
        let mut lexer = Lexer::fragment(value, &file_name, tok.pos, tok.end);
        chain.push(name.clone());
        let mut first = true;
        loop {
            let mut t = lexer.next_token().map_err(|e| {
                let hint = format!("in the value of define '{name}'");
                e.with_hint(hint)
            })?;
            if t.kind == Tok::Eof {
                break;
            }
            if first {
                t.space_before = tok.space_before;
                t.nl_before = tok.nl_before;
                first = false;
            } else {
                t.nl_before = false;
            }
            self.expand(t, out, chain)?;
            if out.len() > MAX_EXPANSION_TOKENS {
                return Err(self
                    .error(ErrorKind::DefineLoop(name.clone()), tok.pos)
                    .with_hint(format!(
                        "the expansion grows beyond {MAX_EXPANSION_TOKENS} tokens"
                    )));
            }
        }
        chain.pop();
        Ok(())
    }

    fn active(&self) -> bool {
        self.stack.last().is_none_or(Frame::active)
    }

    /// While the current branch is false, skips to the directive that ends it.
    fn skip_inactive(&mut self) -> Result<(), ScriptError> {
        while !self.active() {
            let Some(frame) = self.stack.last_mut() else {
                return Ok(());
            };
            match frame.lexer.skip_inactive() {
                Some(tok) => {
                    if let Tok::Directive { name, arg } = &tok.kind {
                        if matches!(name.as_str(), "ifdef" | "ifndef" | "else" | "endif") {
                            let (name, arg) = (name.clone(), arg.clone());
                            self.directive(&name, &arg, tok.pos)?;
                        }
                    }
                }
                None => {
                    let (pos, open) = match frame.conds.last() {
                        Some(c) => (c.pos, frame.conds.len()),
                        None => (Pos::default(), 0),
                    };
                    return Err(self.error(ErrorKind::UnclosedIfdef, pos).with_hint(format!(
                        "add #!endif before the end of the file ({open} #!ifdef/#!ifndef still open)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// A quoted string as the argument of a directive.
    fn quoted_arg(&self, name: &str, arg: &str, pos: Pos) -> Result<String, ScriptError> {
        let file_name = self.file_name(pos.file).to_string();
        let mut lexer = Lexer::fragment(arg, &file_name, pos, pos);
        let bad = || {
            self.error(
                ErrorKind::BadDirective(format!("#!{name} needs a quoted argument")),
                pos,
            )
            .with_hint(format!("the form is #!{name} \"...\""))
        };
        match lexer.next_token() {
            Ok(Token {
                kind: Tok::Str(s), ..
            }) => Ok(s),
            _ => Err(bad()),
        }
    }

    /// Defines `name` = `value` for `#!define` and relatives.
    fn define_checked(&mut self, directive: &str, arg: &str, pos: Pos) -> Result<(), ScriptError> {
        let (name, rest) = split_name(arg);
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(self
                .error(
                    ErrorKind::BadDirective(format!("#!{directive} needs a name")),
                    pos,
                )
                .with_hint(format!("the form is #!{directive} NAME [value]")));
        }
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            return Err(self
                .error(ErrorKind::BadDirective(format!("#!{directive} {arg}")), pos)
                .with_hint("a define name is made of letters, digits and '_'"));
        }
        let value = rest.trim();
        let value = (!value.is_empty()).then_some(value);
        let defined = self.defines.is_defined(name);
        match directive {
            "trydef" | "trydefine" if defined => {}
            "redefine" | "redef" | "trydef" | "trydefine" => self.defines.define(name, value),
            _ if defined => {
                return Err(self
                    .error(ErrorKind::AlreadyDefined(name.to_string()), pos)
                    .with_hint("use #!redefine to change it or #!trydef to keep the first value"))
            }
            _ => self.defines.define(name, value),
        }
        Ok(())
    }

    /// `#!defenv NAME=ENVVAR`, `#!defenv ENVVAR` and relatives.
    fn define_env(&mut self, directive: &str, arg: &str, pos: Pos) -> Result<(), ScriptError> {
        let (name, var) = match arg.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (arg.trim(), arg.trim()),
        };
        let valid =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid(name) || !valid(var) {
            return Err(self
                .error(ErrorKind::BadDirective(format!("#!{directive} {arg}")), pos)
                .with_hint(format!(
                    "the form is #!{directive} NAME=ENVVAR or #!{directive} ENVVAR"
                )));
        }
        let try_only = directive.starts_with("try");
        let value = match std::env::var(var) {
            Ok(v) => v,
            Err(_) if try_only => return Ok(()),
            Err(_) => {
                return Err(self
                    .error(ErrorKind::UndefinedEnv(var.to_string()), pos)
                    .with_hint(format!(
                        "use #!trydefenv to skip it when '{var}' is not set"
                    )))
            }
        };
        if self.defines.is_defined(name) {
            if try_only {
                return Ok(());
            }
            return Err(self
                .error(ErrorKind::AlreadyDefined(name.to_string()), pos)
                .with_hint("use #!trydefenv to keep the first value"));
        }
        let value = if directive.ends_with('s') {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{escaped}\"")
        } else {
            value
        };
        self.defines.define(name, Some(&value));
        Ok(())
    }

    /// `#!subst`, `#!substdef`, `#!substdefs`.
    fn subst(&mut self, directive: &str, arg: &str, pos: Pos) -> Result<(), ScriptError> {
        let spec = self.quoted_arg(directive, arg, pos)?;
        let (rule, pattern, replacement) = SubstRule::parse(&spec).map_err(|(kind, hint)| {
            let e = self.error(kind, pos);
            match hint {
                Some(h) => e.with_hint(h),
                None => e,
            }
        })?;
        self.substs.push(rule);
        if directive != "subst" {
            if self.defines.is_defined(&pattern) {
                return Err(self
                    .error(ErrorKind::AlreadyDefined(pattern), pos)
                    .with_hint("#!substdef also defines its pattern as a name"));
            }
            let value = if directive == "substdefs" {
                let escaped = replacement.replace('\\', "\\\\").replace('"', "\\\"");
                format!("\"{escaped}\"")
            } else {
                replacement
            };
            let value = (!value.trim().is_empty()).then_some(value);
            self.defines.define(&pattern, value.as_deref());
        }
        Ok(())
    }

    fn directive(&mut self, name: &str, arg: &str, pos: Pos) -> Result<(), ScriptError> {
        match name {
            "KAMAILIO" | "SER" | "MAXCOMPAT" | "ALL" | "OPENSER" => {}
            "ifdef" | "ifndef" => {
                let (id, _) = split_name(arg);
                if id.is_empty() {
                    return Err(self
                        .error(
                            ErrorKind::BadDirective(format!("#!{name} needs a name")),
                            pos,
                        )
                        .with_hint(format!("the form is #!{name} NAME")));
                }
                let value = self.defines.is_defined(id) == (name == "ifdef");
                let parent_active = self.active();
                let Some(frame) = self.stack.last_mut() else {
                    return Ok(());
                };
                if frame.conds.len() >= MAX_IFDEF_DEPTH {
                    return Err(self.error(
                        ErrorKind::NestingTooDeep {
                            what: "#!ifdef/#!ifndef".into(),
                            limit: MAX_IFDEF_DEPTH,
                        },
                        pos,
                    ));
                }
                frame.conds.push(Cond {
                    pos,
                    parent_active,
                    value,
                    in_else: false,
                });
            }
            "else" => match self.stack.last_mut().and_then(|f| f.conds.last_mut()) {
                Some(cond) => cond.in_else = !cond.in_else,
                None => {
                    return Err(self
                        .error(ErrorKind::ElseWithoutIfdef, pos)
                        .with_hint("no #!ifdef or #!ifndef is open in this file"))
                }
            },
            "endif" => {
                if self.stack.last_mut().and_then(|f| f.conds.pop()).is_none() {
                    return Err(self
                        .error(ErrorKind::EndifWithoutIfdef, pos)
                        .with_hint("no #!ifdef or #!ifndef is open in this file"));
                }
            }
            "define" | "def" | "trydef" | "trydefine" | "redefine" | "redef" => {
                self.define_checked(name, arg, pos)?;
            }
            "undef" | "tryundef" => {
                let (id, _) = split_name(arg);
                if id.is_empty() {
                    return Err(self
                        .error(
                            ErrorKind::BadDirective(format!("#!{name} needs a name")),
                            pos,
                        )
                        .with_hint(format!("the form is #!{name} NAME")));
                }
                self.defines.undefine(id);
            }
            "subst" | "substdef" | "substdefs" => self.subst(name, arg, pos)?,
            "defenv" | "defenvs" | "trydefenv" | "trydefenvs" => self.define_env(name, arg, pos)?,
            "include_file" | "import_file" => {
                let path = self.quoted_arg(name, arg, pos)?;
                self.include(&path, pos, name == "import_file")?;
            }
            _ => {
                return Err(self
                    .error(
                        ErrorKind::BadDirective(format!("#!{name} is not supported")),
                        pos,
                    )
                    .with_hint("#!ifexp and #!defexp appeared in Kamailio 5.7; this is 5.6"))
            }
        }
        Ok(())
    }

    /// Opens `path` (as written, then relative to the including file's directory).
    fn include(&mut self, path: &str, pos: Pos, import: bool) -> Result<(), ScriptError> {
        let as_written = PathBuf::from(path);
        let mut candidates = vec![as_written.clone()];
        if as_written.is_relative() {
            if let Some(dir) = self.stack.last().and_then(|f| f.dir.as_ref()) {
                candidates.push(dir.join(&as_written));
            }
        }
        let Some(found) = candidates.iter().find(|p| p.is_file()).cloned() else {
            if import {
                return Ok(());
            }
            let tried = candidates
                .iter()
                .map(|p| format!("'{}'", p.display()))
                .collect::<Vec<_>>()
                .join(" and ");
            return Err(self
                .error(ErrorKind::IncludeNotFound(path.to_string()), pos)
                .with_hint(format!(
                    "tried {tried}; use import_file for a file that may be missing"
                )));
        };
        let canonical = std::fs::canonicalize(&found).ok();
        if let Some(c) = &canonical {
            if self.stack.iter().any(|f| f.canonical.as_ref() == Some(c)) {
                return Err(self
                    .error(ErrorKind::IncludeRecursion(path.to_string()), pos)
                    .with_hint(format!(
                        "'{}' is already being read: includes form a cycle",
                        found.display()
                    )));
            }
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(self.error(
                ErrorKind::NestingTooDeep {
                    what: "included files".into(),
                    limit: MAX_INCLUDE_DEPTH,
                },
                pos,
            ));
        }
        let bytes = std::fs::read(&found).map_err(|e| {
            self.error(
                ErrorKind::Io {
                    path: found.display().to_string(),
                    error: e.to_string(),
                },
                pos,
            )
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let name = found.display().to_string();
        let index = match self.files.iter().position(|f| *f == name) {
            Some(i) => i,
            None => {
                self.files.push(name.clone());
                self.files.len() - 1
            }
        };
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        self.stack.push(Frame {
            lexer: Lexer::new(&text, index, &name),
            conds: Vec::new(),
            dir: found.parent().map(Path::to_path_buf),
            canonical,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens_with(text: &str, defines: &Defines) -> Result<Vec<Token>, ScriptError> {
        let mut pp = Preprocessor::new("t.cfg", text, None, None, defines);
        let mut out = Vec::new();
        loop {
            let t = pp.next_token()?;
            if t.kind == Tok::Eof {
                return Ok(out);
            }
            out.push(t);
        }
    }

    fn tokens(text: &str) -> Result<Vec<Token>, ScriptError> {
        tokens_with(text, &Defines::new())
    }

    fn texts(text: &str) -> Vec<String> {
        tokens(text)
            .unwrap()
            .into_iter()
            .map(|t| match t.kind {
                Tok::Str(s) => format!("{s:?}"),
                _ => t.text,
            })
            .collect()
    }

    #[test]
    fn predefined_names() {
        let d = Defines::with_predefined();
        for name in ["KAMAILIO_5", "KAMAILIO_5_6", "KAMAILIO_5_6_3", "SABLE"] {
            assert!(d.is_defined(name), "{name}");
            assert_eq!(d.get(name), None);
        }
        assert_eq!(d.get("KAMAILIO_VERSION"), Some("5006003"));
        assert_eq!(d.get("OS_NAME"), Some("linux"));
        assert!(!Defines::new().is_defined("SABLE"));
        let mut d = Defines::new();
        d.define("X", Some("1"));
        assert!(d.undefine("X"));
        assert!(!d.undefine("X"));
    }

    #[test]
    fn defines_replace_identifiers_but_not_strings() {
        let t = texts("#!define DBURL \"mysql://a@b/c\"\n#!define N 5\nx(DBURL, N, \"N\")");
        assert_eq!(
            t,
            vec!["x", "(", "\"mysql://a@b/c\"", ",", "5", ",", "\"N\"", ")"]
        );
    }

    #[test]
    fn defines_expand_recursively_and_without_value_to_nothing() {
        let t = texts("#!define A B + B\n#!define B 2\n#!define E\nA E;");
        assert_eq!(t, vec!["2", "+", "2", ";"]);
    }

    #[test]
    fn define_loops_are_errors() {
        let e = tokens("#!define A B\n#!define B A\nx A").unwrap_err();
        assert_eq!(e.kind, ErrorKind::DefineLoop("A".into()));
        assert_eq!((e.pos.line, e.pos.col), (3, 3));
        assert!(e.hint.unwrap().contains("A -> B -> A"));
    }

    #[test]
    fn exponential_expansion_is_bounded() {
        let mut text = String::from("#!define D0 x x\n");
        for i in 1..40 {
            text.push_str(&format!("#!define D{i} D{p} D{p}\n", p = i - 1));
        }
        text.push_str("D39\n");
        let e = tokens(&text).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::DefineLoop(_)));
    }

    #[test]
    fn redefinition_rules() {
        let e = tokens("#!define A 1\n#!define A 2\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::AlreadyDefined("A".into()));
        assert_eq!(e.pos.line, 2);
        assert_eq!(
            texts("#!define A 1\n#!trydef A 2\n#!trydef B 3\nA B"),
            vec!["1", "3"]
        );
        assert_eq!(texts("#!define A 1\n#!redefine A 2\nA"), vec!["2"]);
        assert_eq!(texts("#!define A 1\n#!undef A\nA"), vec!["A"]);
    }

    #[test]
    fn ifdef_else_endif_nest_and_skip() {
        let text = "#!define X\n#!ifdef X\na\n#!ifndef X\nb\n#!else\nc\n#!endif\n#!else\nd\n#!ifdef Y\ne\n#!endif\n#!endif\nf";
        assert_eq!(texts(text), vec!["a", "c", "f"]);
        let text = "#!ifdef NOPE\n\"unterminated\n/* not a comment\n#!define Z 1\n#!endif\nZ";
        assert_eq!(texts(text), vec!["Z"]);
    }

    #[test]
    fn conditional_errors_have_positions() {
        let e = tokens("a\n#!ifdef X\nb\n  #!ifndef Y\n#!endif\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnclosedIfdef);
        assert_eq!((e.pos.line, e.pos.col), (2, 1));
        let e = tokens("#!ifdef X\n#!ifdef Y\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnclosedIfdef);
        assert_eq!(e.pos.line, 2);
        let e = tokens("a\n#!else\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::ElseWithoutIfdef);
        assert_eq!(e.pos.line, 2);
        let e = tokens("a\n\n #!endif\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::EndifWithoutIfdef);
        assert_eq!((e.pos.line, e.pos.col), (3, 2));
    }

    #[test]
    fn deep_ifdefs_are_bounded() {
        let text = "#!ifdef X\n".repeat(600);
        let e = tokens(&text).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::NestingTooDeep { .. }), "{e}");
    }

    #[test]
    fn subst_rules_apply_to_strings() {
        let t = texts(
            "#!subst \"/foo/bar/g\"\n#!subst \"|(a+)b|<\\1>|i\"\nf(\"foo foo\", \"xAAB\", foo)",
        );
        assert_eq!(
            t,
            vec!["f", "(", "\"bar bar\"", ",", "\"x<AA>\"", ",", "foo", ")"]
        );
        let t = texts("#!subst \"/o/0/\"\n\"foo\"");
        assert_eq!(t, vec!["\"f0o\""]);
    }

    #[test]
    fn substdef_defines_and_substitutes() {
        let t = texts("#!substdef \"/SUBX/substituted/\"\nx(SUBX, \"sub=SUBX\")");
        assert_eq!(
            t,
            vec!["x", "(", "substituted", ",", "\"sub=substituted\"", ")"]
        );
        let t = texts("#!substdefs \"/SUBY/a b/\"\nSUBY");
        assert_eq!(t, vec!["\"a b\""]);
    }

    #[test]
    fn bad_subst_rules() {
        let e = tokens("#!subst \"/a/b\"\n").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadSubst(_)));
        let e = tokens("#!subst \"/a/b/x\"\n").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadSubst(_)));
        let e = tokens("#!subst nothing\n").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadDirective(_)));
        let e = tokens("\n#!subst \"/(/b/\"\n").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadRegex { .. }));
        assert_eq!(e.pos.line, 2);
    }

    #[test]
    fn split_subst_handles_escaped_delimiters() {
        assert_eq!(
            split_subst("/a\\/b/c\\d/g"),
            Some(("a/b".into(), "c\\d".into(), "g".into()))
        );
        assert_eq!(
            split_subst("!x!y!"),
            Some(("x".into(), "y".into(), String::new()))
        );
        assert_eq!(split_subst("/x/y"), None);
        assert_eq!(split_subst("axbxcx"), None);
    }

    #[test]
    fn defenv_reads_the_environment() {
        // PATH is set in any test environment.
        let path = std::env::var("PATH").unwrap();
        let t = texts("#!defenvs P=PATH\nP");
        assert_eq!(t, vec![format!("{path:?}")]);
        let e = tokens("#!defenv X=SABLE_TEST_SURELY_NOT_SET\n").unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::UndefinedEnv("SABLE_TEST_SURELY_NOT_SET".into())
        );
        assert_eq!(
            texts("#!trydefenv X=SABLE_TEST_SURELY_NOT_SET\nX"),
            vec!["X"]
        );
    }

    #[test]
    fn loadmodule_defines_mod_names() {
        let t = texts(
            "loadmodule \"/usr/lib/kamailio/modules/tm.so\"\nloadmodule \"sl\"\n#!ifdef MOD_tm\na\n#!endif\n#!ifdef MOD_sl\nb\n#!endif\n#!ifdef MOD_rr\nc\n#!endif",
        );
        assert_eq!(
            t,
            vec![
                "loadmodule",
                "\"/usr/lib/kamailio/modules/tm.so\"",
                "loadmodule",
                "\"sl\"",
                "a",
                "b"
            ]
        );
    }

    #[test]
    fn import_of_a_missing_file_is_skipped_include_is_an_error() {
        assert_eq!(
            texts("import_file \"/nonexistent/sable/x.cfg\"\na"),
            vec!["a"]
        );
        let e = tokens("a\ninclude_file \"/nonexistent/sable/x.cfg\"").unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::IncludeNotFound("/nonexistent/sable/x.cfg".into())
        );
        assert_eq!((e.pos.line, e.pos.col), (2, 1));
        let e = tokens("include_file x").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::UnexpectedToken { .. }));
    }

    /// A fresh directory under the system temporary directory.
    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sable-script-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn tokens_in(dir: &Path, text: &str) -> Result<Vec<Token>, ScriptError> {
        let main = dir.join("main.cfg");
        let mut pp = Preprocessor::new(
            &main.display().to_string(),
            text,
            Some(dir.to_path_buf()),
            None,
            &Defines::new(),
        );
        let mut out = Vec::new();
        loop {
            let t = pp.next_token()?;
            if t.kind == Tok::Eof {
                return Ok(out);
            }
            out.push(t);
        }
    }

    #[test]
    fn includes_nest_up_to_the_limit() {
        let dir = temp_dir("depth");
        // f0 includes f1 includes ... includes f39: deeper than the limit.
        for i in 0..40 {
            let next = if i < 39 {
                format!("include_file \"f{}.cfg\"\n", i + 1)
            } else {
                "last\n".to_string()
            };
            std::fs::write(dir.join(format!("f{i}.cfg")), format!("x{i}\n{next}")).unwrap();
        }
        let e = tokens_in(&dir, "include_file \"f0.cfg\"").unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::NestingTooDeep { limit, .. } if limit == MAX_INCLUDE_DEPTH),
            "{e}"
        );
        // Within the limit, the tokens of every file come in order.
        let t = tokens_in(&dir, "include_file \"f30.cfg\"").unwrap();
        let words: Vec<String> = t.into_iter().map(|t| t.text).collect();
        assert_eq!(words.first().map(String::as_str), Some("x30"));
        assert_eq!(words.last().map(String::as_str), Some("last"));
        assert_eq!(words.len(), 11);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn include_cycles_are_errors_at_the_closing_include() {
        let dir = temp_dir("cycle");
        std::fs::write(dir.join("a.cfg"), "a\ninclude_file \"b.cfg\"\n").unwrap();
        std::fs::write(dir.join("b.cfg"), "b\n  include_file \"a.cfg\"\n").unwrap();
        let e = tokens_in(&dir, "include_file \"a.cfg\"").unwrap_err();
        assert_eq!(e.kind, ErrorKind::IncludeRecursion("a.cfg".into()));
        assert!(e.file.ends_with("b.cfg"), "{}", e.file);
        assert_eq!((e.pos.line, e.pos.col), (2, 3));
        // The same file twice, one after the other, is no cycle.
        std::fs::write(dir.join("c.cfg"), "c\n").unwrap();
        let t = tokens_in(&dir, "include_file \"c.cfg\"\ninclude_file \"c.cfg\"").unwrap();
        assert_eq!(t.len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unsupported_directives_are_errors() {
        let e = tokens("#!ifexp KAMAILIO_VERSION > 5\n").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadDirective(_)));
    }

    #[test]
    fn module_names() {
        assert_eq!(module_name("tm.so"), "tm");
        assert_eq!(module_name("/a/b/textops.so"), "textops");
        assert_eq!(module_name("xlog"), "xlog");
    }
}
