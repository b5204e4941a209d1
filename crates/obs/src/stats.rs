//! Publishes the pillars' self-metrics (their stats handles, the stats-handle contract) on
//! the metrics registry: dropped and suppressed log lines, exported and
//! dropped spans, correlation ids generated and replaced, health check status
//! and duration, captured errors, and `obs_build_info`.

#![cfg(feature = "metrics")]

#[allow(unused_imports, reason = "names of the enabled pillars' metrics")]
use obs_core::names::metric;

use crate::{Error, Obs};

/// Prometheus counters are registered without their `_total` suffix; the
/// registry adds it.
#[allow(dead_code, reason = "used by the enabled pillars' counters")]
fn base(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

pub(crate) fn publish(obs: &Obs) -> Result<(), Error> {
    let registry = &obs.inner.registry;
    let resource = &obs.inner.resource;
    let revision = resource
        .get("vcs.revision")
        .or_else(|| resource.get("service.revision"));
    obs_metrics::sets::build_info(
        registry,
        resource.service_name(),
        resource.service_version().unwrap_or("unknown"),
        revision.unwrap_or("unknown"),
    )?;

    #[cfg(feature = "log")]
    {
        let stats = obs.inner.log_stats.clone();
        registry.callback_counter_family(
            base(metric::LOG_DROPPED),
            "Log lines dropped by the bounded writer, by level.",
            ["level"],
            move |e| {
                for (level, n) in stats.dropped_by_level().iter() {
                    e.emit([level.as_str()], n);
                }
            },
        )?;
        let stats = obs.inner.log_stats.clone();
        registry.callback_counter(
            base(metric::LOG_SUPPRESSED),
            "Log lines suppressed by the per-callsite rate limit.",
            move || stats.suppressed(),
        )?;
        let stats = obs.inner.log_stats.clone();
        registry.callback_counter(
            "obs_log_lines_written",
            "Log lines written to the sink.",
            move || stats.written(),
        )?;
        let stats = obs.inner.log_stats.clone();
        registry.callback_counter(
            "obs_log_write_errors",
            "Failures of the log sink (full disk, read-only or vanished directory), each counted once until a write succeeds again.",
            move || stats.write_errors(),
        )?;
        #[cfg(feature = "otlp-logs")]
        if let Some(otlp) = obs.inner.log_otlp_stats() {
            let stats = otlp.clone();
            registry.callback_counter(
                "obs_log_records_exported",
                "Log records exported over OTLP.",
                move || stats.exported(),
            )?;
            registry.callback_counter_family(
                "obs_log_records_dropped",
                "Log records dropped before OTLP export, by reason.",
                ["reason"],
                move |e| {
                    e.emit(["queue_full"], otlp.dropped_queue_full());
                    e.emit(["export_failed"], otlp.dropped_export_failed());
                    e.emit(["shutdown"], otlp.dropped_shutdown());
                },
            )?;
        }
        let stats = obs.inner.log_stats.clone();
        registry.callback_gauge(
            "obs_log_sink_failing",
            "1 while the log sink is failing and lines are being dropped, else 0.",
            move || if stats.sink_failing() { 1.0 } else { 0.0 },
        )?;
    }

    #[cfg(feature = "trace")]
    {
        let stats = obs.inner.tracer.stats();
        registry.callback_counter_family(
            base(metric::SPANS_DROPPED),
            "Spans dropped before export, by reason.",
            ["reason"],
            move |e| {
                e.emit(["queue_full"], stats.dropped_queue_full());
                e.emit(["export_failed"], stats.dropped_export_failed());
                e.emit(["after_shutdown"], stats.dropped_after_shutdown());
            },
        )?;
        let stats = obs.inner.tracer.stats();
        registry.callback_counter(
            "obs_trace_exported_spans",
            "Spans exported to the collector.",
            move || stats.exported(),
        )?;
        let stats = obs.inner.tracer.stats();
        registry.callback_counter(
            "obs_trace_ended_spans",
            "Sampled spans that ended and went to the export pipeline: each is exported, dropped or pending.",
            move || stats.ended(),
        )?;
    }

    #[cfg(feature = "correlate")]
    {
        let stats = obs.inner.correlate_stats.clone();
        registry.callback_counter_family(
            "obs_correlation_ids",
            "Correlation ids of incoming requests, by where they came from.",
            ["source"],
            move |e| {
                e.emit(["incoming"], stats.incoming());
                e.emit(["traceparent"], stats.from_traceparent());
                e.emit(["generated"], stats.generated());
                e.emit(["replaced"], stats.replaced());
                e.emit(["untrusted"], stats.untrusted());
            },
        )?;
        let stats = obs.inner.correlate_stats.clone();
        registry.callback_counter_family(
            "obs_correlation_ids_rejected",
            "Incoming correlation ids rejected and replaced, by reason (secret_shaped: a credential sent as an id).",
            ["reason"],
            move |e| {
                for reason in obs_correlate::RejectReason::ALL {
                    e.emit([reason.as_str()], stats.rejected(reason));
                }
            },
        )?;
    }

    #[cfg(feature = "health")]
    {
        let stats = obs.inner.health.stats();
        registry.callback_gauge_family(
            metric::HEALTH_CHECK_STATUS,
            "Latest status of each health check: 1 pass, 0.5 warn, 0 fail.",
            ["check"],
            move |e| {
                for c in stats.checks() {
                    if let Some(v) = c.status_value() {
                        e.emit([&*c.name], v);
                    }
                }
            },
        )?;
        let stats = obs.inner.health.stats();
        registry.callback_gauge_family(
            metric::HEALTH_CHECK_DURATION,
            "Duration of the latest run of each health check.",
            ["check"],
            move |e| {
                for c in stats.checks() {
                    if let Some(v) = c.duration_seconds() {
                        e.emit([&*c.name], v);
                    }
                }
            },
        )?;
    }

    #[cfg(feature = "errors")]
    {
        let stats = obs.inner.reporter.stats();
        registry.callback_counter_family(
            base(metric::ERRORS),
            "Errors and panics captured, by type.",
            ["type"],
            move |e| {
                for t in stats.by_type() {
                    e.emit([t.error_type.as_str()], t.count);
                }
            },
        )?;
        let stats = obs.inner.reporter.stats();
        registry.callback_counter_family(
            "obs_error_reports",
            "Error reports by outcome: sent, merged into an earlier report, dropped.",
            ["outcome"],
            move |e| {
                e.emit(["reported"], stats.reported());
                e.emit(["deduplicated"], stats.deduplicated());
                e.emit(["rate_limited"], stats.rate_limited());
                e.emit(["dropped"], stats.dropped());
            },
        )?;
    }
    Ok(())
}
