//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

/// A cloneable in-memory sink.
#[derive(Clone, Default)]
pub(crate) struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
        .expect("output is UTF-8")
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }

    pub(crate) fn json_lines(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Replaces the first JSON string value (the timestamp in every schema) by `TS`.
pub(crate) fn mask_timestamp(line: &str) -> String {
    let start = line.find("\":\"").expect("a string value") + 3;
    let end = start + line[start..].find('"').expect("closing quote");
    format!("{}TS{}", &line[..start], &line[end..])
}
