//! The mailbox in SQLite, in WAL mode: a message acknowledged to its sender
//! has been committed, so it survives a crash of the server process.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};
use switchboard_proto::PeerId;

use super::{MailStore, StoreError, StoredMail};

/// SQLite-backed store.
pub struct SqliteStore {
    db: Mutex<Connection>,
    /// Messages stored per recipient (expired ones included until purged),
    /// so that most sessions open without a query.
    waiting: Mutex<HashMap<PeerId, u32>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        Self::init(Connection::open(path).map_err(backend)?)
    }

    /// A store that lives in memory only.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(db: Connection) -> Result<Self, StoreError> {
        db.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        db.pragma_update(None, "synchronous", "NORMAL").map_err(backend)?;
        db.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS mail (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                recipient BLOB NOT NULL,
                sender BLOB NOT NULL,
                body TEXT NOT NULL,
                sent_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS mail_by_recipient ON mail (recipient, id);
            CREATE INDEX IF NOT EXISTS mail_by_expiry ON mail (expires_at);",
        )
        .map_err(backend)?;
        let waiting = count_by_recipient(&db)?;
        Ok(Self { db: Mutex::new(db), waiting: Mutex::new(waiting) })
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, u32>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.db.lock().map_err(|_| StoreError::Backend("mailbox lock poisoned".into()))
    }
}

fn count_by_recipient(db: &Connection) -> Result<HashMap<PeerId, u32>, StoreError> {
    let mut stmt = db.prepare("SELECT recipient, COUNT(*) FROM mail GROUP BY recipient").map_err(backend)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))).map_err(backend)?;
    let mut counts = HashMap::new();
    for row in rows {
        let (id, n) = row.map_err(backend)?;
        if let Ok(id) = <[u8; 16]>::try_from(id) {
            counts.insert(PeerId::from_bytes(id), u32::try_from(n).unwrap_or(u32::MAX));
        }
    }
    Ok(counts)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl MailStore for SqliteStore {
    fn put(
        &self,
        from: PeerId,
        to: PeerId,
        body: &str,
        now_ms: u64,
        ttl_ms: u64,
        max_per_peer: u32,
    ) -> Result<u64, StoreError> {
        let mut db = self.lock()?;
        let tx = db.transaction().map_err(backend)?;
        let waiting: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM mail WHERE recipient = ?1 AND expires_at > ?2",
                params![&to.as_bytes()[..], to_i64(now_ms)],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if waiting >= i64::from(max_per_peer) {
            return Err(StoreError::MailboxFull);
        }
        tx.execute(
            "INSERT INTO mail (recipient, sender, body, sent_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                &to.as_bytes()[..],
                &from.as_bytes()[..],
                body,
                to_i64(now_ms),
                to_i64(now_ms.saturating_add(ttl_ms))
            ],
        )
        .map_err(backend)?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(backend)?;
        *self.waiting().entry(to).or_default() += 1;
        Ok(u64::try_from(id).unwrap_or_default())
    }

    fn may_have_mail(&self, to: PeerId) -> bool {
        self.waiting().contains_key(&to)
    }

    fn pending(&self, to: PeerId, now_ms: u64, after: u64, limit: usize) -> Result<Vec<StoredMail>, StoreError> {
        let db = self.lock()?;
        let mut stmt = db
            .prepare_cached(
                "SELECT id, sender, body, sent_at FROM mail
                 WHERE recipient = ?1 AND expires_at > ?2 AND id > ?3 ORDER BY id LIMIT ?4",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![&to.as_bytes()[..], to_i64(now_ms), to_i64(after), to_i64(limit as u64)], |r| {
                let sender: Vec<u8> = r.get(1)?;
                Ok((r.get::<_, i64>(0)?, sender, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, sender, body, sent_at) = row.map_err(backend)?;
            let sender: [u8; 16] =
                sender.try_into().map_err(|_| StoreError::Backend("bad sender id in mailbox".into()))?;
            out.push(StoredMail {
                id: u64::try_from(id).unwrap_or_default(),
                from: PeerId::from_bytes(sender),
                body,
                sent_at: u64::try_from(sent_at).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    fn ack(&self, to: PeerId, ids: &[u64]) -> Result<usize, StoreError> {
        let mut db = self.lock()?;
        let tx = db.transaction().map_err(backend)?;
        let mut deleted = 0;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM mail WHERE id = ?1 AND recipient = ?2").map_err(backend)?;
            for id in ids {
                deleted += stmt.execute(params![to_i64(*id), &to.as_bytes()[..]]).map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)?;
        let mut waiting = self.waiting();
        if let Some(n) = waiting.get_mut(&to) {
            *n = n.saturating_sub(u32::try_from(deleted).unwrap_or(u32::MAX));
            if *n == 0 {
                waiting.remove(&to);
            }
        }
        Ok(deleted)
    }

    fn purge_expired(&self, now_ms: u64) -> Result<usize, StoreError> {
        let db = self.lock()?;
        let purged = db.execute("DELETE FROM mail WHERE expires_at <= ?1", params![to_i64(now_ms)]).map_err(backend)?;
        if purged > 0 {
            *self.waiting() = count_by_recipient(&db)?;
        }
        Ok(purged)
    }

    fn depth(&self) -> Result<u64, StoreError> {
        let db = self.lock()?;
        let n: Option<i64> = db.query_row("SELECT COUNT(*) FROM mail", [], |r| r.get(0)).optional().map_err(backend)?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_is_bounded_expires_and_is_deleted_on_ack() -> Result<(), StoreError> {
        let store = SqliteStore::in_memory()?;
        let (a, b) = (PeerId::from_bytes([1; 16]), PeerId::from_bytes([2; 16]));
        let first = store.put(a, b, "\"one\"", 1_000, 10_000, 2)?;
        let second = store.put(a, b, "\"two\"", 2_000, 10_000, 2)?;
        assert!(matches!(store.put(a, b, "\"three\"", 3_000, 10_000, 2), Err(StoreError::MailboxFull)));
        let waiting = store.pending(b, 3_000, 0, 10)?;
        assert_eq!(store.pending(b, 3_000, first, 10)?.len(), 1, "only mail after the cursor");
        assert_eq!(waiting.iter().map(|m| m.id).collect::<Vec<_>>(), vec![first, second]);
        assert_eq!(waiting[0].from, a);
        assert_eq!(store.ack(a, &[first])?, 0, "only the recipient can acknowledge");
        assert!(store.may_have_mail(b) && !store.may_have_mail(a));
        assert_eq!(store.ack(b, &[first])?, 1);
        assert_eq!(store.pending(b, 11_000, 0, 10)?.len(), 1);
        assert_eq!(store.pending(b, 12_000, 0, 10)?.len(), 0, "expired mail is not delivered");
        assert_eq!(store.purge_expired(12_001)?, 1);
        assert_eq!(store.depth()?, 0);
        assert!(!store.may_have_mail(b), "the index follows acks and purges");
        Ok(())
    }

    #[test]
    fn mail_survives_reopening_the_file() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(backend)?;
        let path = dir.path().join("mail.db");
        let (a, b) = (PeerId::from_bytes([1; 16]), PeerId::from_bytes([2; 16]));
        let id = SqliteStore::open(&path)?.put(a, b, "{}", 0, 60_000, 10)?;
        let reopened = SqliteStore::open(&path)?;
        assert!(reopened.may_have_mail(b), "the index is rebuilt from the file");
        assert_eq!(reopened.pending(b, 1, 0, 10)?.first().map(|m| m.id), Some(id));
        Ok(())
    }
}
