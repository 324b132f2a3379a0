//! `services.json`, kept verbatim: entries read leniently, and rewrites that change only the
//! entry being registered or unregistered.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::files::{check_private_dir, open_private_file};
use crate::error::{Error, Result};

/// Name of the registry file inside the registry folder.
pub(super) const FILE_NAME: &str = "services.json";

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

/// How many free ports to try before accepting one that another entry also names.
const PORT_ATTEMPTS: usize = 16;

/// `services.json` as read: each entry with its exact text, in file order.
#[derive(Debug, Default)]
pub(super) struct Document {
    pub(super) entries: Vec<(String, Box<RawValue>)>,
}

impl Document {
    /// Reads and parses the file; a missing file is an empty registry.
    ///
    /// The folder and the file must be private ([`files`](super::files)), and the file a
    /// regular file: anything else is refused before a byte is read, so that a FIFO or a
    /// device at the path cannot block the caller.
    pub(super) fn read(path: &Path) -> Result<Document> {
        if let Some(dir) = path.parent() {
            check_private_dir(dir)?;
        }
        let Some((mut file, _)) = open_private_file(path, false)? else {
            return Ok(Document::default());
        };
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(|err| {
            Error::io(
                format!("reading the service registry {}", path.display()),
                err,
            )
        })?;
        Document::parse(&text).map_err(|err| Error::CorruptRegistry {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })
    }

    pub(super) fn parse(text: &[u8]) -> std::result::Result<Document, serde_json::Error> {
        let entries: Entries = serde_json::from_slice(text)?;
        Ok(Document { entries: entries.0 })
    }

    /// The entry of `id` (the last one, if the id appears twice).
    pub(super) fn get(&self, id: &str) -> Option<&RawValue> {
        self.entries
            .iter()
            .rev()
            .find(|(key, _)| key == id)
            .map(|(_, raw)| &**raw)
    }

    /// Sets the entry of `id`, in place of its first occurrence (dropping later duplicates),
    /// or at the end.
    pub(super) fn set(&mut self, id: &str, raw: Box<RawValue>) {
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
    pub(super) fn remove(&mut self, id: &str) {
        self.entries.retain(|(key, _)| key != id);
    }

    /// The text written: Python's layout (`indent=2`), other entries verbatim.
    pub(super) fn render(&self) -> String {
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
    pub(super) fn write(&self, path: &Path) -> Result<()> {
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
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
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
pub(super) struct Entries(Vec<(String, Box<RawValue>)>);

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
pub(super) struct NewEntry {
    pub port: u16,
    pub pid: u32,
    pub started: String,
}

impl NewEntry {
    /// The entry's text, indented to sit at the first level of the file.
    pub(super) fn to_raw(&self) -> Result<Box<RawValue>> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|err| Error::Registry(format!("cannot encode a registry entry: {err}")))?
            .replace('\n', "\n  ");
        RawValue::from_string(text)
            .map_err(|err| Error::Registry(format!("cannot encode a registry entry: {err}")))
    }
}

/// Reads an entry leniently; `None` when it is not an object or lacks a usable pid or port.
pub(super) fn understand(raw: &RawValue) -> Option<ServiceEntry> {
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
pub(super) fn entry_pid(raw: &RawValue) -> Option<u32> {
    let value: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
    value.get("pid").and_then(as_u32)
}

/// The port of an entry as text, for the already-running message.
pub(super) fn entry_port_text(raw: &RawValue) -> String {
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
pub(super) fn as_u32(value: &serde_json::Value) -> Option<u32> {
    let number = value.as_number()?;
    if let Some(int) = number.as_u64() {
        return u32::try_from(int).ok();
    }
    let float = number.as_f64()?;
    (float.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&float)).then_some(float as u32)
}

/// A free port on 127.0.0.1, preferring one that no other entry of the file names (a service
/// may have registered and not bound yet).
pub(super) fn free_port(doc: &Document, id: &str) -> Result<u16> {
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
