//! What the registry asks of the operating system: pid liveness, the local time, the home
//! folder, and running blocking file work off the runtime. The registry's unsafe code is here.

use std::io;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

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
pub(super) fn is_zombie(pid: u32) -> bool {
    crate::procfs::state(pid).is_some_and(|state| state == "Z")
}

/// Runs blocking file work off the async runtime.
pub(super) async fn blocking<T, F>(f: F) -> Result<T>
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

/// The local time now, ISO 8601 without zone and with microseconds, like Python's
/// `datetime.now().isoformat()` (`2026-03-13T01:48:08.123456`).
pub(super) fn local_iso_now() -> String {
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
pub(super) fn home_from_passwd() -> Option<PathBuf> {
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
