//! The resource: which service, version, environment and instance emits the
//! telemetry. Every pillar stamps it on what it sends.

use crate::error::{Error, preview};
use crate::names::{env, resource as key};

/// Service identity shared by logs, metrics, traces and error reports.
///
/// Built from `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` by
/// [`from_env`](Self::from_env) (values percent-decoded as the OpenTelemetry
/// specification says), or by hand with the builder methods.
///
/// ```
/// use obs_core::Resource;
/// let r = Resource::from_lookup(|k| match k {
///     "OTEL_SERVICE_NAME" => Some("checkout".into()),
///     "OTEL_RESOURCE_ATTRIBUTES" => Some("service.version=1.2.3,deployment.environment.name=prod,team=payments%20core".into()),
///     _ => None,
/// })?;
/// assert_eq!(r.service_name(), "checkout");
/// assert_eq!(r.service_version(), Some("1.2.3"));
/// assert_eq!(r.environment(), Some("prod"));
/// assert_eq!(r.get("team"), Some("payments core"));
/// # Ok::<(), obs_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Resource {
    service_name: String,
    service_version: Option<String>,
    environment: Option<String>,
    instance_id: String,
    /// Every other attribute, in the order given.
    attributes: Vec<(String, String)>,
}

impl Default for Resource {
    fn default() -> Self {
        Self::new(default_service_name())
    }
}

/// `unknown_service:<executable>` as the OpenTelemetry specification prescribes
/// when no service name is configured.
fn default_service_name() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()));
    match exe {
        Some(e) if !e.is_empty() => format!("unknown_service:{e}"),
        _ => "unknown_service".to_owned(),
    }
}

impl Resource {
    /// A resource for `service_name` with a fresh random instance id.
    pub fn new(service_name: impl Into<String>) -> Self {
        Self {
            service_name: service_name.into(),
            service_version: None,
            environment: None,
            instance_id: crate::CorrelationId::new_v4().as_str().to_owned(),
            attributes: Vec::new(),
        }
    }

    /// Reads `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` from the process
    /// environment. `OTEL_SERVICE_NAME` wins over a `service.name` attribute.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`from_env`](Self::from_env) with a custom variable lookup (tests,
    /// config files, anything but the real environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut r = Resource::default();
        if let Some(raw) = lookup(env::OTEL_RESOURCE_ATTRIBUTES) {
            let attrs = parse_attributes(&raw).map_err(|e| Error::Env {
                var: env::OTEL_RESOURCE_ATTRIBUTES.into(),
                reason: e.to_string(),
            })?;
            for (k, v) in attrs {
                r.set(&k, v);
            }
        }
        if let Some(name) = lookup(env::OTEL_SERVICE_NAME) {
            let name = name.trim();
            if name.is_empty() {
                return Err(Error::Env {
                    var: env::OTEL_SERVICE_NAME.into(),
                    reason: "the service name is empty".into(),
                });
            }
            r.service_name = name.to_owned();
        }
        Ok(r)
    }

    /// Sets an attribute; the well-known keys fill their dedicated fields.
    pub fn set(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        let v = v.into();
        match k {
            key::SERVICE_NAME => self.service_name = v,
            key::SERVICE_VERSION => self.service_version = Some(v),
            key::DEPLOYMENT_ENVIRONMENT_NAME | key::DEPLOYMENT_ENVIRONMENT => {
                self.environment = Some(v)
            }
            key::SERVICE_INSTANCE_ID => self.instance_id = v,
            _ => match self.attributes.iter_mut().find(|(ak, _)| ak == k) {
                Some(slot) => slot.1 = v,
                None => self.attributes.push((k.to_owned(), v)),
            },
        }
        self
    }

    /// Builder form of [`set`](Self::set) for the service name.
    pub fn with_service_name(mut self, v: impl Into<String>) -> Self {
        self.service_name = v.into();
        self
    }

    /// Builder form for `service.version`.
    pub fn with_version(mut self, v: impl Into<String>) -> Self {
        self.service_version = Some(v.into());
        self
    }

    /// Builder form for `deployment.environment.name`.
    pub fn with_environment(mut self, v: impl Into<String>) -> Self {
        self.environment = Some(v.into());
        self
    }

    /// Builder form for `service.instance.id`.
    pub fn with_instance_id(mut self, v: impl Into<String>) -> Self {
        self.instance_id = v.into();
        self
    }

    /// Builder form for any other attribute.
    pub fn with_attribute(mut self, k: &str, v: impl Into<String>) -> Self {
        self.set(k, v);
        self
    }

    /// `service.name`
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// `service.version`
    pub fn service_version(&self) -> Option<&str> {
        self.service_version.as_deref()
    }

    /// `deployment.environment.name`
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// `service.instance.id`
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Any attribute by key, the well-known ones included.
    pub fn get(&self, k: &str) -> Option<&str> {
        match k {
            key::SERVICE_NAME => Some(&self.service_name),
            key::SERVICE_VERSION => self.service_version.as_deref(),
            key::DEPLOYMENT_ENVIRONMENT_NAME | key::DEPLOYMENT_ENVIRONMENT => {
                self.environment.as_deref()
            }
            key::SERVICE_INSTANCE_ID => Some(&self.instance_id),
            _ => self
                .attributes
                .iter()
                .find(|(ak, _)| ak == k)
                .map(|(_, v)| v.as_str()),
        }
    }

    /// Every attribute as `(key, value)`, the well-known ones first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let known = [
            Some((key::SERVICE_NAME, self.service_name.as_str())),
            self.service_version
                .as_deref()
                .map(|v| (key::SERVICE_VERSION, v)),
            self.environment
                .as_deref()
                .map(|v| (key::DEPLOYMENT_ENVIRONMENT_NAME, v)),
            Some((key::SERVICE_INSTANCE_ID, self.instance_id.as_str())),
        ];
        known.into_iter().flatten().chain(
            self.attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }
}

/// Parses the `OTEL_RESOURCE_ATTRIBUTES` format: comma-separated `key=value`
/// members, surrounding whitespace trimmed, values percent-decoded. Empty
/// members (`a=1,,b=2`) are skipped; a member without `=`, an empty key, a bad
/// `%` escape or a value that does not decode to UTF-8 is an error naming the
/// member.
///
/// ```
/// let attrs = obs_core::resource::parse_attributes("a=1, b = x%2Cy ")?;
/// assert_eq!(attrs, vec![("a".into(), "1".into()), ("b".into(), "x,y".into())]);
/// assert!(obs_core::resource::parse_attributes("novalue").is_err());
/// # Ok::<(), obs_core::Error>(())
/// ```
pub fn parse_attributes(raw: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for (index, member) in raw.split(',').enumerate() {
        let trimmed = member.trim();
        if trimmed.is_empty() {
            continue;
        }
        let err = |reason| Error::ResourceAttribute {
            index,
            member: preview(trimmed.as_bytes()),
            reason,
        };
        let (k, v) = trimmed.split_once('=').ok_or_else(|| err("missing '='"))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(err("empty key"));
        }
        if !k
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'=' && b != b',')
        {
            return Err(err("key must be printable ASCII without '=' or ','"));
        }
        let v = percent_decode(v.trim()).map_err(err)?;
        out.push((k.to_owned(), v));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, &'static str> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or("truncated percent escape")?;
            let hi = (hex[0] as char)
                .to_digit(16)
                .ok_or("invalid percent escape")?;
            let lo = (hex[1] as char)
                .to_digit(16)
                .ok_or("invalid percent escape")?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "value does not decode to UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::names::env::from_pairs as lookup;

    #[test]
    fn service_name_env_wins() {
        let r = Resource::from_lookup(lookup(&[
            ("OTEL_SERVICE_NAME", "a"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=b,service.instance.id=i-1",
            ),
        ]))
        .unwrap();
        assert_eq!(r.service_name(), "a");
        assert_eq!(r.instance_id(), "i-1");
    }

    #[test]
    fn defaults_follow_spec() {
        let r = Resource::from_lookup(|_| None).unwrap();
        assert!(r.service_name().starts_with("unknown_service"));
        assert_eq!(r.instance_id().len(), 36);
        assert_ne!(Resource::default().instance_id(), r.instance_id());
    }

    #[test]
    fn legacy_environment_key() {
        let r = Resource::from_lookup(lookup(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=staging",
        )]))
        .unwrap();
        assert_eq!(r.environment(), Some("staging"));
        assert_eq!(r.get("deployment.environment.name"), Some("staging"));
    }

    #[test]
    fn errors_name_the_variable_and_member() {
        let e = Resource::from_lookup(lookup(&[("OTEL_RESOURCE_ATTRIBUTES", "a=1,b=%zz")]))
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("OTEL_RESOURCE_ATTRIBUTES"), "{msg}");
        assert!(msg.contains("member 1"), "{msg}");
        assert!(msg.contains("invalid percent escape"), "{msg}");
        let e = Resource::from_lookup(lookup(&[("OTEL_SERVICE_NAME", "  ")])).unwrap_err();
        assert!(e.to_string().contains("OTEL_SERVICE_NAME"));
    }

    #[test]
    fn parse_edge_cases() {
        assert_eq!(parse_attributes("").unwrap(), vec![]);
        assert_eq!(
            parse_attributes(" , a=1 ,").unwrap(),
            vec![("a".into(), "1".into())]
        );
        assert_eq!(
            parse_attributes("a=").unwrap(),
            vec![("a".into(), String::new())]
        );
        assert_eq!(
            parse_attributes("a=b=c").unwrap(),
            vec![("a".into(), "b=c".into())]
        );
        assert_eq!(parse_attributes("k=%E2%9C%93").unwrap()[0].1, "\u{2713}");
        assert!(matches!(
            parse_attributes("=v"),
            Err(Error::ResourceAttribute {
                reason: "empty key",
                ..
            })
        ));
        assert!(matches!(
            parse_attributes("k=%4"),
            Err(Error::ResourceAttribute {
                reason: "truncated percent escape",
                ..
            })
        ));
        assert!(matches!(
            parse_attributes("k=%ff"),
            Err(Error::ResourceAttribute { .. })
        ));
        assert!(matches!(
            parse_attributes("k y=1"),
            Err(Error::ResourceAttribute { .. })
        ));
    }

    #[test]
    fn iter_lists_known_then_extra() {
        let r = Resource::new("svc")
            .with_version("1")
            .with_attribute("x", "y");
        let keys: Vec<&str> = r.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "service.name",
                "service.version",
                "service.instance.id",
                "x"
            ]
        );
    }
}
