//! What a check returns: a [`Status`], an optional message and observed values.

use std::borrow::Cow;
use std::fmt;

/// The health of one check or of a whole probe, as the IETF
/// `application/health+json` draft names it.
///
/// Ordered from best to worst, so the worst of several is their `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Healthy.
    Pass,
    /// Healthy but degraded: the probe still answers 200.
    Warn,
    /// Unhealthy: the probe answers 503.
    Fail,
}

impl Status {
    /// `"pass"`, `"warn"` or `"fail"`.
    ///
    /// ```
    /// assert_eq!(obs_health::Status::Warn.as_str(), "warn");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }

    /// The value of the `obs_health_check_status` gauge: 1 pass, 0.5 warn, 0 fail.
    ///
    /// ```
    /// assert_eq!(obs_health::Status::Fail.metric_value(), 0.0);
    /// ```
    pub const fn metric_value(self) -> f64 {
        match self {
            Status::Pass => 1.0,
            Status::Warn => 0.5,
            Status::Fail => 0.0,
        }
    }

    /// The HTTP status code of a probe with this status: 200 on pass and
    /// warn, 503 on fail.
    ///
    /// ```
    /// assert_eq!(obs_health::Status::Warn.http_code(), 200);
    /// assert_eq!(obs_health::Status::Fail.http_code(), 503);
    /// ```
    pub const fn http_code(self) -> u16 {
        match self {
            Status::Pass | Status::Warn => 200,
            Status::Fail => 503,
        }
    }

    pub(crate) const fn to_u8(self) -> u8 {
        self as u8
    }

    pub(crate) const fn from_u8(v: u8) -> Option<Status> {
        match v {
            0 => Some(Status::Pass),
            1 => Some(Status::Warn),
            2 => Some(Status::Fail),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value a check observed (IETF draft `observedValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum ObservedValue {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A float; non-finite values are rendered as JSON `null`.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Text(String),
}

macro_rules! observed_from {
    ($($t:ty => $v:ident as $as:ty),* $(,)?) => {$(
        impl From<$t> for ObservedValue {
            fn from(v: $t) -> Self {
                ObservedValue::$v(<$as>::from(v))
            }
        }
    )*};
}

observed_from!(
    i64 => Int as i64, i32 => Int as i64, u64 => UInt as u64, u32 => UInt as u64,
    f64 => Float as f64, f32 => Float as f64, bool => Bool as bool,
    String => Text as String, &str => Text as String,
);

impl From<usize> for ObservedValue {
    fn from(v: usize) -> Self {
        ObservedValue::UInt(u64::try_from(v).unwrap_or(u64::MAX))
    }
}

/// One measurement of a check: rendered as the `checks` entry
/// `"{check}:{measurement}"` of the IETF format.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The measurement name, e.g. `responseTime`, `utilization`, `free`.
    /// A `:` in it is rendered as `_` (the draft reserves `:` as separator).
    pub measurement: Cow<'static, str>,
    /// The value.
    pub value: ObservedValue,
    /// The unit (`ms`, `s`, `bytes`, `%`), if any.
    pub unit: Option<Cow<'static, str>>,
}

/// The outcome of one run of a check.
///
/// ```
/// use obs_health::{CheckResult, Status};
/// let r = CheckResult::warn("replica lag is high").observe("lag", 12.5, Some("s"));
/// assert_eq!(r.status(), Status::Warn);
/// assert_eq!(r.output(), Some("replica lag is high"));
/// assert_eq!(r.observations()[0].measurement, "lag");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    status: Status,
    output: Option<String>,
    observations: Vec<Observation>,
}

impl CheckResult {
    /// A passing result with no message.
    pub fn pass() -> Self {
        Self::with_status(Status::Pass, None)
    }

    /// A degraded (warn) result with a message.
    pub fn warn(output: impl Into<String>) -> Self {
        Self::with_status(Status::Warn, Some(output.into()))
    }

    /// A failing result with a message.
    pub fn fail(output: impl Into<String>) -> Self {
        Self::with_status(Status::Fail, Some(output.into()))
    }

    /// A result with the given status and optional message.
    pub fn with_status(status: Status, output: Option<String>) -> Self {
        Self {
            status,
            output,
            observations: Vec::new(),
        }
    }

    /// Adds an observed value (IETF `observedValue` / `observedUnit`).
    pub fn observe(
        mut self,
        measurement: impl Into<Cow<'static, str>>,
        value: impl Into<ObservedValue>,
        unit: Option<&'static str>,
    ) -> Self {
        self.observations.push(Observation {
            measurement: measurement.into(),
            value: value.into(),
            unit: unit.map(Cow::Borrowed),
        });
        self
    }

    /// Replaces the message.
    pub fn with_output(mut self, output: impl Into<String>) -> Self {
        self.output = Some(output.into());
        self
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The message, if any.
    pub fn output(&self) -> Option<&str> {
        self.output.as_deref()
    }

    /// The observed values.
    pub fn observations(&self) -> &[Observation] {
        &self.observations
    }

    /// Redacts credentials from the output and from text observed values.
    pub(crate) fn redact(&mut self, redactor: &obs_core::Redactor) {
        if let Some(out) = &self.output
            && let Cow::Owned(clean) = redactor.redact(out)
        {
            self.output = Some(clean);
        }
        for o in &mut self.observations {
            if let ObservedValue::Text(t) = &o.value
                && let Cow::Owned(clean) = redactor.redact(t)
            {
                o.value = ObservedValue::Text(clean);
            }
        }
    }
}

/// What a check function may return: a [`CheckResult`], a [`Status`], a
/// `bool` (true = pass), `Result<(), E>` or `Result<CheckResult, E>` (an
/// `Err` fails with the error's `Display` text as output).
pub trait IntoCheckResult {
    /// Converts into a [`CheckResult`].
    fn into_check_result(self) -> CheckResult;
}

impl IntoCheckResult for CheckResult {
    fn into_check_result(self) -> CheckResult {
        self
    }
}

impl IntoCheckResult for Status {
    fn into_check_result(self) -> CheckResult {
        CheckResult::with_status(self, None)
    }
}

impl IntoCheckResult for bool {
    fn into_check_result(self) -> CheckResult {
        if self {
            CheckResult::pass()
        } else {
            CheckResult::fail("check returned false")
        }
    }
}

impl<E: fmt::Display> IntoCheckResult for Result<(), E> {
    fn into_check_result(self) -> CheckResult {
        match self {
            Ok(()) => CheckResult::pass(),
            Err(e) => CheckResult::fail(e.to_string()),
        }
    }
}

impl<E: fmt::Display> IntoCheckResult for Result<CheckResult, E> {
    fn into_check_result(self) -> CheckResult {
        match self {
            Ok(r) => r,
            Err(e) => CheckResult::fail(e.to_string()),
        }
    }
}
