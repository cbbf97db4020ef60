//! `cargo xtask interop`: Python virtualenvs holding reference Singer connectors, so tests can
//! check that our taps and targets interoperate with the Python ecosystem.
//!
//! Each venv lives under `<repo>/target/interop/` and is rebuilt only when its pinned package
//! set (or the Python version) changes, recorded in a marker file. `env.json` beside them gives
//! tests absolute paths; tests find it through `SINGER_INTEROP_ENV`.

use std::path::{Path, PathBuf};

use crate::process::Cmd;
use crate::{Result, json};

/// `target-jsonl` (a Python target) and `singer-python` (to write a tiny Python tap).
const JSONL: Venv = Venv {
    name: "venv-jsonl",
    packages: &["target-jsonl==0.1.4", "singer-python==5.8.0"],
};
/// The Singer SDK (its standard target test streams) and a `target-csv` built on it.
const SDK: Venv = Venv {
    name: "venv-sdk",
    packages: &["singer-sdk==0.54.9", "meltanolabs-target-csv==0.5.0"],
};
/// PipelineWise's target-postgres, the Python target most tap-mysql users pipe into.
const PG: Venv = Venv {
    name: "venv-pg",
    packages: &["pipelinewise-target-postgres==2.1.2"],
};
/// PipelineWise's tap-mysql, the Python tap ours is measured against (`bench e2e --peers`).
const TAP_MYSQL: Venv = Venv {
    name: "venv-tap-mysql",
    packages: &["pipelinewise-tap-mysql==1.6.0"],
};
/// MeltanoLabs' target-postgres, the Singer SDK target Meltano users load with.
const MELTANO_PG: Venv = Venv {
    name: "venv-meltano-pg",
    packages: &["meltanolabs-target-postgres==0.8.1"],
};
/// PipelineWise's tap-postgres and MeltanoLabs' tap-postgres, the Python taps ours is
/// measured against (`bench tap-postgres --peers`).
const TAP_PG_PIPELINEWISE: Venv = Venv {
    name: "venv-tap-postgres-pipelinewise",
    packages: &["pipelinewise-tap-postgres==1.8.4"],
};
const TAP_PG_MELTANO: Venv = Venv {
    name: "venv-tap-postgres-meltano",
    packages: &["meltanolabs-tap-postgres==0.10.0"],
};
/// Meltano, the orchestrator most Singer users run; our executables are its custom plugins.
const MELTANO: Venv = Venv {
    name: "venv-meltano",
    packages: &["meltano==4.4.1"],
};
/// pyarrow and DuckDB, the readers target-parquet's files are checked with.
const PARQUET: Venv = Venv {
    name: "venv-parquet",
    packages: &["pyarrow==26.0.1", "duckdb==2.0.1"],
};
/// kubernetes-validate, which checks `singer k8s` manifests against the Kubernetes OpenAPI
/// schemas it bundles (offline).
const K8S: Venv = Venv {
    name: "venv-k8s",
    packages: &["kubernetes-validate==1.37.0"],
};
/// moto's S3-compatible server, the object store the spool and BATCH tests run against.
const MOTO: Venv = Venv {
    name: "venv-moto",
    packages: &["moto[server]==5.2.5"],
};
const MARKER: &str = ".xtask-spec";

struct Venv {
    name: &'static str,
    packages: &'static [&'static str],
}

impl Venv {
    fn dir(&self) -> PathBuf {
        interop_dir().join(self.name)
    }

    fn bin(&self, program: &str) -> PathBuf {
        self.dir().join("bin").join(program)
    }

    fn ensure(&self, python_version: &str) -> Result {
        let dir = self.dir();
        let spec = format!("{}\n{python_version}\n", self.packages.join("\n"));
        let marker = dir.join(MARKER);
        let python_runs = Cmd::new(self.bin("python")).arg("--version").succeeds();
        if python_runs && std::fs::read_to_string(&marker).is_ok_and(|found| found == spec) {
            step!("interop: {} up to date", self.name);
            return Ok(());
        }
        step!(
            "interop: creating {} with {}",
            self.name,
            self.packages.join(" ")
        );
        Cmd::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&dir)
            .run()?;
        Cmd::new(self.bin("python"))
            .args(["-m", "pip", "--disable-pip-version-check", "-q", "install"])
            .args(self.packages)
            .run()
            .map_err(|e| format!("{e}\nhint: PyPI must be reachable to create {}", self.name))?;
        std::fs::write(&marker, spec)
            .map_err(|e| format!("failed to write {}: {e}", marker.display()))
    }
}

/// `Python 3.x.y`: part of each venv's marker, so a new Python rebuilds the venvs.
fn python_version() -> Result<String> {
    Cmd::new("python3")
        .arg("--version")
        .output()
        .map_err(|e| format!("{e}\nhint: run `cargo xtask services` to install python3"))
}

fn interop_dir() -> PathBuf {
    crate::repo_root().join("target/interop")
}

/// Creates or refreshes the venvs and `env.json`; returns the path of `env.json`.
pub(crate) fn run() -> Result<PathBuf> {
    let python_version = python_version()?;
    for venv in [
        &JSONL,
        &SDK,
        &PG,
        &PARQUET,
        &TAP_PG_MELTANO,
        &MELTANO,
        &K8S,
        &MOTO,
    ] {
        venv.ensure(&python_version)?;
    }
    let streams = target_test_streams(&SDK.dir())?;
    let env_json = interop_dir().join("env.json");
    let text = json::object(&[
        ("venv_jsonl", path_string(&JSONL.dir())),
        ("venv_sdk", path_string(&SDK.dir())),
        ("target_test_streams", path_string(&streams)),
        ("python_jsonl", path_string(&JSONL.bin("python"))),
        ("python_parquet", path_string(&PARQUET.bin("python"))),
        ("target_jsonl_py", path_string(&JSONL.bin("target-jsonl"))),
        ("target_csv_py", path_string(&SDK.bin("target-csv"))),
        ("meltano", path_string(&MELTANO.bin("meltano"))),
        (
            "kubernetes_validate",
            path_string(&K8S.bin("kubernetes-validate")),
        ),
        (
            "tap_postgres_meltano",
            path_string(&TAP_PG_MELTANO.bin("tap-postgres")),
        ),
        (
            "target_postgres_py",
            path_string(&PG.bin("target-postgres")),
        ),
        ("moto_server", path_string(&MOTO.bin("moto_server"))),
    ]);
    std::fs::write(&env_json, text)
        .map_err(|e| format!("failed to write {}: {e}", env_json.display()))?;
    step!("interop: wrote {}", env_json.display());
    Ok(env_json)
}

/// The Python connectors `bench e2e --peers` measures, installed on demand.
pub(crate) struct Peers {
    pub(crate) python: PathBuf,
    pub(crate) tap_mysql: PathBuf,
    pub(crate) target_postgres_pipelinewise: PathBuf,
    pub(crate) target_postgres_meltano: PathBuf,
}

/// Creates or refreshes the venvs of the Python peers.
pub(crate) fn peers() -> Result<Peers> {
    let python_version = python_version()?;
    for venv in [&TAP_MYSQL, &PG, &MELTANO_PG] {
        venv.ensure(&python_version)?;
    }
    Ok(Peers {
        python: TAP_MYSQL.bin("python"),
        tap_mysql: TAP_MYSQL.bin("tap-mysql"),
        target_postgres_pipelinewise: PG.bin("target-postgres"),
        target_postgres_meltano: MELTANO_PG.bin("target-postgres"),
    })
}

/// The Python taps `bench tap-postgres --peers` measures, installed on demand.
pub(crate) struct PgTapPeers {
    pub(crate) python: PathBuf,
    pub(crate) pipelinewise: PathBuf,
    pub(crate) meltano: PathBuf,
}

/// Creates or refreshes the venvs of the Python PostgreSQL taps.
pub(crate) fn pg_tap_peers() -> Result<PgTapPeers> {
    let python_version = python_version()?;
    for venv in [&TAP_PG_PIPELINEWISE, &TAP_PG_MELTANO] {
        venv.ensure(&python_version)?;
    }
    Ok(PgTapPeers {
        python: TAP_PG_PIPELINEWISE.bin("python"),
        pipelinewise: TAP_PG_PIPELINEWISE.bin("tap-postgres"),
        meltano: TAP_PG_MELTANO.bin("tap-postgres"),
    })
}

/// `<venv>/lib/python3.*/site-packages/singer_sdk/testing/target_test_streams`.
fn target_test_streams(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    let entries =
        std::fs::read_dir(&lib).map_err(|e| format!("failed to read {}: {e}", lib.display()))?;
    entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python3"))
        .map(|entry| {
            entry
                .path()
                .join("site-packages/singer_sdk/testing/target_test_streams")
        })
        .find(|dir| dir.is_dir())
        .ok_or_else(|| {
            format!(
                "no singer_sdk/testing/target_test_streams under {}",
                lib.display()
            )
        })
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
