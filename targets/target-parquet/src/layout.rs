//! Where a stream's files live, and the file-system steps that publish them atomically.
//!
//! ```text
//! <destination_path>/<stream folder>/
//!     part-000001-20250102T030405123456Z-4242.parquet   rows without a table version
//!     _versions/<version>/part-….parquet                rows of a table version
//!     current -> _versions/<version>                    the active version (a symlink)
//!     .staging/part-….parquet.tmp                       files being written (hidden)
//! ```
//!
//! The stream folder is the stream name with every byte outside `A-Z a-z 0-9 _ - .` (and a
//! leading `.`) percent-encoded, as target-jsonl names its files: `public-users` stays
//! `public-users`, `a/b` becomes `a%2Fb`, `..` becomes `%2E.`; two streams never share a
//! folder. Readers skip `.staging` (hidden) and `_versions` (pyarrow ignores `_` and `.`
//! prefixes; a `*.parquet` glob does not descend).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The folder of table versions inside a stream folder.
pub const VERSIONS_DIR: &str = "_versions";
/// The symlink to the active table version.
pub const CURRENT_LINK: &str = "current";
/// The hidden folder of files being written.
pub const STAGING_DIR: &str = ".staging";

/// The folder name of a stream: bytes outside `A-Z a-z 0-9 _ - .` and a leading `.` are
/// percent-encoded, so the mapping is one to one and never leaves the destination.
pub fn folder_name(stream: &str) -> String {
    let mut out = String::with_capacity(stream.len());
    for (i, b) in stream.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// The name of a published file: `part-<seq>-<run>.parquet`.
pub fn part_name(seq: u64, run_id: &str) -> String {
    format!("part-{seq:06}-{run_id}.parquet")
}

/// What ACTIVATE_VERSION did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// The version had no folder yet (the start marker of a full-table sync): its folder was
    /// created; `current` was pointed at it only if the stream had no `current` yet.
    Begun {
        /// Whether `current` now points at the new, empty version.
        pointed: bool,
    },
    /// `current` now points at the version; these older versions were removed.
    Swapped {
        /// Removed versions.
        removed: Vec<i64>,
    },
}

/// The folders of one stream.
#[derive(Debug, Clone)]
pub struct StreamLayout {
    root: PathBuf,
}

impl StreamLayout {
    /// The layout of `stream` under `destination`.
    pub fn new(destination: &Path, stream: &str) -> Self {
        Self {
            root: destination.join(folder_name(stream)),
        }
    }

    /// The stream folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of files being written.
    pub fn staging(&self) -> PathBuf {
        self.root.join(STAGING_DIR)
    }

    /// The folder of a table version.
    pub fn version_dir(&self, version: i64) -> PathBuf {
        self.root.join(VERSIONS_DIR).join(version.to_string())
    }

    /// Where files of rows with this version are published.
    pub fn dir_for(&self, version: Option<i64>) -> PathBuf {
        match version {
            Some(v) => self.version_dir(v),
            None => self.root.clone(),
        }
    }

    /// The `current` symlink.
    pub fn current(&self) -> PathBuf {
        self.root.join(CURRENT_LINK)
    }

    /// Creates the stream folder and its staging folder.
    pub fn prepare(&self) -> io::Result<()> {
        create_dirs(&self.staging())
    }

    /// ACTIVATE_VERSION: for a version with a folder, points `current` at it (a new symlink
    /// renamed over the old one: readers see the old or the new version, never neither) and
    /// then removes the folders of older versions. A version without a folder is begun.
    pub fn activate(&self, version: i64) -> io::Result<Activation> {
        let dir = self.version_dir(version);
        if !dir.is_dir() {
            create_dirs(&dir)?;
            let pointed = fs::symlink_metadata(self.current()).is_err();
            if pointed {
                self.point_current(version)?;
            }
            return Ok(Activation::Begun { pointed });
        }
        self.point_current(version)?;
        let mut removed = Vec::new();
        for v in self.versions()? {
            if v < version {
                fs::remove_dir_all(self.version_dir(v))?;
                removed.push(v);
            }
        }
        if !removed.is_empty() {
            sync_dir(&self.root.join(VERSIONS_DIR))?;
        }
        removed.sort_unstable();
        Ok(Activation::Swapped { removed })
    }

    /// The versions that have a folder.
    pub fn versions(&self) -> io::Result<Vec<i64>> {
        let dir = self.root.join(VERSIONS_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            if let Some(v) = name.to_str().and_then(|n| n.parse::<i64>().ok()) {
                out.push(v);
            }
        }
        Ok(out)
    }

    fn point_current(&self, version: i64) -> io::Result<()> {
        let tmp = self
            .root
            .join(format!(".{CURRENT_LINK}-{}.tmp", std::process::id()));
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        symlink_dir(&Path::new(VERSIONS_DIR).join(version.to_string()), &tmp)?;
        fs::rename(&tmp, self.current())?;
        sync_dir(&self.root)
    }
}

#[cfg(unix)]
fn symlink_dir(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink_dir(_: &Path, _: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "table versions need symlinks (Unix)",
    ))
}

/// Creates a folder and its missing parents, syncing each new folder's parent so the new
/// entries survive a crash.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        create_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(parent.unwrap_or(Path::new(".")))
}

/// Makes a folder's entries (new, renamed or removed files) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn folder_names_are_safe_and_distinct() {
        assert_eq!(folder_name("public-users"), "public-users");
        assert_eq!(folder_name("dbo.Users"), "dbo.Users");
        assert_eq!(folder_name("a/b"), "a%2Fb");
        assert_eq!(folder_name("a_b"), "a_b");
        assert_eq!(folder_name(".."), "%2E.");
        assert_eq!(folder_name(""), "%00");
        assert_eq!(folder_name("é"), "%C3%A9");
        assert_eq!(folder_name("a b"), "a%20b");
    }

    #[test]
    fn activation_begins_then_swaps_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let layout = StreamLayout::new(dir.path(), "s");
        layout.prepare().unwrap();
        assert_eq!(
            layout.activate(1).unwrap(),
            Activation::Begun { pointed: true }
        );
        assert_eq!(
            fs::read_link(layout.current()).unwrap(),
            Path::new("_versions/1")
        );
        assert_eq!(
            layout.activate(1).unwrap(),
            Activation::Swapped { removed: vec![] }
        );
        assert_eq!(
            layout.activate(2).unwrap(),
            Activation::Begun { pointed: false }
        );
        assert_eq!(
            fs::read_link(layout.current()).unwrap(),
            Path::new("_versions/1")
        );
        assert_eq!(
            layout.activate(2).unwrap(),
            Activation::Swapped { removed: vec![1] }
        );
        assert_eq!(
            fs::read_link(layout.current()).unwrap(),
            Path::new("_versions/2")
        );
        assert_eq!(layout.versions().unwrap(), vec![2]);
    }
}
