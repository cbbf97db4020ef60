//! TLS to a private server that presents the machine's snakeoil certificate (CN=localhost).

use serde_json::json;

use crate::{PrivateServer, discover, run_tap};

const CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
const KEY: &str = "/etc/ssl/private/ssl-cert-snakeoil.key";
const OTHER_CA: &str = "/etc/ssl/certs/ISRG_Root_X1.pem";

#[test]
fn tls_verifies_the_server_against_the_given_ca() {
    if !std::path::Path::new(KEY).exists() {
        eprintln!("skipped: no snakeoil key (package ssl-cert)");
        return;
    }
    let cert = format!("--ssl-cert={CERT}");
    let key = format!("--ssl-key={KEY}");
    let server = PrivateServer::start_with(false, &[&cert, &key]);
    let db = server.db("tls");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)");
    let dir = tempfile::tempdir().unwrap();

    // Trusted CA; the certificate names `localhost`, not 127.0.0.1.
    let mut cfg = db.config();
    cfg["ssl"] = json!("true");
    cfg["ssl_ca"] = json!(CERT);
    cfg["check_hostname"] = json!(false);
    let catalog = discover(dir.path(), &cfg);
    assert_eq!(catalog["streams"].as_array().unwrap().len(), 1);

    // A misnamed certificate fails when host names are checked.
    cfg["check_hostname"] = json!(true);
    let run = run_tap(dir.path(), &cfg, None, None);
    assert!(!run.ok, "misnamed certificate was accepted");

    // A certificate from another CA fails: the given CA is the only one trusted.
    cfg["check_hostname"] = json!(false);
    cfg["ssl_ca"] = json!(OTHER_CA);
    let run = run_tap(dir.path(), &cfg, None, None);
    assert!(!run.ok, "untrusted certificate was accepted");
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
}
