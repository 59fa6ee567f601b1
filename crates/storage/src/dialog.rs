//! The dialog module's rows (its `db_mode`): [`DialogRow`] (one dialog, every column of
//! Kamailio's `dialog` table), [`DialogVarRow`] (one `$dlg_var` of `dialog_vars`), single
//! writes, batches in one transaction and the load at start-up.
//!
//! A dialog is keyed by its place in the dialog module's hash table, `(hash_entry,
//! hash_id)`; Kamailio's schema has only a plain index on the pair, so an update is an
//! `UPDATE` by the pair and, when no row matched, an `INSERT`. A dialog's variables are
//! replaced as a whole when the dialog is written, and removed with it.
//!
//! Encodings are Kamailio's: `start_time` and `timeout` are declared `INTEGER` and hold UNIX
//! seconds (no Julian days here, unlike `location`); `timeout` is the absolute time the
//! dialog's timer runs out (0: not armed). `caller_cseq`/`callee_cseq` are text. Route sets
//! are the Record-Route entries joined by `,` (NULL or empty when none). `xdata` is the
//! dialog's profile memberships as JSON (`{"profiles":[{"name":...,"value":...}]}`), NULL
//! when it has none. Unsigned words (`hash_entry`, `hash_id`, `sflags`, `iflags`) go through
//! a C `int` as in [`crate::location`]: 4294967295 is stored as -1, both forms read back.
//! This crate does not look inside the strings: `sable-dialog` builds and reads them.

use std::collections::HashMap;

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, Row};

use crate::database::database_error;
use crate::location::{word_from_sql, word_to_sql};
use crate::{Database, StorageError};

/// One dialog, as stored in the `dialog` table (every column but `id`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialogRow {
    /// The bucket of the dialog in the module's hash table (a hash of the Call-ID).
    pub hash_entry: u32,
    /// The id of the dialog in its bucket.
    pub hash_id: u32,
    /// The Call-ID.
    pub callid: String,
    /// The URI of the INVITE's From.
    pub from_uri: String,
    /// The caller's tag.
    pub from_tag: String,
    /// The URI of the INVITE's To.
    pub to_uri: String,
    /// The callee's tag ("" while unknown).
    pub to_tag: String,
    /// The caller's last CSeq number, as text.
    pub caller_cseq: String,
    /// The callee's last CSeq number, as text.
    pub callee_cseq: String,
    /// The route set towards the caller, entries joined by `,`.
    pub caller_route_set: Option<String>,
    /// The route set towards the callee, entries joined by `,`.
    pub callee_route_set: Option<String>,
    /// The caller's remote target (Contact URI).
    pub caller_contact: String,
    /// The callee's remote target (Contact URI).
    pub callee_contact: String,
    /// The local socket towards the caller, `proto:ip:port`.
    pub caller_sock: String,
    /// The local socket towards the callee, `proto:ip:port`.
    pub callee_sock: String,
    /// The dialog state, 1..5 (Kamailio stores 2, 3 and 4).
    pub state: i32,
    /// When the 2xx was relayed, UNIX seconds.
    pub start_time: i64,
    /// When the dialog's timer runs out, UNIX seconds (absolute; 0: not armed).
    pub timeout: i64,
    /// Script flags (`dlg_setflag`).
    pub sflags: u32,
    /// Internal persistent flags (timeout BYE, keepalives, timer no-reset...).
    pub iflags: u32,
    /// The timeout route's name (`$dlg_ctx(timeout_route)`).
    pub toroute_name: Option<String>,
    /// The INVITE's Request-URI.
    pub req_uri: String,
    /// Extra data: the profile memberships as JSON.
    pub xdata: Option<String>,
}

/// One dialog variable, as stored in the `dialog_vars` table (every column but `id`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialogVarRow {
    /// The dialog's `hash_entry`.
    pub hash_entry: u32,
    /// The dialog's `hash_id`.
    pub hash_id: u32,
    /// The variable's name.
    pub dialog_key: String,
    /// The variable's value.
    pub dialog_value: String,
}

/// One change of a dialog batch ([`Database::apply_dialog_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogChange {
    /// Insert the dialog or update the one with the same `(hash_entry, hash_id)`, and
    /// replace its variables with these ([`Database::upsert_dialog`]).
    Upsert {
        /// The dialog.
        row: Box<DialogRow>,
        /// All its variables.
        vars: Vec<DialogVarRow>,
    },
    /// Remove the dialog and its variables ([`Database::delete_dialog`]).
    Delete {
        /// The dialog's `hash_entry`.
        hash_entry: u32,
        /// The dialog's `hash_id`.
        hash_id: u32,
    },
}

const DIALOG: &str = "dialog";

const UPDATE_SQL: &str = "UPDATE dialog SET callid = ?3, from_uri = ?4, from_tag = ?5, \
     to_uri = ?6, to_tag = ?7, caller_cseq = ?8, callee_cseq = ?9, caller_route_set = ?10, \
     callee_route_set = ?11, caller_contact = ?12, callee_contact = ?13, caller_sock = ?14, \
     callee_sock = ?15, state = ?16, start_time = ?17, timeout = ?18, sflags = ?19, \
     iflags = ?20, toroute_name = ?21, req_uri = ?22, xdata = ?23 \
     WHERE hash_entry = ?1 AND hash_id = ?2";

const INSERT_SQL: &str = "INSERT INTO dialog (hash_entry, hash_id, callid, from_uri, \
     from_tag, to_uri, to_tag, caller_cseq, callee_cseq, caller_route_set, callee_route_set, \
     caller_contact, callee_contact, caller_sock, callee_sock, state, start_time, timeout, \
     sflags, iflags, toroute_name, req_uri, xdata) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
     ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)";

const SELECT_SQL: &str = "SELECT hash_entry, hash_id, callid, from_uri, from_tag, to_uri, \
     to_tag, caller_cseq, callee_cseq, caller_route_set, callee_route_set, caller_contact, \
     callee_contact, caller_sock, callee_sock, state, start_time, timeout, sflags, iflags, \
     toroute_name, req_uri, xdata FROM dialog ORDER BY id";

impl Database {
    /// Inserts the dialog, or updates the one with the same `(hash_entry, hash_id)`, and
    /// replaces its variables with `vars` (all of them, in the order given: that is the
    /// order they load in). One transaction, committed (and fsynced) when this returns.
    /// Every variable must carry the dialog's `hash_entry` and `hash_id`
    /// ([`StorageError::ForeignDialogVar`] otherwise, nothing written).
    pub fn upsert_dialog(
        &self,
        row: &DialogRow,
        vars: &[DialogVarRow],
    ) -> Result<(), StorageError> {
        check_vars(row, vars)?;
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|source| database_error(&self.path, DIALOG, "begin", source))?;
        upsert(&tx, row, vars)
            .map_err(|source| database_error(&self.path, DIALOG, "upsert", source))?;
        tx.commit()
            .map_err(|source| database_error(&self.path, DIALOG, "commit", source))
    }

    /// Removes the dialog and its variables (the dialog ended or was freed); `false` if
    /// there was no such dialog. One transaction.
    pub fn delete_dialog(&self, hash_entry: u32, hash_id: u32) -> Result<bool, StorageError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|source| database_error(&self.path, DIALOG, "begin", source))?;
        let count = delete(&tx, hash_entry, hash_id)
            .map_err(|source| database_error(&self.path, DIALOG, "delete", source))?;
        tx.commit()
            .map_err(|source| database_error(&self.path, DIALOG, "commit", source))?;
        Ok(count > 0)
    }

    /// Applies the changes in order in ONE transaction (a timer's write-back of every
    /// changed dialog). Either all of them are committed or, on any error, none.
    pub fn apply_dialog_batch(&mut self, changes: &[DialogChange]) -> Result<(), StorageError> {
        for change in changes {
            if let DialogChange::Upsert { row, vars } = change {
                check_vars(row, vars)?;
            }
        }
        let tx = self
            .conn
            .transaction()
            .map_err(|source| database_error(&self.path, DIALOG, "begin", source))?;
        for change in changes {
            let done = match change {
                DialogChange::Upsert { row, vars } => upsert(&tx, row, vars),
                DialogChange::Delete {
                    hash_entry,
                    hash_id,
                } => delete(&tx, *hash_entry, *hash_id).map(drop),
            };
            // Dropping `tx` on the way out rolls the whole batch back.
            done.map_err(|source| database_error(&self.path, DIALOG, "batch", source))?;
        }
        tx.commit()
            .map_err(|source| database_error(&self.path, DIALOG, "commit", source))
    }

    /// Every dialog with its variables, dialogs and variables each in insertion order (the
    /// dialog module's load at start-up). Checks the tables first
    /// ([`Database::check_dialog_tables`]). Variables of no stored dialog are left out, as
    /// Kamailio skips them. Rows of every state are returned: the caller decides what to
    /// restore.
    pub fn load_dialogs(&self) -> Result<Vec<(DialogRow, Vec<DialogVarRow>)>, StorageError> {
        self.check_dialog_tables()?;
        let mut vars: HashMap<(u32, u32), Vec<DialogVarRow>> = HashMap::new();
        for var in self.load_vars()? {
            vars.entry((var.hash_entry, var.hash_id))
                .or_default()
                .push(var);
        }
        let sql = |source| database_error(&self.path, DIALOG, "load", source);
        let mut statement = self.conn.prepare_cached(SELECT_SQL).map_err(sql)?;
        let mut rows = statement.query([]).map_err(sql)?;
        let mut loaded = Vec::new();
        while let Some(row) = rows.next().map_err(sql)? {
            let dialog = self.dialog_row(row)?;
            let its_vars = vars
                .get(&(dialog.hash_entry, dialog.hash_id))
                .cloned()
                .unwrap_or_default();
            loaded.push((dialog, its_vars));
        }
        Ok(loaded)
    }

    fn load_vars(&self) -> Result<Vec<DialogVarRow>, StorageError> {
        let sql = |source| database_error(&self.path, "dialog_vars", "load", source);
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT hash_entry, hash_id, dialog_key, dialog_value FROM dialog_vars \
                 ORDER BY id",
            )
            .map_err(sql)?;
        let mut rows = statement.query([]).map_err(sql)?;
        let mut loaded = Vec::new();
        while let Some(row) = rows.next().map_err(sql)? {
            let key: String = row.get(2).map_err(sql)?;
            let bad = |column: &'static str, value: i64| StorageError::BadValue {
                path: self.path.clone(),
                table: "dialog_vars".to_owned(),
                ruid: key.clone(),
                column,
                detail: format!("{value} is not a 32-bit word"),
            };
            let hash_entry: i64 = row.get(0).map_err(sql)?;
            let hash_id: i64 = row.get(1).map_err(sql)?;
            loaded.push(DialogVarRow {
                hash_entry: word_from_sql(hash_entry)
                    .ok_or_else(|| bad("hash_entry", hash_entry))?,
                hash_id: word_from_sql(hash_id).ok_or_else(|| bad("hash_id", hash_id))?,
                dialog_value: row.get(3).map_err(sql)?,
                dialog_key: key,
            });
        }
        Ok(loaded)
    }

    fn dialog_row(&self, row: &Row<'_>) -> Result<DialogRow, StorageError> {
        let sql = |source| database_error(&self.path, DIALOG, "load", source);
        // The row's name in errors: its coordinates as stored.
        let raw = |index: usize| -> String {
            match row.get_ref(index) {
                Ok(ValueRef::Integer(i)) => i.to_string(),
                Ok(other) => format!("{other:?}"),
                Err(_) => "?".to_owned(),
            }
        };
        let name = format!("{}:{}", raw(0), raw(1));
        let bad = |column: &'static str, detail: String| StorageError::BadValue {
            path: self.path.clone(),
            table: DIALOG.to_owned(),
            ruid: name.clone(),
            column,
            detail,
        };
        // An integer column: an INTEGER, or a REAL with no fraction (a hand-made row).
        let int = |index: usize, column: &'static str| -> Result<i64, StorageError> {
            match row.get_ref(index).map_err(sql)? {
                ValueRef::Integer(i) => Ok(i),
                ValueRef::Real(r) if r.is_finite() && r.fract() == 0.0 => Ok(r as i64),
                other => Err(bad(column, format!("{other:?} is not an integer"))),
            }
        };
        let word = |index: usize, column: &'static str| -> Result<u32, StorageError> {
            let value = int(index, column)?;
            word_from_sql(value).ok_or_else(|| bad(column, format!("{value} is not a 32-bit word")))
        };
        let state = int(15, "state")?;
        Ok(DialogRow {
            hash_entry: word(0, "hash_entry")?,
            hash_id: word(1, "hash_id")?,
            callid: row.get(2).map_err(sql)?,
            from_uri: row.get(3).map_err(sql)?,
            from_tag: row.get(4).map_err(sql)?,
            to_uri: row.get(5).map_err(sql)?,
            to_tag: row.get(6).map_err(sql)?,
            caller_cseq: row.get(7).map_err(sql)?,
            callee_cseq: row.get(8).map_err(sql)?,
            caller_route_set: row.get(9).map_err(sql)?,
            callee_route_set: row.get(10).map_err(sql)?,
            caller_contact: row.get(11).map_err(sql)?,
            callee_contact: row.get(12).map_err(sql)?,
            caller_sock: row.get(13).map_err(sql)?,
            callee_sock: row.get(14).map_err(sql)?,
            state: i32::try_from(state)
                .map_err(|_| bad("state", format!("{state} is out of range")))?,
            start_time: int(16, "start_time")?,
            timeout: int(17, "timeout")?,
            sflags: word(18, "sflags")?,
            iflags: word(19, "iflags")?,
            toroute_name: row.get(20).map_err(sql)?,
            req_uri: row.get(21).map_err(sql)?,
            xdata: row.get(22).map_err(sql)?,
        })
    }
}

fn check_vars(row: &DialogRow, vars: &[DialogVarRow]) -> Result<(), StorageError> {
    match vars
        .iter()
        .find(|v| v.hash_entry != row.hash_entry || v.hash_id != row.hash_id)
    {
        Some(var) => Err(StorageError::ForeignDialogVar {
            hash_entry: row.hash_entry,
            hash_id: row.hash_id,
            key: var.dialog_key.clone(),
            var_hash_entry: var.hash_entry,
            var_hash_id: var.hash_id,
        }),
        None => Ok(()),
    }
}

/// Writes the dialog and its variables (inside the caller's transaction).
fn upsert(
    conn: &Connection,
    row: &DialogRow,
    vars: &[DialogVarRow],
) -> Result<(), rusqlite::Error> {
    let values = params![
        word_to_sql(row.hash_entry),
        word_to_sql(row.hash_id),
        row.callid,
        row.from_uri,
        row.from_tag,
        row.to_uri,
        row.to_tag,
        row.caller_cseq,
        row.callee_cseq,
        row.caller_route_set,
        row.callee_route_set,
        row.caller_contact,
        row.callee_contact,
        row.caller_sock,
        row.callee_sock,
        row.state,
        row.start_time,
        row.timeout,
        word_to_sql(row.sflags),
        word_to_sql(row.iflags),
        row.toroute_name,
        row.req_uri,
        row.xdata,
    ];
    if conn.prepare_cached(UPDATE_SQL)?.execute(values)? == 0 {
        conn.prepare_cached(INSERT_SQL)?.execute(values)?;
    }
    let (entry, id) = (word_to_sql(row.hash_entry), word_to_sql(row.hash_id));
    conn.prepare_cached("DELETE FROM dialog_vars WHERE hash_entry = ?1 AND hash_id = ?2")?
        .execute([entry, id])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO dialog_vars (hash_entry, hash_id, dialog_key, dialog_value) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for var in vars {
        insert.execute(params![entry, id, var.dialog_key, var.dialog_value])?;
    }
    Ok(())
}

/// Removes the dialog and its variables; how many dialog rows went.
fn delete(conn: &Connection, hash_entry: u32, hash_id: u32) -> Result<usize, rusqlite::Error> {
    let key = [word_to_sql(hash_entry), word_to_sql(hash_id)];
    conn.prepare_cached("DELETE FROM dialog_vars WHERE hash_entry = ?1 AND hash_id = ?2")?
        .execute(key)?;
    conn.prepare_cached("DELETE FROM dialog WHERE hash_entry = ?1 AND hash_id = ?2")?
        .execute(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempPath;

    fn full_row() -> DialogRow {
        DialogRow {
            hash_entry: 2_500,
            hash_id: u32::MAX,
            callid: "a84b4c76e66710@pc33.example.com".to_owned(),
            from_uri: "sip:alice@example.com".to_owned(),
            from_tag: "1928301774".to_owned(),
            to_uri: "sip:bob@example.com".to_owned(),
            to_tag: "a6c85cf".to_owned(),
            caller_cseq: "314159".to_owned(),
            callee_cseq: "0".to_owned(),
            caller_route_set: Some("<sip:edge.example.net;lr>".to_owned()),
            callee_route_set: Some(
                "<sip:core1.example.org;lr>,<sip:core2.example.org;lr>".to_owned(),
            ),
            caller_contact: "sip:alice@192.0.2.10:5060".to_owned(),
            callee_contact: "sip:bob@192.0.2.20:5060;transport=tcp".to_owned(),
            caller_sock: "udp:192.0.2.1:5060".to_owned(),
            callee_sock: "tcp:192.0.2.1:5060".to_owned(),
            state: 4,
            start_time: 1_795_343_296,
            timeout: 1_795_386_496,
            sflags: 0x8000_0002,
            iflags: 1,
            toroute_name: Some("DLG_TIMEOUT".to_owned()),
            req_uri: "sip:bob@example.com".to_owned(),
            xdata: Some(r#"{"profiles":[{"name":"caller","value":"alice"}]}"#.to_owned()),
        }
    }

    fn row(hash_entry: u32, hash_id: u32) -> DialogRow {
        DialogRow {
            hash_entry,
            hash_id,
            callid: format!("call-{hash_entry}-{hash_id}"),
            from_tag: "ft".to_owned(),
            caller_cseq: "1".to_owned(),
            callee_cseq: "0".to_owned(),
            state: 3,
            start_time: 1_700_000_000,
            ..DialogRow::default()
        }
    }

    fn var(d: &DialogRow, key: &str, value: &str) -> DialogVarRow {
        DialogVarRow {
            hash_entry: d.hash_entry,
            hash_id: d.hash_id,
            dialog_key: key.to_owned(),
            dialog_value: value.to_owned(),
        }
    }

    fn new_db(name: &str) -> (TempPath, Database) {
        let path = TempPath::new(name);
        let db = Database::create(&*path).unwrap();
        (path, db)
    }

    fn keys(db: &Database) -> Vec<(u32, u32, usize)> {
        db.load_dialogs()
            .unwrap()
            .into_iter()
            .map(|(d, v)| (d.hash_entry, d.hash_id, v.len()))
            .collect()
    }

    #[test]
    fn every_column_survives_a_round_trip() {
        let (path, db) = new_db("dlg-roundtrip");
        let full = full_row();
        let sparse = row(7, 1);
        let full_vars = vec![var(&full, "account", "yes"), var(&full, "k", "v 'quoted'")];
        db.upsert_dialog(&full, &full_vars).unwrap();
        db.upsert_dialog(&sparse, &[]).unwrap();
        drop(db);
        let db = Database::open_path(&*path).unwrap();
        assert_eq!(
            db.load_dialogs().unwrap(),
            vec![(full, full_vars), (sparse, vec![])]
        );
    }

    #[test]
    fn values_are_stored_as_kamailio_stores_them() {
        let (_path, db) = new_db("dlg-encoding");
        db.upsert_dialog(&full_row(), &[]).unwrap();
        let (hash_id, sflags, start, kind): (i64, i64, i64, String) = db
            .conn
            .query_row(
                "SELECT hash_id, sflags, start_time, typeof(timeout) FROM dialog",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(hash_id, -1, "u32::MAX through a C int");
        assert_eq!(sflags, i64::from(0x8000_0002_u32 as i32));
        assert_eq!(start, 1_795_343_296, "UNIX seconds, not a Julian day");
        assert_eq!(kind, "integer");
        // A row as Kamailio writes it by hand (defaults, NULLs, unsigned words as such).
        db.conn
            .execute_batch(
                "INSERT INTO dialog (hash_entry, hash_id, callid, from_uri, from_tag, to_uri, \
                 to_tag, caller_cseq, callee_cseq, caller_contact, callee_contact, caller_sock, \
                 callee_sock, state, start_time, req_uri) VALUES (3, 4294967295, 'c', 'f', \
                 'ft', 't', 'tt', '1', '2', 'cc', 'ce', 'udp:1.2.3.4:5060', \
                 'udp:1.2.3.4:5060', 4, 1700000000, 'r')",
            )
            .unwrap();
        let loaded = db.load_dialogs().unwrap();
        let (hand, vars) = &loaded[1];
        assert!(vars.is_empty());
        assert_eq!(hand.hash_id, u32::MAX);
        assert_eq!(hand.timeout, 0);
        assert_eq!((hand.sflags, hand.iflags), (0, 0));
        assert_eq!(hand.caller_route_set, None);
        assert_eq!(hand.xdata, None);
        // A state that is no number is an error naming the row.
        db.conn
            .execute_batch("UPDATE dialog SET state = 'up' WHERE hash_entry = 3")
            .unwrap();
        let error = db.load_dialogs().unwrap_err();
        assert!(
            matches!(&error, StorageError::BadValue { column: "state", ruid, .. } if ruid == "3:4294967295"),
            "{error:?}"
        );
    }

    #[test]
    fn upsert_updates_in_place_and_replaces_the_vars() {
        let (_path, db) = new_db("dlg-upsert");
        let a = row(1, 1);
        let b = row(1, 2);
        db.upsert_dialog(&a, &[var(&a, "x", "1"), var(&a, "y", "2")])
            .unwrap();
        db.upsert_dialog(&b, &[var(&b, "x", "b")]).unwrap();
        let mut changed = a.clone();
        changed.state = 4;
        changed.caller_cseq = "2".to_owned();
        changed.timeout = 1_700_043_200;
        db.upsert_dialog(&changed, &[var(&a, "z", "3")]).unwrap();
        let loaded = db.load_dialogs().unwrap();
        // The updated dialog keeps its place; its vars are only the new ones.
        assert_eq!(loaded[0], (changed, vec![var(&a, "z", "3")]));
        assert_eq!(loaded[1], (b.clone(), vec![var(&b, "x", "b")]));
        assert_eq!(loaded.len(), 2);
        let count: i64 = db
            .conn
            .query_row("SELECT count(*) FROM dialog_vars", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 2);
    }

    #[test]
    fn delete_removes_the_dialog_and_its_vars() {
        let (_path, db) = new_db("dlg-delete");
        let a = row(1, 1);
        let b = row(2, 1);
        db.upsert_dialog(&a, &[var(&a, "x", "1")]).unwrap();
        db.upsert_dialog(&b, &[var(&b, "x", "1")]).unwrap();
        assert!(db.delete_dialog(1, 1).unwrap());
        assert!(!db.delete_dialog(1, 1).unwrap());
        assert_eq!(keys(&db), [(2, 1, 1)]);
        let count: i64 = db
            .conn
            .query_row("SELECT count(*) FROM dialog_vars", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 1);
    }

    #[test]
    fn vars_of_another_dialog_are_refused() {
        let (_path, db) = new_db("dlg-foreign");
        let a = row(1, 1);
        let b = row(1, 2);
        let error = db
            .upsert_dialog(&a, &[var(&a, "x", "1"), var(&b, "y", "2")])
            .unwrap_err();
        assert!(
            matches!(&error, StorageError::ForeignDialogVar { key, var_hash_id: 2, .. } if key == "y"),
            "{error:?}"
        );
        assert!(keys(&db).is_empty(), "nothing written");
    }

    #[test]
    fn orphan_vars_are_left_out() {
        let (_path, db) = new_db("dlg-orphans");
        let a = row(1, 1);
        db.upsert_dialog(&a, &[]).unwrap();
        db.conn
            .execute_batch(
                "INSERT INTO dialog_vars (hash_entry, hash_id, dialog_key, dialog_value) \
                 VALUES (9, 9, 'lost', 'x')",
            )
            .unwrap();
        assert_eq!(keys(&db), [(1, 1, 0)]);
    }

    #[test]
    fn a_batch_is_all_or_nothing() {
        let (_path, mut db) = new_db("dlg-batch");
        let keep = row(1, 1);
        db.upsert_dialog(&keep, &[var(&keep, "x", "1")]).unwrap();
        let b1 = row(2, 1);
        let b2 = row(2, 2);
        db.apply_dialog_batch(&[
            DialogChange::Upsert {
                row: Box::new(b1.clone()),
                vars: vec![var(&b1, "a", "1"), var(&b1, "b", "2")],
            },
            DialogChange::Upsert {
                row: Box::new(b2.clone()),
                vars: vec![],
            },
            DialogChange::Delete {
                hash_entry: 1,
                hash_id: 1,
            },
        ])
        .unwrap();
        assert_eq!(keys(&db), [(2, 1, 2), (2, 2, 0)]);
        // The third change fails: the first two must not be committed.
        db.conn
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON dialog WHEN NEW.callid = 'boom'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END",
            )
            .unwrap();
        let mut boom = row(3, 3);
        boom.callid = "boom".to_owned();
        let error = db
            .apply_dialog_batch(&[
                DialogChange::Delete {
                    hash_entry: 2,
                    hash_id: 1,
                },
                DialogChange::Upsert {
                    row: Box::new(row(3, 1)),
                    vars: vec![],
                },
                DialogChange::Upsert {
                    row: Box::new(boom),
                    vars: vec![],
                },
            ])
            .unwrap_err();
        assert!(
            matches!(&error, StorageError::Sqlite { operation: "batch", table, .. } if table == "dialog"),
            "{error:?}"
        );
        assert!(error.to_string().contains("refused"), "{error}");
        assert_eq!(keys(&db), [(2, 1, 2), (2, 2, 0)]);
        // And the connection is usable afterwards.
        db.apply_dialog_batch(&[DialogChange::Upsert {
            row: Box::new(row(3, 1)),
            vars: vec![],
        }])
        .unwrap();
        assert_eq!(keys(&db), [(2, 1, 2), (2, 2, 0), (3, 1, 0)]);
    }

    #[test]
    fn a_database_without_dialog_tables_opens_but_cannot_keep_dialogs() {
        let path = TempPath::new("dlg-old");
        drop(Database::create(&*path).unwrap());
        Connection::open(&*path)
            .unwrap()
            .execute_batch(
                "DROP TABLE dialog_vars; DROP TABLE dialog;
                 DELETE FROM version WHERE table_name LIKE 'dialog%'",
            )
            .unwrap();
        // usrloc and auth_db still work with it.
        let db = Database::open_path(&*path).unwrap();
        db.add_subscriber("alice", "example.com", "secret").unwrap();
        let error = db.check_dialog_tables().unwrap_err();
        assert!(
            matches!(
                &error,
                StorageError::MissingDialogTable {
                    table: "dialog",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("dialog-create.sql"), "{error}");
        assert!(matches!(
            db.load_dialogs(),
            Err(StorageError::MissingDialogTable { .. })
        ));
        // Added by Kamailio's script (our copy of it), they serve.
        db.conn.execute_batch(crate::schema::DIALOG_SCHEMA).unwrap();
        db.check_dialog_tables().unwrap();
        // At another version they are refused like any table.
        db.conn
            .execute_batch("UPDATE version SET table_version = 6 WHERE table_name = 'dialog'")
            .unwrap();
        assert!(matches!(
            db.check_dialog_tables(),
            Err(StorageError::TableVersion {
                found: Some(6),
                expected: 7,
                ..
            })
        ));
    }
}
