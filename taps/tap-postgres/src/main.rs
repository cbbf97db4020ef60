//! `tap-postgres`: a Singer tap for PostgreSQL.
//!
//! Discovery reads the system catalogs in two queries. FULL_TABLE streams each table with
//! COPY in primary-key order and resumes from the last key emitted; INCREMENTAL reads from a
//! replication-key bookmark; LOG_BASED takes a snapshot exported by a logical replication
//! slot and then follows the changes `pgoutput` decodes from the WAL.

mod array;
mod config;
mod connect;
mod copy;
mod discover;
mod full_table;
mod incremental;
mod kind;
mod logical;
mod stream;
mod sync;
mod value;

use singer_core::Catalog;
use singer_core::sdk::tap::{Tap, TapContext, run_tap};
use singer_core::sdk::{About, SdkError};

use crate::config::Config;
use crate::connect::Connector;
use crate::discover::Filter;

struct PostgresTap {
    config: Config,
    connector: Connector,
}

impl Tap for PostgresTap {
    const NAME: &'static str = "tap-postgres";
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
        ];
        About::new(
            Self::NAME,
            "PostgreSQL: full-table, incremental and pgoutput logical replication",
            Self::VERSION,
            &caps,
            settings,
        )
    }

    fn new(config: Config) -> Result<Self, SdkError> {
        let config = config.resolve().map_err(SdkError::Config)?;
        let connector = Connector::new(&config);
        Ok(Self { config, connector })
    }

    async fn discover(&mut self) -> Result<Catalog, SdkError> {
        let client = self.connector.connect().await?;
        let filter = Filter {
            schemas: self.config.filter_schemas.clone(),
            tables: self.config.filter_tables.clone(),
        };
        let tables = discover::load_tables(&client, &filter).await?;
        tracing::info!(tables = tables.len(), "discovered");
        Ok(Catalog {
            streams: tables
                .iter()
                .map(|t| discover::catalog_entry(t, &self.config.dbname))
                .collect(),
        })
    }

    async fn sync(&mut self, ctx: &mut TapContext, catalog: Catalog) -> Result<(), SdkError> {
        sync::run(&self.config, &self.connector, ctx, catalog).await
    }
}

fn main() -> std::process::ExitCode {
    run_tap::<PostgresTap>()
}
