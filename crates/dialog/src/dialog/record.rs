//! A dialog as the dialog module's `db_mode` keeps it across a restart: [`DialogRecord`],
//! [`Dialog::to_record`] and [`Dialog::from_record`].
//!
//! The record mirrors Kamailio 5.6's `dialog` table column for column (plus the dialog's
//! `$dlg_var`s, the `dialog_vars` rows), in the encodings Kamailio's dialog module writes,
//! so the same rows serve both: route sets are the entries joined by `,` (`NULL` when
//! empty), CSeqs are text, unknown tags, contacts and sockets are "", `timeout` is the
//! absolute UNIX time the dialog's timer runs out, and `xdata` holds the profile
//! memberships as Kamailio's `dlg_profiles_to_json` writes them:
//!
//! ```text
//! {"profiles":[{"name":"caller","value":"alice"},{"name":"inbound"}]}
//! ```
//!
//! (most recent membership first; `value` only for a profile with values; `NULL` when the
//! dialog is in no profile). Kamailio also writes `puid`, `expires` and `flags` members for
//! its DMQ replication; they are read and ignored.
//!
//! This crate does not know the database: the module copies a record to and from
//! `sable-storage`'s `DialogRow` and `DialogVarRow` field by field.

use serde_json::{Map, Value};

use super::text::{Text, FIELDS};
use super::{secs, Dialog, DialogAction, DialogConfig, Extra};
use crate::error::DialogError;
use crate::id::{HashId, Side};
use crate::profile::ProfileLink;
use crate::state::DialogState;

/// One dialog as stored: the columns of Kamailio's `dialog` table and the dialog's
/// variables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialogRecord {
    /// `hash_entry`: the bucket.
    pub hash_entry: u32,
    /// `hash_id`: the id in the bucket.
    pub hash_id: u32,
    /// `callid`.
    pub callid: String,
    /// `from_uri`: the URI of the INVITE's From.
    pub from_uri: String,
    /// `from_tag`: the caller's tag.
    pub from_tag: String,
    /// `to_uri`: the URI of the INVITE's To.
    pub to_uri: String,
    /// `to_tag`: the callee's tag ("" while unknown).
    pub to_tag: String,
    /// `caller_cseq`: the caller's last CSeq number, as text.
    pub caller_cseq: String,
    /// `callee_cseq`: the callee's last CSeq number, as text ("0" until it sent one).
    pub callee_cseq: String,
    /// `caller_route_set`: the route set towards the caller, entries joined by `,`;
    /// `None` when empty.
    pub caller_route_set: Option<String>,
    /// `callee_route_set`: the route set towards the callee, entries joined by `,`;
    /// `None` when empty.
    pub callee_route_set: Option<String>,
    /// `caller_contact`: the caller's remote target ("" unknown).
    pub caller_contact: String,
    /// `callee_contact`: the callee's remote target ("" unknown).
    pub callee_contact: String,
    /// `caller_sock`: the local socket towards the caller, `proto:ip:port` ("" unknown).
    pub caller_sock: String,
    /// `callee_sock`: the local socket towards the callee ("" unknown).
    pub callee_sock: String,
    /// `state`: 1..5 ([`DialogState::code`]).
    pub state: u8,
    /// `start_time`: when the 2xx was relayed, UNIX seconds.
    pub start_time: u64,
    /// `timeout`: when the lifetime runs out, UNIX seconds, absolute; 0 when the timer is
    /// not armed (a timeout BYE already sent).
    pub timeout: u64,
    /// `sflags`: script flags.
    pub sflags: u32,
    /// `iflags`: internal persistent flags (`IFLAG_*`).
    pub iflags: u32,
    /// `toroute_name`: the timeout route; `None` when unset.
    pub toroute_name: Option<String>,
    /// `req_uri`: the INVITE's Request-URI.
    pub req_uri: String,
    /// `xdata`: the profile memberships as JSON (see the module page); `None` when none.
    pub xdata: Option<String>,
    /// The `$dlg_var`s (`dialog_vars`: `dialog_key`, `dialog_value`), in the order they
    /// were created (oldest first).
    pub vars: Vec<(String, String)>,
}

impl Dialog {
    /// The dialog as the dialog module stores it (Kamailio's `dialog` columns and the
    /// variables). Any state is described; Kamailio stores states 2 to 4 and
    /// [`Dialog::from_record`] restores 3 and 4.
    pub fn to_record(&self) -> DialogRecord {
        let joined = |side: Side| {
            let mut routes = self.route_set(side).peekable();
            routes
                .peek()
                .is_some()
                .then(|| routes.collect::<Vec<_>>().join(","))
        };
        let text = |s: Option<&str>| s.unwrap_or_default().to_owned();
        DialogRecord {
            hash_entry: self.hash.h_entry(),
            hash_id: self.hash.h_id(),
            callid: self.call_id().to_owned(),
            from_uri: self.from_uri().to_owned(),
            from_tag: self.from_tag().to_owned(),
            to_uri: self.to_uri().to_owned(),
            to_tag: text(self.tag(Side::Callee)),
            caller_cseq: self.caller_cseq.to_string(),
            callee_cseq: self.callee_cseq.to_string(),
            caller_route_set: joined(Side::Caller),
            callee_route_set: joined(Side::Callee),
            caller_contact: text(self.contact(Side::Caller)),
            callee_contact: text(self.contact(Side::Callee)),
            caller_sock: text(self.socket(Side::Caller)),
            callee_sock: text(self.socket(Side::Callee)),
            state: self.state.code(),
            start_time: self.start_ts(),
            timeout: self.timeout_at().unwrap_or(0),
            sflags: self.sflags,
            iflags: self.iflags(),
            toroute_name: self.timeout_route().map(str::to_owned),
            req_uri: self.request_uri().to_owned(),
            xdata: profiles_to_json(self.links()),
            vars: self
                .extra
                .as_deref()
                .map(|e| {
                    e.vars
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Restores a confirmed dialog (state 3 or 4) from its record after a restart, as
    /// Kamailio's `load_dialog_info_from_db` does: legs (tags, contacts, CSeqs, route sets,
    /// sockets), flags, variables, profile memberships, timeout route. Internal flags
    /// (`dflags`) start at 0 and the message flags are unknown (0); `init_ts` is taken as
    /// `start_time` (not stored).
    ///
    /// The lifetime timer is re-armed from the stored absolute `timeout`: when it is still
    /// ahead, the dialog's lifetime becomes `timeout - start_time` (Kamailio's rule) and
    /// the actions hold one [`DialogAction::ScheduleTimeout`] (in state 3, possibly
    /// earlier for `noack_timeout`). When it passed while the server was down (or is 0),
    /// the lifetime is 0 and the dialog times out at once: the actions are what the timer
    /// would have given (a [`DialogAction::TimeoutRoute`], then [`DialogAction::SendBye`]
    /// both ways with the timeout-BYE flag, else [`DialogAction::Expired`], its
    /// [`DialogAction::LeftProfiles`] and the end timer).
    ///
    /// The module adds the restored memberships to its [`crate::Profiles`]
    /// ([`crate::Profiles::add`] for each of [`Dialog::profiles`], skipping and logging
    /// undeclared ones as Kamailio does) before acting on the actions, and checks that
    /// `hash_entry` is the Call-ID's bucket with its `hash_size`.
    ///
    /// Errors: [`DialogError::NotConfirmed`] for states 1, 2 and 5 (Kamailio never stores
    /// 1 and 5; an early dialog's INVITE transaction did not survive the restart),
    /// [`DialogError::BadRecord`] for a state that is no state, a CSeq that is no number,
    /// or `xdata` that is not Kamailio's profile JSON.
    pub fn from_record(
        record: DialogRecord,
        now: u64,
        cfg: &DialogConfig,
    ) -> Result<(Dialog, Vec<DialogAction>), DialogError> {
        let bad = |field: &'static str, detail: String| DialogError::BadRecord {
            h_entry: record.hash_entry,
            h_id: record.hash_id,
            field,
            detail,
        };
        let state = DialogState::from_code(record.state)
            .ok_or_else(|| bad("state", format!("{} is not a dialog state", record.state)))?;
        if !state.is_confirmed() {
            return Err(DialogError::NotConfirmed(state));
        }
        let cseq = |field: &'static str, value: &str| -> Result<u32, DialogError> {
            let value = value.trim();
            if value.is_empty() {
                return Ok(0);
            }
            value
                .parse::<u32>()
                .map_err(|_| bad(field, format!("{value:?} is not a CSeq number")))
        };
        let caller_cseq = cseq("caller_cseq", &record.caller_cseq)?;
        let callee_cseq = cseq("callee_cseq", &record.callee_cseq)?;
        let profiles = match record.xdata.as_deref() {
            Some(xdata) => profiles_from_json(xdata).map_err(|detail| bad("xdata", detail))?,
            None => Vec::new(),
        };
        let to_tag = (!record.to_tag.is_empty()).then_some(record.to_tag.as_str());
        let caller_route_set = split_route_set(record.caller_route_set.as_deref());
        let expired = record.timeout <= now;
        let lifetime = if expired {
            0
        } else {
            u32::try_from(record.timeout.saturating_sub(record.start_time)).unwrap_or(u32::MAX)
        };
        let callee_route_set = split_route_set(record.callee_route_set.as_deref());
        let caller_routes = Text::join_routes(&caller_route_set);
        let callee_routes = Text::join_routes(&callee_route_set);
        fn some(s: &str) -> Option<&str> {
            (!s.is_empty()).then_some(s)
        }
        // In field order (see `text::Field`).
        let values: [Option<&str>; FIELDS] = [
            Some(&record.callid),
            Some(&record.from_tag),
            to_tag,
            Some(&record.from_uri),
            Some(&record.to_uri),
            Some(&record.req_uri),
            some(&record.caller_contact),
            some(&record.callee_contact),
            caller_routes.as_deref(),
            callee_routes.as_deref(),
            some(&record.caller_sock),
            some(&record.callee_sock),
        ];
        let text = Text::build(&values).ok_or(DialogError::TooLarge)?;
        let vars: Vec<(Box<str>, Box<str>)> = record
            .vars
            .into_iter()
            .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
            .collect();
        let extra = Extra {
            vars,
            profiles,
            timeout_route: record
                .toroute_name
                .filter(|r| !r.is_empty())
                .map(String::into_boxed_str),
            ka_failed: [0, 0],
            ka_next: 0,
        };
        let mut dialog = Dialog {
            text,
            hash: HashId(record.hash_entry, record.hash_id),
            init_ts: secs(record.start_time),
            start_ts: secs(record.start_time),
            end_ts: 0,
            timeout_at: secs(record.timeout),
            armed_at: 0,
            lifetime,
            sflags: record.sflags,
            message_flags: 0,
            caller_cseq,
            callee_cseq,
            dflags: 0,
            generation: 0,
            caller_rr_count: u16::try_from(caller_route_set.len()).unwrap_or(u16::MAX),
            // Kamailio's persistent internal flags are the low bits (1 << 0 .. 1 << 6).
            iflags: (record.iflags & 0xFF) as u8,
            bits: 0,
            state,
            armed_kind: None,
            extra: (!extra.is_empty()).then(|| Box::new(extra)),
        };
        let mut actions = Vec::new();
        if expired {
            dialog.expire(now, &mut actions);
        }
        dialog.rearm(cfg, &mut actions);
        Ok((dialog, actions))
    }
}

/// Kamailio's `dlg_profiles_to_json`: `{"profiles":[{"name":..,"value":..},..]}`, most
/// recent membership first; `None` without memberships (Kamailio stores NULL).
fn profiles_to_json(links: &[ProfileLink]) -> Option<String> {
    if links.is_empty() {
        return None;
    }
    let list: Vec<Value> = links
        .iter()
        .rev()
        .map(|link| {
            let mut item = Map::new();
            item.insert("name".to_owned(), Value::String(link.profile.clone()));
            if let Some(value) = &link.value {
                item.insert("value".to_owned(), Value::String(value.clone()));
            }
            Value::Object(item)
        })
        .collect();
    let mut root = Map::new();
    root.insert("profiles".to_owned(), Value::Array(list));
    Some(Value::Object(root).to_string())
}

/// Kamailio's `dlg_json_to_profiles`: the memberships in the dialog's own order (oldest
/// first). Items without a `name` are skipped, as there; `puid`, `expires` and `flags` are
/// ignored; an empty string is no profiles.
fn profiles_from_json(xdata: &str) -> Result<Vec<ProfileLink>, String> {
    if xdata.trim().is_empty() {
        return Ok(Vec::new());
    }
    let root: Value = serde_json::from_str(xdata).map_err(|e| format!("not JSON: {e}"))?;
    let Some(root) = root.as_object() else {
        return Err("not a JSON object".to_owned());
    };
    let list = match root.get("profiles") {
        None => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err("\"profiles\" is not an array".to_owned()),
    };
    let text = |item: &Map<String, Value>, key: &str| -> Result<Option<String>, String> {
        match item.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("profile {key} {other} is not a string")),
        }
    };
    let mut links = Vec::with_capacity(list.len());
    for item in list.iter().filter_map(Value::as_object) {
        let Some(name) = text(item, "name")? else {
            continue;
        };
        links.push(ProfileLink {
            profile: name,
            value: text(item, "value")?,
        });
    }
    links.reverse();
    Ok(links)
}

/// The entries of a stored route set: split at the commas between entries (not those
/// inside `<...>` or a quoted display name), trimmed, empty ones dropped.
fn split_route_set(joined: Option<&str>) -> Vec<String> {
    let Some(joined) = joined else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    let mut current = String::new();
    let (mut in_angle, mut in_quote, mut escaped) = (false, false, false);
    for c in joined.chars() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
        } else {
            match c {
                '"' => in_quote = true,
                '<' => in_angle = true,
                '>' => in_angle = false,
                ',' if !in_angle => {
                    entries.push(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            }
        }
        current.push(c);
    }
    entries.push(current);
    entries
        .into_iter()
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::{DialogEvent, IFLAG_TIMEOUTBYE, IFLAG_TIMER_NORESET};
    use crate::id::{Direction, Side};
    use crate::profile::Profiles;
    use crate::state::DialogState;
    use sable_sip::Message;

    const T0: u64 = 1_700_000_000;
    const CALL_ID: &str = "call-1@192.0.2.10";

    fn invite() -> String {
        format!(
            "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKedge1\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1\r\n\
Record-Route: <sip:edge.example.net;lr>\r\n\
Max-Forwards: 69\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=ft1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: {CALL_ID}\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
Content-Length: 0\r\n\r\n"
        )
    }

    fn ok() -> String {
        format!(
            "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKedge1\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1\r\n\
Record-Route: <sip:core2.example.org;lr>, <sip:core1.example.org;lr>\r\n\
Record-Route: <sip:proxy.example.com;lr;did=5.1>\r\n\
Record-Route: <sip:edge.example.net;lr>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=ft1\r\n\
To: <sip:bob@example.com>;tag=tt1\r\n\
Call-ID: {CALL_ID}\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:bob@192.0.2.20:5060;transport=tcp>\r\n\
Content-Length: 0\r\n\r\n"
        )
    }

    fn within(method: &str, dir: Direction, cseq: u32) -> String {
        let (from, to, ruri) = match dir {
            Direction::Downstream => (
                "<sip:alice@example.com>;tag=ft1",
                "<sip:bob@example.com>;tag=tt1",
                "sip:bob@192.0.2.20:5060",
            ),
            Direction::Upstream => (
                "<sip:bob@example.com>;tag=tt1",
                "<sip:alice@example.com>;tag=ft1",
                "sip:alice@192.0.2.10:5060",
            ),
        };
        format!(
            "{method} {ruri} SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKr{cseq}\r\n\
Route: <sip:proxy.example.com;lr;did=5.1>\r\n\
Max-Forwards: 70\r\n\
From: {from}\r\n\
To: {to}\r\n\
Call-ID: {CALL_ID}\r\n\
CSeq: {cseq} {method}\r\n\
Content-Length: 0\r\n\r\n"
        )
    }

    /// INVITE, 200 at T0+5, ACK at T0+6, an INFO from the callee at T0+20 (so both sides
    /// have a CSeq), sockets, flags, a timeout route, variables and profiles.
    fn confirmed(cfg: &DialogConfig, profiles: &mut Profiles) -> Dialog {
        let inv = invite();
        let (mut d, _) = Dialog::from_invite(
            HashId(5, 1),
            &Message::parse(inv.as_bytes()).unwrap(),
            T0,
            cfg,
        )
        .unwrap();
        let r = ok();
        d.on_reply(&Message::parse(r.as_bytes()).unwrap(), 1, T0 + 5, cfg)
            .unwrap();
        for (method, dir, cseq, at) in [
            ("ACK", Direction::Downstream, 10, T0 + 6),
            ("INFO", Direction::Upstream, 7, T0 + 20),
        ] {
            let m = within(method, dir, cseq);
            d.on_request(&Message::parse(m.as_bytes()).unwrap(), dir, at, cfg)
                .unwrap();
        }
        assert_eq!(d.state(), DialogState::Confirmed);
        d.set_socket(Side::Caller, "udp:192.0.2.1:5060");
        d.set_socket(Side::Callee, "tcp:192.0.2.1:5060");
        d.set_flag(3).unwrap();
        d.set_flag(31).unwrap();
        d.set_timeout_noreset(true);
        d.set_timeout_route(Some("DLG_TIMEOUT".to_owned()));
        d.set_var("account", Some("42"));
        d.set_var("note", Some("a, \"quoted\" value"));
        profiles
            .set(&mut d, ProfileLink::new("caller", Some("alice")))
            .unwrap();
        profiles
            .set(&mut d, ProfileLink::new("calls", None))
            .unwrap();
        d
    }

    fn declared() -> Profiles {
        Profiles::from_params("calls", "caller").unwrap()
    }

    fn record(state: u8) -> DialogRecord {
        DialogRecord {
            hash_entry: 1,
            hash_id: 2,
            callid: "c".to_owned(),
            from_tag: "ft".to_owned(),
            to_tag: "tt".to_owned(),
            caller_cseq: "1".to_owned(),
            callee_cseq: "0".to_owned(),
            caller_contact: "sip:a@192.0.2.10".to_owned(),
            callee_contact: "sip:b@192.0.2.20".to_owned(),
            state,
            start_time: T0,
            timeout: T0 + 3600,
            ..DialogRecord::default()
        }
    }

    fn byes(d: &Dialog) -> Vec<Vec<u8>> {
        [Side::Caller, Side::Callee]
            .into_iter()
            .map(|side| d.build_bye(side, "192.0.2.1:5060", "z9hG4bKbye").unwrap())
            .collect()
    }

    #[test]
    fn a_confirmed_dialog_survives_a_round_trip() {
        let cfg = DialogConfig::default();
        let mut profiles = declared();
        let d = confirmed(&cfg, &mut profiles);
        let rec = d.to_record();
        // The columns, as Kamailio writes them.
        assert_eq!(
            rec,
            DialogRecord {
                hash_entry: 5,
                hash_id: 1,
                callid: CALL_ID.to_owned(),
                from_uri: "sip:alice@example.com".to_owned(),
                from_tag: "ft1".to_owned(),
                to_uri: "sip:bob@example.com".to_owned(),
                to_tag: "tt1".to_owned(),
                caller_cseq: "10".to_owned(),
                callee_cseq: "7".to_owned(),
                caller_route_set: Some("<sip:edge.example.net;lr>".to_owned()),
                callee_route_set: Some(
                    "<sip:core1.example.org;lr>,<sip:core2.example.org;lr>".to_owned()
                ),
                caller_contact: "sip:alice@192.0.2.10:5060".to_owned(),
                callee_contact: "sip:bob@192.0.2.20:5060;transport=tcp".to_owned(),
                caller_sock: "udp:192.0.2.1:5060".to_owned(),
                callee_sock: "tcp:192.0.2.1:5060".to_owned(),
                state: 4,
                start_time: T0 + 5,
                timeout: T0 + 20 + 43200,
                sflags: (1 << 3) | (1 << 31),
                iflags: IFLAG_TIMER_NORESET,
                toroute_name: Some("DLG_TIMEOUT".to_owned()),
                req_uri: "sip:bob@example.com".to_owned(),
                xdata: Some(
                    r#"{"profiles":[{"name":"calls"},{"name":"caller","value":"alice"}]}"#
                        .to_owned()
                ),
                vars: vec![
                    ("account".to_owned(), "42".to_owned()),
                    ("note".to_owned(), "a, \"quoted\" value".to_owned()),
                ],
            }
        );

        // Restarted an hour later.
        let now = T0 + 3600;
        let (r, actions) = Dialog::from_record(rec.clone(), now, &cfg).unwrap();
        assert_eq!(
            actions,
            vec![DialogAction::ScheduleTimeout {
                at: T0 + 20 + 43200,
                generation: 1
            }]
        );
        assert_eq!(r.hash(), d.hash());
        assert_eq!(r.id(), d.id());
        assert_eq!(r.state(), d.state());
        assert_eq!(
            (r.from_uri(), r.to_uri(), r.request_uri()),
            (d.from_uri(), d.to_uri(), d.request_uri())
        );
        assert_eq!(r.leg(Side::Caller), d.leg(Side::Caller));
        assert_eq!(r.leg(Side::Callee), d.leg(Side::Callee));
        assert_eq!(r.start_ts(), d.start_ts());
        assert_eq!(r.timeout_at(), d.timeout_at());
        assert_eq!(r.deadline(), d.deadline());
        assert_eq!((r.sflags(), r.iflags()), (d.sflags(), d.iflags()));
        assert_eq!(r.timeout_route(), d.timeout_route());
        assert!(r.vars().eq(d.vars()));
        assert!(r.profiles().eq(d.profiles()));
        // Kamailio's rule: the lifetime is what is left counted from the start.
        assert_eq!(r.lifetime(), 43200 + 20 - 5);
        assert_eq!(r.dflags(), 0);
        assert_eq!(byes(&r), byes(&d));
        assert_eq!(r.to_record(), rec);
        // dlg.list shows the same dialog.
        let (mut before, mut after) = (d.info(now), r.info(now));
        before.dflags = 0;
        before.lifetime = after.lifetime;
        after.init_ts = before.init_ts;
        assert_eq!(after, before);
    }

    #[test]
    fn a_restored_dialog_goes_on() {
        let cfg = DialogConfig::default();
        let mut profiles = declared();
        let d = confirmed(&cfg, &mut profiles);
        let (mut r, _) = Dialog::from_record(d.to_record(), T0 + 100, &cfg).unwrap();
        // The module counts the restored memberships in its fresh registry.
        let mut fresh = declared();
        for link in r.profiles() {
            fresh.add(link).unwrap();
        }
        assert_eq!(fresh.size("caller", Some("alice")).unwrap(), 1);
        assert_eq!(fresh.size("calls", None).unwrap(), 1);
        // The caller's next request is matched with its CSeq; a BYE ends the dialog.
        let bye = within("BYE", Direction::Downstream, 11);
        let actions = r
            .on_request(
                &Message::parse(bye.as_bytes()).unwrap(),
                Direction::Downstream,
                T0 + 200,
                &cfg,
            )
            .unwrap();
        assert!(actions.contains(&DialogAction::Ended {
            reason: crate::dialog::EndReason::Bye(Direction::Downstream)
        }));
        let left = actions.iter().find_map(|a| match a {
            DialogAction::LeftProfiles { links } => Some(links.clone()),
            _ => None,
        });
        fresh.release(&left.unwrap());
        assert_eq!(fresh.size("calls", None).unwrap(), 0);
        assert_eq!(r.state(), DialogState::Deleted);
    }

    #[test]
    fn a_dialog_whose_end_passed_during_the_restart_expires_at_once() {
        let cfg = DialogConfig::default();
        let mut profiles = declared();
        let d = confirmed(&cfg, &mut profiles);
        let mut rec = d.to_record();
        rec.toroute_name = None;
        let now = rec.timeout + 5;
        let (r, actions) = Dialog::from_record(rec.clone(), now, &cfg).unwrap();
        let links: Vec<ProfileLink> = d.profiles().cloned().collect();
        assert_eq!(
            actions,
            vec![
                DialogAction::Expired,
                DialogAction::LeftProfiles { links },
                DialogAction::ScheduleTimeout {
                    at: now + u64::from(cfg.end_timeout),
                    generation: 1
                },
            ]
        );
        assert_eq!(r.state(), DialogState::Deleted);
        assert_eq!(r.lifetime(), 0);
        assert_eq!(r.end_ts(), now);

        // With the timeout BYE and a timeout route: the route, then BYE both ways; the
        // dialog ends when they are answered.
        rec.iflags |= IFLAG_TIMEOUTBYE;
        rec.toroute_name = Some("DLG_TIMEOUT".to_owned());
        let (mut r, actions) = Dialog::from_record(rec.clone(), rec.timeout, &cfg).unwrap();
        assert_eq!(
            actions,
            vec![
                DialogAction::TimeoutRoute {
                    route: "DLG_TIMEOUT".to_owned()
                },
                DialogAction::SendBye { side: Side::Caller },
                DialogAction::SendBye { side: Side::Callee },
            ]
        );
        assert_eq!(r.state(), DialogState::Confirmed);
        assert_eq!(byes(&r), byes(&d));
        let done = r.handle(DialogEvent::LocalByeDone, rec.timeout + 1, &cfg);
        assert_eq!(
            done.first(),
            Some(&DialogAction::Ended {
                reason: crate::dialog::EndReason::LocalBye
            })
        );

        // A timeout of 0 (the timer was not armed: its BYE was in flight) times out too.
        rec.timeout = 0;
        let (_, actions) = Dialog::from_record(rec, T0 + 100, &cfg).unwrap();
        assert!(actions.contains(&DialogAction::SendBye { side: Side::Callee }));
    }

    #[test]
    fn state_3_keeps_its_noack_timer() {
        let cfg = DialogConfig::default();
        let (r, actions) = Dialog::from_record(record(3), T0 + 10, &cfg).unwrap();
        assert_eq!(r.state(), DialogState::ConfirmedNotAcked);
        assert_eq!(
            actions,
            vec![DialogAction::ScheduleTimeout {
                at: T0 + u64::from(cfg.noack_timeout),
                generation: 1
            }]
        );
    }

    #[test]
    fn only_confirmed_states_are_restored() {
        let cfg = DialogConfig::default();
        for (code, state) in [
            (1, DialogState::Unconfirmed),
            (2, DialogState::Early),
            (5, DialogState::Deleted),
        ] {
            assert_eq!(
                Dialog::from_record(record(code), T0, &cfg).unwrap_err(),
                DialogError::NotConfirmed(state)
            );
        }
        for code in [0, 6, 255] {
            assert!(matches!(
                Dialog::from_record(record(code), T0, &cfg),
                Err(DialogError::BadRecord {
                    field: "state",
                    h_entry: 1,
                    h_id: 2,
                    ..
                })
            ));
        }
        assert!(Dialog::from_record(record(4), T0, &cfg).is_ok());
    }

    #[test]
    fn bad_fields_are_errors() {
        let cfg = DialogConfig::default();
        let mut rec = record(4);
        rec.callee_cseq = "x1".to_owned();
        assert!(matches!(
            Dialog::from_record(rec, T0, &cfg),
            Err(DialogError::BadRecord {
                field: "callee_cseq",
                ..
            })
        ));
        for xdata in [
            "{\"profiles\":",
            "[1]",
            "{\"profiles\":{}}",
            "{\"profiles\":[{\"name\":7}]}",
        ] {
            let mut rec = record(4);
            rec.xdata = Some(xdata.to_owned());
            let error = Dialog::from_record(rec, T0, &cfg).unwrap_err();
            assert!(
                matches!(error, DialogError::BadRecord { field: "xdata", .. }),
                "{xdata}: {error:?}"
            );
        }
    }

    #[test]
    fn profiles_and_vars_are_read_as_kamailio_writes_them() {
        let cfg = DialogConfig::default();
        let mut rec = record(4);
        // As Kamailio 5.6 writes it: most recent first, with its DMQ members; a nameless
        // item is skipped.
        rec.xdata = Some(
            r#"{"profiles":[{"name":"calls","puid":"x-1","flags":1},{"value":"v"},{"name":"caller","value":"bob","expires":1700000000}]}"#
                .to_owned(),
        );
        rec.vars = vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), String::new()),
        ];
        let (r, _) = Dialog::from_record(rec, T0, &cfg).unwrap();
        assert_eq!(
            r.profiles().cloned().collect::<Vec<_>>(),
            vec![
                ProfileLink::new("calls", None),
                ProfileLink::new("caller", Some("bob")),
            ]
        );
        assert!(r.is_in_profile("caller", Some("bob")));
        assert_eq!(r.var("a"), Some("1"));
        assert_eq!(r.var("b"), Some(""));
        assert_eq!(r.vars().collect::<Vec<_>>(), vec![("b", ""), ("a", "1")]);
        // No profiles: NULL, and "" or {} read as none.
        assert_eq!(record(4).xdata, None);
        for xdata in ["", "{}", "{\"profiles\":[]}"] {
            let mut rec = record(4);
            rec.xdata = Some(xdata.to_owned());
            let (r, _) = Dialog::from_record(rec, T0, &cfg).unwrap();
            assert_eq!(r.profiles().count(), 0, "{xdata}");
            assert_eq!(r.to_record().xdata, None);
        }
    }

    #[test]
    fn empty_columns_are_unknowns() {
        let cfg = DialogConfig::default();
        let mut rec = record(4);
        rec.to_tag = String::new();
        rec.callee_contact = String::new();
        rec.caller_route_set = Some(String::new());
        rec.toroute_name = Some(String::new());
        let (r, _) = Dialog::from_record(rec, T0, &cfg).unwrap();
        assert_eq!(r.id().to_tag, None);
        assert_eq!(r.leg(Side::Callee).tag, None);
        assert_eq!(r.leg(Side::Callee).contact, None);
        assert_eq!(r.leg(Side::Caller).socket, None);
        assert!(r.leg(Side::Caller).route_set.is_empty());
        assert_eq!(r.timeout_route(), None);
        let back = r.to_record();
        assert_eq!((back.caller_route_set, back.toroute_name), (None, None));
        assert_eq!(back.callee_contact, "");
    }

    #[test]
    fn route_sets_split_between_entries_only() {
        assert_eq!(
            split_route_set(Some(
                "<sip:a.example;lr>, \"Edge, Inc\" <sip:b.example;lr>,<sip:c.example;lr;x=\",\">"
            )),
            vec![
                "<sip:a.example;lr>",
                "\"Edge, Inc\" <sip:b.example;lr>",
                "<sip:c.example;lr;x=\",\">",
            ]
        );
        assert_eq!(
            split_route_set(Some("\"a\\\", b\" <sip:x;lr>")),
            vec!["\"a\\\", b\" <sip:x;lr>"]
        );
        assert!(split_route_set(None).is_empty());
        assert!(split_route_set(Some(" , ")).is_empty());
    }
}
