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

use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{Row, ToSql};

use crate::database::database_error;
use crate::schema::LOCATION_COLUMNS;
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
    /// Insert a contact the caller knows is not in the table yet (usrloc: a binding made
    /// since the last write-back). Cheaper than [`Change::Upsert`]: runs of them go many
    /// rows to a statement, without a statement journal. Should the `ruid` be in the table
    /// after all, the batch is rolled back and applied again with these as upserts.
    Insert(Box<LocationRow>),
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
    ///
    /// Runs of inserts go [`ROWS_PER_STATEMENT`] rows to an `INSERT OR FAIL` statement,
    /// prepared once per batch: SQLite runs its statement start and end once per group of
    /// rows, and keeps its cursors, so rows that sort after the last one (rowids, expiry
    /// times, connection ids) are appended without a search. `OR FAIL`: a failing row stops
    /// the statement without undoing the rows before it, so SQLite keeps no statement
    /// journal; the whole transaction is rolled back anyway. Should an insert meet a
    /// `ruid` already in the table (a caller mistaken about a binding being new), the batch
    /// is applied again with its inserts as upserts. Upserts and deletes go one row to a
    /// statement (a statement that may update several rows needs a statement journal).
    pub fn apply_batch(
        &mut self,
        table: &TableName,
        changes: &[Change],
    ) -> Result<(), StorageError> {
        let first = apply_changes(&mut self.conn, table, changes, false);
        let result = match first {
            Err((_, ref source))
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
                    && changes.iter().any(|c| matches!(c, Change::Insert(_))) =>
            {
                apply_changes(&mut self.conn, table, changes, true)
            }
            other => other,
        };
        result.map_err(|(operation, source)| {
            database_error(&self.path, table.as_str(), operation, source)
        })
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

/// How many rows the insert statements of a batch carry: as many of the largest as fit,
/// then of the next size. Three statements per table at most, each prepared once per batch
/// (and kept in the connection's statement cache).
const ROWS_PER_STATEMENT: [usize; 3] = [32, 4, 1];

/// The number of columns an insert binds per row.
const BOUND_COLUMNS: usize = LOCATION_COLUMNS.len();

/// One transaction of [`Database::apply_batch`]; with `inserts_as_upserts`, every
/// [`Change::Insert`] is applied as a [`Change::Upsert`]. On error: the operation and
/// SQLite's error, the transaction rolled back.
fn apply_changes(
    conn: &mut rusqlite::Connection,
    table: &TableName,
    changes: &[Change],
    inserts_as_upserts: bool,
) -> Result<(), (&'static str, rusqlite::Error)> {
    let tx = conn.transaction().map_err(|source| ("begin", source))?;
    let mut upserts = Upserter::new(&tx, table);
    let mut rest = changes;
    while let Some(first) = rest.first() {
        let done = match first {
            Change::Insert(_) if !inserts_as_upserts => {
                let run = rest
                    .iter()
                    .take_while(|change| matches!(change, Change::Insert(_)))
                    .count();
                let (inserts, after) = rest.split_at(run);
                rest = after;
                insert_rows(&tx, table, inserts)
            }
            Change::Insert(row) | Change::Upsert(row) => {
                rest = rest.get(1..).unwrap_or_default();
                upserts.upsert(row)
            }
            Change::Delete { ruid } => {
                rest = rest.get(1..).unwrap_or_default();
                delete_ruid(&tx, table, ruid).map(drop)
            }
            Change::DeleteAor { username, domain } => {
                rest = rest.get(1..).unwrap_or_default();
                delete_aor(&tx, table, username, domain.as_deref()).map(drop)
            }
        };
        // Dropping `tx` on the way out rolls the whole batch back.
        done.map_err(|source| ("batch", source))?;
    }
    drop(upserts);
    tx.commit().map_err(|source| ("commit", source))
}

fn upsert(
    conn: &rusqlite::Connection,
    table: &TableName,
    row: &LocationRow,
) -> Result<(), rusqlite::Error> {
    Upserter::new(conn, table).upsert(row)
}

/// The statements of an upsert into one table (built once per batch).
struct UpsertSql {
    /// `INSERT ... ON CONFLICT (ruid) DO UPDATE`, every column.
    upsert: String,
    /// The rowid and the indexed columns but `ruid` and `expires` of the row with a `ruid`.
    probe: String,
    /// The update by rowid of the columns a refresh writes ([`NOT_REFRESHED`]).
    refresh: String,
}

impl UpsertSql {
    fn new(table: &TableName) -> UpsertSql {
        let sets = LOCATION_COLUMNS
            .iter()
            .filter(|column| refreshed(column))
            .enumerate()
            .map(|(index, column)| format!("\"{column}\" = ?{}", index + 2))
            .collect::<Vec<_>>()
            .join(", ");
        UpsertSql {
            upsert: upsert_sql(table),
            probe: format!(
                "SELECT id, username, domain, contact, server_id, connection_id \
                 FROM \"{table}\" WHERE ruid = ?1"
            ),
            refresh: format!("UPDATE OR FAIL \"{table}\" SET {sets} WHERE id = ?1"),
        }
    }
}

/// The columns a refresh of an existing row leaves as they are: `ruid` and the columns of
/// the indexes other than `location_expires_idx`, so that SQLite updates one index of the
/// five. It writes every other column of [`LOCATION_COLUMNS`], in that order.
const NOT_REFRESHED: [&str; 6] = [
    "ruid",
    "username",
    "domain",
    "contact",
    "server_id",
    "connection_id",
];

/// Whether a refresh writes `column`.
fn refreshed(column: &str) -> bool {
    !NOT_REFRESHED.contains(&column)
}

/// The statements of upserts into one table, prepared on first use and held for a batch
/// (the statement cache would hash each statement's text at every row).
struct Upserter<'c> {
    conn: &'c rusqlite::Connection,
    sql: UpsertSql,
    probe: Option<rusqlite::CachedStatement<'c>>,
    refresh: Option<rusqlite::CachedStatement<'c>>,
    upsert: Option<rusqlite::CachedStatement<'c>>,
}

/// The statement in `slot`, prepared first if it is not there yet.
fn held<'s, 'c>(
    slot: &'s mut Option<rusqlite::CachedStatement<'c>>,
    conn: &'c rusqlite::Connection,
    sql: &str,
) -> Result<&'s mut rusqlite::CachedStatement<'c>, rusqlite::Error> {
    if slot.is_none() {
        *slot = Some(conn.prepare_cached(sql)?);
    }
    slot.as_mut().ok_or(rusqlite::Error::InvalidQuery)
}

impl<'c> Upserter<'c> {
    fn new(conn: &'c rusqlite::Connection, table: &TableName) -> Upserter<'c> {
        Upserter {
            conn,
            sql: UpsertSql::new(table),
            probe: None,
            refresh: None,
            upsert: None,
        }
    }

    /// Upserts one row, the cheap way for a row already there whose indexed columns are
    /// unchanged (a refreshed binding): a look-up of the row by `ruid`, then an update by
    /// rowid of the columns a refresh writes only ([`NOT_REFRESHED`]), which leaves four of
    /// the five indexes alone.
    /// No such row, or a binding whose Contact or TCP connection changed: the upsert of
    /// every column. (One statement `UPDATE ... RETURNING` would save the look-up, but
    /// SQLite opens a temporary table for each run of it, which costs more.)
    fn upsert(&mut self, row: &LocationRow) -> Result<(), rusqlite::Error> {
        let unchanged = {
            let probe = held(&mut self.probe, self.conn, &self.sql.probe)?;
            let mut rows = probe.query([&row.ruid])?;
            match rows.next()? {
                Some(found)
                    if found.get_ref(1)?.as_str_or_null()? == Some(row.username.as_str())
                        && found.get_ref(2)?.as_str_or_null()? == row.domain.as_deref()
                        && found.get_ref(3)?.as_str_or_null()? == Some(row.contact.as_str())
                        && found.get::<_, i64>(4)? == i64::from(row.server_id)
                        && found.get::<_, i64>(5)? == i64::from(row.connection_id) =>
                {
                    Some(found.get::<_, i64>(0)?)
                }
                _ => None,
            }
        };
        let Some(id) = unchanged else {
            let statement = held(&mut self.upsert, self.conn, &self.sql.upsert)?;
            bind_row(statement, 0, row)?;
            return statement.raw_execute().map(drop);
        };
        let values = row_values(row)?;
        let statement = held(&mut self.refresh, self.conn, &self.sql.refresh)?;
        statement.raw_bind_parameter(1, id)?;
        let written = LOCATION_COLUMNS
            .iter()
            .zip(&values)
            .filter(|(column, _)| refreshed(column));
        for (k, (_, value)) in written.enumerate() {
            statement.raw_bind_parameter(k + 2, value)?;
        }
        statement.raw_execute().map(drop)
    }
}

fn methods_value(row: &LocationRow) -> Value {
    row.methods.map_or(Value::Null, |methods| {
        Value::Integer(i64::from(word_to_sql(methods)))
    })
}

/// The columns of a `location` table but `id`, quoted and comma-separated.
fn column_list() -> String {
    LOCATION_COLUMNS
        .iter()
        .map(|column| format!("\"{column}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(?1, ..., ?22), (?23, ...)`: the parameters of `rows` rows.
fn values_list(rows: usize) -> String {
    (0..rows)
        .map(|row| {
            let first = row * BOUND_COLUMNS + 1;
            let marks = (first..first + BOUND_COLUMNS)
                .map(|index| format!("?{index}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({marks})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The upsert statement of a table (one row; built once per batch).
fn upsert_sql(table: &TableName) -> String {
    let updates = LOCATION_COLUMNS
        .iter()
        .filter(|column| **column != "ruid")
        .map(|column| format!("\"{column}\" = excluded.\"{column}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO \"{table}\" ({}) VALUES {} ON CONFLICT (ruid) DO UPDATE SET {updates}",
        column_list(),
        values_list(1)
    )
}

/// The insert statement of a table for `rows` rows.
fn insert_sql(table: &TableName, rows: usize) -> String {
    format!(
        "INSERT OR FAIL INTO \"{table}\" ({}) VALUES {}",
        column_list(),
        values_list(rows)
    )
}

/// Inserts a run of [`Change::Insert`]s (anything else in `changes` is skipped), in order.
fn insert_rows(
    conn: &rusqlite::Connection,
    table: &TableName,
    changes: &[Change],
) -> Result<(), rusqlite::Error> {
    let mut rows = changes.iter().filter_map(|change| match change {
        Change::Insert(row) => Some(&**row),
        _ => None,
    });
    let mut left = rows.clone().count();
    for size in ROWS_PER_STATEMENT {
        if left < size {
            continue;
        }
        let mut statement = conn.prepare_cached(&insert_sql(table, size))?;
        while left >= size {
            for (index, row) in rows.by_ref().take(size).enumerate() {
                bind_row(&mut statement, index * BOUND_COLUMNS, row)?;
            }
            statement.raw_execute()?;
            left -= size;
        }
    }
    Ok(())
}

/// Binds one row's values to parameters `base + 1 ..= base + 22`, in
/// [`LOCATION_COLUMNS`] order.
fn bind_row(
    statement: &mut rusqlite::Statement<'_>,
    base: usize,
    row: &LocationRow,
) -> Result<(), rusqlite::Error> {
    for (offset, value) in row_values(row)?.iter().enumerate() {
        statement.raw_bind_parameter(base + offset + 1, value)?;
    }
    Ok(())
}

/// One row's values, in [`LOCATION_COLUMNS`] order (text borrowed from the row; times as
/// Julian days and words through C `int`, as Kamailio stores them).
fn row_values(row: &LocationRow) -> Result<[ToSqlOutput<'_>; BOUND_COLUMNS], rusqlite::Error> {
    Ok([
        row.ruid.to_sql()?,
        row.username.to_sql()?,
        row.domain.to_sql()?,
        row.contact.to_sql()?,
        row.received.to_sql()?,
        row.path.to_sql()?,
        ToSqlOutput::from(julian_day(row.expires)),
        row.q.to_sql()?,
        row.callid.to_sql()?,
        row.cseq.to_sql()?,
        ToSqlOutput::from(julian_day(row.last_modified)),
        ToSqlOutput::from(word_to_sql(row.flags)),
        ToSqlOutput::from(word_to_sql(row.cflags)),
        row.user_agent.to_sql()?,
        row.socket.to_sql()?,
        ToSqlOutput::Owned(methods_value(row)),
        row.instance.to_sql()?,
        ToSqlOutput::from(word_to_sql(row.reg_id)),
        row.server_id.to_sql()?,
        row.connection_id.to_sql()?,
        row.keepalive.to_sql()?,
        row.partition.to_sql()?,
    ])
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
    fn long_batches_keep_the_order_of_their_changes() {
        let (_path, mut db) = new_db("long_batch");
        let table = TableName::location();
        // 70 inserts (two 32-row statements, a 4-row one, two single rows), a delete, then
        // 40 upserts in which rows of the inserts are replaced, twice each.
        let mut changes: Vec<Change> = (0..70)
            .map(|i| Change::Insert(Box::new(row(&format!("r{i}"), &format!("u{i}"), 100))))
            .collect();
        changes.push(Change::Delete {
            ruid: "r3".to_owned(),
        });
        for i in 0..40 {
            let mut changed = row(&format!("r{}", i % 20), &format!("u{}", i % 20), 200);
            changed.cseq = i;
            changes.push(Change::Upsert(Box::new(changed)));
        }
        changes.push(Change::Upsert(Box::new(full_row())));
        db.apply_batch(&table, &changes).unwrap();
        let rows = db.load_location(&table).unwrap();
        assert_eq!(rows.len(), 71);
        // r3 was deleted, then written again after the others of its run: it comes last
        // but one, with the second of its two later changes.
        let mut expected: Vec<LocationRow> = (0..70)
            .filter(|i| *i != 3)
            .map(|i| {
                let mut r = row(&format!("r{i}"), &format!("u{i}"), 100);
                if i < 20 {
                    r.expires = 200;
                    r.cseq = i + 20;
                }
                r
            })
            .collect();
        let mut r3 = row("r3", "u3", 200);
        r3.cseq = 23;
        expected.push(r3);
        expected.push(full_row());
        assert_eq!(rows, expected);
    }

    #[test]
    fn an_insert_of_a_row_already_there_replaces_it() {
        let (_path, mut db) = new_db("insert_again");
        let table = TableName::location();
        db.upsert_contact(&table, &row("old", "alice", 100))
            .unwrap();
        let mut again = row("old", "alice", 300);
        again.cseq = 9;
        // The second run of inserts holds a ruid of the table: the batch is applied again
        // with the inserts as upserts, whole.
        let changes = [
            Change::Insert(Box::new(row("n1", "bob", 100))),
            Change::Delete {
                ruid: "nobody".to_owned(),
            },
            Change::Insert(Box::new(row("n2", "carol", 100))),
            Change::Insert(Box::new(again.clone())),
            Change::Insert(Box::new(row("n3", "dave", 100))),
        ];
        db.apply_batch(&table, &changes).unwrap();
        let rows = db.load_location(&table).unwrap();
        let ruids: Vec<&str> = rows.iter().map(|r| r.ruid.as_str()).collect();
        assert_eq!(ruids, ["old", "n1", "n2", "n3"]);
        assert_eq!(rows[0], again);
        // Twice the same new ruid in one batch: the later wins as well.
        db.apply_batch(
            &table,
            &[
                Change::Insert(Box::new(row("twice", "erin", 100))),
                Change::Insert(Box::new(row("twice", "erin", 200))),
            ],
        )
        .unwrap();
        let rows = db.load_location(&table).unwrap();
        assert_eq!(rows.last(), Some(&row("twice", "erin", 200)));
    }

    #[test]
    fn a_failed_run_of_inserts_rolls_the_batch_back() {
        let (_path, mut db) = new_db("insert_fail");
        let table = TableName::location();
        db.upsert_contact(&table, &row("keep", "alice", 100))
            .unwrap();
        db.conn
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON location WHEN NEW.ruid = 'boom'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END",
            )
            .unwrap();
        // The failing row is the 40th of the run (in the second 32-row statement).
        let mut changes = vec![Change::Delete {
            ruid: "keep".to_owned(),
        }];
        changes.extend((0..50).map(|i| {
            let ruid = if i == 39 {
                "boom".to_owned()
            } else {
                format!("n{i}")
            };
            Change::Insert(Box::new(row(&ruid, "bob", 100)))
        }));
        let error = db.apply_batch(&table, &changes).unwrap_err();
        assert!(error.to_string().contains("refused"), "{error}");
        let rows = db.load_location(&table).unwrap();
        assert_eq!(rows, vec![row("keep", "alice", 100)]);
    }

    #[test]
    fn refreshes_write_every_column_whether_indexed_ones_changed_or_not() {
        let (_path, mut db) = new_db("refresh");
        let table = TableName::location();
        db.apply_batch(
            &table,
            &[
                Change::Insert(Box::new(row("same", "alice", 100))),
                Change::Insert(Box::new(row("moved", "bob", 100))),
            ],
        )
        .unwrap();
        // One refreshed with only unindexed columns (and expires) changed, one whose
        // Contact, connection and server changed, one not in the table yet.
        let mut same = full_row();
        same.ruid = "same".to_owned();
        same.username = "alice".to_owned();
        same.domain = None;
        same.contact = row("same", "alice", 0).contact;
        same.connection_id = 0;
        same.server_id = 0;
        let mut moved = full_row();
        moved.ruid = "moved".to_owned();
        let mut fresh = full_row();
        fresh.ruid = "fresh".to_owned();
        db.apply_batch(
            &table,
            &[
                Change::Upsert(Box::new(same.clone())),
                Change::Upsert(Box::new(moved.clone())),
                Change::Upsert(Box::new(fresh.clone())),
            ],
        )
        .unwrap();
        assert_eq!(db.load_location(&table).unwrap(), vec![same, moved, fresh]);
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
