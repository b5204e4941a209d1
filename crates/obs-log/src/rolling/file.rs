//! The rolling writer: buffers whole lines, rotates by size and time,
//! enforces retention, follows external rotation and survives a full,
//! read-only or vanished disk, counting every line it cannot write.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::compress::{Compressor, Entry, Shared, State, reservation};
use super::{RollingFile, unix_secs};
use crate::LogStats;
use crate::writer::UNCOUNTED;

/// Bytes gathered before they are written.
const BUF_CAPACITY: usize = 64 * 1024;
/// Age retention is checked at least this often (clock seconds).
const PRUNE_EVERY: u64 = 60;
/// How long the writer waits for the compressor to give up a file it must delete.
const CANCEL_WAIT: Duration = Duration::from_secs(2);
/// INFO: the level of lines written through `io::Write`.
const INFO: u8 = 2;

struct Active {
    file: File,
    id: (u64, u64),
}

/// The writer is failing: lines are dropped until `retry_at`.
struct Failure {
    retry_at: Instant,
    backoff: Duration,
    dropped: u64,
}

/// A rolling log file writer: what [`Config::rolling_file`](crate::Config::rolling_file)
/// runs on obs-log's writer thread, also usable on its own through
/// [`io::Write`] (each `write` call must hold whole lines) after
/// [`RollingFile::open`].
///
/// It never returns an error after it is opened: a line it cannot write (a
/// full disk, a read-only or removed directory, a line too large for
/// `max_total_bytes`) is counted as dropped in its [`LogStats`] (by level),
/// the failure is reported once on stderr and counted once in
/// [`LogStats::write_errors`], and writing resumes when the disk recovers
/// (retried on a bounded backoff, a removed directory is recreated).
pub struct RollingWriter {
    cfg: RollingFile,
    active_path: PathBuf,
    /// Rotate before the active file would exceed this.
    max_bytes: Option<u64>,
    file: Option<Active>,
    /// Bytes in the active file.
    size: u64,
    buf: Vec<u8>,
    /// End of each buffered line in `buf`.
    ends: Vec<usize>,
    /// Level index of each buffered line, `| UNCOUNTED` for summaries.
    tags: Vec<u8>,
    /// The last write stopped inside a line: start the next with `\n`.
    torn: bool,
    shared: Arc<Shared>,
    compressor: Option<Compressor>,
    stats: LogStats,
    failure: Option<Failure>,
    next_rotation: Option<u64>,
    next_prune: u64,
    next_seq: u64,
    rotations: u64,
}

impl fmt::Debug for RollingWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollingWriter")
            .field("active_path", &self.active_path)
            .field("size", &self.size)
            .field("rotations", &self.rotations)
            .field("failing", &self.failure.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
fn file_id(m: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn file_id(_: &fs::Metadata) -> (u64, u64) {
    (0, 0)
}

fn enospc() -> io::Error {
    io::Error::new(io::ErrorKind::StorageFull, "no space left on device")
}

impl RollingWriter {
    /// Opens the active file (creating the directory), takes stock of the
    /// rotated files already there and applies retention.
    pub(crate) fn new(cfg: RollingFile, stats: LogStats) -> Result<Self, crate::Error> {
        cfg.validate()?;
        fs::create_dir_all(&cfg.dir)?;
        let shared = Arc::new(Shared::default());
        let mut next_seq = 1;
        {
            let mut inv = shared.lock();
            for dirent in fs::read_dir(&cfg.dir)? {
                let dirent = dirent?;
                let Some(name) = dirent.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let Some((stamp, seq, gz, tmp)) = cfg.parse_rotated(&name) else {
                    continue;
                };
                let path = dirent.path();
                if tmp {
                    // Output of a compression that did not finish.
                    let _ = fs::remove_file(&path);
                    continue;
                }
                next_seq = next_seq.max(seq + 1);
                let size = dirent.metadata().map_or(0, |m| m.len());
                inv.entries.push(Entry {
                    seq,
                    stamp,
                    path,
                    size,
                    state: if gz { State::Gz } else { State::Plain },
                });
            }
            inv.entries.sort_by_key(|e| e.seq);
            // A file and its compressed copy (a crash between rename and
            // unlink): keep the plain one, drop the copy.
            let mut i = 1;
            while i < inv.entries.len() {
                if inv.entries[i].seq == inv.entries[i - 1].seq {
                    let gz = if inv.entries[i].state == State::Gz {
                        i
                    } else {
                        i - 1
                    };
                    let _ = fs::remove_file(&inv.entries[gz].path);
                    inv.entries.remove(gz);
                } else {
                    i += 1;
                }
            }
        }
        let compressor = if cfg.compress {
            Some(Compressor::start(shared.clone())?)
        } else {
            None
        };
        let max_bytes = match (cfg.max_bytes, cfg.max_total_bytes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let now = unix_secs(cfg.clock.now());
        let mut w = Self {
            active_path: cfg.active_path(),
            max_bytes,
            file: None,
            size: 0,
            buf: Vec::with_capacity(BUF_CAPACITY),
            ends: Vec::new(),
            tags: Vec::new(),
            torn: false,
            shared,
            compressor,
            stats,
            failure: None,
            next_rotation: None,
            next_prune: now + PRUNE_EVERY,
            next_seq,
            rotations: 0,
            cfg,
        };
        w.open()?;
        if let Some(period) = w.cfg.rotation.period() {
            // A non-empty file from an earlier period rotates on the first line.
            let since = match w.active_mtime() {
                Some(t) if w.size > 0 => t.min(now),
                _ => now,
            };
            w.next_rotation = Some((since / period + 1) * period);
        }
        let plain: Vec<u64> = w
            .shared
            .lock()
            .entries
            .iter()
            .filter(|e| e.state == State::Plain)
            .map(|e| e.seq)
            .collect();
        for seq in plain {
            w.queue_compression(seq);
        }
        w.prune(now);
        Ok(w)
    }

    /// The counters this writer reports into.
    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    /// Rotations done by this writer.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// The path of the active file.
    pub fn active_path(&self) -> &std::path::Path {
        &self.active_path
    }

    fn active_mtime(&self) -> Option<u64> {
        let m = fs::metadata(&self.active_path).ok()?.modified().ok()?;
        Some(unix_secs(m))
    }

    /// Buffers one line (`tag`: level index, `| UNCOUNTED` for obs-log's
    /// own summary lines), rotating first when the line would not fit.
    pub(crate) fn push_line(&mut self, line: &[u8], tag: u8) {
        if self.next_rotation.is_some() || self.cfg.max_age.is_some() {
            let now = unix_secs(self.cfg.clock.now());
            if self.next_rotation.is_some_and(|next| now >= next) {
                self.time_rotation(now);
            }
            if now >= self.next_prune {
                self.next_prune = now + PRUNE_EVERY;
                self.prune(now);
            }
        }
        if self
            .failure
            .as_ref()
            .is_some_and(|f| Instant::now() < f.retry_at)
        {
            self.lose(tag);
            return;
        }
        if let Some(max) = self.max_bytes {
            let mut pending = self.size + self.buf.len() as u64 + u64::from(self.torn);
            if pending > 0 && pending + line.len() as u64 > max {
                // The file may have been truncated (copytruncate) since the
                // last write.
                self.sync_size();
                pending = self.size + self.buf.len() as u64 + u64::from(self.torn);
            }
            if pending > 0 && pending + line.len() as u64 > max {
                self.flush_buf();
                let now = unix_secs(self.cfg.clock.now());
                self.rotate_file(now);
            }
        }
        self.buf.extend_from_slice(line);
        self.ends.push(self.buf.len());
        self.tags.push(tag);
        if self.buf.len() >= BUF_CAPACITY {
            self.flush_buf();
        }
    }

    fn time_rotation(&mut self, now: u64) {
        if let Some(period) = self.cfg.rotation.period() {
            self.next_rotation = Some((now / period + 1) * period);
        }
        self.flush_buf();
        self.rotate_file(now);
    }

    /// Counts a line that will not be written.
    fn lose(&mut self, tag: u8) {
        if tag & UNCOUNTED == 0 {
            self.stats.drop_line(usize::from(tag));
            if let Some(f) = &mut self.failure {
                f.dropped += 1;
            }
        }
    }

    fn lose_range(&mut self, from: usize, to: usize) {
        for i in from..to {
            self.lose(self.tags[i]);
        }
    }

    /// Writes the buffered lines (those that fit under the total cap).
    pub(crate) fn flush_buf(&mut self) {
        let n = self.ends.len();
        if n == 0 {
            return;
        }
        if !self.ensure_open() {
            self.lose_range(0, n);
            self.clear_buf();
            return;
        }
        let mut first = 0;
        while first < n {
            let start = if first == 0 { 0 } else { self.ends[first - 1] };
            let torn = u64::from(self.torn);
            let mut last = n;
            if let Some(cap) = self.cfg.max_total_bytes {
                let want = (self.ends[first] - start) as u64 + torn;
                if !self.make_room(want, None) {
                    if self.file.is_none() {
                        // Failing (a file could not be deleted or reopened).
                        self.lose_range(first, n);
                        break;
                    }
                    // Larger than the cap itself.
                    self.lose(self.tags[first]);
                    first += 1;
                    continue;
                }
                let room = cap.saturating_sub(self.used());
                last = first + 1;
                while last < n && (self.ends[last] - start) as u64 + torn <= room {
                    last += 1;
                }
            }
            if !self.write_lines(first, last) {
                self.lose_range(last, n);
                break;
            }
            first = last;
        }
        self.clear_buf();
    }

    fn clear_buf(&mut self) {
        self.buf.clear();
        self.ends.clear();
        self.tags.clear();
    }

    /// Bytes on disk: the active file plus the rotated files (with
    /// compression reservations).
    fn used(&self) -> u64 {
        self.size + self.shared.lock().total()
    }

    /// Writes lines `first..last` of the buffer; counts each written or
    /// lost. `false` when the write failed (the writer is now failing).
    fn write_lines(&mut self, first: usize, last: usize) -> bool {
        let start = if first == 0 { 0 } else { self.ends[first - 1] };
        let end = self.ends[last - 1];
        let mut err = None;
        if self.torn {
            match self.write_raw(start, start, true) {
                (1, None) => {
                    self.size += 1;
                    self.torn = false;
                }
                (_, e) => err = Some(e.unwrap_or_else(enospc)),
            }
        }
        let mut done = 0;
        if err.is_none() {
            let (n, e) = self.write_raw(start, end, false);
            done = n;
            err = e;
            self.size += n as u64;
        }
        let mut written = 0u64;
        for i in first..last {
            if self.ends[i] <= start + done {
                if self.tags[i] & UNCOUNTED == 0 {
                    written += 1;
                }
            } else {
                let line_start = if i == 0 { 0 } else { self.ends[i - 1] };
                if line_start < start + done {
                    // Part of this line reached the file.
                    self.torn = true;
                }
                self.lose(self.tags[i]);
            }
        }
        self.stats
            .inner
            .written
            .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
        match err {
            None => {
                self.recovered();
                true
            }
            Some(e) => {
                self.fail(&e);
                false
            }
        }
    }

    /// Writes `buf[start..end]` (or a single `\n` with `newline`) to the
    /// active file through the fault injector; returns the bytes written
    /// and the error that stopped it.
    fn write_raw(&mut self, start: usize, end: usize, newline: bool) -> (usize, Option<io::Error>) {
        let Some(active) = self.file.as_mut() else {
            return (0, Some(io::Error::from(io::ErrorKind::NotFound)));
        };
        let data: &[u8] = if newline {
            b"\n"
        } else {
            &self.buf[start..end]
        };
        let mut done = 0;
        while done < data.len() {
            let want = data.len() - done;
            let allowed = match &self.cfg.faults {
                Some(f) => match f.before_write(&self.active_path, want) {
                    Ok(n) => n.min(want),
                    Err(e) => return (done, Some(e)),
                },
                None => want,
            };
            if allowed == 0 {
                return (done, Some(enospc()));
            }
            match active.file.write(&data[done..done + allowed]) {
                Ok(0) => return (done, Some(io::Error::from(io::ErrorKind::WriteZero))),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (done, Some(e)),
            }
        }
        (done, None)
    }

    /// Makes sure the active file is open and still the file at the path:
    /// renamed, replaced or removed (logrotate `create`, a removed
    /// directory) → reopen; truncated (logrotate `copytruncate`) → continue
    /// at its new end. `false` while failing.
    fn ensure_open(&mut self) -> bool {
        if let Some(active) = &self.file {
            match fs::metadata(&self.active_path) {
                Ok(m) if file_id(&m) == active.id => {
                    if m.len() < self.size {
                        // Truncated under us; appends go to the new end.
                        self.size = m.len();
                    }
                    return true;
                }
                _ => {
                    self.file = None;
                    self.torn = false;
                }
            }
        }
        if self
            .failure
            .as_ref()
            .is_some_and(|f| Instant::now() < f.retry_at)
        {
            return false;
        }
        match self.open() {
            Ok(()) => true,
            Err(e) => {
                self.fail(&e);
                false
            }
        }
    }

    /// Takes a truncation of the active file into account.
    fn sync_size(&mut self) {
        if let Some(active) = &self.file
            && let Ok(m) = fs::metadata(&self.active_path)
            && file_id(&m) == active.id
            && m.len() < self.size
        {
            self.size = m.len();
        }
    }

    fn open(&mut self) -> io::Result<()> {
        if let Some(f) = &self.cfg.faults {
            f.before_open(&self.active_path)?;
        }
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        let file = match opts.open(&self.active_path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The directory was removed: recreate it.
                fs::create_dir_all(&self.cfg.dir)?;
                opts.open(&self.active_path)?
            }
            r => r?,
        };
        let m = file.metadata()?;
        self.size = m.len();
        self.file = Some(Active {
            file,
            id: file_id(&m),
        });
        Ok(())
    }

    /// A write went through: a failure, if any, is over.
    fn recovered(&mut self) {
        if let Some(f) = self.failure.take() {
            report(format_args!(
                "rolling log file {} is writable again; {} lines were dropped while it failed",
                self.active_path.display(),
                f.dropped
            ));
            self.stats.sink_recovered();
        }
    }

    /// Enters (or stays in) the failing state: reported and counted once
    /// per failure, then retried on a doubling backoff.
    fn fail(&mut self, e: &io::Error) {
        self.file = None;
        let (first, max) = self.cfg.retry;
        match &mut self.failure {
            Some(f) => {
                f.backoff = (f.backoff * 2).min(max);
                f.retry_at = Instant::now() + f.backoff;
            }
            None => {
                report(format_args!(
                    "cannot write rolling log file {}: {e}; lines are dropped and counted until it recovers",
                    self.active_path.display()
                ));
                self.stats.write_error();
                self.stats.sink_failed();
                self.failure = Some(Failure {
                    retry_at: Instant::now() + first,
                    backoff: first,
                    dropped: 0,
                });
            }
        }
    }

    /// Renames the active file to the next rotated name (nothing when it is
    /// empty), queues it for compression and applies retention.
    fn rotate_file(&mut self, now: u64) {
        self.file = None;
        self.torn = false;
        let size = match fs::metadata(&self.active_path) {
            Ok(m) => m.len(),
            Err(_) => {
                self.size = 0;
                return;
            }
        };
        if size == 0 {
            self.size = 0;
            return;
        }
        let seq = self.next_seq;
        let path = self.cfg.dir.join(self.cfg.rotated_name(now, seq));
        match fs::rename(&self.active_path, &path) {
            Ok(()) => {
                self.next_seq += 1;
                self.rotations += 1;
                self.size = 0;
                self.shared.lock().entries.push(Entry {
                    seq,
                    stamp: now,
                    path,
                    size,
                    state: State::Plain,
                });
                self.queue_compression(seq);
                self.prune(now);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.size = 0,
            Err(e) => self.fail(&e),
        }
    }

    /// Queues `seq` for compression when its reservation fits under the cap.
    fn queue_compression(&mut self, seq: u64) {
        if self.compressor.is_none() {
            return;
        }
        let size = {
            let inv = self.shared.lock();
            match inv.entries.iter().find(|e| e.seq == seq) {
                Some(e) if e.state == State::Plain => e.size,
                _ => return,
            }
        };
        let reserve = reservation(size);
        if self.cfg.max_total_bytes.is_some() && !self.make_room(reserve, Some(seq)) {
            return;
        }
        let mut inv = self.shared.lock();
        if let Some(e) = inv.entries.iter_mut().find(|e| e.seq == seq) {
            e.state = State::Pending { reserve };
            if let Some(c) = &self.compressor {
                c.submit(seq);
            }
        }
    }

    /// Deletes the oldest rotated files (never `keep`) until `want` more
    /// bytes fit under the total cap; as a last resort rotates the active
    /// file away too. `false` when they cannot fit.
    fn make_room(&mut self, want: u64, keep: Option<u64>) -> bool {
        let Some(cap) = self.cfg.max_total_bytes else {
            return true;
        };
        let deadline = Instant::now() + CANCEL_WAIT;
        loop {
            let mut inv = self.shared.lock();
            if self.size + inv.total() + want <= cap {
                return true;
            }
            let victim = inv
                .entries
                .iter()
                .position(|e| Some(e.seq) != keep && !matches!(e.state, State::Cancelled { .. }));
            if let Some(i) = victim {
                if let Err(e) = inv.delete(i) {
                    drop(inv);
                    self.fail(&e);
                    return false;
                }
                continue;
            }
            if inv
                .entries
                .iter()
                .any(|e| matches!(e.state, State::Cancelled { .. }))
            {
                let now = Instant::now();
                if now >= deadline {
                    return false;
                }
                let _ = self.shared.changed.wait_timeout(inv, deadline - now);
                continue;
            }
            drop(inv);
            if keep.is_none() && self.size > 0 && self.file.is_some() {
                // Only the active file is left: rotate it away (it is then
                // the oldest rotated file and deleted next round).
                let now = unix_secs(self.cfg.clock.now());
                self.rotate_file(now);
                let reopened = self.ensure_open();
                if !reopened {
                    return false;
                }
                continue;
            }
            return false;
        }
    }

    /// Retention by count and age.
    fn prune(&mut self, now: u64) {
        let mut inv = self.shared.lock();
        let mut result = Ok(());
        if let Some(age) = self.cfg.max_age {
            let cutoff = now.saturating_sub(age.as_secs());
            while let Some(i) = inv
                .entries
                .iter()
                .position(|e| e.stamp < cutoff && !matches!(e.state, State::Cancelled { .. }))
            {
                if let Err(e) = inv.delete(i) {
                    result = Err(e);
                    break;
                }
            }
        }
        if let Some(keep) = self.cfg.keep_files {
            loop {
                let live = inv
                    .entries
                    .iter()
                    .filter(|e| !matches!(e.state, State::Cancelled { .. }))
                    .count();
                if live <= keep || result.is_err() {
                    break;
                }
                let Some(i) = inv
                    .entries
                    .iter()
                    .position(|e| !matches!(e.state, State::Cancelled { .. }))
                else {
                    break;
                };
                if let Err(e) = inv.delete(i) {
                    result = Err(e);
                }
            }
        }
        drop(inv);
        if let Err(e) = result {
            self.fail(&e);
        }
    }
}

#[allow(clippy::print_stderr, reason = "the one report of a sink failure")]
fn report(msg: fmt::Arguments<'_>) {
    eprintln!("obs-log: {msg}");
}

impl Write for RollingWriter {
    /// Buffers `buf` as whole lines (split after each `\n`), counted as INFO.
    /// Never fails: lines that cannot be written are counted as dropped.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for line in buf.split_inclusive(|&b| b == b'\n') {
            self.push_line(line, INFO);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf();
        Ok(())
    }
}

impl Drop for RollingWriter {
    fn drop(&mut self) {
        self.flush_buf();
    }
}
