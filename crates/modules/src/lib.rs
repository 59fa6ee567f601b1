//! Sable's built-in modules, one file each, with Kamailio's names, parameters, functions
//! and return codes. The binary hands [`all`] to the engine; `loadmodule` in the config
//! decides which ones a script may use.

mod acc;
mod auth;
mod cfg_rpc;
mod corex;
mod counters;
mod ctl;
pub mod dialog;
mod dlgs;
mod jsonrpcs;
pub mod keepalive;
mod kex;
mod maxfwd;
pub mod peerstate;
mod pv;
mod registrar;
mod rr;
mod sanity;
mod siputils;
mod sl;
mod statistics;
mod textops;
mod tm;
mod tmx;
pub mod usrloc;
mod xhttp;
mod xhttp_prom;
mod xlog;

use sable_engine::Module;

/// One instance of every built-in module.
pub fn all() -> Vec<Box<dyn Module>> {
    vec![
        Box::new(sl::Sl::default()),
        Box::new(textops::Textops),
        Box::new(textops::Textopsx),
        Box::new(maxfwd::Maxfwd::default()),
        Box::new(xlog::Xlog),
        Box::new(siputils::Siputils),
        Box::new(sanity::Sanity::default()),
        Box::new(rr::Rr::default()),
        Box::new(tm::TmModule::default()),
        Box::new(tmx::Tmx),
        Box::new(acc::AccModule::default()),
        Box::new(dialog::DialogModule::default()),
        Box::new(dlgs::Dlgs::default()),
        Box::new(keepalive::KeepaliveModule::default()),
        Box::new(usrloc::UsrlocModule::default()),
        Box::new(registrar::Registrar::default()),
        Box::new(peerstate::PeerstateModule::default()),
        Box::new(auth::Auth::default()),
        Box::new(auth::AuthDb::default()),
        Box::new(kex::Kex),
        Box::new(pv::Pv),
        Box::new(corex::Corex),
        Box::new(counters::Counters::new()),
        Box::new(statistics::Statistics::default()),
        Box::new(xhttp::Xhttp::default()),
        Box::new(jsonrpcs::Jsonrpcs::default()),
        Box::new(ctl::Ctl::default()),
        Box::new(cfg_rpc::CfgRpc),
        Box::new(xhttp_prom::XhttpProm::default()),
    ]
}
