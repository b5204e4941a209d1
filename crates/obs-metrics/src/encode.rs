//! The exposition formats: Prometheus text 0.0.4 and OpenMetrics 1.0.

use crate::text::{push_f64, push_u64};

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4, what every scraper understands.
    Text,
    /// OpenMetrics 1.0 text, the only one that carries exemplars.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` a response in this format carries.
    ///
    /// ```
    /// use obs_metrics::Format;
    /// assert_eq!(Format::Text.content_type(), "text/plain; version=0.0.4; charset=utf-8");
    /// ```
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Chooses the format for an `Accept` header: OpenMetrics when the
    /// client lists `application/openmetrics-text` with a quality at least as
    /// high as any text/plain or wildcard entry, text 0.0.4 otherwise
    /// (including when the header is absent or unparsable).
    ///
    /// ```
    /// use obs_metrics::Format;
    /// // What Prometheus 2.x sends:
    /// let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
    /// assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
    /// assert_eq!(Format::negotiate(None), Format::Text);
    /// ```
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut best_om: Option<f32> = None;
        let mut best_text: f32 = 0.0;
        for part in accept.split(',') {
            let mut params = part.split(';');
            let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut version: Option<String> = None;
            for p in params {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
            if q <= 0.0 {
                continue;
            }
            match media.as_str() {
                "application/openmetrics-text" => {
                    // We speak 1.0.0; 0.0.1 is the same text grammar for what we emit.
                    let ok = version
                        .as_deref()
                        .is_none_or(|v| v == "1.0.0" || v == "0.0.1");
                    if ok {
                        best_om = Some(best_om.map_or(q, |b| b.max(q)));
                    }
                }
                "text/plain" | "*/*" | "text/*" => best_text = best_text.max(q),
                _ => {}
            }
        }
        match best_om {
            Some(q) if q >= best_text => Format::OpenMetrics,
            _ => Format::Text,
        }
    }
}

/// One exemplar: the trace that produced an observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Exemplar {
    pub(crate) trace_id: obs_core::TraceId,
    pub(crate) span_id: Option<obs_core::SpanId>,
    pub(crate) value: f64,
    pub(crate) timestamp: f64,
}

/// Writes samples of one metric family into the output buffer (internal:
/// named in the sealed metric trait only).
#[derive(Debug)]
pub struct Writer<'a> {
    pub(crate) out: &'a mut String,
    pub(crate) format: Format,
}

impl Writer<'_> {
    /// Writes the `# HELP` and `# TYPE` lines. `name` is the family name
    /// (for counters without `_total`).
    pub(crate) fn header(&mut self, name: &str, help: &str, ty: crate::MetricType) {
        let om = self.format == Format::OpenMetrics;
        let suffix = if ty == crate::MetricType::Counter && !om {
            "_total"
        } else {
            ""
        };
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push_str(suffix);
        self.out.push(' ');
        crate::text::escape_help(self.out, help, om);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push_str(suffix);
        self.out.push(' ');
        self.out.push_str(ty.as_str());
        self.out.push('\n');
    }

    /// Writes `name{labels,extra="v"} ` — everything before the value.
    #[inline]
    pub(crate) fn start(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &str,
        extra: Option<(&str, &str)>,
    ) {
        let out = &mut *self.out;
        out.push_str(name);
        out.push_str(suffix);
        match (labels.is_empty(), extra) {
            (true, None) => {}
            (false, None) => {
                out.push('{');
                out.push_str(labels);
                out.push('}');
            }
            (empty, Some((k, v))) => {
                out.push('{');
                if !empty {
                    out.push_str(labels);
                    out.push(',');
                }
                out.push_str(k);
                out.push_str("=\"");
                out.push_str(v);
                out.push_str("\"}");
            }
        }
        out.push(' ');
    }

    /// Ends a sample line, with the exemplar in OpenMetrics.
    #[inline]
    pub(crate) fn end(&mut self, exemplar: Option<&Exemplar>) {
        if let (Some(e), Format::OpenMetrics) = (exemplar, self.format) {
            let out = &mut *self.out;
            out.push_str(" # {trace_id=\"");
            out.push_str(&e.trace_id.to_hex());
            if let Some(s) = e.span_id {
                out.push_str("\",span_id=\"");
                out.push_str(&s.to_hex());
            }
            out.push_str("\"} ");
            push_f64(out, e.value);
            out.push(' ');
            push_f64(out, e.timestamp);
        }
        self.out.push('\n');
    }

    /// A whole sample with an unsigned value.
    #[inline]
    pub(crate) fn u64_sample(&mut self, name: &str, suffix: &str, labels: &str, v: u64) {
        self.start(name, suffix, labels, None);
        push_u64(self.out, v);
        self.out.push('\n');
    }

    /// A whole sample with a float value.
    #[inline]
    pub(crate) fn f64_sample(&mut self, name: &str, suffix: &str, labels: &str, v: f64) {
        self.start(name, suffix, labels, None);
        push_f64(self.out, v);
        self.out.push('\n');
    }
}
