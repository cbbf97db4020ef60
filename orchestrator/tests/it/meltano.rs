//! Meltano as a client: our executables as Meltano custom plugins, with no wrapper.
//!
//! Meltano (pinned in the `venv-meltano` interop venv) runs in a temporary project directory.
//! The project is `examples/meltano/meltano.yml`, the very file the README shows; each
//! plugin's executable, capabilities and settings are filled in by `meltano add --from-ref`
//! from our `--about --format meltano`, and the test's databases are given as environment
//! variables (`TAP_MYSQL_PORT`, ...), which Meltano puts above meltano.yml. Meltano is kept off
//! the network: HTTP(S) proxies point at a closed local port and pip may use no index, so an
//! install or Hub lookup would fail the run, and the output is checked for install attempts.

#![expect(
    clippy::print_stderr,
    reason = "the time of each Meltano command, for --no-capture runs"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value;
use singer_core::testing::interop_path;
use singer_core::testing::mariadb::{Db, PrivateServer};

use crate::{bin, psql, stderr, unique};

/// The example project, shared with the README.
fn example_yml() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/meltano/meltano.yml");
    std::fs::read_to_string(&path).unwrap()
}

/// A Meltano project in a temporary directory.
struct Meltano {
    dir: tempfile::TempDir,
    exe: PathBuf,
    env: Vec<(String, String)>,
}

impl Meltano {
    fn new(meltano_yml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("meltano.yml"), meltano_yml).unwrap();
        Self {
            dir,
            exe: interop_path("meltano"),
            env: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets an environment variable for every later Meltano command (a setting's override).
    fn set(&mut self, key: &str, value: impl ToString) {
        self.env.push((key.to_string(), value.to_string()));
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(args)
            .current_dir(self.path())
            .stdin(Stdio::null())
            .env("MELTANO_SEND_ANONYMOUS_USAGE_STATS", "false")
            .env("MELTANO_CLI_DISABLE_VERSION_CHECK", "true")
            .env("NO_COLOR", "1")
            // Nothing may leave the machine: any HTTP request fails at once, pip has no index.
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("http_proxy", "http://127.0.0.1:9")
            .env("https_proxy", "http://127.0.0.1:9")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env("PIP_NO_INDEX", "1")
            .env("RUST_LOG", "info")
            .env_remove("SINGER_LOG_FORMAT");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// `meltano <args>`, which must succeed; returns stdout and the combined output.
    fn run(&self, args: &[&str]) -> (String, String) {
        let started = Instant::now();
        let out = self.command(args).output().unwrap();
        let text = combined(&out);
        assert!(
            out.status.success(),
            "meltano {} failed:\n{text}",
            args.join(" ")
        );
        assert_installs_nothing(&text);
        eprintln!(
            "meltano {}: {:.1} s",
            args.join(" "),
            started.elapsed().as_secs_f64()
        );
        (String::from_utf8(out.stdout).unwrap(), text)
    }

    /// Adds (or completes) a plugin from our `--about --format meltano`.
    fn add(&self, plugin_type: &str, exe: &Path) {
        let name = exe.file_name().unwrap().to_str().unwrap();
        let def = self.path().join(format!("{name}.yml"));
        let out = Command::new(exe)
            .args(["--about", "--format", "meltano"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::write(&def, &out.stdout).unwrap();
        let (_, text) = self.run(&[
            "add",
            "--plugin-type",
            plugin_type,
            name,
            "--from-ref",
            def.to_str().unwrap(),
        ]);
        assert!(text.contains(&format!("'{name}'")), "{text}");
    }

    /// The state Meltano stored under `id`, via `meltano state get`.
    fn state(&self, id: &str) -> Value {
        let (stdout, text) = self.run(&["state", "get", id]);
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("meltano state get {id}: {e}\n{text}"))
    }
}

fn combined(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Custom plugins without `pip_url` are run where they are: no venv, no pip.
fn assert_installs_nothing(text: &str) {
    for line in text.lines() {
        let lower = line.to_lowercase();
        let installing = lower.contains("installing") && !lower.contains("skipped installing");
        assert!(
            !installing && !lower.contains("pip install"),
            "meltano tried to install: {line}\n{text}"
        );
    }
}

/// Setting names of a connector's `--about --format json`.
fn about_settings(exe: &Path) -> BTreeSet<String> {
    let out = Command::new(exe).arg("--about").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let about: Value = serde_json::from_slice(&out.stdout).unwrap();
    about["settings"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// A fresh PostgreSQL schema, dropped at the end.
struct PgSchema(String);

impl PgSchema {
    fn new(tag: &str) -> Self {
        let name = unique(tag);
        psql(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"));
        Self(name)
    }

    /// Runs SQL with `{s}` standing for the quoted schema name, `{n}` for the bare one.
    fn rows(&self, sql: &str) -> String {
        psql(
            &sql.replace("{s}", &format!("\"{}\"", self.0))
                .replace("{n}", &self.0),
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([crate::pg_url().as_str(), "-X", "-q", "-c"])
            .arg(format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0))
            .output();
    }
}

#[test]
fn readme_shows_the_example_project() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let block = format!("```yaml\n{}```", example_yml());
    assert!(
        readme.contains(&block),
        "README.md must show examples/meltano/meltano.yml verbatim in a ```yaml block"
    );
}

/// The README's project: tap-mysql (orders INCREMENTAL, customers LOG_BASED from a private
/// MariaDB with a ROW binlog) into target-postgres, run three times: a first load, a second
/// run resuming from the state Meltano stored, and `--full-refresh`.
#[test]
fn meltano_runs_tap_mysql_into_target_postgres_and_resumes() {
    let started = Instant::now();
    let tap = bin("tap-mysql");
    let target = bin("target-postgres");
    let server = PrivateServer::start(false);
    let db = server.db("meltano");
    db.exec(
        "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50), city VARCHAR(50)); \
         INSERT INTO customers VALUES (1, 'Ada', 'London'), (2, 'Grace', 'New York'); \
         CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, amount DECIMAL(10,2), \
           updated_at DATETIME(6)); \
         INSERT INTO orders VALUES (1, 1, 10.50, '2024-01-01 00:00:00'), \
           (2, 2, 20.00, '2024-01-02 00:00:00'); \
         CREATE TABLE ignored (id INT PRIMARY KEY)",
    );
    let schema = PgSchema::new("meltano");

    let mut m = Meltano::new(&example_yml());
    m.add("extractor", &tap);
    m.add("loader", &target);
    m.set("TAP_MYSQL_PORT", server.port);
    m.set("TAP_MYSQL_FILTER_DBS", &db.name);
    m.set("TARGET_POSTGRES_DATABASE", pg_database());
    m.set("TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA", &schema.0);

    // The definitions name our binaries and list every setting of --about.
    let yml = std::fs::read_to_string(m.path().join("meltano.yml")).unwrap();
    assert!(
        yml.contains(&format!("executable: {}", tap.display())),
        "{yml}"
    );
    assert!(!yml.contains("pip_url"), "{yml}");
    for (name, exe) in [("tap-mysql", &tap), ("target-postgres", &target)] {
        let (listed, _) = m.run(&["config", "list", name, "--all"]);
        let prefix = name.to_uppercase().replace('-', "_");
        for setting in about_settings(exe) {
            let env = format!("{setting} [env: {prefix}_{}]", setting.to_uppercase());
            assert!(listed.contains(&env), "`{env}` not listed:\n{listed}");
        }
    }

    // Discovery through Meltano.
    let (catalog, _) = m.run(&["invoke", "tap-mysql", "--discover"]);
    let catalog: Value = serde_json::from_str(&catalog).unwrap();
    let ids: BTreeSet<&str> = catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["tap_stream_id"].as_str())
        .collect();
    for table in ["customers", "orders", "ignored"] {
        assert!(ids.contains(db.stream(table).as_str()), "{ids:?}");
    }

    // First run: everything selected lands, and Meltano stores our bookmarks.
    let state_id = "dev:tap-mysql-to-target-postgres";
    m.run(&["run", "tap-mysql", "target-postgres"]);
    assert_eq!(
        schema.rows("SELECT id, name, city FROM {s}.customers ORDER BY id"),
        "1|Ada|London\n2|Grace|New York"
    );
    assert_eq!(
        schema.rows("SELECT id, amount FROM {s}.orders ORDER BY id"),
        "1|10.50\n2|20.00"
    );
    assert_eq!(
        schema.rows(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = '{n}' \
             AND table_name = 'ignored'"
        ),
        "0"
    );
    let first = m.state(state_id);
    let bookmarks = &first["singer_state"]["bookmarks"];
    let orders = &bookmarks[db.stream("orders")];
    assert_eq!(orders["replication_key"], "updated_at", "{first}");
    assert!(
        orders["replication_key_value"]
            .as_str()
            .is_some_and(|v| v.starts_with("2024-01-02")),
        "{first}"
    );
    let customers_first = binlog_position(&bookmarks[db.stream("customers")], &first);

    // Changes a resumed run must not see: an order changed without moving its replication
    // key, and a customer changed outside the binlog. Then changes it must see.
    db.exec(
        "UPDATE orders SET amount = 99.99 WHERE id = 1; \
         INSERT INTO orders VALUES (3, 1, 30.25, '2024-02-01 00:00:00'); \
         SET SESSION sql_log_bin = 0; UPDATE customers SET city = 'Hidden' WHERE id = 1; \
         SET SESSION sql_log_bin = 1; \
         UPDATE customers SET name = 'Grace H' WHERE id = 2; \
         INSERT INTO customers VALUES (3, 'Linus', 'Helsinki')",
    );
    m.run(&["run", "tap-mysql", "target-postgres"]);
    assert_eq!(
        schema.rows("SELECT id, name, city FROM {s}.customers ORDER BY id"),
        "1|Ada|London\n2|Grace H|New York\n3|Linus|Helsinki",
        "LOG_BASED must resume from the binlog position, not snapshot again"
    );
    assert_eq!(
        schema.rows("SELECT id, amount FROM {s}.orders ORDER BY id"),
        "1|10.50\n2|20.00\n3|30.25",
        "INCREMENTAL must move only rows past the bookmark"
    );
    let second = m.state(state_id);
    let bookmarks = &second["singer_state"]["bookmarks"];
    assert!(
        bookmarks[db.stream("orders")]["replication_key_value"]
            .as_str()
            .is_some_and(|v| v.starts_with("2024-02-01")),
        "{second}"
    );
    let customers_second = binlog_position(&bookmarks[db.stream("customers")], &second);
    assert!(customers_second > customers_first, "{first}\n{second}");

    // --full-refresh ignores the stored state: both tables are read again.
    m.run(&["run", "--full-refresh", "tap-mysql", "target-postgres"]);
    assert_eq!(
        schema.rows("SELECT id, name, city FROM {s}.customers ORDER BY id"),
        "1|Ada|Hidden\n2|Grace H|New York\n3|Linus|Helsinki"
    );
    assert_eq!(
        schema.rows("SELECT id, amount FROM {s}.orders ORDER BY id"),
        "1|99.99\n2|20.00\n3|30.25"
    );
    let venvs = find(&m.path().join(".meltano"), "pyvenv.cfg");
    assert!(venvs.is_empty(), "meltano made plugin venvs: {venvs:?}");
    eprintln!(
        "meltano tap-mysql -> target-postgres: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Every file or directory named `name` under `dir`.
fn find(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_name() == name {
                found.push(path.clone());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(path);
            }
        }
    }
    found
}

/// `(log_file, log_pos)` of a LOG_BASED bookmark.
fn binlog_position(bookmark: &Value, state: &Value) -> (String, u64) {
    let file = bookmark["log_file"].as_str();
    let pos = bookmark["log_pos"].as_u64();
    match (file, pos) {
        (Some(f), Some(p)) => (f.to_string(), p),
        _ => panic!("no binlog position in {state}"),
    }
}

/// The database of `SINGER_PG_URL`.
fn pg_database() -> String {
    let url = crate::pg_url();
    url.rsplit('/')
        .next()
        .and_then(|d| d.split('?').next())
        .unwrap()
        .to_string()
}

/// Our tap into a Meltano SDK target (target-csv), and a Meltano SDK tap (MeltanoLabs'
/// tap-postgres) into our target-postgres, both run by Meltano.
#[test]
fn meltano_runs_our_plugins_with_sdk_plugins() {
    let started = Instant::now();
    let tap = bin("tap-mysql");
    let target = bin("target-postgres");
    let target_csv = interop_path("target_csv_py");
    let tap_postgres_sdk = interop_path("tap_postgres_meltano");

    let db = Db::shared("meltano_sdk");
    db.exec(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(8,2)); \
         INSERT INTO items VALUES (1, 'héllo', 1.25), (2, NULL, 2.50)",
    );
    let source = PgSchema::new("meltano_src");
    let dest = PgSchema::new("meltano_dst");
    source.rows(
        "CREATE SCHEMA {s}; \
         CREATE TABLE {s}.things (id int PRIMARY KEY, label text, amount numeric(10,3)); \
         INSERT INTO {s}.things VALUES (1, 'uno', 1.500), (2, 'dos ☃', NULL)",
    );
    let csv_dir = tempfile::tempdir().unwrap();

    let yml = format!(
        "default_environment: dev\n\
         send_anonymous_usage_stats: false\n\
         environments:\n\
         - name: dev\n\
         plugins:\n  \
           extractors:\n  \
           - name: tap-mysql\n    \
             namespace: tap_mysql\n    \
             executable: tap-mysql\n    \
             config:\n      \
               host: 127.0.0.1\n      \
               user: root\n    \
             select:\n    \
             - '*-items.*'\n  \
           - name: tap-postgres-sdk\n    \
             namespace: tap_postgres\n    \
             executable: {tap_pg}\n    \
             capabilities: [catalog, state, discover, about]\n    \
             config:\n      \
               host: 127.0.0.1\n      \
               port: 5432\n      \
               user: postgres\n      \
               password: unused\n      \
               database: {pg_db}\n      \
               filter_schemas: ['{src}']\n    \
             select:\n    \
             - '{src}-things.*'\n  \
           loaders:\n  \
           - name: target-csv\n    \
             namespace: target_csv\n    \
             executable: {csv}\n    \
             capabilities: [about]\n    \
             config:\n      \
               output_path: {out}\n  \
           - name: target-postgres\n    \
             namespace: target_postgres\n    \
             executable: target-postgres\n    \
             config:\n      \
               host: 127.0.0.1\n      \
               user: postgres\n",
        tap_pg = tap_postgres_sdk.display(),
        pg_db = pg_database(),
        src = source.0,
        csv = target_csv.display(),
        out = csv_dir.path().display(),
    );
    let mut m = Meltano::new(&yml);
    m.add("extractor", &tap);
    m.add("loader", &target);
    m.set("TAP_MYSQL_PORT", db.port);
    m.set("TAP_MYSQL_FILTER_DBS", &db.name);
    m.set("TARGET_POSTGRES_DATABASE", pg_database());
    m.set("TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA", &dest.0);

    // Ours into the SDK's target-csv.
    m.run(&["run", "tap-mysql", "target-csv"]);
    let csv = std::fs::read_dir(csv_dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "csv"))
        .unwrap_or_else(|| panic!("target-csv wrote no file in {}", csv_dir.path().display()));
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[1].contains("héllo") && lines[1].contains("1.25"),
        "{text}"
    );
    let state = m.state("dev:tap-mysql-to-target-csv");
    assert!(
        state["singer_state"]["bookmarks"]
            .get(db.stream("items"))
            .is_some(),
        "{state}"
    );

    // The SDK's tap-postgres into ours.
    m.run(&["run", "tap-postgres-sdk", "target-postgres"]);
    assert_eq!(
        dest.rows("SELECT id, label, amount FROM {s}.things ORDER BY id"),
        "1|uno|1.500\n2|dos ☃|"
    );
    let state = m.state("dev:tap-postgres-sdk-to-target-postgres");
    assert!(
        state["singer_state"]["bookmarks"]
            .get(format!("{}-things", source.0))
            .is_some(),
        "{state}"
    );
    let venvs = find(&m.path().join(".meltano"), "pyvenv.cfg");
    assert!(venvs.is_empty(), "meltano made plugin venvs: {venvs:?}");
    eprintln!(
        "meltano with SDK plugins: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
