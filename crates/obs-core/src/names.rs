//! Names shared by more than one pillar: HTTP headers, log fields, and the
//! metric and attribute names of the OpenTelemetry semantic conventions.
//!
//! One place for them means the log layer, the trace layer and the metrics
//! layer cannot drift apart on a spelling.

/// HTTP header names (lowercase, as HTTP/2 sends them).
pub mod header {
    /// The correlation id header obs reads first and echoes.
    pub const X_CORRELATION_ID: &str = "x-correlation-id";
    /// The request id header obs reads when no correlation id is given.
    pub const X_REQUEST_ID: &str = "x-request-id";
    /// W3C Trace Context: the parent span.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C Trace Context: vendor-specific trace state.
    pub const TRACESTATE: &str = "tracestate";
    /// W3C Baggage.
    pub const BAGGAGE: &str = "baggage";
    /// Headers that always carry credentials and are redacted by name.
    pub const SENSITIVE: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-xsrf-token",
    ];

    /// Whether `name`, a lowercase header name (as `http::HeaderName` holds
    /// it), is one of [`SENSITIVE`]. Their lengths rule out many other names
    /// (about half of a browser's) before a byte is compared: this runs on
    /// every header of every request whose head the error scope keeps.
    ///
    /// ```
    /// use obs_core::names::header::is_sensitive;
    /// assert!(is_sensitive("authorization") && is_sensitive("x-api-key"));
    /// assert!(!is_sensitive("accept") && !is_sensitive("Authorization"));
    /// ```
    #[inline]
    pub fn is_sensitive(name: &str) -> bool {
        const LENGTHS: u64 = {
            let mut mask = 0u64;
            let mut i = 0;
            while i < SENSITIVE.len() {
                assert!(SENSITIVE[i].len() < 64);
                mask |= 1 << SENSITIVE[i].len();
                i += 1;
            }
            mask
        };
        name.len() < 64 && LENGTHS & (1 << name.len()) != 0 && SENSITIVE.contains(&name)
    }
}

/// Field names of obs's native log schema, also used for span and error
/// attributes where the same value appears.
pub mod field {
    /// Event time.
    pub const TIMESTAMP: &str = "timestamp";
    /// Severity.
    pub const LEVEL: &str = "level";
    /// The event's target (module path by default).
    pub const TARGET: &str = "target";
    /// The formatted message.
    pub const MESSAGE: &str = "message";
    /// W3C trace id, 32 lowercase hex characters.
    pub const TRACE_ID: &str = "trace_id";
    /// W3C span id, 16 lowercase hex characters.
    pub const SPAN_ID: &str = "span_id";
    /// W3C trace flags.
    pub const TRACE_FLAGS: &str = "trace_flags";
    /// The correlation (request) id.
    pub const CORRELATION_ID: &str = "correlation_id";
    /// The span path, outermost first.
    pub const SPANS: &str = "spans";
    /// The replacement text for a redacted value.
    pub const REDACTED: &str = "[REDACTED]";
}

/// Resource attribute keys (OpenTelemetry semantic conventions).
pub mod resource {
    /// `service.name`
    pub const SERVICE_NAME: &str = "service.name";
    /// `service.version`
    pub const SERVICE_VERSION: &str = "service.version";
    /// `service.namespace`
    pub const SERVICE_NAMESPACE: &str = "service.namespace";
    /// `service.instance.id`
    pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
    /// `deployment.environment.name` (semconv 1.27+).
    pub const DEPLOYMENT_ENVIRONMENT_NAME: &str = "deployment.environment.name";
    /// `deployment.environment`, the pre-1.27 key still sent by many SDKs.
    pub const DEPLOYMENT_ENVIRONMENT: &str = "deployment.environment";
}

/// Span and metric attribute keys (OpenTelemetry semantic conventions).
pub mod attr {
    /// `http.request.method`
    pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
    /// `http.response.status_code`
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    /// `http.route`: the matched route template, never the raw path.
    pub const HTTP_ROUTE: &str = "http.route";
    /// `url.path`
    pub const URL_PATH: &str = "url.path";
    /// `url.scheme`
    pub const URL_SCHEME: &str = "url.scheme";
    /// `url.full` (client spans)
    pub const URL_FULL: &str = "url.full";
    /// `server.address`
    pub const SERVER_ADDRESS: &str = "server.address";
    /// `server.port`
    pub const SERVER_PORT: &str = "server.port";
    /// `client.address`
    pub const CLIENT_ADDRESS: &str = "client.address";
    /// `user_agent.original`
    pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
    /// `error.type`
    pub const ERROR_TYPE: &str = "error.type";
    /// `network.protocol.version`
    pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
    /// `db.system.name`
    pub const DB_SYSTEM_NAME: &str = "db.system.name";
    /// `db.operation.name`
    pub const DB_OPERATION_NAME: &str = "db.operation.name";
    /// `db.collection.name`
    pub const DB_COLLECTION_NAME: &str = "db.collection.name";
    /// `db.query.text`
    pub const DB_QUERY_TEXT: &str = "db.query.text";
    /// `exception.type`
    pub const EXCEPTION_TYPE: &str = "exception.type";
    /// `exception.message`
    pub const EXCEPTION_MESSAGE: &str = "exception.message";
    /// `exception.stacktrace`
    pub const EXCEPTION_STACKTRACE: &str = "exception.stacktrace";
    /// `messaging.system`
    pub const MESSAGING_SYSTEM: &str = "messaging.system";
    /// `messaging.destination.name` (queue name)
    pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
    /// `messaging.operation.type`
    pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
}

/// The HTTP method as the semantic conventions record it — one of the nine
/// standard methods, `_OTHER` for anything else — so that a client cannot
/// mint span attribute, log field or label values. Spans, metrics and the
/// access line all use this one rule.
pub fn normalize_http_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => "_OTHER",
    }
}

/// `tracing` targets of the lines obs itself writes.
pub mod target {
    /// The access line of every HTTP request.
    pub const ACCESS: &str = "obs::access";
    /// Audit lines: every change made through an admin endpoint. A log
    /// filter never suppresses WARN and ERROR lines of this target, so
    /// setting the level to `off` is itself recorded.
    pub const AUDIT: &str = "obs::audit";
}

/// Metric names. Written in Prometheus form (dots become underscores, unit
/// suffix appended) because that is what a scrape shows and what dashboards
/// query; the OpenTelemetry name is noted on each.
pub mod metric {
    /// `http.server.request.duration` (s).
    pub const HTTP_SERVER_REQUEST_DURATION: &str = "http_server_request_duration_seconds";
    /// `http.server.active_requests`.
    pub const HTTP_SERVER_ACTIVE_REQUESTS: &str = "http_server_active_requests";
    /// `http.server.request.body.size` (By).
    pub const HTTP_SERVER_REQUEST_BODY_SIZE: &str = "http_server_request_body_size_bytes";
    /// `http.server.response.body.size` (By).
    pub const HTTP_SERVER_RESPONSE_BODY_SIZE: &str = "http_server_response_body_size_bytes";
    /// `http.client.request.duration` (s).
    pub const HTTP_CLIENT_REQUEST_DURATION: &str = "http_client_request_duration_seconds";
    /// `db.client.operation.duration` (s).
    pub const DB_CLIENT_OPERATION_DURATION: &str = "db_client_operation_duration_seconds";
    /// Log lines dropped by a bounded writer, by level.
    pub const LOG_DROPPED: &str = "obs_log_dropped_lines_total";
    /// Log lines suppressed by a per-callsite rate limit.
    pub const LOG_SUPPRESSED: &str = "obs_log_suppressed_lines_total";
    /// Spans dropped by a full export queue or a failed export.
    pub const SPANS_DROPPED: &str = "obs_trace_dropped_spans_total";
    /// Label sets rejected by the cardinality guard, by metric.
    pub const LABEL_SETS_REJECTED: &str = "obs_metric_label_sets_rejected_total";
    /// Errors captured, by type.
    pub const ERRORS: &str = "obs_errors_total";
    /// Health check status (1 pass, 0.5 warn, 0 fail).
    pub const HEALTH_CHECK_STATUS: &str = "obs_health_check_status";
    /// Health check duration (s).
    pub const HEALTH_CHECK_DURATION: &str = "obs_health_check_duration_seconds";
    /// The label the cardinality guard puts on its overflow series.
    pub const OVERFLOW_LABEL: &str = "otel_metric_overflow";
}

/// Bucket boundaries of `http.server.request.duration` and
/// `http.client.request.duration` from the HTTP semantic conventions, in
/// seconds.
pub const HTTP_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Environment variables read by more than one pillar.
pub mod env {
    /// `OTEL_SERVICE_NAME`
    pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
    /// `OTEL_RESOURCE_ATTRIBUTES`
    pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
    /// `OTEL_SDK_DISABLED`
    pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";

    /// A lookup over fixed `(name, value)` pairs, for the `from_lookup`
    /// constructors every crate has: tests, or settings read from a file.
    ///
    /// ```
    /// let lookup = obs_core::names::env::from_pairs(&[("OTEL_SERVICE_NAME", "checkout")]);
    /// assert_eq!(lookup("OTEL_SERVICE_NAME").as_deref(), Some("checkout"));
    /// assert_eq!(lookup("OTEL_SDK_DISABLED"), None);
    /// ```
    pub fn from_pairs<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(pk, _)| *pk == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::header::{SENSITIVE, is_sensitive};

    /// The length pre-check agrees with the list, for every name on it and
    /// for names of every length around theirs.
    #[test]
    fn is_sensitive_answers_as_the_list_does() {
        for name in SENSITIVE {
            assert!(is_sensitive(name), "{name}");
        }
        let others = [
            "",
            "accept",
            "cookies",
            "cookie2",
            "x-api-keys",
            "set-cookie2",
            "x-auth-tokens",
            "authorisation",
            "proxy-authorisation",
            "host",
            "x-request-id",
            "content-type",
        ];
        for name in others {
            assert_eq!(is_sensitive(name), SENSITIVE.contains(&name), "{name}");
        }
        for len in 0..80 {
            let name = "x".repeat(len);
            assert!(!is_sensitive(&name), "{len}");
        }
    }
}
