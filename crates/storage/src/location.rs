//! usrloc's rows: [`LocationRow`] (one contact of one AOR, every column of Kamailio's
//! `location` table), single writes for db_mode 1 and 3, batches for db_mode 2, the preload
//! at start-up and the counts behind `ul.db_users`, `ul.db_contacts` and
//! `ul.db_expired_contacts`.
//!
//! Times are UNIX seconds here. On disk, `expires` and `last_modified` are stored the way
//! Kamailio's `db_sqlite` stores a `TIMESTAMP` column: a Julian day number (REAL), written
//! as `(t - 0.5) / 86400 + 2440587.5` and read as `86400 * (jd - 2440587.5) + 0.5`. Reading
//! rounds (Kamailio truncates, which loses a second now and then to floating point); text
//! dates such as the schema's default `'2030-05-28 21:32:15'` are read too. An `expires` of
//! 0 means a permanent contact, as in usrloc.
//!
//! Unsigned 32-bit words (`flags`, `cflags`, `methods`, `reg_id`) are stored as Kamailio
//! stores them, through a C `int`: 4294967295 is written as -1. Both forms are read back.

use rusqlite::types::Value;
use rusqlite::{params, Row};

use crate::database::database_error;
use crate::{Database, StorageError, TableName};

/// One contact, as stored in a usrloc table (every column but `id`).
#[derive(Debug, Clone, PartialEq)]
pub struct LocationRow {
    /// usrloc's unique id of the contact (`uloc-...`); the key of every update.
    pub ruid: String,
    /// The AOR's user part (the whole AOR when usrloc's `use_domain` is 0).
    pub username: String,
    /// The AOR's domain with `use_domain=1`, else `None` (SQL NULL).
    pub domain: Option<String>,
    /// The Contact URI.
    pub contact: String,
    /// The source address the REGISTER came from, when NAT handling recorded it.
    pub received: Option<String>,
    /// The Path header values (RFC 3327), comma-separated.
    pub path: Option<String>,
    /// When the contact expires, UNIX seconds; 0 is permanent.
    pub expires: i64,
    /// The q value (-1 when unspecified, as usrloc keeps it).
    pub q: f64,
    /// The REGISTER's Call-ID.
    pub callid: String,
    /// The REGISTER's CSeq number.
    pub cseq: i32,
    /// When the contact last changed, UNIX seconds.
    pub last_modified: i64,
    /// usrloc's contact flags.
    pub flags: u32,
    /// The branch flags saved with the contact (restored by `lookup`).
    pub cflags: u32,
    /// The User-Agent header.
    pub user_agent: String,
    /// The local socket the REGISTER came in on (`udp:192.0.2.1:5060`).
    pub socket: Option<String>,
    /// The methods the contact accepts (a bit mask; `None` or all ones is any).
    pub methods: Option<u32>,
    /// `+sip.instance` (RFC 5626).
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626).
    pub reg_id: u32,
    /// The `server_id` of the instance that saved the contact.
    pub server_id: i32,
    /// The TCP connection id the contact is bound to (0 none).
    pub connection_id: i32,
    /// Whether keepalives are sent to the contact (usrloc `ka_mode`).
    pub keepalive: i32,
    /// The partition (usrloc's `db_timer_clean` sharding).
    pub partition: i32,
}

/// One change of a write-back batch ([`Database::apply_batch`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Insert the contact, or replace the one with the same `ruid`.
    Upsert(Box<LocationRow>),
    /// Remove the contact with this `ruid`.
    Delete {
        /// The contact's `ruid`.
        ruid: String,
    },
    /// Remove every contact of an AOR (see [`Database::delete_aor`]).
    DeleteAor {
        /// The AOR's user part.
        username: String,
        /// The domain, or `None` for every row of the username (`use_domain=0`).
        domain: Option<String>,
    },
}

/// `expires`/`last_modified` as UNIX seconds (REAL, rounded in Rust), from a Julian day
/// number as Kamailio writes it or from a date string.
fn unix_time_sql(column: &str) -> String {
    format!(
        "CASE typeof({column}) WHEN 'text' THEN (julianday({column}) - 2440587.5) * 86400.0 \
         ELSE ({column} - 2440587.5) * 86400.0 + 0.5 END"
    )
}

/// Kamailio's `timet_to_sqlite`.
fn julian_day(unix: i64) -> f64 {
    // i64 -> f64 is exact for every time of the next 285 million years.
    (unix as f64 - 0.5) / 86400.0 + 2_440_587.5
}

/// A C `unsigned int` as Kamailio binds it: through `int`.
pub(crate) fn word_to_sql(word: u32) -> i32 {
    i32::from_ne_bytes(word.to_ne_bytes())
}

pub(crate) fn word_from_sql(value: i64) -> Option<u32> {
    u32::try_from(value).ok().or_else(|| {
        i32::try_from(value)
            .ok()
            .map(|signed| u32::from_ne_bytes(signed.to_ne_bytes()))
    })
}

impl Database {
    /// Inserts the contact, or updates the one with the same `ruid` (db_mode 1 and 3).
    /// Committed (and fsynced) when this returns.
    pub fn upsert_contact(&self, table: &TableName, row: &LocationRow) -> Result<(), StorageError> {
        upsert(&self.conn, table, row).map_err(|source| self.error(table, "upsert", source))
    }

    /// Removes the contact with this `ruid`; `false` if there was none.
    pub fn delete_contact(&self, table: &TableName, ruid: &str) -> Result<bool, StorageError> {
        delete_ruid(&self.conn, table, ruid)
            .map(|count| count > 0)
            .map_err(|source| self.error(table, "delete", source))
    }

    /// Removes every contact of an AOR: of `username` at `domain`, or with `domain` `None`
    /// every row of `username` whatever its domain (usrloc with `use_domain=0` deletes by
    /// username only). Returns how many rows went.
    pub fn delete_aor(
        &self,
        table: &TableName,
        username: &str,
        domain: Option<&str>,
    ) -> Result<usize, StorageError> {
        delete_aor(&self.conn, table, username, domain)
            .map_err(|source| self.error(table, "delete AOR", source))
    }

    /// Applies the changes in order in ONE transaction (db_mode 2: the timer's write-back).
    /// Either all of them are committed or, on any error, none.
    pub fn apply_batch(
        &mut self,
        table: &TableName,
        changes: &[Change],
    ) -> Result<(), StorageError> {
        let tx = self
            .conn
            .transaction()
            .map_err(|source| database_error(&self.path, table.as_str(), "begin", source))?;
        let sql = upsert_sql(table);
        for change in changes {
            let done = match change {
                Change::Upsert(row) => upsert_with(&tx, &sql, row),
                Change::Delete { ruid } => delete_ruid(&tx, table, ruid).map(drop),
                Change::DeleteAor { username, domain } => {
                    delete_aor(&tx, table, username, domain.as_deref()).map(drop)
                }
            };
            // Dropping `tx` on the way out rolls the whole batch back.
            done.map_err(|source| database_error(&self.path, table.as_str(), "batch", source))?;
        }
        tx.commit()
            .map_err(|source| database_error(&self.path, table.as_str(), "commit", source))
    }

    /// Every contact of the table, in insertion order (usrloc's preload at start-up).
    /// Checks the table first ([`Database::check_location_table`]).
    pub fn load_location(&self, table: &TableName) -> Result<Vec<LocationRow>, StorageError> {
        self.check_location_table(table)?;
        let sql = format!(
            "SELECT ruid, username, domain, contact, received, path, {}, q, callid, cseq, {}, \
             flags, cflags, user_agent, socket, methods, instance, reg_id, server_id, \
             connection_id, keepalive, \"partition\" FROM \"{table}\" ORDER BY id",
            unix_time_sql("expires"),
            unix_time_sql("last_modified"),
        );
        let mut statement = self
            .conn
            .prepare_cached(&sql)
            .map_err(|source| self.error(table, "load", source))?;
        let mut rows = statement
            .query([])
            .map_err(|source| self.error(table, "load", source))?;
        let mut loaded = Vec::new();
        while let Some(row) = rows
            .next()
            .map_err(|source| self.error(table, "load", source))?
        {
            loaded.push(self.location_row(table, row)?);
        }
        Ok(loaded)
    }

    /// How many AORs (distinct username and domain) have at least one contact valid at
    /// `now` (expires 0 or later than `now`): `ul.db_users`.
    pub fn db_users(&self, table: &TableName, now: i64) -> Result<u64, StorageError> {
        let sql = format!(
            "SELECT count(*) FROM (SELECT DISTINCT username, domain FROM \"{table}\" \
             WHERE round({expires}) = 0 OR round({expires}) > ?1)",
            expires = unix_time_sql("expires")
        );
        self.count(table, &sql, now)
    }

    /// How many contacts are valid at `now`: `ul.db_contacts`.
    pub fn db_contacts(&self, table: &TableName, now: i64) -> Result<u64, StorageError> {
        let sql = format!(
            "SELECT count(*) FROM \"{table}\" WHERE round({expires}) = 0 OR round({expires}) > ?1",
            expires = unix_time_sql("expires")
        );
        self.count(table, &sql, now)
    }

    /// How many contacts have expired by `now` (not permanent, expires at or before `now`):
    /// `ul.db_expired_contacts`.
    pub fn db_expired_contacts(&self, table: &TableName, now: i64) -> Result<u64, StorageError> {
        let sql = format!(
            "SELECT count(*) FROM \"{table}\" WHERE round({expires}) BETWEEN 1 AND ?1",
            expires = unix_time_sql("expires")
        );
        self.count(table, &sql, now)
    }

    fn count(&self, table: &TableName, sql: &str, now: i64) -> Result<u64, StorageError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut statement| statement.query_row([now], |row| row.get::<_, i64>(0)))
            .map(|count| u64::try_from(count).unwrap_or(0))
            .map_err(|source| self.error(table, "count", source))
    }

    fn error(
        &self,
        table: &TableName,
        operation: &'static str,
        source: rusqlite::Error,
    ) -> StorageError {
        database_error(&self.path, table.as_str(), operation, source)
    }

    fn location_row(&self, table: &TableName, row: &Row<'_>) -> Result<LocationRow, StorageError> {
        let sql = |source| self.error(table, "load", source);
        let ruid: String = row.get(0).map_err(sql)?;
        let bad = |column: &'static str, detail: String| StorageError::BadValue {
            path: self.path.clone(),
            table: table.to_string(),
            ruid: ruid.clone(),
            column,
            detail,
        };
        let time = |index: usize, column: &'static str| -> Result<i64, StorageError> {
            match row.get::<_, Option<f64>>(index).map_err(sql)? {
                // f64 -> i64 saturates; any real date is far inside the range.
                Some(seconds) if seconds.is_finite() => Ok(seconds.round() as i64),
                _ => Err(bad(column, "not a date".to_owned())),
            }
        };
        let word = |index: usize, column: &'static str| -> Result<Option<u32>, StorageError> {
            match row.get::<_, Option<i64>>(index).map_err(sql)? {
                None => Ok(None),
                Some(value) => word_from_sql(value)
                    .map(Some)
                    .ok_or_else(|| bad(column, format!("{value} is not a 32-bit word"))),
            }
        };
        let word_not_null = |index: usize, column: &'static str| -> Result<u32, StorageError> {
            word(index, column)?.ok_or_else(|| bad(column, "NULL".to_owned()))
        };
        let int = |index: usize, column: &'static str| -> Result<i32, StorageError> {
            let value: i64 = row.get(index).map_err(sql)?;
            i32::try_from(value).map_err(|_| bad(column, format!("{value} is out of range")))
        };
        Ok(LocationRow {
            username: row.get(1).map_err(sql)?,
            domain: row.get(2).map_err(sql)?,
            contact: row.get(3).map_err(sql)?,
            received: row.get(4).map_err(sql)?,
            path: row.get(5).map_err(sql)?,
            expires: time(6, "expires")?,
            q: row.get(7).map_err(sql)?,
            callid: row.get(8).map_err(sql)?,
            cseq: int(9, "cseq")?,
            last_modified: time(10, "last_modified")?,
            flags: word_not_null(11, "flags")?,
            cflags: word_not_null(12, "cflags")?,
            user_agent: row.get(13).map_err(sql)?,
            socket: row.get(14).map_err(sql)?,
            methods: word(15, "methods")?,
            instance: row.get(16).map_err(sql)?,
            reg_id: word_not_null(17, "reg_id")?,
            server_id: int(18, "server_id")?,
            connection_id: int(19, "connection_id")?,
            keepalive: int(20, "keepalive")?,
            partition: int(21, "partition")?,
            ruid: ruid.clone(),
        })
    }
}

fn upsert(
    conn: &rusqlite::Connection,
    table: &TableName,
    row: &LocationRow,
) -> Result<(), rusqlite::Error> {
    upsert_with(conn, &upsert_sql(table), row)
}

/// The upsert statement of a table (built once per batch).
fn upsert_sql(table: &TableName) -> String {
    format!(
        "INSERT INTO \"{table}\" (ruid, username, domain, contact, received, path, expires, q, \
         callid, cseq, last_modified, flags, cflags, user_agent, socket, methods, instance, \
         reg_id, server_id, connection_id, keepalive, \"partition\") \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
         ?18, ?19, ?20, ?21, ?22) \
         ON CONFLICT (ruid) DO UPDATE SET username = excluded.username, \
         domain = excluded.domain, contact = excluded.contact, received = excluded.received, \
         path = excluded.path, expires = excluded.expires, q = excluded.q, \
         callid = excluded.callid, cseq = excluded.cseq, \
         last_modified = excluded.last_modified, flags = excluded.flags, \
         cflags = excluded.cflags, user_agent = excluded.user_agent, \
         socket = excluded.socket, methods = excluded.methods, instance = excluded.instance, \
         reg_id = excluded.reg_id, server_id = excluded.server_id, \
         connection_id = excluded.connection_id, keepalive = excluded.keepalive, \
         \"partition\" = excluded.\"partition\""
    )
}

fn upsert_with(
    conn: &rusqlite::Connection,
    sql: &str,
    row: &LocationRow,
) -> Result<(), rusqlite::Error> {
    let methods = row.methods.map_or(Value::Null, |methods| {
        Value::Integer(i64::from(word_to_sql(methods)))
    });
    conn.prepare_cached(sql)?.execute(params![
        row.ruid,
        row.username,
        row.domain,
        row.contact,
        row.received,
        row.path,
        julian_day(row.expires),
        row.q,
        row.callid,
        row.cseq,
        julian_day(row.last_modified),
        word_to_sql(row.flags),
        word_to_sql(row.cflags),
        row.user_agent,
        row.socket,
        methods,
        row.instance,
        word_to_sql(row.reg_id),
        row.server_id,
        row.connection_id,
        row.keepalive,
        row.partition,
    ])?;
    Ok(())
}

fn delete_ruid(
    conn: &rusqlite::Connection,
    table: &TableName,
    ruid: &str,
) -> Result<usize, rusqlite::Error> {
    conn.prepare_cached(&format!("DELETE FROM \"{table}\" WHERE ruid = ?1"))?
        .execute([ruid])
}

fn delete_aor(
    conn: &rusqlite::Connection,
    table: &TableName,
    username: &str,
    domain: Option<&str>,
) -> Result<usize, rusqlite::Error> {
    match domain {
        Some(domain) => conn
            .prepare_cached(&format!(
                "DELETE FROM \"{table}\" WHERE username = ?1 AND domain = ?2"
            ))?
            .execute([username, domain]),
        None => conn
            .prepare_cached(&format!("DELETE FROM \"{table}\" WHERE username = ?1"))?
            .execute([username]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempPath;

    fn row(ruid: &str, username: &str, expires: i64) -> LocationRow {
        LocationRow {
            ruid: ruid.to_owned(),
            username: username.to_owned(),
            domain: None,
            contact: format!("sip:{username}@192.0.2.10:5060"),
            received: None,
            path: None,
            expires,
            q: -1.0,
            callid: format!("call-{ruid}"),
            cseq: 1,
            last_modified: 1_795_343_296,
            flags: 0,
            cflags: 0,
            user_agent: String::new(),
            socket: None,
            methods: None,
            instance: None,
            reg_id: 0,
            server_id: 0,
            connection_id: 0,
            keepalive: 0,
            partition: 0,
        }
    }

    fn full_row() -> LocationRow {
        LocationRow {
            ruid: "uloc-6b02c37b-38e0-1".to_owned(),
            username: "alice".to_owned(),
            domain: Some("example.com".to_owned()),
            contact: "sip:alice@192.0.2.10:5060;transport=tcp".to_owned(),
            received: Some("sip:198.51.100.7:40123".to_owned()),
            path: Some("<sip:edge.example.com;lr>".to_owned()),
            expires: 1_795_343_896,
            q: 0.5,
            callid: "a84b4c76e66710".to_owned(),
            cseq: 2_147_483_647,
            last_modified: 1_795_343_296,
            flags: 0x8000_0001,
            cflags: u32::MAX,
            user_agent: "phone/1.0 'quoted'".to_owned(),
            socket: Some("tcp:192.0.2.1:5060".to_owned()),
            methods: Some(u32::MAX),
            instance: Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>".to_owned()),
            reg_id: 1,
            server_id: 7,
            connection_id: -1,
            keepalive: 1,
            partition: 3,
        }
    }

    fn new_db(name: &str) -> (TempPath, Database) {
        let path = TempPath::new(name);
        let db = Database::create(&*path).unwrap();
        (path, db)
    }

    #[test]
    fn every_column_survives_a_round_trip() {
        let (path, db) = new_db("roundtrip");
        let table = TableName::location();
        let full = full_row();
        let sparse = row("uloc-2", "bob", 0);
        db.upsert_contact(&table, &full).unwrap();
        db.upsert_contact(&table, &sparse).unwrap();
        drop(db);
        let db = Database::open_path(&*path).unwrap();
        assert_eq!(db.load_location(&table).unwrap(), vec![full, sparse]);
    }

    #[test]
    fn times_are_stored_as_kamailio_stores_them() {
        let (_path, db) = new_db("julian");
        let table = TableName::location();
        db.upsert_contact(&table, &row("r1", "alice", 1_700_000_000))
            .unwrap();
        let (stored, kind): (f64, String) = db
            .conn
            .query_row("SELECT expires, typeof(expires) FROM location", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(kind, "real");
        assert!((stored - ((1_700_000_000.0 - 0.5) / 86400.0 + 2_440_587.5)).abs() < 1e-9);
        // A row written by hand with the schema's default (text) dates reads back too.
        db.conn
            .execute_batch(
                "INSERT INTO location (ruid, username, contact) VALUES ('r2', 'bob', 'sip:bob@h')",
            )
            .unwrap();
        let rows = db.load_location(&table).unwrap();
        assert_eq!(rows[1].expires, 1_906_234_335, "2030-05-28 21:32:15");
        assert_eq!(rows[1].last_modified, 946_684_801, "2000-01-01 00:00:01");
        assert_eq!(rows[1].q, 1.0);
        assert_eq!(rows[1].cseq, 1);
        assert_eq!(rows[1].callid, "Default-Call-ID");
        assert_eq!(rows[1].methods, None);
        // A date that is no date is an error naming the row, not a made-up time.
        db.conn
            .execute_batch("UPDATE location SET expires = 'soon' WHERE ruid = 'r2'")
            .unwrap();
        let error = db.load_location(&table).unwrap_err();
        assert!(
            matches!(&error, StorageError::BadValue { column: "expires", ruid, .. } if ruid == "r2"),
            "{error:?}"
        );
    }

    #[test]
    fn upsert_replaces_by_ruid_and_deletes_remove() {
        let (_path, db) = new_db("upsert");
        let table = TableName::location();
        db.upsert_contact(&table, &row("r1", "alice", 100)).unwrap();
        db.upsert_contact(&table, &row("r2", "alice", 100)).unwrap();
        let mut changed = row("r1", "alice", 200);
        changed.cseq = 5;
        db.upsert_contact(&table, &changed).unwrap();
        let rows = db.load_location(&table).unwrap();
        assert_eq!(rows.len(), 2);
        // The updated contact keeps its place (insertion order).
        assert_eq!(rows[0], changed);
        assert!(db.delete_contact(&table, "r2").unwrap());
        assert!(!db.delete_contact(&table, "r2").unwrap());
        assert_eq!(db.load_location(&table).unwrap(), vec![changed]);
    }

    #[test]
    fn delete_aor_with_and_without_domain() {
        let (_path, db) = new_db("aor");
        let table = TableName::location();
        let at = |ruid: &str, user: &str, domain: Option<&str>| {
            let mut r = row(ruid, user, 100);
            r.domain = domain.map(str::to_owned);
            r
        };
        for r in [
            at("1", "alice", Some("a.example")),
            at("2", "alice", Some("b.example")),
            at("3", "alice", None),
            at("4", "bob", Some("a.example")),
        ] {
            db.upsert_contact(&table, &r).unwrap();
        }
        assert_eq!(
            db.delete_aor(&table, "alice", Some("a.example")).unwrap(),
            1
        );
        assert_eq!(db.delete_aor(&table, "alice", None).unwrap(), 2);
        assert_eq!(db.delete_aor(&table, "carol", None).unwrap(), 0);
        let left: Vec<String> = db
            .load_location(&table)
            .unwrap()
            .into_iter()
            .map(|r| r.ruid)
            .collect();
        assert_eq!(left, ["4"]);
    }

    #[test]
    fn a_batch_is_all_or_nothing() {
        let (_path, mut db) = new_db("batch");
        let table = TableName::location();
        db.upsert_contact(&table, &row("keep", "alice", 100))
            .unwrap();
        db.apply_batch(
            &table,
            &[
                Change::Upsert(Box::new(row("b1", "bob", 100))),
                Change::Upsert(Box::new(row("b2", "bob", 100))),
                Change::Delete {
                    ruid: "keep".to_owned(),
                },
            ],
        )
        .unwrap();
        let ruids = |db: &Database| -> Vec<String> {
            db.load_location(&table)
                .unwrap()
                .into_iter()
                .map(|r| r.ruid)
                .collect()
        };
        assert_eq!(ruids(&db), ["b1", "b2"]);
        // The third change fails: the first two must not be committed.
        db.conn
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON location WHEN NEW.ruid = 'boom'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END",
            )
            .unwrap();
        let error = db
            .apply_batch(
                &table,
                &[
                    Change::DeleteAor {
                        username: "bob".to_owned(),
                        domain: None,
                    },
                    Change::Upsert(Box::new(row("c1", "carol", 100))),
                    Change::Upsert(Box::new(row("boom", "carol", 100))),
                ],
            )
            .unwrap_err();
        assert!(
            matches!(&error, StorageError::Sqlite { operation: "batch", table, .. } if table == "location"),
            "{error:?}"
        );
        assert!(error.to_string().contains("refused"), "{error}");
        assert_eq!(ruids(&db), ["b1", "b2"]);
        // And the connection is usable afterwards.
        db.apply_batch(&table, &[Change::Upsert(Box::new(row("c1", "carol", 100)))])
            .unwrap();
        assert_eq!(ruids(&db), ["b1", "b2", "c1"]);
    }

    #[test]
    fn counts_follow_kamailios_validity_rule() {
        let (_path, db) = new_db("counts");
        let table = TableName::location();
        let now = 1_800_000_000;
        let mut with_domain = row("5", "alice", now + 10);
        with_domain.domain = Some("example.com".to_owned());
        for r in [
            row("1", "alice", now + 10),
            row("2", "alice", 0),
            row("3", "bob", now),
            row("4", "carol", now - 1),
            with_domain,
            row("6", "dave", now + 1),
        ] {
            db.upsert_contact(&table, &r).unwrap();
        }
        // Valid: expires 0 or > now. alice (no domain), alice@example.com, dave.
        assert_eq!(db.db_users(&table, now).unwrap(), 3);
        assert_eq!(db.db_contacts(&table, now).unwrap(), 4);
        assert_eq!(db.db_expired_contacts(&table, now).unwrap(), 2);
    }

    #[test]
    fn other_tables_must_exist_at_version_9() {
        let (_path, db) = new_db("tables");
        let other = TableName::new("location_b").unwrap();
        assert!(matches!(
            db.load_location(&other),
            Err(StorageError::MissingTable { .. })
        ));
        db.conn
            .execute_batch("CREATE TABLE location_b AS SELECT * FROM location WHERE 0")
            .unwrap();
        assert!(matches!(
            db.load_location(&other),
            Err(StorageError::TableVersion { found: None, .. })
        ));
        let error = db.upsert_contact(&other, &row("x", "y", 1)).unwrap_err();
        // No unique index on ruid in a table copied this way: SQLite says so.
        assert!(matches!(error, StorageError::Sqlite { .. }), "{error:?}");
    }

    #[test]
    fn julian_days_match_kamailio() {
        // Kamailio's timet_to_sqlite(0) and the day of the UNIX epoch.
        assert!((julian_day(0) - (2_440_587.5 - 0.5 / 86400.0)).abs() < 1e-9);
        assert!((julian_day(86_400) - julian_day(0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn words_go_through_c_int() {
        assert_eq!(word_to_sql(u32::MAX), -1);
        assert_eq!(word_to_sql(5), 5);
        assert_eq!(word_from_sql(-1), Some(u32::MAX));
        assert_eq!(word_from_sql(4_294_967_295), Some(u32::MAX));
        assert_eq!(word_from_sql(7), Some(7));
        assert_eq!(word_from_sql(1 << 40), None);
        assert_eq!(word_from_sql(i64::from(i32::MIN) - 1), None);
    }
}
