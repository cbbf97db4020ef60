//! `cargo xtask demo`: the main job. Two pipelines in one `singer.toml`:
//! - `demo`: a small shop database in MariaDB, moved with tap-mysql into target-postgres
//!   (schema `singer_demo` of database `test`);
//! - `demo_pg`: a PostgreSQL shop database moved with tap-postgres into the same server
//!   (schema `singer_demo_pg`; see [`crate::demo_pg`]).
//!
//! It seeds both sources on first use, runs `singer run demo` and `singer run demo_pg`, and
//! shows what landed and the stored states. Run it again and both runs are incremental: each
//! invocation after the first adds a few orders and changes one in each source, and only those
//! move (the `orders` streams replicate by `updated_at`; the small tables are copied in full).

use std::path::Path;

use crate::process::Cmd;
use crate::{Result, cargo, demo_pg, services};

const DATABASE: &str = "singer_demo";
const SCHEMA: &str = "singer_demo";

pub(crate) fn run() -> Result {
    services::run()?;
    step!("demo: building singer, tap-mysql, tap-postgres and target-postgres (release)");
    cargo()
        .args(["build", "--release", "--locked"])
        .args([
            "--bin",
            "singer",
            "--bin",
            "tap-mysql",
            "--bin",
            "tap-postgres",
            "--bin",
            "target-postgres",
        ])
        .run()?;
    let bin = crate::target_dir().join("release");
    let demo_dir = crate::repo_root().join("target/demo");
    std::fs::create_dir_all(&demo_dir)
        .map_err(|e| format!("failed to create {}: {e}", demo_dir.display()))?;

    let project = demo_dir.join("singer.toml");
    let text = format!(
        r#"# Written by `cargo xtask demo`.
[taps.shop]
executable = "{tap}"
[taps.shop.config]
host = "127.0.0.1"
user = "root"
filter_dbs = "{DATABASE}"
[taps.shop.env]
RUST_LOG = "warn"

[targets.warehouse]
executable = "{target}"
[targets.warehouse.config]
host = "127.0.0.1"
user = "postgres"
database = "test"
default_target_schema = "{SCHEMA}"
[targets.warehouse.env]
RUST_LOG = "warn"

[pipelines.demo]
tap = "shop"
target = "warehouse"
select = ["{DATABASE}-*"]
[pipelines.demo.streams."{DATABASE}-customers"]
replication_method = "FULL_TABLE"
[pipelines.demo.streams."{DATABASE}-products"]
replication_method = "FULL_TABLE"
[pipelines.demo.streams."{DATABASE}-orders"]
replication_method = "INCREMENTAL"
replication_key = "updated_at"
"#,
        tap = bin.join("tap-mysql").display(),
        target = bin.join("target-postgres").display(),
    ) + &demo_pg::project_section(&bin);
    std::fs::write(&project, text).map_err(|e| format!("{}: {e}", project.display()))?;

    if seed()? {
        fresh_start(&bin, &project, "demo", SCHEMA);
    } else {
        step!("demo: adding 3 orders and updating order 1 in MariaDB since the last run");
        mariadb(&format!(
            "SET time_zone = '+00:00';
             INSERT INTO {DATABASE}.orders (customer_id, status, total, items, updated_at)
               SELECT 1 + seq % 3, 'new', 10.5 * seq, JSON_ARRAY(JSON_OBJECT('sku', 'X-1', 'qty', seq)),
                      UTC_TIMESTAMP(6) FROM {DATABASE}.seq_1_to_3;
             UPDATE {DATABASE}.orders SET status = 'shipped', updated_at = UTC_TIMESTAMP(6) WHERE id = 1;"
        ))?;
    }
    if demo_pg::prepare()? {
        fresh_start(&bin, &project, demo_pg::PIPELINE, demo_pg::SCHEMA);
    }

    step!("demo: singer run demo ({})", project.display());
    singer(&bin, &project, &["run", "demo"]).run()?;
    step!(
        "demo: singer run {} ({})",
        demo_pg::PIPELINE,
        project.display()
    );
    singer(&bin, &project, &["run", demo_pg::PIPELINE]).run()?;
    show(&bin, &project)
}

/// A source that was just seeded starts over: its pipeline's stored state and target schema,
/// left by an earlier seeding, would otherwise skip or keep rows the new source lacks.
fn fresh_start(bin: &Path, project: &Path, pipeline: &str, schema: &str) {
    // Both fail harmlessly when there is nothing to remove.
    singer(bin, project, &["state", "clear", pipeline]).succeeds();
    crate::bench::psql()
        .arg("-c")
        .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .succeeds();
}

/// Creates the database on first use; returns whether it did.
fn seed() -> Result<bool> {
    let exists = Cmd::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", "-N", "-B", "-e"])
        .arg(format!("SELECT COUNT(*) FROM {DATABASE}.orders"))
        .succeeds();
    if exists {
        return Ok(false);
    }
    step!("demo: seeding MariaDB database {DATABASE} (customers, products, orders)");
    mariadb(&format!(
        "SET NAMES utf8mb4; SET time_zone = '+00:00';
DROP DATABASE IF EXISTS {DATABASE}; CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4;
CREATE TABLE {DATABASE}.customers (
  id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(80) NOT NULL, email VARCHAR(120),
  vip TINYINT(1) NOT NULL DEFAULT 0, created_at DATETIME(6) NOT NULL);
INSERT INTO {DATABASE}.customers (name, email, vip, created_at) VALUES
  ('Zoë Ångström', 'zoe@example.com', 1, '2024-01-02 03:04:05.123456'),
  ('José \"Pepe\" Núñez', NULL, 0, '2024-02-29 12:00:00'),
  ('李小龙 🐉', 'lee@example.com', 0, '2024-03-01 00:00:00.000001');
CREATE TABLE {DATABASE}.products (
  sku VARCHAR(20) PRIMARY KEY, title TEXT, price DECIMAL(12,2) NOT NULL, weight_kg DOUBLE,
  tags SET('new','sale','eco'), added DATE);
INSERT INTO {DATABASE}.products VALUES
  ('X-1', 'Widget', 9.99, 0.25, 'new,eco', '2023-12-31'),
  ('X-2', 'Gadget with a\\ttab', 1234567890.12, NULL, '', NULL);
CREATE TABLE {DATABASE}.orders (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, customer_id INT UNSIGNED NOT NULL,
  status ENUM('new','paid','shipped') NOT NULL, total DECIMAL(10,2) NOT NULL, items JSON,
  updated_at TIMESTAMP(6) NOT NULL);
INSERT INTO {DATABASE}.orders (customer_id, status, total, items, updated_at)
  SELECT 1 + seq % 3, ELT(1 + seq % 3, 'new', 'paid', 'shipped'), seq * 3.25,
         JSON_ARRAY(JSON_OBJECT('sku', 'X-1', 'qty', seq)),
         TIMESTAMP('2024-05-01 00:00:00') + INTERVAL seq MINUTE
  FROM {DATABASE}.seq_1_to_20;"
    ))?;
    Ok(true)
}

fn mariadb(sql: &str) -> Result {
    Cmd::new("mariadb")
        .args([
            "-uroot",
            "-h127.0.0.1",
            "--default-character-set=utf8mb4",
            "-e",
        ])
        .arg(sql)
        .run()
}

fn singer(bin: &Path, project: &Path, args: &[&str]) -> Cmd {
    Cmd::new(bin.join("singer"))
        .arg("--project")
        .arg(project)
        .args(args)
}

fn show(bin: &Path, project: &Path) -> Result {
    let psql = |sql: &str| -> Result {
        Cmd::new("psql")
            .args(crate::bench::PSQL_CONNECTION)
            .args(["-X", "-P", "pager=off", "-c"])
            .arg(sql)
            .run()
    };
    eprintln!("\n== MariaDB -> PostgreSQL: what landed (schema {SCHEMA} of test) ==");
    psql(&format!(
        "SELECT 'customers' AS table, count(*) AS rows FROM {SCHEMA}.customers
         UNION ALL SELECT 'products', count(*) FROM {SCHEMA}.products
         UNION ALL SELECT 'orders', count(*) FROM {SCHEMA}.orders"
    ))?;
    psql(&format!(
        "SELECT id, name, email, vip, created_at FROM {SCHEMA}.customers ORDER BY id"
    ))?;
    psql(&format!(
        "SELECT sku, title, price, tags, added FROM {SCHEMA}.products ORDER BY sku"
    ))?;
    psql(&format!(
        "SELECT id, status, total, items, updated_at FROM {SCHEMA}.orders ORDER BY updated_at DESC, id DESC LIMIT 5"
    ))?;
    demo_pg::show()?;
    for pipeline in ["demo", demo_pg::PIPELINE] {
        eprintln!("\n== The state singer stored for {pipeline} (its next run starts here) ==");
        singer(bin, project, &["state", "get", pipeline]).run()?;
    }
    eprintln!("\n== Runs so far ==");
    singer(bin, project, &["runs", "--limit", "6"]).run()?;
    eprintln!("\nRun `cargo xtask demo` again: new and changed orders move incrementally.");
    Ok(())
}
