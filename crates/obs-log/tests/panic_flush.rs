//! A panicking program's buffered lines reach the sink: the test re-runs its
//! own binary as a child process that logs through a slow non-blocking
//! writer and panics.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use obs_log::{Config, NonBlocking};
use tracing_subscriber::layer::SubscriberExt;

const CHILD: &str = "OBS_LOG_PANIC_CHILD";
const LINES: u64 = 200;

/// Appends to a file, slowly, so lines are still queued when the panic hits.
struct SlowFile(std::fs::File);

impl Write for SlowFile {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        // Slow per line, whatever the batching above.
        let lines = b.iter().filter(|&&c| c == b'\n').count() as u32;
        std::thread::sleep(Duration::from_millis(5) * lines.max(1));
        self.0.write_all(b)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn child(path: &str, hook: bool) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let config = Config::new()
        .writer(SlowFile(file))
        .non_blocking(NonBlocking::lossless());
    let (layer, handles) = obs_log::layer(config).unwrap();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();
    if hook {
        handles.guard.install_panic_hook(Duration::from_secs(30));
    }
    // Like a guard kept in a static: its destructor never runs.
    std::mem::forget(handles);
    for n in 0..LINES {
        tracing::info!(n, "before the panic");
    }
    panic!("boom");
}

fn run_child(hook: bool) -> (u64, String) {
    let path: PathBuf =
        std::env::temp_dir().join(format!("obs-log-panic-{}-{hook}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "panicking_child_flushes_buffered_lines",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, format!("{}|{hook}", path.display()))
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child must die of its panic");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    let n = text
        .lines()
        .filter(|l| l.contains("before the panic"))
        .count() as u64;
    (n, stderr + &String::from_utf8_lossy(&out.stdout))
}

#[test]
fn panicking_child_flushes_buffered_lines() {
    if let Ok(spec) = std::env::var(CHILD) {
        let (path, hook) = spec.split_once('|').unwrap();
        child(path, hook == "true");
        return;
    }
    let (with_hook, output) = run_child(true);
    assert_eq!(
        with_hook, LINES,
        "every line written before the panic reached the file; child said:\n{output}"
    );
    assert!(
        output.contains("boom"),
        "the previous panic hook still ran: {output}"
    );
    // Control: without the hook the slow writer is cut off by the exit.
    let (without_hook, _) = run_child(false);
    assert!(
        without_hook < LINES,
        "control run should lose lines, got {without_hook}"
    );
}
