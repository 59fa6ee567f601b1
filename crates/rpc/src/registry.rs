//! The method registry: names, help texts, signatures, handlers.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::error::RpcError;
use crate::params::Params;
use crate::Json;

/// What a method's result is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// The result is the single value the handler returns.
    Value,
    /// The result is a JSON array (Kamailio's `RET_ARRAY` flag: `dlg.list`, `tm.list`, ...).
    /// The handler returns an array; `null` is taken as `[]` and any other single value as a
    /// one-element array, so a list method always answers an array (defect D11: Sable returns
    /// arrays for every list-type result).
    List,
}

/// A method's implementation: parameters in, result or fault out. Handlers run on the
/// control-plane threads, concurrently, so they must be `Send + Sync`.
pub type Handler = Arc<dyn Fn(&Params) -> Result<Json, RpcError> + Send + Sync>;

/// Registering a name twice: modules must not silently replace each other's methods.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RPC method {name:?} is already registered")]
pub struct DuplicateMethod {
    /// The name registered twice.
    pub name: String,
}

/// The public description of a registered method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodInfo {
    /// One line (or a few) saying what the method does and what it takes.
    pub help: String,
    /// Parameter types for `system.methodSignature`, e.g. `["string", "int"]`.
    pub signature: Vec<String>,
    /// Whether the result is a list.
    pub kind: MethodKind,
}

#[derive(Clone)]
enum Implementation {
    Handler(Handler),
    /// The `system.*` methods answer from the registry itself.
    ListMethods,
    MethodHelp,
    MethodSignature,
}

#[derive(Clone)]
struct Method {
    info: MethodInfo,
    implementation: Implementation,
}

/// All methods a server offers, by name.
///
/// Methods are registered while the server is being set up (`&mut self`); the registry is then
/// wrapped in an `Arc` and is immutable, so calls take no lock.
#[derive(Clone)]
pub struct Registry {
    methods: BTreeMap<String, Method>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// A registry holding the introspection methods `system.listMethods`,
    /// `system.methodHelp NAME` and `system.methodSignature NAME`.
    pub fn new() -> Self {
        let mut methods = BTreeMap::new();
        let system = [
            (
                "system.listMethods",
                "Lists the names of all RPC methods, sorted.",
                Vec::new(),
                MethodKind::List,
                Implementation::ListMethods,
            ),
            (
                "system.methodHelp",
                "Returns the help text of the method named by the parameter.",
                vec!["string".to_owned()],
                MethodKind::Value,
                Implementation::MethodHelp,
            ),
            (
                "system.methodSignature",
                "Returns the parameter types of the method named by the parameter.",
                vec!["string".to_owned()],
                MethodKind::List,
                Implementation::MethodSignature,
            ),
        ];
        for (name, help, signature, kind, implementation) in system {
            methods.insert(
                name.to_owned(),
                Method {
                    info: MethodInfo {
                        help: help.to_owned(),
                        signature,
                        kind,
                    },
                    implementation,
                },
            );
        }
        Registry { methods }
    }

    /// Adds a method. Fails if the name is already taken (including the `system.*` names).
    pub fn register<F, S>(
        &mut self,
        name: impl Into<String>,
        help: impl Into<String>,
        signature: S,
        kind: MethodKind,
        handler: F,
    ) -> Result<(), DuplicateMethod>
    where
        F: Fn(&Params) -> Result<Json, RpcError> + Send + Sync + 'static,
        S: IntoIterator,
        S::Item: Into<String>,
    {
        let name = name.into();
        if self.methods.contains_key(&name) {
            return Err(DuplicateMethod { name });
        }
        self.methods.insert(
            name,
            Method {
                info: MethodInfo {
                    help: help.into(),
                    signature: signature.into_iter().map(Into::into).collect(),
                    kind,
                },
                implementation: Implementation::Handler(Arc::new(handler)),
            },
        );
        Ok(())
    }

    /// Runs a method. An unknown name is Kamailio's `500 "Method Not Found"`.
    ///
    /// A panicking handler is not caught here; [`crate::handle_request`] catches it.
    pub fn call(&self, method: &str, params: &Params) -> Result<Json, RpcError> {
        let entry = self.methods.get(method).ok_or_else(RpcError::not_found)?;
        let result = match &entry.implementation {
            Implementation::Handler(handler) => handler(params)?,
            Implementation::ListMethods => Value::Array(
                self.methods
                    .keys()
                    .map(|name| Value::from(name.as_str()))
                    .collect(),
            ),
            Implementation::MethodHelp => Value::from(self.named(params)?.help.as_str()),
            Implementation::MethodSignature => Value::Array(
                self.named(params)?
                    .signature
                    .iter()
                    .map(|kind| Value::from(kind.as_str()))
                    .collect(),
            ),
        };
        Ok(match (entry.info.kind, result) {
            (MethodKind::Value, value) => value,
            (MethodKind::List, Value::Array(items)) => Value::Array(items),
            (MethodKind::List, Value::Null) => Value::Array(Vec::new()),
            (MethodKind::List, single) => Value::Array(vec![single]),
        })
    }

    /// All method names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.methods.keys().map(String::as_str)
    }

    /// A method's description.
    pub fn info(&self, method: &str) -> Option<&MethodInfo> {
        self.methods.get(method).map(|entry| &entry.info)
    }

    /// Whether a method exists.
    pub fn contains(&self, method: &str) -> bool {
        self.methods.contains_key(method)
    }

    fn named(&self, params: &Params) -> Result<&MethodInfo, RpcError> {
        let name = params.str(0)?;
        self.info(name).ok_or_else(RpcError::not_found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn registry() -> Registry {
        let mut registry = Registry::new();
        registry
            .register(
                "core.echo",
                "Returns its parameters.",
                ["string"],
                MethodKind::List,
                |params: &Params| Ok(Value::Array(params.values().to_vec())),
            )
            .unwrap();
        registry
            .register(
                "core.add",
                "Adds two integers.",
                vec!["int".to_owned(), "int".to_owned()],
                MethodKind::Value,
                |params: &Params| Ok(json!(params.int(0)? + params.int(1)?)),
            )
            .unwrap();
        registry
            .register(
                "core.none",
                "A list method that found nothing.",
                Vec::<String>::new(),
                MethodKind::List,
                |_: &Params| Ok(Value::Null),
            )
            .unwrap();
        registry
    }

    #[test]
    fn list_methods_is_sorted_and_includes_system_methods() {
        let result = registry()
            .call("system.listMethods", &Params::default())
            .unwrap();
        assert_eq!(
            result,
            json!([
                "core.add",
                "core.echo",
                "core.none",
                "system.listMethods",
                "system.methodHelp",
                "system.methodSignature"
            ])
        );
    }

    #[test]
    fn method_help_and_signature() {
        let registry = registry();
        let p = Params::new(vec![json!("core.add")]);
        assert_eq!(
            registry.call("system.methodHelp", &p).unwrap(),
            json!("Adds two integers.")
        );
        assert_eq!(
            registry.call("system.methodSignature", &p).unwrap(),
            json!(["int", "int"])
        );
        let unknown = Params::new(vec![json!("no.such")]);
        assert_eq!(
            registry.call("system.methodHelp", &unknown).unwrap_err(),
            RpcError::not_found()
        );
        assert_eq!(
            registry
                .call("system.methodHelp", &Params::default())
                .unwrap_err()
                .code,
            -32602
        );
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut registry = registry();
        let error = registry
            .register(
                "core.add",
                "again",
                ["int"],
                MethodKind::Value,
                |_: &Params| Ok(Value::Null),
            )
            .unwrap_err();
        assert_eq!(error.name, "core.add");
        assert!(registry
            .register(
                "system.listMethods",
                "mine",
                Vec::<String>::new(),
                MethodKind::List,
                |_: &Params| Ok(Value::Null)
            )
            .is_err());
        // The first registration is kept.
        assert_eq!(
            registry.info("core.add").unwrap().help,
            "Adds two integers."
        );
    }

    #[test]
    fn unknown_method_is_not_found() {
        assert_eq!(
            registry().call("no.such", &Params::default()).unwrap_err(),
            RpcError::not_found()
        );
    }

    #[test]
    fn list_methods_always_answer_arrays() {
        let registry = registry();
        assert_eq!(
            registry.call("core.none", &Params::default()).unwrap(),
            json!([])
        );
        assert_eq!(
            registry
                .call("core.echo", &Params::new(vec![json!(1), json!("a")]))
                .unwrap(),
            json!([1, "a"])
        );
        assert_eq!(registry.info("core.echo").unwrap().kind, MethodKind::List);
    }

    #[test]
    fn handler_errors_pass_through() {
        assert_eq!(
            registry()
                .call("core.add", &Params::new(vec![json!(1), json!("x")]))
                .unwrap_err()
                .code,
            -32602
        );
    }

    #[test]
    fn registry_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Registry>();
        assert_send_sync::<Arc<Registry>>();
    }
}
