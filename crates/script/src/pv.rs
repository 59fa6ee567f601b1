//! Compiled pseudo-variables and formats (strings with pseudo-variables in them).

use crate::registry::{Host, ScriptState};
use crate::transform::TransformFn;
use crate::value::Value;
use crate::vars::{AvpId, SharedVars};
use std::fmt;
use std::sync::Arc;

/// A pseudo-variable the host (the engine or a module) provides: `$ru`, `$si`, `$hdr(Via)`...
/// Made once per use in the script by the host's [`PvDef`](crate::PvDef) constructor, with
/// its inner name already parsed.
pub trait PvAccess<H: Host>: Send + Sync {
    /// The value (the first one for multi-valued variables such as `$hdr`).
    fn get(&self, ctx: &mut H::Ctx<'_>) -> Value;

    /// The value at an index (`$(hdr(Via)[1])`): 0 is the first, negative counts from the
    /// end. Single-valued variables have only index 0.
    fn get_at(&self, ctx: &mut H::Ctx<'_>, index: i64) -> Value {
        if index == 0 || index == -1 {
            self.get(ctx)
        } else {
            Value::Null
        }
    }

    /// Every value (`[*]`).
    fn get_all(&self, ctx: &mut H::Ctx<'_>) -> Vec<Value> {
        match self.get(ctx) {
            Value::Null => Vec::new(),
            v => vec![v],
        }
    }

    /// Writes the variable (only called when its [`PvDef`](crate::PvDef) says it is
    /// writable). Returns false when the value is refused (logged by the caller).
    fn set(&self, _ctx: &mut H::Ctx<'_>, _value: Value) -> bool {
        false
    }
}

/// Where a compiled pseudo-variable reads and writes.
pub(crate) enum PvKind<H: Host> {
    Null,
    Retcode,
    Var(usize),
    Avp(AvpId),
    Xavp(XavpSel),
    Shv(Arc<SharedVars>, usize),
    Host {
        access: Box<dyn PvAccess<H>>,
        writable: bool,
    },
}

/// `$xavp(root[item]=>field[value])`.
#[derive(Debug, Clone)]
pub(crate) struct XavpSel {
    pub root: String,
    pub item: Option<usize>,
    pub field: Option<String>,
    pub value_index: Option<usize>,
}

pub(crate) enum PvIndex<H: Host> {
    Int(i64),
    All,
    Pv(Box<Pv<H>>),
}

pub(crate) enum TransformParam<H: Host> {
    Const(Value),
    Pv(Pv<H>),
}

pub(crate) struct CompiledTransform<H: Host> {
    pub func: TransformFn,
    pub params: Vec<TransformParam<H>>,
}

/// A pseudo-variable resolved at load: reading it does no name lookup.
pub struct Pv<H: Host> {
    pub(crate) name: String,
    pub(crate) kind: PvKind<H>,
    pub(crate) index: Option<PvIndex<H>>,
    pub(crate) transforms: Vec<CompiledTransform<H>>,
}

impl<H: Host> fmt::Debug for Pv<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pv(${})", self.name)
    }
}

impl<H: Host> Pv<H> {
    /// The name as written, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether an assignment may target it (checked at load).
    pub fn is_writable(&self) -> bool {
        self.transforms.is_empty()
            && match &self.kind {
                PvKind::Null | PvKind::Retcode => false,
                PvKind::Var(_) | PvKind::Avp(_) | PvKind::Xavp(_) | PvKind::Shv(..) => true,
                PvKind::Host { writable, .. } => *writable,
            }
    }

    fn index_value(&self, ctx: &mut H::Ctx<'_>) -> Option<Result<i64, ()>> {
        match &self.index {
            None => None,
            Some(PvIndex::Int(n)) => Some(Ok(*n)),
            Some(PvIndex::All) => Some(Err(())),
            Some(PvIndex::Pv(p)) => Some(Ok(p.get(ctx).as_int())),
        }
    }

    /// Reads the value, index and transformations applied.
    pub fn get(&self, ctx: &mut H::Ctx<'_>) -> Value {
        let base = self.get_base(ctx);
        if self.transforms.is_empty() {
            return base;
        }
        let mut v = base;
        for t in &self.transforms {
            let params: Vec<Value> = t
                .params
                .iter()
                .map(|p| match p {
                    TransformParam::Const(v) => v.clone(),
                    TransformParam::Pv(pv) => pv.get(ctx),
                })
                .collect();
            v = match (t.func)(v, &params) {
                Some(v) => v,
                None => return Value::Null,
            };
        }
        v
    }

    fn get_base(&self, ctx: &mut H::Ctx<'_>) -> Value {
        let index = self.index_value(ctx);
        match &self.kind {
            PvKind::Null => Value::Null,
            PvKind::Retcode => Value::Int(i64::from(ctx.retcode())),
            PvKind::Var(slot) => ctx.vars().get(*slot).cloned().unwrap_or(Value::Int(0)),
            PvKind::Avp(id) => {
                let avps = ctx.avps();
                match index {
                    None => avps.get(*id).cloned().unwrap_or_default(),
                    Some(Ok(n)) => avps.get_at(*id, n).cloned().unwrap_or_default(),
                    Some(Err(())) => join_all(avps.all(*id).cloned().collect()),
                }
            }
            PvKind::Xavp(sel) => {
                let xavps = ctx.xavps();
                let item = xavps.item(&sel.root, sel.item.unwrap_or(0));
                match (&sel.field, item) {
                    (_, None) => Value::Null,
                    (None, Some(_)) => Value::Str(format!("<<xavp:{}>>", sel.root)),
                    (Some(field), Some(item)) => item
                        .field(field)
                        .and_then(|values| values.get(sel.value_index.unwrap_or(0)))
                        .cloned()
                        .unwrap_or_default(),
                }
            }
            PvKind::Shv(shv, slot) => shv.get(*slot),
            PvKind::Host { access, .. } => match index {
                None => access.get(ctx),
                Some(Ok(n)) => access.get_at(ctx, n),
                Some(Err(())) => join_all(access.get_all(ctx)),
            },
        }
    }

    /// Whether the variable has a value (`defined $x`).
    pub fn is_defined(&self, ctx: &mut H::Ctx<'_>) -> bool {
        !self.get(ctx).is_null()
    }

    /// Writes the variable with Kamailio's assignment rules: an AVP gets a new top value
    /// (`[*]` replaces all, `[n]` replaces one), `$null` deletes (top, all, or one); a `$var`
    /// assigned `$null` becomes 0. Returns false when the write was refused.
    pub fn set(&self, ctx: &mut H::Ctx<'_>, value: Value) -> bool {
        let index = self.index_value(ctx);
        match &self.kind {
            PvKind::Null | PvKind::Retcode => false,
            PvKind::Var(slot) => {
                let vars = ctx.vars();
                if vars.len() <= *slot {
                    vars.resize(*slot + 1, Value::Int(0));
                }
                if let Some(v) = vars.get_mut(*slot) {
                    *v = if value.is_null() {
                        Value::Int(0)
                    } else {
                        value
                    };
                }
                true
            }
            PvKind::Avp(id) => {
                let avps = ctx.avps();
                match (index, value) {
                    (None, Value::Null) => avps.remove_top(*id),
                    (None, v) => avps.push(*id, v),
                    (Some(Err(())), Value::Null) => avps.remove_all(*id),
                    (Some(Err(())), v) => {
                        avps.remove_all(*id);
                        avps.push(*id, v);
                    }
                    (Some(Ok(n)), Value::Null) => {
                        if let Ok(n) = usize::try_from(n) {
                            avps.remove_at(*id, n);
                        }
                    }
                    (Some(Ok(n)), v) => {
                        return usize::try_from(n).is_ok_and(|n| avps.set_at(*id, n, v));
                    }
                }
                true
            }
            PvKind::Xavp(sel) => {
                let xavps = ctx.xavps();
                match (&sel.field, sel.item, value) {
                    // `$xavp(x) = $null` removes the top item, as Kamailio's pv_set_xavp.
                    (None, None, Value::Null) => {
                        xavps.remove_item(&sel.root, 0);
                        true
                    }
                    (None, Some(item), Value::Null) => {
                        xavps.remove_item(&sel.root, item);
                        true
                    }
                    (None, _, _) => false,
                    (Some(field), item, Value::Null) => {
                        xavps.remove_field_top(&sel.root, item.unwrap_or(0), field);
                        true
                    }
                    (Some(field), None, v) => {
                        xavps.push_item(&sel.root, field, v);
                        true
                    }
                    (Some(field), Some(item), v) => xavps.set_field(&sel.root, item, field, v),
                }
            }
            PvKind::Shv(shv, slot) => {
                shv.set(*slot, value);
                true
            }
            PvKind::Host { access, writable } => *writable && access.set(ctx, value),
        }
    }
}

fn join_all(values: Vec<Value>) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    let mut out = String::new();
    for (k, v) in values.iter().enumerate() {
        if k > 0 {
            out.push_str(", ");
        }
        v.render(&mut out);
    }
    Value::Str(out)
}

/// A string with pseudo-variables, as function parameters take it:
/// `"for $rm the value is $avp(x)"`.
pub struct Format<H: Host> {
    parts: Vec<FormatPart<H>>,
}

enum FormatPart<H: Host> {
    Text(String),
    Pv(Pv<H>),
}

impl<H: Host> fmt::Debug for Format<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Format(")?;
        for p in &self.parts {
            match p {
                FormatPart::Text(t) => write!(f, "{t:?}")?,
                FormatPart::Pv(pv) => write!(f, "${}", pv.name)?,
            }
        }
        f.write_str(")")
    }
}

impl<H: Host> Format<H> {
    pub(crate) fn new() -> Self {
        Format { parts: Vec::new() }
    }

    pub(crate) fn push_text(&mut self, text: String) {
        self.parts.push(FormatPart::Text(text));
    }

    pub(crate) fn push_pv(&mut self, pv: Pv<H>) {
        self.parts.push(FormatPart::Pv(pv));
    }

    /// The pseudo-variable when the format is exactly one (`"$avp(x)"`), as functions that
    /// take a variable in quotes want it; the format back otherwise.
    pub fn into_single_pv(mut self) -> Result<Pv<H>, Self> {
        if self.parts.len() == 1 {
            if let Some(FormatPart::Pv(_)) = self.parts.first() {
                if let Some(FormatPart::Pv(pv)) = self.parts.pop() {
                    return Ok(pv);
                }
            }
        }
        Err(self)
    }

    /// The text when there is no pseudo-variable in it.
    pub fn as_const(&self) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                FormatPart::Text(t) => out.push_str(t),
                FormatPart::Pv(_) => return None,
            }
        }
        Some(out)
    }

    /// Appends the rendered text (null values print as `<null>`).
    pub fn render_into(&self, ctx: &mut H::Ctx<'_>, out: &mut String) {
        for p in &self.parts {
            match p {
                FormatPart::Text(t) => out.push_str(t),
                FormatPart::Pv(pv) => pv.get(ctx).render(out),
            }
        }
    }

    /// The rendered text.
    pub fn render(&self, ctx: &mut H::Ctx<'_>) -> String {
        let mut out = String::new();
        self.render_into(ctx, &mut out);
        out
    }
}
