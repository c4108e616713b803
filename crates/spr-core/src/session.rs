//! `Sessions`: the open sessions of one engine by id, with their idle TTLs, for callers
//! (the front doors, or a Rust program) that hand sessions out by name.

use crate::engine::{Engine, EngineSession};
use crate::run::{normalize_input, PolicySource, RunError};
use spr_protocol::{session_ttl, Attachments, Json, RunnerResult, SessionError};
use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How often the background sweep looks for sessions idle past their TTL.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How long a lost session's id is kept (to answer "was lost") when its TTL is longer:
/// a lost session holds no worker, but a table of them must not grow for a day.
const LOST_TTL: Duration = Duration::from_secs(60);

/// The open sessions of an engine. Ids are random and unguessable (128 bits): for the
/// HTTP and MCP doors an id is what lets a client into a session.
///
/// A session idle for longer than its TTL is closed (by a background sweep while a
/// tokio runtime runs it, and in any case when it is next used). The cap on open
/// sessions is the engine's (`max_sessions`).
pub struct Sessions {
    engine: Arc<dyn Engine>,
    open: Mutex<HashMap<String, Arc<Entry>>>,
}

struct Entry {
    session: Box<dyn EngineSession>,
    ttl: Duration,
    last_used: Mutex<Instant>,
    /// Runs in flight: a session is never expired under one.
    busy: AtomicUsize,
}

impl Entry {
    fn expired(&self, now: Instant) -> bool {
        let ttl = if self.session.is_lost() {
            self.ttl.min(LOST_TTL)
        } else {
            self.ttl
        };
        self.busy.load(Ordering::SeqCst) == 0
            && now.duration_since(*self.last_used.lock().expect("session clock")) > ttl
    }
}

/// Counts a run in flight for as long as it lives (also when its future is dropped).
struct Busy<'a>(&'a Entry);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        *self.0.last_used.lock().expect("session clock") = Instant::now();
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Sessions {
    /// The sessions of `engine`. Inside a tokio runtime, a background task closes idle
    /// sessions as their TTLs pass (it stops when the table is dropped).
    pub fn new(engine: Arc<dyn Engine>) -> Arc<Sessions> {
        let sessions = Arc::new(Sessions {
            engine,
            open: Mutex::new(HashMap::new()),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&sessions);
            runtime.spawn(sweep(weak));
        }
        sessions
    }

    /// Open a session under `policy` (resolved now, once: a `config_path` is not re-read
    /// for later runs), closed after `ttl_seconds` idle (default
    /// [`spr_protocol::DEFAULT_SESSION_TTL_SECONDS`]). Returns its id.
    pub async fn create(
        &self,
        policy: PolicySource,
        ttl_seconds: Option<u64>,
    ) -> Result<String, RunError> {
        let ttl = Duration::from_secs(session_ttl(ttl_seconds)?);
        let policy = policy.resolve()?;
        let session = self.engine.open_session(&policy).await?;
        let id = new_id();
        let entry = Arc::new(Entry {
            session,
            ttl,
            last_used: Mutex::new(Instant::now()),
            busy: AtomicUsize::new(0),
        });
        self.table().insert(id.clone(), entry);
        Ok(id)
    }

    /// Run `code` in session `id`, with `input_data` (a JSON object or null) as the
    /// cell's input. The result carries `value`, and `session_lost` when this run lost
    /// the session.
    pub async fn run(
        &self,
        id: &str,
        code: &str,
        input_data: Option<Json>,
    ) -> Result<RunnerResult, RunError> {
        self.run_with(id, code, input_data, &Attachments::default())
            .await
    }

    /// [`Sessions::run`] with files written into the session's scratch before the cell
    /// (they stay for the session's life) and `collect` globs returned after it.
    pub async fn run_with(
        &self,
        id: &str,
        code: &str,
        input_data: Option<Json>,
        attachments: &Attachments,
    ) -> Result<RunnerResult, RunError> {
        let input = normalize_input(input_data)?;
        let entry = self.live(id).await?;
        attachments.validate(entry.session.policy())?;
        entry.busy.fetch_add(1, Ordering::SeqCst);
        let _busy = Busy(&entry);
        entry
            .session
            .run(code, &input, attachments)
            .await
            .map_err(|e| RunError::Session(e.for_session(id)))
    }

    /// Close session `id` (after its run in flight, if any).
    pub async fn close(&self, id: &str) -> Result<(), SessionError> {
        let removed = self.table().remove(id);
        let entry = removed.ok_or_else(|| SessionError::Unknown { id: id.into() })?;
        entry.session.close().await;
        Ok(())
    }

    /// Close every session (a server shutting down).
    pub async fn close_all(&self) {
        let entries: Vec<Arc<Entry>> = self.table().drain().map(|(_, e)| e).collect();
        for entry in entries {
            entry.session.close().await;
        }
    }

    /// Sessions open now (lost ones included until they are closed or expire).
    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Close the sessions idle past their TTL; returns how many.
    pub async fn expire_idle(&self) -> usize {
        let now = Instant::now();
        let expired: Vec<Arc<Entry>> = {
            let mut table = self.table();
            let ids: Vec<String> = table
                .iter()
                .filter(|(_, e)| e.expired(now))
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| table.remove(id)).collect()
        };
        for entry in &expired {
            entry.session.close().await;
        }
        expired.len()
    }

    /// The entry of a session that may run: unknown, expired and lost ones are refused.
    async fn live(&self, id: &str) -> Result<Arc<Entry>, SessionError> {
        let found = self.table().get(id).cloned();
        let entry = found.ok_or_else(|| SessionError::Unknown { id: id.into() })?;
        if entry.expired(Instant::now()) {
            let removed = self.table().remove(id);
            if let Some(entry) = removed {
                entry.session.close().await;
            }
            return Err(SessionError::Unknown { id: id.into() });
        }
        if entry.session.is_lost() {
            return Err(SessionError::Lost { id: id.into() });
        }
        Ok(entry)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        // No await and no panic under the lock: a poisoned table is still consistent.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("engine", &self.engine.name())
            .field("open", &self.len())
            .finish()
    }
}

async fn sweep(sessions: Weak<Sessions>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(sessions) = sessions.upgrade() else {
            return;
        };
        sessions.expire_idle().await;
    }
}

/// `ses_` and 32 hex digits from the kernel's random source.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("the kernel's random source can be read");
    let mut id = String::from("ses_");
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_distinct_and_shaped() {
        let a = super::new_id();
        let b = super::new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert!(a.starts_with("ses_"));
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
