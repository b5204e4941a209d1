//! Run with: `cargo run -p examples --bin quickstart`
fn main() {}
