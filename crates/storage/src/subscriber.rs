//! auth_db's `subscriber` table: accounts with their password and the two precomputed
//! digest hashes, written the way `kamctl add` writes them.

use md5::{Digest, Md5};
use rusqlite::{ffi, ErrorCode, OptionalExtension, Row};

use crate::database::database_error;
use crate::{Database, StorageError};

const TABLE: &str = "subscriber";

/// One account of the `subscriber` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// The user part.
    pub username: String,
    /// The domain (the digest realm).
    pub domain: String,
    /// The password in clear (kamctl stores it too, `STORE_PLAINTEXT_PW=1`).
    pub password: String,
    /// [`ha1`]`(username, domain, password)`.
    pub ha1: String,
    /// [`ha1b`]`(username, domain, password)`.
    pub ha1b: String,
}

/// RFC 2617 §3.2.2.2 H(A1) = MD5(`username:realm:password`), lower-case hex: the `ha1`
/// column, with the domain as realm.
pub fn ha1(username: &str, realm: &str, password: &str) -> String {
    md5_hex(&[username, ":", realm, ":", password])
}

/// MD5(`username@domain:domain:password`), lower-case hex: the `ha1b` column, for clients
/// that send the whole `user@domain` as digest username.
pub fn ha1b(username: &str, domain: &str, password: &str) -> String {
    md5_hex(&[username, "@", domain, ":", domain, ":", password])
}

fn md5_hex(parts: &[&str]) -> String {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(32);
    for byte in digest {
        for nibble in [byte >> 4, byte & 0x0f] {
            hex.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    hex
}

impl Database {
    /// Adds an account, computing `ha1` and `ha1b` from the password. An existing
    /// `username`@`domain` is refused with [`StorageError::DuplicateSubscriber`].
    pub fn add_subscriber(
        &self,
        username: &str,
        domain: &str,
        password: &str,
    ) -> Result<Subscriber, StorageError> {
        let subscriber = Subscriber {
            username: username.to_owned(),
            domain: domain.to_owned(),
            password: password.to_owned(),
            ha1: ha1(username, domain, password),
            ha1b: ha1b(username, domain, password),
        };
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO subscriber (username, domain, password, ha1, ha1b) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut statement| {
                statement.execute([
                    &subscriber.username,
                    &subscriber.domain,
                    &subscriber.password,
                    &subscriber.ha1,
                    &subscriber.ha1b,
                ])
            });
        match inserted {
            Ok(_) => Ok(subscriber),
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == ErrorCode::ConstraintViolation
                    && error.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                Err(StorageError::DuplicateSubscriber {
                    username: subscriber.username,
                    domain: subscriber.domain,
                })
            }
            Err(source) => Err(database_error(&self.path, TABLE, "insert", source)),
        }
    }

    /// The account `username`@`domain`, if there is one.
    pub fn subscriber(
        &self,
        username: &str,
        domain: &str,
    ) -> Result<Option<Subscriber>, StorageError> {
        self.conn
            .prepare_cached(
                "SELECT username, domain, password, ha1, ha1b FROM subscriber \
                 WHERE username = ?1 AND domain = ?2",
            )
            .and_then(|mut statement| {
                statement
                    .query_row([username, domain], subscriber_from_row)
                    .optional()
            })
            .map_err(|source| database_error(&self.path, TABLE, "read", source))
    }

    /// Every account, ordered by domain then username.
    pub fn list_subscribers(&self) -> Result<Vec<Subscriber>, StorageError> {
        self.conn
            .prepare_cached(
                "SELECT username, domain, password, ha1, ha1b FROM subscriber \
                 ORDER BY domain, username",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([], subscriber_from_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|source| database_error(&self.path, TABLE, "list", source))
    }

    /// Removes the account; `false` if there was none.
    pub fn remove_subscriber(&self, username: &str, domain: &str) -> Result<bool, StorageError> {
        self.conn
            .prepare_cached("DELETE FROM subscriber WHERE username = ?1 AND domain = ?2")
            .and_then(|mut statement| statement.execute([username, domain]))
            .map(|count| count > 0)
            .map_err(|source| database_error(&self.path, TABLE, "delete", source))
    }

    /// Sets a new password (and so `ha1`, `ha1b`); `false` if there is no such account.
    pub fn set_password(
        &self,
        username: &str,
        domain: &str,
        password: &str,
    ) -> Result<bool, StorageError> {
        let (ha1, ha1b) = (
            ha1(username, domain, password),
            ha1b(username, domain, password),
        );
        self.conn
            .prepare_cached(
                "UPDATE subscriber SET password = ?3, ha1 = ?4, ha1b = ?5 \
                 WHERE username = ?1 AND domain = ?2",
            )
            .and_then(|mut statement| statement.execute([username, domain, password, &ha1, &ha1b]))
            .map(|count| count > 0)
            .map_err(|source| database_error(&self.path, TABLE, "update", source))
    }
}

fn subscriber_from_row(row: &Row<'_>) -> Result<Subscriber, rusqlite::Error> {
    Ok(Subscriber {
        username: row.get(0)?,
        domain: row.get(1)?,
        password: row.get(2)?,
        ha1: row.get(3)?,
        ha1b: row.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempPath;

    #[test]
    fn hashes_match_md5sum() {
        // printf 'alice:example.com:secret' | md5sum
        assert_eq!(
            ha1("alice", "example.com", "secret"),
            "b1726872c344b6dc8365b774f8fd6412"
        );
        // printf 'alice@example.com:example.com:secret' | md5sum
        assert_eq!(
            ha1b("alice", "example.com", "secret"),
            "c79656e4f06dbae9fdf6727654273c65"
        );
    }

    #[test]
    fn subscribers_are_added_found_changed_and_removed() {
        let path = TempPath::new("subscribers");
        let db = Database::create(&*path).unwrap();
        let alice = db.add_subscriber("alice", "example.com", "secret").unwrap();
        assert_eq!(alice.ha1, "b1726872c344b6dc8365b774f8fd6412");
        assert_eq!(alice.ha1b, "c79656e4f06dbae9fdf6727654273c65");
        db.add_subscriber("bob", "example.com", "pw").unwrap();
        db.add_subscriber("alice", "other.example", "x").unwrap();
        let error = db
            .add_subscriber("alice", "example.com", "again")
            .unwrap_err();
        assert!(
            matches!(&error, StorageError::DuplicateSubscriber { username, domain }
                if username == "alice" && domain == "example.com"),
            "{error:?}"
        );
        assert_eq!(
            db.subscriber("alice", "example.com").unwrap(),
            Some(alice.clone())
        );
        assert_eq!(db.subscriber("carol", "example.com").unwrap(), None);
        let names: Vec<String> = db
            .list_subscribers()
            .unwrap()
            .into_iter()
            .map(|s| format!("{}@{}", s.username, s.domain))
            .collect();
        assert_eq!(
            names,
            [
                "alice@example.com",
                "bob@example.com",
                "alice@other.example"
            ]
        );
        assert!(db.set_password("alice", "example.com", "new").unwrap());
        assert!(!db.set_password("carol", "example.com", "new").unwrap());
        let changed = db.subscriber("alice", "example.com").unwrap().unwrap();
        assert_eq!(changed.password, "new");
        assert_eq!(changed.ha1, ha1("alice", "example.com", "new"));
        assert_eq!(changed.ha1b, ha1b("alice", "example.com", "new"));
        assert!(db.remove_subscriber("alice", "example.com").unwrap());
        assert!(!db.remove_subscriber("alice", "example.com").unwrap());
        assert_eq!(db.list_subscribers().unwrap().len(), 2);
    }
}
