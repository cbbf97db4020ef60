//! `cargo xtask bench e2e --peers`: the Python connectors Singer users run today, on the same
//! data as ours, timed and checked the same way.
//!
//! - pipelinewise-tap-mysql to /dev/null (against tap-mysql);
//! - tap-mysql into pipelinewise-target-postgres, and into meltanolabs-target-postgres (against
//!   target-postgres; our fast tap leaves the target as the limit);
//! - the all-Python PipelineWise pipe, pipelinewise-tap-mysql into its target-postgres.
//!
//! Every load is compared with MariaDB as ours are; a peer that differs is reported, not fatal.

use std::path::{Path, PathBuf};

use crate::bench_e2e::{Files, Stage, drop_schema, sh_pipefail, verify};
use crate::bench_mysql::{max_rss_kb, timed};
use crate::interop;
use crate::process::Cmd;
use crate::{Result, json};

/// The schema every peer target loads into.
pub(crate) const PEER_SCHEMA: &str = "bench_peer";

/// The peers' connection settings, written as JSON configs and as `singer.toml` tables.
const TAP_SETTINGS: &[(&str, &str)] = &[
    ("host", "127.0.0.1"),
    ("port", "3306"),
    ("user", "root"),
    ("password", ""),
    ("filter_dbs", "bench_tap"),
];
const PIPELINEWISE_SETTINGS: &[(&str, &str)] = &[
    ("host", "127.0.0.1"),
    ("port", "5432"),
    ("user", "postgres"),
    ("password", "unused"),
    ("dbname", "test"),
    ("default_target_schema", PEER_SCHEMA),
];
const MELTANO_SETTINGS: &[(&str, &str)] = &[
    ("host", "127.0.0.1"),
    ("port", "5432"),
    ("user", "postgres"),
    ("password", "unused"),
    ("database", "test"),
    ("default_target_schema", PEER_SCHEMA),
];

/// A settings value: ports are numbers, the rest strings (JSON and TOML spell both alike).
fn value(key: &str, v: &str) -> String {
    if key == "port" {
        v.to_string()
    } else {
        json::string(v)
    }
}

fn json_config(settings: &[(&str, &str)]) -> String {
    let fields: Vec<String> = settings
        .iter()
        .map(|(k, v)| format!("{}:{}", json::string(k), value(k, v)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn toml_table(name: &str, settings: &[(&str, &str)]) -> String {
    let mut out = format!("[{name}]\n");
    for (k, v) in settings {
        out.push_str(&format!("{k} = {}\n", value(k, v)));
    }
    out
}

pub(crate) struct PeerBench {
    pub(crate) tap: PathBuf,
    tap_config: PathBuf,
    pub(crate) catalog: PathBuf,
    pub(crate) pipelinewise: PathBuf,
    pipelinewise_config: PathBuf,
    meltano: PathBuf,
    meltano_config: PathBuf,
    rss_log: PathBuf,
    pub(crate) stages: [Stage; 4],
}

impl PeerBench {
    /// Installs the peers (PyPI), writes their configs and selects both tables in a catalog
    /// from pipelinewise-tap-mysql's own discovery.
    pub(crate) fn prepare(dir: &Path) -> Result<Self> {
        let py = interop::peers()?;
        let write =
            |p: &Path, t: &str| std::fs::write(p, t).map_err(|e| format!("{}: {e}", p.display()));
        let tap_config = dir.join("peer-tap.json");
        write(&tap_config, &json_config(TAP_SETTINGS))?;
        let pipelinewise_config = dir.join("peer-pipelinewise.json");
        write(&pipelinewise_config, &json_config(PIPELINEWISE_SETTINGS))?;
        let meltano_config = dir.join("peer-meltano.json");
        write(&meltano_config, &json_config(MELTANO_SETTINGS))?;
        step!("bench: discovering with pipelinewise-tap-mysql");
        let discovered = dir.join("peer-discovered.json");
        discover(&py.tap_mysql, &tap_config, &discovered)?;
        let catalog = dir.join("peer-catalog.json");
        select_streams(
            &py.python,
            &discovered,
            &catalog,
            &["bench_tap-mixed", "bench_tap-small"],
        )?;
        Ok(Self {
            tap: py.tap_mysql,
            tap_config,
            catalog,
            pipelinewise: py.target_postgres_pipelinewise,
            pipelinewise_config,
            meltano: py.target_postgres_meltano,
            meltano_config,
            rss_log: dir.join("peer-target.time"),
            stages: [
                Stage::new("pipelinewise-tap-mysql > /dev/null"),
                Stage::new("tap-mysql | pipelinewise-target-postgres"),
                Stage::new("tap-mysql | meltanolabs-target-postgres"),
                Stage::new("pipelinewise-tap-mysql | pipelinewise-target-postgres"),
            ],
        })
    }

    /// One round of every peer stage; loads are checked against MariaDB.
    pub(crate) fn round(&mut self, ours: &Files, rows: u64) -> Result {
        let peer_tap = self.tap_command();
        let (s, kb) = timed(&sh_pipefail(&format!("exec {peer_tap} > /dev/null")))?;
        self.stages[0].secs.push(s);
        self.stages[0].rss_kb.push(kb);

        let our_tap = ours.tap_argv().join(" ");
        let loads = [
            (
                1,
                our_tap.clone(),
                &self.pipelinewise,
                &self.pipelinewise_config,
            ),
            (2, our_tap, &self.meltano, &self.meltano_config),
            (3, peer_tap, &self.pipelinewise, &self.pipelinewise_config),
        ];
        for (i, tap, target, config) in loads {
            drop_schema(PEER_SCHEMA)?;
            let _ = std::fs::remove_file(&self.rss_log);
            let cmd = format!(
                "{tap} | /usr/bin/time -f maxrss_kb=%M -o {log} {target} --config {config} > /dev/null",
                log = self.rss_log.display(),
                target = target.display(),
                config = config.display(),
            );
            let stage = &mut self.stages[i];
            match timed(&sh_pipefail(&cmd)) {
                Ok((s, _)) => {
                    stage.secs.push(s);
                    stage.rss_kb.push(max_rss_kb(&self.rss_log));
                    if let Err(e) = verify(PEER_SCHEMA, rows) {
                        stage.note(format!("loaded data differs from MariaDB: {e}"));
                    }
                }
                Err(e) => stage.note(format!("failed: {e}")),
            }
        }
        drop_schema(PEER_SCHEMA)
    }

    /// pipelinewise-tap-mysql with its config and catalog, as a shell command.
    fn tap_command(&self) -> String {
        format!(
            "{} --config {} --catalog {}",
            self.tap.display(),
            self.tap_config.display(),
            self.catalog.display()
        )
    }

    /// The shell pipe `pipelinewise-tap-mysql | pipelinewise-target-postgres`.
    pub(crate) fn pipelinewise_pipe(&self) -> String {
        format!(
            "{} | {} --config {} > /dev/null",
            self.tap_command(),
            self.pipelinewise.display(),
            self.pipelinewise_config.display(),
        )
    }

    /// A `singer.toml` with the same tap and target, and `pipelines` (TOML) appended.
    pub(crate) fn pipelinewise_project(&self, pipelines: &str) -> String {
        format!(
            "[taps.pw]\nexecutable = {}\ncatalog = {}\n{}[targets.pw]\nexecutable = {}\n{}{pipelines}",
            json::string(&self.tap.display().to_string()),
            json::string(&self.catalog.display().to_string()),
            toml_table("taps.pw.config", TAP_SETTINGS),
            json::string(&self.pipelinewise.display().to_string()),
            toml_table("targets.pw.config", PIPELINEWISE_SETTINGS),
        )
    }
}

/// Runs `tap --config config --discover` with the catalog written to `out`.
pub(crate) fn discover(tap: &Path, config: &Path, out: &Path) -> Result {
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let (mut child, shown) = Cmd::new(tap)
        .arg("--config")
        .arg(config)
        .arg("--discover")
        .spawn(
            std::process::Stdio::null(),
            std::process::Stdio::from(file),
            std::process::Stdio::inherit(),
        )?;
    if !child.wait().map_err(|e| e.to_string())?.success() {
        return Err(format!("`{shown}` failed"));
    }
    Ok(())
}

/// Writes to `catalog` the streams `ids` of the `discovered` catalog, selected for FULL_TABLE
/// with every column they support (Python, run by `python`).
pub(crate) fn select_streams(
    python: &Path,
    discovered: &Path,
    catalog: &Path,
    ids: &[&str],
) -> Result {
    Cmd::new(python)
        .args(["-c", SELECT_STREAMS])
        .arg(discovered)
        .arg(catalog)
        .args(ids)
        .run()
}

const SELECT_STREAMS: &str = r#"
import json, sys
discovered, out, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
catalog = json.load(open(discovered))
keep = [s for s in catalog["streams"] if s["tap_stream_id"] in wanted]
for s in keep:
    for m in s["metadata"]:
        if m["breadcrumb"] == []:
            m["metadata"].update({"selected": True, "replication-method": "FULL_TABLE"})
        elif m["metadata"].get("inclusion") != "unsupported":
            m["metadata"]["selected"] = True
found = sorted(s["tap_stream_id"] for s in keep)
if found != sorted(wanted):
    sys.exit(f"discovery found streams {found}, expected {sorted(wanted)}")
catalog["streams"] = keep
json.dump(catalog, open(out, "w"))
"#;
