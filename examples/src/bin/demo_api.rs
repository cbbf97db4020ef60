//! `demo-api`: a tiny JSON HTTP API for the tap-pages example, its tests and the demo.
//!
//! `demo-api [--port P] [--pages N] [--page-size M] [--fail-first K]` serves N×M items on
//! 127.0.0.1 and prints its base URL on the first line of stdout.
//! - `GET /items?page=P&page_size=M&updated_since=T`: items with `updated_at >= T`, sorted by
//!   `updated_at`, one page at a time, with `next_page` (null on the last page).
//! - `POST /touch?id=I`: makes item I the most recently updated one.
//! - The first K requests answer 503, to exercise retries.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

struct Api {
    items: Mutex<Vec<Value>>,
    page_size: usize,
    fail_first: u64,
    requests: AtomicU64,
}

fn timestamp(hour: usize) -> String {
    format!("2024-01-{:02}T{:02}:00:00Z", 1 + hour / 24, hour % 24)
}

fn item(id: usize, hour: usize) -> Value {
    let amount: Value =
        serde_json::from_str(&format!("{}.{:02}", id * 12, id % 100)).unwrap_or(Value::Null);
    json!({"id": id, "name": format!("item {id}: «quoted \"text\"» 🚀"), "amount": amount, "updated_at": timestamp(hour)})
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (pages, page_size) = (
        arg(&args, "--pages", 3),
        arg(&args, "--page-size", 5).max(1),
    );
    let listener = TcpListener::bind(("127.0.0.1", arg(&args, "--port", 0) as u16))?;
    let api = Arc::new(Api {
        items: Mutex::new((1..=pages * page_size).map(|i| item(i, i)).collect()),
        page_size,
        fail_first: arg(&args, "--fail-first", 0) as u64,
        requests: AtomicU64::new(0),
    });
    let mut out = std::io::stdout();
    writeln!(out, "http://{}", listener.local_addr()?)?;
    out.flush()?;
    for stream in listener.incoming().flatten() {
        let api = api.clone();
        std::thread::spawn(move || {
            let _ = serve(&api, stream);
        });
    }
    Ok(())
}

fn serve(api: &Api, stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |k: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(n, _)| *n == k)
            .map(|(_, v)| decode(v))
    };
    let (status, body) = if api.requests.fetch_add(1, Ordering::SeqCst) < api.fail_first {
        ("503 Service Unavailable", json!({"error": "try again"}))
    } else {
        match (method, path) {
            ("GET", "/items") => (
                "200 OK",
                page(
                    api,
                    param("page"),
                    param("page_size"),
                    param("updated_since"),
                ),
            ),
            ("POST", "/touch") => (
                "200 OK",
                touch(api, param("id").and_then(|v| v.parse().ok())),
            ),
            _ => ("404 Not Found", json!({"error": "not found"})),
        }
    };
    let body = body.to_string();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn page(api: &Api, page: Option<String>, size: Option<String>, since: Option<String>) -> Value {
    let page: usize = page.and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let size: usize = size
        .and_then(|p| p.parse().ok())
        .unwrap_or(api.page_size)
        .max(1);
    let items = api.items.lock().map(|i| i.clone()).unwrap_or_default();
    let mut matching: Vec<Value> = items
        .into_iter()
        .filter(|i| {
            since
                .as_deref()
                .is_none_or(|s| i["updated_at"].as_str().is_some_and(|t| t >= s))
        })
        .collect();
    matching.sort_by(|a, b| a["updated_at"].as_str().cmp(&b["updated_at"].as_str()));
    let start = (page - 1) * size;
    let chunk: Vec<Value> = matching.iter().skip(start).take(size).cloned().collect();
    let next = (start + size < matching.len()).then_some(page + 1);
    json!({"items": chunk, "next_page": next})
}

fn touch(api: &Api, id: Option<usize>) -> Value {
    let Ok(mut items) = api.items.lock() else {
        return json!({"error": "poisoned"});
    };
    let newest = items.len() + 100;
    match items
        .iter_mut()
        .find(|i| i["id"].as_u64() == id.map(|v| v as u64))
    {
        Some(item) => {
            item["updated_at"] = json!(timestamp(newest));
            item.clone()
        }
        None => json!({"error": "no such item"}),
    }
}

/// Decodes `%XX` escapes of a query value.
fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
