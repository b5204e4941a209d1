//! Disk free space through `statvfs(3)`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::threshold::Thresholds;
use crate::check::Check;
use crate::error::Error;
use crate::result::CheckResult;

/// Free space on the filesystem holding `path`: `warn` below
/// `warn_below_bytes`, `fail` below `fail_below_bytes`. "Free" is what an
/// unprivileged process may still use (`f_bavail`), not the root reserve.
/// Reports `free` (bytes) and `utilization` (%); `componentType` is
/// `system`. The `statvfs` call runs on the blocking pool (a hung network
/// filesystem cannot stall the runtime; the check's timeout still applies).
///
/// ```
/// use obs_health::checks;
/// const GIB: u64 = 1 << 30;
/// let check = checks::disk_space("data-disk", "/var/lib/app", 5 * GIB, GIB).unwrap();
/// assert_eq!(check.name(), "data-disk");
/// // the fail threshold must not be above the warn threshold
/// assert!(checks::disk_space("data-disk", "/", GIB, 5 * GIB).is_err());
/// ```
pub fn disk_space(
    name: impl Into<String>,
    path: impl Into<PathBuf>,
    warn_below_bytes: u64,
    fail_below_bytes: u64,
) -> Result<Check, Error> {
    let (name, thresholds) = Thresholds::Below {
        warn: warn_below_bytes,
        fail: fail_below_bytes,
    }
    .validate(name.into())?;
    let path: Arc<Path> = Arc::from(path.into());
    Ok(Check::new(name, move || {
        let path = Arc::clone(&path);
        async move {
            let shown = path.display().to_string();
            let stat = match tokio::task::spawn_blocking(move || fs_space(&path)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return CheckResult::fail(format!("statvfs {shown}: {e}")),
                Err(e) => return CheckResult::fail(format!("statvfs {shown}: {e}")),
            };
            let (status, crossed) = thresholds.grade(stat.free);
            let output = crossed
                .map(|(dir, limit)| format!("{} bytes free on {shown}, {dir} {limit}", stat.free));
            let used_pct = if stat.total == 0 {
                0.0
            } else {
                (stat.total.saturating_sub(stat.free)) as f64 * 100.0 / stat.total as f64
            };
            CheckResult::with_status(status, output)
                .observe("free", stat.free, Some("bytes"))
                .observe("utilization", used_pct, Some("%"))
        }
    })
    .component_type("system"))
}

struct FsSpace {
    free: u64,
    total: u64,
}

#[cfg(unix)]
fn fs_space(path: &Path) -> std::io::Result<FsSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains a NUL byte")
    })?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    #[allow(
        unsafe_code,
        reason = "statvfs(3) has no safe std equivalent; the path is a valid NUL-terminated \
                  C string and the out-pointer is a properly sized, zeroed statvfs struct"
    )]
    // SAFETY: see the reason above; the struct is read only when the call returns 0.
    let (rc, st) = unsafe {
        let rc = libc::statvfs(c_path.as_ptr(), st.as_mut_ptr());
        (rc, st.assume_init())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(
        clippy::unnecessary_cast,
        reason = "the statvfs field types differ between platforms (u32 on some, u64 on Linux)"
    )]
    let (bavail, blocks, frsize) = (st.f_bavail as u64, st.f_blocks as u64, st.f_frsize as u64);
    Ok(FsSpace {
        free: bavail.saturating_mul(frsize),
        total: blocks.saturating_mul(frsize),
    })
}

#[cfg(not(unix))]
fn fs_space(_path: &Path) -> std::io::Result<FsSpace> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "disk space checks are only supported on unix",
    ))
}
