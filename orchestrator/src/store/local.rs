//! States in files: `<home>/state/<id>/current.json`, replaced atomically (write, fsync,
//! rename, fsync the directory), and `history.jsonl`, one line per change.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{StateEntry, StoreError};

/// History lines kept per state id.
const HISTORY_KEEP: usize = 1000;

pub(crate) struct LocalStore {
    dir: PathBuf,
}

/// A state id as a file name: letters, digits, `-`, `_` and `.` stay, the rest is `%XX`.
pub(crate) fn file_name(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && !out.is_empty()) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn id_from_file_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len() + 1
            && let Some(b) = name
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError(format!("{}: {e}", path.display()))
}

impl LocalStore {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn id_dir(&self, id: &str) -> PathBuf {
        self.dir.join(file_name(id))
    }

    pub(crate) fn get(&self, id: &str) -> Result<Option<Value>, StoreError> {
        let path = self.id_dir(id).join("current.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| StoreError(format!("{}: not valid JSON: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    pub(crate) fn set(&self, id: &str, value: &Value, source: &str) -> Result<(), StoreError> {
        let dir = self.id_dir(id);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let path = dir.join("current.json");
        let tmp = dir.join("current.json.tmp");
        {
            let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
            f.write_all(value.to_string().as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        self.append_history(id, &json!({"at": now(), "source": source, "value": value}))
    }

    pub(crate) fn clear(&self, id: &str, source: &str) -> Result<bool, StoreError> {
        let path = self.id_dir(id).join("current.json");
        match std::fs::remove_file(&path) {
            Ok(()) => {
                self.append_history(id, &json!({"at": now(), "source": source, "value": null}))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&path, e)),
        }
    }

    pub(crate) fn list(&self) -> Result<Vec<StateEntry>, StoreError> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        for e in entries.flatten() {
            let current = e.path().join("current.json");
            let Ok(meta) = std::fs::metadata(&current) else {
                continue;
            };
            let updated = meta
                .modified()
                .ok()
                .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339());
            out.push(StateEntry {
                id: id_from_file_name(&e.file_name().to_string_lossy()),
                updated_at: updated,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    pub(crate) fn history(&self, id: &str) -> Result<Vec<Value>, StoreError> {
        let path = self.id_dir(id).join("history.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path, e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    fn append_history(&self, id: &str, entry: &Value) -> Result<(), StoreError> {
        let path = self.id_dir(id).join("history.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        writeln!(f, "{entry}").map_err(|e| io(&path, e))?;
        drop(f);
        // Keep the file bounded: trim to the newest entries now and then.
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > 4 << 20) {
            let lines = self.history(id)?;
            let keep = &lines[lines.len().saturating_sub(HISTORY_KEEP)..];
            let text: String = keep.iter().map(|v| format!("{v}\n")).collect();
            std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        }
        Ok(())
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_as_file_names() {
        for id in ["shop", "a/b", "..", "x y%z", "é"] {
            let f = file_name(id);
            assert!(!f.contains('/') && f != ".." && f != ".", "{f}");
            assert_eq!(id_from_file_name(&f), id);
        }
    }

    #[test]
    fn set_get_clear_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::new(dir.path().to_path_buf());
        assert_eq!(s.get("p").unwrap(), None);
        s.set("p", &json!({"bookmarks": {"a": 1}}), "run 1")
            .unwrap();
        s.set("p", &json!({"bookmarks": {"a": 2}}), "run 1")
            .unwrap();
        assert_eq!(s.get("p").unwrap(), Some(json!({"bookmarks": {"a": 2}})));
        assert_eq!(s.list().unwrap()[0].id, "p");
        assert!(s.clear("p", "cli").unwrap());
        assert_eq!(s.get("p").unwrap(), None);
        let h = s.history("p").unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[2]["value"], Value::Null);
    }
}
