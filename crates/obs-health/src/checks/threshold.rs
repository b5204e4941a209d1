//! Warn/fail thresholds shared by the disk and memory checks.

use crate::error::Error;
use crate::result::Status;

/// A pair of thresholds on a quantity that is bad when low (free space,
/// available memory) or when high (resident set).
#[derive(Debug, Clone, Copy)]
pub(super) enum Thresholds {
    /// `warn` below `warn`, `fail` below `fail` (`fail <= warn`).
    Below { warn: u64, fail: u64 },
    /// `warn` above `warn`, `fail` above `fail` (`fail >= warn`).
    Above { warn: u64, fail: u64 },
}

impl Thresholds {
    /// Checks the order of the pair for the check `name`.
    pub(super) fn validate(self, name: String) -> Result<(String, Self), Error> {
        let (ok, reason, warn, fail) = match self {
            Thresholds::Below { warn, fail } => (
                fail <= warn,
                "the fail threshold must not be above the warn threshold",
                warn,
                fail,
            ),
            Thresholds::Above { warn, fail } => (
                fail >= warn,
                "the fail threshold must not be below the warn threshold",
                warn,
                fail,
            ),
        };
        if ok {
            Ok((name, self))
        } else {
            Err(Error::Thresholds {
                name,
                reason,
                warn,
                fail,
            })
        }
    }

    /// The status of `value` and, when not passing, the crossed limit with
    /// its direction (`"below"`/`"above"`).
    pub(super) fn grade(self, value: u64) -> (Status, Option<(&'static str, u64)>) {
        match self {
            Thresholds::Below { fail, .. } if value < fail => (Status::Fail, Some(("below", fail))),
            Thresholds::Below { warn, .. } if value < warn => (Status::Warn, Some(("below", warn))),
            Thresholds::Above { fail, .. } if value > fail => (Status::Fail, Some(("above", fail))),
            Thresholds::Above { warn, .. } if value > warn => (Status::Warn, Some(("above", warn))),
            _ => (Status::Pass, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grading_and_validation() {
        let low = Thresholds::Below { warn: 10, fail: 5 };
        assert_eq!(low.grade(10), (Status::Pass, None));
        assert_eq!(low.grade(9), (Status::Warn, Some(("below", 10))));
        assert_eq!(low.grade(4), (Status::Fail, Some(("below", 5))));
        let high = Thresholds::Above { warn: 5, fail: 10 };
        assert_eq!(high.grade(5), (Status::Pass, None));
        assert_eq!(high.grade(6), (Status::Warn, Some(("above", 5))));
        assert_eq!(high.grade(11), (Status::Fail, Some(("above", 10))));
        assert!(
            Thresholds::Below { warn: 1, fail: 2 }
                .validate("d".into())
                .is_err()
        );
        assert!(
            Thresholds::Above { warn: 2, fail: 1 }
                .validate("m".into())
                .is_err()
        );
    }
}
