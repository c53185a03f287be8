//! A fresh, empty PostgreSQL database per test, on the server `scripts/test` starts (a
//! throw-away cluster). Shared by the store's tests and web-verify's (`#[path]` include), so
//! the two suites create databases the same way.

use std::path::PathBuf;

/// A fresh, empty database on the test server, as a store location; `None` (said loudly)
/// without a server.
pub fn fresh_postgres(name: &str) -> Option<PathBuf> {
    let Ok(url) = std::env::var("HALLMARK_TEST_POSTGRES") else {
        eprintln!(
            "\n*** SKIPPED the PostgreSQL half of {name}: HALLMARK_TEST_POSTGRES is not set \
             (scripts/test starts a throw-away cluster and sets it) ***\n"
        );
        return None;
    };
    let db = format!(
        "t_{name}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("test server");
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .expect("create database");
    // The URL's database is its last path segment (before any ?query).
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let slash = base.rfind('/').expect("a URL with a database");
    let mut out = format!("{}/{db}", &base[..slash]);
    if !query.is_empty() {
        out = format!("{out}?{query}");
    }
    Some(PathBuf::from(out))
}
