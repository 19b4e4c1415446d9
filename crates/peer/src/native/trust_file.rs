//! The trust book in a file: read at start, written whole to a temporary
//! file beside it and renamed over it on every change, off the async
//! threads, the newest last.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use switchboard_proto::PeerId;

use crate::trust::{self, MAX_TRUST_BYTES, Trust, TrustStoreError};

/// Reads the book at `path` (empty when there is no file yet).
pub(crate) async fn load(path: PathBuf) -> Result<BTreeMap<PeerId, Trust>, TrustStoreError> {
    let read = tokio::task::spawn_blocking(move || {
        let io = |e: std::io::Error| TrustStoreError::Io(format!("{}: {e}", path.display()));
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(io(e)),
            Ok(m) if m.len() > MAX_TRUST_BYTES as u64 => return Err(TrustStoreError::TooLarge),
            Ok(_) => {}
        }
        trust::decode(&std::fs::read_to_string(&path).map_err(io)?)
    });
    read.await.map_err(|e| TrustStoreError::Io(e.to_string()))?
}

/// Writes the book at its path; clones share the writes.
#[derive(Clone, Debug)]
pub(crate) struct TrustFile {
    path: PathBuf,
    /// The last change handed to [`TrustFile::save`].
    made: Arc<AtomicU64>,
    /// The last change written (or given up on).
    written: Arc<Mutex<u64>>,
    /// Told when a write ends.
    done: Arc<tokio::sync::Notify>,
}

impl TrustFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        TrustFile {
            path,
            made: Arc::new(AtomicU64::new(0)),
            written: Arc::new(Mutex::new(0)),
            done: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Saves `text` in the background; a later save is never overwritten
    /// by an earlier one.
    pub(crate) fn save(&self, text: String) {
        let change = self.made.fetch_add(1, Ordering::Relaxed) + 1;
        let (path, written, done) = (self.path.clone(), self.written.clone(), self.done.clone());
        tokio::task::spawn_blocking(move || {
            let mut last = written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *last < change {
                if let Err(e) = write_whole(&path, text.as_bytes()) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot save the trust store");
                }
                *last = change;
            }
            drop(last);
            done.notify_waiters();
        });
    }

    /// Waits until every change saved so far is on disk (or failed).
    pub(crate) async fn flushed(&self) {
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            let written = *self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if written >= self.made.load(Ordering::Relaxed) {
                return;
            }
            done.await;
        }
    }
}

/// Writes `data` to a temporary file beside `path`, syncs it and renames
/// it over `path`.
fn write_whole(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(data)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
