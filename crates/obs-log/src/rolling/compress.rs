//! The inventory of rotated files, shared between the writer and the
//! background compressor, and the compressor thread itself.
//!
//! Space accounting: a file waiting for or under compression counts its own
//! size plus a reservation for the worst-case gzip output, taken before the
//! job is queued; the compressor's output is refused beyond it. So the
//! writer's total (active file + every rotated file + reservations) is an
//! upper bound of what is on disk at every instant, and the writer can keep
//! it under `max_total_bytes` without waiting for the compressor — except
//! when it must delete the very file under compression: it then marks it
//! cancelled and waits (bounded) until the compressor has removed it.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use flate2::Compression;
use flate2::write::GzEncoder;

/// What a rotated file is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Plain, not queued for compression.
    Plain,
    /// Queued for compression; `reserve` bytes are set aside for the output.
    Pending { reserve: u64 },
    /// Being compressed.
    Compressing { reserve: u64 },
    /// Being compressed, and the writer wants it gone: the compressor
    /// deletes it (and its partial output) and then removes the entry.
    Cancelled { reserve: u64 },
    /// Compressed (`path` ends in `.gz`).
    Gz,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) seq: u64,
    /// Unix seconds of the rotation (from the file name).
    pub(super) stamp: u64,
    pub(super) path: PathBuf,
    pub(super) size: u64,
    pub(super) state: State,
}

impl Entry {
    /// Bytes this file holds or may hold on disk.
    pub(super) fn accounted(&self) -> u64 {
        match self.state {
            State::Plain | State::Gz => self.size,
            State::Pending { reserve }
            | State::Compressing { reserve }
            | State::Cancelled { reserve } => self.size + reserve,
        }
    }
}

/// Worst-case gzip output for `size` input bytes (stored blocks cost 5
/// bytes per 64 KiB, the header and trailer 18).
pub(super) fn reservation(size: u64) -> u64 {
    size + size / 1000 + 1024
}

/// Rotated files, oldest (lowest sequence) first.
#[derive(Debug, Default)]
pub(super) struct Inventory {
    pub(super) entries: Vec<Entry>,
}

impl Inventory {
    pub(super) fn total(&self) -> u64 {
        self.entries.iter().map(Entry::accounted).sum()
    }

    fn position(&self, seq: u64) -> Option<usize> {
        self.entries.iter().position(|e| e.seq == seq)
    }

    /// Deletes entry `idx`: removes its file, or, when the compressor is
    /// working on it, marks it cancelled (the compressor removes it).
    pub(super) fn delete(&mut self, idx: usize) -> io::Result<()> {
        let e = &mut self.entries[idx];
        match e.state {
            State::Compressing { reserve } => {
                e.state = State::Cancelled { reserve };
                Ok(())
            }
            State::Cancelled { .. } => Ok(()),
            State::Plain | State::Pending { .. } | State::Gz => {
                match fs::remove_file(&e.path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err),
                }
                self.entries.remove(idx);
                Ok(())
            }
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) inv: Mutex<Inventory>,
    /// Notified when the compressor finishes or cancels a job.
    pub(super) changed: Condvar,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inventory> {
        self.inv.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The compressor thread: gzips queued files one at a time, oldest first.
/// It stops when the writer (the sender) is gone and the queue is empty.
#[derive(Debug)]
pub(super) struct Compressor {
    tx: Sender<u64>,
}

impl Compressor {
    pub(super) fn start(shared: Arc<Shared>) -> io::Result<Self> {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("obs-log-gzip".into())
            .spawn(move || run(&shared, &rx))?;
        Ok(Self { tx })
    }

    /// Queues the entry `seq` (already in state `Pending`).
    pub(super) fn submit(&self, seq: u64) {
        // The thread only ends when this sender is dropped.
        let _ = self.tx.send(seq);
    }
}

fn run(shared: &Shared, rx: &Receiver<u64>) {
    for seq in rx {
        compress_one(shared, seq);
    }
}

/// Refuses output beyond the reservation.
struct Bounded {
    file: File,
    left: u64,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::other(
                "compressed output larger than its reservation",
            ));
        }
        let n = self.file.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn with_ext(path: &std::path::Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

fn compress_one(shared: &Shared, seq: u64) {
    let (src, reserve) = {
        let mut inv = shared.lock();
        let Some(i) = inv.position(seq) else { return };
        let e = &mut inv.entries[i];
        let State::Pending { reserve } = e.state else {
            return;
        };
        e.state = State::Compressing { reserve };
        (e.path.clone(), reserve)
    };
    let gz = with_ext(&src, ".gz");
    let tmp = with_ext(&gz, ".tmp");
    let cancelled = || {
        let inv = shared.lock();
        inv.position(seq)
            .is_none_or(|i| matches!(inv.entries[i].state, State::Cancelled { .. }))
    };
    let result = (|| -> io::Result<u64> {
        let mut input = File::open(&src)?;
        let out = Bounded {
            file: File::create(&tmp)?,
            left: reserve,
        };
        let mut enc = GzEncoder::new(out, Compression::default());
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            enc.write_all(&buf[..n])?;
            if cancelled() {
                return Err(io::Error::from(io::ErrorKind::Interrupted));
            }
        }
        let out = enc.finish()?;
        Ok(reserve - out.left)
    })();
    let mut inv = shared.lock();
    if let Some(i) = inv.position(seq) {
        let e = &mut inv.entries[i];
        match (e.state, result) {
            (State::Cancelled { .. }, _) => {
                let _ = fs::remove_file(&tmp);
                let _ = fs::remove_file(&src);
                inv.entries.remove(i);
            }
            (_, Ok(gz_size)) if fs::rename(&tmp, &gz).is_ok() => {
                let _ = fs::remove_file(&src);
                e.path = gz;
                e.size = gz_size;
                e.state = State::Gz;
            }
            _ => {
                // Compression failed (the file is unreadable, the disk is
                // full): the file stays as it is, uncompressed.
                let _ = fs::remove_file(&tmp);
                e.state = State::Plain;
            }
        }
    } else {
        let _ = fs::remove_file(&tmp);
    }
    drop(inv);
    shared.changed.notify_all();
}
