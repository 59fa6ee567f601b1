//! `acc`: accounting to the log, as Kamailio's acc module writes it. Transactions whose
//! request carried `log_flag` are logged when their final reply goes upstream
//! (`ACC: transaction answered: ...`, negative ones too with `failed_transaction_flag`),
//! INVITEs with `log_missed_flag` that fail are logged as missed calls (`ACC: call missed:
//! ...`), and `acc_log_request(comment)` logs the current request
//! (`ACC: request accounted: ...`). Each record is
//! `timestamp=T;method=M;from_tag=F;to_tag=T;call_id=C;code=N;reason=R` followed by the
//! `log_extra` pairs. Database and CDR accounting are not provided.

use parking_lot::Mutex;
use sable_engine::tm::TmEvent;
use sable_engine::{
    function, int_param, required, str_param, Core, Module, MsgCtx, ParamError, Sip,
};
use sable_script::ast::Literal;
use sable_script::{Registry, RouteMask, Value};
use sable_sip::{Message, Method};
use std::collections::HashSet;
use std::sync::{Arc, Weak};

#[derive(Debug, Clone)]
struct AccParams {
    log_flag: Option<u32>,
    missed_flag: Option<u32>,
    failed_flag: Option<u32>,
    log_level: i32,
    /// `log_extra`: (name, pseudo-variable text).
    extra: Vec<(String, String)>,
    early_media: bool,
    report_cancels: bool,
    failed_filter: Vec<u16>,
    reason_from_hf: bool,
}

impl Default for AccParams {
    fn default() -> Self {
        AccParams {
            log_flag: None,
            missed_flag: None,
            failed_flag: None,
            // L_NOTICE.
            log_level: 1,
            extra: Vec::new(),
            early_media: false,
            report_cancels: false,
            failed_filter: Vec::new(),
            reason_from_hf: false,
        }
    }
}

fn flag_set(flags: u32, flag: Option<u32>) -> bool {
    flag.is_some_and(|f| flags & (1 << f) != 0)
}

/// `log_extra`: `name=$pv;name=$pv...`.
fn parse_extra(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, pv) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not name=$pseudo-variable"))?;
        let (name, pv) = (name.trim(), pv.trim());
        if name.is_empty() || !pv.starts_with('$') {
            return Err(format!("`{part}` is not name=$pseudo-variable"));
        }
        out.push((name.to_owned(), pv.to_owned()));
    }
    Ok(out)
}

/// The leading status code of an `acc_log_request()` comment (`"200 OK"`), and the rest.
fn split_comment(comment: &str) -> (String, String) {
    let b = comment.as_bytes();
    if b.len() >= 3 && b.iter().take(3).all(u8::is_ascii_digit) {
        let code = comment.get(..3).unwrap_or("").to_owned();
        let reason = comment.get(3..).unwrap_or("").trim_start().to_owned();
        (code, reason)
    } else {
        (String::new(), comment.to_owned())
    }
}

/// One accounting record: the core attributes, then the extras.
struct Record<'a> {
    text: &'a str,
    method: String,
    from_tag: String,
    to_tag: String,
    call_id: String,
    code: String,
    reason: String,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The module's state, a core service.
#[derive(Debug)]
pub struct Acc {
    p: AccParams,
    /// Transactions whose request asked for accounting, until their final reply.
    txs: Mutex<HashSet<u64>>,
    core: std::sync::OnceLock<Weak<Core>>,
}

impl Acc {
    /// Writes a record of `rec` with the extras evaluated on `ctx` (the request).
    fn log(&self, ctx: &mut MsgCtx<'_>, rec: &Record<'_>) {
        let mut line = format!(
            "{}timestamp={};method={};from_tag={};to_tag={};call_id={};code={};reason={}",
            rec.text,
            unix_now(),
            rec.method,
            rec.from_tag,
            rec.to_tag,
            rec.call_id,
            rec.code,
            rec.reason
        );
        let program = ctx.program.clone();
        for (name, pv) in &self.p.extra {
            line.push(';');
            line.push_str(name);
            line.push('=');
            if let Some(pv) = program.as_ref().and_then(|p| p.module_pv(pv)) {
                let v = pv.get(ctx);
                if !matches!(v, Value::Null) {
                    v.render(&mut line);
                }
            }
        }
        acc_log(self.p.log_level, &line);
    }

    /// The request's own attributes.
    fn request_record<'t>(text: &'t str, msg: &Message<'_>) -> Record<'t> {
        Record {
            text,
            method: msg
                .method()
                .map(|m| lossy(m.as_bytes()))
                .unwrap_or_default(),
            from_tag: msg
                .from()
                .ok()
                .and_then(|f| f.tag().map(lossy))
                .unwrap_or_default(),
            to_tag: msg
                .to()
                .ok()
                .and_then(|t| t.tag().map(lossy))
                .unwrap_or_default(),
            call_id: msg.call_id().map(lossy).unwrap_or_default(),
            code: String::new(),
            reason: String::new(),
        }
    }

    fn on_tm(&self, event: &TmEvent<'_, '_>) {
        match event {
            TmEvent::Created { tx, ctx } => {
                let flags = ctx.flags;
                let wanted =
                    flag_set(flags, self.p.log_flag) || flag_set(flags, self.p.missed_flag);
                let cancel = ctx.msg.method() == Some(Method::Cancel);
                if wanted && (!cancel || self.p.report_cancels) {
                    self.txs.lock().insert(tx.id);
                }
            }
            TmEvent::ReplySent { tx, code, reply } => {
                let code = *code;
                // A transaction is followed until its final reply: that one is accounted
                // (at most once), provisional ones only for early media.
                let tracked = {
                    let mut txs = self.txs.lock();
                    if code >= 200 {
                        txs.remove(&tx.id)
                    } else {
                        self.p.early_media && txs.contains(&tx.id)
                    }
                };
                if !tracked {
                    return;
                }
                let flags = tx.flags();
                let missed = tx.invite && code >= 300 && flag_set(flags, self.p.missed_flag);
                let answered = flag_set(flags, self.p.log_flag)
                    && (code < 300
                        || (flag_set(flags, self.p.failed_flag)
                            && !self.p.failed_filter.contains(&code)));
                if !missed && !answered {
                    return;
                }
                let Ok(reply) = Message::parse(reply) else {
                    return;
                };
                // Early media: a provisional reply counts only with a body.
                if code < 200 && reply.content_length().unwrap_or(0) == 0 {
                    return;
                }
                let Some(core) = self.core.get().and_then(Weak::upgrade) else {
                    return;
                };
                let to_tag = reply
                    .to()
                    .ok()
                    .and_then(|t| t.tag().map(lossy))
                    .unwrap_or_default();
                let reason = self
                    .p
                    .reason_from_hf
                    .then(|| {
                        reply
                            .headers_by_name(b"Reason")
                            .next()
                            .map(|h| lossy(reply.value(h)))
                    })
                    .flatten()
                    .unwrap_or_else(|| lossy(reply.reason().unwrap_or_default()));
                tx.with_request_ctx(&core, RouteMask::TM_ONREPLY, Vec::new(), |ctx| {
                    for (on, text) in [
                        (missed, "ACC: call missed: "),
                        (answered, "ACC: transaction answered: "),
                    ] {
                        if on {
                            let mut rec = Self::request_record(text, &ctx.msg);
                            rec.to_tag.clone_from(&to_tag);
                            rec.code = code.to_string();
                            rec.reason.clone_from(&reason);
                            self.log(ctx, &rec);
                        }
                    }
                });
            }
            TmEvent::Freed { tx } => {
                self.txs.lock().remove(&tx.id);
            }
        }
    }
}

/// Writes an accounting line at a Kamailio log level.
fn acc_log(level: i32, text: &str) {
    match level {
        i32::MIN..=-1 => tracing::error!(target: "acc", "{text}"),
        0 => tracing::warn!(target: "acc", "{text}"),
        1 | 2 => tracing::info!(target: "acc", "{text}"),
        3 => tracing::debug!(target: "acc", "{text}"),
        _ => tracing::trace!(target: "acc", "{text}"),
    }
}

/// The module.
#[derive(Debug, Default)]
pub struct AccModule {
    p: AccParams,
    ignored: Vec<String>,
}

fn on_off(value: &Literal) -> Result<bool, ParamError> {
    Ok(int_param(value)? != 0)
}

impl Module for AccModule {
    fn name(&self) -> &'static str {
        "acc"
    }

    fn set_param(&mut self, name: &str, value: &Literal) -> Result<(), ParamError> {
        let p = &mut self.p;
        match name {
            "log_flag" => p.log_flag = sable_engine::flag_param(value)?,
            "log_missed_flag" => p.missed_flag = sable_engine::flag_param(value)?,
            "failed_transaction_flag" => p.failed_flag = sable_engine::flag_param(value)?,
            "log_level" => {
                p.log_level =
                    i32::try_from(int_param(value)?).map_err(|_| ParamError::bad("a log level"))?;
            }
            "log_extra" => {
                p.extra = parse_extra(&str_param(value)?).map_err(ParamError::bad)?;
            }
            "early_media" => p.early_media = on_off(value)?,
            "report_cancels" => p.report_cancels = on_off(value)?,
            "reason_from_hf" => p.reason_from_hf = on_off(value)?,
            "failed_filter" => {
                let text = str_param(value)?;
                p.failed_filter = text
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(|c| c.parse::<u16>().ok().filter(|c| (100..700).contains(c)))
                    .collect::<Option<Vec<u16>>>()
                    .ok_or_else(|| ParamError::bad("status codes separated by commas"))?;
            }
            // Accepted so that Kamailio's configs load; what they turn on is not provided.
            "report_ack"
            | "detect_direction"
            | "time_mode"
            | "cdr_enable"
            | "cdr_extra"
            | "cdr_start_id"
            | "cdr_end_id"
            | "cdr_duration_id"
            | "db_flag"
            | "db_missed_flag"
            | "db_url"
            | "db_extra"
            | "db_table_acc"
            | "db_table_missed_calls"
            | "db_insert_mode"
            | "log_facility"
            | "acc_prepare_flag"
            | "clone_msg" => {
                let on = match value {
                    Literal::Int(n) => *n > 0,
                    Literal::Str(s) => !s.trim().is_empty(),
                };
                if on && name != "log_facility" && name != "clone_msg" {
                    self.ignored.push(format!(
                        "acc: parameter {name} has no effect in Sable (log accounting only)"
                    ));
                }
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        self.ignored.clone()
    }

    fn pvs(&self) -> Vec<String> {
        self.p.extra.iter().map(|(_, pv)| pv.clone()).collect()
    }

    fn init(&self, core: &Arc<Core>) -> Result<(), String> {
        if core.service::<Acc>().is_some() {
            return Ok(());
        }
        let acc = Arc::new(Acc {
            p: self.p.clone(),
            txs: Mutex::new(HashSet::new()),
            core: std::sync::OnceLock::new(),
        });
        let _ = acc.core.set(Arc::downgrade(core));
        let tm = core
            .tm
            .get()
            .cloned()
            .ok_or("acc: needs tm (loadmodule \"tm.so\" before \"acc.so\")")?;
        let weak = Arc::downgrade(&acc);
        tm.subscribe(Arc::new(move |ev: &TmEvent<'_, '_>| {
            if let Some(acc) = weak.upgrade() {
                acc.on_tm(ev);
            }
        }));
        core.provide(acc);
        Ok(())
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        let routes = RouteMask(
            RouteMask::REQUEST.0
                | RouteMask::FAILURE.0
                | RouteMask::BRANCH.0
                | RouteMask::TM_ONREPLY.0,
        );
        reg.function(
            "acc_log_request",
            function("acc", 1, 1, routes, |_, mut args| {
                let comment = required(&mut args, 1, "comment")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(acc) = ctx.core.service::<Acc>() else {
                        return -1;
                    };
                    let comment = comment.eval(ctx).into_owned();
                    let (code, reason) = split_comment(&comment);
                    let mut rec = Acc::request_record("ACC: request accounted: ", &ctx.msg);
                    rec.code = code;
                    rec.reason = reason;
                    acc.log(ctx, &rec);
                    1
                }))
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_and_comments_parse() {
        assert_eq!(
            parse_extra("src_user=$fU;src_domain=$fd; src_ip=$si").unwrap(),
            vec![
                ("src_user".to_owned(), "$fU".to_owned()),
                ("src_domain".to_owned(), "$fd".to_owned()),
                ("src_ip".to_owned(), "$si".to_owned())
            ]
        );
        assert!(parse_extra("src_user").is_err());
        assert!(parse_extra("src_user=fU").is_err());
        assert_eq!(
            split_comment("200 Call answered"),
            ("200".to_owned(), "Call answered".to_owned())
        );
        assert_eq!(
            split_comment("missed"),
            (String::new(), "missed".to_owned())
        );
    }

    #[test]
    fn parameters() {
        let mut m = AccModule::default();
        assert!(m.set_param("log_flag", &Literal::Int(1)).is_ok());
        assert_eq!(m.p.log_flag, Some(1));
        assert!(m.set_param("log_flag", &Literal::Int(40)).is_err());
        assert!(m
            .set_param("failed_filter", &Literal::Str("404,407".into()))
            .is_ok());
        assert_eq!(m.p.failed_filter, vec![404, 407]);
        assert!(m
            .set_param("failed_filter", &Literal::Str("40x".into()))
            .is_err());
        assert!(m.set_param("db_flag", &Literal::Int(1)).is_ok());
        assert_eq!(m.warnings().len(), 1);
        assert!(m.set_param("report_ack", &Literal::Int(0)).is_ok());
        assert_eq!(m.warnings().len(), 1, "off: nothing to say");
        assert!(m.set_param("nope", &Literal::Int(0)).is_err());
    }
}
