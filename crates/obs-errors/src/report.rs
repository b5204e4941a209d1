//! The error report and its parts.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use obs_core::{IdRecord, Resource};
use tracing_core::Level;

use crate::breadcrumbs::Breadcrumb;
use crate::config::BacktraceMode;
use crate::scope::{RequestContext, User};

/// How an error reached the reporter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// A panic, through the panic hook.
    Panic,
    /// A `std::error::Error` (or anyhow) value passed to a capture method.
    Error,
    /// A `tracing` event at `ERROR` level, through the layer.
    Event,
    /// A plain message passed to [`Reporter::capture_message`](crate::Reporter::capture_message).
    Message,
}

impl Mechanism {
    /// `panic`, `error`, `event` or `message`: the `mechanism` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Panic => "panic",
            Self::Error => "error",
            Self::Event => "event",
            Self::Message => "message",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One error of the `source()` chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEntry {
    /// The error's type name (best effort for `dyn Error`: the leading
    /// identifier of its `Debug` form).
    pub error_type: String,
    /// Its `Display` message, scrubbed.
    pub message: String,
}

/// A source code location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: Cow<'static, str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (0 when unknown).
    pub column: u32,
}

impl Location {
    pub(crate) fn from_std(l: &std::panic::Location<'_>) -> Self {
        Self {
            file: Cow::Owned(l.file().to_owned()),
            line: l.line(),
            column: l.column(),
        }
    }

    pub(crate) fn from_static(l: &'static std::panic::Location<'static>) -> Self {
        Self {
            file: Cow::Borrowed(l.file()),
            line: l.line(),
            column: l.column(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One symbolized stack frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The demangled function name.
    pub function: String,
    /// The file, when debug info has it.
    pub file: Option<String>,
    /// The line, when debug info has it.
    pub line: Option<u32>,
    /// Whether the frame belongs to the application (not std, tokio, obs, …).
    pub in_app: bool,
}

struct StackInner {
    backtrace: Backtrace,
    text: OnceLock<String>,
    frames: OnceLock<Vec<Frame>>,
    not_in_app: Arc<[String]>,
}

/// A backtrace captured with `std::backtrace`, symbolized lazily: the
/// capture only walks the stack; symbols are resolved the first time a sink
/// asks for [`text`](Self::text) or [`frames`](Self::frames). Cheap to clone.
#[derive(Clone)]
pub struct Stacktrace(Arc<StackInner>);

impl fmt::Debug for Stacktrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stacktrace")
            .field("resolved", &self.is_resolved())
            .finish()
    }
}

impl Stacktrace {
    /// Captures the current stack as `mode` says; `None` when off or disabled.
    pub fn capture(mode: BacktraceMode) -> Option<Self> {
        let bt = match mode {
            BacktraceMode::Off => return None,
            BacktraceMode::Always => Backtrace::force_capture(),
            BacktraceMode::Env => Backtrace::capture(),
        };
        Self::from_std(bt)
    }

    /// Wraps a backtrace captured elsewhere (anyhow, a custom error); `None`
    /// when it was not captured.
    pub fn from_std(bt: Backtrace) -> Option<Self> {
        Self::with_exclusions(
            bt,
            crate::config::DEFAULT_NOT_IN_APP
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        )
    }

    pub(crate) fn with_exclusions(bt: Backtrace, not_in_app: Arc<[String]>) -> Option<Self> {
        (bt.status() == BacktraceStatus::Captured).then(|| {
            Self(Arc::new(StackInner {
                backtrace: bt,
                text: OnceLock::new(),
                frames: OnceLock::new(),
                not_in_app,
            }))
        })
    }

    /// Whether symbols were already resolved (by `text` or `frames`).
    pub fn is_resolved(&self) -> bool {
        self.0.text.get().is_some()
    }

    /// The backtrace as `std` formats it (symbolizes on first call).
    pub fn text(&self) -> &str {
        self.0.text.get_or_init(|| self.0.backtrace.to_string())
    }

    /// The frames, innermost (most recent call) first (symbolizes on first call).
    pub fn frames(&self) -> &[Frame] {
        self.0
            .frames
            .get_or_init(|| parse_frames(self.text(), &self.0.not_in_app))
    }
}

/// Parses `std::backtrace::Backtrace`'s `Display` form:
/// `  N: function` lines (inlined functions follow without a number) and
/// `      at file:line:col` lines.
pub(crate) fn parse_frames(text: &str, not_in_app: &[String]) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with("note:") {
            continue;
        }
        if let Some(loc) = t.strip_prefix("at ") {
            if let Some(f) = frames.last_mut() {
                let mut parts = loc.rsplitn(3, ':');
                let (col, line_no, file) = (parts.next(), parts.next(), parts.next());
                match (
                    file,
                    line_no.and_then(|l| l.parse().ok()),
                    col.and_then(|c| c.parse::<u32>().ok()),
                ) {
                    (Some(file), Some(l), Some(_)) => {
                        f.file = Some(file.to_owned());
                        f.line = Some(l);
                    }
                    _ => f.file = Some(loc.to_owned()),
                }
            }
            continue;
        }
        let function = match t.split_once(": ") {
            Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => rest,
            _ => t,
        };
        let in_app = !not_in_app.iter().any(|p| function.starts_with(p.as_str()));
        frames.push(Frame {
            function: function.to_owned(),
            file: None,
            line: None,
            in_app,
        });
    }
    frames
}

/// One error report, as sinks receive it. Every text in it was scrubbed
/// with the reporter's redactor before any sink sees it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Report {
    /// A random 32-hex-digit id (usable as a Sentry event id).
    pub event_id: String,
    /// When the first occurrence of the window was captured.
    pub timestamp: SystemTime,
    /// When the last occurrence of the window was captured.
    pub last_seen: SystemTime,
    /// How many captures this report stands for (deduplication).
    pub count: u64,
    /// How the error was captured.
    pub mechanism: Mechanism,
    /// Severity (`ERROR` for errors and panics).
    pub level: Level,
    /// The error's type (`std::any::type_name` for typed errors, `panic`
    /// for panics, the target for `tracing` events).
    pub error_type: String,
    /// The error's message.
    pub message: String,
    /// The `source()` chain, outermost cause first (the error itself excluded).
    pub chain: Vec<ChainEntry>,
    /// Where the error was raised or captured.
    pub location: Option<Location>,
    /// The backtrace, when captured.
    pub stacktrace: Option<Stacktrace>,
    /// The grouping key (hex of a stable 64-bit hash).
    pub fingerprint: String,
    /// trace_id / span_id / correlation_id of the span the error happened in.
    pub ids: Option<IdRecord>,
    /// The service identity.
    pub resource: Arc<Resource>,
    /// The release name.
    pub release: Option<String>,
    /// The user set on the scope.
    pub user: Option<User>,
    /// Tags set on the scope (and, for events, the event's fields).
    pub tags: Vec<(String, String)>,
    /// Extra data set on the scope.
    pub extra: Vec<(String, String)>,
    /// The request being served, headers redacted.
    pub request: Option<RequestContext>,
    /// The last log events of the request/task, oldest first.
    pub breadcrumbs: Vec<Breadcrumb>,
    /// The thread that captured it, when named.
    pub thread: Option<String>,
}

impl Report {
    /// The trace id as hex, when known.
    pub fn trace_id(&self) -> Option<String> {
        self.ids.as_ref()?.trace_id.map(|t| t.to_string())
    }

    /// The span id as hex, when known.
    pub fn span_id(&self) -> Option<String> {
        self.ids.as_ref()?.span_id.map(|t| t.to_string())
    }

    /// The correlation id, when known.
    pub fn correlation_id(&self) -> Option<&str> {
        self.ids
            .as_ref()?
            .correlation_id
            .as_ref()
            .map(|c| c.as_str())
    }

    /// A tag's value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The stack trace text, symbolizing it if needed (empty without a backtrace).
    pub fn stacktrace_text(&self) -> &str {
        self.stacktrace.as_ref().map_or("", Stacktrace::text)
    }
}

/// A word-at-a-time 64-bit hash with a final avalanche: fixed algorithm,
/// no random seed, so fingerprints are stable across processes, restarts
/// and Rust versions (unlike `DefaultHasher`) and group across them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StableHash(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl StableHash {
    pub(crate) const fn new() -> Self {
        Self(0)
    }

    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(26) ^ w).wrapping_mul(K);
    }

    /// Adds `bytes` followed by their length, so ("ab","c") and ("a","bc") differ.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> &mut Self {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        let rem = chunks.remainder();
        if !rem.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rem.len()].copy_from_slice(rem);
            self.add(u64::from_le_bytes(buf));
        }
        self.add(bytes.len() as u64);
        self
    }

    /// The hash, avalanched (murmur3's `fmix64`).
    pub(crate) const fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

impl std::hash::Hasher for StableHash {
    fn finish(&self) -> u64 {
        StableHash::finish(*self)
    }

    fn write(&mut self, bytes: &[u8]) {
        StableHash::write(self, bytes);
    }
}

/// Best-effort type name of a `dyn Error`: the leading identifier of its
/// `Debug` form (`ParseIntError { kind: .. }` → `ParseIntError`), else `Error`.
pub(crate) fn dyn_type_name(e: &(dyn std::error::Error + 'static)) -> String {
    use std::fmt::Write;
    struct Head {
        buf: String,
        done: bool,
    }
    impl Write for Head {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            if self.done {
                return Err(fmt::Error);
            }
            for c in s.chars() {
                if c.is_alphanumeric() || c == '_' || c == ':' {
                    self.buf.push(c);
                    if self.buf.len() > 80 {
                        self.done = true;
                        return Err(fmt::Error);
                    }
                } else {
                    self.done = true;
                    return Err(fmt::Error);
                }
            }
            Ok(())
        }
    }
    let mut h = Head {
        buf: String::new(),
        done: false,
    };
    let _ = write!(h, "{e:?}");
    let first_upper = h.buf.chars().next().is_some_and(char::is_uppercase);
    if first_upper {
        h.buf
    } else {
        "Error".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frame_parser_never_panics(text in "\\PC{0,400}") {
            let frames = parse_frames(&text, &[]);
            prop_assert!(frames.len() <= text.lines().count());
        }

        #[test]
        fn frame_parser_reads_generated_traces(names in proptest::collection::vec("[a-z_]{1,12}(::[a-z_]{1,12}){0,3}", 1..8), line in 1u32..100_000) {
            let text: String = names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{i:4}: {n}\n             at ./src/x.rs:{line}:5\n"))
                .collect();
            let frames = parse_frames(&text, &[]);
            prop_assert_eq!(frames.len(), names.len());
            for (f, n) in frames.iter().zip(&names) {
                prop_assert_eq!(&f.function, n);
                prop_assert_eq!(f.line, Some(line));
                prop_assert_eq!(f.file.as_deref(), Some("./src/x.rs"));
            }
        }
    }

    #[test]
    fn parses_std_backtrace_format() {
        let text = "   0: my_app::handler::run\n             at ./src/handler.rs:12:5\n      my_app::inlined\n             at ./src/x.rs:3:1\n   1: std::rt::lang_start\n   2: <unknown>\n";
        let ex: Vec<String> = crate::config::DEFAULT_NOT_IN_APP
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let f = parse_frames(text, &ex);
        assert_eq!(f.len(), 4);
        assert_eq!(f[0].function, "my_app::handler::run");
        assert_eq!(f[0].file.as_deref(), Some("./src/handler.rs"));
        assert_eq!(f[0].line, Some(12));
        assert!(f[0].in_app);
        assert_eq!(f[1].function, "my_app::inlined");
        assert!(!f[2].in_app);
        assert!(!f[3].in_app);
    }

    #[test]
    fn dyn_type_names() {
        let e = "x".parse::<u8>().unwrap_err();
        assert_eq!(dyn_type_name(&e), "ParseIntError");
        let io = std::io::Error::other("boom");
        assert_eq!(dyn_type_name(&io), "Custom");
        struct Quiet;
        impl fmt::Debug for Quiet {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("oops: quiet")
            }
        }
        impl fmt::Display for Quiet {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("quiet")
            }
        }
        impl std::error::Error for Quiet {}
        assert_eq!(dyn_type_name(&Quiet), "Error");
    }

    #[test]
    fn stable_hash_is_stable_and_separated() {
        let a = StableHash::new().write(b"ab").write(b"c").finish();
        let b = StableHash::new().write(b"a").write(b"bc").finish();
        assert_ne!(a, b);
        assert_eq!(a, StableHash::new().write(b"ab").write(b"c").finish());
        // pinned: a change of algorithm would regroup every error in the backends
        const PINNED: u64 = 1_265_048_136_688_877_285;
        assert_eq!(
            StableHash::new()
                .write(b"panic")
                .write(b"src/main.rs")
                .finish(),
            PINNED
        );
        assert_ne!(
            StableHash::new().write(b"").finish(),
            StableHash::new().write(&[0]).finish()
        );
    }
}
