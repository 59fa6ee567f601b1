//! The parser: tokens from the preprocessor to the syntax tree of [`crate::ast`].
//!
//! Recursive descent, stopping at the first error. Nesting of statements and expressions is
//! bounded ([`MAX_DEPTH`]) so that no input can overflow the stack.
//!
//! Expression precedence, lowest first, as Kamailio's grammar has it: `||` `or`; `&&` `and`;
//! `|`; `&`; `^`; `<<`; `>>`; `==` `!=` `=~` `!~`; `<` `<=` `>` `>=`; `+` `-`; `*` `/` `%`
//! `mod`; then the unary `!` `not` `-` `~` `defined` `strlen()` `strempty()`.

// `ScriptError` is large (its public fields are fixed: kind, file, pos, hint), and a config is
// parsed once at load, so returning it by value costs nothing that matters.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use crate::ast::{
    BinaryOp, Block, Case, CaseLabel, Config, Expr, ExprKind, Item, Literal, ParamValue, Pos,
    RouteKind, Stmt, StmtKind, UnaryOp,
};
use crate::error::{ErrorKind, ScriptError};
use crate::lexer::{Tok, Token};
use crate::preprocess::{Defines, Preprocessor};

/// How deeply statements and expressions may nest.
pub(crate) const MAX_DEPTH: usize = 256;

/// Reads and parses the config file at `path` (includes are tried as written, then relative to
/// the directory of the including file).
pub fn parse_file(path: &Path, defines: &Defines) -> Result<Config, Vec<ScriptError>> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        vec![ScriptError::new(
            ErrorKind::Io {
                path: name.clone(),
                error: e.to_string(),
            },
            name.clone(),
            Pos::default(),
        )]
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let pp = Preprocessor::new(
        &name,
        &text,
        path.parent().map(Path::to_path_buf),
        std::fs::canonicalize(path).ok(),
        defines,
    );
    run(pp)
}

/// Parses `text` as the content of a file named `file_name` (used in error messages and as
/// `Config::files[0]`). Includes are tried relative to the current directory, then to the
/// directory of `file_name`.
pub fn parse_str(
    file_name: &str,
    text: &str,
    defines: &Defines,
) -> Result<Config, Vec<ScriptError>> {
    let path = Path::new(file_name);
    let pp = Preprocessor::new(
        file_name,
        text,
        path.parent().map(Path::to_path_buf),
        std::fs::canonicalize(path).ok(),
        defines,
    );
    run(pp)
}

/// Stack of the parser thread. A debug build needs up to ~35 KiB per nesting level (release
/// far less), so [`MAX_DEPTH`] levels fit with a wide margin whatever the caller's stack is
/// (test threads have 2 MiB). Untouched pages cost nothing.
const PARSER_STACK: usize = 32 * 1024 * 1024;

/// Parses on a thread of its own with a known stack, so that nesting up to [`MAX_DEPTH`]
/// cannot overflow the caller's stack.
fn run(pp: Preprocessor) -> Result<Config, Vec<ScriptError>> {
    let file = pp.file_name(0).to_string();
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("sable-cfg-parser".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(scope, move || run_here(pp));
        match spawned {
            Ok(handle) => match handle.join() {
                Ok(result) => result,
                // The parser does not panic; should it, the panic goes on as if there had
                // been no thread.
                Err(payload) => std::panic::resume_unwind(payload),
            },
            Err(e) => Err(vec![ScriptError::new(
                ErrorKind::Io {
                    path: file.clone(),
                    error: format!("cannot start the parser thread: {e}"),
                },
                file,
                Pos::default(),
            )]),
        }
    })
}

fn run_here(pp: Preprocessor) -> Result<Config, Vec<ScriptError>> {
    let mut parser = Parser {
        pp,
        buf: VecDeque::new(),
        depth: 0,
        last_end: Pos::default(),
        routes: HashMap::new(),
    };
    match parser.config() {
        Ok(items) => Ok(Config {
            files: parser.pp.into_files(),
            items,
        }),
        Err(e) => Err(vec![e]),
    }
}

/// Words that start a route block.
fn is_route_keyword(word: &str) -> bool {
    matches!(
        word,
        "request_route"
            | "route"
            | "failure_route"
            | "branch_route"
            | "onreply_route"
            | "reply_route"
            | "onsend_route"
            | "event_route"
    )
}

/// Words that cannot be an operand.
fn is_statement_keyword(word: &str) -> bool {
    matches!(
        word,
        "if" | "else"
            | "switch"
            | "case"
            | "default"
            | "while"
            | "return"
            | "exit"
            | "drop"
            | "break"
    )
}

fn bool_word(word: &str) -> Option<bool> {
    match word.to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" => Some(true),
        "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

/// The binary operator a token stands for, with its precedence (higher binds tighter).
fn binary_op(tok: &Tok) -> Option<(BinaryOp, u8)> {
    Some(match tok {
        Tok::OrOr => (BinaryOp::Or, 1),
        Tok::Ident(w) if w == "or" => (BinaryOp::Or, 1),
        Tok::AndAnd => (BinaryOp::And, 2),
        Tok::Ident(w) if w == "and" => (BinaryOp::And, 2),
        // Kamailio's grammar binds the bitwise operators and shifts more loosely than the
        // comparisons (unlike C), and `&` more loosely than `^`.
        Tok::Pipe => (BinaryOp::BitOr, 3),
        Tok::Amp => (BinaryOp::BitAnd, 4),
        Tok::Caret => (BinaryOp::BitXor, 5),
        Tok::Shl => (BinaryOp::Shl, 6),
        Tok::Shr => (BinaryOp::Shr, 7),
        Tok::EqEq => (BinaryOp::Eq, 8),
        Tok::Ne => (BinaryOp::Ne, 8),
        Tok::Match => (BinaryOp::Match, 8),
        Tok::NotMatch => (BinaryOp::NotMatch, 8),
        Tok::Lt => (BinaryOp::Lt, 9),
        Tok::Le => (BinaryOp::Le, 9),
        Tok::Gt => (BinaryOp::Gt, 9),
        Tok::Ge => (BinaryOp::Ge, 9),
        Tok::Plus => (BinaryOp::Add, 10),
        Tok::Minus => (BinaryOp::Sub, 10),
        Tok::Star => (BinaryOp::Mul, 11),
        Tok::Slash => (BinaryOp::Div, 11),
        Tok::Percent => (BinaryOp::Mod, 11),
        Tok::Ident(w) if w == "mod" => (BinaryOp::Mod, 11),
        _ => return None,
    })
}

fn at(pos: Pos) -> String {
    format!("{}:{}", pos.line, pos.col)
}

#[derive(Debug)]
struct Parser {
    pp: Preprocessor,
    buf: VecDeque<Token>,
    depth: usize,
    /// End of the last token taken (where a missing `;` belongs).
    last_end: Pos,
    /// Named route blocks seen: where each was defined.
    routes: HashMap<(RouteKind, String), Pos>,
}

impl Parser {
    // ----- token access -----

    fn peek(&mut self, k: usize) -> Result<&Token, ScriptError> {
        while self.buf.len() <= k {
            let t = self.pp.next_token()?;
            self.buf.push_back(t);
        }
        self.buf.get(k).ok_or_else(|| {
            ScriptError::new(
                ErrorKind::UnexpectedEof {
                    expected: "more input".into(),
                },
                self.pp.file_name(0).to_string(),
                Pos::default(),
            )
        })
    }

    fn peek_kind(&mut self, k: usize) -> Result<&Tok, ScriptError> {
        Ok(&self.peek(k)?.kind)
    }

    fn next(&mut self) -> Result<Token, ScriptError> {
        self.peek(0)?;
        let t = self.buf.pop_front().ok_or_else(|| {
            ScriptError::new(
                ErrorKind::UnexpectedEof {
                    expected: "more input".into(),
                },
                self.pp.file_name(0).to_string(),
                Pos::default(),
            )
        })?;
        if t.kind != Tok::Eof {
            self.last_end = t.end;
        }
        Ok(t)
    }

    fn at_kind(&mut self, kind: &Tok) -> Result<bool, ScriptError> {
        Ok(self.peek_kind(0)? == kind)
    }

    fn eat(&mut self, kind: &Tok) -> Result<bool, ScriptError> {
        if self.at_kind(kind)? {
            self.next()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect(&mut self, kind: &Tok, expected: &str) -> Result<Token, ScriptError> {
        let t = self.next()?;
        if t.kind == *kind {
            return Ok(t);
        }
        Err(self.unexpected(&t, expected))
    }

    fn err(&self, kind: ErrorKind, pos: Pos) -> ScriptError {
        ScriptError::new(kind, self.pp.file_name(pos.file).to_string(), pos)
    }

    fn unexpected(&self, t: &Token, expected: &str) -> ScriptError {
        let kind = if t.kind == Tok::Eof {
            ErrorKind::UnexpectedEof {
                expected: expected.to_string(),
            }
        } else {
            ErrorKind::UnexpectedToken {
                found: t.describe(),
                expected: expected.to_string(),
            }
        };
        self.err(kind, t.pos)
    }

    fn enter(&mut self, pos: Pos) -> Result<(), ScriptError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                ErrorKind::NestingTooDeep {
                    what: "statements and expressions".into(),
                    limit: MAX_DEPTH,
                },
                pos,
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn int(&self, text: &str, negative: bool, pos: Pos) -> Result<i64, ScriptError> {
        let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            Some(hex) if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                i64::from_str_radix(hex, 16).ok()
            }
            Some(_) => None,
            None if text.chars().all(|c| c.is_ascii_digit()) => text.parse::<i64>().ok(),
            None => None,
        };
        let value = parsed.and_then(|n| if negative { n.checked_neg() } else { Some(n) });
        value.ok_or_else(|| {
            let shown = if negative {
                format!("-{text}")
            } else {
                text.to_string()
            };
            self.err(ErrorKind::BadNumber(shown), pos)
                .with_hint("numbers are decimal or 0x hexadecimal, and fit in 64 bits")
        })
    }

    /// One or more adjacent string literals, joined.
    fn strings(&mut self, expected: &str) -> Result<(String, Pos), ScriptError> {
        let t = self.next()?;
        let Tok::Str(mut s) = t.kind.clone() else {
            return Err(self.unexpected(&t, expected));
        };
        while let Tok::Str(more) = self.peek_kind(0)? {
            s.push_str(more);
            self.next()?;
        }
        Ok((s, t.pos))
    }

    // ----- top level -----

    fn config(&mut self) -> Result<Vec<Item>, ScriptError> {
        let mut items = Vec::new();
        loop {
            let t = self.peek(0)?.clone();
            let item = match &t.kind {
                Tok::Eof => return Ok(items),
                Tok::Semi => {
                    self.next()?;
                    continue;
                }
                Tok::RBrace => {
                    return Err(self
                        .err(ErrorKind::UnbalancedBrace, t.pos)
                        .with_hint("this '}' closes no block"))
                }
                Tok::Ident(word) => match word.as_str() {
                    "loadmodule" => self.loadmodule()?,
                    "modparam" => self.modparam()?,
                    w if is_route_keyword(w) => self.route()?,
                    "loadpath" | "cfgengine" if matches!(self.peek_kind(1)?, Tok::Str(_)) => {
                        let kw = self.next()?;
                        let (value, _) = self.strings("a quoted string")?;
                        self.eat(&Tok::Semi)?;
                        Item::Param {
                            name: kw.text,
                            value: ParamValue::Str(value),
                            pos: kw.pos,
                        }
                    }
                    _ => self.param()?,
                },
                _ => {
                    return Err(
                        self.unexpected(&t, "a parameter, loadmodule, modparam or a route block")
                    )
                }
            };
            items.push(item);
        }
    }

    fn loadmodule(&mut self) -> Result<Item, ScriptError> {
        let kw = self.next()?;
        let paren = self.eat(&Tok::LParen)?;
        let (path, _) = self
            .strings("a quoted module path")
            .map_err(|e| e.with_hint("the form is loadmodule \"name.so\""))?;
        if paren {
            self.expect(&Tok::RParen, "')'")?;
        }
        self.eat(&Tok::Semi)?;
        Ok(Item::LoadModule { path, pos: kw.pos })
    }

    fn modparam(&mut self) -> Result<Item, ScriptError> {
        let hint = "the form is modparam(\"module\", \"parameter\", value)";
        let kw = self.next()?;
        let with_hint = |e: ScriptError| e.with_hint(hint);
        self.expect(&Tok::LParen, "'('").map_err(with_hint)?;
        let (module, _) = self.strings("a quoted module name").map_err(with_hint)?;
        self.expect(&Tok::Comma, "','").map_err(with_hint)?;
        let (param, _) = self.strings("a quoted parameter name").map_err(with_hint)?;
        self.expect(&Tok::Comma, "','").map_err(with_hint)?;
        let value = self.modparam_value()?;
        self.expect(&Tok::RParen, "')'").map_err(with_hint)?;
        self.eat(&Tok::Semi)?;
        Ok(Item::ModParam {
            module,
            param,
            value,
            pos: kw.pos,
        })
    }

    /// A string (adjacent strings joined), an integer (possibly negative), `yes`/`no`-like
    /// words (1/0), or any other bare word as a string (the compile step judges it; an
    /// undefined define name such as `DBURL` ends up here).
    fn modparam_value(&mut self) -> Result<Literal, ScriptError> {
        let t = self.peek(0)?.clone();
        match &t.kind {
            Tok::Str(_) => Ok(Literal::Str(self.strings("a string")?.0)),
            Tok::Num(text) => {
                self.next()?;
                Ok(Literal::Int(self.int(text, false, t.pos)?))
            }
            Tok::Minus => {
                self.next()?;
                let n = self.next()?;
                match &n.kind {
                    Tok::Num(text) => Ok(Literal::Int(self.int(text, true, n.pos)?)),
                    _ => Err(self.unexpected(&n, "a number")),
                }
            }
            Tok::Ident(word) => {
                self.next()?;
                Ok(match bool_word(word) {
                    Some(b) => Literal::Int(i64::from(b)),
                    None => Literal::Str(word.clone()),
                })
            }
            _ => Err(self
                .unexpected(&t, "a string or a number")
                .with_hint("the form is modparam(\"module\", \"parameter\", value)")),
        }
    }

    /// `name = value` or `group.name = value [desc "text"]`.
    fn param(&mut self) -> Result<Item, ScriptError> {
        let name_tok = self.next()?;
        let name = name_tok.text.clone();
        if self.eat(&Tok::Assign)? {
            let value = self.param_value(false)?;
            return Ok(Item::Param {
                name,
                value,
                pos: name_tok.pos,
            });
        }
        let is_cfg_var = self.at_kind(&Tok::Dot)?
            && matches!(self.peek_kind(1)?, Tok::Ident(_))
            && *self.peek_kind(2)? == Tok::Assign;
        if is_cfg_var {
            self.next()?;
            let var = self.next()?;
            self.next()?;
            let value = self.param_value(true)?;
            let mut desc = None;
            if self.peek(0)?.is_ident("desc") && !self.peek(0)?.nl_before {
                self.next()?;
                desc = Some(self.strings("a quoted description")?.0);
                self.eat(&Tok::Semi)?;
            }
            return Ok(Item::CfgVar {
                group: name,
                name: var.text,
                value,
                desc,
                pos: name_tok.pos,
            });
        }
        let t = self.peek(0)?.clone();
        let hint = if t.kind == Tok::LParen || is_statement_keyword(&name) {
            "statements and function calls must be inside a route block".to_string()
        } else {
            format!("a core parameter is set with {name} = value")
        };
        Err(self.unexpected(&t, "'='").with_hint(hint))
    }

    /// The tokens of a parameter value up to the end of its line or `;`, typed.
    fn param_value(&mut self, stop_at_desc: bool) -> Result<ParamValue, ScriptError> {
        let mut toks: Vec<Token> = Vec::new();
        loop {
            let t = self.peek(0)?;
            if t.kind == Tok::Eof
                || t.nl_before
                || (stop_at_desc && !toks.is_empty() && t.is_ident("desc"))
            {
                break;
            }
            if t.kind == Tok::Semi {
                self.next()?;
                break;
            }
            toks.push(self.next()?);
        }
        let Some(first) = toks.first() else {
            let t = self.peek(0)?.clone();
            return Err(self
                .unexpected(&t, "a value")
                .with_hint("the value must be on the same line as '='"));
        };
        if toks.iter().all(|t| matches!(t.kind, Tok::Str(_))) {
            let joined = toks
                .iter()
                .filter_map(|t| match &t.kind {
                    Tok::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            return Ok(ParamValue::Str(joined));
        }
        match (&first.kind, toks.get(1), toks.len()) {
            (Tok::Num(text), None, 1) => {
                if let Ok(n) = self.int(text, false, first.pos) {
                    return Ok(ParamValue::Int(n));
                }
            }
            (Tok::Minus, Some(num), 2) if !num.space_before => {
                if let Tok::Num(text) = &num.kind {
                    if let Ok(n) = self.int(text, true, num.pos) {
                        return Ok(ParamValue::Int(n));
                    }
                }
            }
            (Tok::Ident(word), None, 1) => {
                if let Some(b) = bool_word(word) {
                    return Ok(ParamValue::Bool(b));
                }
            }
            _ => {}
        }
        let mut raw = String::new();
        for (i, t) in toks.iter().enumerate() {
            if i > 0 && t.space_before {
                raw.push(' ');
            }
            raw.push_str(&t.text);
        }
        Ok(ParamValue::Raw(raw))
    }

    // ----- route blocks -----

    fn route(&mut self) -> Result<Item, ScriptError> {
        let kw = self.next()?;
        let word = kw.text.clone();
        let mut name = None;
        let mut name_pos = kw.pos;
        if self.at_kind(&Tok::LBracket)? {
            let open = self.next()?;
            let (text, pos) = self.route_name(&open)?;
            name_pos = pos;
            name = Some(text);
        }
        let unnamed = |n: &Option<String>| n.as_deref().is_none_or(|n| n == "0");
        let bad_name = |p: &Parser, n: &Option<String>, hint: &str| {
            p.err(
                ErrorKind::BadRouteName(n.clone().unwrap_or_default()),
                name_pos,
            )
            .with_hint(hint.to_string())
        };
        let (kind, name) = match word.as_str() {
            "request_route" | "route" => (RouteKind::Request, name.filter(|n| n != "0")),
            "failure_route" => (RouteKind::Failure, name.filter(|n| n != "0")),
            "branch_route" => (RouteKind::Branch, name.filter(|n| n != "0")),
            "onreply_route" if unnamed(&name) => (RouteKind::CoreReply, None),
            "onreply_route" => (RouteKind::Reply, name),
            "reply_route" if unnamed(&name) => (RouteKind::CoreReply, None),
            "reply_route" => {
                return Err(bad_name(
                    self,
                    &name,
                    "reply_route takes no name; use onreply_route[NAME] for a tm reply route",
                ))
            }
            "onsend_route" if unnamed(&name) => (RouteKind::OnSend, None),
            "onsend_route" => return Err(bad_name(self, &name, "onsend_route takes no name")),
            _ => {
                let valid = name
                    .as_deref()
                    .and_then(|n| n.split_once(':'))
                    .is_some_and(|(group, event)| !group.is_empty() && !event.is_empty());
                if name.is_none() {
                    let t = self.peek(0)?.clone();
                    return Err(self
                        .unexpected(&t, "'['")
                        .with_hint("an event route is named: event_route[group:name]"));
                }
                if !valid {
                    return Err(bad_name(
                        self,
                        &name,
                        "an event route name is group:name, as in event_route[xhttp:request]",
                    ));
                }
                (RouteKind::Event, name)
            }
        };
        if !self.at_kind(&Tok::LBrace)? {
            let t = self.peek(0)?.clone();
            let hint = if name.is_none() && matches!(t.kind, Tok::Ident(_) | Tok::Num(_)) {
                format!("a route name goes in brackets: {word}[NAME] {{ ... }}")
            } else {
                format!("the body of {word} is a block: {{ ... }}")
            };
            return Err(self.unexpected(&t, "'{'").with_hint(hint));
        }
        let body = self.block()?;
        if let Some(n) = &name {
            if let Some(first) = self.routes.get(&(kind, n.clone())) {
                let first = *first;
                return Err(self
                    .err(
                        ErrorKind::DuplicateRoute {
                            kind: word,
                            name: n.clone(),
                        },
                        name_pos,
                    )
                    .with_hint(format!(
                        "it is first defined at {}:{}",
                        self.pp.file_name(first.file),
                        at(first)
                    )));
            }
            self.routes.insert((kind, n.clone()), name_pos);
        }
        Ok(Item::Route {
            kind,
            name,
            body,
            pos: kw.pos,
        })
    }

    /// The name between `[` and `]`: a word (possibly `group:name-with-dashes`), a number or a
    /// quoted string.
    fn route_name(&mut self, open: &Token) -> Result<(String, Pos), ScriptError> {
        let mut name = String::new();
        let mut parts = 0;
        let pos = self.peek(0)?.pos;
        loop {
            let t = self.next()?;
            match &t.kind {
                Tok::RBracket => break,
                Tok::Str(s) => name.push_str(s),
                Tok::Ident(_) | Tok::Num(_) | Tok::Colon | Tok::Minus | Tok::Dot => {
                    name.push_str(&t.text)
                }
                _ => {
                    return Err(self.unexpected(&t, "']'").with_hint(format!(
                        "the route name opened by '[' at {} is not closed",
                        at(open.pos)
                    )))
                }
            }
            parts += 1;
        }
        if parts == 0 || name.is_empty() {
            return Err(self
                .err(ErrorKind::BadRouteName(name), open.pos)
                .with_hint("a route name is a word, a number or a quoted string"));
        }
        Ok((name, pos))
    }

    // ----- statements -----

    /// Fails when the token at the head cannot be inside a block because it starts a
    /// top-level item: the block before it is then not closed.
    fn check_in_block(&mut self, t: &Token, open: Pos) -> Result<(), ScriptError> {
        let Tok::Ident(word) = &t.kind else {
            return Ok(());
        };
        let next = self.peek_kind(1)?;
        let top_level = (is_route_keyword(word) && matches!(next, Tok::LBracket | Tok::LBrace))
            || (word == "modparam" && *next == Tok::LParen)
            || (word == "loadmodule" && matches!(next, Tok::Str(_)));
        if top_level {
            return Err(self.unclosed(open, Some(t)));
        }
        Ok(())
    }

    fn unclosed(&self, open: Pos, before: Option<&Token>) -> ScriptError {
        let hint = match before {
            Some(t) => format!(
                "the block opened at {} is not closed before '{}' at {}",
                at(open),
                t.text,
                at(t.pos)
            ),
            None => format!("the block opened at {} is not closed", at(open)),
        };
        self.err(ErrorKind::UnbalancedBrace, open).with_hint(hint)
    }

    fn block(&mut self) -> Result<Block, ScriptError> {
        let open = self.expect(&Tok::LBrace, "'{'")?;
        let mut stmts = Vec::new();
        loop {
            let t = self.peek(0)?.clone();
            match t.kind {
                Tok::RBrace => {
                    self.next()?;
                    break;
                }
                Tok::Eof => return Err(self.unclosed(open.pos, None)),
                _ => {
                    self.check_in_block(&t, open.pos)?;
                    if let Some(s) = self.stmt()? {
                        stmts.push(s);
                    }
                }
            }
        }
        Ok(Block {
            stmts,
            pos: open.pos,
        })
    }

    /// The body of `if`, `else` and `while`: a block, or one statement made a block.
    fn body(&mut self) -> Result<Block, ScriptError> {
        if self.at_kind(&Tok::LBrace)? {
            return self.block();
        }
        let pos = self.peek(0)?.pos;
        Ok(match self.stmt()? {
            Some(s) => Block {
                pos: s.pos,
                stmts: vec![s],
            },
            None => Block {
                stmts: Vec::new(),
                pos,
            },
        })
    }

    /// One statement; `None` for an empty one (`;`).
    fn stmt(&mut self) -> Result<Option<Stmt>, ScriptError> {
        let pos = self.peek(0)?.pos;
        self.enter(pos)?;
        let s = self.stmt_inner()?;
        self.leave();
        Ok(s.map(|kind| Stmt { kind, pos }))
    }

    fn stmt_inner(&mut self) -> Result<Option<StmtKind>, ScriptError> {
        let t = self.peek(0)?.clone();
        let kind = match &t.kind {
            Tok::Semi => {
                self.next()?;
                return Ok(None);
            }
            Tok::LBrace => StmtKind::Block(self.block()?),
            Tok::Ident(word) => match word.as_str() {
                "if" => self.if_stmt()?,
                "switch" => self.switch_stmt()?,
                "while" => {
                    self.next()?;
                    let cond = self.expr()?;
                    let body = self.body()?;
                    StmtKind::While { cond, body }
                }
                "else" => {
                    return Err(self.unexpected(&t, "a statement").with_hint(
                        "'else' without 'if': is there a ';' after the if's closing brace, or a '}' too many?",
                    ))
                }
                "case" | "default" => {
                    return Err(self
                        .unexpected(&t, "a statement")
                        .with_hint(format!("'{word}' is only allowed directly inside a switch")))
                }
                "return" | "exit" | "drop" => {
                    self.next()?;
                    let value = if self.at_kind(&Tok::Semi)? {
                        None
                    } else {
                        Some(self.expr()?)
                    };
                    self.semi()?;
                    match word.as_str() {
                        "return" => StmtKind::Return(value),
                        "exit" => StmtKind::Exit(value),
                        _ => StmtKind::Drop(value),
                    }
                }
                "break" => {
                    self.next()?;
                    self.semi()?;
                    StmtKind::Break
                }
                _ => self.simple()?,
            },
            Tok::Pv(target)
                if matches!(self.peek_kind(1)?, Tok::Assign | Tok::ColonAssign) =>
            {
                let target = target.clone();
                self.next()?;
                self.next()?;
                let value = self.expr()?;
                self.semi()?;
                StmtKind::Assign { target, value }
            }
            Tok::Num(_)
            | Tok::Str(_)
            | Tok::Pv(_)
            | Tok::LParen
            | Tok::LBracket
            | Tok::Bang
            | Tok::Minus
            | Tok::Tilde => self.simple()?,
            _ => return Err(self.unexpected(&t, "a statement")),
        };
        Ok(Some(kind))
    }

    /// An expression statement; a bare word is a call without arguments.
    fn simple(&mut self) -> Result<StmtKind, ScriptError> {
        let e = self.expr()?;
        let e = match e.kind {
            ExprKind::Ident(name) => Expr {
                kind: ExprKind::Call {
                    name,
                    args: Vec::new(),
                },
                pos: e.pos,
            },
            kind => Expr { kind, pos: e.pos },
        };
        self.semi()?;
        Ok(StmtKind::Expr(e))
    }

    fn semi(&mut self) -> Result<(), ScriptError> {
        let t = self.peek(0)?.clone();
        if t.kind == Tok::Semi {
            self.next()?;
            return Ok(());
        }
        Err(self
            .err(ErrorKind::MissingSemicolon, self.last_end)
            .with_hint(format!(
                "end the statement with ';' (found {} at {})",
                t.describe(),
                at(t.pos)
            )))
    }

    fn if_stmt(&mut self) -> Result<StmtKind, ScriptError> {
        self.next()?;
        let cond = self.expr()?;
        let then = self.body()?;
        let els = if self.peek(0)?.is_ident("else") {
            self.next()?;
            Some(self.body()?)
        } else {
            None
        };
        Ok(StmtKind::If { cond, then, els })
    }

    fn switch_stmt(&mut self) -> Result<StmtKind, ScriptError> {
        self.next()?;
        let subject = self.expr()?;
        let open = self.expect(&Tok::LBrace, "'{'")?;
        let mut cases: Vec<Case> = Vec::new();
        loop {
            let t = self.peek(0)?.clone();
            match &t.kind {
                Tok::RBrace => {
                    self.next()?;
                    break;
                }
                Tok::Eof => return Err(self.unclosed(open.pos, None)),
                Tok::Ident(w) if w == "case" || w == "default" => {
                    self.next()?;
                    let label = if w == "case" {
                        Some(self.case_label()?)
                    } else {
                        None
                    };
                    self.expect(&Tok::Colon, "':'")?;
                    cases.push(Case {
                        label,
                        body: Vec::new(),
                        pos: t.pos,
                    });
                }
                _ => {
                    self.check_in_block(&t, open.pos)?;
                    if cases.is_empty() {
                        return Err(self
                            .unexpected(&t, "'case' or 'default'")
                            .with_hint("statements of a switch go after a case label"));
                    }
                    if let Some(s) = self.stmt()? {
                        if let Some(case) = cases.last_mut() {
                            case.body.push(s);
                        }
                    }
                }
            }
        }
        Ok(StmtKind::Switch { subject, cases })
    }

    fn case_label(&mut self) -> Result<CaseLabel, ScriptError> {
        let t = self.peek(0)?.clone();
        let expected = "a number, a string or /\"regex\"";
        match &t.kind {
            Tok::Num(text) => {
                self.next()?;
                Ok(CaseLabel::Int(self.int(text, false, t.pos)?))
            }
            Tok::Minus => {
                self.next()?;
                let n = self.next()?;
                match &n.kind {
                    Tok::Num(text) => Ok(CaseLabel::Int(self.int(text, true, n.pos)?)),
                    _ => Err(self.unexpected(&n, "a number")),
                }
            }
            Tok::Str(_) => Ok(CaseLabel::Str(self.strings(expected)?.0)),
            Tok::Slash => {
                self.next()?;
                Ok(CaseLabel::Regex(
                    self.strings("a quoted regular expression")?.0,
                ))
            }
            _ => Err(self.unexpected(&t, expected)),
        }
    }

    // ----- expressions -----

    fn expr(&mut self) -> Result<Expr, ScriptError> {
        self.binary(1)
    }

    fn binary(&mut self, min: u8) -> Result<Expr, ScriptError> {
        let mut left = self.unary()?;
        while let Some((op, prec)) = binary_op(self.peek_kind(0)?) {
            if prec < min {
                break;
            }
            self.next()?;
            let right = self.binary(prec + 1)?;
            let pos = left.pos;
            left = Expr {
                kind: ExprKind::Binary {
                    op,
                    left: Box::new(left),
                    right: Box::new(right),
                },
                pos,
            };
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ScriptError> {
        let t = self.peek(0)?.clone();
        self.enter(t.pos)?;
        let op = match &t.kind {
            Tok::Bang => Some(UnaryOp::Not),
            Tok::Ident(w) if w == "not" => Some(UnaryOp::Not),
            Tok::Minus => Some(UnaryOp::Neg),
            Tok::Tilde => Some(UnaryOp::BitNot),
            Tok::Ident(w) if w == "defined" => Some(UnaryOp::Defined),
            Tok::Ident(w)
                if (w == "strlen" || w == "strempty") && *self.peek_kind(1)? == Tok::LParen =>
            {
                Some(if w == "strlen" {
                    UnaryOp::Strlen
                } else {
                    UnaryOp::Strempty
                })
            }
            _ => None,
        };
        let e = match op {
            None => self.primary()?,
            Some(op @ (UnaryOp::Strlen | UnaryOp::Strempty)) => {
                self.next()?;
                let open = self.expect(&Tok::LParen, "'('")?;
                let inner = self.expr()?;
                self.close_paren(open.pos)?;
                Expr {
                    kind: ExprKind::Unary {
                        op,
                        expr: Box::new(inner),
                    },
                    pos: t.pos,
                }
            }
            Some(op) => {
                self.next()?;
                let operand = self.unary()?;
                match (op, operand.kind) {
                    (UnaryOp::Neg, ExprKind::Int(n)) if n.checked_neg().is_some() => Expr {
                        kind: ExprKind::Int(-n),
                        pos: t.pos,
                    },
                    (op, kind) => Expr {
                        kind: ExprKind::Unary {
                            op,
                            expr: Box::new(Expr {
                                kind,
                                pos: operand.pos,
                            }),
                        },
                        pos: t.pos,
                    },
                }
            }
        };
        self.leave();
        Ok(e)
    }

    fn close_paren(&mut self, open: Pos) -> Result<(), ScriptError> {
        let t = self.next()?;
        if t.kind == Tok::RParen {
            return Ok(());
        }
        Err(self
            .unexpected(&t, "')'")
            .with_hint(format!("the '(' at {} is not closed", at(open))))
    }

    fn primary(&mut self) -> Result<Expr, ScriptError> {
        let t = self.next()?;
        let pos = t.pos;
        let kind = match &t.kind {
            Tok::Num(_) => return self.word(t),
            Tok::Ident(w) if !is_statement_keyword(w) => return self.word(t),
            Tok::Str(s) => {
                let mut s = s.clone();
                while let Tok::Str(more) = self.peek_kind(0)? {
                    s.push_str(more);
                    self.next()?;
                }
                ExprKind::Str(s)
            }
            Tok::Pv(pv) => ExprKind::Pv(pv.clone()),
            Tok::LParen => {
                let inner = self.expr()?;
                self.close_paren(pos)?;
                return Ok(inner);
            }
            Tok::LBracket => ExprKind::Ident(self.bracketed_address()?),
            _ => {
                let e = self.unexpected(&t, "an expression");
                return Err(match t.kind {
                    Tok::Semi | Tok::RParen | Tok::Comma => {
                        e.with_hint("an operand is missing before it")
                    }
                    _ => e,
                });
            }
        };
        Ok(Expr { kind, pos })
    }

    /// `[2001:db8::1]` after its `[`: the text, brackets included.
    fn bracketed_address(&mut self) -> Result<String, ScriptError> {
        let mut text = String::from("[");
        loop {
            let t = self.next()?;
            match &t.kind {
                Tok::RBracket => {
                    text.push(']');
                    return Ok(text);
                }
                Tok::Ident(_) | Tok::Num(_) | Tok::Colon | Tok::Dot => text.push_str(&t.text),
                _ => {
                    return Err(self
                        .unexpected(&t, "']'")
                        .with_hint("an IPv6 address is written [2001:db8::1]"))
                }
            }
        }
    }

    /// A number, a name, a call, or a dotted word written without spaces (`10.0.0.0/8`,
    /// `sip.example.com`, `gw-1.example.com`).
    fn word(&mut self, first: Token) -> Result<Expr, ScriptError> {
        let pos = first.pos;
        let mut text = first.text.clone();
        let mut parts = 1;
        let mut all_numeric = matches!(first.kind, Tok::Num(_));
        let mut last_ident = matches!(first.kind, Tok::Ident(_));
        loop {
            let sep = self.peek(0)?;
            let is_dot = sep.kind == Tok::Dot;
            let is_minus = sep.kind == Tok::Minus;
            if !(is_dot || is_minus) || sep.space_before {
                break;
            }
            let part = self.peek(1)?;
            if part.space_before {
                break;
            }
            let part_ident = matches!(part.kind, Tok::Ident(_));
            let part_num = matches!(part.kind, Tok::Num(_));
            // `a-b` is a hostname piece; `a-1` only when a dot follows (`gw-1.example.com`),
            // so that `src_port-1` stays a subtraction.
            let joins = if is_dot {
                part_ident || part_num
            } else if last_ident && part_ident {
                true
            } else if last_ident && part_num {
                let after = self.peek(2)?;
                after.kind == Tok::Dot && !after.space_before
            } else {
                false
            };
            if !joins {
                break;
            }
            let sep = self.next()?;
            let part = self.next()?;
            text.push_str(&sep.text);
            text.push_str(&part.text);
            parts += 1;
            all_numeric &= part_num;
            last_ident = part_ident;
        }
        if parts > 1 {
            if parts == 4
                && all_numeric
                && self.at_kind(&Tok::Slash)?
                && matches!(self.peek_kind(1)?, Tok::Num(_))
            {
                self.next()?;
                let bits = self.next()?;
                text.push('/');
                text.push_str(&bits.text);
            }
            return Ok(Expr {
                kind: ExprKind::Ident(text),
                pos,
            });
        }
        let kind = match first.kind {
            Tok::Num(text) => ExprKind::Int(self.int(&text, false, pos)?),
            Tok::Ident(name) if self.at_kind(&Tok::LParen)? => {
                let open = self.next()?;
                self.enter(open.pos)?;
                let mut args = Vec::new();
                if !self.eat(&Tok::RParen)? {
                    loop {
                        args.push(self.expr()?);
                        let t = self.next()?;
                        match t.kind {
                            Tok::Comma => {}
                            Tok::RParen => break,
                            _ => {
                                return Err(self.unexpected(&t, "',' or ')'").with_hint(format!(
                                    "the '(' of {name}( at {} is not closed",
                                    at(open.pos)
                                )))
                            }
                        }
                    }
                }
                self.leave();
                ExprKind::Call { name, args }
            }
            Tok::Ident(name) => ExprKind::Ident(name),
            _ => ExprKind::Ident(text),
        };
        Ok(Expr { kind, pos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{PvIndex, PvRef};

    fn parse(text: &str) -> Config {
        match parse_str("t.cfg", text, &Defines::new()) {
            Ok(c) => c,
            Err(e) => panic!("{}", e[0]),
        }
    }

    fn parse_err(text: &str) -> ScriptError {
        match parse_str("t.cfg", text, &Defines::new()) {
            Ok(c) => panic!("parsed: {:?}", c.items),
            Err(mut e) => {
                assert_eq!(e.len(), 1);
                e.remove(0)
            }
        }
    }

    /// The statements of the only route of `text`.
    fn body(text: &str) -> Vec<Stmt> {
        let c = parse(text);
        match c.items.into_iter().next() {
            Some(Item::Route { body, .. }) => body.stmts,
            other => panic!("not a route: {other:?}"),
        }
    }

    fn stmts(code: &str) -> Vec<Stmt> {
        body(&format!("request_route {{\n{code}\n}}"))
    }

    fn expr(code: &str) -> Expr {
        match stmts(&format!("$var(x) = {code};")).remove(0).kind {
            StmtKind::Assign { value, .. } => value,
            other => panic!("{other:?}"),
        }
    }

    /// An expression as text with explicit parentheses.
    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Int(n) => n.to_string(),
            ExprKind::Str(s) => format!("{s:?}"),
            ExprKind::Pv(p) => format!("${}", p.name),
            ExprKind::Ident(i) => i.clone(),
            ExprKind::Call { name, args } => format!(
                "{name}({})",
                args.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
            ExprKind::Unary { op, expr } => format!("{op:?}({})", show(expr)),
            ExprKind::Binary { op, left, right } => {
                format!("({} {op:?} {})", show(left), show(right))
            }
        }
    }

    fn p(line: u32, col: u32) -> (u32, u32) {
        (line, col)
    }

    fn at_of(e: &ScriptError) -> (u32, u32) {
        (e.pos.line, e.pos.col)
    }

    #[test]
    fn core_parameters_are_typed() {
        let c = parse(
            "debug=2\nlog_stderror=no\nlog_facility=LOG_LOCAL0\nalias=\"sip.example.com\"\nlisten=udp:127.0.0.1:5060 advertise 1.2.3.4:5060\nlisten=tcp:[::1]:5060;port=-1\nlog_prefix=\"{$mt $hdr(CSeq) $ci} \"\nx = \"a\" \"b\"\nenable_tls=Yes\nmpath=\"/usr/lib/\"\nmemlog = 0x10 # comment\n",
        );
        let values: Vec<(String, ParamValue)> = c
            .items
            .into_iter()
            .map(|i| match i {
                Item::Param { name, value, .. } => (name, value),
                other => panic!("{other:?}"),
            })
            .collect();
        let expect = vec![
            ("debug", ParamValue::Int(2)),
            ("log_stderror", ParamValue::Bool(false)),
            ("log_facility", ParamValue::Raw("LOG_LOCAL0".into())),
            ("alias", ParamValue::Str("sip.example.com".into())),
            (
                "listen",
                ParamValue::Raw("udp:127.0.0.1:5060 advertise 1.2.3.4:5060".into()),
            ),
            ("listen", ParamValue::Raw("tcp:[::1]:5060".into())),
            ("port", ParamValue::Int(-1)),
            (
                "log_prefix",
                ParamValue::Str("{$mt $hdr(CSeq) $ci} ".into()),
            ),
            ("x", ParamValue::Str("ab".into())),
            ("enable_tls", ParamValue::Bool(true)),
            ("mpath", ParamValue::Str("/usr/lib/".into())),
            ("memlog", ParamValue::Int(16)),
        ];
        let expect: Vec<(String, ParamValue)> = expect
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        assert_eq!(values, expect);
    }

    #[test]
    fn raw_values_collapse_space_and_drop_comments() {
        let c = parse("listen=udp:1.2.3.4:5060   /* c */  name \"s1\" // x\n");
        assert!(matches!(
            &c.items[0],
            Item::Param { value: ParamValue::Raw(r), .. } if r == "udp:1.2.3.4:5060 name \"s1\""
        ));
    }

    #[test]
    fn defines_expand_in_parameter_values() {
        let mut d = Defines::new();
        d.define("DBGLEVEL", Some("3"));
        d.define("IP", Some("10.1.2.3"));
        let c = parse_str("t.cfg", "debug=DBGLEVEL\nlisten=udp:IP:5060\n", &d).unwrap();
        assert!(matches!(
            &c.items[0],
            Item::Param {
                value: ParamValue::Int(3),
                ..
            }
        ));
        assert!(matches!(
            &c.items[1],
            Item::Param { value: ParamValue::Raw(r), .. } if r == "udp:10.1.2.3:5060"
        ));
    }

    #[test]
    fn custom_cfg_variables() {
        let c = parse("pstn.gw_ip = \"\" desc \"PSTN GW Address\"\nvoicemail.srv_port = 5060\n");
        match &c.items[0] {
            Item::CfgVar {
                group,
                name,
                value,
                desc,
                pos,
            } => {
                assert_eq!((group.as_str(), name.as_str()), ("pstn", "gw_ip"));
                assert_eq!(value, &ParamValue::Str(String::new()));
                assert_eq!(desc.as_deref(), Some("PSTN GW Address"));
                assert_eq!((pos.line, pos.col), (1, 1));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &c.items[1],
            Item::CfgVar {
                value: ParamValue::Int(5060),
                desc: None,
                ..
            }
        ));
    }

    #[test]
    fn modules_and_their_parameters() {
        let mut d = Defines::new();
        d.define("FLT_ACC", Some("1"));
        let c = parse_str(
            "t.cfg",
            "loadmodule \"tm.so\"\nloadmodule(\"sl\");\nmodparam(\"acc\", \"log_flag\", FLT_ACC)\nmodparam(\"acc\", \"log_extra\",\n \"a=$fU;\"\n \"b=$rU\")\nmodparam(\"nathelper|registrar\", \"received_avp\", \"$avp(RECEIVED)\")\nmodparam(\"x\", \"y\", -5)\nmodparam(\"auth_db\", \"calculate_ha1\", yes)\nmodparam(\"acc\", \"db_url\", DBURL)\n",
            &d,
        )
        .unwrap();
        let got: Vec<String> = c
            .items
            .iter()
            .map(|i| match i {
                Item::LoadModule { path, .. } => format!("load {path}"),
                Item::ModParam {
                    module,
                    param,
                    value,
                    ..
                } => format!("{module} {param} {value:?}"),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                "load tm.so",
                "load sl",
                "acc log_flag Int(1)",
                "acc log_extra Str(\"a=$fU;b=$rU\")",
                "nathelper|registrar received_avp Str(\"$avp(RECEIVED)\")",
                "x y Int(-5)",
                "auth_db calculate_ha1 Int(1)",
                "acc db_url Str(\"DBURL\")",
            ]
        );
    }

    #[test]
    fn route_kinds_and_names() {
        let c = parse(
            "request_route {}\nroute[RELAY] {}\nroute[5] {}\nroute[\"quoted\"] {}\nbranch_route[B] {}\nfailure_route[F] {}\nonreply_route[R] {}\nonreply_route {}\nonsend_route {}\nevent_route[xhttp:request] {}\nevent_route[tm:local-request] {}\nevent_route[usrloc:contact-expired] {}\n",
        );
        let got: Vec<(RouteKind, Option<String>)> = c
            .items
            .into_iter()
            .map(|i| match i {
                Item::Route { kind, name, .. } => (kind, name),
                other => panic!("{other:?}"),
            })
            .collect();
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            got,
            vec![
                (RouteKind::Request, None),
                (RouteKind::Request, s("RELAY")),
                (RouteKind::Request, s("5")),
                (RouteKind::Request, s("quoted")),
                (RouteKind::Branch, s("B")),
                (RouteKind::Failure, s("F")),
                (RouteKind::Reply, s("R")),
                (RouteKind::CoreReply, None),
                (RouteKind::OnSend, None),
                (RouteKind::Event, s("xhttp:request")),
                (RouteKind::Event, s("tm:local-request")),
                (RouteKind::Event, s("usrloc:contact-expired")),
            ]
        );
        let c = parse("route[0] {}\nreply_route {}\nonreply_route[0] {}\nroute {}\n");
        let kinds: Vec<(RouteKind, bool)> = c
            .items
            .iter()
            .map(|i| match i {
                Item::Route { kind, name, .. } => (*kind, name.is_none()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (RouteKind::Request, true),
                (RouteKind::CoreReply, true),
                (RouteKind::CoreReply, true),
                (RouteKind::Request, true)
            ]
        );
    }

    #[test]
    fn route_name_errors() {
        let e = parse_err("route[A] {}\nroute[A] {}\n");
        assert!(matches!(e.kind, ErrorKind::DuplicateRoute { ref name, .. } if name == "A"));
        assert_eq!(at_of(&e), p(2, 7));
        assert!(e.hint.unwrap().contains("1:7"));
        // Same name, different kinds: fine.
        parse("route[A] {}\nfailure_route[A] {}\n");
        let e = parse_err("event_route[foo] {}");
        assert!(matches!(e.kind, ErrorKind::BadRouteName(_)));
        let e = parse_err("route[] {}");
        assert!(matches!(e.kind, ErrorKind::BadRouteName(_)));
        let e = parse_err("reply_route[X] {}");
        assert!(matches!(e.kind, ErrorKind::BadRouteName(_)));
        let e = parse_err("route[A {}");
        assert!(matches!(e.kind, ErrorKind::UnexpectedToken { .. }));
        assert_eq!(at_of(&e), p(1, 9));
        let e = parse_err("route A {}");
        assert!(e.hint.unwrap().contains("brackets"));
    }

    #[test]
    fn statements() {
        let s = stmts(
            "route(REQINIT);\nforce_rport;\n;\nexit;\nexit(2);\ndrop;\nreturn;\nreturn -1;\nreturn(3);\nreturn $var(x);\n$du = \"sip:a\";\n$avp(a) := 1;\n$(avp(a)[*]) = $null;\nwhile ($var(i) < 3) { $var(i) = $var(i) + 1; }\n{ break; }",
        );
        let kinds: Vec<String> = s
            .iter()
            .map(|s| match &s.kind {
                StmtKind::Expr(e) => format!("expr {}", show(e)),
                StmtKind::Assign { target, value } => {
                    format!("${}{:?} = {}", target.name, target.index, show(value))
                }
                StmtKind::Return(v) => format!("return {:?}", v.as_ref().map(show)),
                StmtKind::Exit(v) => format!("exit {:?}", v.as_ref().map(show)),
                StmtKind::Drop(v) => format!("drop {:?}", v.as_ref().map(show)),
                StmtKind::While { cond, body } => {
                    format!("while {} {}", show(cond), body.stmts.len())
                }
                StmtKind::Block(b) => format!("block {}", b.stmts.len()),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "expr route(REQINIT)",
                "expr force_rport()",
                "exit None",
                "exit Some(\"2\")",
                "drop None",
                "return None",
                "return Some(\"-1\")",
                "return Some(\"3\")",
                "return Some(\"$var\")",
                "$duNone = \"sip:a\"",
                "$avpNone = 1",
                "$avpSome(All) = $null",
                "while ($var Lt 3) 1",
                "block 1",
            ]
        );
        assert_eq!(s[0].pos.line, 2);
    }

    #[test]
    fn if_else_chains_and_single_statement_bodies() {
        let s =
            stmts("if (!has_totag()) return;\nif (a) { x(); } else if (b) y(); else { z(); w(); }");
        let StmtKind::If { cond, then, els } = &s[0].kind else {
            panic!()
        };
        assert_eq!(show(cond), "Not(has_totag())");
        assert_eq!(then.stmts.len(), 1);
        assert!(matches!(then.stmts[0].kind, StmtKind::Return(None)));
        assert!(els.is_none());
        let StmtKind::If { els: Some(els), .. } = &s[1].kind else {
            panic!()
        };
        let StmtKind::If {
            els: Some(last), ..
        } = &els.stmts[0].kind
        else {
            panic!()
        };
        assert_eq!(last.stmts.len(), 2);
    }

    #[test]
    fn switch_with_int_string_regex_and_default() {
        let s = stmts(
            "switch ($var(rc)) {\n case -1:\n case -3:\n  send_reply(\"404\", \"Not Found\");\n  exit;\n case \"a\" \"b\":\n  break;\n case /\"^x\":\n default:\n  x();\n}",
        );
        let StmtKind::Switch { subject, cases } = &s[0].kind else {
            panic!()
        };
        assert_eq!(show(subject), "$var");
        let labels: Vec<(Option<CaseLabel>, usize)> = cases
            .iter()
            .map(|c| (c.label.clone(), c.body.len()))
            .collect();
        assert_eq!(
            labels,
            vec![
                (Some(CaseLabel::Int(-1)), 0),
                (Some(CaseLabel::Int(-3)), 2),
                (Some(CaseLabel::Str("ab".into())), 1),
                (Some(CaseLabel::Regex("^x".into())), 0),
                (None, 1),
            ]
        );
        assert_eq!(cases[1].pos.line, 4);
        let e = parse_err("route { switch ($x) { x(); } }");
        assert!(matches!(e.kind, ErrorKind::UnexpectedToken { .. }));
    }

    #[test]
    fn precedence_is_kamailios() {
        assert_eq!(
            show(&expr("1 + 2 * 3 - 4 / 2 % 3")),
            "((1 Add (2 Mul 3)) Sub ((4 Div 2) Mod 3))"
        );
        assert_eq!(
            show(&expr("a || b && c | d & e ^ f << g == h < i + j")),
            "(a Or (b And (c BitOr (d BitAnd (e BitXor (f Shl (g Eq (h Lt (i Add j)))))))))"
        );
        assert_eq!(
            show(&expr("$a == 1 or not $b != 2 and $c =~ \"x\"")),
            "(($a Eq 1) Or ((Not($b) Ne 2) And ($c Match \"x\")))"
        );
        assert_eq!(show(&expr("-5")), "-5");
        assert_eq!(show(&expr("- $x")), "Neg($x)");
        assert_eq!(show(&expr("~1 + -(2)")), "(BitNot(1) Add -2)");
        assert_eq!(
            show(&expr(
                "defined $avp(a) && strlen($var(x)) > 2 || strempty($rU)"
            )),
            "((Defined($avp) And (Strlen($var) Gt 2)) Or Strempty($rU))"
        );
        assert_eq!(show(&expr("(1 + 2) * 3")), "((1 Add 2) Mul 3)");
        assert_eq!(show(&expr("1 >= 2 != 3 <= 4")), "((1 Ge 2) Ne (3 Le 4))");
        assert_eq!(show(&expr("8 >> 1 !~ \"a\"")), "(8 Shr (1 NotMatch \"a\"))");
        assert_eq!(show(&expr("$x & 1 == 1")), "($x BitAnd (1 Eq 1))");
        assert_eq!(show(&expr("7 mod 4")), "(7 Mod 4)");
        assert_eq!(show(&expr("2 << 3 >> 1")), "(2 Shl (3 Shr 1))");
    }

    #[test]
    fn primaries() {
        assert_eq!(show(&expr("0x1f")), "31");
        assert_eq!(show(&expr("\"a\" 'b'")), "\"ab\"");
        assert_eq!(show(&expr("f()")), "f()");
        assert_eq!(show(&expr("f(\"a\", 1, $var(x))")), "f(\"a\", 1, $var)");
        assert_eq!(show(&expr("myself")), "myself");
        assert_eq!(show(&expr("127.0.0.1")), "127.0.0.1");
        assert_eq!(show(&expr("10.0.0.0/8")), "10.0.0.0/8");
        assert_eq!(show(&expr("[::1]")), "[::1]");
        assert_eq!(show(&expr("[2001:db8::fe80]")), "[2001:db8::fe80]");
        assert_eq!(show(&expr("sip.example.com")), "sip.example.com");
        assert_eq!(show(&expr("gw-1.example.com")), "gw-1.example.com");
        assert_eq!(show(&expr("a - b")), "(a Sub b)");
        assert_eq!(show(&expr("src_port-1")), "(src_port Sub 1)");
        assert_eq!(show(&expr("a-b")), "a-b");
        assert_eq!(show(&expr("5-3")), "(5 Sub 3)");
        assert_eq!(show(&expr("$x / 2")), "($x Div 2)");
        assert_eq!(show(&expr("10.0.0.1 / 2")), "10.0.0.1/2");
    }

    #[test]
    fn pseudo_variables_in_expressions() {
        let e = expr("$(hdr(Via)[-1]{via.branch})");
        let ExprKind::Pv(PvRef {
            name,
            inner,
            index,
            transforms,
            ..
        }) = e.kind
        else {
            panic!()
        };
        assert_eq!(name, "hdr");
        assert_eq!(inner.as_deref(), Some("Via"));
        assert_eq!(index, Some(PvIndex::Int(-1)));
        assert_eq!(transforms[0].name, "branch");
    }

    #[test]
    fn stock_conditions() {
        let s = stmts(
            "if(is_method(\"OPTIONS\") && uri==myself && $rU==$null) { exit; }\nif(src_ip!=127.0.0.1) { exit; }\nif(status=~\"[12][0-9][0-9]\") { exit; }\nif (!(isflagset(5) || isbflagset(6))) return;\nif(!($rU=~\"^(\\+|00)[1-9][0-9]{3,20}$\")) return;\n$ru = \"sip:\" + $rU + \"@\" + $sel(cfg_get.pstn.gw_ip) + \":\"\n + $sel(cfg_get.pstn.gw_port);",
        );
        assert_eq!(s.len(), 6);
        let StmtKind::If { cond, .. } = &s[1].kind else {
            panic!()
        };
        assert_eq!(show(cond), "(src_ip Ne 127.0.0.1)");
    }

    #[test]
    fn syntax_errors_point_at_the_fault() {
        let e = parse_err("route {\n  f()\n}");
        assert_eq!(e.kind, ErrorKind::MissingSemicolon);
        assert_eq!(at_of(&e), p(2, 6));
        assert!(e.to_string().contains("hint"));

        let e = parse_err("route {\n  if (a) { f(); }\n");
        assert_eq!(e.kind, ErrorKind::UnbalancedBrace);
        assert_eq!(at_of(&e), p(1, 7));

        // The if's block is closed by the '}' of line 4: the route's block is the open one.
        let e = parse_err("route {\n  if (a) {\n f();\n}\nroute[X] {\n}\n");
        assert_eq!(e.kind, ErrorKind::UnbalancedBrace);
        assert_eq!(at_of(&e), p(1, 7));
        assert!(e.hint.unwrap().contains("5:1"));
        let e = parse_err("route {\n  if (a) {\n f();\n\nfailure_route[X] {\n}\n");
        assert_eq!(at_of(&e), p(2, 10));

        let e = parse_err("route { f(); }\n}");
        assert_eq!(e.kind, ErrorKind::UnbalancedBrace);
        assert_eq!(at_of(&e), p(2, 1));

        let e = parse_err("route {\n  else { f(); }\n}");
        assert!(matches!(e.kind, ErrorKind::UnexpectedToken { .. }));
        assert_eq!(at_of(&e), p(2, 3));

        let e = parse_err("route {\n  $var(x) = 1 + ;\n}");
        assert!(
            matches!(e.kind, ErrorKind::UnexpectedToken { ref expected, .. } if expected == "an expression")
        );
        assert_eq!(at_of(&e), p(2, 17));

        let e = parse_err("route {\n  $var(x) = 12abc;\n}");
        assert_eq!(e.kind, ErrorKind::BadNumber("12abc".into()));
        assert_eq!(at_of(&e), p(2, 13));

        let e = parse_err("route {\n  f(1,;\n}");
        assert!(matches!(e.kind, ErrorKind::UnexpectedToken { .. }));

        let e = parse_err("route {\n  if (a { f(); }\n}");
        assert!(e.hint.unwrap().contains("2:6"));

        let e = parse_err("xlog(\"x\");");
        assert!(e.hint.unwrap().contains("route block"));

        let e = parse_err("debug=\n2");
        assert!(matches!(e.kind, ErrorKind::UnexpectedToken { .. }));

        let e = parse_err("route {");
        assert_eq!(e.kind, ErrorKind::UnbalancedBrace);

        let e = parse_err("route { f(); ");
        assert_eq!(at_of(&e), p(1, 7));

        let e = parse_err("route { case 1: f(); }");
        assert!(e.hint.unwrap().contains("switch"));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("route {{ {} }}", "{".repeat(MAX_DEPTH + 10));
        let e = parse_err(&deep);
        assert!(matches!(e.kind, ErrorKind::NestingTooDeep { .. }), "{e}");

        let deep = format!("route {{ $x = {}1; }}", "(".repeat(100_000));
        let e = parse_err(&deep);
        assert!(matches!(e.kind, ErrorKind::NestingTooDeep { .. }), "{e}");

        let deep = format!("route {{ {} f(); }}", "if (a) ".repeat(100_000));
        let e = parse_err(&deep);
        assert!(matches!(e.kind, ErrorKind::NestingTooDeep { .. }), "{e}");

        let deep = format!("route {{ $x = {}1; }}", "!-~".repeat(10_000));
        let e = parse_err(&deep);
        assert!(matches!(e.kind, ErrorKind::NestingTooDeep { .. }), "{e}");

        // Just under the limit still parses: the braces, the call statement, its operand and
        // its argument list each take a level.
        let ok = format!(
            "route {{ {} f(); {} }}",
            "{".repeat(MAX_DEPTH - 3),
            "}".repeat(MAX_DEPTH - 3)
        );
        parse(&ok);
        let ok = format!(
            "route {{ $x = {}1{}; }}",
            "(".repeat(MAX_DEPTH / 2 - 2),
            ")".repeat(MAX_DEPTH / 2 - 2)
        );
        parse(&ok);
    }

    #[test]
    fn positions_of_items_and_files() {
        let c = parse("\n  request_route {\n    f();\n  }\n");
        let Item::Route { pos, body, .. } = &c.items[0] else {
            panic!()
        };
        assert_eq!((pos.line, pos.col), (2, 3));
        assert_eq!((body.pos.line, body.pos.col), (2, 17));
        assert_eq!((body.stmts[0].pos.line, body.stmts[0].pos.col), (3, 5));
        assert_eq!(c.files, vec!["t.cfg".to_string()]);
    }

    #[test]
    fn loadmodule_then_ifdef_mod() {
        let c = parse(
            "loadmodule \"xlog.so\"\n#!ifdef MOD_xlog\nroute { xlog(\"x\"); }\n#!else\nroute { f(); }\n#!endif\n",
        );
        let Item::Route { body, .. } = &c.items[1] else {
            panic!()
        };
        let StmtKind::Expr(e) = &body.stmts[0].kind else {
            panic!()
        };
        assert_eq!(show(e), "xlog(\"x\")");
    }
}
