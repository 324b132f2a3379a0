//! The `services.lock` protocol, as the Python implementation takes the lock (PROTOCOL.md
//! section 6), with the stale-lock recovery described in the [registry docs](super).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::files::{check_private_dir, open_private_file};
use super::sys::{blocking, pid_alive};
use crate::error::{Error, Result};

/// Name of the lock file inside the registry folder.
pub(super) const LOCK_NAME: &str = "services.lock";
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
/// How long to wait for the folder lock that serialises lock-file removal.
const DIR_LOCK_WAIT: Duration = Duration::from_secs(2);
/// Time between two attempts at the folder lock.
const DIR_LOCK_RETRY: Duration = Duration::from_millis(10);

/// Takes the lock (retrying every 100 ms without blocking the runtime), runs `work` on a
/// blocking thread, releases the lock.
pub(super) async fn locked<T, F>(dir: &Path, work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let deadline = Instant::now() + LOCK_WAIT;
    let mut work = work;
    let mut holder = None;
    loop {
        let attempt_dir = dir.to_path_buf();
        match blocking(move || attempt(&attempt_dir, work)).await? {
            Attempt::Done(result) => return result,
            Attempt::Busy {
                work: returned,
                holder: seen,
                removed_stale,
            } => {
                work = returned;
                holder = seen.or(holder);
                if Instant::now() >= deadline {
                    return Err(Error::RegistryLocked {
                        lock: dir.join(LOCK_NAME),
                        holder,
                        waited: LOCK_WAIT,
                    });
                }
                if !removed_stale {
                    tokio::time::sleep(LOCK_RETRY).await;
                }
            }
        }
    }
}

/// The outcome of one attempt at the lock.
pub(super) enum Attempt<F, T> {
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
pub(super) fn attempt<T, F>(dir: &Path, work: F) -> Result<Attempt<F, T>>
where
    F: FnOnce() -> Result<T>,
{
    create_dir(dir)?;
    check_private_dir(dir)?;
    let lock_path = dir.join(LOCK_NAME);
    let file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
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
pub(super) struct OwnedLockFile {
    dir: PathBuf,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for OwnedLockFile {
    fn drop(&mut self) {
        // Serialised with the stale-lock removal of other Rust processes.
        with_dir_lock(&self.dir, || self.remove_if_ours());
    }
}

impl OwnedLockFile {
    fn remove_if_ours(&self) {
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

/// Runs `f` holding an advisory lock (`flock`, through `fd-lock`) on the registry folder
/// itself: Rust processes take it around the removal of a lock file (stale or their own).
/// Python never locks the folder, so this cannot disturb it. Best effort and bounded: when the
/// folder cannot be locked within [`DIR_LOCK_WAIT`] (another process holds it and does not let
/// go), `f` runs unserialised, with a warning, rather than hang.
pub(super) fn with_dir_lock<T>(dir: &Path, f: impl FnOnce() -> T) -> T {
    let _held = lock_dir(dir);
    f()
}

/// The registry folder, opened and flocked; the flock lasts as long as the returned value (it
/// belongs to the descriptor, which the value closes when dropped). `None` when it cannot be
/// had within [`DIR_LOCK_WAIT`].
pub(super) fn lock_dir(dir: &Path) -> Option<fd_lock::RwLock<File>> {
    let deadline = Instant::now() + DIR_LOCK_WAIT;
    // Opened without blocking, and only if it is a folder.
    let folder = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(dir)
        .ok()?;
    let mut lock = fd_lock::RwLock::new(folder);
    loop {
        // Dropping the guard would unlock at once: forgotten, the lock is released by closing.
        match lock.try_write().map(std::mem::forget) {
            Ok(()) => return Some(lock),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(DIR_LOCK_RETRY);
            }
            Err(err) => {
                tracing::warn!(
                    "could not lock the registry folder {} ({err}); going on without it",
                    dir.display()
                );
                return None;
            }
        }
    }
}

/// Looks at a lock file another process created: read-only, never locked nor written.
/// Removes it when it is stale. Returns the holder's pid if the file holds one, and whether the
/// file was removed.
pub(super) fn judge_foreign_lock(dir: &Path, lock_path: &Path) -> Result<(Option<u32>, bool)> {
    with_dir_lock(dir, || judge_locked(lock_path))
}

/// [`judge_foreign_lock`], under the folder lock.
pub(super) fn judge_locked(lock_path: &Path) -> Result<(Option<u32>, bool)> {
    // Judged again under the folder lock: the file may have been replaced since our attempt.
    // Opened without blocking and refused unless it is a private regular file: a FIFO here
    // would otherwise block this open for good.
    let Some((mut file, meta)) = open_private_file(lock_path, false)? else {
        // Released in the meantime: try again at once.
        return Ok((None, true));
    };
    let context = || format!("reading the registry lock {}", lock_path.display());
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
pub(super) fn parse_pid(content: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(content).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>().ok().filter(|&pid| pid > 0)
}

/// Creates the registry folder (mode 0700) if needed.
pub(super) fn create_dir(dir: &Path) -> Result<()> {
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
