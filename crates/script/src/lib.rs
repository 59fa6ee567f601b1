//! The routing-script language of Kamailio 5.6 (`kamailio.cfg`), without any SIP in it.
//!
//! What this crate owns: reading a config (preprocessor directives, includes, defines and
//! substitutions), turning it into a syntax tree with positions ([`ast`]), and reporting
//! every fault as a [`ScriptError`] with `file:line:col`; compiling the tree against a
//! [`Registry`] of functions, pseudo-variables and transformations (the "fixups": every name
//! resolved and every argument checked at load); and running the compiled [`Program`] on a
//! host context, with Kamailio's rules for return codes, `$var`/`$avp`/`$xavp`/`$shv`,
//! `exit`/`drop`/`return`/`break`, `switch` and `while`.
//!
//! It does not know what a SIP message is: the engine provides the context type
//! ([`Host::Ctx`]) and registers the SIP functions and pseudo-variables.

pub mod ast;
mod compile;
mod error;
mod format;
mod interp;
mod lexer;
mod parser;
mod preprocess;
mod pv;
mod registry;
pub mod transform;
mod value;
mod vars;

pub use compile::{compile, CompileOptions, FixupCtx};
pub use error::{ErrorKind, ScriptError};
pub use format::{parse_format, parse_pv};
pub use interp::{Expr, Program, RouteId, RunResult};
pub use parser::{parse_file, parse_str};
pub use preprocess::Defines;
pub use pv::{Format, Pv, PvAccess};
pub use registry::{
    Action, Arg, ArgError, FixupFn, FunctionDef, Host, IntArg, MyselfFn, NestedPvDef,
    NestedPvMaker, PvDef, PvMaker, Registry, RouteMask, ScriptState, StrArg,
};
pub use value::{parse_int, Value};
pub use vars::{AvpId, AvpNames, AvpStore, SharedVars, XavpItem, XavpStore};
