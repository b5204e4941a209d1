//! A runner for a real Prometheus server and `promtool` (Debian package
//! `prometheus`, installed when missing) to check and scrape exposition.
