//! The HTTP endpoint: hyper (HTTP/1) on a current-thread tokio runtime in a thread of its own,
//! so the runs' std threads are never slowed by a scrape.
//!
//! - `GET /metrics`: every metric, OpenMetrics text;
//! - `GET /healthz`: 200 `ok` while `singer run` runs, or while the scheduler loop of
//!   `singer schedule` keeps going round (it does every 100 ms); 503 once a stop was asked
//!   (SIGTERM or Ctrl-C), or when the loop has not gone round for [`STUCK_AFTER`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::{EXPORTER, Exporter};
use crate::project::Project;
use crate::store::Store;

/// How long the scheduler loop may go without a round before `/healthz` reports it stuck.
pub(crate) const STUCK_AFTER: Duration = Duration::from_secs(30);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the endpoint serves for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `singer run`: one pipeline, healthy until a stop is asked.
    Run,
    /// `singer schedule`: the scheduled pipelines, healthy while the loop goes round.
    Schedule,
}

/// The running endpoint.
pub(crate) struct Server {
    shared: Arc<Shared>,
}

struct Shared {
    exporter: Arc<Exporter>,
    mode: Mode,
    shutdown: Arc<AtomicBool>,
    /// Set once the run ended: a scrape that starts after it sees the final values.
    ended: AtomicBool,
    /// A scrape that started after the run ended was answered in full.
    final_scraped: AtomicBool,
}

/// Starts the endpoint on `addr` (what is given is bound, `0.0.0.0` included; port 0 picks a
/// free one, and the log line `metrics endpoint listening` gives it in `addr`), for the
/// pipeline `only` (`singer run`) or every scheduled one. The time of each pipeline's last
/// confirmed state is seeded from the state store.
pub(crate) fn serve(
    addr: &str,
    project: &Project,
    home: &Path,
    only: Option<&str>,
    shutdown: Arc<AtomicBool>,
) -> Result<Server, String> {
    let mode = if only.is_some() {
        Mode::Run
    } else {
        Mode::Schedule
    };
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen on --metrics-addr `{addr}`: {e}"))?;
    let bound: SocketAddr = listener
        .local_addr()
        .map_err(|e| format!("--metrics-addr `{addr}`: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("--metrics-addr `{addr}`: {e}"))?;
    let exporter = Arc::new(Exporter::new(
        super::scope(project, home, only),
        mode == Mode::Schedule,
    ));
    EXPORTER
        .set(Arc::clone(&exporter))
        .map_err(|_| "the metrics endpoint is already running".to_string())?;
    match Store::open(&project.state, home) {
        Ok(store) => super::seed_confirmed(&store),
        Err(e) => tracing::warn!("metrics: cannot open the state store: {e}"),
    }
    let shared = Arc::new(Shared {
        exporter,
        mode,
        shutdown,
        ended: AtomicBool::new(false),
        final_scraped: AtomicBool::new(false),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("the metrics endpoint cannot start: {e}"))?;
    let s = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || runtime.block_on(accept_loop(listener, s)))
        .map_err(|e| format!("the metrics endpoint cannot start: {e}"))?;
    tracing::info!(addr = %bound, "metrics endpoint listening");
    Ok(Server { shared })
}

impl Server {
    /// The run ended. Keeps `/metrics` up until it was scraped once more (so the outcome is
    /// seen), at most `max`, or until a stop is asked that was not asked before.
    pub(crate) fn linger(&self, max: Duration) {
        self.shared.ended.store(true, Ordering::SeqCst);
        if max.is_zero() {
            return;
        }
        tracing::info!(
            seconds = max.as_secs_f64(),
            "run ended: serving the final metrics until they are scraped"
        );
        let stopped_before = self.shared.shutdown.load(Ordering::SeqCst);
        let until = Instant::now() + max;
        while Instant::now() < until
            && !self.shared.final_scraped.load(Ordering::SeqCst)
            && (stopped_before || !self.shared.shutdown.load(Ordering::SeqCst))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn accept_loop(listener: std::net::TcpListener, shared: Arc<Shared>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("metrics endpoint: {e}");
            return;
        }
    };
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            // Whether this connection answered a scrape that started after the run ended;
            // such a response closes the connection, and counts once it is fully sent.
            let final_scrape = Arc::new(AtomicBool::new(false));
            let svc = {
                let shared = Arc::clone(&shared);
                let final_scrape = Arc::clone(&final_scrape);
                service_fn(move |req| {
                    let r = respond(&req, &shared, &final_scrape);
                    async move { Ok::<_, Infallible>(r) }
                })
            };
            let served = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
            if served.is_ok() && final_scrape.load(Ordering::SeqCst) {
                shared.final_scraped.store(true, Ordering::SeqCst);
            }
        });
    }
}

fn respond(
    req: &Request<Incoming>,
    shared: &Shared,
    final_scrape: &AtomicBool,
) -> Response<Full<Bytes>> {
    let get = req.method() == Method::GET;
    match req.uri().path() {
        "/metrics" if get => {
            let last = shared.ended.load(Ordering::SeqCst);
            let body = shared.exporter.render(Utc::now());
            let mut r = reply(StatusCode::OK, OPENMETRICS, body);
            if last {
                final_scrape.store(true, Ordering::SeqCst);
                r.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            r
        }
        "/healthz" if get => {
            let (status, text) = health(shared);
            reply(status, "text/plain; charset=utf-8", text)
        }
        "/metrics" | "/healthz" => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics or /healthz\n".into(),
        ),
    }
}

fn health(shared: &Shared) -> (StatusCode, String) {
    if shared.shutdown.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    if shared.mode == Mode::Run {
        return (StatusCode::OK, "ok\n".into());
    }
    match shared.exporter.last_tick() {
        Some(t) => {
            let since = (Utc::now() - t).to_std().unwrap_or_default();
            if since <= STUCK_AFTER {
                (StatusCode::OK, "ok\n".into())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "stuck: the scheduler loop last went round {} s ago\n",
                        since.as_secs()
                    ),
                )
            }
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: the scheduler loop has not gone round yet\n".into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
