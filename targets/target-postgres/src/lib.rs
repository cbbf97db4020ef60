//! # target-postgres
//!
//! A Singer target for PostgreSQL built on `singer_core::sdk::target`:
//!
//! - rows are encoded straight from raw JSON into binary COPY ([`encode`], [`values`]) on the
//!   input thread, and each stream loads on its own connection and task ([`loader`]); rows of
//!   Parquet BATCH files go from their Arrow columns into the same COPY rows
//!   ([`encode_arrow`]);
//! - one transaction per batch; a STATE is echoed only after the transactions holding every
//!   record before it committed (the SDK's rule); a large batch loads over several
//!   connections at once, its rows split by key ([`sink`], [`loader`]);
//! - a lost connection, a server restart, a serialization failure or a deadlock is retried
//!   with backoff after reconnecting, and a COMMIT whose answer was lost is looked up by
//!   transaction id, so nothing is loaded twice or lost ([`retry`]);
//! - tables and columns follow the stream schema ([`model`], [`types`]), widening in place
//!   and never dropping or rewriting data; names are kept as given ([`names`]);
//! - dates and timestamps load exactly over PostgreSQL's whole range, BC and beyond 9999
//!   included, and `infinity` ([`values`]); `validate_records` is the SDK's, whose `date`
//!   and `date-time` formats accept the same forms ([`singer_core::dates`]).

pub mod buffers;
pub mod config;
pub mod connect;
pub mod encode;
pub mod encode_arrow;
pub mod loader;
pub mod model;
pub mod names;
pub mod retry;
pub mod sent;
pub mod sink;
pub mod stage;
pub mod types;
pub mod values;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use singer_core::sdk::target::{BatchLimits, StreamSpec, Target};
use singer_core::sdk::{About, SdkError};
use tokio::sync::Semaphore;

pub use config::Config;
use loader::PgLoader;
use model::{PlanOptions, TableModel};
use names::pg_name;
use retry::{Retry, RetryPolicy};
use sink::PgSink;

/// The target.
pub struct PostgresTarget {
    config: Arc<Config>,
    limits: BatchLimits,
    retry: RetryPolicy,
    sequence_base: i64,
    /// Extra connections the streams share when `stream_connections` is unset.
    budget: Option<Arc<Semaphore>>,
}

impl Target for PostgresTarget {
    const NAME: &'static str = "target-postgres";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;
    type Sink = PgSink;

    fn about() -> About {
        let settings = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default();
        About::new(
            Self::NAME,
            "Loads Singer streams into PostgreSQL with binary COPY and transactional upserts",
            Self::VERSION,
            &[
                "about",
                "activate-version",
                "soft-delete",
                "hard-delete",
                "record-metadata",
                "validate-records",
                "batch",
            ],
            settings,
        )
    }

    fn new(config: Config) -> Result<Self, SdkError> {
        if let Some(n) = config.stream_connections.filter(|n| !(1..=16).contains(n)) {
            return Err(SdkError::Config(format!(
                "stream_connections must be between 1 and 16, not {n}"
            )));
        }
        let limits = BatchLimits::from_settings(
            config.batch_size_rows,
            config.batch_size_bytes,
            config.max_batch_age_seconds,
        )?;
        let retry = RetryPolicy::from_settings(config.max_retries, config.retry_backoff_seconds)?;
        if !(config.drain_timeout_seconds > 0.0 && config.drain_timeout_seconds <= 86_400.0) {
            return Err(SdkError::Config(format!(
                "drain_timeout_seconds must be above 0 and at most 86400, not {}",
                config.drain_timeout_seconds
            )));
        }
        // _sdc_sequence = seconds of the run start × 10^9 + input line: increasing across runs.
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Ok(Self {
            limits,
            retry,
            sequence_base: secs * 1_000_000_000,
            budget: config
                .stream_connections
                .is_none()
                .then(|| Arc::new(Semaphore::new(config::AUTO_EXTRA_CONNECTIONS))),
            config: Arc::new(config),
        })
    }

    fn limits(&self) -> BatchLimits {
        self.limits
    }

    fn validate_records(&self) -> bool {
        self.config.validate_records
    }

    fn drain_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.config.drain_timeout_seconds)
    }

    async fn setup(&mut self) -> Result<(), SdkError> {
        // Fail early, before reading input, when the database is unreachable (not retried: a
        // wrong host or port fails at once).
        connect::connect(&self.config).await.map(|_| ())
    }

    async fn open_stream(&self, spec: Arc<StreamSpec>) -> Result<(PgSink, PgLoader), SdkError> {
        let stream = spec.message.stream.clone();
        let (schema, table) = self.config.route(&stream);
        let (schema, table) = (pg_name(&schema), pg_name(&table));
        let mut retry = Retry::new(self.retry, "connecting");
        let (client, model): (_, TableModel) = loop {
            let opened = async {
                let client = connect::connect(&self.config).await?;
                let model = loader::introspect(&client, &schema, &table).await?;
                Ok::<_, SdkError>((client, model))
            }
            .await;
            match opened {
                Ok(opened) => break opened,
                Err(e) => retry.wait(&stream, e).await?,
            }
        };
        let opts = PlanOptions {
            metadata: self.config.add_record_metadata,
        };
        let sink = PgSink::new(
            &stream,
            model.clone(),
            opts,
            &self.config,
            &spec,
            self.sequence_base,
        )?;
        let loader = PgLoader::open(
            &stream,
            self.config.clone(),
            client,
            model,
            &spec,
            opts,
            self.retry,
        )
        .await?
        .with_buffers(sink.buffers())
        .with_budget(self.budget.clone());
        tracing::info!(stream = %stream, schema = %schema, table = %table, "stream routed");
        Ok((sink, loader))
    }
}
