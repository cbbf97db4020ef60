//! `singer init`: a commented starter project file.

pub(crate) const STARTER: &str = r#"# singer.toml: pipelines for the `singer` orchestrator.
# Run one with `singer run shop`; print this file's JSON Schema with `singer schema`.

# Where state, cached catalogs, spools and run records live (default: .singer beside this file).
# home = ".singer"

# Confirmed states are kept in files by default. For several machines use PostgreSQL
# (locks become advisory locks there):
# [state]
# backend = "postgres"
# url = "postgresql://postgres@127.0.0.1:5432/test"

[taps.shop_db]
executable = "tap-mysql"              # on PATH, or a path relative to this file
# catalog_arg = "--properties"        # for older singer-io taps
[taps.shop_db.config]
host = "127.0.0.1"
port = 3306
user = "root"
password = "${MYSQL_PASSWORD}"        # ${NAME} is read from the environment
filter_dbs = "shop"

[targets.warehouse]
executable = "target-postgres"
[targets.warehouse.config]
host = "127.0.0.1"
user = "postgres"
database = "warehouse"
default_target_schema = "shop"

[pipelines.shop]
tap = "shop_db"
target = "warehouse"
select = ["shop-*"]                   # globs over tap_stream_id
exclude = ["shop-audit_*"]
schedule = "*/15 * * * *"             # 5 fields, or 6 with seconds first
timezone = "UTC"
retries = 1                           # extra attempts, each resuming from the confirmed state
timeout = "2h"
# stop_grace = "60s"                  # on SIGTERM, Ctrl-C or timeout: how long the target may take to commit
buffer = "16MiB"                      # between tap and target, so neither waits for the other

# Per-stream replication settings override the catalog.
[pipelines.shop.streams."shop-orders"]
replication_method = "INCREMENTAL"
replication_key = "updated_at"

# Spool the tap's output to compressed batch files before loading: a failed load is replayed
# from the spool without extracting again.
# [pipelines.shop.spool]
# max_records = 100000
# max_bytes = "64MiB"
# max_age = "60s"
# format = "jsonl"   # or "parquet": records kept as Parquet files, loaded through BATCH messages
# root = "s3://bucket/prefix"   # also keep the batches in S3 (AWS_* variables), for any machine
"#;
