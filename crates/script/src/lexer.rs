//! Turns the text of one file (or of one define value) into tokens.
//!
//! Comments (`# ...`, `// ...`, `/* ... */`) and white space are skipped, but each token
//! records whether white space or a line end came before it: core parameter values end at the
//! end of their line, and `10.0.0.0/8` or `sip.example.com` are only read as one word when
//! nothing separates their pieces.
//!
//! A line whose first non-blank characters are `#!` or `!!` followed by a known directive
//! name is a preprocessor directive: it comes out whole as a [`Tok::Directive`] (with the rest
//! of its line, continued by a trailing backslash for the `define` family). Any other `#!`
//! starts a comment, as in Kamailio.

// `ScriptError` is large (its public fields are fixed: kind, file, pos, hint), and a config is
// parsed once at load, so returning it by value costs nothing that matters.
#![allow(clippy::result_large_err)]

use crate::ast::{Pos, PvRef};
use crate::error::{ErrorKind, ScriptError};
use crate::format::PvScanner;

/// Directive names recognised after `#!` / `!!` at the start of a line.
const DIRECTIVES: &[&str] = &[
    "KAMAILIO",
    "SER",
    "MAXCOMPAT",
    "ALL",
    "OPENSER",
    "define",
    "def",
    "trydef",
    "trydefine",
    "redefine",
    "redef",
    "undef",
    "tryundef",
    "ifdef",
    "ifndef",
    "else",
    "endif",
    "subst",
    "substdef",
    "substdefs",
    "defenv",
    "defenvs",
    "trydefenv",
    "trydefenvs",
    "include_file",
    "import_file",
    "ifexp",
    "defexp",
    "defexps",
];

/// Directives whose value continues on the next line after a trailing backslash.
fn continues_with_backslash(name: &str) -> bool {
    matches!(
        name,
        "define" | "def" | "trydef" | "trydefine" | "redefine" | "redef"
    )
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// `[A-Za-z_][A-Za-z0-9_]*`.
    Ident(String),
    /// A word starting with a digit (`5060`, `0x1F`, `12abc`): checked by whoever needs a
    /// number, so that `[fe80::1]` or `1and1.com` can be read as text.
    Num(String),
    /// A quoted string, escapes processed.
    Str(String),
    Pv(PvRef),
    /// A preprocessor directive line: name without `#!`, rest of the line trimmed.
    Directive {
        name: String,
        arg: String,
    },
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Semi,
    Comma,
    Colon,
    Dot,
    /// `=`
    Assign,
    /// `:=`
    ColonAssign,
    EqEq,
    Ne,
    /// `=~`
    Match,
    /// `!~`
    NotMatch,
    Lt,
    Le,
    Gt,
    Ge,
    Shl,
    Shr,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Bang,
    Tilde,
    AndAnd,
    OrOr,
    Amp,
    Pipe,
    Caret,
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: Tok,
    pub pos: Pos,
    /// The position just after the token.
    pub end: Pos,
    /// The source text of the token (for strings, with the quotes and escapes as written).
    pub text: String,
    /// White space or a comment comes before the token.
    pub space_before: bool,
    /// A line ends between the previous token and this one.
    pub nl_before: bool,
}

impl Token {
    /// How the token is named in error messages.
    pub(crate) fn describe(&self) -> String {
        let short = |s: &str| -> String {
            let mut out: String = s.chars().take(24).collect();
            if s.chars().count() > 24 {
                out.push_str("...");
            }
            out
        };
        match &self.kind {
            Tok::Ident(name) => format!("'{name}'"),
            Tok::Num(text) => format!("number '{}'", short(text)),
            Tok::Str(_) => format!("string {}", short(&self.text)),
            Tok::Pv(_) => format!("pseudo-variable '{}'", short(&self.text)),
            Tok::Directive { name, .. } => format!("directive '#!{name}'"),
            Tok::Eof => "end of file".to_string(),
            _ => format!("'{}'", self.text),
        }
    }

    pub(crate) fn is_ident(&self, word: &str) -> bool {
        matches!(&self.kind, Tok::Ident(name) if name == word)
    }
}

#[derive(Debug)]
pub(crate) struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: u32,
    col: u32,
    file: u32,
    file_name: String,
    /// Only blanks since the last line end.
    at_line_start: bool,
    /// Directives are recognised (not in define values).
    directives: bool,
    /// For define values: every token and error gets this position (the use of the define).
    fixed: Option<(Pos, Pos)>,
}

impl Lexer {
    /// A lexer for the text of a file (a leading byte-order mark is skipped).
    pub(crate) fn new(text: &str, file: u32, file_name: &str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Lexer {
            chars: text.chars().collect(),
            i: 0,
            line: 1,
            col: 1,
            file,
            file_name: file_name.to_string(),
            at_line_start: true,
            directives: true,
            fixed: None,
        }
    }

    /// A lexer for a piece of text that stands at `pos`..`end` of a file (a define value or a
    /// directive argument): no directives, every token placed at `pos`.
    pub(crate) fn fragment(text: &str, file_name: &str, pos: Pos, end: Pos) -> Self {
        Lexer {
            chars: text.chars().collect(),
            i: 0,
            line: 1,
            col: 1,
            file: pos.file,
            file_name: file_name.to_string(),
            at_line_start: false,
            directives: false,
            fixed: Some((pos, end)),
        }
    }

    fn pos(&self) -> Pos {
        match self.fixed {
            Some((pos, _)) => pos,
            None => Pos {
                file: self.file,
                line: self.line,
                col: self.col,
            },
        }
    }

    fn peek(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.i).copied()?;
        self.i += 1;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    fn slice(&self, from: usize, to: usize) -> String {
        self.chars
            .get(from..to)
            .map(|s| s.iter().collect())
            .unwrap_or_default()
    }

    fn error(&self, kind: ErrorKind, pos: Pos) -> ScriptError {
        ScriptError::new(kind, self.file_name.clone(), pos)
    }

    /// The directive name after `#!`/`!!` at the current offset, if it is a known one.
    fn directive_name_here(&self) -> Option<String> {
        let first = self.peek(0)?;
        let second = self.peek(1)?;
        if !((first == '#' || first == '!') && second == '!') {
            return None;
        }
        let name: String = self
            .chars
            .iter()
            .skip(self.i + 2)
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .collect();
        DIRECTIVES.contains(&name.as_str()).then_some(name)
    }

    /// Skips white space and comments. Stops before a directive at the start of a line.
    /// Returns (white space seen, line end seen).
    fn skip_trivia(&mut self) -> Result<(bool, bool), ScriptError> {
        let mut space = false;
        let mut nl = false;
        loop {
            match self.peek(0) {
                Some('\n') => {
                    self.bump();
                    space = true;
                    nl = true;
                    self.at_line_start = true;
                }
                Some(c) if c.is_whitespace() => {
                    self.bump();
                    space = true;
                }
                Some('#') | Some('!')
                    if self.directives
                        && self.at_line_start
                        && self.directive_name_here().is_some() =>
                {
                    return Ok((space, nl));
                }
                Some('#') => {
                    self.skip_line();
                    space = true;
                }
                Some('/') if self.peek(1) == Some('/') => {
                    self.skip_line();
                    space = true;
                }
                Some('/') if self.peek(1) == Some('*') => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match self.peek(0) {
                            None => {
                                return Err(self
                                    .error(ErrorKind::UnterminatedComment, start)
                                    .with_hint("this '/*' has no matching '*/'"))
                            }
                            Some('*') if self.peek(1) == Some('/') => {
                                self.bump();
                                self.bump();
                                break;
                            }
                            Some(c) => {
                                if c == '\n' {
                                    nl = true;
                                }
                                self.bump();
                            }
                        }
                    }
                    space = true;
                    self.at_line_start = false;
                }
                _ => return Ok((space, nl)),
            }
        }
    }

    /// Skips to the end of the line (the line end itself is left).
    fn skip_line(&mut self) {
        while self.peek(0).is_some_and(|c| c != '\n') {
            self.bump();
        }
    }

    /// The next token.
    pub(crate) fn next_token(&mut self) -> Result<Token, ScriptError> {
        let (space_before, nl_before) = self.skip_trivia()?;
        let start_i = self.i;
        let pos = self.pos();
        if self.directives && self.at_line_start {
            if let Some(name) = self.directive_name_here() {
                return Ok(self.directive(name, pos, space_before, nl_before));
            }
        }
        self.at_line_start = false;
        let Some(c) = self.peek(0) else {
            return Ok(self.token(Tok::Eof, start_i, pos, space_before, nl_before));
        };
        let kind = if c.is_ascii_alphabetic() || c == '_' {
            let word = self.word();
            Tok::Ident(word)
        } else if c.is_ascii_digit() {
            let word = self.word();
            Tok::Num(word)
        } else if c == '"' || c == '\'' {
            Tok::Str(self.string(c, pos)?)
        } else if c == '$' {
            Tok::Pv(self.pseudo_variable(pos)?)
        } else {
            self.punct(c, pos)?
        };
        Ok(self.token(kind, start_i, pos, space_before, nl_before))
    }

    fn token(
        &self,
        kind: Tok,
        start_i: usize,
        pos: Pos,
        space_before: bool,
        nl_before: bool,
    ) -> Token {
        let end = match self.fixed {
            Some((_, end)) => end,
            None => self.pos(),
        };
        Token {
            kind,
            pos,
            end,
            text: self.slice(start_i, self.i),
            space_before,
            nl_before,
        }
    }

    fn word(&mut self) -> String {
        let mut w = String::new();
        while let Some(c) = self
            .peek(0)
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            w.push(c);
            self.bump();
        }
        w
    }

    /// A quoted string opened by `quote` at `pos`: `\n \r \t \\ \" \'` are escapes, a
    /// backslash before any other character is kept with it. Strings may span lines.
    fn string(&mut self, quote: char, pos: Pos) -> Result<String, ScriptError> {
        self.bump();
        let mut value = String::new();
        loop {
            match self.peek(0) {
                None => {
                    return Err(self
                        .error(ErrorKind::UnterminatedString, pos)
                        .with_hint(format!("the string opened here has no closing {quote}")))
                }
                Some('\\') => {
                    self.bump();
                    match self.peek(0) {
                        Some('n') => value.push('\n'),
                        Some('r') => value.push('\r'),
                        Some('t') => value.push('\t'),
                        Some(c @ ('\\' | '"' | '\'')) => value.push(c),
                        Some(c) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => continue,
                    }
                    self.bump();
                }
                Some(c) if c == quote => {
                    self.bump();
                    return Ok(value);
                }
                Some(c) => {
                    value.push(c);
                    self.bump();
                }
            }
        }
    }

    fn pseudo_variable(&mut self, pos: Pos) -> Result<PvRef, ScriptError> {
        let rest = self.chars.get(self.i..).unwrap_or_default();
        let scanner = PvScanner::new(rest, pos);
        let scanned = scanner.pv(0, 0);
        let (pv, len) = match scanned {
            Ok(Some(found)) => found,
            Ok(None) => {
                let text: String = rest.iter().take(2).collect();
                return Err(self
                    .error(ErrorKind::BadPseudoVariable(text), pos)
                    .with_hint("a pseudo-variable is $name, $name(...) or $(...)"));
            }
            Err(e) => {
                let mut err = scanner.error(e, &self.file_name);
                if self.fixed.is_some() {
                    err.pos = pos;
                }
                return Err(err);
            }
        };
        for _ in 0..len {
            self.bump();
        }
        Ok(pv)
    }

    fn punct(&mut self, c: char, pos: Pos) -> Result<Tok, ScriptError> {
        let next = self.peek(1);
        let (kind, len) = match (c, next) {
            (':', Some('=')) => (Tok::ColonAssign, 2),
            ('=', Some('=')) => (Tok::EqEq, 2),
            ('=', Some('~')) => (Tok::Match, 2),
            ('!', Some('=')) => (Tok::Ne, 2),
            ('!', Some('~')) => (Tok::NotMatch, 2),
            ('<', Some('=')) => (Tok::Le, 2),
            ('>', Some('=')) => (Tok::Ge, 2),
            ('<', Some('<')) => (Tok::Shl, 2),
            ('>', Some('>')) => (Tok::Shr, 2),
            ('&', Some('&')) => (Tok::AndAnd, 2),
            ('|', Some('|')) => (Tok::OrOr, 2),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('{', _) => (Tok::LBrace, 1),
            ('}', _) => (Tok::RBrace, 1),
            ('[', _) => (Tok::LBracket, 1),
            (']', _) => (Tok::RBracket, 1),
            (';', _) => (Tok::Semi, 1),
            (',', _) => (Tok::Comma, 1),
            (':', _) => (Tok::Colon, 1),
            ('.', _) => (Tok::Dot, 1),
            ('=', _) => (Tok::Assign, 1),
            ('<', _) => (Tok::Lt, 1),
            ('>', _) => (Tok::Gt, 1),
            ('+', _) => (Tok::Plus, 1),
            ('-', _) => (Tok::Minus, 1),
            ('*', _) => (Tok::Star, 1),
            ('/', _) => (Tok::Slash, 1),
            ('%', _) => (Tok::Percent, 1),
            ('!', _) => (Tok::Bang, 1),
            ('~', _) => (Tok::Tilde, 1),
            ('&', _) => (Tok::Amp, 1),
            ('|', _) => (Tok::Pipe, 1),
            ('^', _) => (Tok::Caret, 1),
            _ => {
                let err = self.error(ErrorKind::UnexpectedChar(c), pos);
                return Err(match c {
                    '@' => err
                        .with_hint("select syntax (@...) is not supported; use $sel(...) instead"),
                    '\\' => err.with_hint("a backslash is only meaningful inside a string"),
                    '`' => err.with_hint("strings are quoted with \" or '"),
                    _ => err,
                });
            }
        };
        for _ in 0..len {
            self.bump();
        }
        Ok(kind)
    }

    /// Reads the directive at the current offset (known to be one).
    fn directive(&mut self, name: String, pos: Pos, space_before: bool, nl_before: bool) -> Token {
        let start_i = self.i;
        for _ in 0..(2 + name.chars().count()) {
            self.bump();
        }
        let mut arg = String::new();
        loop {
            let mut line = String::new();
            while let Some(c) = self.peek(0).filter(|c| *c != '\n') {
                line.push(c);
                self.bump();
            }
            let trimmed = line.trim_end();
            if continues_with_backslash(&name) && trimmed.ends_with('\\') && self.peek(0).is_some()
            {
                arg.push_str(trimmed.strip_suffix('\\').unwrap_or(trimmed));
                arg.push('\n');
                self.bump();
                continue;
            }
            arg.push_str(&line);
            break;
        }
        self.token(
            Tok::Directive {
                name,
                arg: arg.trim().to_string(),
            },
            start_i,
            pos,
            space_before,
            nl_before,
        )
    }

    /// In a false `#!ifdef` branch: skips whole lines up to the next directive at the start of
    /// a line and returns it, or `None` at the end of the text. Nothing else is read (an
    /// unterminated string or comment in a skipped branch is not an error).
    pub(crate) fn skip_inactive(&mut self) -> Option<Token> {
        // The current line is the directive that started the skipping: leave it.
        self.skip_line();
        loop {
            self.bump()?; // the line end
            while matches!(self.peek(0), Some(c) if c != '\n' && c.is_whitespace()) {
                self.bump();
            }
            if let Some(name) = self.directive_name_here() {
                let pos = self.pos();
                self.at_line_start = true;
                return Some(self.directive(name, pos, true, true));
            }
            self.skip_line();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(text: &str) -> Result<Vec<Token>, ScriptError> {
        let mut lx = Lexer::new(text, 0, "t.cfg");
        let mut out = Vec::new();
        loop {
            let t = lx.next_token()?;
            if t.kind == Tok::Eof {
                return Ok(out);
            }
            out.push(t);
        }
    }

    fn kinds(text: &str) -> Vec<Tok> {
        lex(text).unwrap().into_iter().map(|t| t.kind).collect()
    }

    fn ident(s: &str) -> Tok {
        Tok::Ident(s.to_string())
    }

    #[test]
    fn words_numbers_and_operators() {
        assert_eq!(
            kinds("if(a==0x1F&&b!=2||c=~d!~e<=f>=g<<h>>i:=j)"),
            vec![
                ident("if"),
                Tok::LParen,
                ident("a"),
                Tok::EqEq,
                Tok::Num("0x1F".into()),
                Tok::AndAnd,
                ident("b"),
                Tok::Ne,
                Tok::Num("2".into()),
                Tok::OrOr,
                ident("c"),
                Tok::Match,
                ident("d"),
                Tok::NotMatch,
                ident("e"),
                Tok::Le,
                ident("f"),
                Tok::Ge,
                ident("g"),
                Tok::Shl,
                ident("h"),
                Tok::Shr,
                ident("i"),
                Tok::ColonAssign,
                ident("j"),
                Tok::RParen,
            ]
        );
    }

    #[test]
    fn comments_are_skipped_and_recorded_as_space() {
        let toks = lex("a # one\nb // two\nc /* three\n */ d/**/e").unwrap();
        let names: Vec<&str> = toks.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(names, vec!["a", "b", "c", "d", "e"]);
        assert!(toks[1].nl_before && toks[2].nl_before && toks[3].nl_before);
        assert!(!toks[4].nl_before && toks[4].space_before);
    }

    #[test]
    fn strings_process_escapes_and_keep_unknown_ones() {
        assert_eq!(
            kinds(r#""a\r\n\t\\\"b" 'c\'d' "\d\.""#),
            vec![
                Tok::Str("a\r\n\t\\\"b".into()),
                Tok::Str("c'd".into()),
                Tok::Str("\\d\\.".into())
            ]
        );
        assert_eq!(kinds("\"two\nlines\""), vec![Tok::Str("two\nlines".into())]);
    }

    #[test]
    fn string_token_text_is_the_source() {
        let toks = lex(r#"x="a\nb""#).unwrap();
        assert_eq!(toks[2].text, r#""a\nb""#);
    }

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let toks = lex("a\n\tbb  c").unwrap();
        let at: Vec<(u32, u32)> = toks.iter().map(|t| (t.pos.line, t.pos.col)).collect();
        assert_eq!(at, vec![(1, 1), (2, 2), (2, 6)]);
        assert_eq!((toks[1].end.line, toks[1].end.col), (2, 4));
    }

    #[test]
    fn pseudo_variables_are_single_tokens() {
        let toks = lex("$var(x) = $(avp(a)[*]);").unwrap();
        assert!(matches!(&toks[0].kind, Tok::Pv(p) if p.name == "var"));
        assert!(matches!(&toks[2].kind, Tok::Pv(p) if p.name == "avp"));
        assert_eq!(toks[2].text, "$(avp(a)[*])");
        assert_eq!(toks[3].kind, Tok::Semi);
    }

    #[test]
    fn directives_only_at_line_start() {
        let toks = lex("  #!define X 1\nx #!define Y 2\n!!ifdef Z\n#!nope\n#!endif # c").unwrap();
        let kinds: Vec<&Tok> = toks.iter().map(|t| &t.kind).collect();
        assert_eq!(
            kinds,
            vec![
                &Tok::Directive {
                    name: "define".into(),
                    arg: "X 1".into()
                },
                &ident("x"),
                &Tok::Directive {
                    name: "ifdef".into(),
                    arg: "Z".into()
                },
                &Tok::Directive {
                    name: "endif".into(),
                    arg: "# c".into()
                },
            ]
        );
        assert_eq!((toks[0].pos.line, toks[0].pos.col), (1, 3));
    }

    #[test]
    fn define_value_continues_after_backslash() {
        let toks = lex("#!define X a \\\n  b\\\n c\nd").unwrap();
        assert_eq!(
            toks[0].kind,
            Tok::Directive {
                name: "define".into(),
                arg: "X a \n  b\n c".into()
            }
        );
        assert_eq!(toks[1].pos.line, 4);
    }

    #[test]
    fn double_bang_not_followed_by_a_directive_is_two_nots() {
        assert_eq!(kinds("!!x"), vec![Tok::Bang, Tok::Bang, ident("x")]);
    }

    #[test]
    fn skipping_reads_only_directives() {
        let mut lx = Lexer::new("#!ifdef X\n\"open /* x\n  #!else\ny", 0, "t.cfg");
        let first = lx.next_token().unwrap();
        assert!(matches!(first.kind, Tok::Directive { .. }));
        let d = lx.skip_inactive().unwrap();
        assert!(matches!(&d.kind, Tok::Directive { name, .. } if name == "else"));
        assert_eq!((d.pos.line, d.pos.col), (3, 3));
        assert!(lx.next_token().unwrap().is_ident("y"));
        assert!(lx.skip_inactive().is_none());
    }

    #[test]
    fn lexical_errors_point_at_the_start() {
        let e = lex("a\n  \"abc").unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnterminatedString);
        assert_eq!((e.pos.line, e.pos.col), (2, 3));

        let e = lex("a /* b\n c").unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnterminatedComment);
        assert_eq!((e.pos.line, e.pos.col), (1, 3));

        let e = lex("x = @cfg_get.a;").unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnexpectedChar('@'));
        assert!(e.hint.unwrap().contains("select"));

        let e = lex("x = $ ;").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadPseudoVariable(_)));
        assert_eq!((e.pos.line, e.pos.col), (1, 5));
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_skipped() {
        let toks = lex("\u{feff}#!define X 1\nx").unwrap();
        assert!(matches!(&toks[0].kind, Tok::Directive { name, .. } if name == "define"));
        assert_eq!((toks[0].pos.line, toks[0].pos.col), (1, 1));
    }

    #[test]
    fn fragments_place_every_token_at_the_use() {
        let at = Pos {
            file: 2,
            line: 7,
            col: 9,
        };
        let mut lx = Lexer::fragment("\"mysql://x\" 5 # c", "f.cfg", at, at);
        let a = lx.next_token().unwrap();
        let b = lx.next_token().unwrap();
        assert_eq!(a.kind, Tok::Str("mysql://x".into()));
        assert_eq!(b.kind, Tok::Num("5".into()));
        assert_eq!(a.pos, at);
        assert_eq!(b.pos, at);
        assert_eq!(lx.next_token().unwrap().kind, Tok::Eof);
    }
}
