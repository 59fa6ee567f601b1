//! `auth` and `auth_db`: digest authentication. The computations are `sable_auth`'s (nonces
//! bound to the server secret, nonce counts, RFC 7616 responses, Kamailio's return codes and
//! challenge format); `auth` gives the challenges, `consume_credentials`, `has_credentials`
//! and the `pv_*` checks against a password in a variable; `auth_db` checks against the
//! subscriber table of the SQLite database (`www_authorize`, `proxy_authorize`,
//! `auth_check`).

use parking_lot::Mutex;
use sable_auth::{
    check_identity, Algorithm, ChallengeKind, ChallengeOptions, Identity, IdentityChecks,
    NonceMaker, NonceTracker, Outcome, Precheck, Request, Stored, UserHost, Verifier,
};
use sable_engine::{
    function, int_param, required, send_reply, str_param, take_arg, Core, Counter, Module, MsgCtx,
    ParamError, Sip,
};
use sable_script::ast::Literal;
use sable_script::{Arg, ArgError, IntArg, Registry, RouteMask, StrArg};
use sable_sip::{HeaderName, Method};
use std::sync::Arc;

/// `auth`'s state shared with `auth_db`: the nonce key and the nonce-count memory.
pub struct AuthState {
    nonces: NonceMaker,
    tracker: NonceTracker,
    nonce_count: bool,
    one_time: bool,
    algorithm: Option<Algorithm>,
    qop_auth: bool,
    realm_prefix: String,
    /// Failed checks (-2 wrong password, -3 unknown user): Sable's own counter.
    failures: Arc<Counter>,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState").finish()
    }
}

/// `auth`'s parameters.
#[derive(Debug, Clone)]
struct AuthParams {
    secret: Option<String>,
    nonce_expire: u64,
    nonce_count: bool,
    one_time_nonce: bool,
    nc_array_order: u32,
    algorithm: Option<Algorithm>,
    qop: bool,
    realm_prefix: String,
}

impl Default for AuthParams {
    fn default() -> Self {
        AuthParams {
            secret: None,
            nonce_expire: 300,
            nonce_count: false,
            one_time_nonce: false,
            nc_array_order: 20,
            algorithm: None,
            qop: false,
            realm_prefix: String::new(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Auth {
    p: AuthParams,
    failures: Arc<Counter>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A secret when the config gives none: random per start (nonces of an earlier run are
/// refused), as Kamailio's.
fn random_secret() -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    let mut seed = format!(
        "{:?}{}{:?}",
        std::time::SystemTime::now(),
        std::process::id(),
        std::thread::current().id()
    );
    if let Ok(bytes) = std::fs::read("/proc/sys/kernel/random/uuid") {
        seed.push_str(&String::from_utf8_lossy(&bytes));
    }
    for k in 0u8..4 {
        let h = sable_engine::sip_util::hash64(format!("{seed}{k}").as_bytes());
        out.extend_from_slice(&h.to_le_bytes());
    }
    out
}

fn state(ctx: &MsgCtx<'_>) -> Option<Arc<AuthState>> {
    ctx.core.service::<AuthState>()
}

/// The realm argument, or the To host (REGISTER) / From host (others) when empty.
fn realm_of(ctx: &mut MsgCtx<'_>, arg: &StrArg<Sip>, st: &AuthState) -> String {
    let r = arg.eval(ctx).into_owned();
    let r = if r.is_empty() {
        let na = if ctx.msg.method() == Some(Method::Register) {
            ctx.msg.to()
        } else {
            ctx.msg.from()
        };
        na.ok()
            .and_then(|n| {
                n.uri
                    .as_sip()
                    .map(|s| String::from_utf8_lossy(s.host().as_bytes()).into_owned())
            })
            .unwrap_or_default()
    } else {
        r
    };
    String::from_utf8_lossy(sable_auth::strip_realm_prefix(
        r.as_bytes(),
        st.realm_prefix.as_bytes(),
    ))
    .into_owned()
}

/// Sends a challenge (401 with WWW-Authenticate or 407 with Proxy-Authenticate).
fn challenge(ctx: &mut MsgCtx<'_>, kind: ChallengeKind, realm: &str, flags: u32) -> i32 {
    let Some(st) = state(ctx) else {
        return -1;
    };
    if realm.contains(['\r', '\n']) {
        return -1;
    }
    let nonce = st.nonces.make(unix_now(), st.tracker.issue());
    let mut opts = ChallengeOptions::from_challenge_flags(flags, st.algorithm);
    if st.qop_auth && flags & 0x03 == 0 {
        opts = ChallengeOptions::from_challenge_flags(flags | 1, st.algorithm);
    }
    let header = sable_auth::challenge_header(kind, realm.as_bytes(), &nonce, &opts);
    let header = String::from_utf8_lossy(&header).into_owned();
    let (code, reason) = kind.status();
    let sent = if let (Some(tm), Some(_)) = (ctx.core.tm.get().cloned(), &ctx.tm.tx) {
        let saved = ctx.reply_headers.clone();
        ctx.reply_headers.push_str(&header);
        let r = tm.reply(ctx, code, reason);
        ctx.reply_headers = saved;
        r == 1
    } else {
        send_reply(ctx, code, reason, &header, b"", None).is_ok()
    };
    if sent {
        1
    } else {
        if flags & 4 == 0 {
            let _ = send_reply(ctx, 500, "Internal Server Error", "", b"", None);
        }
        -1
    }
}

fn challenge_fixup(
    kind: Option<ChallengeKind>,
) -> impl Fn(
    &mut sable_script::FixupCtx<'_, '_, Sip>,
    Vec<Arg<Sip>>,
) -> Result<sable_script::Action<Sip>, ArgError> {
    move |_, mut args| {
        let realm = required(&mut args, 1, "realm")?.into_str();
        let flags = match take_arg(&mut args, 0) {
            Some(a) => a.into_int(2)?,
            None => IntArg::Const(0),
        };
        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
            let Some(st) = state(ctx) else {
                return -1;
            };
            let r = realm_of(ctx, &realm, &st);
            let f = flags
                .eval(ctx)
                .and_then(|f| u32::try_from(f).ok())
                .unwrap_or(0);
            let k = kind.unwrap_or_else(|| {
                if ctx.msg.method() == Some(Method::Register) {
                    ChallengeKind::Www
                } else {
                    ChallengeKind::Proxy
                }
            });
            challenge(ctx, k, &r, f)
        }))
    }
}

/// Where the secret to compare with comes from.
enum Secret<'s> {
    /// A password or HA1 given by the script (`pv_*`).
    Given(Stored<'s>),
    /// The subscriber table (`auth_db`).
    Table(&'s AuthDbState),
}

/// The check of `www_authorize`/`proxy_authorize`/`auth_check`/`pv_*`: the outcome code.
fn authorize(ctx: &mut MsgCtx<'_>, realm: &str, proxy: bool, secret: Secret<'_>) -> i32 {
    let Some(st) = state(ctx) else {
        return -1;
    };
    let header = if proxy {
        HeaderName::ProxyAuthorization
    } else {
        HeaderName::Authorization
    };
    let msg = &ctx.msg;
    let Ok(list) = msg.credentials(header) else {
        return Outcome::Error(sable_auth::AuthError::MalformedCredentials).code();
    };
    let method = msg.method().map_or(&b""[..], |m| m.as_bytes());
    let request = Request {
        method,
        realm: realm.as_bytes(),
        body: msg.body(),
    };
    let algorithms: Vec<Algorithm> = match st.algorithm {
        Some(a) => vec![a],
        None => vec![Algorithm::Md5],
    };
    let mut verifier = Verifier::new(&st.nonces).with_algorithms(&algorithms);
    if st.nonce_count {
        verifier = verifier.with_nonce_count(&st.tracker);
    }
    if st.one_time {
        verifier = verifier.with_one_time_nonce(&st.tracker);
    }
    let now = unix_now();
    let (outcome, used) = match verifier.precheck(request, list, now) {
        Precheck::Done(o) => (o, None),
        Precheck::Lookup(pending) => {
            let position = pending.position();
            let outcome = match &secret {
                Secret::Given(s) => pending.finish(Some(*s)),
                Secret::Table(db) => {
                    let (user, domain) = pending.user_and_domain();
                    let user = String::from_utf8_lossy(&user).into_owned();
                    let domain = if db.use_domain {
                        domain.map_or_else(
                            || realm.to_owned(),
                            |d| String::from_utf8_lossy(&d).into_owned(),
                        )
                    } else {
                        realm.to_owned()
                    };
                    let row = db.lookup(&user, &domain);
                    match &row {
                        Some(r) => {
                            if db.calculate_ha1 {
                                pending.finish(Some(Stored::Password(r.password.as_bytes())))
                            } else if db.password_column == "ha1b" {
                                pending.finish(Some(Stored::Ha1(r.ha1b.as_bytes())))
                            } else {
                                pending.finish(Some(Stored::Ha1(r.ha1.as_bytes())))
                            }
                        }
                        None => pending.finish(None),
                    }
                }
            };
            (outcome, Some(position))
        }
    };
    if matches!(outcome, Outcome::InvalidPassword | Outcome::UserUnknown) {
        st.failures.inc();
    }
    if outcome.is_authenticated() {
        ctx.auth_used = used.map(|p| (proxy, p));
    }
    outcome.code()
}

/// The URIs `auth_check` compares the auth user with.
fn identity_check(ctx: &MsgCtx<'_>, flags: u32, use_domain: bool, proxy: bool) -> i32 {
    let Some((_, pos)) = ctx.auth_used else {
        return 1;
    };
    let header = if proxy {
        HeaderName::ProxyAuthorization
    } else {
        HeaderName::Authorization
    };
    let Some(cred) = ctx.msg.credentials(header).ok().and_then(|l| l.get(pos)) else {
        return 1;
    };
    let Some(user) = cred.param(b"username") else {
        return 1;
    };
    let (auth_user, _) = sable_auth::split_username(&user);
    let uh = |r: Option<&sable_sip::NameAddr<'_>>| -> (Vec<u8>, Vec<u8>) {
        r.and_then(|n| n.uri.as_sip())
            .map(|s| {
                (
                    s.user().unwrap_or_default().to_vec(),
                    s.host().as_bytes().to_vec(),
                )
            })
            .unwrap_or_default()
    };
    let (fu, fh) = uh(ctx.msg.from().ok());
    let (tu, th) = uh(ctx.msg.to().ok());
    let (ru, rh) = ctx
        .msg
        .request_uri()
        .ok()
        .and_then(|u| u.as_sip())
        .map(|s| {
            (
                s.user().unwrap_or_default().to_vec(),
                s.host().as_bytes().to_vec(),
            )
        })
        .unwrap_or_default();
    let id = Identity {
        from: UserHost {
            user: &fu,
            host: &fh,
        },
        to: UserHost {
            user: &tu,
            host: &th,
        },
        request_uri: UserHost {
            user: &ru,
            host: &rh,
        },
    };
    let method = ctx.msg.method().map_or(&b""[..], |m| m.as_bytes());
    check_identity(
        method,
        auth_user,
        &id,
        IdentityChecks {
            skip_forwardable: flags & 2 != 0,
            use_domain,
        },
    )
    .code()
}

impl Module for Auth {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn set_param(&mut self, name: &str, value: &Literal) -> Result<(), ParamError> {
        let p = &mut self.p;
        match name {
            "secret" => {
                let s = str_param(value)?;
                if s.is_empty() {
                    return Err(ParamError::bad("a non-empty secret"));
                }
                p.secret = Some(s);
            }
            "nonce_expire" => {
                p.nonce_expire = u64::try_from(int_param(value)?)
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| ParamError::bad("seconds (> 0)"))?;
            }
            "nonce_count" => p.nonce_count = int_param(value)? != 0,
            "one_time_nonce" => p.one_time_nonce = int_param(value)? != 0,
            "nc_array_order" => {
                p.nc_array_order = u32::try_from(int_param(value)?)
                    .ok()
                    .filter(|v| (8..=24).contains(v))
                    .ok_or_else(|| ParamError::bad("8..24"))?;
            }
            "nc_array_size" => {
                let n = u64::try_from(int_param(value)?).map_err(|_| ParamError::bad("a size"))?;
                p.nc_array_order = (64 - n.max(256).leading_zeros() - 1).clamp(8, 24);
            }
            "algorithm" => {
                let a = str_param(value)?;
                p.algorithm =
                    if a.is_empty() {
                        None
                    } else {
                        Some(Algorithm::parse(a.as_bytes()).ok_or_else(|| {
                            ParamError::bad("MD5, MD5-sess, SHA-256 or SHA-256-sess")
                        })?)
                    };
            }
            "qop" => {
                let q = str_param(value)?;
                p.qop = match q.as_str() {
                    "" => false,
                    "auth" => true,
                    _ => return Err(ParamError::bad("\"\" or \"auth\"")),
                };
            }
            "realm_prefix" => p.realm_prefix = str_param(value)?,
            "nonce_auth_max_drift"
            | "add_authinfo_hdr"
            | "force_stateless_reply"
            | "auth_checks_register"
            | "auth_checks_no_dlg"
            | "auth_checks_in_dlg"
            | "otn_in_flight_no"
            | "otn_in_flight_order"
            | "nid_pool_no"
            | "use_next_nonce"
            | "proxy_challenge_header"
            | "www_challenge_header"
            | "protect_contacts" => {
                int_param(value)
                    .map(|_| ())
                    .or_else(|_| str_param(value).map(|_| ()))?;
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn init(&self, core: &Arc<Core>) -> Result<(), String> {
        let secret = self
            .p
            .secret
            .clone()
            .map_or_else(random_secret, String::into_bytes);
        let nonces = NonceMaker::new(&secret, self.p.nonce_expire).with_up_since(unix_now());
        core.stat_registry
            .adopt_counter("auth", "failures", self.failures.clone());
        core.provide(Arc::new(AuthState {
            nonces,
            tracker: NonceTracker::new(self.p.nc_array_order, 1),
            nonce_count: self.p.nonce_count,
            one_time: self.p.one_time_nonce,
            algorithm: self.p.algorithm,
            qop_auth: self.p.qop,
            realm_prefix: self.p.realm_prefix.clone(),
            failures: self.failures.clone(),
        }));
        Ok(())
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        let req_only = RouteMask::REQUEST;
        reg.function(
            "www_challenge",
            function(
                "auth",
                1,
                2,
                req_only,
                challenge_fixup(Some(ChallengeKind::Www)),
            ),
        );
        reg.function(
            "proxy_challenge",
            function(
                "auth",
                1,
                2,
                req_only,
                challenge_fixup(Some(ChallengeKind::Proxy)),
            ),
        );
        reg.function(
            "auth_challenge",
            function("auth", 1, 2, req_only, challenge_fixup(None)),
        );
        reg.function(
            "consume_credentials",
            function("auth", 0, 0, req_only, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                    let Some((proxy, pos)) = ctx.auth_used else {
                        return -1;
                    };
                    let name = if proxy {
                        HeaderName::ProxyAuthorization
                    } else {
                        HeaderName::Authorization
                    };
                    let Some(h) = ctx.msg.headers_named(name).nth(pos).copied() else {
                        return -1;
                    };
                    ctx.edits.remove_header(&h);
                    1
                }))
            }),
        );
        reg.function(
            "has_credentials",
            function("auth", 1, 1, req_only, |_, mut args| {
                let realm = required(&mut args, 1, "realm")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let r = realm.eval(ctx).into_owned();
                    let www = ctx
                        .msg
                        .credentials(HeaderName::Authorization)
                        .unwrap_or(&[]);
                    let proxy = ctx
                        .msg
                        .credentials(HeaderName::ProxyAuthorization)
                        .unwrap_or(&[]);
                    if sable_auth::has_credentials(www, proxy, r.as_bytes()) {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
        for (name, proxy) in [("pv_www_authorize", false), ("pv_proxy_authorize", true)] {
            reg.function(
                name,
                function("auth", 1, 1, req_only, move |fx, mut args| {
                    let realm = required(&mut args, 1, "realm")?.into_str();
                    // The password variables of Kamailio's auth (`password_spec`).
                    let pass = fx.pv("$avp(password)").map_err(|e| ArgError::new(1, e))?;
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        let Some(st) = state(ctx) else {
                            return -1;
                        };
                        let r = realm_of(ctx, &realm, &st);
                        let pw = pass.get(ctx).to_string();
                        authorize(
                            ctx,
                            &r,
                            proxy,
                            Secret::Given(Stored::Password(pw.as_bytes())),
                        )
                    }))
                }),
            );
        }
        reg.function(
            "pv_auth_check",
            function("auth", 4, 4, req_only, |_, mut args| {
                let realm = required(&mut args, 1, "realm")?.into_str();
                let passwd = required(&mut args, 2, "password")?.into_str();
                let flags = required(&mut args, 3, "flags")?.into_int(3)?;
                let checks = required(&mut args, 4, "checks")?.into_int(4)?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(st) = state(ctx) else {
                        return -1;
                    };
                    let r = realm_of(ctx, &realm, &st);
                    let pw = passwd.eval(ctx).into_owned();
                    let f = flags.eval(ctx).unwrap_or(0);
                    let stored = if f & 1 != 0 {
                        Stored::Password(pw.as_bytes())
                    } else {
                        Stored::Ha1(pw.as_bytes())
                    };
                    let proxy = ctx.msg.method() != Some(Method::Register);
                    let code = authorize(ctx, &r, proxy, Secret::Given(stored));
                    if code != 1 || checks.eval(ctx).unwrap_or(0) & 1 == 0 {
                        return code;
                    }
                    identity_check(ctx, 0, false, proxy)
                }))
            }),
        );
    }
}

/// `auth_db`'s subscriber table.
pub struct AuthDbState {
    db: Mutex<sable_storage::Database>,
    calculate_ha1: bool,
    password_column: String,
    use_domain: bool,
}

impl std::fmt::Debug for AuthDbState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthDbState").finish()
    }
}

impl AuthDbState {
    fn lookup(&self, user: &str, domain: &str) -> Option<sable_storage::Subscriber> {
        match self.db.lock().subscriber(user, domain) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("auth_db: subscriber lookup failed: {e}");
                None
            }
        }
    }
}

#[derive(Debug)]
pub struct AuthDb {
    db_url: Option<String>,
    calculate_ha1: bool,
    password_column: String,
    use_domain: bool,
}

impl Default for AuthDb {
    fn default() -> Self {
        AuthDb {
            db_url: None,
            calculate_ha1: false,
            password_column: "ha1".to_owned(),
            use_domain: false,
        }
    }
}

fn db_state(ctx: &MsgCtx<'_>) -> Option<Arc<AuthDbState>> {
    ctx.core.service::<AuthDbState>()
}

impl Module for AuthDb {
    fn name(&self) -> &'static str {
        "auth_db"
    }

    fn set_param(&mut self, name: &str, value: &Literal) -> Result<(), ParamError> {
        match name {
            "db_url" => self.db_url = Some(str_param(value)?),
            "calculate_ha1" => self.calculate_ha1 = int_param(value)? != 0,
            "password_column" => {
                let c = str_param(value)?;
                if !matches!(c.as_str(), "ha1" | "ha1b" | "password") {
                    return Err(ParamError::bad("ha1, ha1b or password"));
                }
                self.password_column = c;
            }
            "use_domain" => self.use_domain = int_param(value)? != 0,
            "user_column"
            | "domain_column"
            | "load_credentials"
            | "version_table"
            | "force_default_realm" => {
                str_param(value)?;
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn init(&self, core: &Arc<Core>) -> Result<(), String> {
        let url = self
            .db_url
            .as_deref()
            .ok_or("auth_db: db_url is required (sqlite:///path/file.db)")?;
        let db = sable_storage::Database::open(url).map_err(|e| format!("auth_db: {e}"))?;
        core.provide(Arc::new(AuthDbState {
            db: Mutex::new(db),
            // With the plain-text column the HA1 is computed from it.
            calculate_ha1: self.calculate_ha1 || self.password_column == "password",
            password_column: self.password_column.clone(),
            use_domain: self.use_domain,
        }));
        Ok(())
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        for (name, proxy) in [
            ("www_authorize", Some(false)),
            ("proxy_authorize", Some(true)),
            ("auth_check", None),
        ] {
            let (min, max) = if proxy.is_none() { (3, 3) } else { (2, 2) };
            reg.function(
                name,
                function(
                    "auth_db",
                    min,
                    max,
                    RouteMask::REQUEST,
                    move |_, mut args| {
                        let realm = required(&mut args, 1, "realm")?.into_str();
                        let table = required(&mut args, 2, "table")?
                            .const_str()
                            .ok_or_else(|| ArgError::new(2, "the table must be a constant"))?
                            .into_owned();
                        if table != "subscriber" {
                            return Err(ArgError::new(2, "only the subscriber table is supported"));
                        }
                        let flags = match take_arg(&mut args, 0) {
                            Some(a) => a.into_int(3)?,
                            None => IntArg::Const(0),
                        };
                        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                            let (Some(st), Some(db)) = (state(ctx), db_state(ctx)) else {
                                return -1;
                            };
                            let r = realm_of(ctx, &realm, &st);
                            let proxy = proxy.unwrap_or(ctx.msg.method() != Some(Method::Register));
                            let code = authorize(ctx, &r, proxy, Secret::Table(&db));
                            if code != 1 || name != "auth_check" {
                                return code;
                            }
                            let f = flags
                                .eval(ctx)
                                .and_then(|f| u32::try_from(f).ok())
                                .unwrap_or(0);
                            if f & 1 == 0 {
                                return code;
                            }
                            identity_check(ctx, f, db.use_domain, proxy)
                        }))
                    },
                ),
            );
        }
    }
}
