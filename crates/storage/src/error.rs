//! [`StorageError`]: every way opening, creating, reading or writing the database can fail.

use std::path::PathBuf;

/// A storage failure. Each variant names the database file (and the table, where there is
/// one) so the message alone tells an operator what to look at.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The `db_url` is not a `sqlite://` URL with a path.
    #[error("bad database URL {url:?}: {reason} (expected sqlite:///absolute/path/file.db)")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The database file does not exist: opening never creates one.
    #[error(
        "database {} does not exist; create it with `sablectl db init {}`",
        path.display(),
        path.display()
    )]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// [`Database::create`](crate::Database::create) found a non-empty file in its way.
    #[error("{} already exists and is not empty: refusing to overwrite it", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The file exists but cannot be opened (permissions, a directory, a missing parent
    /// directory when creating).
    #[error("cannot open database {}: {source}", path.display())]
    CannotOpen {
        /// The file.
        path: PathBuf,
        /// What SQLite or the system said.
        #[source]
        source: Box<rusqlite::Error>,
    },
    /// The file could not be inspected at all.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an SQLite database (SQLite's `SQLITE_NOTADB`).
    #[error("{} is not an SQLite database", path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The file is an SQLite database but damaged (`PRAGMA quick_check` failed or SQLite
    /// reported `SQLITE_CORRUPT`).
    #[error("database {} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite found (the first lines of `quick_check`, or its error message).
        detail: String,
    },
    /// A table the schema needs is absent.
    #[error(
        "database {} has no table {table}: not a Sable/Kamailio database \
         (`sablectl db init PATH` creates one)",
        path.display()
    )]
    MissingTable {
        /// The file.
        path: PathBuf,
        /// The table.
        table: String,
    },
    /// The dialog module's `db_mode` needs a table this database lacks (a database made
    /// before Sable stored dialogs, or by Kamailio's scripts without `dialog-create.sql`).
    /// usrloc and auth_db still work with such a file.
    #[error(
        "database {} has no table {table}, needed by the dialog module's db_mode: \
         add the dialog tables with Kamailio's dialog-create.sql \
         (`sqlite3 {} < /usr/share/kamailio/db_sqlite/dialog-create.sql`), \
         or set the dialog module's db_mode to 0",
        path.display(),
        path.display()
    )]
    MissingDialogTable {
        /// The file.
        path: PathBuf,
        /// The table (`dialog` or `dialog_vars`).
        table: &'static str,
    },
    /// A dialog variable handed to [`Database::upsert_dialog`](crate::Database::upsert_dialog)
    /// names another dialog than the row it is stored with.
    #[error(
        "dialog variable {key:?} belongs to dialog {var_hash_entry}:{var_hash_id}, \
         not {hash_entry}:{hash_id}"
    )]
    ForeignDialogVar {
        /// The dialog's `hash_entry`.
        hash_entry: u32,
        /// The dialog's `hash_id`.
        hash_id: u32,
        /// The variable's name.
        key: String,
        /// The variable's `hash_entry`.
        var_hash_entry: u32,
        /// The variable's `hash_id`.
        var_hash_id: u32,
    },
    /// The `version` table does not list a table at the version Kamailio (and so Sable)
    /// expects.
    #[error(
        "database {}: table {table} has version {} in table `version`, expected {expected}",
        path.display(),
        found.map_or_else(|| "<none>".to_owned(), |v| v.to_string())
    )]
    TableVersion {
        /// The file.
        path: PathBuf,
        /// The table.
        table: String,
        /// The version found, `None` when the table has no row in `version`.
        found: Option<i64>,
        /// The version this code reads and writes.
        expected: i64,
    },
    /// A table lacks a column of Kamailio's schema.
    #[error("database {}: table {table} has no column {column}", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The table.
        table: String,
        /// The column.
        column: &'static str,
    },
    /// SQLite could not switch the database to write-ahead logging.
    #[error("database {}: journal mode is {mode:?}, WAL could not be enabled", path.display())]
    NoWal {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// A table name that is not a plain SQL identifier (letters, digits, `_`, not starting
    /// with a digit, at most 64 characters).
    #[error("bad table name {table:?}: expected letters, digits and _ (not first), 1-64 chars")]
    BadTableName {
        /// The name as given.
        table: String,
    },
    /// A stored value this code cannot read (a timestamp that is not a date, a flag word out
    /// of range).
    #[error("database {}: table {table}, row {ruid:?}: bad {column} value: {detail}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The table.
        table: String,
        /// The row's `ruid` (location), `username@domain` (subscriber) or
        /// `hash_entry:hash_id` (dialog).
        ruid: String,
        /// The column.
        column: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// `add_subscriber` for a username and domain that already exist.
    #[error("subscriber {username}@{domain} already exists")]
    DuplicateSubscriber {
        /// The username.
        username: String,
        /// The domain.
        domain: String,
    },
    /// Any other SQLite failure, with the operation and table it happened in.
    #[error("database {}: {operation} on table {table} failed: {source}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The table (or `-` for statements on no table, such as pragmas and commits).
        table: String,
        /// What was being done ("upsert", "load", "commit"...).
        operation: &'static str,
        /// SQLite's error, with its message.
        #[source]
        source: Box<rusqlite::Error>,
    },
}
