//! Durable state: every canary's rollout state and its history, in SQLite
//! (WAL) under the daemon's `--state-dir`.
//!
//! The driver saves after every event and before carrying out its actions
//! ([`serin_server::StateStore`]), so a daemon killed at any moment restarts
//! from the last decision it acted on. The schema carries a version; older
//! state directories are migrated in one transaction, newer ones refused.
//!
//! Every call blocks on the disk: the driver saves on tokio's blocking
//! pool, and the rest of the daemon calls the store through [`blocking`].

use crate::revisions::{RevisionOutcome, Tracker};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serin_rollout::RolloutState;
use serin_server::{Placement, Saved, StateStore, Update};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

/// The schema this serin writes.
pub const SCHEMA_VERSION: i64 = 4;

/// The database file inside the state directory.
pub const DATABASE_FILE: &str = "serin.db";

/// History entries kept per canary; older ones are pruned as new ones come.
pub const HISTORY_PER_CANARY: i64 = 20_000;

/// Revision records kept per canary; older ones are pruned as new ones come.
pub const REVISIONS_PER_CANARY: i64 = 1_000;

/// Old history of a canary is pruned once per this many of its entries
/// written (and at its first save after the store is opened).
const PRUNE_EVERY: usize = 256;

/// How long a write waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migration `n` (index `n - 1`) moves the schema from version `n - 1` to
/// `n`. Append only: a released migration never changes.
const MIGRATIONS: [&str; 4] = [
    // 1: state and history.
    "CREATE TABLE canaries (
         name TEXT PRIMARY KEY,
         state TEXT NOT NULL,
         placement TEXT NOT NULL,
         updated_at INTEGER NOT NULL
     );
     CREATE TABLE history (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         canary TEXT NOT NULL,
         at INTEGER NOT NULL,
         kind TEXT NOT NULL,
         body TEXT NOT NULL
     );",
    // 2: the canary file's last seen revision; history looked up per canary.
    "ALTER TABLE canaries ADD COLUMN file_target TEXT;
     CREATE INDEX history_by_canary ON history (canary, id);",
    // 3: what became of each revision (one row per rollout of a revision).
    "CREATE TABLE revisions (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         canary TEXT NOT NULL,
         revision TEXT NOT NULL,
         body TEXT NOT NULL
     );
     CREATE INDEX revisions_by_canary ON revisions (canary, id);
     CREATE INDEX revisions_by_revision ON revisions (canary, revision, id);",
    // 4: the judge's accumulated evidence, saved with the state.
    "ALTER TABLE canaries ADD COLUMN evidence TEXT;",
];

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory could not be created.
    #[error("state directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The database could not be opened or is not a serin database.
    #[error("state directory {path}: cannot open {DATABASE_FILE}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// Another serin holds the directory: two daemons writing one store
    /// would each undo the other's rollouts.
    #[error(
        "state directory {path} is in use by another serin (lock file {LOCK_FILE}); stop it, or give another --state-dir"
    )]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// The directory was written by a newer serin; it is left untouched.
    #[error(
        "state directory {path} was written by a newer serin (schema version {found}, this serin knows up to {known}): upgrade serin, or give another --state-dir"
    )]
    TooNew {
        /// The directory.
        path: PathBuf,
        /// The version found.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A read or write failed (a full disk, a broken file).
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A call run off the async workers did not finish (it panicked, or
    /// the runtime is shutting down).
    #[error("state store: the call did not finish: {0}")]
    Interrupted(String),
    /// A stored value could not be read back.
    #[error("state store: canary {canary}: stored {what} unreadable: {source}")]
    Corrupt {
        /// The canary.
        canary: String,
        /// Which column.
        what: &'static str,
        /// Why.
        source: serde_json::Error,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The revision a canary file named when the daemon last looked, and whether
/// the rollout it asked for was started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTarget {
    /// `spec.upstreams.canary`.
    pub address: String,
    /// `spec.upstreams.revision`, or the address when none is given.
    pub revision: String,
    /// The driver took the start; a restart must not start it again.
    pub started: bool,
}

/// One canary as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCanary {
    /// The canary's name.
    pub name: String,
    /// Where its rollout stands.
    pub state: RolloutState,
    /// Where its upstreams point.
    pub placement: Placement,
    /// The revision its file named when last read.
    pub file_target: Option<FileTarget>,
    /// The judge's evidence saved with the state
    /// ([`serin_analysis::Analyzer::evidence`]), resumed at the next launch.
    pub evidence: Option<String>,
}

/// One history entry: a record, a decision with its evidence, or webhook calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Increasing over the whole store: pass as `after` to read on.
    pub id: i64,
    /// The canary.
    pub canary: String,
    /// When, milliseconds since the Unix epoch.
    pub at: u64,
    /// `record`, `decision` or `webhook`.
    pub kind: String,
    /// The entry as the driver reported it.
    pub body: serde_json::Value,
}

/// The SQLite store. One connection for writes behind a mutex (writes are
/// small and SQLite serialises them anyway) and one for reads, so that with
/// WAL a read never waits for a write, however slow the disk.
///
/// Every call blocks: async code calls it through [`blocking`] (or, for
/// saves, the driver's blocking pool), never on an async worker.
#[derive(Debug)]
pub struct Store {
    connection: Mutex<Connection>,
    /// Reads only (`query_only`): history, revisions and stored states.
    reader: Mutex<Connection>,
    /// History entries written per canary since its last pruning. Counted
    /// per canary, not from the store-wide row id: ids interleave between
    /// canaries, so a canary whose ids never land on a multiple would never
    /// be pruned. Locked only while `connection` is held.
    unpruned: Mutex<HashMap<String, usize>>,
    path: PathBuf,
    /// Held open for the store's life: the operating system releases the
    /// lock when the process ends, however it ends (even `kill -9`).
    _lock: std::fs::File,
}

/// The file locked by the daemon owning a state directory.
pub const LOCK_FILE: &str = "serin.lock";

// === impl Store ===

impl Store {
    /// Opens (creating or migrating) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Directory {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|source| Error::Directory {
                path: dir.to_path_buf(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Error::Directory {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
        let open = |source| Error::Open {
            path: dir.to_path_buf(),
            source,
        };
        let mut connection = Connection::open(dir.join(DATABASE_FILE)).map_err(open)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(open)?;
        // Refuse a newer schema before writing anything, even the WAL switch.
        let found = read_version(&connection).map_err(|error| match error {
            Error::Sqlite(source) => open(source),
            other => other,
        })?;
        if let Some(found) = found.filter(|found| *found > SCHEMA_VERSION) {
            return Err(Error::TooNew {
                path: dir.to_path_buf(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        // WAL: readers never block the writer, and a process killed mid-write
        // leaves the last committed transaction intact. NORMAL syncs at
        // checkpoints: a killed process loses nothing (the OS has the pages);
        // only a power cut may lose the last transactions, never consistency.
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(dir = %dir.display(), %mode, "state store is not in WAL mode");
        }
        connection
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(open)?;
        migrate(&mut connection, dir)?;
        // Opened once the schema is in place; WAL is a property of the file.
        let reader = Connection::open(dir.join(DATABASE_FILE)).map_err(open)?;
        reader.busy_timeout(BUSY_TIMEOUT).map_err(open)?;
        reader
            .execute_batch("PRAGMA query_only = ON;")
            .map_err(open)?;
        Ok(Store {
            connection: Mutex::new(connection),
            reader: Mutex::new(reader),
            unpruned: Mutex::new(HashMap::new()),
            path: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open store.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(read_version(&self.read())?.unwrap_or(0))
    }

    /// Caps the database's size (a quota; tests use it to play a full disk).
    /// Writes that would grow it further fail with "database or disk is full".
    pub fn set_max_bytes(&self, bytes: u64) -> Result<()> {
        let connection = self.lock();
        let page_size: i64 = connection.query_row("PRAGMA page_size", [], |row| row.get(0))?;
        let pages = bytes / u64::try_from(page_size.max(1)).unwrap_or(4096);
        let _: i64 = connection.query_row(
            &format!("PRAGMA max_page_count = {}", pages.max(1)),
            [],
            |row| row.get(0),
        )?;
        Ok(())
    }

    /// One canary, if it was ever saved.
    pub fn load(&self, name: &str) -> Result<Option<StoredCanary>> {
        let connection = self.read();
        let row = connection
            .query_row(
                "SELECT name, state, placement, file_target, evidence FROM canaries WHERE name = ?1",
                [name],
                raw_row,
            )
            .optional()?;
        row.map(decode).transpose()
    }

    /// Every canary ever saved, by name.
    pub fn load_all(&self) -> Result<Vec<StoredCanary>> {
        let connection = self.read();
        let mut statement = connection.prepare(
            "SELECT name, state, placement, file_target, evidence FROM canaries ORDER BY name",
        )?;
        let rows = statement.query_map([], raw_row)?;
        let mut canaries = Vec::new();
        for row in rows {
            canaries.push(decode(row?)?);
        }
        Ok(canaries)
    }

    /// Forgets a canary's state (where its rollout stands, where its
    /// upstreams point, the revision its file named), keeping its history
    /// and revision records: the next launch starts it afresh, all traffic
    /// on stable. Whether there was a state to forget.
    pub fn forget(&self, name: &str) -> Result<bool> {
        let connection = self.lock();
        let deleted = connection.execute("DELETE FROM canaries WHERE name = ?1", [name])?;
        Ok(deleted > 0)
    }

    /// Records the revision a canary file names. A canary never saved gets a
    /// fresh state row.
    pub fn set_file_target(
        &self,
        name: &str,
        target: Option<&FileTarget>,
        fresh: &RolloutState,
    ) -> Result<()> {
        let target = target
            .map(serde_json::to_string)
            .transpose()
            .map_err(|source| Error::Corrupt {
                canary: name.to_owned(),
                what: "file target",
                source,
            })?;
        let state = encode(name, "state", fresh)?;
        let placement = encode(name, "placement", &Placement::default())?;
        let connection = self.lock();
        connection.execute(
            "INSERT INTO canaries (name, state, placement, updated_at, file_target)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (name) DO UPDATE SET file_target = excluded.file_target",
            params![name, state, placement, now_millis(), target],
        )?;
        Ok(())
    }

    /// History of one canary after entry `after`, oldest first, at most
    /// `limit` entries, optionally of one kind only.
    pub fn history(
        &self,
        name: &str,
        after: i64,
        limit: u32,
        kind: Option<&str>,
    ) -> Result<Vec<HistoryEntry>> {
        let connection = self.read();
        let mut statement = connection.prepare(
            "SELECT id, canary, at, kind, body FROM history
             WHERE canary = ?1 AND id > ?2 AND (?3 IS NULL OR kind = ?3)
             ORDER BY id LIMIT ?4",
        )?;
        let rows = statement.query_map(params![name, after, kind, limit], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ))
        })?;
        let mut entries = Vec::new();
        for row in rows {
            let (id, canary, at, kind, body) = row?;
            let body = serde_json::from_str(&body).map_err(|source| Error::Corrupt {
                canary: canary.clone(),
                what: "history",
                source,
            })?;
            entries.push(HistoryEntry {
                id,
                canary,
                at: u64::try_from(at).unwrap_or(0),
                kind,
                body,
            });
        }
        Ok(entries)
    }

    /// The latest rollout of `revision` of a canary, if it was ever started
    /// (since this store recorded revisions).
    pub fn revision(&self, name: &str, revision: &str) -> Result<Option<RevisionOutcome>> {
        let connection = self.read();
        let body: Option<String> = connection
            .query_row(
                "SELECT body FROM revisions WHERE canary = ?1 AND revision = ?2
                 ORDER BY id DESC LIMIT 1",
                params![name, revision],
                |row| row.get(0),
            )
            .optional()?;
        body.map(|body| {
            serde_json::from_str(&body).map_err(|source| Error::Corrupt {
                canary: name.to_owned(),
                what: "revision",
                source,
            })
        })
        .transpose()
    }

    /// A canary's rollouts, newest first, at most `limit`.
    pub fn revisions(&self, name: &str, limit: u32) -> Result<Vec<RevisionOutcome>> {
        let connection = self.read();
        let mut statement = connection
            .prepare("SELECT body FROM revisions WHERE canary = ?1 ORDER BY id DESC LIMIT ?2")?;
        let rows = statement.query_map(params![name, limit], |row| row.get::<_, String>(0))?;
        let mut revisions = Vec::new();
        for row in rows {
            revisions.push(
                serde_json::from_str(&row?).map_err(|source| Error::Corrupt {
                    canary: name.to_owned(),
                    what: "revision",
                    source,
                })?,
            );
        }
        Ok(revisions)
    }

    /// The read connection.
    fn read(&self) -> MutexGuard<'_, Connection> {
        // Reads leave nothing half done: a poisoned lock is still usable.
        self.reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The write connection.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable: SQLite
        // rolls back the open transaction when the `Transaction` drops.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Saves a state and its history, and follows the canary's revision
    /// records (`threshold`: the plan's, when known), in one transaction.
    pub(crate) fn save_rows(
        &self,
        canary: &str,
        saved: Saved<'_>,
        threshold: Option<u32>,
    ) -> Result<()> {
        let state = encode(canary, "state", saved.state)?;
        let placement = encode(canary, "placement", saved.placement)?;
        let mut history = Vec::with_capacity(saved.history.len());
        for update in saved.history {
            let body = serde_json::to_value(update).map_err(|source| Error::Corrupt {
                canary: canary.to_owned(),
                what: "history",
                source,
            })?;
            let kind = body
                .get("update")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("record")
                .to_owned();
            history.push((update_at(update), kind, body.to_string()));
        }
        let mut connection = self.lock();
        let mut unpruned = self
            .unpruned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let written = unpruned
            .get(canary)
            .map(|count| count.saturating_add(history.len()));
        // Pruning scans the canary's newest entries: do it now and then.
        let prune = !history.is_empty() && written.is_none_or(|count| count >= PRUNE_EVERY);
        let transaction = connection.transaction()?;
        transaction.execute(
            "INSERT INTO canaries (name, state, placement, updated_at, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (name) DO UPDATE SET state = excluded.state,
                 placement = excluded.placement, updated_at = excluded.updated_at,
                 evidence = excluded.evidence",
            params![canary, state, placement, now_millis(), saved.evidence],
        )?;
        follow_revisions(&transaction, canary, saved, threshold)?;
        if !history.is_empty() {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO history (canary, at, kind, body) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (at, kind, body) in &history {
                insert.execute(params![canary, at, kind, body])?;
            }
            drop(insert);
            if prune {
                transaction.execute(
                    "DELETE FROM history WHERE canary = ?1 AND id <= (
                     SELECT id FROM history WHERE canary = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                    params![canary, HISTORY_PER_CANARY],
                )?;
            }
        }
        transaction.commit()?;
        if prune {
            unpruned.insert(canary.to_owned(), 0);
        } else if let Some(count) = written {
            unpruned.insert(canary.to_owned(), count);
        }
        Ok(())
    }
}

/// Runs `job` on `store` on tokio's blocking pool and waits for it there.
///
/// SQLite blocks on the disk and on locks; a call made on an async worker
/// would hold up every rollout loop, proxy connection and API call that
/// worker runs until the disk answers. A caller that stops waiting (a timed
/// out API call) leaves the job to finish on its own.
pub async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    job: impl FnOnce(&Store) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || job(&store))
        .await
        .unwrap_or_else(|error| Err(Error::Interrupted(error.to_string())))
}

impl StateStore for Store {
    fn save(&self, canary: &str, saved: Saved<'_>) -> Result<(), serin_server::StoreError> {
        self.save_rows(canary, saved, None)
            .map_err(|error| serin_server::StoreError {
                message: format!("{}: {error}", self.path.display()),
            })
    }
}

/// Follows a saved state in the canary's revision records: the latest
/// record goes on, ends (superseded, or promoted as a queued revision
/// starts), or a new one begins.
fn follow_revisions(
    transaction: &Transaction<'_>,
    canary: &str,
    saved: Saved<'_>,
    threshold: Option<u32>,
) -> Result<()> {
    if saved.state.revision.is_none() {
        return Ok(());
    }
    let latest: Option<(i64, String)> = transaction
        .prepare_cached(
            "SELECT id, body FROM revisions WHERE canary = ?1 ORDER BY id DESC LIMIT 1",
        )?
        .query_row([canary], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let (id, before) = match latest {
        Some((id, body)) => match serde_json::from_str::<RevisionOutcome>(&body) {
            Ok(record) => (Some(id), Some(record)),
            Err(error) => {
                // An unreadable record must not stop the rollout: start afresh.
                tracing::warn!(canary, %error, "revision record unreadable; starting a new one");
                (None, None)
            }
        },
        None => (None, None),
    };
    let mut tracker = Tracker::new(threshold, before.clone());
    for update in saved.history {
        if let Update::Decision { decision, .. } = update {
            tracker.decision(decision);
        }
    }
    let step = tracker.state(saved.state);
    let encode_record = |record: &RevisionOutcome| encode(canary, "revision", record);
    if let (Some(ended), Some(id)) = (&step.ended, id) {
        transaction
            .prepare_cached("UPDATE revisions SET body = ?1 WHERE id = ?2")?
            .execute(params![encode_record(ended)?, id])?;
    }
    let Some(current) = tracker.current() else {
        return Ok(());
    };
    if step.began || id.is_none() {
        transaction
            .prepare_cached("INSERT INTO revisions (canary, revision, body) VALUES (?1, ?2, ?3)")?
            .execute(params![canary, current.revision, encode_record(current)?])?;
        transaction
            .prepare_cached(
                "DELETE FROM revisions WHERE canary = ?1 AND id <= (
                 SELECT id FROM revisions WHERE canary = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )?
            .execute(params![canary, REVISIONS_PER_CANARY])?;
    } else if let Some(id) = id
        && before.as_ref() != Some(current)
    {
        transaction
            .prepare_cached("UPDATE revisions SET body = ?1 WHERE id = ?2")?
            .execute(params![encode_record(current)?, id])?;
    }
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction, or refuses a
/// newer one without writing anything.
fn migrate(connection: &mut Connection, dir: &Path) -> Result<()> {
    let open = |source| Error::Open {
        path: dir.to_path_buf(),
        source,
    };
    let transaction = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(open)?;
    let version = read_version(&transaction).map_err(|error| match error {
        Error::Sqlite(source) => open(source),
        other => other,
    })?;
    let found = version.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(Error::TooNew {
            path: dir.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    if version.is_none() {
        transaction
            .execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version (version) VALUES (0);",
            )
            .map_err(open)?;
    }
    for (index, migration) in MIGRATIONS.iter().enumerate() {
        let to = i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1);
        if to > found {
            transaction.execute_batch(migration).map_err(open)?;
            transaction
                .execute("UPDATE schema_version SET version = ?1", [to])
                .map_err(open)?;
            tracing::info!(dir = %dir.display(), from = to - 1, to, "state store migrated");
        }
    }
    transaction.commit().map_err(open)?;
    Ok(())
}

/// The schema version, `None` for a database serin never wrote.
fn read_version(connection: &Connection) -> Result<Option<i64>> {
    let exists: Option<String> = connection
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(None);
    }
    let version: Option<i64> = connection
        .query_row("SELECT MAX(version) FROM schema_version", [], |row| {
            row.get(0)
        })
        .optional()?
        .flatten();
    Ok(Some(version.unwrap_or(0)))
}

type RawRow = (String, String, String, Option<String>, Option<String>);

fn raw_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn decode((name, state, placement, target, evidence): RawRow) -> Result<StoredCanary> {
    let corrupt = |what, source| Error::Corrupt {
        canary: name.clone(),
        what,
        source,
    };
    let state = serde_json::from_str(&state).map_err(|e| corrupt("state", e))?;
    let placement = serde_json::from_str(&placement).map_err(|e| corrupt("placement", e))?;
    let file_target = target
        .map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| corrupt("file target", e))?;
    Ok(StoredCanary {
        name,
        state,
        placement,
        file_target,
        evidence,
    })
}

fn encode(canary: &str, what: &'static str, value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|source| Error::Corrupt {
        canary: canary.to_owned(),
        what,
        source,
    })
}

fn update_at(update: &Update) -> i64 {
    let at = match update {
        Update::Record { at, .. }
        | Update::Decision { at, .. }
        | Update::State { at, .. }
        | Update::Webhook { at, .. }
        | Update::Repaired { at, .. }
        | Update::Traffic { at, .. } => *at,
    };
    i64::try_from(at.as_millis()).unwrap_or(i64::MAX)
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
