//! The target-parquet stage of `bench e2e`: the tap's captured output written as Parquet
//! datasets, timed with its peak RSS, and the rows counted back with pyarrow when the interop
//! venv is there.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::process::Cmd;

/// Where target-parquet writes, and its config.
pub(crate) struct Lake {
    bin: PathBuf,
    config: PathBuf,
    out: PathBuf,
}

impl Lake {
    pub(crate) fn write(dir: &Path, bin: &Path) -> Result<Self> {
        let out = dir.join("parquet-out");
        let config = dir.join("target-parquet.json");
        let text = format!(
            r#"{{"destination_path":{}}}"#,
            crate::json::string(&out.display().to_string())
        );
        std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
        Ok(Self {
            bin: bin.to_path_buf(),
            config,
            out,
        })
    }

    /// target-parquet reading `input`, into an emptied destination.
    pub(crate) fn argv(&self, input: &Path) -> Result<Vec<String>> {
        match std::fs::remove_dir_all(&self.out) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("{}: {e}", self.out.display()));
            }
            _ => {}
        }
        Ok(vec![
            self.bin.join("target-parquet").display().to_string(),
            "--config".into(),
            self.config.display().to_string(),
            "--input".into(),
            input.display().to_string(),
        ])
    }

    /// The rows of every stream's current dataset, counted by pyarrow; `None` without the
    /// interop venv (`cargo xtask interop`).
    pub(crate) fn count_rows(&self) -> Result<Option<u64>> {
        let python = crate::repo_root().join("target/interop/venv-parquet/bin/python");
        if !python.exists() {
            return Ok(None);
        }
        let script = "import sys, pathlib, pyarrow.dataset as ds\n\
            n = 0\n\
            for d in pathlib.Path(sys.argv[1]).iterdir():\n\
            \x20   p = d / 'current' if (d / 'current').exists() else d\n\
            \x20   n += ds.dataset(str(p), format='parquet').count_rows()\n\
            print(n)\n";
        let out = Cmd::new(python)
            .args(["-c", script])
            .arg(&self.out)
            .output()?;
        out.trim()
            .parse()
            .map(Some)
            .map_err(|e| format!("pyarrow counted `{}`: {e}", out.trim()))
    }
}
