//! Rolling log files: size and time rotation (with a fake clock), retention
//! by count, age and total bytes (the cap checked after every one of 10,000
//! rotations), gzip, logrotate `create` and `copytruncate`, and a full,
//! read-only or vanished disk (real when this process may mount a tmpfs,
//! injected otherwise): nothing crashes, each failure is reported once,
//! every line is either written or counted as dropped, and writing resumes.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use obs_log::{Clock, Config, FaultInjector, NonBlocking, RollingFile, RollingWriter, Rotation};
use tracing_subscriber::layer::SubscriberExt;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("obs-log-rolling-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A clock the test moves by hand.
#[derive(Clone, Debug)]
struct FakeClock(Arc<AtomicU64>);

impl FakeClock {
    fn at(secs: u64) -> Self {
        Self(Arc::new(AtomicU64::new(secs)))
    }
    fn set(&self, secs: u64) {
        self.0.store(secs, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

/// A disk of `left` bytes that returns ENOSPC when it is full, and can be
/// made read-only (EROFS).
#[derive(Clone, Debug, Default)]
struct FaultyDisk {
    left: Arc<AtomicU64>,
    read_only: Arc<AtomicBool>,
}

impl FaultyDisk {
    fn with_room(bytes: u64) -> Self {
        let d = Self::default();
        d.left.store(bytes, Ordering::SeqCst);
        d
    }
}

fn erofs() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ReadOnlyFilesystem,
        "read-only file system",
    )
}

impl FaultInjector for FaultyDisk {
    fn before_open(&self, _: &Path) -> std::io::Result<()> {
        if self.read_only.load(Ordering::SeqCst) {
            return Err(erofs());
        }
        Ok(())
    }
    fn before_write(&self, _: &Path, len: usize) -> std::io::Result<usize> {
        if self.read_only.load(Ordering::SeqCst) {
            return Err(erofs());
        }
        let left = self.left.load(Ordering::SeqCst);
        let n = (len as u64).min(left);
        self.left.fetch_sub(n, Ordering::SeqCst);
        Ok(n as usize)
    }
}

/// Line `i`: unique, of varying length, ends with `\n`.
fn line(i: u64) -> String {
    let pad = (i * 7919 % 97) as usize;
    format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "x".repeat(pad))
}

/// Rotated files (name, path), oldest first, and the active file.
fn rotated(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let rest = name.strip_prefix(&format!("{prefix}."))?;
            let mut parts = rest.split('.');
            let stamp = parts.next()?;
            if stamp.len() != 16 || !stamp.ends_with('Z') {
                return None;
            }
            let seq: u64 = parts.next()?.parse().ok()?;
            Some((seq, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

fn read_any(p: &Path) -> String {
    let bytes = fs::read(p).unwrap();
    if p.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    } else {
        String::from_utf8(bytes).unwrap()
    }
}

/// Every file's lines, oldest file first, the active file last.
fn all_lines(dir: &Path, prefix: &str) -> Vec<String> {
    let mut files = rotated(dir, prefix);
    files.push(dir.join(format!("{prefix}.log")));
    files
        .iter()
        .filter(|p| p.exists())
        .flat_map(|p| read_any(p).lines().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn write_lines(w: &mut RollingWriter, range: std::ops::Range<u64>) {
    for i in range {
        w.write_all(line(i).as_bytes()).unwrap();
    }
    w.flush().unwrap();
}

fn expected(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|i| line(i).trim_end().to_owned()).collect()
}

#[test]
fn size_rotation_keeps_lines_whole_and_in_order() {
    let tmp = TempDir::new("size");
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(1000)
        .keep_files(0)
        .open()
        .unwrap();
    write_lines(&mut w, 0..500);
    let files = rotated(tmp.path(), "app");
    assert!(files.len() >= 20, "{} rotations", files.len());
    assert_eq!(w.rotations(), files.len() as u64);
    for f in &files {
        let len = fs::metadata(f).unwrap().len();
        assert!(len <= 1000 && len > 800, "{}: {len} bytes", f.display());
        assert!(read_any(f).ends_with('\n'));
    }
    assert_eq!(all_lines(tmp.path(), "app"), expected(0..500));
    assert_eq!(w.stats().written(), 500);
    assert_eq!(w.stats().dropped_total(), 0);

    // A line longer than the limit gets a file of its own.
    let long = format!("{}\n", "y".repeat(3000));
    w.write_all(long.as_bytes()).unwrap();
    w.write_all(b"after\n").unwrap();
    w.flush().unwrap();
    let files = rotated(tmp.path(), "app");
    assert_eq!(read_any(files.last().unwrap()), long);
    assert_eq!(
        fs::read_to_string(tmp.path().join("app.log")).unwrap(),
        "after\n"
    );

    // A restart continues the sequence after the files already there.
    drop(w);
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(1000)
        .keep_files(0)
        .open()
        .unwrap();
    let before = rotated(tmp.path(), "app").len();
    write_lines(&mut w, 500..520);
    let files = rotated(tmp.path(), "app");
    assert!(files.len() > before);
    assert!(files[..before].iter().all(|f| f.exists()));
}

#[test]
fn time_rotation_follows_the_fake_clock() {
    let tmp = TempDir::new("time");
    // 2026-12-04T23:59:00Z
    let t0 = 1_796_428_740;
    let clock = FakeClock::at(t0);
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(0)
        .rotation(Rotation::Daily)
        .clock(clock.clone())
        .open()
        .unwrap();
    write_lines(&mut w, 0..10);
    clock.set(t0 + 59); // 23:59:59, same day
    write_lines(&mut w, 10..20);
    assert!(rotated(tmp.path(), "app").is_empty());
    clock.set(t0 + 61); // 00:00:01 the next day
    write_lines(&mut w, 20..30);
    let files = rotated(tmp.path(), "app");
    assert_eq!(files.len(), 1);
    assert_eq!(
        files[0].file_name().unwrap().to_str().unwrap(),
        "app.20261205T000001Z.000001.log"
    );
    assert_eq!(
        read_any(&files[0]).lines().collect::<Vec<_>>(),
        expected(0..20)
    );
    assert_eq!(
        fs::read_to_string(tmp.path().join("app.log"))
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        expected(20..30)
    );
    // A quiet day: nothing written, so an empty file is not rotated.
    clock.set(t0 + 61 + 3 * 86_400);
    w.flush().unwrap();
    assert_eq!(rotated(tmp.path(), "app").len(), 1);
    write_lines(&mut w, 30..31);
    assert_eq!(rotated(tmp.path(), "app").len(), 2);

    // Hourly, combined with size.
    let tmp = TempDir::new("hourly");
    let clock = FakeClock::at(t0);
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(2000)
        .rotation(Rotation::Hourly)
        .keep_files(0)
        .clock(clock.clone())
        .open()
        .unwrap();
    for hour in 0..5u64 {
        clock.set(t0 + 60 + hour * 3600);
        write_lines(&mut w, hour * 10..hour * 10 + 10);
    }
    assert_eq!(rotated(tmp.path(), "app").len(), 4);
    write_lines(&mut w, 50..150);
    assert!(rotated(tmp.path(), "app").len() > 6);
    assert_eq!(all_lines(tmp.path(), "app"), expected(0..150));
}

#[test]
fn retention_by_count_and_age() {
    let tmp = TempDir::new("count");
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(300)
        .keep_files(3)
        .open()
        .unwrap();
    write_lines(&mut w, 0..200);
    let files = rotated(tmp.path(), "app");
    assert!(w.rotations() > 10);
    assert_eq!(files.len(), 3);
    // The newest three are kept.
    let seqs: Vec<u64> = files
        .iter()
        .map(|f| {
            f.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .split('.')
                .nth(2)
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [w.rotations() - 2, w.rotations() - 1, w.rotations()]);

    let tmp = TempDir::new("age");
    let t0 = 1_796_400_000;
    let clock = FakeClock::at(t0);
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(300)
        .keep_files(0)
        .max_age(Duration::from_secs(3600))
        .clock(clock.clone())
        .open()
        .unwrap();
    write_lines(&mut w, 0..20); // rotated at t0
    let early = rotated(tmp.path(), "app");
    assert!(!early.is_empty());
    clock.set(t0 + 1800);
    write_lines(&mut w, 20..40); // rotated at t0 + 30 min
    let all = rotated(tmp.path(), "app");
    assert!(all.len() > early.len());
    // An hour and a half after t0 (more than a minute after the last
    // check): the files of t0 are older than an hour, those of +30 min not.
    clock.set(t0 + 5400);
    write_lines(&mut w, 40..41);
    let left = rotated(tmp.path(), "app");
    assert!(early.iter().all(|f| !f.exists()), "old files deleted");
    assert_eq!(left.len(), all.len() - early.len());
}

#[test]
fn total_cap_is_never_exceeded_over_10000_rotations() {
    let tmp = TempDir::new("cap");
    const CAP: u64 = 4000;
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(1000)
        .keep_files(0)
        .max_total_bytes(CAP)
        .open()
        .unwrap();
    let mut i = 0u64;
    let mut last = 0;
    let mut checked = 0;
    while w.rotations() < 10_000 {
        w.write_all(line(i).as_bytes()).unwrap();
        w.flush().unwrap();
        i += 1;
        if w.rotations() != last {
            last = w.rotations();
            let used = dir_bytes(tmp.path());
            assert!(used <= CAP, "{used} bytes after rotation {last}");
            checked += 1;
        }
    }
    assert_eq!(checked, 10_000);
    assert!(dir_bytes(tmp.path()) <= CAP);
    assert_eq!(w.stats().written() + w.stats().dropped_total(), i);
    assert_eq!(
        w.stats().dropped_total(),
        0,
        "every line fits under the cap"
    );
    // The newest lines are all there, in order.
    let lines = all_lines(tmp.path(), "app");
    let n = lines.len() as u64;
    assert!(n > 20);
    assert_eq!(lines, expected(i - n..i));

    // Without a size limit the cap alone bounds the active file; a line
    // longer than the cap is dropped and counted.
    let tmp = TempDir::new("cap-only");
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(0)
        .max_total_bytes(CAP)
        .open()
        .unwrap();
    for i in 0..2000 {
        w.write_all(line(i).as_bytes()).unwrap();
        w.flush().unwrap();
        assert!(dir_bytes(tmp.path()) <= CAP);
    }
    w.write_all(format!("{}\n", "z".repeat(5000)).as_bytes())
        .unwrap();
    w.flush().unwrap();
    assert_eq!(w.stats().dropped_total(), 1);
    assert_eq!(w.stats().written(), 2000);
    assert!(dir_bytes(tmp.path()) <= CAP);
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn gzip_rotated_files_decode_to_the_original_lines() {
    let tmp = TempDir::new("gzip");
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(4000)
        .keep_files(0)
        .compress(true)
        .open()
        .unwrap();
    write_lines(&mut w, 0..1000);
    let n = w.rotations() as usize;
    assert!(n > 10);
    wait_for("compression", || {
        let files = rotated(tmp.path(), "app");
        files.len() == n
            && files
                .iter()
                .all(|f| f.to_str().unwrap().ends_with(".log.gz"))
    });
    assert_eq!(all_lines(tmp.path(), "app"), expected(0..1000));
    let gz: u64 = rotated(tmp.path(), "app")
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .sum();
    assert!(gz < 4000 * n as u64 / 2, "compressed: {gz} bytes");

    // A restart compresses files left plain and removes partial output.
    drop(w);
    let stray = tmp.path().join("app.20261204T000000Z.999990.log");
    fs::write(&stray, "left plain\n").unwrap();
    let partial = tmp.path().join("app.20261204T000000Z.999991.log.gz.tmp");
    fs::write(&partial, "partial").unwrap();
    let _w = RollingFile::builder(tmp.path(), "app")
        .keep_files(0)
        .compress(true)
        .open()
        .unwrap();
    assert!(!partial.exists());
    let gz = tmp.path().join("app.20261204T000000Z.999990.log.gz");
    wait_for("the stray file's compression", || {
        gz.exists() && !stray.exists()
    });
    assert_eq!(read_any(&gz), "left plain\n");
}

#[test]
fn gzip_under_a_total_cap_stays_under_it() {
    let tmp = TempDir::new("gzip-cap");
    const CAP: u64 = 20_000;
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(3000)
        .keep_files(0)
        .max_total_bytes(CAP)
        .compress(true)
        .open()
        .unwrap();
    for i in 0..5000 {
        w.write_all(line(i).as_bytes()).unwrap();
        w.flush().unwrap();
        // `.tmp` files of the compressor included.
        let used = dir_bytes(tmp.path());
        assert!(used <= CAP, "{used} bytes at line {i}");
    }
    assert_eq!(w.stats().written(), 5000);
    assert_eq!(w.stats().dropped_total(), 0);
}

#[test]
fn logrotate_create_and_copytruncate() {
    // create: the file is renamed and a new one created in its place.
    let tmp = TempDir::new("create");
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(0)
        .open()
        .unwrap();
    write_lines(&mut w, 0..10);
    let active = tmp.path().join("app.log");
    fs::rename(&active, tmp.path().join("app.log.1")).unwrap();
    fs::File::create(&active).unwrap();
    write_lines(&mut w, 10..20);
    let old = fs::read_to_string(tmp.path().join("app.log.1")).unwrap();
    assert_eq!(old.lines().collect::<Vec<_>>(), expected(0..10));
    let new = fs::read_to_string(&active).unwrap();
    assert_eq!(new.lines().collect::<Vec<_>>(), expected(10..20));

    // The file is removed (logrotate without `create`, or by hand).
    fs::remove_file(&active).unwrap();
    write_lines(&mut w, 20..30);
    let new = fs::read_to_string(&active).unwrap();
    assert_eq!(new.lines().collect::<Vec<_>>(), expected(20..30));

    // copytruncate: copied, then truncated under the writer. Appends
    // continue at the new end (no hole of zeros) and the size limit counts
    // from there.
    let tmp = TempDir::new("copytruncate");
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(2000)
        .open()
        .unwrap();
    write_lines(&mut w, 0..20);
    let active = tmp.path().join("app.log");
    let before = fs::metadata(&active).unwrap().len();
    assert!(before > 1000);
    fs::copy(&active, tmp.path().join("app.log.1")).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(0)
        .unwrap();
    write_lines(&mut w, 20..30);
    let text = fs::read_to_string(&active).unwrap();
    assert!(!text.contains('\0'));
    assert_eq!(text.lines().collect::<Vec<_>>(), expected(20..30));
    assert!(rotated(tmp.path(), "app").is_empty(), "no early rotation");
    assert_eq!(w.stats().dropped_total(), 0);
}

#[test]
fn injected_full_disk_is_reported_once_counted_and_recovered() {
    let tmp = TempDir::new("enospc");
    let disk = FaultyDisk::with_room(5000);
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(0)
        .fault_injector(disk.clone())
        .retry_interval(Duration::from_millis(5), Duration::from_millis(20))
        .open()
        .unwrap();
    let mut total = 0u64;
    for i in 0..300 {
        w.write_all(line(i).as_bytes()).unwrap();
        w.flush().unwrap();
        total += 1;
    }
    let stats = w.stats().clone();
    assert!(stats.sink_failing());
    assert_eq!(stats.write_errors(), 1, "one failure, reported once");
    assert!(stats.dropped_total() > 200);
    assert_eq!(stats.written() + stats.dropped_total(), total);
    // Retries while the disk stays full count no new failure.
    std::thread::sleep(Duration::from_millis(30));
    write_lines(&mut w, 300..310);
    total += 10;
    assert_eq!(stats.write_errors(), 1);

    // Room again: writing resumes after the backoff.
    disk.left.store(u64::MAX / 2, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(30));
    write_lines(&mut w, 310..400);
    total += 90;
    assert!(!stats.sink_failing());
    assert_eq!(stats.written() + stats.dropped_total(), total);
    let text = fs::read_to_string(tmp.path().join("app.log")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The line cut by the full disk is followed by a newline, so every
    // later line stands alone; the written count matches the whole lines.
    let whole = lines
        .iter()
        .filter(|l| l.starts_with("{\"i\":") && l.ends_with("\"}"))
        .count() as u64;
    assert_eq!(whole, stats.written());
    assert!(lines.len() as u64 - whole <= 1, "at most one torn line");
    assert!(
        lines.ends_with(
            &expected(310..400)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        )
    );
}

#[test]
fn read_only_disk_injected_is_reported_once_and_recovered() {
    let tmp = TempDir::new("erofs");
    let disk = FaultyDisk::with_room(u64::MAX / 2);
    let mut w = RollingFile::builder(tmp.path(), "app")
        .max_bytes(1000)
        .fault_injector(disk.clone())
        .retry_interval(Duration::from_millis(5), Duration::from_millis(20))
        .open()
        .unwrap();
    write_lines(&mut w, 0..50);
    disk.read_only.store(true, Ordering::SeqCst);
    write_lines(&mut w, 50..100);
    std::thread::sleep(Duration::from_millis(30));
    write_lines(&mut w, 100..150);
    let stats = w.stats().clone();
    assert_eq!(stats.write_errors(), 1);
    assert_eq!(stats.dropped_total(), 100);
    disk.read_only.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(30));
    write_lines(&mut w, 150..200);
    assert_eq!(stats.written(), 100);
    assert!(!stats.sink_failing());
    let mut want = expected(0..50);
    want.extend(expected(150..200));
    assert_eq!(all_lines(tmp.path(), "app"), want);
}

#[test]
fn vanished_directory_is_recreated() {
    let tmp = TempDir::new("vanish");
    let dir = tmp.path().join("logs");
    let mut w = RollingFile::builder(&dir, "app")
        .max_bytes(1000)
        .open()
        .unwrap();
    write_lines(&mut w, 0..30);
    fs::remove_dir_all(&dir).unwrap();
    write_lines(&mut w, 30..60);
    assert_eq!(w.stats().written(), 60);
    assert_eq!(w.stats().dropped_total(), 0);
    // The rotated files went with the directory; the new lines are there.
    let lines = all_lines(&dir, "app");
    assert_eq!(lines, expected(60 - lines.len() as u64..60));
    assert!(lines.len() >= 5);

    // Removed and replaced by a file: the directory cannot be recreated
    // until the file goes away; counted once, then recovered.
    let mut w = RollingFile::builder(&dir, "app")
        .max_bytes(0)
        .retry_interval(Duration::from_millis(5), Duration::from_millis(20))
        .open()
        .unwrap();
    write_lines(&mut w, 0..10);
    fs::remove_dir_all(&dir).unwrap();
    fs::write(&dir, "in the way").unwrap();
    write_lines(&mut w, 10..20);
    assert!(w.stats().sink_failing());
    assert_eq!(w.stats().write_errors(), 1);
    assert_eq!(w.stats().dropped_total(), 10);
    fs::remove_file(&dir).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    write_lines(&mut w, 20..30);
    assert!(!w.stats().sink_failing());
    assert_eq!(all_lines(&dir, "app"), expected(20..30));
    assert_eq!(w.stats().written() + w.stats().dropped_total(), 30);
}

fn mount_tmpfs(at: &Path, opts: &str) -> bool {
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
        .arg(at)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn umount(at: &Path) {
    let ok = std::process::Command::new("umount")
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "umount {}", at.display());
}

/// A small tmpfs, when this process may mount one (root with
/// CAP_SYS_ADMIN); unmounted on drop.
struct Tmpfs(TempDir);

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Option<Self> {
        let dir = TempDir::new(name);
        mount_tmpfs(dir.path(), &format!("size={size}")).then(|| Self(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a read-only mount over the log directory may be left by
        // a failed assertion.
        let _ = std::process::Command::new("umount")
            .args(["-R", "-l"])
            .arg(self.0.path())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
#[allow(clippy::print_stderr, reason = "says which variant ran")]
fn read_only_directory_by_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("chmod");
    let dir = tmp.path().join("logs");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
    let blocked = fs::write(dir.join("probe"), "x").is_err();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    if !blocked {
        eprintln!(
            "running as root: permissions do not block writes; the tmpfs test (or the injected read-only disk) covers a read-only directory"
        );
        return;
    }
    let mut w = RollingFile::builder(&dir, "app")
        .max_bytes(0)
        .retry_interval(Duration::from_millis(5), Duration::from_millis(20))
        .open()
        .unwrap();
    write_lines(&mut w, 0..10);
    // logrotate moved the file away and the directory became read-only.
    fs::rename(dir.join("app.log"), tmp.path().join("moved.log")).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
    write_lines(&mut w, 10..20);
    std::thread::sleep(Duration::from_millis(30));
    write_lines(&mut w, 20..30);
    assert!(w.stats().sink_failing());
    assert_eq!(w.stats().write_errors(), 1);
    assert_eq!(w.stats().dropped_total(), 20);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    write_lines(&mut w, 30..40);
    assert!(!w.stats().sink_failing());
    assert_eq!(all_lines(&dir, "app"), expected(30..40));
}

#[test]
#[allow(clippy::print_stderr, reason = "says which variant ran")]
fn real_full_and_read_only_disk_through_the_layer() {
    let Some(fs_) = Tmpfs::mount("tmpfs", "256k") else {
        eprintln!(
            "cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN): the injected full and read-only disks above cover it"
        );
        return;
    };
    let dir = fs_.0.path().join("logs");
    let file = RollingFile::builder(&dir, "app")
        .max_bytes(64 << 10)
        .keep_files(0)
        .retry_interval(Duration::from_millis(5), Duration::from_millis(20));
    let (layer, handles) = obs_log::layer(
        Config::new()
            .rolling_file(file)
            .non_blocking(NonBlocking::lossless()),
    )
    .unwrap();
    let _g = obs_testing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let log = |from: u64, to: u64| {
        for i in from..to {
            tracing::info!(i, pad = "p".repeat((i % 200) as usize), "line");
        }
        assert!(handles.guard.flush(Duration::from_secs(10)));
    };
    // 256 KiB fill up well before 5,000 lines of ~250 bytes.
    log(0, 5000);
    let stats = handles.stats.clone();
    assert!(stats.sink_failing());
    assert_eq!(stats.write_errors(), 1);
    assert!(stats.dropped_total() > 1000);
    assert_eq!(stats.written() + stats.dropped_total(), 5000);
    // Free the disk: delete the rotated files by hand.
    for f in rotated(&dir, "app") {
        fs::remove_file(f).unwrap();
    }
    std::thread::sleep(Duration::from_millis(40));
    log(5000, 5100);
    assert!(!stats.sink_failing());
    assert_eq!(stats.written() + stats.dropped_total(), 5100);
    let text = fs::read_to_string(dir.join("app.log")).unwrap();
    assert!(text.contains("\"i\":5099"));

    // A read-only directory: a read-only tmpfs mounted over it (the open
    // file is hidden, the path is gone, and creating it fails with EROFS).
    // A file system cannot be remounted read-only under an open file.
    assert!(mount_tmpfs(&dir, "ro,size=4k"), "read-only mount");
    log(5100, 5200);
    std::thread::sleep(Duration::from_millis(40));
    log(5200, 5300);
    assert!(stats.sink_failing());
    assert_eq!(stats.write_errors(), 2, "the second failure, reported once");
    assert_eq!(stats.written() + stats.dropped_total(), 5300);
    umount(&dir);
    std::thread::sleep(Duration::from_millis(40));
    log(5300, 5400);
    assert!(!stats.sink_failing());
    assert_eq!(stats.written() + stats.dropped_total(), 5400);
    let text = fs::read_to_string(dir.join("app.log")).unwrap();
    assert!(text.contains("\"i\":5399"));
    drop(_g);
}

#[test]
fn layer_writes_every_line_to_the_rolling_file() {
    let tmp = TempDir::new("layer");
    let file = RollingFile::builder(tmp.path(), "svc")
        .max_bytes(50_000)
        .keep_files(0)
        .compress(true);
    let (layer, handles) = obs_log::layer(
        Config::new()
            .rolling_file(file)
            .non_blocking(NonBlocking::lossless()),
    )
    .unwrap();
    obs_testing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..10_000u64 {
            tracing::info!(i, "event");
        }
    });
    let report = handles.guard.shutdown(Duration::from_secs(10));
    assert!(report.completed);
    assert_eq!(report.written, 10_000);
    assert_eq!(report.dropped.total(), 0);
    let n = rotated(tmp.path(), "svc").len();
    assert!(n > 5);
    wait_for("compression", || {
        rotated(tmp.path(), "svc")
            .iter()
            .all(|f| f.to_str().unwrap().ends_with(".gz"))
    });
    let lines = all_lines(tmp.path(), "svc");
    assert_eq!(lines.len(), 10_000);
    for (i, l) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["i"], i as u64);
    }
}

#[test]
fn environment_variables_configure_the_file() {
    let tmp = TempDir::new("env");
    let path = tmp.path().join("svc.log");
    let p = path.to_str().unwrap().to_owned();
    let env = move |k: &str| -> Option<String> {
        Some(
            match k {
                "OBS_LOG_FILE" => p.as_str(),
                "OBS_LOG_FILE_MAX_BYTES" => "2KiB",
                "OBS_LOG_FILE_ROTATION" => "DAILY",
                "OBS_LOG_FILE_KEEP" => "2",
                "OBS_LOG_FILE_MAX_AGE" => "7d",
                "OBS_LOG_FILE_MAX_TOTAL_BYTES" => "1MB",
                "OBS_LOG_FILE_COMPRESS" => "false",
                "OBS_LOG_NON_BLOCKING" => "lossless",
                _ => return None,
            }
            .to_owned(),
        )
    };
    let (layer, handles) = obs_log::layer(Config::from_lookup(env).unwrap()).unwrap();
    obs_testing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..200u64 {
            tracing::info!(i, "event");
        }
    });
    assert!(handles.guard.shutdown(Duration::from_secs(10)).completed);
    assert_eq!(rotated(tmp.path(), "svc").len(), 2, "keep 2");
    assert!(fs::metadata(&path).unwrap().len() <= 2048);

    let err = |k: &'static str, v: &'static str| {
        Config::from_lookup(|q| match q {
            "OBS_LOG_FILE" => Some("/tmp/x.log".to_owned()),
            q if q == k => Some(v.to_owned()),
            _ => None,
        })
        .unwrap_err()
        .to_string()
    };
    let e = err("OBS_LOG_FILE_MAX_BYTES", "10 parsecs");
    assert!(e.starts_with("invalid value \"10 parsecs\" for environment variable OBS_LOG_FILE_MAX_BYTES: expected bytes"), "{e}");
    let e = err("OBS_LOG_FILE_ROTATION", "weekly");
    assert!(
        e.contains("OBS_LOG_FILE_ROTATION") && e.contains("never, hourly, daily"),
        "{e}"
    );
    let e = err("OBS_LOG_FILE_KEEP", "-1");
    assert!(e.contains("OBS_LOG_FILE_KEEP"), "{e}");
    let e = err("OBS_LOG_FILE_MAX_AGE", "a week");
    assert!(
        e.contains("OBS_LOG_FILE_MAX_AGE") && e.contains("7d"),
        "{e}"
    );
    let e = err("OBS_LOG_FILE_MAX_TOTAL_BYTES", "lots");
    assert!(e.contains("OBS_LOG_FILE_MAX_TOTAL_BYTES"), "{e}");
    let e = err("OBS_LOG_FILE_COMPRESS", "maybe");
    assert!(
        e.contains("OBS_LOG_FILE_COMPRESS") && e.contains("true or false"),
        "{e}"
    );
    let e = Config::from_lookup(|q| (q == "OBS_LOG_FILE_KEEP").then(|| "3".to_owned()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("OBS_LOG_FILE_KEEP") && e.contains("OBS_LOG_FILE is not set"),
        "{e}"
    );
    let e = Config::from_lookup(|q| (q == "OBS_LOG_FILE").then(|| " ".to_owned()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("OBS_LOG_FILE"), "{e}");
}
