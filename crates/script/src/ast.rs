//! The syntax tree of a parsed config, before names are resolved.
//!
//! Everything carries a [`Pos`] so that the compile step (which resolves functions and
//! pseudo-variables against the loaded modules) can report `file:line:col`.

use std::fmt;

/// A position in the config: which file (index into [`Config::files`]), 1-based line and
/// column (columns count characters, a tab is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Pos {
    pub file: u32,
    pub line: u32,
    pub col: u32,
}

/// A parsed config: the files read (main file first, then includes in the order met) and the
/// top-level items in source order.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub files: Vec<String>,
    pub items: Vec<Item>,
}

impl Config {
    /// `file:line:col` for a position of this config.
    pub fn locate(&self, pos: Pos) -> Located<'_> {
        Located {
            file: self
                .files
                .get(pos.file as usize)
                .map_or("<config>", String::as_str),
            pos,
        }
    }
}

/// Displays as `file:line:col`.
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    pub file: &'a str,
    pub pos: Pos,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.pos.line, self.pos.col)
    }
}

#[derive(Debug, Clone)]
pub enum Item {
    /// `name = value` (core parameter such as `debug=2`, `listen=udp:127.0.0.1:5060`).
    Param {
        name: String,
        value: ParamValue,
        pos: Pos,
    },
    /// `group.name = value [desc "text"]` (custom cfg variables, Kamailio's `cfg_get`).
    CfgVar {
        group: String,
        name: String,
        value: ParamValue,
        desc: Option<String>,
        pos: Pos,
    },
    /// `loadmodule "path"`: the path as written.
    LoadModule { path: String, pos: Pos },
    /// `modparam("module", "param", value)`; `module` may be `a|b` (several modules).
    ModParam {
        module: String,
        param: String,
        value: Literal,
        pos: Pos,
    },
    /// A route block.
    Route {
        kind: RouteKind,
        /// `None` for the unnamed main block (`request_route`, `route`, `route[0]`,
        /// `reply_route`, `onreply_route` without a name, `onsend_route`). For
        /// `event_route[group:name]` the name is `group:name`.
        name: Option<String>,
        body: Block,
        pos: Pos,
    },
}

/// The value of a core parameter, after define expansion.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A decimal (or `0x` hex) integer, possibly negative.
    Int(i64),
    /// A quoted string (escapes processed) or several adjacent quoted strings joined.
    Str(String),
    /// `yes`/`no`/`on`/`off`/`true`/`false` (any case).
    Bool(bool),
    /// Anything else, as raw source text with comments removed and white space runs
    /// collapsed to one space: `udp:127.0.0.1:5060 advertise 1.2.3.4:5060`, `[::1]:5060`,
    /// `LOG_LOCAL0`, `tcp:eth0`.
    Raw(String),
}

/// A literal value (modparam values, case labels).
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Int(i64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// `request_route`, `route`, `route[NAME]` (a named one is a sub-route).
    Request,
    /// `branch_route[NAME]`.
    Branch,
    /// `failure_route[NAME]`.
    Failure,
    /// `onreply_route[NAME]` (tm reply route); unnamed `onreply_route`/`reply_route` is the
    /// core reply route ([`RouteKind::CoreReply`]).
    Reply,
    /// `reply_route { }` or `onreply_route { }` without a name (or `[0]`).
    CoreReply,
    /// `onsend_route { }`.
    OnSend,
    /// `event_route[group:name]`.
    Event,
}

#[derive(Debug, Clone, Default)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    /// Position of the opening brace.
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct Stmt {
    pub kind: StmtKind,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub enum StmtKind {
    /// An expression evaluated for its effect, usually a function call: `f(a, b);`,
    /// `route(NAME);`, `forward();`. Also bare-word calls without parentheses such as
    /// `force_rport;` (parsed as a call with no arguments).
    Expr(Expr),
    /// `pv = expr;` and `pv := expr;` (the same in Sable).
    Assign { target: PvRef, value: Expr },
    /// `if (cond) stmt_or_block [else stmt_or_block]`; `else if` nests an `If` in `els`.
    If {
        cond: Expr,
        then: Block,
        els: Option<Block>,
    },
    /// `switch (expr) { case L: ... default: ... }`. Statements of a case fall through to the
    /// next case unless a `break` ends them, as in C.
    Switch { subject: Expr, cases: Vec<Case> },
    /// `while (cond) body`.
    While { cond: Expr, body: Block },
    /// `return;` or `return expr;` / `return(expr);`.
    Return(Option<Expr>),
    /// `exit;` or `exit(expr);`.
    Exit(Option<Expr>),
    /// `drop;` or `drop(expr);`.
    Drop(Option<Expr>),
    /// `break;`.
    Break,
    /// A nested `{ ... }` block.
    Block(Block),
}

#[derive(Debug, Clone)]
pub struct Case {
    /// `None` for `default:`.
    pub label: Option<CaseLabel>,
    pub body: Vec<Stmt>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CaseLabel {
    Int(i64),
    Str(String),
    /// `case /"regex":` (Kamailio's regex case of a string switch).
    Regex(String),
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Int(i64),
    /// A quoted string literal (escapes processed, `#!subst` rules applied). Whether `$...`
    /// inside it is expanded depends on where it is used: function parameters are formats,
    /// comparison operands are literal text. The compile step decides.
    Str(String),
    /// A pseudo-variable.
    Pv(PvRef),
    /// A bare word: `myself`, `uri`, `from_uri`, `method`, `src_ip`, `INET`, a route name in
    /// `route(NAME)`, an IPv4/IPv6 address or network written without quotes
    /// (`10.0.0.0/8`, `[::1]`).
    Ident(String),
    /// `name(args)`. `route(NAME)` is a call whose argument is an `Ident` or `Str`.
    Call {
        name: String,
        args: Vec<Expr>,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `!` or `not`.
    Not,
    /// `-`.
    Neg,
    /// `~` (bitwise not).
    BitNot,
    /// `defined expr`.
    Defined,
    /// `strlen(expr)`.
    Strlen,
    /// `strempty(expr)`.
    Strempty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `||` / `or`.
    Or,
    /// `&&` / `and`.
    And,
    Eq,
    Ne,
    /// `=~`: regex match (right side is the pattern).
    Match,
    /// `!~`.
    NotMatch,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitOr,
    BitAnd,
    BitXor,
    Shl,
    Shr,
}

/// A pseudo-variable reference as written: `$name`, `$name(inner)`,
/// `$(name(inner)[index]{tr1}{tr2})`.
#[derive(Debug, Clone, PartialEq)]
pub struct PvRef {
    /// The class name: `ru`, `avp`, `hdr`, `var`, `T_reply_code`...
    pub name: String,
    /// The text between the parentheses after the name, as written (`s:name`, `Via`,
    /// `x=>y`, `i:5`); `None` without parentheses. Nested parentheses are balanced.
    pub inner: Option<String>,
    /// `[n]`, `[-1]`, `[*]` or `[$var(i)]` in the `$(...)` form.
    pub index: Option<PvIndex>,
    /// Transformations in the `$(...)` form, in order.
    pub transforms: Vec<Transform>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PvIndex {
    Int(i64),
    All,
    Pv(Box<PvRef>),
}

/// One transformation `{class.name,param,param}`: `{s.substr,0,5}` has class `s`, name
/// `substr`, params `0` and `5`. Names may contain dots (`{uri.param,transport}` has name
/// `param`; `{s.encode.hexa}` has name `encode.hexa`).
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    pub class: String,
    pub name: String,
    pub params: Vec<TransformParam>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TransformParam {
    /// A literal parameter as written (unquoted), or the content of a quoted one.
    Text(String),
    /// A pseudo-variable given as parameter: `{s.substr,$var(i),1}`.
    Pv(PvRef),
}

/// A string with pseudo-variables in it, as function parameters take them:
/// `"for $rm the value is $avp(x)"`.
#[derive(Debug, Clone, PartialEq)]
pub enum FormatPart {
    Text(String),
    Pv(PvRef),
}
