//! The mailbox in SQLite, in WAL mode: a message acknowledged to its sender
//! has been committed, so it survives a crash of the server process.
//!
//! Each recipient has a mailbox per tenant: mail from a peer of one tenant
//! is read only by its recipient connected in that tenant.
//!
//! What is stored is also tallied in memory (by mailbox, sender and
//! origin), so that quotas are checked and `/metrics` reads the depth
//! without a query. The tallies are rebuilt from the file when it is opened
//! and after expired mail is purged.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, params};
use switchboard_proto::PeerId;

use super::{MailQuota, MailStore, NewMail, QuotaKind, StoreError, StoredMail};

/// Messages and body bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    mails: u64,
    bytes: u64,
}

impl Tally {
    fn fits(self, bytes: u64, max_mails: u64, max_bytes: u64) -> bool {
        self.mails < max_mails && self.bytes.saturating_add(bytes) <= max_bytes
    }
}

/// A recipient's mailbox: its peer id and a tenant.
type Mailbox = (PeerId, String);

/// Stored mail by mailbox, sender and origin, and in all.
#[derive(Debug, Default)]
struct Usage {
    recipients: HashMap<Mailbox, Tally>,
    senders: HashMap<PeerId, Tally>,
    origins: HashMap<String, Tally>,
    total: Tally,
}

fn add<K: Hash + Eq>(map: &mut HashMap<K, Tally>, key: K, bytes: u64) {
    let t = map.entry(key).or_default();
    t.mails += 1;
    t.bytes += bytes;
}

fn remove<K: Hash + Eq>(map: &mut HashMap<K, Tally>, key: &K, bytes: u64) {
    if let Some(t) = map.get_mut(key) {
        t.mails = t.mails.saturating_sub(1);
        t.bytes = t.bytes.saturating_sub(bytes);
        if t.mails == 0 {
            map.remove(key);
        }
    }
}

impl Usage {
    fn of<K: Hash + Eq>(map: &HashMap<K, Tally>, key: &K) -> Tally {
        map.get(key).copied().unwrap_or_default()
    }

    /// The first quota a message of `bytes` would break.
    fn check(&self, mail: &NewMail<'_>, bytes: u64, q: &MailQuota) -> Result<(), QuotaKind> {
        if !Self::of(&self.recipients, &(mail.to, mail.tenant.to_owned())).fits(
            bytes,
            q.recipient_mails,
            q.recipient_bytes,
        ) {
            return Err(QuotaKind::Recipient);
        }
        if !Self::of(&self.senders, &mail.from).fits(bytes, q.sender_mails, q.sender_bytes) {
            return Err(QuotaKind::Sender);
        }
        let origin = self.origins.get(mail.origin).copied().unwrap_or_default();
        if !origin.fits(bytes, q.origin_mails, q.origin_bytes) {
            return Err(QuotaKind::Origin);
        }
        if !self.total.fits(bytes, q.total_mails, q.total_bytes) {
            return Err(QuotaKind::Total);
        }
        Ok(())
    }

    fn add(&mut self, to: Mailbox, from: PeerId, origin: &str, bytes: u64) {
        add(&mut self.recipients, to, bytes);
        add(&mut self.senders, from, bytes);
        add(&mut self.origins, origin.to_owned(), bytes);
        self.total.mails += 1;
        self.total.bytes += bytes;
    }

    fn remove(&mut self, to: &Mailbox, from: PeerId, origin: &str, bytes: u64) {
        remove(&mut self.recipients, to, bytes);
        remove(&mut self.senders, &from, bytes);
        remove(&mut self.origins, &origin.to_owned(), bytes);
        self.total.mails = self.total.mails.saturating_sub(1);
        self.total.bytes = self.total.bytes.saturating_sub(bytes);
    }
}

/// SQLite-backed store.
pub struct SqliteStore {
    db: Mutex<Connection>,
    usage: Mutex<Usage>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn peer(bytes: Vec<u8>) -> Result<PeerId, StoreError> {
    let id: [u8; 16] = bytes.try_into().map_err(|_| StoreError::Backend("bad peer id in mailbox".into()))?;
    Ok(PeerId::from_bytes(id))
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
        // Files written before quotas by origin, or before tenants, lack the columns.
        for column in ["origin", "tenant"] {
            let has: bool = db
                .query_row("SELECT COUNT(*) FROM pragma_table_info('mail') WHERE name = ?1", [column], |r| r.get(0))
                .map_err(backend)?;
            if !has {
                db.execute_batch(&format!("ALTER TABLE mail ADD COLUMN {column} TEXT NOT NULL DEFAULT ''"))
                    .map_err(backend)?;
            }
        }
        let usage = tally(&db)?;
        Ok(Self { db: Mutex::new(db), usage: Mutex::new(usage) })
    }

    fn usage(&self) -> MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.db.lock().map_err(|_| StoreError::Backend("mailbox lock poisoned".into()))
    }
}

/// Reads every stored message's size into fresh tallies.
fn tally(db: &Connection) -> Result<Usage, StoreError> {
    let mut stmt = db
        .prepare(
            "SELECT recipient, sender, origin, tenant, COUNT(*), SUM(LENGTH(CAST(body AS BLOB))) FROM mail
             GROUP BY recipient, sender, origin, tenant",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .map_err(backend)?;
    let mut usage = Usage::default();
    for row in rows {
        let (to, from, origin, tenant, mails, bytes) = row.map_err(backend)?;
        let t =
            Tally { mails: u64::try_from(mails).unwrap_or_default(), bytes: u64::try_from(bytes).unwrap_or_default() };
        for e in [
            usage.recipients.entry((peer(to)?, tenant)).or_default(),
            usage.senders.entry(peer(from)?).or_default(),
            usage.origins.entry(origin).or_default(),
        ] {
            e.mails += t.mails;
            e.bytes += t.bytes;
        }
        usage.total.mails += t.mails;
        usage.total.bytes += t.bytes;
    }
    Ok(usage)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl MailStore for SqliteStore {
    fn put(&self, mail: NewMail<'_>, quota: &MailQuota) -> Result<u64, StoreError> {
        let bytes = mail.body.len() as u64;
        let mut db = self.lock()?;
        // The database lock is held from the check to the tally, so two
        // messages cannot both take the last room under a quota.
        self.usage().check(&mail, bytes, quota).map_err(StoreError::Quota)?;
        let tx = db.transaction().map_err(backend)?;
        tx.execute(
            "INSERT INTO mail (recipient, sender, body, sent_at, expires_at, origin, tenant)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                &mail.to.as_bytes()[..],
                &mail.from.as_bytes()[..],
                mail.body,
                to_i64(mail.now_ms),
                to_i64(mail.now_ms.saturating_add(mail.ttl_ms)),
                mail.origin,
                mail.tenant,
            ],
        )
        .map_err(backend)?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(backend)?;
        self.usage().add((mail.to, mail.tenant.to_owned()), mail.from, mail.origin, bytes);
        Ok(u64::try_from(id).unwrap_or_default())
    }

    fn may_have_mail(&self, to: PeerId, tenant: &str) -> bool {
        self.usage().recipients.contains_key(&(to, tenant.to_owned()))
    }

    fn pending(
        &self,
        to: PeerId,
        tenant: &str,
        now_ms: u64,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredMail>, StoreError> {
        let db = self.lock()?;
        let mut stmt = db
            .prepare_cached(
                "SELECT id, sender, body, sent_at FROM mail
                 WHERE recipient = ?1 AND tenant = ?5 AND expires_at > ?2 AND id > ?3 ORDER BY id LIMIT ?4",
            )
            .map_err(backend)?;
        let mut rows = stmt
            .query(params![&to.as_bytes()[..], to_i64(now_ms), to_i64(after), to_i64(limit as u64), tenant])
            .map_err(backend)?;
        let mut out = Vec::new();
        let mut bytes = 0;
        // Rows are read one by one, so a batch cut by bytes reads no more.
        while let Some(row) = rows.next().map_err(backend)? {
            let body: String = row.get(2).map_err(backend)?;
            if !out.is_empty() && bytes + body.len() > max_bytes {
                break;
            }
            bytes += body.len();
            out.push(StoredMail {
                id: u64::try_from(row.get::<_, i64>(0).map_err(backend)?).unwrap_or_default(),
                from: peer(row.get(1).map_err(backend)?)?,
                body,
                sent_at: u64::try_from(row.get::<_, i64>(3).map_err(backend)?).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    fn ack(&self, to: PeerId, tenant: &str, ids: &[u64]) -> Result<usize, StoreError> {
        let mut db = self.lock()?;
        let tx = db.transaction().map_err(backend)?;
        let mut deleted = Vec::new();
        {
            let mut find = tx
                .prepare_cached(
                    "SELECT sender, origin, LENGTH(CAST(body AS BLOB)) FROM mail
                     WHERE id = ?1 AND recipient = ?2 AND tenant = ?3",
                )
                .map_err(backend)?;
            let mut delete = tx.prepare_cached("DELETE FROM mail WHERE id = ?1").map_err(backend)?;
            for id in ids {
                let found = find
                    .query_row(params![to_i64(*id), &to.as_bytes()[..], tenant], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                    })
                    .map(Some)
                    .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
                    .map_err(backend)?;
                if let Some(found) = found {
                    delete.execute(params![to_i64(*id)]).map_err(backend)?;
                    deleted.push(found);
                }
            }
        }
        tx.commit().map_err(backend)?;
        let mut usage = self.usage();
        let mailbox = (to, tenant.to_owned());
        for (from, origin, bytes) in &deleted {
            usage.remove(&mailbox, peer(from.clone())?, origin, u64::try_from(*bytes).unwrap_or_default());
        }
        Ok(deleted.len())
    }

    fn purge_expired(&self, now_ms: u64) -> Result<usize, StoreError> {
        let db = self.lock()?;
        let purged = db.execute("DELETE FROM mail WHERE expires_at <= ?1", params![to_i64(now_ms)]).map_err(backend)?;
        if purged > 0 {
            *self.usage() = tally(&db)?;
        }
        Ok(purged)
    }

    fn depth(&self) -> Result<u64, StoreError> {
        Ok(self.usage().total.mails)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    const A: PeerId = PeerId::from_bytes([1; 16]);
    const B: PeerId = PeerId::from_bytes([2; 16]);
    const C: PeerId = PeerId::from_bytes([3; 16]);

    fn mail<'a>(from: PeerId, to: PeerId, body: &'a str, now_ms: u64) -> NewMail<'a> {
        NewMail { from, to, origin: "192.0.2.1", tenant: "", body, now_ms, ttl_ms: 10_000 }
    }

    fn quota(f: impl FnOnce(&mut MailQuota)) -> MailQuota {
        let mut q = MailQuota::default();
        f(&mut q);
        q
    }

    #[test]
    fn mail_is_bounded_expires_and_is_deleted_on_ack() -> Result<(), StoreError> {
        let store = SqliteStore::in_memory()?;
        let q = quota(|q| q.recipient_mails = 2);
        let first = store.put(mail(A, B, "\"one\"", 1_000), &q)?;
        let second = store.put(mail(A, B, "\"two\"", 2_000), &q)?;
        let third = store.put(mail(A, B, "\"three\"", 3_000), &q);
        assert!(matches!(third, Err(StoreError::Quota(QuotaKind::Recipient))), "{third:?}");
        let waiting = store.pending(B, "", 3_000, 0, 10, usize::MAX)?;
        assert_eq!(store.pending(B, "", 3_000, first, 10, usize::MAX)?.len(), 1, "only mail after the cursor");
        assert_eq!(waiting.iter().map(|m| m.id).collect::<Vec<_>>(), vec![first, second]);
        assert_eq!(waiting[0].from, A);
        assert_eq!(store.ack(A, "", &[first])?, 0, "only the recipient can acknowledge");
        assert!(store.may_have_mail(B, "") && !store.may_have_mail(A, ""));
        assert_eq!(store.ack(B, "", &[first])?, 1);
        assert_eq!(store.depth()?, 1);
        assert_eq!(store.pending(B, "", 11_000, 0, 10, usize::MAX)?.len(), 1);
        assert_eq!(store.pending(B, "", 12_000, 0, 10, usize::MAX)?.len(), 0, "expired mail is not delivered");
        assert_eq!(store.purge_expired(12_001)?, 1);
        assert_eq!(store.depth()?, 0);
        assert!(!store.may_have_mail(B, ""), "the tallies follow acks and purges");
        Ok(())
    }

    #[test]
    fn a_batch_is_cut_by_bytes_but_holds_at_least_one_message() -> Result<(), StoreError> {
        let store = SqliteStore::in_memory()?;
        let body = format!("\"{}\"", "x".repeat(98));
        for _ in 0..5 {
            store.put(mail(A, B, &body, 0), &MailQuota::default())?;
        }
        assert_eq!(store.pending(B, "", 1, 0, 10, 250)?.len(), 2, "two 100-byte bodies fit in 250 bytes");
        assert_eq!(store.pending(B, "", 1, 0, 10, 10)?.len(), 1, "one message even when it alone is larger");
        assert_eq!(store.pending(B, "", 1, 0, 3, usize::MAX)?.len(), 3, "and no more than the count");
        Ok(())
    }

    #[test]
    fn quotas_hold_by_sender_origin_and_in_all_and_acks_free_them() -> Result<(), StoreError> {
        let store = SqliteStore::in_memory()?;
        let refused = |q: &MailQuota, m: NewMail<'_>| match store.put(m, q) {
            Err(StoreError::Quota(kind)) => Some(kind),
            Ok(_) | Err(_) => None,
        };
        let ten = "\"12345678\"";
        let q = quota(|q| q.recipient_bytes = 25);
        let id = store.put(mail(A, B, ten, 0), &q)?;
        store.put(mail(C, B, ten, 0), &q)?;
        assert_eq!(refused(&q, mail(A, B, ten, 0)), Some(QuotaKind::Recipient), "30 bytes for B is over 25");
        let q = quota(|q| q.sender_bytes = 25);
        assert_eq!(refused(&q, mail(A, C, ten, 0)), None, "A has 10 bytes stored; 20 fit");
        assert_eq!(refused(&q, mail(A, C, ten, 0)), Some(QuotaKind::Sender));
        let q = quota(|q| q.sender_mails = 2);
        assert_eq!(refused(&q, mail(A, C, ten, 0)), Some(QuotaKind::Sender), "A has two messages stored");
        let q = quota(|q| q.origin_mails = 3);
        assert_eq!(refused(&q, mail(B, C, ten, 0)), Some(QuotaKind::Origin), "three from 192.0.2.1 already");
        let other = NewMail { origin: "198.51.100.7", ..mail(B, C, ten, 0) };
        assert_eq!(refused(&q, other), None, "another address has its own quota");
        let q = quota(|q| q.total_bytes = 45);
        assert_eq!(refused(&q, mail(B, A, ten, 0)), Some(QuotaKind::Total), "four messages of 10 bytes stored");
        assert_eq!(store.ack(B, "", &[id])?, 1);
        assert_eq!(refused(&q, mail(B, A, ten, 0)), None, "an acknowledged message frees its bytes");
        Ok(())
    }

    /// Attack: reach, or fill the mailbox of, a peer of another tenant.
    #[test]
    fn mail_lands_in_the_mailbox_of_the_senders_tenant() -> Result<(), StoreError> {
        let store = SqliteStore::in_memory()?;
        let q = quota(|q| q.recipient_mails = 1);
        let foreign = NewMail { tenant: "globex", ..mail(C, B, "\"spam\"", 0) };
        let spam = store.put(foreign, &q)?;
        let id = store.put(NewMail { tenant: "acme", ..mail(A, B, "\"hi\"", 0) }, &q)?;
        assert_eq!(store.pending(B, "acme", 1, 0, 10, usize::MAX)?.iter().map(|m| m.id).collect::<Vec<_>>(), [id]);
        assert!(store.pending(B, "", 1, 0, 10, usize::MAX)?.is_empty(), "no tenant, no mail of tenants");
        assert!(store.may_have_mail(B, "acme") && !store.may_have_mail(B, ""));
        assert_eq!(store.ack(B, "acme", &[spam])?, 0, "another tenant's message is not this mailbox's");
        assert_eq!(store.ack(B, "acme", &[id])?, 1);
        Ok(())
    }

    #[test]
    fn mail_survives_reopening_the_file_and_old_files_gain_origins() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(backend)?;
        let path = dir.path().join("mail.db");
        {
            // A file as servers without quotas by origin wrote it.
            let old = Connection::open(&path).map_err(backend)?;
            old.execute_batch(
                "CREATE TABLE mail (id INTEGER PRIMARY KEY AUTOINCREMENT, recipient BLOB NOT NULL,
                 sender BLOB NOT NULL, body TEXT NOT NULL, sent_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);",
            )
            .map_err(backend)?;
            old.execute(
                "INSERT INTO mail (recipient, sender, body, sent_at, expires_at) VALUES (?1, ?2, '{}', 0, 60000)",
                params![&B.as_bytes()[..], &A.as_bytes()[..]],
            )
            .map_err(backend)?;
        }
        let id = SqliteStore::open(&path)?.put(mail(A, B, "[]", 0), &MailQuota::default())?;
        let reopened = SqliteStore::open(&path)?;
        assert!(reopened.may_have_mail(B, ""), "the tallies are rebuilt from the file");
        assert_eq!(reopened.depth()?, 2);
        let waiting = reopened.pending(B, "", 1, 0, 10, usize::MAX)?;
        assert_eq!(waiting.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["{}", "[]"]);
        assert_eq!(waiting.last().map(|m| m.id), Some(id));
        Ok(())
    }
}
