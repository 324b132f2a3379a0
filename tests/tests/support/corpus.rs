//! The fuzz corpus on disk: fuzz/seeds/ and fuzz/regressions/, replayed by the hostile tests.

use std::path::{Path, PathBuf};

use crate::support;

/// Every file under `dir`, recursively, sorted, hidden files left out.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else if path
            .file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The seed corpus (fuzz/seeds/) as byte strings.
pub fn seeds() -> Vec<Vec<u8>> {
    files_under(&support::repo().join("fuzz/seeds"))
        .iter()
        .map(|path| std::fs::read(path).expect("reading a seed"))
        .collect()
}
