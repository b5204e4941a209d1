//! Rolling log files: the configuration ([`RollingFile`]), its parsers for
//! the `OBS_LOG_FILE*` variables, file naming, and the clock and fault
//! injection seams. The writer itself lives in `file.rs`, the background
//! compressor in `compress.rs`.

mod compress;
mod file;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Error;

pub use file::RollingWriter;

/// When the active file is rotated by time (UTC boundaries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rotation {
    /// Never by time (size rotation may still apply).
    #[default]
    Never,
    /// At the start of every UTC hour.
    Hourly,
    /// At 00:00 UTC.
    Daily,
}

impl Rotation {
    /// The period in seconds, `None` for [`Rotation::Never`].
    pub(crate) fn period(self) -> Option<u64> {
        match self {
            Rotation::Never => None,
            Rotation::Hourly => Some(3600),
            Rotation::Daily => Some(86_400),
        }
    }
}

impl FromStr for Rotation {
    type Err = Error;
    /// `never`, `hourly` or `daily`, case-insensitive.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "never" | "none" | "off" => Ok(Self::Never),
            "hourly" => Ok(Self::Hourly),
            "daily" => Ok(Self::Daily),
            _ => Err(Error::Config(format!(
                "unknown rotation {s:?}: expected one of never, hourly, daily"
            ))),
        }
    }
}

/// The wall clock the rolling writer reads for time rotation, file names and
/// age retention. [`SystemClock`] by default; tests inject a fake one.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// [`SystemTime::now`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Injects I/O failures into the rolling writer (tests, chaos drills): it is
/// asked before the active file is opened and before each write. The
/// defaults inject nothing.
pub trait FaultInjector: Send + Sync + fmt::Debug {
    /// Called before the active file at `path` is opened or created; an
    /// error fails the open as if the file system had returned it.
    fn before_open(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Ok(())
    }

    /// Called before `len` bytes are written to `path`: `Ok(n)` lets at
    /// most `n` bytes through (`n < len` writes `n` bytes and then fails
    /// with ENOSPC, like a disk that fills up mid-write); an error fails the
    /// write at once.
    fn before_write(&self, path: &Path, len: usize) -> io::Result<usize> {
        let _ = path;
        Ok(len)
    }
}

/// Default size at which the active file is rotated (100 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 100 << 20;
/// Default number of rotated files kept.
pub const DEFAULT_KEEP_FILES: usize = 10;

/// A rolling log file: where it lives, when it rotates and what is kept.
///
/// The active file is `<dir>/<prefix>.<suffix>` (`app.log`); it keeps that
/// name, so `tail -F`, log forwarders and logrotate see one stable path.
/// Rotated files are named `<prefix>.<UTC time of rotation>.<sequence>.<suffix>`
/// (`app.20261204T201728Z.000042.log`, `.gz` appended when compressed);
/// the sequence number orders them and keeps growing across restarts.
///
/// Defaults: rotate at [`DEFAULT_MAX_BYTES`] (100 MiB), no time rotation,
/// keep [`DEFAULT_KEEP_FILES`] (10) rotated files, no age or total limit, no
/// compression.
///
/// ```
/// use obs_log::{Config, RollingFile, Rotation};
/// use std::time::Duration;
/// let file = RollingFile::builder("/var/log/checkout", "checkout")
///     .max_bytes(64 << 20)
///     .rotation(Rotation::Daily)
///     .keep_files(14)
///     .max_age(Duration::from_secs(7 * 86_400))
///     .max_total_bytes(1 << 30)
///     .compress(true);
/// assert_eq!(file.active_path(), std::path::Path::new("/var/log/checkout/checkout.log"));
/// let config = Config::new().rolling_file(file);
/// # drop(config);
/// ```
#[derive(Clone)]
pub struct RollingFile {
    pub(crate) dir: PathBuf,
    pub(crate) prefix: String,
    pub(crate) suffix: String,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) rotation: Rotation,
    pub(crate) keep_files: Option<usize>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) max_total_bytes: Option<u64>,
    pub(crate) compress: bool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) faults: Option<Arc<dyn FaultInjector>>,
    pub(crate) retry: (Duration, Duration),
}

impl fmt::Debug for RollingFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollingFile")
            .field("dir", &self.dir)
            .field("prefix", &self.prefix)
            .field("suffix", &self.suffix)
            .field("max_bytes", &self.max_bytes)
            .field("rotation", &self.rotation)
            .field("keep_files", &self.keep_files)
            .field("max_age", &self.max_age)
            .field("max_total_bytes", &self.max_total_bytes)
            .field("compress", &self.compress)
            .field("clock", &self.clock)
            .field("faults", &self.faults)
            .finish()
    }
}

impl RollingFile {
    /// A rolling file `<dir>/<prefix>.log` with the defaults (see the type docs).
    pub fn builder(dir: impl Into<PathBuf>, prefix: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            prefix: prefix.into(),
            suffix: "log".to_owned(),
            max_bytes: Some(DEFAULT_MAX_BYTES),
            rotation: Rotation::Never,
            keep_files: Some(DEFAULT_KEEP_FILES),
            max_age: None,
            max_total_bytes: None,
            compress: false,
            clock: Arc::new(SystemClock),
            faults: None,
            retry: (Duration::from_millis(100), Duration::from_secs(5)),
        }
    }

    /// A rolling file whose active file is `path` (`/var/log/app.log`:
    /// directory `/var/log`, prefix `app`, suffix `log`), as
    /// `OBS_LOG_FILE` sets it.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .ok_or_else(|| {
                Error::Config(format!(
                    "log file path {} has no UTF-8 file name",
                    path.display()
                ))
            })?;
        let (prefix, suffix) = match name.rsplit_once('.') {
            Some((p, s)) if !p.is_empty() => (p, s),
            _ => (name, ""),
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(Self::builder(dir, prefix).suffix(suffix))
    }

    /// The file-name suffix without its dot (default `log`; empty: none).
    pub fn suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffix = suffix.into().trim_start_matches('.').to_owned();
        self
    }

    /// Rotate when the active file would grow beyond `bytes` (`0`: never by
    /// size). A line is never split: a single line longer than the limit
    /// gets a file of its own.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = (bytes > 0).then_some(bytes);
        self
    }

    /// Rotate at UTC hour or day boundaries.
    pub fn rotation(mut self, rotation: Rotation) -> Self {
        self.rotation = rotation;
        self
    }

    /// Keep at most `files` rotated files, deleting the oldest (`0`: no
    /// limit by count).
    pub fn keep_files(mut self, files: usize) -> Self {
        self.keep_files = (files > 0).then_some(files);
        self
    }

    /// Delete rotated files rotated longer than `age` ago (zero: no limit by age).
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = (!age.is_zero()).then_some(age);
        self
    }

    /// Keep the active file plus the rotated files (compressed or not, and
    /// a compression in progress) under `bytes` in total, deleting the
    /// oldest rotated files first (`0`: no limit). The cap is never
    /// exceeded: a line that cannot fit even in an empty directory is
    /// dropped and counted. The active file rotates at
    /// `min(max_bytes, max_total_bytes)`.
    pub fn max_total_bytes(mut self, bytes: u64) -> Self {
        self.max_total_bytes = (bytes > 0).then_some(bytes);
        self
    }

    /// Gzip rotated files (`.gz` appended) on a background thread, so
    /// compressing never stalls the writer.
    pub fn compress(mut self, on: bool) -> Self {
        self.compress = on;
        self
    }

    /// The clock for time rotation, file names and age retention.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Inject I/O failures (see [`FaultInjector`]).
    pub fn fault_injector(mut self, faults: impl FaultInjector + 'static) -> Self {
        self.faults = Some(Arc::new(faults));
        self
    }

    /// After a failed open or write, lines are dropped (and counted) without
    /// touching the disk until a retry is due: the first after `first`,
    /// then doubling up to `max` (defaults 100 ms and 5 s).
    pub fn retry_interval(mut self, first: Duration, max: Duration) -> Self {
        let first = first.max(Duration::from_millis(1));
        self.retry = (first, max.max(first));
        self
    }

    /// The path of the active file.
    pub fn active_path(&self) -> PathBuf {
        self.dir.join(self.active_name())
    }

    /// The directory of the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens the writer on its own (outside a log layer): it counts into a
    /// fresh [`LogStats`](crate::LogStats), see [`RollingWriter::stats`].
    pub fn open(self) -> Result<RollingWriter, Error> {
        RollingWriter::new(self, crate::LogStats::default())
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.prefix.is_empty() || self.prefix.contains(['/', '\\']) {
            return Err(Error::Config(format!(
                "rolling file prefix {:?} must be a non-empty file name",
                self.prefix
            )));
        }
        if self.suffix.contains(['/', '\\']) {
            return Err(Error::Config(format!(
                "rolling file suffix {:?} must not contain a path separator",
                self.suffix
            )));
        }
        Ok(())
    }

    pub(crate) fn dot_suffix(&self) -> String {
        if self.suffix.is_empty() {
            String::new()
        } else {
            format!(".{}", self.suffix)
        }
    }

    pub(crate) fn active_name(&self) -> String {
        format!("{}{}", self.prefix, self.dot_suffix())
    }

    pub(crate) fn rotated_name(&self, stamp: u64, seq: u64) -> String {
        format!(
            "{}.{}.{seq:06}{}",
            self.prefix,
            format_stamp(stamp),
            self.dot_suffix()
        )
    }

    /// `(stamp, seq, compressed, temporary)` of a rotated file's name.
    pub(crate) fn parse_rotated(&self, name: &str) -> Option<(u64, u64, bool, bool)> {
        let rest = name.strip_prefix(self.prefix.as_str())?.strip_prefix('.')?;
        let (rest, tmp) = match rest.strip_suffix(".tmp") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let (rest, gz) = match rest.strip_suffix(".gz") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let rest = rest.strip_suffix(self.dot_suffix().as_str())?;
        let (stamp, seq) = rest.split_once('.')?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((parse_stamp(stamp)?, seq.parse().ok()?, gz, tmp))
    }
}

/// Seconds since the Unix epoch (0 before it).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `YYYYMMDDTHHMMSSZ`.
pub(crate) fn format_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = obs_core::units::civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn parse_stamp(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A size: plain bytes or a number with a unit, case-insensitive:
/// `B`, `K`/`KB` (1000), `KiB` (1024), and likewise `M`, `G`, `T`
/// (`10MiB`, `100MB`, `1.5 GiB`).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let expected = "expected bytes, optionally with a unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. 10MiB";
    if num.is_empty() {
        return Err(expected.to_owned());
    }
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "ti" | "tib" => 1 << 40,
        _ => return Err(expected.to_owned()),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| "size too large".to_owned());
    }
    let f: f64 = num.parse().map_err(|_| expected.to_owned())?;
    let bytes = f * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err("size too large".to_owned());
    }
    Ok(bytes.round() as u64)
}

/// A duration: one or more `<number><unit>` parts with units `s`, `m`,
/// `h`, `d`, `w` (`7d`, `24h`, `1h30m`); a bare number is seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim().to_ascii_lowercase();
    let expected = "expected a duration such as 7d, 24h, 90m, 30s or 1h30m";
    if t.is_empty() {
        return Err(expected.to_owned());
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total: u64 = 0;
    let mut rest = t.as_str();
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let units = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || units == 0 {
            return Err(expected.to_owned());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| expected.to_owned())?;
        let unit: u64 = match &rest[digits..digits + units] {
            "s" | "sec" | "secs" => 1,
            "m" | "min" | "mins" => 60,
            "h" | "hr" | "hrs" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            _ => return Err(expected.to_owned()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| "duration too large".to_owned())?;
        rest = rest[digits + units..].trim_start();
    }
    Ok(Duration::from_secs(total))
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), case-insensitive.
pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        for secs in [
            0u64,
            951_782_400,
            1_796_415_448,
            4_102_444_799,
            253_402_300_799,
        ] {
            let s = format_stamp(secs);
            assert_eq!(parse_stamp(&s), Some(secs), "{s}");
        }
        assert_eq!(format_stamp(1_796_415_448), "20261204T201728Z");
        assert_eq!(parse_stamp("20261304T201728Z"), None);
        assert_eq!(parse_stamp("2026120XT201728Z"), None);
    }

    #[test]
    fn names_round_trip() {
        let f = RollingFile::builder("/tmp", "app");
        let n = f.rotated_name(1_796_415_448, 42);
        assert_eq!(n, "app.20261204T201728Z.000042.log");
        assert_eq!(f.parse_rotated(&n), Some((1_796_415_448, 42, false, false)));
        assert_eq!(
            f.parse_rotated(&format!("{n}.gz.tmp")),
            Some((1_796_415_448, 42, true, true))
        );
        assert_eq!(f.parse_rotated("app.log"), None);
        assert_eq!(f.parse_rotated("other.20261204T201728Z.000042.log"), None);
        let bare = RollingFile::from_path("/var/log/app").unwrap();
        assert_eq!(bare.active_path(), Path::new("/var/log/app"));
        let n = bare.rotated_name(0, 1_234_567);
        assert_eq!(n, "app.19700101T000000Z.1234567");
        assert_eq!(bare.parse_rotated(&n), Some((0, 1_234_567, false, false)));
        let rel = RollingFile::from_path("app.log").unwrap();
        assert_eq!(rel.active_path(), Path::new("./app.log"));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size(" 512 kib "), Ok(512 << 10));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("10 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("24H"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("7 fortnights").is_err());
        assert!(parse_duration("d").is_err());
        assert_eq!("DAILY".parse::<Rotation>().unwrap(), Rotation::Daily);
        assert!("weekly".parse::<Rotation>().is_err());
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert!(parse_bool("maybe").is_err());
    }
}
