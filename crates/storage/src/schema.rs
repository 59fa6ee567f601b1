//! The tables, as Kamailio 5.6's `db_sqlite` scripts define them (`standard-create.sql`,
//! `usrloc-create.sql`, `auth_db-create.sql`, `dialog-create.sql` in
//! `/usr/share/kamailio/db_sqlite/`), so one
//! database file serves Sable and Kamailio alike. Column names, declared types, defaults,
//! constraints, indexes and the `version` rows are the same as there; the declared types
//! matter beyond documentation, because Kamailio's driver picks how it reads a column from
//! them (`TIMESTAMP` columns hold Julian day numbers, see [`crate::location`]).

use std::fmt;

use crate::StorageError;

/// The version Kamailio records for the `version` table itself.
pub const VERSION_TABLE_VERSION: i64 = 1;
/// The version of the `location` table (usrloc) that Kamailio 5.6 checks at start-up.
pub const LOCATION_TABLE_VERSION: i64 = 9;
/// The version of the `location_attrs` table (usrloc's contact attributes).
pub const LOCATION_ATTRS_TABLE_VERSION: i64 = 1;
/// The version of the `subscriber` table (auth_db) that Kamailio 5.6 checks at start-up.
pub const SUBSCRIBER_TABLE_VERSION: i64 = 7;

/// The columns of a `location` table other than `id`, in the schema's order.
pub const LOCATION_COLUMNS: [&str; 22] = [
    "ruid",
    "username",
    "domain",
    "contact",
    "received",
    "path",
    "expires",
    "q",
    "callid",
    "cseq",
    "last_modified",
    "flags",
    "cflags",
    "user_agent",
    "socket",
    "methods",
    "instance",
    "reg_id",
    "server_id",
    "connection_id",
    "keepalive",
    "partition",
];

/// The version of the `dialog` table that Kamailio 5.6's dialog module checks.
pub const DIALOG_TABLE_VERSION: i64 = 7;
/// The version of the `dialog_vars` table (dialog variables, `$dlg_var`).
pub const DIALOG_VARS_TABLE_VERSION: i64 = 1;

/// The columns of the `dialog` table other than `id`, in the schema's order.
pub const DIALOG_COLUMNS: [&str; 23] = [
    "hash_entry",
    "hash_id",
    "callid",
    "from_uri",
    "from_tag",
    "to_uri",
    "to_tag",
    "caller_cseq",
    "callee_cseq",
    "caller_route_set",
    "callee_route_set",
    "caller_contact",
    "callee_contact",
    "caller_sock",
    "callee_sock",
    "state",
    "start_time",
    "timeout",
    "sflags",
    "iflags",
    "toroute_name",
    "req_uri",
    "xdata",
];

/// The columns of the `dialog_vars` table other than `id`.
pub const DIALOG_VARS_COLUMNS: [&str; 4] = ["hash_entry", "hash_id", "dialog_key", "dialog_value"];

/// The columns of the `subscriber` table other than `id`.
pub const SUBSCRIBER_COLUMNS: [&str; 5] = ["username", "domain", "password", "ha1", "ha1b"];

/// The whole schema a new database gets, run in one transaction by
/// [`Database::create`](crate::Database::create).
pub(crate) const SCHEMA: &str = "
CREATE TABLE version (
    id INTEGER PRIMARY KEY NOT NULL,
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_table_name_idx UNIQUE (table_name)
);
INSERT INTO version (table_name, table_version) VALUES ('version', 1);

CREATE TABLE location (
    id INTEGER PRIMARY KEY NOT NULL,
    ruid VARCHAR(64) DEFAULT '' NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT NULL,
    contact VARCHAR(512) DEFAULT '' NOT NULL,
    received VARCHAR(128) DEFAULT NULL,
    path VARCHAR(512) DEFAULT NULL,
    expires TIMESTAMP WITHOUT TIME ZONE DEFAULT '2030-05-28 21:32:15' NOT NULL,
    q REAL DEFAULT 1.0 NOT NULL,
    callid VARCHAR(255) DEFAULT 'Default-Call-ID' NOT NULL,
    cseq INTEGER DEFAULT 1 NOT NULL,
    last_modified TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL,
    cflags INTEGER DEFAULT 0 NOT NULL,
    user_agent VARCHAR(255) DEFAULT '' NOT NULL,
    socket VARCHAR(64) DEFAULT NULL,
    methods INTEGER DEFAULT NULL,
    instance VARCHAR(255) DEFAULT NULL,
    reg_id INTEGER DEFAULT 0 NOT NULL,
    server_id INTEGER DEFAULT 0 NOT NULL,
    connection_id INTEGER DEFAULT 0 NOT NULL,
    keepalive INTEGER DEFAULT 0 NOT NULL,
    partition INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT location_ruid_idx UNIQUE (ruid)
);
CREATE INDEX location_account_contact_idx ON location (username, domain, contact);
CREATE INDEX location_expires_idx ON location (expires);
CREATE INDEX location_tcpcon_idx ON location (connection_id);
CREATE INDEX location_connection_idx ON location (server_id, connection_id);
INSERT INTO version (table_name, table_version) VALUES ('location', 9);

CREATE TABLE location_attrs (
    id INTEGER PRIMARY KEY NOT NULL,
    ruid VARCHAR(64) DEFAULT '' NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT NULL,
    aname VARCHAR(64) DEFAULT '' NOT NULL,
    atype INTEGER DEFAULT 0 NOT NULL,
    avalue VARCHAR(512) DEFAULT '' NOT NULL,
    last_modified TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL
);
CREATE INDEX location_attrs_account_record_idx ON location_attrs (username, domain, ruid);
CREATE INDEX location_attrs_last_modified_idx ON location_attrs (last_modified);
INSERT INTO version (table_name, table_version) VALUES ('location_attrs', 1);

CREATE TABLE subscriber (
    id INTEGER PRIMARY KEY NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT '' NOT NULL,
    password VARCHAR(64) DEFAULT '' NOT NULL,
    ha1 VARCHAR(128) DEFAULT '' NOT NULL,
    ha1b VARCHAR(128) DEFAULT '' NOT NULL,
    CONSTRAINT subscriber_account_idx UNIQUE (username, domain)
);
CREATE INDEX subscriber_username_idx ON subscriber (username);
INSERT INTO version (table_name, table_version) VALUES ('subscriber', 7);
";

/// The dialog module's tables (`dialog-create.sql`), part of every new database (run after
/// the other tables in the same transaction). Kept apart because a database made before Sable
/// stored dialogs lacks them and must still open for usrloc and auth_db: only the dialog
/// module checks them ([`Database::check_dialog_tables`](crate::Database::check_dialog_tables)).
///
/// Unlike `location`, the times here are declared `INTEGER`: Kamailio's dialog module binds
/// `start_time` and `timeout` as integers, so they hold plain UNIX seconds.
pub const DIALOG_SCHEMA: &str = "
CREATE TABLE dialog (
    id INTEGER PRIMARY KEY NOT NULL,
    hash_entry INTEGER NOT NULL,
    hash_id INTEGER NOT NULL,
    callid VARCHAR(255) NOT NULL,
    from_uri VARCHAR(255) NOT NULL,
    from_tag VARCHAR(128) NOT NULL,
    to_uri VARCHAR(255) NOT NULL,
    to_tag VARCHAR(128) NOT NULL,
    caller_cseq VARCHAR(20) NOT NULL,
    callee_cseq VARCHAR(20) NOT NULL,
    caller_route_set VARCHAR(512),
    callee_route_set VARCHAR(512),
    caller_contact VARCHAR(255) NOT NULL,
    callee_contact VARCHAR(255) NOT NULL,
    caller_sock VARCHAR(64) NOT NULL,
    callee_sock VARCHAR(64) NOT NULL,
    state INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    timeout INTEGER DEFAULT 0 NOT NULL,
    sflags INTEGER DEFAULT 0 NOT NULL,
    iflags INTEGER DEFAULT 0 NOT NULL,
    toroute_name VARCHAR(32),
    req_uri VARCHAR(255) NOT NULL,
    xdata VARCHAR(512)
);
CREATE INDEX dialog_hash_idx ON dialog (hash_entry, hash_id);
INSERT INTO version (table_name, table_version) VALUES ('dialog', 7);

CREATE TABLE dialog_vars (
    id INTEGER PRIMARY KEY NOT NULL,
    hash_entry INTEGER NOT NULL,
    hash_id INTEGER NOT NULL,
    dialog_key VARCHAR(128) NOT NULL,
    dialog_value VARCHAR(512) NOT NULL
);
CREATE INDEX dialog_vars_hash_idx ON dialog_vars (hash_entry, hash_id);
INSERT INTO version (table_name, table_version) VALUES ('dialog_vars', 1);
";

/// A table name checked to be a plain SQL identifier, so it can be put into SQL text (table
/// names cannot be bound as parameters). usrloc names its tables after the script's
/// `save("location")` argument; this is where such a name is vetted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName(Box<str>);

impl TableName {
    /// The longest name accepted (Kamailio's `version.table_name` is `VARCHAR(32)`, but
    /// SQLite does not enforce lengths; 64 leaves room and still refuses nonsense).
    pub const MAX_LEN: usize = 64;

    /// Checks `name`: ASCII letters, digits and `_`, not starting with a digit, 1 to
    /// [`Self::MAX_LEN`] characters.
    pub fn new(name: &str) -> Result<TableName, StorageError> {
        let mut bytes = name.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if first_ok && rest_ok && name.len() <= Self::MAX_LEN {
            Ok(TableName(name.into()))
        } else {
            Err(StorageError::BadTableName {
                table: name.to_owned(),
            })
        }
    }

    /// usrloc's default table, `location`.
    pub fn location() -> TableName {
        TableName("location".into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for TableName {
    type Error = StorageError;
    fn try_from(name: &str) -> Result<Self, Self::Error> {
        TableName::new(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        for good in ["location", "_x", "loc_2", "L"] {
            assert_eq!(TableName::new(good).unwrap().as_str(), good);
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "2loc",
            "loc-ation",
            "loc;drop table x",
            "\"loc\"",
            "lo c",
            long.as_str(),
            "locé",
        ] {
            assert!(
                matches!(TableName::new(bad), Err(StorageError::BadTableName { .. })),
                "{bad:?}"
            );
        }
    }
}
