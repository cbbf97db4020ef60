//! A TCP proxy between the target and the test server that breaks connections on cue: the
//! network faults of real life against a real PostgreSQL, with no mock in between.
//!
//! It reads the frontend protocol (the startup message, then type byte + length + body) to
//! find statements: simple queries (`Q`) and extended-protocol parses (`P`). A [`Cut`] fires
//! on the n-th statement it matches, counted over every connection (a parsed statement at its
//! next `Execute` on that connection), with one of three [`Fate`]s.
//! [`Proxy::go_down`] closes every connection and refuses new ones.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a cut happens.
#[derive(Clone)]
pub(crate) struct Cut {
    /// The statements it counts.
    pub(crate) matches: fn(&str) -> bool,
    /// The occurrence (1-based) that is cut.
    pub(crate) nth: u32,
    /// What becomes of it.
    pub(crate) fate: Fate,
}

/// What becomes of the statement a [`Cut`] fires on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Fate {
    /// It reaches the server, which runs (and commits) it; its answer is lost and the
    /// connection closed.
    Delivered,
    /// It never reaches the server; the connection is closed on both sides.
    Dropped,
    /// It never reaches the server, and only the client's side is closed: the server's session
    /// lives on, holding its open transaction, as when a network path fails silently.
    Stranded,
}

/// A running proxy; it lives as long as the test process.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: (String, u16),
    cut: Option<Cut>,
    seen: AtomicU32,
    fired: AtomicU32,
    down: AtomicBool,
    /// Both sockets of every connection, to close them all.
    open: Mutex<Vec<(TcpStream, TcpStream)>>,
}

impl Proxy {
    /// Starts a proxy to the test server, with an optional cut.
    pub(crate) fn start(cut: Option<Cut>) -> Self {
        let s = crate::server();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream: (s.host, s.port),
            cut,
            seen: AtomicU32::new(0),
            fired: AtomicU32::new(0),
            down: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
        });
        let sh = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if sh.down.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let sh = Arc::clone(&sh);
                std::thread::spawn(move || serve(&sh, client));
            }
        });
        Self { port, shared }
    }

    /// How many times the cut fired.
    pub(crate) fn fired(&self) -> u32 {
        self.shared.fired.load(Ordering::SeqCst)
    }

    /// Closes every connection and refuses new ones from now on.
    pub(crate) fn go_down(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        for (c, s) in self.shared.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn serve(sh: &Arc<Shared>, client: TcpStream) {
    let Ok(server) = TcpStream::connect((sh.upstream.0.as_str(), sh.upstream.1)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    sh.open
        .lock()
        .unwrap()
        .push((client.try_clone().unwrap(), server.try_clone().unwrap()));
    // Set once a cut fired: the server's answers no longer reach the client.
    let muted = Arc::new(AtomicBool::new(false));
    {
        let (mut from, mut to) = (server.try_clone().unwrap(), client.try_clone().unwrap());
        let muted = Arc::clone(&muted);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if !muted.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Both);
        });
    }
    let close = |client: &TcpStream, server: &TcpStream| {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    };
    let (mut from, mut to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    // The startup message: length (itself included) and body, no type byte.
    let Some(startup) = read_exact(&mut from, 4).and_then(|len| {
        let n = u32::from_be_bytes(len[..4].try_into().unwrap()) as usize;
        read_exact(&mut from, n.saturating_sub(4)).map(|body| [len, body].concat())
    }) else {
        return close(&client, &server);
    };
    if to.write_all(&startup).is_err() {
        return close(&client, &server);
    }
    // A matching statement was parsed: the cut fires at its execution.
    let mut armed = false;
    loop {
        let Some(head) = read_exact(&mut from, 5) else {
            return close(&client, &server);
        };
        let n = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
        let Some(body) = read_exact(&mut from, n.saturating_sub(4)) else {
            return close(&client, &server);
        };
        let matched = statement(head[0], &body).is_some_and(|sql| sh.matches(&sql));
        armed |= matched && head[0] == b'P';
        let fire = (matched && head[0] == b'Q') || (armed && head[0] == b'E');
        armed &= !fire;
        let fate = sh.cut.as_ref().map(|c| c.fate);
        if fire && fate != Some(Fate::Delivered) {
            sh.fired.fetch_add(1, Ordering::SeqCst);
            if fate == Some(Fate::Stranded) {
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            return close(&client, &server);
        }
        if fire {
            muted.store(true, Ordering::SeqCst);
        }
        if to
            .write_all(&head)
            .and_then(|()| to.write_all(&body))
            .is_err()
        {
            return close(&client, &server);
        }
        if fire {
            // The rest of an extended-protocol exchange (Sync) follows at once; give the
            // server time to run the statement, then close.
            let (c, s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let fired = Arc::clone(sh);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                fired.fired.fetch_add(1, Ordering::SeqCst);
                let _ = c.shutdown(Shutdown::Both);
                let _ = s.shutdown(Shutdown::Both);
            });
        }
    }
}

impl Shared {
    fn matches(&self, sql: &str) -> bool {
        let Some(cut) = &self.cut else { return false };
        (cut.matches)(sql) && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == cut.nth
    }
}

/// The SQL of a simple query or of a parse message.
fn statement(kind: u8, body: &[u8]) -> Option<String> {
    let text = match kind {
        b'Q' => body,
        // Parse: statement name, NUL, query, NUL, parameter types.
        b'P' => {
            let name_end = body.iter().position(|b| *b == 0)?;
            &body[name_end + 1..]
        }
        _ => return None,
    };
    let end = text.iter().position(|b| *b == 0)?;
    Some(String::from_utf8_lossy(&text[..end]).into_owned())
}

fn read_exact(from: &mut TcpStream, n: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; n];
    from.read_exact(&mut buf).ok()?;
    Some(buf)
}
