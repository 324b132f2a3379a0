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
//! - Only regular files are used, opened without blocking and checked after opening
//!   (`files.rs`): a FIFO, a device or a symbolic link at `services.json` or `services.lock`
//!   makes the operation fail at once with [`Error::UnsafeRegistry`] naming the path, instead
//!   of blocking the process for good.
//! - The folder, `services.json` and `services.lock` must belong to the current user (or root)
//!   and not be writable by group or others, as ssh demands of `~/.ssh`: otherwise another
//!   local user could plant entries that send parents to their own process. Every operation
//!   fails with [`Error::UnsafeRegistry`], whose message gives the fix (`chmod 700 <dir>`).
//!   The modes Python uses (a 0755 folder, a 0644 file) are fine.
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

mod document;
mod files;
mod lock;
mod sys;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
pub use document::ServiceEntry;
use document::{entry_pid, entry_port_text, free_port, understand, Document, NewEntry, FILE_NAME};
use lock::LOCK_NAME;
pub use sys::pid_alive;
use sys::{blocking, home_from_passwd, local_iso_now};

/// Time between two looks at the file while discovering a service.
const DISCOVER_POLL: Duration = Duration::from_millis(100);

/// The registry of named services: a folder holding `services.json` and its lock.
///
/// Cheap to clone; every operation reads the file again, so several `Registry` values (and
/// other processes, in any language) can use the same folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    dir: PathBuf,
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
        lock::locked(&self.dir, move || {
            let mut doc = Document::read(&path)?;
            if let Some(raw) = doc.get(&id) {
                if let Some(holder) = entry_pid(raw).filter(|&holder| pid_alive(holder)) {
                    return Err(Error::AlreadyRunning {
                        service: id,
                        pid: holder,
                        port: entry_port_text(raw),
                    });
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
        lock::locked(&self.dir, move || {
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
    /// the file when the file stays unparseable on two consecutive looks, or on the last look
    /// (one bad read is tolerated, in case some implementation does not replace the file
    /// atomically). A registry path that is not a private regular file fails at once
    /// ([`Error::UnsafeRegistry`]): discover never blocks on the file, whatever it is.
    pub async fn discover(&self, service_id: &str, timeout: Duration) -> Result<ServiceEntry> {
        let deadline = Instant::now() + timeout;
        let mut corrupt_before = None;
        loop {
            match self.lookup(service_id).await {
                Ok(Some(entry)) => return Ok(entry),
                Ok(None) => corrupt_before = None,
                Err(err @ Error::CorruptRegistry { .. }) => {
                    if corrupt_before.is_some() {
                        return Err(err);
                    }
                    corrupt_before = Some(err);
                }
                Err(err) => return Err(err),
            }
            let now = Instant::now();
            if now >= deadline {
                // A file still unparseable at the end says more than "not found" (with a short
                // timeout there may be no second look).
                if let Some(err) = corrupt_before {
                    return Err(err);
                }
                return Err(Error::ServiceNotFound {
                    service: service_id.to_owned(),
                    timeout,
                });
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
        lock::locked(&self.dir, move || Ok(f())).await
    }
}

#[cfg(test)]
mod tests {
    use super::document::*;
    use super::lock::*;
    use super::*;
    use serde_json::value::RawValue;
    use std::fs::File;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::SystemTime;

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
