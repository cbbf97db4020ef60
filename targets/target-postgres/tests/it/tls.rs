//! TLS against the server's own certificate (Debian clusters run with `ssl = on` and the
//! `ssl-cert` snakeoil certificate).

use serde_json::json;

use crate::{fresh_schema, load, ok, scalar};

const SERVER_CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
const PUBLIC_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn one_row() -> String {
    [
        r#"{"type":"SCHEMA","stream":"t","schema":{"properties":{"id":{"type":"integer"}}},"key_properties":["id"]}"#,
        r#"{"type":"RECORD","stream":"t","record":{"id":1}}"#,
    ]
    .join("\n")
}

#[test]
fn require_and_verify_ca_connect_over_tls() {
    assert!(
        std::path::Path::new(SERVER_CERT).exists(),
        "{SERVER_CERT} missing: is the cluster's ssl on?"
    );
    for (mode, root) in [("require", None), ("verify-ca", Some(SERVER_CERT))] {
        let s = fresh_schema("tls");
        let mut cfg = json!({"sslmode": mode});
        if let Some(r) = root {
            cfg["ssl_root_cert"] = json!(r);
        }
        ok(&load(&s, cfg, &one_row()));
        assert_eq!(
            scalar(&format!("SELECT count(*) FROM \"{s}\".t")).as_deref(),
            Some("1"),
            "{mode}"
        );
    }
}

#[test]
fn verification_rejects_an_untrusted_or_misnamed_certificate() {
    let s = fresh_schema("tlsbad");
    // The server's self-signed certificate is not signed by any public CA.
    let out = load(
        &s,
        json!({"sslmode": "verify-ca", "ssl_root_cert": PUBLIC_CAS}),
        &one_row(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
    // Trusted, but issued to the machine's host name, not 127.0.0.1.
    let out = load(
        &s,
        json!({"sslmode": "verify-full", "ssl_root_cert": SERVER_CERT}),
        &one_row(),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
