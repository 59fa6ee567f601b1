//! The module interface: what a built-in module gives the engine.

use crate::context::Sip;
use crate::core::Core;
use sable_script::ast::Literal;
use sable_script::Registry;

/// Why a `modparam` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown parameter")]
    Unknown,
    #[error("expects {expected}")]
    BadValue { expected: String },
}

impl ParamError {
    pub fn bad(expected: impl Into<String>) -> Self {
        ParamError::BadValue {
            expected: expected.into(),
        }
    }
}

/// A built-in module (`sl`, `textops`, `tm`...). All modules are compiled in; `loadmodule`
/// makes one's functions and pseudo-variables usable in the script.
///
/// Order of calls: [`set_param`](Module::set_param) for each `modparam`, then
/// [`register`](Module::register), then [`init`](Module::init) once the sockets are bound,
/// and [`stop`](Module::stop) when the server stops gracefully.
pub trait Module: Send + Sync + std::fmt::Debug {
    /// Kamailio's module name.
    fn name(&self) -> &'static str;

    /// Applies a `modparam("name", ...)`.
    fn set_param(&mut self, name: &str, value: &Literal) -> Result<(), ParamError> {
        let _ = value;
        let _ = name;
        Err(ParamError::Unknown)
    }

    /// Adds the module's functions, pseudo-variables and transformations.
    fn register(&self, registry: &mut Registry<Sip>);

    /// What the module accepted without acting on it (parameters with no effect in Sable),
    /// shown by `sable -c` and logged at start.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// Adds the module's RPC methods (called once, after `init`).
    fn rpc(&self, registry: &mut sable_rpc::Registry, core: &std::sync::Arc<Core>) {
        let _ = (registry, core);
    }

    /// Pseudo-variables its parameters name (`"$fU"`), compiled with the config; read them
    /// at run time with `Program::module_pv`.
    fn pvs(&self) -> Vec<String> {
        Vec::new()
    }

    /// Starts the module (timers, tables) once the core is ready.
    fn init(&self, core: &std::sync::Arc<Core>) -> Result<(), String> {
        let _ = core;
        Ok(())
    }

    /// The server is stopping gracefully and no message is handled any more: write what is
    /// kept for later (Kamailio's `mod_destroy`: usrloc and dialog write their pending
    /// changes back).
    fn stop(&self, core: &std::sync::Arc<Core>) {
        let _ = core;
    }
}

/// Integer value of a modparam.
pub fn int_param(value: &Literal) -> Result<i64, ParamError> {
    match value {
        Literal::Int(n) => Ok(*n),
        Literal::Str(s) => s.trim().parse().map_err(|_| ParamError::bad("an integer")),
    }
}

/// String value of a modparam.
pub fn str_param(value: &Literal) -> Result<String, ParamError> {
    match value {
        Literal::Str(s) => Ok(s.clone()),
        Literal::Int(n) => Ok(n.to_string()),
    }
}

/// A message flag named by a modparam: 0-31, or -1 for none.
pub fn flag_param(value: &Literal) -> Result<Option<u32>, ParamError> {
    match int_param(value)? {
        -1 => Ok(None),
        n @ 0..=31 => Ok(u32::try_from(n).ok()),
        n => Err(ParamError::bad(format!(
            "a flag number 0-31, or -1 for none (got {n})"
        ))),
    }
}

/// An AVP named by a modparam (`"$avp(name)"`, `"$avp(s:name)"`): its name.
pub fn avp_param(value: &Literal) -> Result<String, ParamError> {
    let v = str_param(value)?;
    v.trim()
        .strip_prefix("$avp(")
        .and_then(|s| s.strip_suffix(')'))
        .map(|s| {
            s.trim_start_matches("s:")
                .trim_start_matches("i:")
                .to_owned()
        })
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ParamError::bad("an AVP: $avp(name)"))
}

/// The modules of a server: every built-in one, and which of them the config loaded.
#[derive(Debug, Default)]
pub struct ModuleSet {
    modules: Vec<Box<dyn Module>>,
    loaded: Vec<&'static str>,
}

impl ModuleSet {
    pub fn new(modules: Vec<Box<dyn Module>>) -> Self {
        ModuleSet {
            modules,
            loaded: Vec::new(),
        }
    }

    /// The module name of a `loadmodule` path: `"/usr/lib/kamailio/modules/tm.so"`,
    /// `"tm.so"` and `"tm"` all name `tm`.
    pub fn module_name(path: &str) -> &str {
        let base = path.rsplit('/').next().unwrap_or(path);
        base.strip_suffix(".so").unwrap_or(base)
    }

    /// Marks a module loaded; false when there is no such module.
    pub fn load(&mut self, path: &str) -> bool {
        let name = Self::module_name(path);
        match self.modules.iter().find(|m| m.name() == name) {
            Some(m) => {
                let n = m.name();
                if !self.loaded.contains(&n) {
                    self.loaded.push(n);
                }
                true
            }
            None => false,
        }
    }

    pub fn is_loaded(&self, name: &str) -> bool {
        self.loaded.contains(&name)
    }

    pub fn loaded(&self) -> &[&'static str] {
        &self.loaded
    }

    /// Whether a module of that name exists at all.
    pub fn exists(&self, name: &str) -> bool {
        self.modules.iter().any(|m| m.name() == name)
    }

    /// Applies a modparam to a module (which must be loaded).
    pub fn set_param(
        &mut self,
        module: &str,
        name: &str,
        value: &Literal,
    ) -> Result<(), ParamError> {
        match self.modules.iter_mut().find(|m| m.name() == module) {
            Some(m) => m.set_param(name, value),
            None => Err(ParamError::Unknown),
        }
    }

    /// Registers every module's functions (loaded or not: the compile step refuses the
    /// functions of modules that are not loaded, with a hint to load them).
    pub fn register(&self, registry: &mut Registry<Sip>) {
        for m in &self.modules {
            m.register(registry);
        }
    }

    /// The warnings of the loaded modules.
    pub fn warnings(&self) -> Vec<String> {
        self.modules
            .iter()
            .filter(|m| self.is_loaded(m.name()))
            .flat_map(|m| m.warnings())
            .collect()
    }

    /// Adds the RPC methods of the loaded modules.
    pub fn rpc(&self, registry: &mut sable_rpc::Registry, core: &std::sync::Arc<Core>) {
        for m in &self.modules {
            if self.is_loaded(m.name()) {
                m.rpc(registry, core);
            }
        }
    }

    /// The pseudo-variables the loaded modules' parameters name.
    pub fn pvs(&self) -> Vec<String> {
        self.modules
            .iter()
            .filter(|m| self.is_loaded(m.name()))
            .flat_map(|m| m.pvs())
            .collect()
    }

    /// Starts the loaded modules.
    pub fn init(&self, core: &std::sync::Arc<Core>) -> Result<(), String> {
        for m in &self.modules {
            if self.is_loaded(m.name()) {
                m.init(core)
                    .map_err(|e| format!("module {}: {e}", m.name()))?;
            }
        }
        Ok(())
    }

    /// Stops the loaded modules, in the reverse order of their start.
    pub fn stop(&self, core: &std::sync::Arc<Core>) {
        for m in self.modules.iter().rev() {
            if self.is_loaded(m.name()) {
                m.stop(core);
            }
        }
    }
}
