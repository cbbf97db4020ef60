//! `tap-mysql`: a Singer tap for MySQL and MariaDB.
//!
//! Discovery reads information_schema in four queries. FULL_TABLE streams each table in primary
//! key order and resumes from the last key emitted; INCREMENTAL reads from a replication-key
//! bookmark; LOG_BASED takes a snapshot and then follows the row-based binlog. With
//! `batch_config`, copies and snapshots are written as BATCH files (see [`batch`]).

mod batch;
mod binlog;
mod column;
mod config;
mod connect;
mod discover;
mod full_table;
mod geojson;
mod incremental;
mod sql;
mod stream;
mod sync;
mod value;

use singer_core::Catalog;
use singer_core::sdk::tap::{Tap, TapContext, run_tap};
use singer_core::sdk::{About, SdkError};

use crate::column::KindOptions;
use crate::config::Config;
use crate::connect::Connector;
use crate::discover::Filter;

struct MysqlTap {
    config: Config,
    connector: Connector,
}

impl Tap for MysqlTap {
    const NAME: &'static str = "tap-mysql";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;

    fn about() -> About {
        let settings = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default();
        let caps = [
            "catalog",
            "properties",
            "discover",
            "state",
            "about",
            "log-based",
            "batch",
        ];
        About::new(
            Self::NAME,
            "MySQL and MariaDB: full-table, incremental and binlog replication",
            Self::VERSION,
            &caps,
            settings,
        )
    }

    fn new(config: Config) -> Result<Self, SdkError> {
        let connector = Connector::new(&config)?;
        Ok(Self { config, connector })
    }

    async fn discover(&mut self) -> Result<Catalog, SdkError> {
        let mut conn = self.connector.connect().await?;
        let info = connect::server_info(&mut conn, self.config.engine).await?;
        let filter = Filter {
            databases: self.config.databases(),
            tables: self.config.table_filter(),
        };
        let tables = discover::load_tables(&mut conn, info.engine, &filter).await?;
        let opts = KindOptions {
            tinyint1_as_boolean: self.config.tinyint1_as_boolean,
        };
        tracing::info!(tables = tables.len(), "discovered");
        Ok(Catalog {
            streams: tables
                .iter()
                .map(|t| discover::catalog_entry(t, opts))
                .collect(),
        })
    }

    async fn sync(&mut self, ctx: &mut TapContext, catalog: Catalog) -> Result<(), SdkError> {
        sync::run(&self.config, &self.connector, ctx, catalog).await
    }
}

fn main() -> std::process::ExitCode {
    run_tap::<MysqlTap>()
}
