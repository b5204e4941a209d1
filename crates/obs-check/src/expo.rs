//! A strict parser for the Prometheus text exposition format 0.0.4 and for
//! OpenMetrics 1.0 text: every line is checked, the first error is reported
//! with its line number.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Which format to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

/// A parse error: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number (0: the document as a whole).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
    /// The offending line.
    pub text: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

/// A metric family.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family name (from `# TYPE`, or the sample name when untyped).
    pub name: String,
    /// `counter`, `gauge`, `histogram`, `summary`, `untyped`/`unknown`, …
    pub kind: String,
    /// `# HELP` text.
    pub help: Option<String>,
    /// `# UNIT` (OpenMetrics).
    pub unit: Option<String>,
    /// Its samples.
    pub samples: Vec<Sample>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Sample name (`x_bucket`, `x_total`, …).
    pub name: String,
    /// Labels in written order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// 1-based line number.
    pub line: usize,
}

impl Sample {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a whole exposition.
pub fn parse(body: &str, format: Format) -> Result<Vec<Family>, ParseError> {
    let om = format == Format::OpenMetrics;
    let doc_err = |reason: &str| ParseError {
        line: 0,
        reason: reason.into(),
        text: String::new(),
    };
    let body = if om {
        let trimmed = body.strip_suffix('\n').unwrap_or(body);
        match trimmed.rsplit_once('\n') {
            Some((rest, "# EOF")) => rest,
            None if trimmed == "# EOF" => "",
            _ => return Err(doc_err("OpenMetrics must end with the line `# EOF`")),
        }
    } else {
        if !body.is_empty() && !body.ends_with('\n') {
            return Err(doc_err("the last line does not end with a line feed"));
        }
        body.strip_suffix('\n').unwrap_or(body)
    };
    let mut families: Vec<Family> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // The family samples currently belong to; a family met again after
    // another one is interleaved.
    let mut current: Option<usize> = None;
    let mut closed: HashSet<usize> = HashSet::new();
    let mut series: HashSet<(String, Vec<(String, String)>)> = HashSet::new();

    if body.is_empty() {
        return Ok(families);
    }
    for (i, line) in body.split('\n').enumerate() {
        let n = i + 1;
        let err = |reason: String| ParseError {
            line: n,
            reason,
            text: line.to_owned(),
        };
        if line.is_empty() {
            if om {
                return Err(err("empty lines are not allowed in OpenMetrics".into()));
            }
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let Some(rest) = comment.strip_prefix(' ') else {
                if om {
                    return Err(err(
                        "a comment must be `# HELP`, `# TYPE` or `# UNIT`".into()
                    ));
                }
                continue;
            };
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().unwrap_or("");
            if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
                if om {
                    return Err(err(format!("unknown descriptor `# {keyword}`")));
                }
                continue;
            }
            let name = parts.next().unwrap_or("");
            if !is_metric_name(name) {
                return Err(err(format!("invalid metric name {name:?} in # {keyword}")));
            }
            let arg = parts.next();
            let idx = match index.get(name) {
                Some(&idx) => {
                    if current != Some(idx)
                        && (closed.contains(&idx) || !families[idx].samples.is_empty())
                    {
                        return Err(err(format!(
                            "family {name} is described again after other families"
                        )));
                    }
                    idx
                }
                None => {
                    families.push(Family {
                        name: name.to_owned(),
                        kind: if om { "unknown" } else { "untyped" }.into(),
                        help: None,
                        unit: None,
                        samples: Vec::new(),
                    });
                    index.insert(name.to_owned(), families.len() - 1);
                    families.len() - 1
                }
            };
            if current != Some(idx) {
                if let Some(c) = current {
                    closed.insert(c);
                }
                current = Some(idx);
            }
            let fam = &mut families[idx];
            match keyword {
                "HELP" => {
                    if fam.help.is_some() {
                        return Err(err(format!("second # HELP for {name}")));
                    }
                    fam.help = Some(unescape_help(arg.unwrap_or(""), om).map_err(err)?);
                }
                "TYPE" => {
                    let kind = arg.unwrap_or("");
                    let known: &[&str] = if om {
                        &[
                            "counter",
                            "gauge",
                            "histogram",
                            "gaugehistogram",
                            "summary",
                            "info",
                            "stateset",
                            "unknown",
                        ]
                    } else {
                        &["counter", "gauge", "histogram", "summary", "untyped"]
                    };
                    if !known.contains(&kind) {
                        return Err(err(format!("unknown type {kind:?}")));
                    }
                    if !fam.samples.is_empty() {
                        return Err(err(format!("# TYPE for {name} after its samples")));
                    }
                    if fam.kind != "untyped" && fam.kind != "unknown" {
                        return Err(err(format!("second # TYPE for {name}")));
                    }
                    fam.kind = kind.to_owned();
                }
                _ => {
                    if !om {
                        continue;
                    }
                    let unit = arg.unwrap_or("");
                    if !unit.is_empty() && !name.ends_with(&format!("_{unit}")) {
                        return Err(err(format!("unit {unit:?} is not a suffix of {name}")));
                    }
                    fam.unit = Some(unit.to_owned());
                }
            }
            continue;
        }
        let sample = parse_sample(line, n, om).map_err(err)?;
        // Which family: the current one when the name fits it, otherwise the
        // declared family it fits, otherwise a new untyped one.
        let fits = |f: &Family| family_of(&sample.name, &f.name, &f.kind, om);
        let idx = match current.filter(|&c| fits(&families[c])) {
            Some(c) => c,
            None => {
                let found = index
                    .iter()
                    .filter(|&(_, &i)| fits(&families[i]))
                    .map(|(_, &i)| i)
                    .max_by_key(|&i| families[i].name.len());
                match found {
                    Some(i) => {
                        if closed.contains(&i)
                            || (current.is_some()
                                && current != Some(i)
                                && !families[i].samples.is_empty())
                        {
                            return Err(err(format!(
                                "samples of {} are not in one group",
                                families[i].name
                            )));
                        }
                        i
                    }
                    None => {
                        if om {
                            return Err(err(format!("sample {} has no # TYPE", sample.name)));
                        }
                        families.push(Family {
                            name: sample.name.clone(),
                            kind: "untyped".into(),
                            help: None,
                            unit: None,
                            samples: Vec::new(),
                        });
                        index.insert(sample.name.clone(), families.len() - 1);
                        families.len() - 1
                    }
                }
            }
        };
        if current != Some(idx) {
            if let Some(c) = current {
                closed.insert(c);
            }
            current = Some(idx);
        }
        let mut key_labels = sample.labels.clone();
        key_labels.sort();
        if !series.insert((sample.name.clone(), key_labels)) {
            return Err(err(format!("duplicate series {}", sample.name)));
        }
        families[idx].samples.push(sample);
    }
    for f in &families {
        if f.kind == "histogram" || f.kind == "gaugehistogram" {
            check_histogram(f)?;
        }
        if om && f.kind == "counter" && f.name.ends_with("_total") {
            return Err(ParseError {
                line: 0,
                reason: format!(
                    "OpenMetrics counter family {} must be named without _total",
                    f.name
                ),
                text: String::new(),
            });
        }
    }
    Ok(families)
}

/// Whether sample `sample` belongs to family `family` of type `kind`.
fn family_of(sample: &str, family: &str, kind: &str, om: bool) -> bool {
    let Some(suffix) = sample.strip_prefix(family) else {
        return false;
    };
    let allowed: &[&str] = match kind {
        "counter" if om => &["_total", "_created"],
        "counter" => &["", "_created"],
        "histogram" => &["_bucket", "_count", "_sum", "_created"],
        "gaugehistogram" => &["_bucket", "_gcount", "_gsum"],
        "summary" => &["", "_count", "_sum", "_created"],
        "info" => &["_info"],
        _ => &[""],
    };
    allowed.contains(&suffix)
}

fn check_histogram(f: &Family) -> Result<(), ParseError> {
    // Buckets per label set without `le`.
    let mut groups: BTreeMap<Labels, Buckets> = BTreeMap::new();
    for s in &f.samples {
        let key: Vec<_> = s
            .labels
            .iter()
            .filter(|(k, _)| k != "le")
            .cloned()
            .collect();
        let entry = groups.entry(key).or_default();
        if s.name.ends_with("_bucket") {
            let le = s.label("le").ok_or_else(|| ParseError {
                line: s.line,
                reason: format!("{} has no le label", s.name),
                text: String::new(),
            })?;
            let bound = parse_float(le).ok_or_else(|| ParseError {
                line: s.line,
                reason: format!("le={le:?} is not a number"),
                text: String::new(),
            })?;
            entry.0.push((bound, s.value, s.line));
        } else if s.name.ends_with("_count") || s.name.ends_with("_gcount") {
            entry.1 = Some(s.value);
        }
    }
    for (labels, (buckets, count)) in groups {
        let at = buckets.first().map_or(0, |b| b.2);
        let e = |reason: String| ParseError {
            line: at,
            reason: format!("histogram {} {labels:?}: {reason}", f.name),
            text: String::new(),
        };
        if buckets.is_empty() {
            return Err(e("no buckets".into()));
        }
        for w in buckets.windows(2) {
            if w[1].0 <= w[0].0 {
                return Err(e(format!(
                    "bucket bounds not increasing ({} after {})",
                    w[1].0, w[0].0
                )));
            }
            if w[1].1 < w[0].1 {
                return Err(e(format!(
                    "bucket counts not cumulative (le={} has fewer than le={})",
                    w[1].0, w[0].0
                )));
            }
        }
        let last = buckets[buckets.len() - 1];
        if last.0 != f64::INFINITY {
            return Err(e("no le=\"+Inf\" bucket".into()));
        }
        match count {
            None => return Err(e("no _count".into())),
            Some(c) if c != last.1 => {
                return Err(e(format!(
                    "_count {c} differs from the +Inf bucket {}",
                    last.1
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn unescape_help(s: &str, om: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if om => out.push('"'),
            other => {
                return Err(format!(
                    "invalid escape \\{} in # HELP",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    Ok(out)
}

/// Go's `ParseFloat` as Prometheus uses it, plus the spelled infinities.
fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// Label pairs in written order.
type Labels = Vec<(String, String)>;
/// Per label set: (bound, cumulative count, line) of each bucket, and `_count`.
type Buckets = (Vec<(f64, f64, usize)>, Option<f64>);

fn parse_labels(s: &str, om: bool) -> Result<(Labels, &str), String> {
    // `s` starts after `{`; returns the labels and what follows `}`.
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut rest = s;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without `=`")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if labels.iter().any(|(k, _)| k == name) {
            return Err(format!("label {name} given twice"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => {
                        return Err(format!(
                            "invalid escape \\{} in a label value",
                            other.map(|(_, c)| String::from(c)).unwrap_or_default()
                        ));
                    }
                },
                Some((_, '\n')) => return Err("raw line feed in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
            if om && rest.starts_with('}') {
                return Err("trailing comma in labels".into());
            }
        } else if !rest.starts_with('}') {
            return Err("expected `,` or `}` after a label".into());
        }
    }
}

fn parse_sample(line: &str, n: usize, om: bool) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample needs a value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(r) => parse_labels(r, om)?,
        None => (Vec::new(), &line[name_end..]),
    };
    let rest = rest
        .strip_prefix(' ')
        .ok_or("expected one space before the value")?;
    let (main, exemplar) = match rest.split_once(" # ") {
        Some((m, e)) if om => (m, Some(e)),
        Some(_) => return Err("exemplars are OpenMetrics only".into()),
        None => (rest, None),
    };
    let mut fields = main.split(' ');
    let value_s = fields.next().unwrap_or("");
    let value = parse_float(value_s).ok_or_else(|| format!("value {value_s:?} is not a number"))?;
    if let Some(ts) = fields.next() {
        let ok = if om {
            parse_float(ts).is_some_and(f64::is_finite)
        } else {
            ts.parse::<i64>().is_ok()
        };
        if !ok {
            return Err(format!("timestamp {ts:?} is invalid"));
        }
    }
    if fields.next().is_some() {
        return Err("unexpected text after the timestamp".into());
    }
    if let Some(ex) = exemplar {
        let r = ex.strip_prefix('{').ok_or("an exemplar starts with `{`")?;
        let (ex_labels, r) = parse_labels(r, om)?;
        let chars: usize = ex_labels
            .iter()
            .map(|(k, v)| k.chars().count() + v.chars().count())
            .sum();
        if chars > 128 {
            return Err(format!(
                "exemplar labels are {chars} characters (at most 128)"
            ));
        }
        let r = r.strip_prefix(' ').ok_or("an exemplar needs a value")?;
        let mut f = r.split(' ');
        let v = f.next().unwrap_or("");
        parse_float(v).ok_or_else(|| format!("exemplar value {v:?} is not a number"))?;
        if let Some(ts) = f.next() {
            parse_float(ts).ok_or_else(|| format!("exemplar timestamp {ts:?} is invalid"))?;
        }
        if f.next().is_some() {
            return Err("unexpected text after the exemplar".into());
        }
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
        line: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\nhttp_requests_total{method=\"GET\",route=\"/a\\\"b\"} 3\n\n# TYPE d histogram\nd_bucket{le=\"0.1\"} 1\nd_bucket{le=\"+Inf\"} 2\nd_sum 0.3\nd_count 2\nup 1 1700000000000\n";

    #[test]
    fn text_parses() {
        let f = parse(TEXT, Format::Text).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].kind, "counter");
        assert_eq!(f[0].samples[0].label("route"), Some("/a\"b"));
        assert_eq!(f[1].samples.len(), 4);
        assert_eq!(f[2].kind, "untyped");
    }

    #[test]
    fn text_errors() {
        let bad = [
            ("x 1", "line feed"),
            ("x{a=\"b\\q\"} 1\n", "escape"),
            ("x{a=\"b\",a=\"c\"} 1\n", "twice"),
            ("x one\n", "not a number"),
            ("1x 1\n", "metric name"),
            ("x 1\nx 2\n", "duplicate"),
            ("# TYPE x counter\n# TYPE x gauge\n", "second # TYPE"),
            (
                "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x=\"1\"} 2\n",
                "one group",
            ),
            (
                "# TYPE d histogram\nd_bucket{le=\"1\"} 2\nd_count 2\n",
                "+Inf",
            ),
            (
                "# TYPE d histogram\nd_bucket{le=\"1\"} 2\nd_bucket{le=\"+Inf\"} 1\nd_count 1\n",
                "cumulative",
            ),
            (
                "# TYPE d histogram\nd_bucket{le=\"+Inf\"} 2\nd_count 3\n",
                "differs",
            ),
            ("x 1 # {a=\"b\"} 1\n", "OpenMetrics only"),
        ];
        for (body, want) in bad {
            let e = parse(body, Format::Text).unwrap_err();
            assert!(e.to_string().contains(want), "{body:?}: {e}");
        }
    }

    #[test]
    fn openmetrics() {
        let ok = "# TYPE c counter\n# HELP c C.\nc_total 1 # {trace_id=\"abc\"} 1 1.5\nc_created 1.7e9\n# TYPE g gauge\n# UNIT g seconds\ng 2\n# EOF\n";
        assert!(
            parse(
                "# TYPE g_seconds gauge\n# UNIT g_seconds seconds\ng_seconds 1\n# EOF",
                Format::OpenMetrics
            )
            .is_ok()
        );
        let e = parse(ok, Format::OpenMetrics).unwrap_err();
        assert!(e.to_string().contains("not a suffix"), "{e}");
        let ok = ok.replace("# UNIT g seconds\n", "");
        let f = parse(&ok, Format::OpenMetrics).unwrap();
        assert_eq!(f[0].samples.len(), 2);
        for (body, want) in [
            ("# TYPE c counter\nc_total 1\n", "# EOF"),
            ("# TYPE c counter\nc_total 1\n# EOF\nx 1\n", "# EOF"),
            ("# TYPE c counter\n\nc_total 1\n# EOF\n", "empty lines"),
            ("c_total 1\n# EOF\n", "no # TYPE"),
            ("# TYPE c_total counter\nc_total 1\n# EOF\n", "c_total"),
        ] {
            let e = parse(body, Format::OpenMetrics).unwrap_err();
            assert!(e.to_string().contains(want), "{body:?}: {e}");
        }
    }
}
