//! `ctl`: where the control socket (`sablectl`'s) listens. Kamailio's ctl serves BINRPC on it;
//! Sable serves JSON-RPC, one document per line, to `sablectl`.
//!
//! `modparam("ctl", "binrpc", "unix:/run/sable/sable_ctl")` and `modparam("ctl", "mode",
//! 0660)`; without the module the socket is at its default path (see docs/running.md).

use sable_engine::{int_param, str_param, Module, ParamError, Sip};
use sable_script::Registry;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Ctl {
    path: Option<PathBuf>,
    mode: Option<u32>,
    warnings: Vec<String>,
}

/// A file mode written as Kamailio configs write it: `0660` (octal digits; the config
/// lexer reads it as the decimal 660).
fn octal_mode(n: i64) -> Option<u32> {
    let digits = n.to_string();
    if digits.chars().all(|c| ('0'..='7').contains(&c)) {
        u32::from_str_radix(&digits, 8).ok().filter(|m| *m <= 0o777)
    } else {
        None
    }
}

impl Module for Ctl {
    fn name(&self) -> &'static str {
        "ctl"
    }

    fn set_param(
        &mut self,
        name: &str,
        value: &sable_script::ast::Literal,
    ) -> Result<(), ParamError> {
        match name {
            "binrpc" => {
                let v = str_param(value)?;
                let path = match v.split_once(':') {
                    Some(("unix", p)) => p,
                    Some((proto, _)) if ["udp", "tcp", "unixd", "unixs"].contains(&proto) => {
                        return Err(ParamError::bad(format!(
                            "unix:/path (a {proto} control socket is not supported)"
                        )))
                    }
                    _ => v.as_str(),
                };
                if path.is_empty() {
                    return Err(ParamError::bad("unix:/path"));
                }
                self.path = Some(PathBuf::from(path));
            }
            "mode" => {
                let m = int_param(value)?;
                self.mode =
                    Some(octal_mode(m).ok_or_else(|| ParamError::bad("a file mode such as 0660"))?);
            }
            "user" | "group" | "fifo" => {
                str_param(value)?;
                self.warnings
                    .push(format!("modparam(\"ctl\", \"{name}\"): no effect in Sable"));
            }
            "binrpc_max_body_size" | "binrpc_struct_max_body_size" => {
                int_param(value)?;
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn register(&self, _reg: &mut Registry<Sip>) {}

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn init(&self, core: &Arc<sable_engine::Core>) -> Result<(), String> {
        // A mode without a path applies to the default socket.
        if self.path.is_some() || self.mode.is_some() {
            let path = self
                .path
                .clone()
                .unwrap_or_else(|| core.config.run_dir.join("sable_ctl"));
            let _ = core.ctl_socket.set((path, self.mode.unwrap_or(0o660)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal() {
        assert_eq!(octal_mode(660), Some(0o660));
        assert_eq!(octal_mode(600), Some(0o600));
        assert_eq!(octal_mode(680), None);
        assert_eq!(octal_mode(7777), None);
    }
}
