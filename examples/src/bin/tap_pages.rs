//! `tap-pages`: a complete Singer tap in under 200 lines.
//!
//! It pages through a JSON HTTP API (`GET {base_url}/items?page=N&page_size=M&updated_since=T`
//! answering `{"items": [...], "next_page": N+1 | null}`) and keeps an incremental bookmark on
//! `updated_at`. The SDK (`singer_core::sdk::tap`) does the CLI, config, state, catalog and
//! metrics; this file only says what the stream is and how to read it.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use singer_core::sdk::tap::{Tap, TapContext, run_tap};
use singer_core::sdk::{About, SdkError};
use singer_core::{Catalog, CatalogEntry, Secret};

const STREAM: &str = "items";
const BOOKMARK: &str = "updated_at";

/// Settings of tap-pages.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Base URL of the API, e.g. `https://api.example.com`.
    base_url: String,
    /// Only read items updated at or after this RFC 3339 time on the first run.
    #[serde(default)]
    start_date: Option<String>,
    /// Items per page.
    #[serde(default = "default_page_size")]
    page_size: u32,
    /// Bearer token, if the API needs one (never logged).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    api_token: Option<Secret>,
}

fn default_page_size() -> u32 {
    100
}

/// One page of the API.
#[derive(Deserialize)]
struct Page {
    items: Vec<Map<String, Value>>,
    next_page: Option<u32>,
}

struct PagesTap {
    config: Config,
    http: reqwest::Client,
}

impl Tap for PagesTap {
    const NAME: &'static str = "tap-pages";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;

    fn about() -> About {
        let settings = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default();
        let caps = ["catalog", "properties", "discover", "state", "about"];
        About::new(
            Self::NAME,
            "Pages through a JSON HTTP API",
            Self::VERSION,
            &caps,
            settings,
        )
    }

    fn new(config: Config) -> Result<Self, SdkError> {
        if !config.base_url.starts_with("http://") && !config.base_url.starts_with("https://") {
            return Err(SdkError::Config(
                "base_url must start with http:// or https://".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| SdkError::fatal("cannot build the HTTP client", e))?;
        Ok(Self { config, http })
    }

    async fn discover(&mut self) -> Result<Catalog, SdkError> {
        let schema = json!({"type": "object", "properties": {
            "id": {"type": "integer"},
            "name": {"type": ["null", "string"]},
            "amount": {"type": ["null", "number"], "multipleOf": 0.01},
            "updated_at": {"type": "string", "format": "date-time"}
        }});
        let mut entry = CatalogEntry::new(STREAM, STREAM, schema);
        entry.set_stream_metadata("table-key-properties", json!(["id"]));
        entry.set_stream_metadata("valid-replication-keys", json!([BOOKMARK]));
        entry.set_stream_metadata("forced-replication-method", json!("INCREMENTAL"));
        entry.set_stream_metadata("replication-key", json!(BOOKMARK));
        entry.set_stream_metadata("selected-by-default", json!(true));
        for p in ["id", BOOKMARK] {
            entry.set_property_metadata(p, "inclusion", json!("automatic"));
        }
        for p in ["name", "amount"] {
            entry.set_property_metadata(p, "inclusion", json!("available"));
            entry.set_property_metadata(p, "selected-by-default", json!(true));
        }
        Ok(Catalog {
            streams: vec![entry],
        })
    }

    async fn sync(&mut self, ctx: &mut TapContext, catalog: Catalog) -> Result<(), SdkError> {
        let Some(entry) = catalog
            .selected_streams()
            .find(|s| s.tap_stream_id == STREAM)
        else {
            tracing::warn!("stream `{STREAM}` is not selected; nothing to do");
            return Ok(());
        };
        let fields = entry.selected_properties();
        let since = ctx
            .state()
            .bookmark_value(STREAM, BOOKMARK)
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| self.config.start_date.clone());
        ctx.begin_stream(STREAM);
        ctx.write_schema(entry)?;
        // The filter stays fixed for the whole sync; the bookmark moves as rows are written.
        let mut bookmark = since.clone();
        let mut page = Some(1);
        while let Some(n) = page {
            let body = self.fetch(n, since.as_deref()).await?;
            for mut item in body.items {
                item.retain(|k, _| fields.contains(k));
                ctx.write_record(&entry.stream, &item)?;
                // The API sorts by updated_at, so the last item holds the newest value.
                if let Some(t) = item.get(BOOKMARK).and_then(Value::as_str) {
                    bookmark = Some(t.to_string());
                }
            }
            // Advance the bookmark only after the page's rows were written.
            if let Some(t) = &bookmark {
                ctx.state_mut()
                    .set_bookmark_value(STREAM, BOOKMARK, json!(t));
                ctx.write_state()?;
            }
            page = body.next_page;
        }
        ctx.end_stream(STREAM, &entry.stream)
    }
}

impl PagesTap {
    /// GETs one page, retrying transient failures with exponential backoff.
    async fn fetch(&self, page: u32, since: Option<&str>) -> Result<Page, SdkError> {
        let url = format!("{}/items", self.config.base_url.trim_end_matches('/'));
        let mut query = vec![
            ("page", page.to_string()),
            ("page_size", self.config.page_size.to_string()),
        ];
        if let Some(s) = since {
            query.push(("updated_since", s.to_string()));
        }
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=5 {
            let mut req = self.http.get(&url).query(&query);
            if let Some(token) = &self.config.api_token {
                req = req.bearer_auth(token.expose());
            }
            let retriable = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let bytes = resp
                        .bytes()
                        .await
                        .map_err(|e| SdkError::fatal("reading a page", e))?;
                    return serde_json::from_slice(&bytes)
                        .map_err(|e| SdkError::fatal(format!("page {page} is not valid JSON"), e));
                }
                Ok(resp) if resp.status().is_server_error() || resp.status().as_u16() == 429 => {
                    format!("HTTP {}", resp.status())
                }
                Ok(resp) => {
                    let msg = format!("GET {url} page {page}: HTTP {}", resp.status());
                    return Err(SdkError::fatal(
                        msg,
                        std::io::Error::other("request rejected"),
                    ));
                }
                Err(e) => e.to_string(),
            };
            tracing::warn!(page, attempt, reason = %retriable, "request failed; retrying");
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        Err(SdkError::fatal(
            format!("GET {url} page {page}"),
            std::io::Error::other("giving up after 5 attempts"),
        ))
    }
}

fn main() -> std::process::ExitCode {
    run_tap::<PagesTap>()
}
