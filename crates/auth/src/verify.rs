//! Checking digest credentials, in Kamailio's order and with its return codes.
//!
//! Verification has two steps because the subscriber lookup sits between them, as in
//! Kamailio's `pre_auth` → `get_ha1` → `check_response`:
//!
//! 1. [`Verifier::precheck`] (no user data needed): exempt methods, credentials for the
//!    realm, required parameters, qop, algorithm, response length, nonce, nonce count.
//!    It ends in [`Precheck::Done`] with an outcome, or [`Precheck::Lookup`] with the
//!    username to look up.
//! 2. [`Pending::finish`] with the stored password or HA1, or `None` when there is no such
//!    user: the response is recomputed and compared in constant time.
//!
//! [`Verifier::verify`] does both when the secret is already at hand (`pv_*` functions).
//!
//! What is *not* checked, as in Kamailio: that the digest `uri` equals the Request-URI (a
//! proxy on the way may rewrite it), that the client chose the qop we offered (a response
//! without qop is accepted: RFC 2069 clients), the `opaque` (we send none).

use std::borrow::Cow;

use sable_sip::Credentials;

use crate::algorithm::{self, constant_time_eq, Algorithm, Qop, QopInput, ResponseInput};
use crate::credentials::{is_exempt_method, select, split_username};
use crate::error::AuthError;
use crate::nonce::{NonceCheck, NonceMaker};
use crate::replay::{NcCheck, NonceTracker};

/// The result of a check: what Kamailio's `www_authorize`, `proxy_authorize`,
/// `auth_check`, `pv_www_authorize`... return to the script ([`Outcome::code`]).
///
/// Whatever the negative outcome, the client should see the same reply (a 401/407 with a
/// fresh challenge, `stale=true` only for [`Outcome::StaleNonce`]): an unknown user and a
/// wrong password are told apart only in the script's return code, never on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 1: authenticated (or an exempt method: ACK, CANCEL, PRACK).
    Authenticated,
    /// -1: generic error: malformed or incomplete credentials, a nonce not ours, an
    /// algorithm not offered.
    Error(AuthError),
    /// -2: the response does not match the stored password or HA1.
    InvalidPassword,
    /// -3: no such user (auth_db only).
    UserUnknown,
    /// -4: the nonce is stale (expired, or its nonce count replayed, too big or forgotten):
    /// challenge again with `stale=true`.
    StaleNonce,
    /// -5: no credentials for the realm.
    NoCredentials,
    /// -6: a one-time nonce used again.
    NonceReused,
    /// -8: the authentication user differs from the From/To (or R-URI) user
    /// (`auth_check` with flag 1, see [`check_identity`]).
    UserMismatch,
}

impl Outcome {
    /// Kamailio's return code (`auth_cfg_result_t`). -7 (ephemeral username expired)
    /// belongs to `auth_ephemeral` and is never produced here.
    pub fn code(&self) -> i32 {
        match self {
            Outcome::Authenticated => 1,
            Outcome::Error(_) => -1,
            Outcome::InvalidPassword => -2,
            Outcome::UserUnknown => -3,
            Outcome::StaleNonce => -4,
            Outcome::NoCredentials => -5,
            Outcome::NonceReused => -6,
            Outcome::UserMismatch => -8,
        }
    }

    /// True for [`Outcome::Authenticated`].
    pub fn is_authenticated(&self) -> bool {
        matches!(self, Outcome::Authenticated)
    }

    /// True when the next challenge should carry `stale=true`.
    pub fn is_stale(&self) -> bool {
        matches!(self, Outcome::StaleNonce)
    }
}

/// The subscriber's secret as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored<'s> {
    /// The plain password (Kamailio's `calculate_ha1 yes`; `pv_*` flags without 1): HA1 is
    /// computed over the whole username, the checked realm and this password.
    Password(&'s [u8]),
    /// HA1 in hex, for the algorithm of the credentials' base hash (the `ha1` column, or
    /// `ha1b` for usernames with a domain; `pv_*` flag 1). Used as given, as Kamailio does:
    /// an HA1 of the wrong hash gives -2.
    Ha1(&'s [u8]),
}

/// The request being authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'r> {
    /// The method from the request line (or the script's `method` argument).
    pub method: &'r [u8],
    /// The realm to check against (the script's realm argument, `realm_prefix` stripped).
    pub realm: &'r [u8],
    /// The body, hashed for `qop=auth-int`.
    pub body: &'r [u8],
}

/// How credentials are checked: the nonce key, replay tracking, accepted algorithms.
/// Cheap to build per request from shared parts.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'k> {
    nonces: &'k NonceMaker,
    tracker: Option<&'k NonceTracker>,
    nonce_count: bool,
    one_time: bool,
    record_after_success: bool,
    algorithms: [Option<Algorithm>; 4],
}

/// The outcome of [`Verifier::precheck`].
#[derive(Debug)]
pub enum Precheck<'v> {
    /// Nothing more to do: this is the outcome.
    Done(Outcome),
    /// Look the user up, then call [`Pending::finish`].
    Lookup(Pending<'v>),
}

/// Credentials that passed every check not needing the subscriber's secret.
#[derive(Debug)]
pub struct Pending<'v> {
    credentials: &'v Credentials<'v>,
    position: usize,
    algorithm: Algorithm,
    request: Request<'v>,
    qop: Option<Qop>,
    nc: Option<u32>,
    nonce_index: u32,
    record_nc: Option<&'v NonceTracker>,
}

impl<'k> Verifier<'k> {
    /// A verifier with Kamailio's defaults: MD5 only, no nonce-count or one-time tracking.
    pub fn new(nonces: &'k NonceMaker) -> Verifier<'k> {
        Verifier {
            nonces,
            tracker: None,
            nonce_count: false,
            one_time: false,
            record_after_success: false,
            algorithms: [Some(Algorithm::Md5), None, None, None],
        }
    }

    /// The algorithms accepted (those the challenges offered; Kamailio's `algorithm`
    /// parameter). Credentials without `algorithm` mean MD5.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Verifier<'k> {
        self.algorithms = [None; 4];
        for (slot, a) in self.algorithms.iter_mut().zip(algorithms) {
            *slot = Some(*a);
        }
        self
    }

    /// Kamailio's `nonce_count`: credentials carrying an `nc` must raise it for their
    /// nonce (nonces must be made with indexes from this tracker).
    pub fn with_nonce_count(mut self, tracker: &'k NonceTracker) -> Verifier<'k> {
        self.tracker = Some(tracker);
        self.nonce_count = true;
        self
    }

    /// Kamailio's `one_time_nonce`: credentials without `nc` (or every credentials when
    /// nonce counts are not checked) may use a nonce once.
    pub fn with_one_time_nonce(mut self, tracker: &'k NonceTracker) -> Verifier<'k> {
        self.tracker = Some(tracker);
        self.one_time = true;
        self
    }

    /// `pv_*` flag 32 ("don't invalidate nc on authentication failure"): the nc is
    /// recorded only after the response matched, so a wrong password does not use it up.
    pub fn record_nc_after_success(mut self, yes: bool) -> Verifier<'k> {
        self.record_after_success = yes;
        self
    }

    fn accepts(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&Some(alg))
    }

    /// Step 1: every check that needs no subscriber data. `list` holds the request's
    /// Authorization values (www_*, and auth_check for REGISTER) or Proxy-Authorization
    /// values (proxy_*), `now` is UNIX seconds.
    pub fn precheck<'v>(
        &self,
        request: Request<'v>,
        list: &'v [Credentials<'v>],
        now: u64,
    ) -> Precheck<'v>
    where
        'k: 'v,
    {
        match self.precheck_inner(request, list, now) {
            Ok(p) => Precheck::Lookup(p),
            Err(o) => Precheck::Done(o),
        }
    }

    fn precheck_inner<'v>(
        &self,
        request: Request<'v>,
        list: &'v [Credentials<'v>],
        now: u64,
    ) -> Result<Pending<'v>, Outcome>
    where
        'k: 'v,
    {
        use Outcome::Error as E;
        if is_exempt_method(request.method) {
            return Err(Outcome::Authenticated);
        }
        if request.realm.is_empty() {
            return Err(E(AuthError::EmptyRealm));
        }
        let (position, c) = select(list, request.realm).ok_or(Outcome::NoCredentials)?;

        // Kamailio's check_dig_cred: the parameters a response is computed from.
        for (name, present) in [
            ("username", c.param_raw(b"username").is_some()),
            ("nonce", c.param_raw(b"nonce").is_some()),
            ("uri", c.param_raw(b"uri").is_some()),
            ("response", c.param_raw(b"response").is_some()),
        ] {
            if !present {
                return Err(E(AuthError::MissingParameter(name)));
            }
        }
        let qop = match c.qop() {
            None => None,
            Some(q) => Some(Qop::parse(&q).ok_or(E(AuthError::BadParameter("qop")))?),
        };
        let nc = if qop.is_some() {
            if c.param_raw(b"cnonce").is_none() {
                return Err(E(AuthError::MissingParameter("cnonce")));
            }
            if c.param_raw(b"nc").is_none() {
                return Err(E(AuthError::MissingParameter("nc")));
            }
            Some(c.nc().ok_or(E(AuthError::BadParameter("nc")))?)
        } else if c.param_raw(b"nc").is_some() {
            // An nc without qop is not used in the response, but nonce_count still looks
            // at it in Kamailio; it must be well-formed then.
            Some(c.nc().ok_or(E(AuthError::BadParameter("nc")))?)
        } else {
            None
        };

        let algorithm = match c.param(b"algorithm") {
            None => Algorithm::Md5,
            Some(token) => Algorithm::parse(&token).ok_or(E(AuthError::UnsupportedAlgorithm))?,
        };
        if !self.accepts(algorithm) {
            return Err(E(AuthError::AlgorithmNotOffered(algorithm)));
        }
        let response_len = c.response().map(|r| r.len()).unwrap_or_default();
        if response_len != algorithm.hex_len() {
            return Err(E(AuthError::ResponseLength {
                expected: algorithm.hex_len(),
                got: response_len,
            }));
        }

        let nonce = c.nonce().unwrap_or_default();
        let nonce_index = match self.nonces.check(&nonce, now) {
            NonceCheck::Valid { index, .. } => index,
            NonceCheck::Stale => return Err(Outcome::StaleNonce),
            NonceCheck::Invalid => return Err(E(AuthError::InvalidNonce)),
        };

        let mut record_nc = None;
        if let Some(tracker) = self.tracker {
            match nc {
                Some(nc) if self.nonce_count => {
                    match tracker.check_nc(nonce_index, nc, !self.record_after_success) {
                        NcCheck::Fresh => {
                            if self.record_after_success {
                                record_nc = Some(tracker);
                            }
                        }
                        // Kamailio: NC_REPLAY, NC_ID_OVERFLOW, NC_TOO_BIG → stale.
                        _ => return Err(Outcome::StaleNonce),
                    }
                }
                _ if self.one_time => match tracker.check_once(nonce_index) {
                    NcCheck::Fresh => {}
                    _ => return Err(Outcome::NonceReused),
                },
                _ => {}
            }
        }

        Ok(Pending {
            credentials: c,
            position,
            algorithm,
            request,
            qop,
            nc,
            nonce_index,
            record_nc,
        })
    }

    /// Both steps at once, when the secret does not depend on a lookup (`pv_*_authorize`):
    /// `stored` is `None` for an unknown user.
    pub fn verify(
        &self,
        request: Request<'_>,
        list: &[Credentials<'_>],
        stored: Option<Stored<'_>>,
        now: u64,
    ) -> Outcome {
        match self.precheck(request, list, now) {
            Precheck::Done(o) => o,
            Precheck::Lookup(p) => p.finish(stored),
        }
    }
}

impl<'v> Pending<'v> {
    /// The credentials chosen.
    pub fn credentials(&self) -> &'v Credentials<'v> {
        self.credentials
    }

    /// Their position in the list given to [`Verifier::precheck`] (what
    /// `consume_credentials` removes).
    pub fn position(&self) -> usize {
        self.position
    }

    /// The whole `username` (what HA1 is computed over).
    pub fn username(&self) -> Cow<'v, [u8]> {
        self.credentials.username().unwrap_or_default()
    }

    /// The user part of the username (before '@'), what the subscriber table is searched
    /// by and what `auth_check` compares with From/To; and the domain part if any.
    pub fn user_and_domain(&self) -> (Cow<'v, [u8]>, Option<Cow<'v, [u8]>>) {
        match self.username() {
            Cow::Borrowed(b) => {
                let (u, d) = split_username(b);
                (Cow::Borrowed(u), d.map(Cow::Borrowed))
            }
            Cow::Owned(o) => {
                let (u, d) = split_username(&o);
                (Cow::Owned(u.to_vec()), d.map(|d| Cow::Owned(d.to_vec())))
            }
        }
    }

    /// The algorithm of the credentials.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Step 2: compares the response with the one computed from `stored` (`None`: the
    /// user does not exist, -3). The same hashing is done for an unknown user, so the
    /// time taken does not tell the two cases apart either.
    pub fn finish(self, stored: Option<Stored<'_>>) -> Outcome {
        let c = self.credentials;
        let username = self.username();
        let computed_ha1;
        let ha1: &[u8] = match stored {
            Some(Stored::Ha1(h)) => h,
            Some(Stored::Password(p)) => {
                computed_ha1 = algorithm::ha1(self.algorithm, &username, self.request.realm, p);
                computed_ha1.as_bytes()
            }
            None => {
                computed_ha1 = algorithm::ha1(self.algorithm, &username, self.request.realm, b"");
                computed_ha1.as_bytes()
            }
        };
        let nonce = c.nonce().unwrap_or_default();
        let uri = c.uri().unwrap_or_default();
        let cnonce = c.cnonce().unwrap_or_default();
        let nc_raw = c.param_raw(b"nc").unwrap_or_default();
        let input = ResponseInput {
            method: self.request.method,
            uri: &uri,
            nonce: &nonce,
            qop: self.qop.map(|qop| QopInput {
                qop,
                nc: nc_raw,
                cnonce: &cnonce,
            }),
            body: self.request.body,
        };
        let expected = algorithm::response(self.algorithm, ha1, &input);
        let received = c.response().unwrap_or_default();
        let matches = constant_time_eq(expected.as_bytes(), &received);
        if stored.is_none() {
            return Outcome::UserUnknown;
        }
        if !matches {
            return Outcome::InvalidPassword;
        }
        if let (Some(tracker), Some(nc)) = (self.record_nc, self.nc) {
            // Recorded only now (flag 32); a concurrent request with the same nc may have
            // won the race: then this one is the replay.
            if tracker.check_nc(self.nonce_index, nc, true) != NcCheck::Fresh {
                return Outcome::StaleNonce;
            }
        }
        Outcome::Authenticated
    }
}

/// A user and host from one of the request's URIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserHost<'a> {
    /// The user part.
    pub user: &'a [u8],
    /// The host part.
    pub host: &'a [u8],
}

/// Kamailio's identity checks of `auth_check(realm, table, flags)` and
/// `pv_auth_check(..., checks)`, run after the credentials were verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdentityChecks {
    /// Flag 2 of `auth_check`: skip the user check for INVITE, BYE, PRACK, UPDATE and
    /// MESSAGE (they may come with an anonymous caller id).
    pub skip_forwardable: bool,
    /// auth_db's `use_domain` (auth's for `pv_auth_check`): hosts must match too.
    pub use_domain: bool,
}

/// The URIs the identity check compares with the authentication user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Identity<'a> {
    /// From URI.
    pub from: UserHost<'a>,
    /// To URI.
    pub to: UserHost<'a>,
    /// Request-URI (compared for PUBLISH only).
    pub request_uri: UserHost<'a>,
}

/// The flag-1 check of `auth_check`: REGISTER: the auth user equals the To user and From
/// equals To; PUBLISH: the same, and the R-URI user equals the From user; any other method:
/// the auth user equals the From user. With `use_domain` the hosts of the pairs compared
/// (From/To, From/R-URI) must match as well. Comparisons are case-sensitive, as Kamailio's
/// `strncmp`. Gives [`Outcome::Authenticated`] or [`Outcome::UserMismatch`] (-8).
pub fn check_identity(
    method: &[u8],
    auth_user: &[u8],
    id: &Identity<'_>,
    checks: IdentityChecks,
) -> Outcome {
    let register_like = method == b"REGISTER" || method == b"PUBLISH";
    let forwardable = matches!(
        method,
        b"INVITE" | b"BYE" | b"PRACK" | b"UPDATE" | b"MESSAGE"
    );
    let against = if register_like { &id.to } else { &id.from };
    if !(checks.skip_forwardable && forwardable) && auth_user != against.user {
        return Outcome::UserMismatch;
    }
    if register_like {
        if id.from.user != id.to.user || (checks.use_domain && id.from.host != id.to.host) {
            return Outcome::UserMismatch;
        }
        if method == b"PUBLISH"
            && (id.from.user != id.request_uri.user
                || (checks.use_domain && id.from.host != id.request_uri.host))
        {
            return Outcome::UserMismatch;
        }
    }
    Outcome::Authenticated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::ha1;
    use crate::nonce::DEFAULT_EXPIRE_SECS;

    const T0: u64 = 1_700_000_000;
    const REALM: &[u8] = b"example.com";

    fn maker() -> NonceMaker {
        NonceMaker::new(b"a test secret of some length", DEFAULT_EXPIRE_SECS)
    }

    /// Builds credentials the way a client does, for `password`.
    struct Client {
        alg: Algorithm,
        user: &'static str,
        password: &'static str,
        qop: Option<Qop>,
        nc: u32,
        uri: &'static str,
    }

    impl Client {
        fn new() -> Client {
            Client {
                alg: Algorithm::Md5,
                user: "alice",
                password: "secret",
                qop: Some(Qop::Auth),
                nc: 1,
                uri: "sip:example.com",
            }
        }

        fn header(&self, method: &str, nonce: &str, body: &[u8]) -> String {
            let h = ha1(
                self.alg,
                self.user.as_bytes(),
                REALM,
                self.password.as_bytes(),
            );
            let nc = format!("{:08x}", self.nc);
            let input = ResponseInput {
                method: method.as_bytes(),
                uri: self.uri.as_bytes(),
                nonce: nonce.as_bytes(),
                qop: self.qop.map(|qop| QopInput {
                    qop,
                    nc: nc.as_bytes(),
                    cnonce: b"0a4f113b",
                }),
                body,
            };
            let r = algorithm::response(self.alg, h.as_bytes(), &input);
            let mut s = format!(
                "Digest username=\"{}\", realm=\"example.com\", nonce=\"{nonce}\", uri=\"{}\", response=\"{r}\", algorithm={}",
                self.user, self.uri, self.alg
            );
            if let Some(q) = self.qop {
                s.push_str(&format!(
                    ", qop={}, nc={nc}, cnonce=\"0a4f113b\"",
                    q.as_str()
                ));
            }
            s
        }
    }

    fn request(method: &'static str) -> Request<'static> {
        Request {
            method: method.as_bytes(),
            realm: REALM,
            body: b"",
        }
    }

    fn run(
        v: &Verifier<'_>,
        method: &'static str,
        header: &str,
        stored: Option<Stored<'_>>,
        now: u64,
    ) -> Outcome {
        let list = [Credentials::parse(header.as_bytes()).unwrap()];
        v.verify(request(method), &list, stored, now)
    }

    #[test]
    fn good_password_authenticates_md5_and_sha256() {
        let m = maker();
        let nonce = m.make(T0, 0);
        let v = Verifier::new(&m).with_algorithms(&[Algorithm::Sha256, Algorithm::Md5]);
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let c = Client {
                alg,
                ..Client::new()
            };
            let h = c.header("REGISTER", &nonce, b"");
            assert_eq!(
                run(
                    &v,
                    "REGISTER",
                    &h,
                    Some(Stored::Password(b"secret")),
                    T0 + 1
                ),
                Outcome::Authenticated,
                "{alg}"
            );
        }
    }

    #[test]
    fn stored_ha1_authenticates() {
        let m = maker();
        let nonce = m.make(T0, 0);
        let v = Verifier::new(&m);
        let h = Client::new().header("INVITE", &nonce, b"");
        let stored = ha1(Algorithm::Md5, b"alice", REALM, b"secret");
        assert_eq!(
            run(&v, "INVITE", &h, Some(Stored::Ha1(stored.as_bytes())), T0),
            Outcome::Authenticated
        );
    }

    #[test]
    fn rfc2069_credentials_without_qop_authenticate() {
        let m = maker();
        let nonce = m.make(T0, 0);
        let c = Client {
            qop: None,
            ..Client::new()
        };
        let h = c.header("REGISTER", &nonce, b"");
        assert_eq!(
            run(
                &Verifier::new(&m),
                "REGISTER",
                &h,
                Some(Stored::Password(b"secret")),
                T0
            ),
            Outcome::Authenticated
        );
    }

    #[test]
    fn session_variants_authenticate() {
        let m = maker();
        let nonce = m.make(T0, 0);
        let v = Verifier::new(&m).with_algorithms(&Algorithm::ALL);
        for alg in [Algorithm::Md5Sess, Algorithm::Sha256Sess] {
            let h = Client {
                alg,
                ..Client::new()
            }
            .header("REGISTER", &nonce, b"");
            assert_eq!(
                run(&v, "REGISTER", &h, Some(Stored::Password(b"secret")), T0),
                Outcome::Authenticated
            );
        }
    }

    #[test]
    fn auth_int_covers_the_body() {
        let m = maker();
        let nonce = m.make(T0, 0);
        let v = Verifier::new(&m);
        let h = Client {
            qop: Some(Qop::AuthInt),
            ..Client::new()
        }
        .header("INVITE", &nonce, b"v=0");
        let list = [Credentials::parse(h.as_bytes()).unwrap()];
        let good = Request {
            body: b"v=0",
            ..request("INVITE")
        };
        let bad = Request {
            body: b"v=1",
            ..request("INVITE")
        };
        assert_eq!(
            v.verify(good, &list, Some(Stored::Password(b"secret")), T0),
            Outcome::Authenticated
        );
        assert_eq!(
            v.verify(bad, &list, Some(Stored::Password(b"secret")), T0),
            Outcome::InvalidPassword
        );
    }

    #[test]
    fn wrong_password_is_minus_2_and_unknown_user_minus_3() {
        let m = maker();
        let nonce = m.make(T0, 0);
        let v = Verifier::new(&m);
        let h = Client::new().header("REGISTER", &nonce, b"");
        let o = run(&v, "REGISTER", &h, Some(Stored::Password(b"other")), T0);
        assert_eq!((o, o.code()), (Outcome::InvalidPassword, -2));
        let o = run(&v, "REGISTER", &h, None, T0);
        assert_eq!((o, o.code()), (Outcome::UserUnknown, -3));
    }

    #[test]
    fn wrong_method_or_uri_fails_the_response() {
        let m = maker();
        let nonce = m.make(T0, 0);
        let v = Verifier::new(&m);
        let h = Client::new().header("REGISTER", &nonce, b"");
        assert_eq!(
            run(&v, "INVITE", &h, Some(Stored::Password(b"secret")), T0),
            Outcome::InvalidPassword
        );
    }

    #[test]
    fn expired_nonce_is_stale_minus_4() {
        let m = maker();
        let nonce = m.make(T0, 0);
        let h = Client::new().header("REGISTER", &nonce, b"");
        let o = run(
            &Verifier::new(&m),
            "REGISTER",
            &h,
            Some(Stored::Password(b"secret")),
            T0 + 301,
        );
        assert_eq!((o, o.code(), o.is_stale()), (Outcome::StaleNonce, -4, true));
    }

    #[test]
    fn forged_nonce_is_error_minus_1() {
        let m = maker();
        let h = Client::new().header("REGISTER", "dcd98b7102dd2f0e8b11d0f600bfb0c093", b"");
        let o = run(
            &Verifier::new(&m),
            "REGISTER",
            &h,
            Some(Stored::Password(b"secret")),
            T0,
        );
        assert_eq!(o, Outcome::Error(AuthError::InvalidNonce));
        assert_eq!(o.code(), -1);
    }

    #[test]
    fn no_credentials_for_the_realm_is_minus_5() {
        let m = maker();
        let v = Verifier::new(&m);
        let o = v.verify(request("REGISTER"), &[], None, T0);
        assert_eq!((o, o.code()), (Outcome::NoCredentials, -5));
        let other = Request {
            realm: b"other.org",
            ..request("REGISTER")
        };
        let h = Client::new().header("REGISTER", &m.make(T0, 0), b"");
        let list = [Credentials::parse(h.as_bytes()).unwrap()];
        assert_eq!(v.verify(other, &list, None, T0), Outcome::NoCredentials);
    }

    #[test]
    fn exempt_methods_authenticate_without_credentials() {
        let m = maker();
        let v = Verifier::new(&m);
        for method in ["ACK", "CANCEL", "PRACK"] {
            assert_eq!(
                v.verify(request(method), &[], None, T0),
                Outcome::Authenticated
            );
        }
    }

    #[test]
    fn missing_parameters_are_errors() {
        let m = maker();
        let v = Verifier::new(&m);
        let n = m.make(T0, 0);
        for (h, what) in [
            (format!("Digest realm=\"example.com\", nonce=\"{n}\", uri=\"sip:a\", response=\"00000000000000000000000000000000\""), AuthError::MissingParameter("username")),
            (format!("Digest username=\"a\", realm=\"example.com\", uri=\"sip:a\", response=\"00000000000000000000000000000000\", opaque=\"{n}\""), AuthError::MissingParameter("nonce")),
            (format!("Digest username=\"a\", realm=\"example.com\", nonce=\"{n}\", response=\"00000000000000000000000000000000\""), AuthError::MissingParameter("uri")),
            (format!("Digest username=\"a\", realm=\"example.com\", nonce=\"{n}\", uri=\"sip:a\", cnonce=\"{n}\""), AuthError::MissingParameter("response")),
            (format!("Digest username=\"a\", realm=\"example.com\", nonce=\"{n}\", uri=\"sip:a\", response=\"00000000000000000000000000000000\", qop=auth, nc=00000001"), AuthError::MissingParameter("cnonce")),
            (format!("Digest username=\"a\", realm=\"example.com\", nonce=\"{n}\", uri=\"sip:a\", response=\"00000000000000000000000000000000\", qop=auth, cnonce=\"x\""), AuthError::MissingParameter("nc")),
            (format!("Digest username=\"a\", realm=\"example.com\", nonce=\"{n}\", uri=\"sip:a\", response=\"00000000000000000000000000000000\", qop=auth, cnonce=\"x\", nc=1"), AuthError::BadParameter("nc")),
            (format!("Digest username=\"a\", realm=\"example.com\", nonce=\"{n}\", uri=\"sip:a\", response=\"00000000000000000000000000000000\", qop=bogus"), AuthError::BadParameter("qop")),
            (format!("Digest username=\"a\", realm=\"example.com\", nonce=\"{n}\", uri=\"sip:a\", response=\"0000\""), AuthError::ResponseLength { expected: 32, got: 4 }),
            (format!("Digest username=\"a\", realm=\"example.com\", nonce=\"{n}\", uri=\"sip:a\", response=\"00000000000000000000000000000000\", algorithm=SHA-256"), AuthError::AlgorithmNotOffered(Algorithm::Sha256)),
            (format!("Digest username=\"a\", realm=\"example.com\", nonce=\"{n}\", uri=\"sip:a\", response=\"00000000000000000000000000000000\", algorithm=AKAv1-MD5"), AuthError::UnsupportedAlgorithm),
        ] {
            assert_eq!(run(&v, "REGISTER", &h, None, T0), Outcome::Error(what), "{h}");
        }
        let empty = Request {
            realm: b"",
            ..request("REGISTER")
        };
        assert_eq!(
            v.verify(empty, &[], None, T0),
            Outcome::Error(AuthError::EmptyRealm)
        );
    }

    #[test]
    fn nonce_count_rejects_replays_as_stale() {
        let m = maker();
        let t = NonceTracker::new(8, 0);
        let v = Verifier::new(&m).with_nonce_count(&t);
        let nonce = m.make(T0, t.issue());
        let mut c = Client::new();
        let h1 = c.header("REGISTER", &nonce, b"");
        let ok = Some(Stored::Password(b"secret"));
        assert_eq!(run(&v, "REGISTER", &h1, ok, T0), Outcome::Authenticated);
        // The same (nonce, nc) again: a replay.
        assert_eq!(run(&v, "REGISTER", &h1, ok, T0), Outcome::StaleNonce);
        c.nc = 2;
        let h2 = c.header("REGISTER", &nonce, b"");
        assert_eq!(run(&v, "REGISTER", &h2, ok, T0), Outcome::Authenticated);
        assert_eq!(run(&v, "REGISTER", &h1, ok, T0), Outcome::StaleNonce);
    }

    #[test]
    fn wrong_password_uses_up_the_nc_unless_recorded_after_success() {
        let m = maker();
        let t = NonceTracker::new(8, 0);
        let nonce = m.make(T0, t.issue());
        let h = Client::new().header("REGISTER", &nonce, b"");
        let v = Verifier::new(&m).with_nonce_count(&t);
        assert_eq!(
            run(&v, "REGISTER", &h, Some(Stored::Password(b"x")), T0),
            Outcome::InvalidPassword
        );
        assert_eq!(
            run(&v, "REGISTER", &h, Some(Stored::Password(b"secret")), T0),
            Outcome::StaleNonce
        );

        let nonce = m.make(T0, t.issue());
        let h = Client::new().header("REGISTER", &nonce, b"");
        let v = v.record_nc_after_success(true);
        assert_eq!(
            run(&v, "REGISTER", &h, Some(Stored::Password(b"x")), T0),
            Outcome::InvalidPassword
        );
        assert_eq!(
            run(&v, "REGISTER", &h, Some(Stored::Password(b"secret")), T0),
            Outcome::Authenticated
        );
        assert_eq!(
            run(&v, "REGISTER", &h, Some(Stored::Password(b"secret")), T0),
            Outcome::StaleNonce
        );
    }

    #[test]
    fn one_time_nonce_reuse_is_minus_6() {
        let m = maker();
        let t = NonceTracker::new(8, 0);
        let v = Verifier::new(&m).with_one_time_nonce(&t);
        let nonce = m.make(T0, t.issue());
        let h = Client {
            qop: None,
            ..Client::new()
        }
        .header("REGISTER", &nonce, b"");
        let ok = Some(Stored::Password(b"secret"));
        assert_eq!(run(&v, "REGISTER", &h, ok, T0), Outcome::Authenticated);
        let o = run(&v, "REGISTER", &h, ok, T0);
        assert_eq!((o, o.code()), (Outcome::NonceReused, -6));
    }

    #[test]
    fn precheck_exposes_username_and_position() {
        let m = maker();
        let v = Verifier::new(&m);
        let nonce = m.make(T0, 0);
        let c = Client {
            user: "alice@example.com",
            ..Client::new()
        };
        let h = c.header("REGISTER", &nonce, b"");
        let list = [
            Credentials::parse(b"Digest username=\"x\", realm=\"elsewhere\"").unwrap(),
            Credentials::parse(h.as_bytes()).unwrap(),
        ];
        let Precheck::Lookup(p) = v.precheck(request("REGISTER"), &list, T0) else {
            panic!("lookup expected");
        };
        assert_eq!(p.position(), 1);
        assert_eq!(&*p.username(), b"alice@example.com");
        let (u, d) = p.user_and_domain();
        assert_eq!(
            (&*u, d.as_deref()),
            (&b"alice"[..], Some(&b"example.com"[..]))
        );
        assert_eq!(p.algorithm(), Algorithm::Md5);
        assert_eq!(
            p.finish(Some(Stored::Password(b"secret"))),
            Outcome::Authenticated
        );
    }

    #[test]
    fn identity_check_follows_auth_check_flag_1() {
        let alice = UserHost {
            user: b"alice",
            host: b"a.org",
        };
        let bob = UserHost {
            user: b"bob",
            host: b"a.org",
        };
        let none = IdentityChecks::default();
        let reg = Identity {
            from: alice,
            to: alice,
            request_uri: UserHost::default(),
        };
        assert_eq!(
            check_identity(b"REGISTER", b"alice", &reg, none),
            Outcome::Authenticated
        );
        assert_eq!(
            check_identity(b"REGISTER", b"bob", &reg, none),
            Outcome::UserMismatch
        );
        let third_party = Identity {
            from: bob,
            to: alice,
            ..reg
        };
        assert_eq!(
            check_identity(b"REGISTER", b"alice", &third_party, none),
            Outcome::UserMismatch
        );

        let call = Identity {
            from: bob,
            to: alice,
            request_uri: alice,
        };
        assert_eq!(
            check_identity(b"INVITE", b"bob", &call, none),
            Outcome::Authenticated
        );
        assert_eq!(
            check_identity(b"INVITE", b"alice", &call, none),
            Outcome::UserMismatch
        );
        let skip = IdentityChecks {
            skip_forwardable: true,
            ..none
        };
        assert_eq!(
            check_identity(b"INVITE", b"alice", &call, skip),
            Outcome::Authenticated
        );
        assert_eq!(
            check_identity(b"OPTIONS", b"alice", &call, skip),
            Outcome::UserMismatch
        );

        let publish = Identity {
            from: alice,
            to: alice,
            request_uri: bob,
        };
        assert_eq!(
            check_identity(b"PUBLISH", b"alice", &publish, none),
            Outcome::UserMismatch
        );
        let other_host = UserHost {
            user: b"alice",
            host: b"b.org",
        };
        let reg2 = Identity {
            from: alice,
            to: other_host,
            ..reg
        };
        assert_eq!(
            check_identity(b"REGISTER", b"alice", &reg2, none),
            Outcome::Authenticated
        );
        let dom = IdentityChecks {
            use_domain: true,
            ..none
        };
        assert_eq!(
            check_identity(b"REGISTER", b"alice", &reg2, dom),
            Outcome::UserMismatch
        );
        assert_eq!(Outcome::UserMismatch.code(), -8);
    }
}
