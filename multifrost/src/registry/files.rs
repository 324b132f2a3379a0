//! Opening the registry's files without trusting what is at their paths: only regular files
//! are read (a FIFO or a device would block or never end), opens never block, and the folder
//! and its files must be private to the current user (or root), as ssh demands of `~/.ssh`.
//! Another local user who can write there could plant entries that send parents to their own
//! process.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Opens `path` read-only, never blocking (a FIFO opens at once instead of waiting for a
/// writer) and without following a final symbolic link when `follow` is false, then checks
/// that what was opened is a regular file owned by the current user or root and not writable
/// by others.
///
/// `Ok(None)` when nothing is at the path.
pub(super) fn open_private_file(path: &Path, follow: bool) -> Result<Option<(File, Metadata)>> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) && !follow => {
            return Err(unsafe_path(
                path,
                "it is a symbolic link; the registry only uses regular files: remove it",
            ))
        }
        Err(err) => return Err(Error::io(format!("opening {}", path.display()), err)),
    };
    let meta = file
        .metadata()
        .map_err(|err| Error::io(format!("reading the status of {}", path.display()), err))?;
    if !meta.file_type().is_file() {
        return Err(unsafe_path(
            path,
            &format!("it is {}, not a regular file: remove it", kind_of(&meta)),
        ));
    }
    check_private(path, &meta, false)?;
    Ok(Some((file, meta)))
}

/// Checks the registry folder when it exists: a folder, owned by the current user or root, not
/// writable by group or others.
pub(super) fn check_private_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => check_private(dir, &meta, true),
        Ok(meta) => Err(unsafe_path(
            dir,
            &format!("it is {}, not a folder: remove it", kind_of(&meta)),
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::io(
            format!("reading the status of {}", dir.display()),
            err,
        )),
    }
}

/// The ownership and mode rules shared by the folder and its files.
fn check_private(path: &Path, meta: &Metadata, is_dir: bool) -> Result<()> {
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(unsafe_path(
            path,
            &format!(
                "it is owned by uid {}, not by you (uid {me}) or root, so another user controls \
                 which processes parents connect to: remove it, or `chown {me} {}`",
                meta.uid(),
                path.display()
            ),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let who = if mode & 0o002 != 0 {
            "everyone"
        } else {
            "its group"
        };
        let fix = if is_dir { "chmod 700" } else { "chmod 600" };
        return Err(unsafe_path(
            path,
            &format!(
                "it is writable by {who} (mode {mode:04o}), so another user could plant \
                 entries that send parents to their own process: run `{fix} {}`",
                path.display()
            ),
        ));
    }
    Ok(())
}

fn unsafe_path(path: &Path, reason: &str) -> Error {
    Error::UnsafeRegistry {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    }
}

/// What a non-regular file is, for messages.
fn kind_of(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "an unknown kind of file"
    }
}
