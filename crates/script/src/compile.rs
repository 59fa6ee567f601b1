//! The compile step: resolves every function, pseudo-variable, transformation and route
//! name of a parsed config against the [`Registry`], runs the functions' fixups, and checks
//! that each function is used only in the route types it supports. The result is a
//! [`Program`] that does no name lookup at run time.

use crate::ast::{self, BinaryOp, Config, ExprKind as AstExpr, Item, RouteKind, StmtKind};
use crate::error::{ErrorKind, ScriptError};
use crate::interp::{CaseMatch, Expr, ExprKind, Program, Route, RouteId, Stmt};
use crate::pv::{CompiledTransform, Format, Pv, PvIndex, PvKind, TransformParam, XavpSel};
use crate::registry::{Arg, ArgError, Host, Registry, RouteMask};
use crate::value::Value;
use crate::vars::{AvpId, SharedVars};
use regex::{Regex, RegexBuilder};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Errors inside the compile step are boxed (they are rare; results stay small).
type CResult<T> = Result<T, Box<ScriptError>>;

/// What the compile step needs besides the config and the registry.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// Modules named by `loadmodule` (`tm`, `sl`...). Functions and pseudo-variables of other
    /// modules are refused with a hint to load them; module `core` is always there.
    pub loaded_modules: Vec<String>,
    /// Core parameter `max_while_loops` (Kamailio's default is 100; 0 means no bound).
    pub max_while_loops: u32,
    /// Pseudo-variables named by module parameters (acc's `log_extra`...), compiled with
    /// the config (an unknown one is a config error) and found at run time by their text
    /// ([`Program::module_pv`]).
    pub module_pvs: Vec<String>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            loaded_modules: Vec::new(),
            max_while_loops: 100,
            module_pvs: Vec::new(),
        }
    }
}

/// Compiles a regular expression the way the script's `=~` uses it: POSIX extended syntax,
/// case-insensitive (Kamailio compiles `=~` patterns with `REG_ICASE`).
pub(crate) fn build_regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
}

/// Maps a top-level route block to the route type it runs as.
fn kind_mask(kind: RouteKind, named: bool) -> RouteMask {
    match kind {
        RouteKind::Request if named => RouteMask::NONE,
        RouteKind::Request => RouteMask::REQUEST,
        RouteKind::Branch => RouteMask::BRANCH,
        RouteKind::Failure => RouteMask::FAILURE,
        RouteKind::Reply => RouteMask::TM_ONREPLY,
        RouteKind::CoreReply => RouteMask::CORE_ONREPLY,
        RouteKind::OnSend => RouteMask::ONSEND,
        RouteKind::Event => RouteMask::EVENT,
    }
}

struct Compiler<'r, H: Host> {
    registry: &'r Registry<H>,
    config: &'r Config,
    loaded: HashSet<String>,
    routes: HashMap<(RouteKind, String), RouteId>,
    vars: Vec<String>,
    shv: Arc<SharedVars>,
    errors: Vec<ScriptError>,
    mask: RouteMask,
}

/// What a function's fixup may ask of the compile step.
pub struct FixupCtx<'c, 'r, H: Host> {
    compiler: &'c mut Compiler<'r, H>,
    function: &'c str,
    pos: ast::Pos,
}

impl<H: Host> std::fmt::Debug for FixupCtx<'_, '_, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixupCtx")
            .field("function", &self.function)
            .field("pos", &self.pos)
            .finish()
    }
}

impl<H: Host> FixupCtx<'_, '_, H> {
    /// A route block by kind and name (`t_on_reply("R")` looks up
    /// ([`RouteKind::Reply`], "R")).
    pub fn route(&self, kind: RouteKind, name: &str) -> Option<RouteId> {
        self.compiler.routes.get(&(kind, name.to_owned())).copied()
    }

    /// The id of an AVP name.
    pub fn avp(&self, name: &str) -> AvpId {
        self.compiler.registry.avp_names.id(name)
    }

    /// The route types the call may run in.
    pub fn route_mask(&self) -> RouteMask {
        self.compiler.mask
    }

    /// The function being fixed up.
    pub fn function(&self) -> &str {
        self.function
    }

    /// Compiles a pseudo-variable given as text (`"$avp(x)"`).
    pub fn pv(&mut self, text: &str) -> Result<Pv<H>, String> {
        let pv = crate::parse_pv(text, self.pos).map_err(|e| e.kind.to_string())?;
        self.compiler.pv(&pv).map_err(|e| e.kind.to_string())
    }

    /// Compiles a format given as text (`"$fu to $ru"`).
    pub fn format(&mut self, text: &str) -> Result<Format<H>, String> {
        self.compiler
            .format(text, self.pos)
            .map_err(|e| e.kind.to_string())
    }
}

/// Compiles a parsed config. Every error is reported (not only the first), each with its
/// position.
pub fn compile<H: Host>(
    config: &Config,
    registry: &Registry<H>,
    options: &CompileOptions,
) -> Result<Program<H>, Vec<ScriptError>> {
    let mut loaded: HashSet<String> = options.loaded_modules.iter().cloned().collect();
    loaded.insert("core".to_owned());
    let mut c = Compiler {
        registry,
        config,
        loaded,
        routes: HashMap::new(),
        vars: Vec::new(),
        shv: Arc::new(SharedVars::default()),
        errors: Vec::new(),
        mask: RouteMask::NONE,
    };

    // 1. Route ids. Unnamed main blocks of one kind written several times are joined, in
    //    order, as Kamailio joins them.
    let mut blocks: Vec<(Vec<&ast::Stmt>, RouteKind, Option<String>)> = Vec::new();
    let mut request = None;
    let mut core_reply = None;
    let mut onsend = None;
    for item in &config.items {
        if let Item::Route {
            kind, name, body, ..
        } = item
        {
            let next = RouteId(u32::try_from(blocks.len()).unwrap_or(u32::MAX));
            let slot = match (kind, name) {
                (RouteKind::Request, None) => request.get_or_insert(next),
                (RouteKind::CoreReply, _) => core_reply.get_or_insert(next),
                (RouteKind::OnSend, _) => onsend.get_or_insert(next),
                (_, Some(n)) => c.routes.entry((*kind, n.clone())).or_insert(next),
                // Other unnamed blocks cannot be reached; the parser names them all.
                (_, None) => continue,
            };
            let id = *slot;
            if id == next {
                blocks.push((body.stmts.iter().collect(), *kind, name.clone()));
            } else if let Some(b) = blocks.get_mut(id.0 as usize) {
                b.0.extend(body.stmts.iter());
            }
        }
    }
    if request.is_none() {
        c.errors.push(ScriptError {
            kind: ErrorKind::MissingRequestRoute,
            file: config.files.first().cloned().unwrap_or_default(),
            pos: ast::Pos {
                file: 0,
                line: 1,
                col: 1,
            },
            hint: Some("add a `request_route { ... }` block".to_owned()),
        });
    }

    // 2. Route types each block can run in: top-level blocks have their own; `route[NAME]`
    //    blocks get the types of every block that calls them (to a fixed point).
    let mut masks: Vec<RouteMask> = blocks
        .iter()
        .map(|(_, kind, name)| kind_mask(*kind, name.is_some()))
        .collect();
    let calls: Vec<Vec<RouteId>> = blocks
        .iter()
        .map(|(stmts, ..)| {
            let mut out = Vec::new();
            for s in stmts {
                collect_route_calls(std::slice::from_ref(*s), &c.routes, &mut out);
            }
            out
        })
        .collect();
    loop {
        let mut changed = false;
        for (from, targets) in calls.iter().enumerate() {
            let m = masks.get(from).copied().unwrap_or_default();
            for t in targets {
                if let Some(tm) = masks.get_mut(t.0 as usize) {
                    let new = tm.union(m);
                    if new != *tm {
                        *tm = new;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }

    // 3. Bodies.
    let mut routes = Vec::with_capacity(blocks.len());
    for (k, (body, kind, name)) in blocks.iter().enumerate() {
        c.mask = masks.get(k).copied().unwrap_or_default();
        let owned: Vec<ast::Stmt> = body.iter().map(|s| (*s).clone()).collect();
        let stmts = c.stmts(&owned);
        routes.push(Route {
            kind: *kind,
            name: name.clone(),
            body: stmts,
        });
    }

    // 4. Pseudo-variables of module parameters (any route type may evaluate them).
    c.mask = RouteMask::ANY;
    let mut module_pvs = HashMap::new();
    let at = ast::Pos {
        file: 0,
        line: 1,
        col: 1,
    };
    for text in &options.module_pvs {
        let compiled = crate::parse_pv(text.trim(), at)
            .map_err(Box::new)
            .and_then(|pv| c.pv(&pv));
        match compiled {
            Ok(pv) => {
                module_pvs.insert(text.clone(), pv);
            }
            Err(mut e) => {
                e.hint = Some(format!("in the module parameter value `{text}`"));
                c.errors.push(*e);
            }
        }
    }

    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    Ok(Program {
        module_pvs,
        routes,
        request,
        core_reply,
        onsend,
        named: c.routes,
        shv: c.shv,
        var_names: c.vars,
        avp_names: registry.avp_names.clone(),
        max_while_loops: options.max_while_loops,
    })
}

fn route_target(args: &[ast::Expr]) -> Option<String> {
    match args {
        [a] => match &a.kind {
            AstExpr::Ident(n) | AstExpr::Str(n) => Some(n.clone()),
            AstExpr::Int(n) => Some(n.to_string()),
            _ => None,
        },
        _ => None,
    }
}

fn collect_route_calls(
    stmts: &[ast::Stmt],
    routes: &HashMap<(RouteKind, String), RouteId>,
    out: &mut Vec<RouteId>,
) {
    fn expr(e: &ast::Expr, routes: &HashMap<(RouteKind, String), RouteId>, out: &mut Vec<RouteId>) {
        match &e.kind {
            AstExpr::Call { name, args } => {
                if name == "route" {
                    if let Some(id) = route_target(args)
                        .and_then(|n| routes.get(&(RouteKind::Request, n)).copied())
                    {
                        out.push(id);
                    }
                }
                for a in args {
                    expr(a, routes, out);
                }
            }
            AstExpr::Unary { expr: inner, .. } => expr(inner, routes, out),
            AstExpr::Binary { left, right, .. } => {
                expr(left, routes, out);
                expr(right, routes, out);
            }
            _ => {}
        }
    }
    for s in stmts {
        match &s.kind {
            StmtKind::Expr(e) => expr(e, routes, out),
            StmtKind::Assign { value, .. } => expr(value, routes, out),
            StmtKind::If { cond, then, els } => {
                expr(cond, routes, out);
                collect_route_calls(&then.stmts, routes, out);
                if let Some(b) = els {
                    collect_route_calls(&b.stmts, routes, out);
                }
            }
            StmtKind::Switch { subject, cases } => {
                expr(subject, routes, out);
                for case in cases {
                    collect_route_calls(&case.body, routes, out);
                }
            }
            StmtKind::While { cond, body } => {
                expr(cond, routes, out);
                collect_route_calls(&body.stmts, routes, out);
            }
            StmtKind::Return(Some(e)) | StmtKind::Exit(Some(e)) | StmtKind::Drop(Some(e)) => {
                expr(e, routes, out)
            }
            StmtKind::Block(b) => collect_route_calls(&b.stmts, routes, out),
            _ => {}
        }
    }
}

impl<'r, H: Host> Compiler<'r, H> {
    fn error(&self, kind: ErrorKind, pos: ast::Pos, hint: Option<String>) -> Box<ScriptError> {
        Box::new(ScriptError {
            kind,
            file: self
                .config
                .files
                .get(pos.file as usize)
                .cloned()
                .unwrap_or_default(),
            pos,
            hint,
        })
    }

    /// Records the error of a part of a statement (so that the rest of the statement is
    /// still checked) and gives the part when there was none.
    fn keep<T>(&mut self, r: CResult<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(*e);
                None
            }
        }
    }

    fn stmts(&mut self, stmts: &[ast::Stmt]) -> Vec<Stmt<H>> {
        let mut out = Vec::with_capacity(stmts.len());
        for s in stmts {
            match self.stmt(s) {
                Ok(Some(st)) => out.push(st),
                Ok(None) => {}
                Err(e) => self.errors.push(*e),
            }
        }
        out
    }

    fn stmt(&mut self, s: &ast::Stmt) -> CResult<Option<Stmt<H>>> {
        Ok(Some(match &s.kind {
            StmtKind::Expr(e) => match &e.kind {
                AstExpr::Call { name, args } if name == "route" => {
                    Stmt::Route(self.route_call(args, e.pos)?)
                }
                AstExpr::Call { name, args } => Stmt::Call(self.call(name, args, e.pos)?),
                _ => Stmt::Eval(self.expr(e)?),
            },
            StmtKind::Assign { target, value } => {
                let pv = self.pv(target)?;
                if !pv.is_writable() {
                    return Err(self.error(
                        ErrorKind::ReadOnlyPseudoVariable {
                            name: target.name.clone(),
                        },
                        target.pos,
                        None,
                    ));
                }
                Stmt::Assign {
                    pv,
                    value: self.expr(value)?,
                }
            }
            // A faulty condition (or subject, or case label) does not hide the faults of the
            // bodies: every error is reported, in source order.
            StmtKind::If { cond, then, els } => {
                let cond = self.expr(cond);
                let cond = self.keep(cond);
                let then = self.stmts(&then.stmts);
                let els = els
                    .as_ref()
                    .map(|b| self.stmts(&b.stmts))
                    .unwrap_or_default();
                let Some(cond) = cond else { return Ok(None) };
                Stmt::If { cond, then, els }
            }
            StmtKind::Switch { subject, cases } => {
                let subject = self.expr(subject);
                let subject = self.keep(subject);
                let mut out = Vec::with_capacity(cases.len());
                let mut bad_label = false;
                for case in cases {
                    let m = match &case.label {
                        None => None,
                        Some(ast::CaseLabel::Int(n)) => Some(CaseMatch::Int(*n)),
                        Some(ast::CaseLabel::Str(s)) => Some(CaseMatch::Str(s.clone())),
                        Some(ast::CaseLabel::Regex(p)) => match build_regex(p) {
                            Ok(re) => Some(CaseMatch::Regex(re)),
                            Err(e) => {
                                let err = self.error(
                                    ErrorKind::BadRegex {
                                        pattern: p.clone(),
                                        error: e.to_string(),
                                    },
                                    case.pos,
                                    None,
                                );
                                self.errors.push(*err);
                                bad_label = true;
                                None
                            }
                        },
                    };
                    out.push((m, self.stmts(&case.body)));
                }
                match subject {
                    Some(subject) if !bad_label => Stmt::Switch {
                        subject,
                        cases: out,
                    },
                    _ => return Ok(None),
                }
            }
            StmtKind::While { cond, body } => {
                let cond = self.expr(cond);
                let cond = self.keep(cond);
                let body = self.stmts(&body.stmts);
                let Some(cond) = cond else { return Ok(None) };
                Stmt::While { cond, body }
            }
            StmtKind::Return(v) => Stmt::Return(v.as_ref().map(|e| self.expr(e)).transpose()?),
            StmtKind::Exit(v) => Stmt::Exit(v.as_ref().map(|e| self.expr(e)).transpose()?),
            StmtKind::Drop(_) => Stmt::Drop,
            StmtKind::Break => Stmt::Break,
            StmtKind::Block(b) => Stmt::Block(self.stmts(&b.stmts)),
        }))
    }

    fn route_call(&mut self, args: &[ast::Expr], pos: ast::Pos) -> CResult<RouteId> {
        let Some(name) = route_target(args) else {
            return Err(self.error(
                ErrorKind::WrongArgumentCount {
                    function: "route".to_owned(),
                    expected: "1 (a route name)".to_owned(),
                    got: args.len(),
                },
                pos,
                None,
            ));
        };
        self.routes
            .get(&(RouteKind::Request, name.clone()))
            .copied()
            .ok_or_else(|| {
                self.error(
                    ErrorKind::UnknownRoute { name: name.clone() },
                    pos,
                    Some(format!("define it with `route[{name}] {{ ... }}`")),
                )
            })
    }

    fn call(
        &mut self,
        name: &str,
        args: &[ast::Expr],
        pos: ast::Pos,
    ) -> CResult<crate::registry::Action<H>> {
        let registry = self.registry;
        let Some(def) = registry.functions.get(name) else {
            return Err(self.error(
                ErrorKind::UnknownFunction {
                    name: name.to_owned(),
                },
                pos,
                suggest(name, registry.functions.keys().map(String::as_str)),
            ));
        };
        if !self.loaded.contains(def.module) {
            return Err(self.error(
                ErrorKind::UnknownFunction {
                    name: name.to_owned(),
                },
                pos,
                Some(format!(
                    "{name}() belongs to module {m}: add loadmodule \"{m}.so\"",
                    m = def.module
                )),
            ));
        }
        if args.len() < def.min_args || args.len() > def.max_args {
            let expected = if def.min_args == def.max_args {
                def.min_args.to_string()
            } else {
                format!("{} to {}", def.min_args, def.max_args)
            };
            return Err(self.error(
                ErrorKind::WrongArgumentCount {
                    function: name.to_owned(),
                    expected,
                    got: args.len(),
                },
                pos,
                None,
            ));
        }
        if !self.mask.is_empty() && !def.routes.allows(self.mask) {
            let mut allowed = def.routes;
            if allowed.contains(RouteMask::REQUEST) {
                allowed = allowed.union(RouteMask::EVENT);
            }
            let refused = RouteMask(self.mask.0 & !allowed.0);
            return Err(self.error(
                ErrorKind::FunctionNotAllowedHere {
                    function: name.to_owned(),
                    route: refused.names(),
                },
                pos,
                Some(format!("{name}() may be used in: {}", def.routes.names())),
            ));
        }
        let mut compiled = Vec::with_capacity(args.len());
        for a in args {
            compiled.push(self.arg(a)?);
        }
        let mut fx = FixupCtx {
            compiler: self,
            function: name,
            pos,
        };
        (def.fixup)(&mut fx, compiled).map_err(|ArgError { index, reason }| {
            let at = args
                .get(index.saturating_sub(1))
                .filter(|_| index > 0)
                .map_or(pos, |a| a.pos);
            self.error(
                ErrorKind::BadArgument {
                    function: name.to_owned(),
                    index,
                    reason,
                },
                at,
                None,
            )
        })
    }

    fn arg(&mut self, a: &ast::Expr) -> CResult<Arg<H>> {
        Ok(match &a.kind {
            AstExpr::Int(n) => Arg::Int(*n),
            AstExpr::Str(s) => Arg::Str(self.format(s, a.pos)?),
            AstExpr::Pv(p) => Arg::Pv(self.pv(p)?),
            AstExpr::Ident(s) => Arg::Ident(s.clone()),
            AstExpr::Unary {
                op: ast::UnaryOp::Neg,
                expr,
            } if matches!(expr.kind, AstExpr::Int(_)) => match expr.kind {
                AstExpr::Int(n) => Arg::Int(-n),
                _ => Arg::Int(0),
            },
            AstExpr::Call { name, .. } if name == "route" => {
                return Err(self.error(
                    ErrorKind::BadArgument {
                        function: "route".to_owned(),
                        index: 0,
                        reason: "route() cannot be a function argument".to_owned(),
                    },
                    a.pos,
                    None,
                ))
            }
            _ => Arg::Expr(self.expr(a)?),
        })
    }

    fn format(&mut self, text: &str, pos: ast::Pos) -> CResult<Format<H>> {
        let parts = crate::parse_format(text, pos).map_err(Box::new)?;
        let mut f = Format::new();
        for p in parts {
            match p {
                ast::FormatPart::Text(t) => f.push_text(t),
                ast::FormatPart::Pv(pv) => f.push_pv(self.pv(&pv)?),
            }
        }
        Ok(f)
    }

    fn var_slot(&mut self, name: &str) -> usize {
        match self.vars.iter().position(|v| v == name) {
            Some(k) => k,
            None => {
                self.vars.push(name.to_owned());
                self.vars.len() - 1
            }
        }
    }

    pub(crate) fn pv(&mut self, p: &ast::PvRef) -> CResult<Pv<H>> {
        let inner = p.inner.as_deref().map(str::trim);
        let need_inner = |c: &Self| {
            inner.filter(|s| !s.is_empty()).ok_or_else(|| {
                c.error(
                    ErrorKind::BadPseudoVariable(format!(
                        "${} needs a name: ${}(name)",
                        p.name, p.name
                    )),
                    p.pos,
                    None,
                )
            })
        };
        let kind = match p.name.as_str() {
            "null" => PvKind::Null,
            "rc" | "retcode" => PvKind::Retcode,
            "var" => {
                let n = need_inner(self)?;
                PvKind::Var(self.var_slot(n))
            }
            "avp" => {
                let n = need_inner(self)?;
                PvKind::Avp(self.registry.avp_names.id(n))
            }
            "xavp" => {
                let n = need_inner(self)?;
                PvKind::Xavp(parse_xavp(n).ok_or_else(|| {
                    self.error(
                        ErrorKind::BadPseudoVariable(format!("$xavp({n})")),
                        p.pos,
                        Some("expected $xavp(name[index]=>field[index])".to_owned()),
                    )
                })?)
            }
            "shv" => {
                let n = need_inner(self)?;
                PvKind::Shv(self.shv.clone(), self.shv.slot(n))
            }
            other if self.registry.nested_pvs.contains_key(other) => {
                let registry = self.registry;
                let Some(def) = registry.nested_pvs.get(other) else {
                    return Err(self.error(
                        ErrorKind::UnknownPseudoVariable {
                            name: other.to_owned(),
                        },
                        p.pos,
                        None,
                    ));
                };
                if !self.loaded.contains(def.module) {
                    return Err(self.error(
                        ErrorKind::UnknownPseudoVariable {
                            name: other.to_owned(),
                        },
                        p.pos,
                        Some(format!(
                            "${other} belongs to module {m}: add loadmodule \"{m}.so\"",
                            m = def.module
                        )),
                    ));
                }
                let text = need_inner(self)?;
                let parsed = crate::parse_pv(text, p.pos)?;
                let inner_pv = self.pv(&parsed)?;
                let access = (def.make)(inner_pv).map_err(|reason| {
                    self.error(
                        ErrorKind::BadPseudoVariable(format!("${other}: {reason}")),
                        p.pos,
                        None,
                    )
                })?;
                PvKind::Host {
                    access,
                    writable: false,
                }
            }
            other => {
                let registry = self.registry;
                let Some(def) = registry.pvs.get(other) else {
                    return Err(self.error(
                        ErrorKind::UnknownPseudoVariable {
                            name: other.to_owned(),
                        },
                        p.pos,
                        suggest(other, registry.pvs.keys().map(String::as_str)),
                    ));
                };
                if !self.loaded.contains(def.module) {
                    return Err(self.error(
                        ErrorKind::UnknownPseudoVariable {
                            name: other.to_owned(),
                        },
                        p.pos,
                        Some(format!(
                            "${other} belongs to module {m}: add loadmodule \"{m}.so\"",
                            m = def.module
                        )),
                    ));
                }
                let access = (def.make)(inner).map_err(|reason| {
                    self.error(
                        ErrorKind::BadPseudoVariable(format!("${other}: {reason}")),
                        p.pos,
                        None,
                    )
                })?;
                PvKind::Host {
                    access,
                    writable: def.writable,
                }
            }
        };
        let index = match &p.index {
            None => None,
            Some(ast::PvIndex::Int(n)) => Some(PvIndex::Int(*n)),
            Some(ast::PvIndex::All) => Some(PvIndex::All),
            Some(ast::PvIndex::Pv(inner)) => Some(PvIndex::Pv(Box::new(self.pv(inner)?))),
        };
        let mut transforms = Vec::with_capacity(p.transforms.len());
        for t in &p.transforms {
            let full = format!("{}.{}", t.class, t.name);
            let registry = self.registry;
            let Some(class) = registry.transforms.get(&t.class) else {
                return Err(self.error(
                    ErrorKind::UnknownTransformation { name: full },
                    t.pos,
                    None,
                ));
            };
            let func = class(&t.name, t.params.len()).map_err(|reason| {
                self.error(
                    ErrorKind::UnknownTransformation {
                        name: format!("{full}: {reason}"),
                    },
                    t.pos,
                    None,
                )
            })?;
            let mut params = Vec::with_capacity(t.params.len());
            for tp in &t.params {
                params.push(match tp {
                    ast::TransformParam::Text(s) => TransformParam::Const(Value::Str(s.clone())),
                    ast::TransformParam::Pv(pv) => TransformParam::Pv(self.pv(pv)?),
                });
            }
            transforms.push(CompiledTransform { func, params });
        }
        Ok(Pv {
            name: match &p.inner {
                Some(i) => format!("{}({i})", p.name),
                None => p.name.clone(),
            },
            kind,
            index,
            transforms,
        })
    }

    /// Whether an operand is a core keyword (`method`, `src_ip`...).
    fn is_keyword(&self, e: &ast::Expr) -> bool {
        matches!(&e.kind, AstExpr::Ident(n) if self.registry.keywords.contains_key(n.as_str()))
    }

    fn expr(&mut self, e: &ast::Expr) -> CResult<Expr<H>> {
        self.expr_in(e, false)
    }

    /// `operand`: the expression is an operand of a larger expression (a function's code is
    /// then 1/0).
    fn expr_in(&mut self, e: &ast::Expr, operand: bool) -> CResult<Expr<H>> {
        let kind = match &e.kind {
            AstExpr::Int(n) => ExprKind::Const(Value::Int(*n)),
            AstExpr::Str(s) => ExprKind::Const(Value::Str(s.clone())),
            AstExpr::Pv(p) => ExprKind::Pv(self.pv(p)?),
            AstExpr::Ident(name) => {
                let registry = self.registry;
                match registry.keywords.get(name.as_str()) {
                    Some(def) => ExprKind::Keyword((def.make)(None).map_err(|reason| {
                        self.error(ErrorKind::BadPseudoVariable(reason), e.pos, None)
                    })?),
                    None if name == "myself" => {
                        return Err(self.error(
                            ErrorKind::UnexpectedToken {
                                found: "myself".to_owned(),
                                expected: "an operand (myself is only valid in `X == myself` or `X != myself`)".to_owned(),
                            },
                            e.pos,
                            None,
                        ))
                    }
                    None => ExprKind::Const(Value::Str(name.clone())),
                }
            }
            AstExpr::Call { name, args } if name == "route" => ExprKind::Route {
                id: self.route_call(args, e.pos)?,
                boolean: operand,
            },
            AstExpr::Call { name, args } => ExprKind::Call {
                action: self.call(name, args, e.pos)?,
                boolean: operand,
            },
            AstExpr::Unary { op, expr } => match op {
                ast::UnaryOp::Defined => match &expr.kind {
                    AstExpr::Pv(p) => ExprKind::Defined(self.pv(p)?),
                    _ => ExprKind::Unary(*op, Box::new(self.expr_in(expr, true)?)),
                },
                _ => ExprKind::Unary(*op, Box::new(self.expr_in(expr, true)?)),
            },
            AstExpr::Binary { op, left, right } => {
                let is_myself =
                    |x: &ast::Expr| matches!(&x.kind, AstExpr::Ident(n) if n == "myself");
                if matches!(op, BinaryOp::Eq | BinaryOp::Ne)
                    && (is_myself(right) || is_myself(left))
                {
                    let value = if is_myself(right) { left } else { right };
                    let Some(check) = self.registry.myself.clone() else {
                        return Err(self.error(
                            ErrorKind::UnknownPseudoVariable {
                                name: "myself".to_owned(),
                            },
                            e.pos,
                            None,
                        ));
                    };
                    ExprKind::Myself {
                        value: Box::new(self.expr_in(value, true)?),
                        negate: *op == BinaryOp::Ne,
                        check,
                    }
                } else if matches!(op, BinaryOp::Match | BinaryOp::NotMatch) {
                    let negate = *op == BinaryOp::NotMatch;
                    let left = Box::new(self.expr_in(left, true)?);
                    match &right.kind {
                        AstExpr::Str(pattern) => {
                            let re = build_regex(pattern).map_err(|err| {
                                self.error(
                                    ErrorKind::BadRegex {
                                        pattern: pattern.clone(),
                                        error: err.to_string(),
                                    },
                                    right.pos,
                                    None,
                                )
                            })?;
                            ExprKind::Match { left, re, negate }
                        }
                        _ => ExprKind::DynMatch {
                            left,
                            right: Box::new(self.expr_in(right, true)?),
                            negate,
                        },
                    }
                } else if matches!(op, BinaryOp::Eq | BinaryOp::Ne)
                    && (self.is_keyword(left) || self.is_keyword(right))
                {
                    ExprKind::KeywordEq {
                        left: Box::new(self.expr_in(left, true)?),
                        right: Box::new(self.expr_in(right, true)?),
                        negate: *op == BinaryOp::Ne,
                    }
                } else {
                    ExprKind::Binary(
                        *op,
                        Box::new(self.expr_in(left, true)?),
                        Box::new(self.expr_in(right, true)?),
                    )
                }
            }
        };
        Ok(Expr { kind })
    }
}

/// `name[item]=>field[value]`, indexes optional.
fn parse_xavp(s: &str) -> Option<XavpSel> {
    fn split_index(s: &str) -> Option<(&str, Option<usize>)> {
        let s = s.trim();
        match s.find('[') {
            None => Some((s, None)),
            Some(k) => {
                let name = s.get(..k)?.trim();
                let rest = s.get(k + 1..)?.strip_suffix(']')?;
                Some((name, Some(rest.trim().parse().ok()?)))
            }
        }
    }
    let (root, field) = match s.split_once("=>") {
        Some((r, f)) => (r, Some(f)),
        None => (s, None),
    };
    let (root, item) = split_index(root)?;
    if root.is_empty() {
        return None;
    }
    let (field, value_index) = match field {
        Some(f) => {
            let (f, i) = split_index(f)?;
            if f.is_empty() {
                return None;
            }
            (Some(f.to_owned()), i)
        }
        None => (None, None),
    };
    Some(XavpSel {
        root: root.to_owned(),
        item,
        field,
        value_index,
    })
}

/// "did you mean" for a misspelt name: the closest known one within two edits.
fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        let d = edit_distance(name, k);
        if d <= 2 && best.is_none_or(|(bd, bk)| d < bd || (d == bd && k < bk)) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| format!("did you mean `{k}`?"))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xavp_selectors() {
        let s = parse_xavp("x[1]=>a[2]").unwrap();
        assert_eq!(
            (s.root.as_str(), s.item, s.field.as_deref(), s.value_index),
            ("x", Some(1), Some("a"), Some(2))
        );
        let s = parse_xavp("caller").unwrap();
        assert_eq!((s.item, s.field), (None, None));
        assert!(parse_xavp("=>a").is_none());
        assert!(parse_xavp("x[a]=>b").is_none());
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("sl_send_replly", ["sl_send_reply", "xlog"].into_iter()).as_deref(),
            Some("did you mean `sl_send_reply`?")
        );
        assert_eq!(suggest("zzz", ["xlog"].into_iter()), None);
    }
}
