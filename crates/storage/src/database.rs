//! [`Database`]: one connection to one database file, opened only if it already holds the
//! schema, with the pragmas that make an acknowledged write survive a crash.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::schema::{
    DIALOG_COLUMNS, DIALOG_SCHEMA, DIALOG_TABLE_VERSION, DIALOG_VARS_COLUMNS,
    DIALOG_VARS_TABLE_VERSION, LOCATION_COLUMNS, LOCATION_TABLE_VERSION, SCHEMA,
    SUBSCRIBER_COLUMNS, SUBSCRIBER_TABLE_VERSION,
};
use crate::StorageError;

/// How long a statement waits for a lock held by another connection (Kamailio or
/// `sablectl` on the same file) before failing with `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open database.
///
/// Synchronous: every call runs to completion on the calling thread, including the `fsync`
/// of a commit. A `Database` is `Send` but not `Sync`: use it from one thread at a time
/// (usrloc's database thread), or put it in a `Mutex`.
#[derive(Debug)]
pub struct Database {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

/// The file path in a Kamailio `db_url`: `sqlite:///abs/path/file.db` gives
/// `/abs/path/file.db`, `sqlite://relative/file.db` gives `relative/file.db` (relative to
/// the working directory). Any other scheme, a query string or an empty path is refused.
pub fn parse_url(url: &str) -> Result<PathBuf, StorageError> {
    let bad = |reason| StorageError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let rest = url
        .strip_prefix("sqlite://")
        .ok_or_else(|| bad("only sqlite:// URLs are supported"))?;
    if rest.is_empty() || rest == "/" {
        return Err(bad("no file path after sqlite://"));
    }
    if rest.contains('?') {
        return Err(bad("parameters (?...) are not supported"));
    }
    Ok(PathBuf::from(rest))
}

impl Database {
    /// Opens the database named by a Kamailio-style `db_url` (see [`parse_url`]).
    pub fn open(url: &str) -> Result<Database, StorageError> {
        Database::open_path(parse_url(url)?)
    }

    /// Opens an existing database file: never creates one. Refuses a missing file
    /// ([`StorageError::Missing`]), a file that is not SQLite, a corrupt one (`PRAGMA
    /// quick_check`), and one without the `version`, `location` and `subscriber` tables at
    /// Kamailio 5.6's versions (location 9, subscriber 7) and columns. The dialog tables
    /// are not required here (a database made before Sable stored dialogs still serves
    /// usrloc and auth_db): the dialog module checks them with
    /// [`Database::check_dialog_tables`]. Then sets WAL
    /// journaling, `synchronous=FULL` and a busy timeout of [`BUSY_TIMEOUT`].
    pub fn open_path(path: impl AsRef<Path>) -> Result<Database, StorageError> {
        let path = path.as_ref().to_path_buf();
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                return Err(StorageError::Io {
                    path,
                    source: io::Error::other("not a regular file"),
                })
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::Missing { path })
            }
            Err(source) => return Err(StorageError::Io { path, source }),
        }
        // No SQLITE_OPEN_CREATE: a file removed since the check above is not recreated.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|source| {
            if source.sqlite_error_code() == Some(ErrorCode::CannotOpen) && !path.exists() {
                StorageError::Missing { path: path.clone() }
            } else {
                StorageError::CannotOpen {
                    path: path.clone(),
                    source: Box::new(source),
                }
            }
        })?;
        let database = Database { conn, path };
        database.configure()?;
        database.check_schema()?;
        Ok(database)
    }

    /// Creates a new database file with the schema (every table of [`crate::schema`],
    /// the dialog tables included, and their `version` rows). Refuses an existing file that is not empty
    /// ([`StorageError::AlreadyExists`]); an existing empty file is filled.
    pub fn create(path: impl AsRef<Path>) -> Result<Database, StorageError> {
        let path = path.as_ref().to_path_buf();
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() && meta.len() == 0 => {}
            Ok(_) => return Err(StorageError::AlreadyExists { path }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StorageError::Io { path, source }),
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|source| {
            StorageError::CannotOpen {
                path: path.clone(),
                source: Box::new(source),
            }
        })?;
        let mut database = Database { conn, path };
        database.configure()?;
        let path = database.path.clone();
        let tx = database
            .conn
            .transaction()
            .map_err(|source| database_error(&path, "-", "begin", source))?;
        tx.execute_batch(SCHEMA)
            .and_then(|()| tx.execute_batch(DIALOG_SCHEMA))
            .map_err(|source| database_error(&path, "-", "create schema", source))?;
        tx.commit()
            .map_err(|source| database_error(&path, "-", "commit", source))?;
        database.check_schema()?;
        Ok(database)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that `table` can serve as a usrloc table: a table with every column of
    /// `location`, listed in `version` at [`LOCATION_TABLE_VERSION`], as Kamailio checks a
    /// usrloc domain's table when it is first used.
    pub fn check_location_table(&self, table: &crate::TableName) -> Result<(), StorageError> {
        self.check_table(table.as_str(), LOCATION_TABLE_VERSION, &LOCATION_COLUMNS)
    }

    /// Checks the dialog module's tables: `dialog` at [`DIALOG_TABLE_VERSION`] (7) and
    /// `dialog_vars` at [`DIALOG_VARS_TABLE_VERSION`] (1), with every column of Kamailio's
    /// schema. A database without them (made by `sablectl db init` before dialogs were
    /// stored, or by Kamailio's scripts without `dialog-create.sql`) gives
    /// [`StorageError::MissingDialogTable`], which says how to add them.
    pub fn check_dialog_tables(&self) -> Result<(), StorageError> {
        for table in ["dialog", "dialog_vars"] {
            if !self.table_exists(table)? {
                return Err(StorageError::MissingDialogTable {
                    path: self.path.clone(),
                    table,
                });
            }
        }
        self.check_table("dialog", DIALOG_TABLE_VERSION, &DIALOG_COLUMNS)?;
        self.check_table(
            "dialog_vars",
            DIALOG_VARS_TABLE_VERSION,
            &DIALOG_VARS_COLUMNS,
        )
    }

    /// Integrity first (so a damaged file is named as such, not as a missing table), then
    /// the pragmas. Any failure naming a non-database file is reported as that.
    fn configure(&self) -> Result<(), StorageError> {
        let path = &self.path;
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|source| database_error(path, "-", "set busy_timeout", source))?;
        let mut problems: Vec<String> = Vec::new();
        self.conn
            .pragma_query(None, "quick_check", |row| {
                problems.push(row.get::<_, String>(0)?);
                Ok(())
            })
            .map_err(|source| database_error(path, "-", "quick_check", source))?;
        if problems.iter().any(|line| line != "ok") {
            problems.truncate(5);
            return Err(StorageError::Corrupt {
                path: path.clone(),
                detail: problems.join("; "),
            });
        }
        // WAL: a commit is one append to the log, readers (sablectl, Kamailio) do not block
        // the writer. FULL: the log is fsynced at every commit, so with db_mode 1 a write
        // acknowledged to the caller survives kill -9 and power loss.
        let mode: String = self
            .conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|source| database_error(path, "-", "set journal_mode", source))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::NoWal {
                path: path.clone(),
                mode,
            });
        }
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|source| database_error(path, "-", "set synchronous", source))?;
        Ok(())
    }

    fn check_schema(&self) -> Result<(), StorageError> {
        if !self.table_exists("version")? {
            return Err(StorageError::MissingTable {
                path: self.path.clone(),
                table: "version".to_owned(),
            });
        }
        self.check_table("location", LOCATION_TABLE_VERSION, &LOCATION_COLUMNS)?;
        self.check_table("subscriber", SUBSCRIBER_TABLE_VERSION, &SUBSCRIBER_COLUMNS)
    }

    fn check_table(
        &self,
        table: &str,
        version: i64,
        columns: &[&'static str],
    ) -> Result<(), StorageError> {
        let path = &self.path;
        if !self.table_exists(table)? {
            return Err(StorageError::MissingTable {
                path: path.clone(),
                table: table.to_owned(),
            });
        }
        let found: Option<i64> = self
            .conn
            .prepare_cached("SELECT table_version FROM version WHERE table_name = ?1")
            .and_then(|mut statement| {
                let mut rows = statement.query([table])?;
                rows.next()?.map(|row| row.get(0)).transpose()
            })
            .map_err(|source| database_error(path, "version", "read", source))?;
        if found != Some(version) {
            return Err(StorageError::TableVersion {
                path: path.clone(),
                table: table.to_owned(),
                found,
                expected: version,
            });
        }
        let mut present: Vec<String> = Vec::new();
        self.conn
            .pragma(None, "table_info", table, |row| {
                present.push(row.get("name")?);
                Ok(())
            })
            .map_err(|source| database_error(path, table, "table_info", source))?;
        if let Some(column) = columns
            .iter()
            .find(|column| !present.iter().any(|name| name.eq_ignore_ascii_case(column)))
        {
            return Err(StorageError::MissingColumn {
                path: path.clone(),
                table: table.to_owned(),
                column,
            });
        }
        Ok(())
    }

    fn table_exists(&self, table: &str) -> Result<bool, StorageError> {
        self.conn
            .prepare_cached(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1 \
                 COLLATE NOCASE",
            )
            .and_then(|mut statement| statement.query_row([table], |row| row.get::<_, i64>(0)))
            .map(|count| count > 0)
            .map_err(|source| database_error(&self.path, "sqlite_schema", "read", source))
    }
}

/// Wraps an SQLite error, naming a damaged or foreign file as such whatever the statement.
pub(crate) fn database_error(
    path: &Path,
    table: &str,
    operation: &'static str,
    source: rusqlite::Error,
) -> StorageError {
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StorageError::NotADatabase {
            path: path.to_path_buf(),
        },
        Some(ErrorCode::DatabaseCorrupt) => StorageError::Corrupt {
            path: path.to_path_buf(),
            detail: source.to_string(),
        },
        _ => StorageError::Sqlite {
            path: path.to_path_buf(),
            table: table.to_owned(),
            operation,
            source: Box::new(source),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempPath;
    use std::collections::BTreeMap;

    const KAMAILIO_SQL: &str = "/usr/share/kamailio/db_sqlite";

    fn raw(path: &Path) -> Connection {
        Connection::open(path).unwrap()
    }

    #[test]
    fn a_database_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<Database>();
    }

    #[test]
    fn urls_name_a_file() {
        assert_eq!(
            parse_url("sqlite:///var/lib/sable/sable.db").unwrap(),
            PathBuf::from("/var/lib/sable/sable.db")
        );
        assert_eq!(
            parse_url("sqlite://data/x.db").unwrap(),
            PathBuf::from("data/x.db")
        );
        for bad in [
            "mysql://kamailio:pw@localhost/kamailio",
            "/var/lib/x.db",
            "sqlite://",
            "sqlite:///",
            "sqlite:///x.db?mode=ro",
        ] {
            assert!(
                matches!(parse_url(bad), Err(StorageError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_missing_file_is_an_error_and_is_not_created() {
        let path = TempPath::new("missing");
        let error = Database::open_path(&*path).unwrap_err();
        assert!(matches!(&error, StorageError::Missing { path: p } if p == &path.0));
        assert!(error.to_string().contains("sablectl db init"), "{error}");
        assert!(!path.exists());
        let url = format!("sqlite://{}", path.display());
        assert!(matches!(
            Database::open(&url),
            Err(StorageError::Missing { .. })
        ));
        assert!(!path.exists());
    }

    #[test]
    fn a_file_of_garbage_is_not_a_database() {
        let path = TempPath::new("garbage");
        let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
        fs::write(&*path, garbage).unwrap();
        let error = Database::open_path(&*path).unwrap_err();
        assert!(
            matches!(error, StorageError::NotADatabase { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn a_damaged_database_is_corrupt() {
        let path = TempPath::new("corrupt");
        {
            let db = Database::create(&*path).unwrap();
            for i in 0..200 {
                db.add_subscriber(&format!("user{i}"), "example.com", "secret")
                    .unwrap();
            }
        }
        // Closing the last connection checkpointed the log into the file; now overwrite
        // every page after the first (the header stays valid).
        let mut bytes = fs::read(&*path).unwrap();
        assert!(bytes.len() > 8192, "{}", bytes.len());
        for (i, byte) in bytes.iter_mut().enumerate().skip(4096) {
            *byte = (i % 251) as u8;
        }
        fs::write(&*path, bytes).unwrap();
        let error = Database::open_path(&*path).unwrap_err();
        assert!(matches!(error, StorageError::Corrupt { .. }), "{error:?}");
    }

    #[test]
    fn an_unrelated_database_lacks_the_tables() {
        let path = TempPath::new("unrelated");
        raw(&path)
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        let error = Database::open_path(&*path).unwrap_err();
        assert!(
            matches!(&error, StorageError::MissingTable { table, .. } if table == "version"),
            "{error:?}"
        );
        // An empty file (`touch`) is an empty database, refused the same way.
        let empty = TempPath::new("empty");
        fs::write(&*empty, b"").unwrap();
        assert!(matches!(
            Database::open_path(&*empty),
            Err(StorageError::MissingTable { .. })
        ));
    }

    #[test]
    fn wrong_table_versions_and_columns_are_refused() {
        let path = TempPath::new("version");
        drop(Database::create(&*path).unwrap());
        raw(&path)
            .execute_batch("UPDATE version SET table_version = 8 WHERE table_name = 'location'")
            .unwrap();
        let error = Database::open_path(&*path).unwrap_err();
        assert!(
            matches!(
                &error,
                StorageError::TableVersion { table, found: Some(8), expected: 9, .. }
                    if table == "location"
            ),
            "{error:?}"
        );
        raw(&path)
            .execute_batch(
                "UPDATE version SET table_version = 9 WHERE table_name = 'location';
                 DELETE FROM version WHERE table_name = 'subscriber'",
            )
            .unwrap();
        assert!(matches!(
            Database::open_path(&*path),
            Err(StorageError::TableVersion {
                found: None,
                expected: 7,
                ..
            })
        ));
        raw(&path)
            .execute_batch(
                "INSERT INTO version (table_name, table_version) VALUES ('subscriber', 7);
                 ALTER TABLE subscriber DROP COLUMN ha1b",
            )
            .unwrap();
        let error = Database::open_path(&*path).unwrap_err();
        assert!(
            matches!(&error, StorageError::MissingColumn { table, column: "ha1b", .. }
                if table == "subscriber"),
            "{error:?}"
        );
    }

    #[test]
    fn create_refuses_to_overwrite_and_open_sets_the_pragmas() {
        let path = TempPath::new("create");
        drop(Database::create(&*path).unwrap());
        assert!(matches!(
            Database::create(&*path),
            Err(StorageError::AlreadyExists { .. })
        ));
        let url = format!("sqlite://{}", path.display());
        let db = Database::open(&url).unwrap();
        assert_eq!(db.path(), &*path);
        let mode: String = db
            .conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let synchronous: i64 = db
            .conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 2, "FULL");
        // An existing empty file may be initialised.
        let empty = TempPath::new("create-empty");
        fs::write(&*empty, b"").unwrap();
        drop(Database::create(&*empty).unwrap());
        drop(Database::open_path(&*empty).unwrap());
    }

    #[test]
    fn create_in_a_missing_directory_cannot_open() {
        let path = std::env::temp_dir()
            .join(format!("sable-storage-no-such-dir-{}", std::process::id()))
            .join("x.db");
        assert!(matches!(
            Database::create(&path),
            Err(StorageError::CannotOpen { .. })
        ));
    }

    /// Everything SQLite knows of a table's shape: columns (name, declared type, NOT NULL,
    /// default, primary key) and indexes (unique or not, their columns).
    fn shape(conn: &Connection, table: &str) -> (Vec<String>, BTreeMap<String, String>) {
        let mut columns = Vec::new();
        conn.pragma(None, "table_info", table, |row| {
            columns.push(format!(
                "{} {} notnull={} default={:?} pk={}",
                row.get::<_, String>("name")?,
                row.get::<_, String>("type")?,
                row.get::<_, i64>("notnull")?,
                row.get::<_, Option<String>>("dflt_value")?,
                row.get::<_, i64>("pk")?,
            ));
            Ok(())
        })
        .unwrap();
        let mut indexes = BTreeMap::new();
        let mut names = Vec::new();
        conn.pragma(None, "index_list", table, |row| {
            names.push((
                row.get::<_, String>("name")?,
                row.get::<_, i64>("unique")?,
                row.get::<_, String>("origin")?,
            ));
            Ok(())
        })
        .unwrap();
        for (name, unique, origin) in names {
            let mut on = Vec::new();
            conn.pragma(None, "index_info", &name, |row| {
                on.push(row.get::<_, String>("name")?);
                Ok(())
            })
            .unwrap();
            indexes.insert(
                name,
                format!("unique={unique} origin={origin} ({})", on.join(",")),
            );
        }
        (columns, indexes)
    }

    #[test]
    fn the_schema_is_kamailios() {
        let dir = Path::new(KAMAILIO_SQL);
        if !dir.is_dir() {
            eprintln!(
                "skipped: {KAMAILIO_SQL} is absent (apt-get install kamailio-sqlite-modules)"
            );
            return;
        }
        let theirs_path = TempPath::new("kamailio-schema");
        let theirs = raw(&theirs_path);
        for script in [
            "standard-create.sql",
            "usrloc-create.sql",
            "auth_db-create.sql",
            "dialog-create.sql",
        ] {
            let sql = fs::read_to_string(dir.join(script)).unwrap();
            theirs.execute_batch(&sql).unwrap();
        }
        let ours_path = TempPath::new("our-schema");
        let ours = Database::create(&*ours_path).unwrap();
        for table in [
            "version",
            "location",
            "location_attrs",
            "subscriber",
            "dialog",
            "dialog_vars",
        ] {
            assert_eq!(
                shape(&ours.conn, table),
                shape(&theirs, table),
                "table {table}"
            );
        }
        let versions = |conn: &Connection| -> Vec<(String, i64)> {
            let mut statement = conn
                .prepare("SELECT table_name, table_version FROM version ORDER BY table_name")
                .unwrap();
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(versions(&ours.conn), versions(&theirs));
        // And a database made by Kamailio's own scripts opens, dialog tables included.
        drop(theirs);
        let db = Database::open_path(&*theirs_path).unwrap();
        db.check_dialog_tables().unwrap();
    }
}
