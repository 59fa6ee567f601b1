//! `sable-storage`: the SQLite persistence of Sable's usrloc and auth modules.
//!
//! What it owns: one database file in Kamailio 5.6's own schema (tables `version`,
//! `location`, `location_attrs`, `subscriber`, `dialog`, `dialog_vars`, see [`schema`]), so
//! the same file works with Kamailio's `db_sqlite` and with Sable; opening it safely ([`Database::open`] refuses a
//! missing, foreign, corrupt or wrong-version file and never creates an empty one);
//! creating it ([`Database::create`], behind `sablectl db init`); the rows of usrloc
//! ([`LocationRow`], single writes, write-back batches in one transaction, the preload and
//! the `ul.db_*` counts), of auth_db ([`Subscriber`] with kamctl's `ha1`/`ha1b`) and of the
//! dialog module's `db_mode` ([`DialogRow`] and [`DialogVarRow`]: upserts replacing a
//! dialog's variables, deletes, batches in one transaction, the load at start-up; the
//! dialog tables are checked apart, [`Database::check_dialog_tables`], so a database
//! without them still serves usrloc and auth_db).
//!
//! What it does not do: decide when to write (usrloc's `db_mode` does: 1 write-through
//! calls [`Database::upsert_contact`] per change, 2 write-back collects [`Change`]s and calls
//! [`Database::apply_batch`] per timer interval, 3 database-only reads and writes here
//! every time), keep anything in memory, know SIP, or run asynchronously. Every call is
//! synchronous and may wait on the disk (`synchronous=FULL`): callers run it on a thread of
//! their own. A [`Database`] is `Send`, not `Sync`: one thread at a time, or a `Mutex`.
//!
//! `location` stores times the way Kamailio's driver does (Julian day numbers); the Rust
//! side only ever sees UNIX seconds. See [`location`] for that and the other encodings.

mod database;
pub mod dialog;
mod error;
pub mod location;
pub mod schema;
mod subscriber;

pub use database::{parse_url, Database, BUSY_TIMEOUT};
pub use dialog::{DialogChange, DialogRow, DialogVarRow};
pub use error::StorageError;
pub use location::{Change, LocationRow};
pub use schema::TableName;
pub use subscriber::{ha1, ha1b, Subscriber};

#[cfg(test)]
pub(crate) mod testutil {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A unique path in the system's temp directory; the file and its WAL companions are
    /// removed when this is dropped.
    #[derive(Debug)]
    pub struct TempPath(pub PathBuf);

    impl TempPath {
        pub fn new(name: &str) -> TempPath {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "sable-storage-{}-{}-{name}.db",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ));
            let temp = TempPath(path);
            temp.remove();
            temp
        }

        fn remove(&self) {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut name = self.0.clone().into_os_string();
                name.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(name));
            }
        }
    }

    impl std::ops::Deref for TempPath {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            self.remove();
        }
    }
}
