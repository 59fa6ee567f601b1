//! What the host (the engine and its modules) gives the language: the context type a script
//! runs on, functions with their fixups, pseudo-variables and transformation classes.

use crate::compile::FixupCtx;
use crate::interp::Expr;
use crate::pv::{Format, Pv, PvAccess};
use crate::transform::{self, TransformClass};
use crate::value::Value;
use crate::vars::{AvpNames, AvpStore, XavpStore};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// The host of a script: names the per-message context type the script runs on. The context
/// may borrow the message buffer, hence the lifetime.
pub trait Host: 'static + Sized {
    type Ctx<'a>: ScriptState;
}

/// What the interpreter itself needs from a context.
pub trait ScriptState {
    /// `$var` slots of the current worker (kept between messages, as Kamailio's per-process
    /// variables are).
    fn vars(&mut self) -> &mut Vec<Value>;
    /// AVPs of the message (or of its transaction once there is one).
    fn avps(&mut self) -> &mut AvpStore;
    /// XAVPs of the message (or of its transaction).
    fn xavps(&mut self) -> &mut XavpStore;
    /// `$rc`: the last return code.
    fn retcode(&self) -> i32;
    fn set_retcode(&mut self, code: i32);
}

/// A compiled function call: runs on a context and returns Kamailio's code (negative false,
/// positive true, 0 stops the script).
pub type Action<H> = Box<dyn for<'a, 'b> Fn(&'b mut <H as Host>::Ctx<'a>) -> i32 + Send + Sync>;

/// Route types, as a set (Kamailio's `REQUEST_ROUTE | FAILURE_ROUTE ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RouteMask(pub u16);

impl RouteMask {
    pub const NONE: RouteMask = RouteMask(0);
    pub const REQUEST: RouteMask = RouteMask(1);
    pub const FAILURE: RouteMask = RouteMask(2);
    /// tm's `onreply_route[NAME]`.
    pub const TM_ONREPLY: RouteMask = RouteMask(4);
    pub const BRANCH: RouteMask = RouteMask(8);
    pub const ONSEND: RouteMask = RouteMask(16);
    pub const ERROR: RouteMask = RouteMask(32);
    pub const LOCAL: RouteMask = RouteMask(64);
    /// The core `reply_route`.
    pub const CORE_ONREPLY: RouteMask = RouteMask(128);
    pub const BRANCH_FAILURE: RouteMask = RouteMask(256);
    /// `event_route[...]`: in Kamailio an event route runs as a request route, so a function
    /// allowed in REQUEST_ROUTE is allowed here too.
    pub const EVENT: RouteMask = RouteMask(512);
    /// Both reply route kinds (Kamailio's `ONREPLY_ROUTE`).
    pub const ONREPLY: RouteMask = RouteMask(4 | 128);
    pub const ANY: RouteMask = RouteMask(0x3ff);

    pub const fn union(self, other: RouteMask) -> RouteMask {
        RouteMask(self.0 | other.0)
    }

    pub const fn contains(self, other: RouteMask) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a function allowed in `self` may run in every route type of `reached`.
    pub fn allows(self, reached: RouteMask) -> bool {
        let mut allowed = self;
        if allowed.contains(RouteMask::REQUEST) {
            allowed = allowed.union(RouteMask::EVENT);
        }
        allowed.contains(reached)
    }

    /// The names of the route types in the set, for messages.
    pub fn names(self) -> String {
        const NAMES: [(RouteMask, &str); 10] = [
            (RouteMask::REQUEST, "request_route"),
            (RouteMask::FAILURE, "failure_route"),
            (RouteMask::TM_ONREPLY, "onreply_route"),
            (RouteMask::BRANCH, "branch_route"),
            (RouteMask::ONSEND, "onsend_route"),
            (RouteMask::ERROR, "error_route"),
            (RouteMask::LOCAL, "local_route"),
            (RouteMask::CORE_ONREPLY, "reply_route"),
            (RouteMask::BRANCH_FAILURE, "branch_failure_route"),
            (RouteMask::EVENT, "event_route"),
        ];
        NAMES
            .iter()
            .filter(|(m, _)| self.contains(*m))
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a fixup refused an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError {
    /// 1-based argument number (0: the call as a whole).
    pub index: usize,
    pub reason: String,
}

impl ArgError {
    pub fn new(index: usize, reason: impl Into<String>) -> Self {
        ArgError {
            index,
            reason: reason.into(),
        }
    }
}

/// The fixup of a function: checks and prepares the arguments once, at load, and returns
/// the action that runs per message.
pub type FixupFn<H> =
    Box<dyn Fn(&mut FixupCtx<'_, '_, H>, Vec<Arg<H>>) -> Result<Action<H>, ArgError> + Send + Sync>;

/// A script function offered by a module (or the core).
pub struct FunctionDef<H: Host> {
    pub module: &'static str,
    pub min_args: usize,
    pub max_args: usize,
    /// Route types the function may be used in.
    pub routes: RouteMask,
    pub fixup: FixupFn<H>,
}

impl<H: Host> fmt::Debug for FunctionDef<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionDef")
            .field("module", &self.module)
            .field("min_args", &self.min_args)
            .field("max_args", &self.max_args)
            .field("routes", &self.routes)
            .finish()
    }
}

/// Builds the accessor of a host pseudo-variable from its inner name (`Via` in `$hdr(Via)`,
/// `None` for `$ru`).
pub type PvMaker<H> =
    Box<dyn Fn(Option<&str>) -> Result<Box<dyn PvAccess<H>>, String> + Send + Sync>;

/// A pseudo-variable class offered by a module (or the core).
pub struct PvDef<H: Host> {
    pub module: &'static str,
    pub writable: bool,
    pub make: PvMaker<H>,
}

impl<H: Host> fmt::Debug for PvDef<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PvDef")
            .field("module", &self.module)
            .field("writable", &self.writable)
            .finish()
    }
}

/// Makes the access of a pseudo-variable whose name is itself a pseudo-variable
/// (`$T_req($hdr(From))`): it gets the compiled inner one.
pub type NestedPvMaker<H> =
    Box<dyn Fn(crate::pv::Pv<H>) -> Result<Box<dyn PvAccess<H>>, String> + Send + Sync>;

/// A read-only pseudo-variable class over another pseudo-variable.
pub struct NestedPvDef<H: Host> {
    pub module: &'static str,
    pub make: NestedPvMaker<H>,
}

impl<H: Host> fmt::Debug for NestedPvDef<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NestedPvDef")
            .field("module", &self.module)
            .finish()
    }
}

/// The functions, pseudo-variables and transformation classes a script may use.
pub struct Registry<H: Host> {
    pub(crate) functions: HashMap<String, FunctionDef<H>>,
    pub(crate) pvs: HashMap<String, PvDef<H>>,
    pub(crate) nested_pvs: HashMap<String, NestedPvDef<H>>,
    pub(crate) transforms: HashMap<String, TransformClass>,
    /// Bare words usable as operands in expressions (`uri`, `method`, `src_ip`...).
    pub(crate) keywords: HashMap<String, PvDef<H>>,
    /// The `myself` check (`uri == myself`): whether a URI or host names this server.
    pub(crate) myself: Option<std::sync::Arc<MyselfFn<H>>>,
    pub(crate) avp_names: AvpNames,
}

/// Whether a value (a URI or a host) names this server.
pub type MyselfFn<H> =
    Box<dyn for<'a, 'b> Fn(&'b mut <H as Host>::Ctx<'a>, &str) -> bool + Send + Sync>;

impl<H: Host> fmt::Debug for Registry<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("functions", &self.functions.len())
            .field("pvs", &self.pvs.len())
            .finish()
    }
}

impl<H: Host> Default for Registry<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: Host> Registry<H> {
    /// A registry with the language's own transformation classes (`s`, `param`).
    pub fn new() -> Self {
        let mut transforms = HashMap::new();
        transforms.insert("s".to_owned(), transform::string_class());
        transforms.insert("param".to_owned(), transform::param_class());
        Registry {
            functions: HashMap::new(),
            pvs: HashMap::new(),
            nested_pvs: HashMap::new(),
            transforms,
            keywords: HashMap::new(),
            myself: None,
            avp_names: AvpNames::default(),
        }
    }

    /// Adds a function. A later definition of the same name replaces the earlier one.
    pub fn function(&mut self, name: &str, def: FunctionDef<H>) {
        self.functions.insert(name.to_owned(), def);
    }

    /// Adds a pseudo-variable class.
    pub fn pv(&mut self, name: &str, def: PvDef<H>) {
        self.pvs.insert(name.to_owned(), def);
    }

    /// Adds a pseudo-variable class whose name is a pseudo-variable (`$T_req(pv)`).
    pub fn nested_pv(&mut self, name: &str, def: NestedPvDef<H>) {
        self.nested_pvs.insert(name.to_owned(), def);
    }

    /// Adds a keyword operand for expressions.
    pub fn keyword(&mut self, name: &str, def: PvDef<H>) {
        self.keywords.insert(name.to_owned(), def);
    }

    /// Adds a transformation class (`uri`, `nameaddr`...).
    pub fn transform_class(&mut self, name: &str, class: TransformClass) {
        self.transforms.insert(name.to_owned(), class);
    }

    /// Sets the `myself` check.
    pub fn set_myself(&mut self, check: MyselfFn<H>) {
        self.myself = Some(std::sync::Arc::new(check));
    }

    /// The AVP name table (modules name AVPs in parameters).
    pub fn avp_names(&self) -> &AvpNames {
        &self.avp_names
    }

    /// Whether a function of that name exists (in any module).
    pub fn has_function(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// The module that offers a function.
    pub fn function_module(&self, name: &str) -> Option<&'static str> {
        self.functions.get(name).map(|f| f.module)
    }

    /// The module that offers a pseudo-variable class.
    pub fn pv_module(&self, name: &str) -> Option<&'static str> {
        self.pvs
            .get(name)
            .map(|p| p.module)
            .or_else(|| self.nested_pvs.get(name).map(|p| p.module))
    }
}

/// An argument of a function call, compiled.
pub enum Arg<H: Host> {
    Int(i64),
    /// A quoted string: a format when it holds pseudo-variables.
    Str(Format<H>),
    Pv(Pv<H>),
    /// A bare word (`myself`, a route name, a define that was not replaced...).
    Ident(String),
    /// Any other expression.
    Expr(Expr<H>),
}

impl<H: Host> fmt::Debug for Arg<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Int(n) => write!(f, "Int({n})"),
            Arg::Str(s) => write!(f, "{s:?}"),
            Arg::Pv(p) => write!(f, "{p:?}"),
            Arg::Ident(s) => write!(f, "Ident({s})"),
            Arg::Expr(_) => f.write_str("Expr"),
        }
    }
}

impl<H: Host> Arg<H> {
    /// The text of a constant argument: a string without pseudo-variables, an integer, or a
    /// bare word.
    pub fn const_str(&self) -> Option<Cow<'_, str>> {
        match self {
            Arg::Int(n) => Some(Cow::Owned(n.to_string())),
            Arg::Str(f) => f.as_const().map(Cow::Owned),
            Arg::Ident(s) => Some(Cow::Borrowed(s)),
            Arg::Pv(_) | Arg::Expr(_) => None,
        }
    }

    /// The integer of a constant argument (an integer, or a string holding one).
    pub fn const_int(&self) -> Option<i64> {
        match self {
            Arg::Int(n) => Some(*n),
            Arg::Str(f) => f.as_const().and_then(|s| crate::value::parse_int(&s)),
            _ => None,
        }
    }

    /// The argument as a string evaluated per message (constant when it can be).
    pub fn into_str(self) -> StrArg<H> {
        match self {
            Arg::Int(n) => StrArg::Const(n.to_string()),
            Arg::Ident(s) => StrArg::Const(s),
            Arg::Str(f) => match f.as_const() {
                Some(s) => StrArg::Const(s),
                None => StrArg::Format(f),
            },
            Arg::Pv(p) => StrArg::Pv(p),
            Arg::Expr(e) => StrArg::Expr(e),
        }
    }

    /// The argument as an integer evaluated per message; a constant that is not an integer
    /// is refused with `reason`.
    pub fn into_int(self, index: usize) -> Result<IntArg<H>, ArgError> {
        match self {
            Arg::Int(n) => Ok(IntArg::Const(n)),
            Arg::Ident(s) => Err(ArgError::new(index, format!("'{s}' is not an integer"))),
            Arg::Str(f) => match f.as_const() {
                Some(s) => crate::value::parse_int(&s)
                    .map(IntArg::Const)
                    .ok_or_else(|| ArgError::new(index, format!("'{s}' is not an integer"))),
                None => Ok(IntArg::Format(f)),
            },
            Arg::Pv(p) => Ok(IntArg::Pv(p)),
            Arg::Expr(e) => Ok(IntArg::Expr(e)),
        }
    }

    /// The pseudo-variable of a `$...` argument (for functions that write one).
    /// A pseudo-variable written bare (`$avp(x)`) or alone in quotes (`"$avp(x)"`, the usual
    /// Kamailio form).
    pub fn into_pv(self, index: usize) -> Result<Pv<H>, ArgError> {
        let refuse = || ArgError::new(index, "expected a pseudo-variable such as $avp(name)");
        match self {
            Arg::Pv(p) => Ok(p),
            Arg::Str(f) => f.into_single_pv().map_err(|_| refuse()),
            _ => Err(refuse()),
        }
    }
}

/// A string argument, evaluated per message.
pub enum StrArg<H: Host> {
    Const(String),
    Format(Format<H>),
    Pv(Pv<H>),
    Expr(Expr<H>),
}

impl<H: Host> fmt::Debug for StrArg<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StrArg::Const(s) => write!(f, "{s:?}"),
            StrArg::Format(x) => write!(f, "{x:?}"),
            StrArg::Pv(p) => write!(f, "{p:?}"),
            StrArg::Expr(_) => f.write_str("Expr"),
        }
    }
}

impl<H: Host> StrArg<H> {
    /// The value for this message. A pseudo-variable without value gives the empty string;
    /// inside a format it prints `<null>`, as Kamailio's formats do.
    pub fn eval<'s>(&'s self, ctx: &mut H::Ctx<'_>) -> Cow<'s, str> {
        match self {
            StrArg::Const(s) => Cow::Borrowed(s),
            StrArg::Format(f) => Cow::Owned(f.render(ctx)),
            StrArg::Pv(p) => Cow::Owned(p.get(ctx).into_string()),
            StrArg::Expr(e) => Cow::Owned(e.eval_value(ctx).into_string()),
        }
    }

    pub fn as_const(&self) -> Option<&str> {
        match self {
            StrArg::Const(s) => Some(s),
            _ => None,
        }
    }
}

/// An integer argument, evaluated per message.
pub enum IntArg<H: Host> {
    Const(i64),
    Format(Format<H>),
    Pv(Pv<H>),
    Expr(Expr<H>),
}

impl<H: Host> fmt::Debug for IntArg<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntArg::Const(n) => write!(f, "{n}"),
            IntArg::Format(x) => write!(f, "{x:?}"),
            IntArg::Pv(p) => write!(f, "{p:?}"),
            IntArg::Expr(_) => f.write_str("Expr"),
        }
    }
}

impl<H: Host> IntArg<H> {
    /// The value for this message: `None` when it is not an integer.
    pub fn eval(&self, ctx: &mut H::Ctx<'_>) -> Option<i64> {
        match self {
            IntArg::Const(n) => Some(*n),
            IntArg::Format(f) => crate::value::parse_int(&f.render(ctx)),
            IntArg::Pv(p) => p.get(ctx).to_int(),
            IntArg::Expr(e) => e.eval_value(ctx).to_int(),
        }
    }

    pub fn as_const(&self) -> Option<i64> {
        match self {
            IntArg::Const(n) => Some(*n),
            _ => None,
        }
    }
}
