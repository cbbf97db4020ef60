//! The PostgreSQL half of `cargo xtask demo`: a shop database `singer_demo_src` on the shared
//! server, read by tap-postgres and loaded by target-postgres into schema `singer_demo_pg` of
//! database `test` (pipeline `demo_pg`).
//!
//! Its columns show what PostgreSQL has and MariaDB lacks: `citext`, `numeric(10,2)`,
//! `timestamptz`, `jsonb`, `text[]`, `interval` and `uuid`. `orders` replicates by
//! `updated_at` (INCREMENTAL); `customers` is copied in full. The shared server runs
//! `wal_level = replica`, so the demo does not use LOG_BASED.

use std::path::Path;

use crate::Result;
use crate::process::Cmd;

/// The source database on the shared server.
pub(crate) const SOURCE_DB: &str = "singer_demo_src";
/// The schema of database `test` the pipeline loads into.
pub(crate) const SCHEMA: &str = "singer_demo_pg";
/// The pipeline's name in `singer.toml`.
pub(crate) const PIPELINE: &str = "demo_pg";

/// psql on `database`: no psqlrc, no pager, no notices, stopping at the first error.
fn psql(database: &str) -> Cmd {
    Cmd::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", database])
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-P", "pager=off"])
        .env("PGOPTIONS", "-c client_min_messages=warning")
}

/// The `singer.toml` part of this pipeline.
pub(crate) fn project_section(bin: &Path) -> String {
    format!(
        r#"
# PostgreSQL -> PostgreSQL. LOG_BASED would need wal_level = logical on the source and a user
# with REPLICATION; this shared server runs wal_level = replica, so orders go by updated_at.
[taps.shop_pg]
executable = "{tap}"
[taps.shop_pg.config]
host = "127.0.0.1"
port = 5432
user = "postgres"
dbname = "{SOURCE_DB}"
[taps.shop_pg.env]
RUST_LOG = "warn"

[targets.warehouse_pg]
executable = "{target}"
[targets.warehouse_pg.config]
host = "127.0.0.1"
user = "postgres"
database = "test"
default_target_schema = "{SCHEMA}"
[targets.warehouse_pg.env]
RUST_LOG = "warn"

[pipelines.{PIPELINE}]
tap = "shop_pg"
target = "warehouse_pg"
select = ["public-*"]
[pipelines.{PIPELINE}.streams."public-customers"]
replication_method = "FULL_TABLE"
[pipelines.{PIPELINE}.streams."public-orders"]
replication_method = "INCREMENTAL"
replication_key = "updated_at"
"#,
        tap = bin.join("tap-postgres").display(),
        target = bin.join("target-postgres").display(),
    )
}

/// Seeds the source database on first use, or else adds and changes a few orders so the
/// next run has something to move. Returns whether it seeded.
pub(crate) fn prepare() -> Result<bool> {
    let exists = psql(SOURCE_DB)
        .args(["-c", "SELECT count(*) FROM orders"])
        .succeeds();
    if exists {
        step!("demo: adding 2 orders and updating order 3 in PostgreSQL since the last run");
        psql(SOURCE_DB)
            .arg("-c")
            .arg(
                "INSERT INTO orders (customer_id, total, tags, details, delivery_window)
                   SELECT 1 + n % 3, 19.90 * n, ARRAY['repeat', 'batch ' || n],
                          jsonb_build_object('note', 'added by a later run', 'gift', n = 2),
                          make_interval(days => n, hours => 6)
                   FROM generate_series(1, 2) n;
                 UPDATE orders SET details = details || '{\"status\": \"shipped\"}',
                                   updated_at = clock_timestamp()
                   WHERE id = 3;",
            )
            .run()?;
        return Ok(false);
    }
    step!("demo: seeding PostgreSQL database {SOURCE_DB} (customers, orders)");
    psql("test")
        .args(["-c", &format!("DROP DATABASE IF EXISTS {SOURCE_DB}")])
        .args(["-c", &format!("CREATE DATABASE {SOURCE_DB}")])
        .run()?;
    psql(SOURCE_DB).arg("-c").arg(SEED).run()?;
    Ok(true)
}

const SEED: &str = r#"
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE customers (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name varchar(80) NOT NULL,
  email citext UNIQUE,
  birthday date,
  country char(2));
INSERT INTO customers (name, email, birthday, country) VALUES
  ('Zoë Ångström', 'Zoe@Example.com', '1990-02-28', 'SE'),
  ('José "Pepe" Núñez', NULL, '1985-12-31', 'ES'),
  ('李小龙 🐉', 'LEE@example.com', '1940-11-27', 'HK');
CREATE TABLE orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  public_id uuid NOT NULL DEFAULT gen_random_uuid(),
  customer_id integer NOT NULL REFERENCES customers,
  total numeric(10,2) NOT NULL,
  tags text[] NOT NULL DEFAULT '{}',
  details jsonb,
  delivery_window interval,
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
INSERT INTO orders (public_id, customer_id, total, tags, details, delivery_window, updated_at)
  SELECT md5('order ' || n)::uuid, 1 + n % 3, n * 3.25,
         CASE n % 3 WHEN 0 THEN '{}' WHEN 1 THEN ARRAY['gift'] ELSE ARRAY['eco', 'say "hi"'] END,
         jsonb_build_object('items', jsonb_build_array(jsonb_build_object('sku', 'X-1', 'qty', n)),
                            'paid', n % 2 = 0),
         make_interval(days => n % 4, hours => n, mins => 30),
         timestamptz '2024-05-01 00:00:00.000001+00' + make_interval(mins => n)
  FROM generate_series(1, 20) n;
"#;

/// Prints what landed in `singer_demo_pg`, and the column types on both sides.
pub(crate) fn show() -> Result {
    eprintln!("\n== PostgreSQL -> PostgreSQL: what landed (schema {SCHEMA} of test) ==");
    let types = |database: &str, schema: &str| -> Result<String> {
        psql(database)
            .args(["-A", "-t", "-c"])
            .arg(format!(
                "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', '
                                   ORDER BY attnum)
                 FROM pg_attribute
                 WHERE attrelid = '{schema}.orders'::regclass AND attnum > 0
                   AND NOT attisdropped AND attname NOT LIKE '\\_sdc\\_%'"
            ))
            .output()
    };
    eprintln!("orders in {SOURCE_DB}: {}", types(SOURCE_DB, "public")?);
    eprintln!("orders as loaded:      {}", types("test", SCHEMA)?);
    let test = |sql: String| psql("test").arg("-c").arg(sql).run();
    test(format!(
        "SELECT 'customers' AS table, count(*) AS rows FROM {SCHEMA}.customers
         UNION ALL SELECT 'orders', count(*) FROM {SCHEMA}.orders"
    ))?;
    test(format!(
        "SELECT id, name, email, birthday, country FROM {SCHEMA}.customers ORDER BY id"
    ))?;
    test(format!(
        "SELECT id, public_id, total, tags, details, delivery_window, updated_at
         FROM {SCHEMA}.orders ORDER BY updated_at DESC, id DESC LIMIT 4"
    ))
}
