//! The shapes of the dialog RPC results as Kamailio 5.6 prints them: one dialog of `dlg.list`
//! / `dlg.list_match` / `dlg.dlg_list` / `dlg.profile_list` ([`DialogInfo`]), `dlg.briefing`
//! ([`DialogInfo::briefing_json`]) and `dlg.stats_active` ([`ActiveCounts`]). The module
//! registers the methods and walks its tables; this module only builds the values.

use serde_json::{json, Map, Value};

use crate::dialog::Dialog;
use crate::id::Side;
use crate::state::DialogState;

/// One side as `dlg.list` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegInfo {
    /// The side's tag ("" while unknown).
    pub tag: String,
    /// The side's Contact URI ("" while unknown).
    pub contact: String,
    /// The last CSeq number, as a string (Kamailio stores it as text).
    pub cseq: String,
    /// The route set towards the side, entries joined by `,` ("" when empty).
    pub route_set: String,
    /// The local socket, `proto:ip:port` ("" while unknown).
    pub socket: String,
}

/// One profile membership as printed: a bare name, or `{name: value}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileEntry {
    /// A profile without values.
    Name(String),
    /// A profile with values.
    Valued(String, String),
}

/// One dialog as `dlg.list` prints it, field for field in Kamailio's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogInfo {
    /// Bucket.
    pub h_entry: u32,
    /// Id in the bucket.
    pub h_id: u32,
    /// Kamailio's reference count. Sable has no such count; [`Dialog::info`] gives what
    /// Kamailio shows when nothing else holds the dialog: 1 for the table, + 1 while the
    /// lifetime timer is armed. The module may add its own holders.
    pub ref_count: u32,
    /// Call-ID.
    pub call_id: String,
    /// From URI of the INVITE.
    pub from_uri: String,
    /// To URI of the INVITE.
    pub to_uri: String,
    /// State 1..5.
    pub state: u8,
    /// When the 2xx was relayed (0 before).
    pub start_ts: u64,
    /// When the INVITE was seen.
    pub init_ts: u64,
    /// When the dialog reached state 5 (0 before).
    pub end_ts: u64,
    /// Seconds between `start_ts` and `end_ts` (or now); 0 if never answered.
    pub duration: u64,
    /// Absolute UNIX time the lifetime runs out; 0 when the timer is not armed.
    pub timeout: u64,
    /// Lifetime in seconds.
    pub lifetime: u32,
    /// Internal flags.
    pub dflags: u32,
    /// Script flags (`dlg_setflag`).
    pub sflags: u32,
    /// Internal persistent flags.
    pub iflags: u32,
    /// The caller's side.
    pub caller: LegInfo,
    /// The callee's side.
    pub callee: LegInfo,
    /// Profile memberships, most recent first.
    pub profiles: Vec<ProfileEntry>,
    /// Dialog variables, most recently created first.
    pub variables: Vec<(String, String)>,
}

impl Dialog {
    /// The `dlg.list` description of the dialog at `now` (UNIX seconds).
    pub fn info(&self, now: u64) -> DialogInfo {
        let leg = |side: Side| LegInfo {
            tag: self.tag(side).unwrap_or_default().to_owned(),
            contact: self.contact(side).unwrap_or_default().to_owned(),
            cseq: self.cseq(side).to_string(),
            route_set: self.route_set(side).collect::<Vec<_>>().join(","),
            socket: self.socket(side).unwrap_or_default().to_owned(),
        };
        let duration = if self.start_ts() == 0 {
            0
        } else {
            let until = if self.end_ts() > 0 {
                self.end_ts()
            } else {
                now
            };
            until.saturating_sub(self.start_ts())
        };
        DialogInfo {
            h_entry: self.hash().h_entry(),
            h_id: self.hash().h_id(),
            ref_count: 1 + u32::from(self.timeout_at().is_some()),
            call_id: self.call_id().to_owned(),
            from_uri: self.from_uri().to_owned(),
            to_uri: self.to_uri().to_owned(),
            state: self.state().code(),
            start_ts: self.start_ts(),
            init_ts: self.init_ts(),
            end_ts: self.end_ts(),
            duration,
            timeout: self.timeout_at().unwrap_or(0),
            lifetime: self.lifetime(),
            dflags: self.dflags(),
            sflags: self.sflags(),
            iflags: self.iflags(),
            caller: leg(Side::Caller),
            callee: leg(Side::Callee),
            profiles: self
                .profiles()
                .map(|l| match &l.value {
                    Some(v) => ProfileEntry::Valued(l.profile.clone(), v.clone()),
                    None => ProfileEntry::Name(l.profile.clone()),
                })
                .collect(),
            variables: self
                .vars()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

impl LegInfo {
    /// `{"tag", "contact", "cseq", "route_set", "socket"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "tag": self.tag,
            "contact": self.contact,
            "cseq": self.cseq,
            "route_set": self.route_set,
            "socket": self.socket,
        })
    }
}

impl DialogInfo {
    /// The object `dlg.list` prints for the dialog, members in Kamailio's order.
    pub fn to_json(&self) -> Value {
        let profiles: Vec<Value> = self
            .profiles
            .iter()
            .map(|p| match p {
                ProfileEntry::Name(n) => Value::String(n.clone()),
                ProfileEntry::Valued(n, v) => single(n, Value::String(v.clone())),
            })
            .collect();
        let variables: Vec<Value> = self
            .variables
            .iter()
            .map(|(n, v)| single(n, Value::String(v.clone())))
            .collect();
        json!({
            "h_entry": self.h_entry,
            "h_id": self.h_id,
            "ref": self.ref_count,
            "call-id": self.call_id,
            "from_uri": self.from_uri,
            "to_uri": self.to_uri,
            "state": self.state,
            "start_ts": self.start_ts,
            "init_ts": self.init_ts,
            "end_ts": self.end_ts,
            "duration": self.duration,
            "timeout": self.timeout,
            "lifetime": self.lifetime,
            "dflags": self.dflags,
            "sflags": self.sflags,
            "iflags": self.iflags,
            "caller": self.caller.to_json(),
            "callee": self.callee.to_json(),
            "profiles": profiles,
            "variables": variables,
        })
    }

    /// `dlg.briefing fmt`: `h_entry` and `h_id` always, then one member per letter of
    /// `fmt` in its order: `f` from_uri, `t` to_uri, `c` call-id, `F` from_tag, `T` to_tag,
    /// `I` init_ts, `S` start_ts, `E` end_ts, `s` state. Other letters are skipped.
    pub fn briefing_json(&self, fmt: &str) -> Value {
        let mut m = Map::new();
        m.insert("h_entry".into(), json!(self.h_entry));
        m.insert("h_id".into(), json!(self.h_id));
        for c in fmt.chars() {
            let (k, v) = match c {
                'f' => ("from_uri", json!(self.from_uri)),
                't' => ("to_uri", json!(self.to_uri)),
                'c' => ("call-id", json!(self.call_id)),
                'F' => ("from_tag", json!(self.caller.tag)),
                'T' => ("to_tag", json!(self.callee.tag)),
                'I' => ("init_ts", json!(self.init_ts)),
                'S' => ("start_ts", json!(self.start_ts)),
                'E' => ("end_ts", json!(self.end_ts)),
                's' => ("state", json!(self.state)),
                _ => continue,
            };
            m.insert(k.into(), v);
        }
        Value::Object(m)
    }
}

fn single(name: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(name.to_owned(), value);
    Value::Object(m)
}

/// `dlg.stats_active`: dialogs per state 1..4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActiveCounts {
    /// State 1.
    pub starting: u64,
    /// State 2.
    pub connecting: u64,
    /// State 3.
    pub answering: u64,
    /// State 4.
    pub ongoing: u64,
}

impl ActiveCounts {
    /// Counts one dialog.
    pub fn add(&mut self, state: DialogState) {
        match state {
            DialogState::Unconfirmed => self.starting += 1,
            DialogState::Early => self.connecting += 1,
            DialogState::ConfirmedNotAcked => self.answering += 1,
            DialogState::Confirmed => self.ongoing += 1,
            DialogState::Deleted => {}
        }
    }

    /// `{"starting", "connecting", "answering", "ongoing", "all"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "starting": self.starting,
            "connecting": self.connecting,
            "answering": self.answering,
            "ongoing": self.ongoing,
            "all": self.starting + self.connecting + self.answering + self.ongoing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::{DialogConfig, Reply};
    use crate::id::{Direction, HashId};
    use crate::profile::{ProfileLink, Profiles};
    use crate::{DialogEvent, InDialogRequest, RequestKind};
    use sable_sip::Message;

    const INVITE: &[u8] = b"INVITE sip:2000@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1\r\n\
From: <sip:1000@example.com>;tag=9fxced76sl\r\n\
To: <sip:2000@example.com>\r\n\
Call-ID: 3848276298220188511@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:1000@192.0.2.10:5060>\r\n\
Content-Length: 0\r\n\r\n";

    fn sample() -> crate::Dialog {
        let cfg = DialogConfig::default();
        let m = Message::parse(INVITE).unwrap();
        let (mut d, _) =
            crate::Dialog::from_invite(HashId(1484, 4813), &m, 1_795_343_316, &cfg).unwrap();
        d.set_socket(Side::Caller, "udp:192.0.2.1:5060");
        d.set_socket(Side::Callee, "udp:192.0.2.1:5060");
        d.handle(
            DialogEvent::Reply(Reply {
                code: 200,
                to_tag: Some("314159".into()),
                contact: Some("sip:2000@192.0.2.20:5060".into()),
                record_routes: vec![],
                own_record_routes: 0,
            }),
            1_795_343_316,
            &cfg,
        );
        d.handle(
            DialogEvent::Request(InDialogRequest {
                kind: RequestKind::Ack,
                direction: Direction::Downstream,
                cseq: 1,
                refresh_target: None,
            }),
            1_795_343_317,
            &cfg,
        );
        let mut p = Profiles::from_params("inbound", "caller").unwrap();
        p.set(
            &mut d,
            ProfileLink::new("caller", Some("sip:1000@example.com")),
        )
        .unwrap();
        p.set(&mut d, ProfileLink::new("inbound", None)).unwrap();
        d.set_var("caller_var", Some("1000@example.com"));
        d
    }

    #[test]
    fn dlg_list_entry_has_kamailios_members_in_order() {
        let v = sample().info(1_795_343_318).to_json();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "h_entry",
                "h_id",
                "ref",
                "call-id",
                "from_uri",
                "to_uri",
                "state",
                "start_ts",
                "init_ts",
                "end_ts",
                "duration",
                "timeout",
                "lifetime",
                "dflags",
                "sflags",
                "iflags",
                "caller",
                "callee",
                "profiles",
                "variables"
            ]
        );
        let leg_keys: Vec<&str> = v["caller"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            leg_keys,
            vec!["tag", "contact", "cseq", "route_set", "socket"]
        );
        assert_eq!(v["h_entry"], 1484);
        assert_eq!(v["h_id"], 4813);
        assert_eq!(v["ref"], 2);
        assert_eq!(v["call-id"], "3848276298220188511@192.0.2.10");
        assert_eq!(v["from_uri"], "sip:1000@example.com");
        assert_eq!(v["to_uri"], "sip:2000@example.com");
        assert_eq!(v["state"], 4);
        assert_eq!(v["start_ts"], 1_795_343_316u64);
        assert_eq!(v["init_ts"], 1_795_343_316u64);
        assert_eq!(v["end_ts"], 0);
        assert_eq!(v["duration"], 2);
        // The ACK restarted the lifetime.
        assert_eq!(v["timeout"], 1_795_343_317u64 + 43200);
        assert_eq!(v["lifetime"], 43200);
        assert_eq!(v["sflags"], 0);
        assert_eq!(v["iflags"], 0);
        assert_eq!(
            v["caller"],
            json!({"tag": "9fxced76sl", "contact": "sip:1000@192.0.2.10:5060", "cseq": "1",
                   "route_set": "", "socket": "udp:192.0.2.1:5060"})
        );
        assert_eq!(
            v["callee"],
            json!({"tag": "314159", "contact": "sip:2000@192.0.2.20:5060", "cseq": "0",
                   "route_set": "", "socket": "udp:192.0.2.1:5060"})
        );
        assert_eq!(
            v["profiles"],
            json!(["inbound", {"caller": "sip:1000@example.com"}])
        );
        assert_eq!(v["variables"], json!([{"caller_var": "1000@example.com"}]));
    }

    #[test]
    fn route_sets_print_joined_and_unanswered_duration_is_zero() {
        let cfg = DialogConfig::default();
        let m = Message::parse(INVITE).unwrap();
        let (mut d, _) = crate::Dialog::from_invite(HashId(1, 2), &m, 100, &cfg).unwrap();
        let info = d.info(150);
        assert_eq!(info.duration, 0);
        assert_eq!(info.timeout, 0);
        assert_eq!(info.ref_count, 1);
        assert_eq!(info.callee.tag, "");
        d.handle(
            DialogEvent::Reply(Reply {
                code: 200,
                to_tag: Some("t".into()),
                contact: Some("sip:b@h".into()),
                record_routes: vec![
                    "<sip:a;lr>".into(),
                    "<sip:b;lr>".into(),
                    "<sip:me;lr>".into(),
                ],
                own_record_routes: 1,
            }),
            160,
            &cfg,
        );
        assert_eq!(d.info(170).callee.route_set, "<sip:b;lr>,<sip:a;lr>");
        assert_eq!(d.info(170).duration, 10);
    }

    #[test]
    fn briefing_and_stats_active() {
        let info = sample().info(0);
        assert_eq!(
            info.briefing_json("ftcsxFT").to_string(),
            json!({"h_entry": 1484, "h_id": 4813, "from_uri": "sip:1000@example.com",
                   "to_uri": "sip:2000@example.com", "call-id": "3848276298220188511@192.0.2.10",
                   "state": 4, "from_tag": "9fxced76sl", "to_tag": "314159"})
            .to_string()
        );
        let mut c = ActiveCounts::default();
        for s in [
            DialogState::Unconfirmed,
            DialogState::Early,
            DialogState::Early,
            DialogState::ConfirmedNotAcked,
            DialogState::Confirmed,
            DialogState::Deleted,
        ] {
            c.add(s);
        }
        assert_eq!(
            c.to_json().to_string(),
            r#"{"starting":1,"connecting":2,"answering":1,"ongoing":1,"all":5}"#
        );
    }
}
