//! The results of the module's RPC commands as JSON values, members in Kamailio's order.
//!
//! `dlgs.list`, `dlgs.briefing`, `dlgs.get` and `dlgs.getall` return arrays (Kamailio marks
//! them `RET_ARRAY`); `count` in each object is the 1-based position in the answer, not a
//! count. Tags and `ts_finish` are never shown. `branch` is Kamailio master's member (empty
//! when the INVITE's branch was not given).

use crate::filter::Filter;
use crate::record::{Record, State};
use crate::store::{Stats, Store};
use serde_json::{json, Map, Value};

/// One record as `dlgs.list`/`dlgs.get`/`dlgs.getall` show it: `count`, `src`, `dst`,
/// `data`, `ruid`, `callid`, `branch`, `ftag`, `ttag`, `ts_init`, `ts_answer`, `state`.
pub fn full_record(position: usize, r: &Record) -> Value {
    json!({
        "count": position,
        "src": r.src,
        "dst": r.dst,
        "data": r.data,
        "ruid": r.ruid,
        "callid": r.callid,
        "branch": r.branch,
        "ftag": r.ftag,
        "ttag": r.ttag,
        "ts_init": r.ts_init,
        "ts_answer": r.ts_answer,
        "state": r.state.code(),
    })
}

/// One record as `dlgs.briefing` shows it: `count`, `src`, `dst`, `callid`, `branch`, `state`.
pub fn brief_record(position: usize, r: &Record) -> Value {
    json!({
        "count": position,
        "src": r.src,
        "dst": r.dst,
        "callid": r.callid,
        "branch": r.branch,
        "state": r.state.code(),
    })
}

fn numbered<'a>(
    records: impl Iterator<Item = &'a Record>,
    shape: fn(usize, &Record) -> Value,
) -> Value {
    Value::Array(records.enumerate().map(|(i, r)| shape(i + 1, r)).collect())
}

/// `dlgs.list`: every record in memory (finished ones included), full shape.
pub fn list(store: &Store) -> Value {
    numbered(store.records(), full_record)
}

/// `dlgs.briefing`: every record in memory, short shape.
pub fn briefing(store: &Store) -> Value {
    numbered(store.records(), brief_record)
}

/// `dlgs.get field op data`: an array with the first matching record (finished included,
/// `any` read as `src`), or empty.
pub fn get(store: &Store, filter: &Filter) -> Value {
    numbered(store.matching(filter).take(1), full_record)
}

/// `dlgs.getall field op data`: every matching record (finished included, `any` read as
/// `src`).
pub fn getall(store: &Store, filter: &Filter) -> Value {
    numbered(store.matching(filter), full_record)
}

/// `dlgs.stats`: `{"final": {<state>: n...}, "active": {<state>: n...}}`, state names
/// `init`, `progress`, `answered`, `confirmed`, `terminated`, `notanswered`.
pub fn stats(stats: &Stats) -> Value {
    let group = |of: fn(&Stats, State) -> u64| {
        let mut m = Map::new();
        for s in State::ALL {
            m.insert(s.name().to_owned(), Value::from(of(stats, s)));
        }
        Value::Object(m)
    };
    json!({ "final": group(Stats::removed), "active": group(Stats::active) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Config;
    use crate::DlgsError;

    fn store() -> Result<Store, DlgsError> {
        let mut s = Store::new(Config {
            pid: 0x38e0,
            ..Config::default()
        });
        s.init(
            "sip:alice@a",
            "sip:bob@b",
            "my data",
            "c1",
            "ft1",
            0x6b02_c37b,
        )?;
        s.update_reply(200, "INVITE", "c1", "tt1", 0x6b02_c37d);
        s.update_request("ACK", "c1", 0x6b02_c37d);
        s.init("sip:carol@a", "sip:bob@b", "", "c2", "ft2", 0x6b02_c37e)?;
        s.update_reply(486, "INVITE", "c2", "tt2", 0x6b02_c37f);
        Ok(s)
    }

    #[test]
    fn list_shows_every_record_with_full_members_in_order() -> Result<(), DlgsError> {
        let s = store()?;
        let v = list(&s);
        let first = v.get(0).cloned().unwrap_or_default();
        let keys: Vec<&str> = first
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            vec![
                "count",
                "src",
                "dst",
                "data",
                "ruid",
                "callid",
                "branch",
                "ftag",
                "ttag",
                "ts_init",
                "ts_answer",
                "state"
            ]
        );
        assert_eq!(first["ruid"], "dlgs-6b02c37b-38e0-1-6f67");
        assert_eq!(first["state"], 3);
        assert_eq!(first["ttag"], "tt1");
        assert_eq!(first["ts_answer"], 0x6b02_c37d_u64);
        assert_eq!(v[1]["count"], 2, "count is the position");
        assert_eq!(v[1]["state"], 5, "finished records are listed");
        Ok(())
    }

    #[test]
    fn briefing_has_the_short_members() -> Result<(), DlgsError> {
        let v = briefing(&store()?);
        let keys: Vec<String> = v[0]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            vec!["count", "src", "dst", "callid", "branch", "state"]
        );
        Ok(())
    }

    #[test]
    fn get_returns_at_most_one_and_getall_every_match() -> Result<(), DlgsError> {
        let s = store()?;
        let f = Filter::parse("dst", "eq", "sip:bob@b")?;
        assert_eq!(get(&s, &f).as_array().map(Vec::len), Some(1));
        assert_eq!(getall(&s, &f).as_array().map(Vec::len), Some(2));
        let any = Filter::parse("any", "sw", "sip:carol")?;
        assert_eq!(getall(&s, &any)[0]["callid"], "c2", "any reads as src");
        let none = Filter::parse("data", "eq", "nothing")?;
        assert_eq!(get(&s, &none), json!([]));
        Ok(())
    }

    #[test]
    fn stats_has_final_and_active_by_state_name() -> Result<(), DlgsError> {
        let mut s = store()?;
        s.expire(0x6b02_c37f + 11);
        assert_eq!(
            stats(&s.stats()),
            json!({
                "final": {"init": 0, "progress": 0, "answered": 0, "confirmed": 0,
                          "terminated": 0, "notanswered": 1},
                "active": {"init": 0, "progress": 0, "answered": 0, "confirmed": 1,
                           "terminated": 0, "notanswered": 0}
            })
        );
        Ok(())
    }
}
