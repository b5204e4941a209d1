//! Memory checks: the process's resident set and the memory still available
//! to it (cgroup v2 limit when there is one, else the host's `MemAvailable`).

use super::threshold::Thresholds;
use crate::check::Check;
use crate::error::Error;
use crate::result::CheckResult;

/// The process's resident set size (`VmRSS` of `/proc/self/status`):
/// `warn` above `warn_above_bytes`, `fail` above `fail_above_bytes`. Reports
/// `rss` (bytes); `componentType` is `system`. Linux only: elsewhere the
/// check fails with "not supported".
///
/// ```
/// let check = obs_health::checks::process_memory("rss", 1 << 30, 2 << 30).unwrap();
/// assert_eq!(check.name(), "rss");
/// assert!(obs_health::checks::process_memory("rss", 2 << 30, 1 << 30).is_err());
/// ```
pub fn process_memory(
    name: impl Into<String>,
    warn_above_bytes: u64,
    fail_above_bytes: u64,
) -> Result<Check, Error> {
    let (name, thresholds) = Thresholds::Above {
        warn: warn_above_bytes,
        fail: fail_above_bytes,
    }
    .validate(name.into())?;
    Ok(Check::new(name, move || async move {
        let rss = match read_rss() {
            Ok(v) => v,
            Err(e) => return CheckResult::fail(e),
        };
        let (status, crossed) = thresholds.grade(rss);
        let output = crossed.map(|(dir, limit)| format!("resident set {rss} bytes, {dir} {limit}"));
        CheckResult::with_status(status, output).observe("rss", rss, Some("bytes"))
    })
    .component_type("system"))
}

/// Memory still available: under a cgroup v2 limit `memory.max -
/// memory.current` of the process's cgroup (what the OOM killer goes by in
/// a container), otherwise `MemAvailable` of `/proc/meminfo`. `warn` below
/// `warn_below_bytes`, `fail` below `fail_below_bytes`. Reports `available`
/// (bytes); `componentType` is `system`. Linux only.
///
/// ```
/// let check = obs_health::checks::system_memory("mem", 512 << 20, 128 << 20).unwrap();
/// assert_eq!(check.name(), "mem");
/// ```
pub fn system_memory(
    name: impl Into<String>,
    warn_below_bytes: u64,
    fail_below_bytes: u64,
) -> Result<Check, Error> {
    let (name, thresholds) = Thresholds::Below {
        warn: warn_below_bytes,
        fail: fail_below_bytes,
    }
    .validate(name.into())?;
    Ok(Check::new(name, move || async move {
        let (available, source) = match read_available() {
            Ok(v) => v,
            Err(e) => return CheckResult::fail(e),
        };
        let (status, crossed) = thresholds.grade(available);
        let output = crossed
            .map(|(dir, limit)| format!("{available} bytes available ({source}), {dir} {limit}"));
        CheckResult::with_status(status, output).observe("available", available, Some("bytes"))
    })
    .component_type("system"))
}

/// Parses a `Key:   123 kB` line value of a `/proc` file into bytes.
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "only the Linux readers parse /proc files")
)]
fn kb_field(text: &str, key: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    let kb: u64 = line[key.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb.saturating_mul(1024))
}

#[cfg(target_os = "linux")]
fn read_rss() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("read /proc/self/status: {e}"))?;
    kb_field(&status, "VmRSS").ok_or_else(|| "no VmRSS in /proc/self/status".to_owned())
}

#[cfg(target_os = "linux")]
fn read_available() -> Result<(u64, &'static str), String> {
    if let Some(avail) = cgroup_available() {
        return Ok((avail, "cgroup limit"));
    }
    let meminfo =
        std::fs::read_to_string("/proc/meminfo").map_err(|e| format!("read /proc/meminfo: {e}"))?;
    kb_field(&meminfo, "MemAvailable")
        .map(|v| (v, "MemAvailable"))
        .ok_or_else(|| "no MemAvailable in /proc/meminfo".to_owned())
}

/// `memory.max - memory.current` of this process's cgroup v2, if limited.
#[cfg(target_os = "linux")]
fn cgroup_available() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let dir = std::path::Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    let max: u64 = std::fs::read_to_string(dir.join("memory.max"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let current: u64 = std::fs::read_to_string(dir.join("memory.current"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(max.saturating_sub(current))
}

#[cfg(not(target_os = "linux"))]
fn read_rss() -> Result<u64, String> {
    Err("process memory checks are only supported on linux".to_owned())
}

#[cfg(not(target_os = "linux"))]
fn read_available() -> Result<(u64, &'static str), String> {
    Err("system memory checks are only supported on linux".to_owned())
}

#[cfg(test)]
mod tests {
    use super::kb_field;

    #[test]
    fn parses_proc_fields() {
        let text = "Name:\tx\nVmRSSX:\t1 kB\nVmRSS:\t   2048 kB\n";
        assert_eq!(kb_field(text, "VmRSS"), Some(2048 * 1024));
        assert_eq!(kb_field(text, "VmSwap"), None);
    }
}
