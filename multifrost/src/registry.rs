//! The service registry of connect mode: `~/.multifrost/services.json`, shared with the Python,
//! Node and Go implementations on the same machine (PROTOCOL.md section 6).
//!
//! A worker started on its own registers a service id with [`Registry::register`], which picks a
//! free port on 127.0.0.1 and records `{"port", "pid", "started"}` under the id; a parent finds
//! it with [`Registry::discover`] and connects to `tcp://127.0.0.1:<port>`.
//!
//! # The file
//!
//! - `services.json` is a JSON object, service id to entry. Entries are read leniently: `started`
//!   may be any text or number, Go writes `start_time` instead, extra fields are ignored, and an
//!   entry that is not an object or lacks a usable `pid`/`port` is simply not a live service.
//! - Rewrites change only the key being registered or unregistered: every other entry is written
//!   back with exactly the text it had (nested formatting, number spelling and unknown fields
//!   included), in the same order.
//! - Writes go to a uniquely named temporary file in the same folder (never `services.tmp`,
//!   which Python uses), created with mode 0600, fsynced, then renamed over `services.json`.
//!   The folder is created with mode 0700 when it does not exist (an existing folder is left as
//!   it is).
//! - A missing file is an empty registry. A file that is not a JSON object (corrupt, truncated,
//!   empty) makes register, unregister, lookup and discover fail with an error naming the file
//!   and the parse error, and the file is never rewritten: replacing it would unregister every
//!   other service.
//! - `started` is written as local time without a zone, like Python
//!   (`2026-03-13T01:48:08.123456`, formatted with `localtime_r`).
//!
//! # The lock
//!
//! Every read-modify-write holds `services.lock`, taken the way the Python implementation takes
//! it, so that both exclude each other:
//!
//! - the file is created with `O_CREAT | O_EXCL`; then an advisory lock (`fd-lock`) is taken on
//!   the file this process created, then this process's pid is written into it;
//! - release: unlock, close, and delete the path, only if it still is the file this process
//!   created (same device and inode);
//! - while another process holds it, retry every 100 ms for up to 10 s, then fail with an error
//!   naming the lock file and the holder's pid when it is readable.
//!
//! A lock file created by another process is only ever opened read-only: it is never flocked,
//! written, or judged by an empty content (Python writes its pid just after creating the file,
//! and a process that flocks the file in that window wedges every Python process). Such a file
//! is removed as stale only when its modification time is more than 10 s old, or when it holds
//! the pid of a process that is not alive. A lock that names a live process is only broken after
//! 60 s: breaking a slow but live Python holder's lock would let its release (which deletes the
//! path unconditionally) remove ours. Rust processes serialise stale-lock removal (and
//! their own release) with an advisory lock on the registry folder itself, so that two of them
//! judging the same stale file cannot delete a fresh lock created in between. Python never
//! removes a stale lock itself; this implementation does, so a crashed Python holder does not
//! block Rust services forever.
//!
//! Reads ([`Registry::lookup`], [`Registry::discover`], [`Registry::list`]) take no lock: every
//! implementation replaces the file by an atomic rename, so a read sees a whole version.
//!
//! Liveness of a pid is checked with `kill(pid, 0)` (`EPERM` means alive) and `/proc/<pid>/stat`
//! (a zombie is dead), never by spawning a process.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// Name of the registry file inside the registry folder.
const FILE_NAME: &str = "services.json";
/// Name of the lock file inside the registry folder.
const LOCK_NAME: &str = "services.lock";
/// Time between two attempts to take the lock.
const LOCK_RETRY: Duration = Duration::from_millis(100);
/// How long to wait for the lock before failing.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// A lock file created by another process whose modification time is older than this is stale.
const STALE_AGE: Duration = Duration::from_secs(10);
/// ... unless it names a live process: then it is only broken after this much longer age (a
/// live holder is rarely this slow; a crashed one whose pid was reused must not wedge us).
/// Breaking a live Python holder's lock at 10 s would let its release delete our lock.
const LIVE_HOLDER_STALE_AGE: Duration = Duration::from_secs(60);
/// Time between two looks at the file while discovering a service.
const DISCOVER_POLL: Duration = Duration::from_millis(100);
/// How many free ports to try before accepting one that another entry also names.
const PORT_ATTEMPTS: usize = 16;

/// The registry of named services: a folder holding `services.json` and its lock.
///
/// Cheap to clone; every operation reads the file again, so several `Registry` values (and
/// other processes, in any language) can use the same folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    dir: PathBuf,
}

/// One registered service, as read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    /// The TCP port on 127.0.0.1 where the service's ROUTER listens.
    pub port: u16,
    /// The pid of the process that registered the service.
    pub pid: u32,
    /// When the service started, as written by its implementation: `started` (any text, or a
    /// number rendered as text), or Go's `start_time`. `None` when neither is present.
    pub started: Option<String>,
}

impl Registry {
    /// The registry every implementation uses: `$HOME/.multifrost` (`HOME` is honoured, so
    /// tests can isolate it; when it is unset or empty, the home folder of the current user
    /// from the password database).
    pub fn default_location() -> Result<Registry> {
        let home = match std::env::var_os("HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home),
            _ => home_from_passwd().ok_or_else(|| {
                Error::Registry(
                    "cannot locate ~/.multifrost/services.json: HOME is not set and the current \
                     user has no home folder"
                        .into(),
                )
            })?,
        };
        Ok(Registry::at(home.join(".multifrost")))
    }

    /// A registry kept in `dir` (which holds `services.json` and `services.lock`), for tests
    /// and tools. Nothing is created until a registration.
    pub fn at(dir: impl Into<PathBuf>) -> Registry {
        Registry { dir: dir.into() }
    }

    /// The registry folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The registry file, `<dir>/services.json`.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The lock file, `<dir>/services.lock`.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK_NAME)
    }

    /// Registers `service_id` for the process `pid` on a free port of 127.0.0.1, and returns
    /// the port.
    ///
    /// Under the lock: if the id is held by a live process, fails with
    /// `Service '<id>' already running (PID: <pid>, port: <port>)` and leaves the file as it
    /// was; an entry whose process is dead (or that cannot be understood) is taken over. The
    /// port is one the system just gave for 127.0.0.1 and, when possible, one no other entry
    /// names. The new entry replaces the old one whole (its extra fields are not kept); every
    /// other entry is kept as it was.
    pub async fn register(&self, service_id: &str, pid: u32) -> Result<u16> {
        self.register_inner(service_id, pid, None).await
    }

    /// Like [`register`](Self::register), with a port chosen by the caller.
    pub async fn register_port(&self, service_id: &str, pid: u32, port: u16) -> Result<()> {
        if port == 0 {
            return Err(Error::Registry(format!(
                "cannot register '{service_id}' in {}: port 0 is not a port a parent can \
                 connect to",
                self.path().display()
            )));
        }
        self.register_inner(service_id, pid, Some(port))
            .await
            .map(|_| ())
    }

    async fn register_inner(&self, service_id: &str, pid: u32, port: Option<u16>) -> Result<u16> {
        let path = self.path();
        let id = service_id.to_owned();
        self.locked(move || {
            let mut doc = Document::read(&path)?;
            if let Some(raw) = doc.get(&id) {
                if let Some(holder) = entry_pid(raw).filter(|&holder| pid_alive(holder)) {
                    return Err(Error::Registry(format!(
                        "Service '{id}' already running (PID: {holder}, port: {})",
                        entry_port_text(raw)
                    )));
                }
            }
            let port = match port {
                Some(port) => port,
                None => free_port(&doc, &id)?,
            };
            let entry = NewEntry {
                port,
                pid,
                started: local_iso_now(),
            };
            doc.set(&id, entry.to_raw()?);
            doc.write(&path)?;
            Ok(port)
        })
        .await
    }

    /// Removes `service_id` if its entry belongs to `pid`; returns whether it was removed.
    ///
    /// An entry of another process (a restarted service, say) is left alone, as is the file.
    /// A missing file or id is `Ok(false)`.
    pub async fn unregister(&self, service_id: &str, pid: u32) -> Result<bool> {
        let path = self.path();
        let id = service_id.to_owned();
        self.locked(move || {
            let mut doc = Document::read(&path)?;
            match doc.get(&id) {
                Some(raw) if entry_pid(raw) == Some(pid) => {
                    doc.remove(&id);
                    doc.write(&path)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
        .await
    }

    /// Reads the file once: the entry of `service_id` if it exists, can be understood, and its
    /// process is alive.
    pub async fn lookup(&self, service_id: &str) -> Result<Option<ServiceEntry>> {
        let path = self.path();
        let id = service_id.to_owned();
        let doc = blocking(move || Document::read(&path)).await?;
        Ok(doc
            .get(&id)
            .and_then(understand)
            .filter(|entry| pid_alive(entry.pid)))
    }

    /// Waits until `service_id` has a live entry, looking every 100 ms, for up to `timeout`.
    ///
    /// Fails with `Service '<id>' not found within <t>s` (`<t>` in seconds, written like Python
    /// writes a float: `5.0`, `0.5`) when it does not appear in time, and with an error naming
    /// the file when the file stays unparseable on two consecutive looks (one bad read is
    /// tolerated, in case some implementation does not replace the file atomically).
    pub async fn discover(&self, service_id: &str, timeout: Duration) -> Result<ServiceEntry> {
        let deadline = Instant::now() + timeout;
        let mut corrupt_before = false;
        loop {
            match self.lookup(service_id).await {
                Ok(Some(entry)) => return Ok(entry),
                Ok(None) => corrupt_before = false,
                Err(err @ Error::Registry(_)) => {
                    if corrupt_before {
                        return Err(err);
                    }
                    corrupt_before = true;
                }
                Err(err) => return Err(err),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Registry(format!(
                    "Service '{service_id}' not found within {:?}s",
                    timeout.as_secs_f64()
                )));
            }
            tokio::time::sleep(DISCOVER_POLL.min(deadline - now)).await;
        }
    }

    /// Every entry that can be understood, in file order, with whether its process is alive
    /// (for `multifrost services`). Entries that are not objects or lack a usable pid or port
    /// are left out; when an id appears twice in the file, the last one counts (as for every
    /// JSON reader).
    pub async fn list(&self) -> Result<Vec<(String, ServiceEntry, bool)>> {
        let path = self.path();
        let doc = blocking(move || Document::read(&path)).await?;
        let mut out = Vec::new();
        for (index, (id, _)) in doc.entries.iter().enumerate() {
            let last = doc.entries[index + 1..]
                .iter()
                .all(|(later, _)| later != id);
            if !last {
                continue;
            }
            if let Some(entry) = doc.get(id).and_then(understand) {
                let alive = pid_alive(entry.pid);
                out.push((id.clone(), entry, alive));
            }
        }
        Ok(out)
    }

    /// Runs the blocking closure `f` while holding the registry lock (taken and released as
    /// described in the [module documentation](self)), and returns its result.
    ///
    /// For tools and tests that need to hold the lock; `f` runs on a blocking thread.
    pub async fn with_lock<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.locked(move || Ok(f())).await
    }

    /// Takes the lock (retrying every 100 ms without blocking the runtime), runs `work` on a
    /// blocking thread, releases the lock.
    async fn locked<T, F>(&self, work: F) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let deadline = Instant::now() + LOCK_WAIT;
        let mut work = work;
        let mut holder = None;
        loop {
            let dir = self.dir.clone();
            match blocking(move || attempt(&dir, work)).await? {
                Attempt::Done(result) => return result,
                Attempt::Busy {
                    work: returned,
                    holder: seen,
                    removed_stale,
                } => {
                    work = returned;
                    holder = seen.or(holder);
                    if Instant::now() >= deadline {
                        let lock = self.lock_path();
                        let who = match holder {
                            Some(pid) => format!("held by PID {pid}"),
                            None => "its holder's pid is not readable".to_owned(),
                        };
                        return Err(Error::Registry(format!(
                            "could not acquire the registry lock {} within {}s ({who}); if no \
                             process is using the registry, delete that file",
                            lock.display(),
                            LOCK_WAIT.as_secs()
                        )));
                    }
                    if !removed_stale {
                        tokio::time::sleep(LOCK_RETRY).await;
                    }
                }
            }
        }
    }
}

/// Whether the process `pid` exists and is not a zombie, without spawning anything:
/// `kill(pid, 0)` (where `EPERM`, a process of another user, means alive), then the state in
/// `/proc/<pid>/stat` when it is readable. Pid 0 and pids beyond `pid_t` are never alive.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let exists = unsafe { libc::kill(raw, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

/// True when `/proc/<pid>/stat` says the process is a zombie (it will never serve again).
fn is_zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name is in parentheses and may itself contain ") ": the state follows the
    // last one.
    stat.rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next())
        .is_some_and(|state| state == "Z")
}

/// Runs blocking file work off the async runtime.
async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(Error::Registry(format!("registry task cancelled: {err}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// The lock.
// ---------------------------------------------------------------------------------------------

/// The outcome of one attempt at the lock.
enum Attempt<F, T> {
    /// The lock was taken, the work ran, the lock was released.
    Done(Result<T>),
    /// Another process holds the lock: the work is handed back for the next attempt.
    Busy {
        work: F,
        /// The holder's pid, when its lock file holds one.
        holder: Option<u32>,
        /// A stale lock file was just removed: try again at once.
        removed_stale: bool,
    },
}

/// One attempt: create the lock file exclusively; on success run `work` under it.
fn attempt<T, F>(dir: &Path, work: F) -> Result<Attempt<F, T>>
where
    F: FnOnce() -> Result<T>,
{
    create_dir(dir)?;
    let lock_path = dir.join(LOCK_NAME);
    let file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&lock_path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            let (holder, removed_stale) = judge_foreign_lock(dir, &lock_path)?;
            return Ok(Attempt::Busy {
                work,
                holder,
                removed_stale,
            });
        }
        Err(err) => {
            return Err(Error::io(
                format!("creating the registry lock {}", lock_path.display()),
                err,
            ))
        }
    };
    let meta = file.metadata().map_err(|err| {
        Error::io(
            format!("reading the registry lock {}", lock_path.display()),
            err,
        )
    })?;
    // Declared first so that it is dropped last (also when `work` panics): the file is
    // unlocked and closed before its path is removed.
    let _owned = OwnedLockFile {
        dir: dir.to_path_buf(),
        path: lock_path.clone(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    let mut lock = fd_lock::RwLock::new(file);
    let mut guard = match lock.try_write() {
        Ok(guard) => guard,
        // Someone flocked the file we just created (Python never does: it only flocks its
        // own). Give up this attempt; our file is removed on the way out.
        Err(_) => {
            return Ok(Attempt::Busy {
                work,
                holder: None,
                removed_stale: false,
            })
        }
    };
    guard
        .write_all(std::process::id().to_string().as_bytes())
        .map_err(|err| {
            Error::io(
                format!("writing the registry lock {}", lock_path.display()),
                err,
            )
        })?;
    let result = work();
    drop(guard);
    drop(lock);
    Ok(Attempt::Done(result))
}

/// The lock file this process created; dropping it removes the path if it is still that file.
struct OwnedLockFile {
    dir: PathBuf,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for OwnedLockFile {
    fn drop(&mut self) {
        // Serialised with the stale-lock removal of other Rust processes.
        let _breaker = DirLock::take(&self.dir);
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => {
                if let Err(err) = std::fs::remove_file(&self.path) {
                    tracing::warn!(
                        "cannot remove the registry lock {}: {err}",
                        self.path.display()
                    );
                }
            }
            Ok(_) => tracing::warn!(
                "the registry lock {} was replaced while this process held it; left in place",
                self.path.display()
            ),
            Err(_) => tracing::warn!(
                "the registry lock {} was removed while this process held it",
                self.path.display()
            ),
        }
    }
}

/// An advisory lock (`flock`) on the registry folder itself, taken by Rust processes around the
/// removal of a lock file (stale or their own). Python never locks the folder, so this cannot
/// disturb it. Best effort: when the folder cannot be locked, removal goes ahead unserialised.
/// Released when dropped (closing the only descriptor releases the flock).
struct DirLock {
    _dir: Option<File>,
}

impl DirLock {
    fn take(dir: &Path) -> DirLock {
        use std::os::fd::AsRawFd;

        let Ok(file) = File::open(dir) else {
            return DirLock { _dir: None };
        };
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return DirLock { _dir: Some(file) };
            }
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return DirLock { _dir: None };
            }
        }
    }
}

/// Looks at a lock file another process created: read-only, never locked nor written.
/// Removes it when it is stale. Returns the holder's pid if the file holds one, and whether the
/// file was removed.
fn judge_foreign_lock(dir: &Path, lock_path: &Path) -> Result<(Option<u32>, bool)> {
    let _breaker = DirLock::take(dir);
    // Judged again under the folder lock: the file may have been replaced since our attempt.
    let mut file = match File::open(lock_path) {
        Ok(file) => file,
        // Released in the meantime: try again at once.
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((None, true)),
        Err(err) => {
            return Err(Error::io(
                format!("reading the registry lock {}", lock_path.display()),
                err,
            ))
        }
    };
    let context = || format!("reading the registry lock {}", lock_path.display());
    let meta = file.metadata().map_err(|err| Error::io(context(), err))?;
    let mut content = Vec::new();
    (&mut file)
        .take(64)
        .read_to_end(&mut content)
        .map_err(|err| Error::io(context(), err))?;
    drop(file);
    let holder = parse_pid(&content);
    let age = meta
        .modified()
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok());
    let holder_dead = holder.is_some_and(|pid| !pid_alive(pid));
    let holder_alive = holder.is_some() && !holder_dead;
    let stale_age = if holder_alive {
        LIVE_HOLDER_STALE_AGE
    } else {
        STALE_AGE
    };
    let too_old = age.is_some_and(|age| age > stale_age);
    if !(too_old || holder_dead) {
        return Ok((holder, false));
    }
    match std::fs::symlink_metadata(lock_path) {
        Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => {}
        // Replaced or removed since we judged it: judge again at once.
        _ => return Ok((holder, true)),
    }
    match std::fs::remove_file(lock_path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(Error::io(
                format!("removing the stale registry lock {}", lock_path.display()),
                err,
            ))
        }
    }
    let why = if holder_dead {
        format!("its holder (PID {}) is not alive", holder.unwrap_or(0))
    } else {
        format!("it is older than {}s", stale_age.as_secs())
    };
    tracing::warn!(
        "removed the stale registry lock {}: {why}",
        lock_path.display()
    );
    Ok((holder, true))
}

/// The pid in a lock file's content: decimal digits, surrounding whitespace allowed.
fn parse_pid(content: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(content).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>().ok().filter(|&pid| pid > 0)
}

/// Creates the registry folder (mode 0700) if needed.
fn create_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| {
            Error::io(
                format!("creating the registry folder {}", dir.display()),
                err,
            )
        })
}

// ---------------------------------------------------------------------------------------------
// The file.
// ---------------------------------------------------------------------------------------------

/// `services.json` as read: each entry with its exact text, in file order.
#[derive(Debug, Default)]
struct Document {
    entries: Vec<(String, Box<RawValue>)>,
}

impl Document {
    /// Reads and parses the file; a missing file is an empty registry.
    fn read(path: &Path) -> Result<Document> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Document::default()),
            Err(err) => {
                return Err(Error::io(
                    format!("reading the service registry {}", path.display()),
                    err,
                ))
            }
        };
        Document::parse(&text).map_err(|err| {
            Error::Registry(format!(
                "{} is not a valid registry (a JSON object of services): {err}; the file was \
                 left untouched, fix or delete it",
                path.display()
            ))
        })
    }

    fn parse(text: &[u8]) -> std::result::Result<Document, serde_json::Error> {
        let entries: Entries = serde_json::from_slice(text)?;
        Ok(Document { entries: entries.0 })
    }

    /// The entry of `id` (the last one, if the id appears twice).
    fn get(&self, id: &str) -> Option<&RawValue> {
        self.entries
            .iter()
            .rev()
            .find(|(key, _)| key == id)
            .map(|(_, raw)| &**raw)
    }

    /// Sets the entry of `id`, in place of its first occurrence (dropping later duplicates),
    /// or at the end.
    fn set(&mut self, id: &str, raw: Box<RawValue>) {
        match self.entries.iter().position(|(key, _)| key == id) {
            Some(first) => {
                self.entries[first].1 = raw;
                let mut index = 0;
                self.entries.retain(|(key, _)| {
                    let keep = index <= first || key != id;
                    index += 1;
                    keep
                });
            }
            None => self.entries.push((id.to_owned(), raw)),
        }
    }

    /// Removes every occurrence of `id`.
    fn remove(&mut self, id: &str) {
        self.entries.retain(|(key, _)| key != id);
    }

    /// The text written: Python's layout (`indent=2`), other entries verbatim.
    fn render(&self) -> String {
        if self.entries.is_empty() {
            return "{}\n".to_owned();
        }
        let mut out = String::from("{\n");
        for (index, (key, raw)) in self.entries.iter().enumerate() {
            if index > 0 {
                out.push_str(",\n");
            }
            out.push_str("  ");
            out.push_str(&serde_json::to_string(key).expect("a string serialises"));
            out.push_str(": ");
            out.push_str(raw.get());
        }
        out.push_str("\n}\n");
        out
    }

    /// Writes the file: a unique temporary file (0600) in the same folder, fsync, rename.
    fn write(&self, path: &Path) -> Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = dir.join(format!(
            ".{FILE_NAME}.{}.{}.{nanos}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let context = || format!("writing the service registry {}", path.display());
        let result = (|| -> io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(self.render().as_bytes())?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, path)
        })();
        if let Err(err) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(context(), err));
        }
        // Make the rename durable too; a failure here does not undo the write.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// The top-level object, entry by entry, keeping each value's text.
struct Entries(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct EntriesVisitor;

        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// An entry as this implementation writes it (field order as Python's).
#[derive(Serialize)]
struct NewEntry {
    port: u16,
    pid: u32,
    started: String,
}

impl NewEntry {
    /// The entry's text, indented to sit at the first level of the file.
    fn to_raw(&self) -> Result<Box<RawValue>> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|err| Error::Registry(format!("cannot encode a registry entry: {err}")))?
            .replace('\n', "\n  ");
        RawValue::from_string(text)
            .map_err(|err| Error::Registry(format!("cannot encode a registry entry: {err}")))
    }
}

/// Reads an entry leniently; `None` when it is not an object or lacks a usable pid or port.
fn understand(raw: &RawValue) -> Option<ServiceEntry> {
    let value: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
    let object = value.as_object()?;
    let pid = object.get("pid").and_then(as_u32)?;
    let port = object
        .get("port")
        .and_then(as_u32)
        .and_then(|port| u16::try_from(port).ok())
        .filter(|&port| port != 0)?;
    let started = ["started", "start_time"]
        .iter()
        .find_map(|key| match object.get(*key)? {
            serde_json::Value::String(text) => Some(text.clone()),
            serde_json::Value::Number(number) => Some(number.to_string()),
            _ => None,
        });
    Some(ServiceEntry { port, pid, started })
}

/// The pid of an entry, even when the rest of it cannot be understood (for the
/// already-running check, like Python's, which looks at the pid only).
fn entry_pid(raw: &RawValue) -> Option<u32> {
    let value: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
    value.get("pid").and_then(as_u32)
}

/// The port of an entry as text, for the already-running message.
fn entry_port_text(raw: &RawValue) -> String {
    serde_json::from_str::<serde_json::Value>(raw.get())
        .ok()
        .and_then(|value| {
            value.get("port").map(|port| match port {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            })
        })
        .unwrap_or_else(|| "None".to_owned())
}

/// A non-negative integer that fits in u32; a float holding an exact integer is accepted
/// (JavaScript writes numbers that way).
fn as_u32(value: &serde_json::Value) -> Option<u32> {
    let number = value.as_number()?;
    if let Some(int) = number.as_u64() {
        return u32::try_from(int).ok();
    }
    let float = number.as_f64()?;
    (float.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&float)).then_some(float as u32)
}

/// A free port on 127.0.0.1, preferring one that no other entry of the file names (a service
/// may have registered and not bound yet).
fn free_port(doc: &Document, id: &str) -> Result<u16> {
    let taken: Vec<u16> = doc
        .entries
        .iter()
        .filter(|(key, _)| key != id)
        .filter_map(|(_, raw)| understand(raw))
        .map(|entry| entry.port)
        .collect();
    let mut port = 0;
    for _ in 0..PORT_ATTEMPTS {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(|err| Error::io("choosing a free port on 127.0.0.1", err))?;
        port = listener
            .local_addr()
            .map_err(|err| Error::io("choosing a free port on 127.0.0.1", err))?
            .port();
        if !taken.contains(&port) {
            break;
        }
    }
    Ok(port)
}

/// The local time now, ISO 8601 without zone and with microseconds, like Python's
/// `datetime.now().isoformat()` (`2026-03-13T01:48:08.123456`).
fn local_iso_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let Ok(secs) = libc::time_t::try_from(now.as_secs()) else {
        return now.as_secs().to_string();
    };
    // SAFETY: `tm` is plain data; localtime_r writes into it and is thread-safe.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return now.as_secs().to_string();
    }
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_micros()
    )
}

/// The current user's home folder from the password database.
fn home_from_passwd() -> Option<PathBuf> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;

    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: passwd is plain data; getpwuid_r fills it with pointers into `buf`, which
    // outlives their use below.
    let mut passwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwuid_r(
            libc::getuid(),
            &mut passwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || passwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: pw_dir points to a NUL-terminated string inside `buf`.
    let dir = unsafe { CStr::from_ptr(passwd.pw_dir) };
    let dir = std::ffi::OsStr::from_bytes(dir.to_bytes());
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "multifrost-registry-unit-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn understands_what_other_languages_write() {
        let python = raw(r#"{"port": 5555, "pid": 12, "started": "2026-03-13T01:48:08.123456"}"#);
        assert_eq!(
            understand(&python),
            Some(ServiceEntry {
                port: 5555,
                pid: 12,
                started: Some("2026-03-13T01:48:08.123456".into())
            })
        );
        let old_rust = raw(r#"{"port": 1, "pid": 2, "started": 1763800000}"#);
        assert_eq!(
            understand(&old_rust).unwrap().started.as_deref(),
            Some("1763800000")
        );
        let go = raw(r#"{"port": 1, "pid": 2, "start_time": "2026-03-13T01:48:08Z", "x": [1]}"#);
        assert_eq!(
            understand(&go).unwrap().started.as_deref(),
            Some("2026-03-13T01:48:08Z")
        );
        let node = raw(r#"{"port": 7000.0, "pid": 3.0}"#);
        assert_eq!(
            understand(&node),
            Some(ServiceEntry {
                port: 7000,
                pid: 3,
                started: None
            })
        );
        for bad in [
            "42",
            "null",
            r#""text""#,
            r#"{"port": 1}"#,
            r#"{"pid": 1}"#,
            r#"{"port": 0, "pid": 1}"#,
            r#"{"port": 70000, "pid": 1}"#,
            r#"{"port": 1, "pid": -4}"#,
            r#"{"port": 1, "pid": 1.5}"#,
            r#"{"port": "1", "pid": 1}"#,
        ] {
            assert_eq!(understand(&raw(bad)), None, "{bad}");
        }
    }

    #[test]
    fn rewrites_keep_other_entries_verbatim() {
        let text = "{\n  \"a\": {\n    \"port\": 1, \"pid\": 2,  \"extra\": [1.50, 1e3, {\"z\": null}]\n  },\n  \"weird\": 42,\n  \"b\": {\"port\": 3, \"pid\": 4, \"start_time\": 17}\n}";
        let mut doc = Document::parse(text.as_bytes()).unwrap();
        doc.set(
            "c",
            NewEntry {
                port: 9,
                pid: 8,
                started: "now".into(),
            }
            .to_raw()
            .unwrap(),
        );
        doc.remove("b");
        let out = doc.render();
        assert!(out.contains(
            "\"a\": {\n    \"port\": 1, \"pid\": 2,  \"extra\": [1.50, 1e3, {\"z\": null}]\n  }"
        ));
        assert!(out.contains("\"weird\": 42"));
        assert!(!out.contains("\"b\""));
        assert!(out.contains(
            "\"c\": {\n    \"port\": 9,\n    \"pid\": 8,\n    \"started\": \"now\"\n  }"
        ));
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["c"]["port"], 9);
        assert_eq!(Document::parse(b"{}").unwrap().render(), "{}\n");
    }

    #[test]
    fn duplicate_ids_last_one_counts_and_set_replaces_all() {
        let mut doc =
            Document::parse(br#"{"a": {"port": 1, "pid": 1}, "b": 1, "a": {"port": 2, "pid": 1}}"#)
                .unwrap();
        assert_eq!(understand(doc.get("a").unwrap()).unwrap().port, 2);
        doc.set("a", raw("3"));
        assert_eq!(doc.entries.len(), 2);
        assert_eq!(doc.entries[0].0, "a");
        assert_eq!(doc.entries[0].1.get(), "3");
    }

    #[test]
    fn corrupt_files_are_rejected() {
        for bad in [
            "",
            "   ",
            "[]",
            "null",
            "{\"a\": {\"port\": 1",
            "{} x",
            "{\"a\": 1,}",
        ] {
            assert!(Document::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pids() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
        assert!(pid_alive(1), "init exists (EPERM counts as alive)");
        assert_eq!(parse_pid(b"123"), Some(123));
        assert_eq!(parse_pid(b" 123\n"), Some(123));
        assert_eq!(parse_pid(b""), None);
        assert_eq!(parse_pid(b"0"), None);
        assert_eq!(parse_pid(b"-1"), None);
        assert_eq!(parse_pid(b"12a"), None);
    }

    #[test]
    fn started_looks_like_python_isoformat() {
        let text = local_iso_now();
        let bytes = text.as_bytes();
        assert_eq!(bytes.len(), 26, "{text}");
        for (i, b) in bytes.iter().enumerate() {
            match i {
                4 | 7 => assert_eq!(*b, b'-'),
                10 => assert_eq!(*b, b'T'),
                13 | 16 => assert_eq!(*b, b':'),
                19 => assert_eq!(*b, b'.'),
                _ => assert!(b.is_ascii_digit(), "{text}"),
            }
        }
    }

    #[test]
    fn foreign_lock_files_are_judged_without_touching_them() {
        let dir = TempDir::new("judge");
        let lock = dir.0.join(LOCK_NAME);
        // Empty and young: Python between creation and writing its pid. Not stale.
        std::fs::write(&lock, b"").unwrap();
        assert_eq!(judge_foreign_lock(&dir.0, &lock).unwrap(), (None, false));
        assert!(lock.exists());
        // A live pid: not stale.
        std::fs::write(&lock, std::process::id().to_string()).unwrap();
        assert_eq!(
            judge_foreign_lock(&dir.0, &lock).unwrap(),
            (Some(std::process::id()), false)
        );
        assert!(lock.exists());
        // A live pid, 30 s old: still not stale (a live holder gets 60 s).
        File::options()
            .write(true)
            .open(&lock)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(30))
            .unwrap();
        assert_eq!(
            judge_foreign_lock(&dir.0, &lock).unwrap(),
            (Some(std::process::id()), false)
        );
        // Garbage: only the age rule applies.
        std::fs::write(&lock, b"not a pid").unwrap();
        assert_eq!(judge_foreign_lock(&dir.0, &lock).unwrap(), (None, false));
        // Old: stale.
        let old = SystemTime::now() - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&lock)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(judge_foreign_lock(&dir.0, &lock).unwrap(), (None, true));
        assert!(!lock.exists());
        // Gone: try again at once.
        assert_eq!(judge_foreign_lock(&dir.0, &lock).unwrap(), (None, true));
    }

    #[tokio::test]
    async fn register_lookup_unregister() {
        let dir = TempDir::new("cycle");
        let registry = Registry::at(dir.0.join("nested/.multifrost"));
        assert_eq!(registry.lookup("svc").await.unwrap(), None);
        assert!(registry.list().await.unwrap().is_empty());
        let me = std::process::id();
        let port = registry.register("svc", me).await.unwrap();
        let entry = registry.lookup("svc").await.unwrap().unwrap();
        assert_eq!((entry.port, entry.pid), (port, me));
        assert!(entry.started.is_some());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(registry.dir()), 0o700);
        assert_eq!(mode(&registry.path()), 0o600);
        assert!(!registry.lock_path().exists());
        let err = registry.register("svc", me).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("service registry: Service 'svc' already running (PID: {me}, port: {port})")
        );
        assert_eq!(
            registry
                .discover("svc", Duration::from_secs(1))
                .await
                .unwrap(),
            entry
        );
        assert!(!registry.unregister("svc", me + 1).await.unwrap());
        assert!(registry.unregister("svc", me).await.unwrap());
        assert!(!registry.unregister("svc", me).await.unwrap());
        let err = registry
            .discover("svc", Duration::from_millis(250))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "service registry: Service 'svc' not found within 0.25s"
        );
        assert_eq!(std::fs::read_to_string(registry.path()).unwrap(), "{}\n");
        // A port given by the caller.
        registry.register_port("fixed", me, 4242).await.unwrap();
        assert_eq!(registry.lookup("fixed").await.unwrap().unwrap().port, 4242);
        assert!(registry.register_port("zero", me, 0).await.is_err());
    }

    #[tokio::test]
    async fn a_corrupt_file_is_reported_and_left_alone() {
        let dir = TempDir::new("corrupt");
        let registry = Registry::at(&dir.0);
        let text = b"{\"other\": {\"port\": 1, \"pid\": 1";
        std::fs::write(registry.path(), text).unwrap();
        let err = registry.register("svc", 1).await.unwrap_err().to_string();
        assert!(
            err.contains(&registry.path().display().to_string()),
            "{err}"
        );
        assert!(registry.unregister("other", 1).await.is_err());
        assert!(registry.lookup("other").await.is_err());
        assert!(registry
            .discover("other", Duration::from_secs(2))
            .await
            .is_err());
        assert_eq!(std::fs::read(registry.path()).unwrap(), text);
        assert!(!registry.lock_path().exists());
    }

    #[tokio::test]
    async fn home_is_honoured() {
        // Only reads the environment: HOME is set in any test environment.
        let registry = Registry::default_location().unwrap();
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            assert_eq!(
                registry.path(),
                Path::new(&home).join(".multifrost/services.json")
            );
        }
    }
}
