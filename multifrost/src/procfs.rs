//! What /proc says about a process: the fields of `/proc/<pid>/stat` after its command name.

/// The fields of `/proc/<pid>/stat` after the command name (state first, then the parent pid,
/// ...), or `None` when the process cannot be seen. The command name is in parentheses and may
/// itself contain ") ": the fields follow the last one.
pub(crate) fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

/// The process's state letter (`R`, `S`, `T`, `Z`...), when it can be seen.
pub(crate) fn state(pid: u32) -> Option<String> {
    stat_fields(pid)?.into_iter().next()
}
