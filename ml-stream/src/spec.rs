//! Source and sink specs: one grammar for the CLI and config files, parsed here, with a
//! name → factory registry so integrators can add their own schemes.
//!
//! ```text
//! file:PATH[?follow=true&state=PATH]      JSONL or CSV by extension
//! dir:PATH[?follow=true&state=PATH&recursive=true]   every file of a directory, in name order
//! stdin:                                   JSON lines from standard input
//! stdout:                                  records as JSON lines
//! jsonl:DIR[?endpoint=E&deployment=D&max_bytes=N]   Azure ML data-collection layout
//! parquet:DIR                               (feature "parquet")
//! kafka://HOST:PORT[,HOST:PORT]/TOPIC?group=G       (feature "kafka")
//! eventhubs://ENV_VAR?group=G               (feature "kafka"; connection string from ENV_VAR)
//! blob://CONTAINER/PREFIX                   (feature "azure")
//! appinsights:[?sampling_rate=R&kind=trace|event&endpoint=URL]   (feature "azure")
//! logsingestion:https://DCE?rule=DCR_ID&stream=Custom-T_CL   (feature "azure")
//! http://HOST:PORT                          a remote endpoint
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::traits::{InferenceSink, StreamSource};

/// A parsed spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The spec as written.
    pub raw: String,
    /// The scheme (`file`, `kafka`, ...), lower-case.
    pub scheme: String,
    /// The part after `//` up to the next `/` (hosts, an env var name, a container), if the
    /// spec used `scheme://`.
    pub authority: Option<String>,
    /// The path (after `scheme:` or after the authority).
    pub path: String,
    /// Query parameters (`?k=v&k2=v2`).
    pub params: BTreeMap<String, String>,
}

impl Spec {
    /// Parses `scheme:rest` or `scheme://authority/path`, with an optional `?k=v&...` query.
    pub fn parse(raw: &str) -> Result<Spec> {
        let bad = |reason: &str| Error::InvalidSpec {
            spec: raw.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = raw
            .split_once(':')
            .ok_or_else(|| bad("expected SCHEME:..., e.g. file:events.jsonl or jsonl:out/"))?;
        let scheme = scheme.trim().to_ascii_lowercase();
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("the scheme must be letters, digits, '-' or '_'"));
        }
        let (body, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let mut params = BTreeMap::new();
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(&format!("query parameter `{pair}` must be KEY=VALUE")))?;
            if params.insert(k.to_string(), v.to_string()).is_some() {
                return Err(bad(&format!("query parameter `{k}` is given twice")));
            }
        }
        let (authority, path) = match body.strip_prefix("//") {
            Some(after) => match after.split_once('/') {
                Some((a, p)) => (Some(a.to_string()), p.to_string()),
                None => (Some(after.to_string()), String::new()),
            },
            None => (None, body.to_string()),
        };
        Ok(Spec {
            raw: raw.to_string(),
            scheme,
            authority,
            path,
            params,
        })
    }

    /// A boolean parameter (`true`/`false`/`1`/`0`), `default` when absent.
    pub fn bool_param(&self, name: &str, default: bool) -> Result<bool> {
        match self.params.get(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v == "true" || v == "1" || v == "yes" => Ok(true),
            Some(v) if v == "false" || v == "0" || v == "no" => Ok(false),
            Some(v) => Err(Error::InvalidSpec {
                spec: self.raw.clone(),
                reason: format!("`{name}` must be true or false, got `{v}`"),
            }),
        }
    }

    /// A numeric parameter, `default` when absent.
    pub fn u64_param(&self, name: &str, default: u64) -> Result<u64> {
        match self.params.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| Error::InvalidSpec {
                spec: self.raw.clone(),
                reason: format!("`{name}` must be a whole number, got `{v}`"),
            }),
        }
    }

    /// Refuses parameters outside `allowed`, naming them (typos must not pass silently).
    pub fn only_params(&self, allowed: &[&str]) -> Result<()> {
        match self.params.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(Error::InvalidSpec {
                spec: self.raw.clone(),
                reason: format!(
                    "unknown parameter `{k}`; `{}:` accepts {}",
                    self.scheme,
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            }),
        }
    }

    /// The path, refusing an empty one.
    pub fn required_path(&self, what: &str) -> Result<&str> {
        if self.path.trim().is_empty() {
            Err(Error::InvalidSpec {
                spec: self.raw.clone(),
                reason: format!("`{}:` needs {what}", self.scheme),
            })
        } else {
            Ok(&self.path)
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Builds a source from a spec.
pub type SourceFactory = Arc<dyn Fn(&Spec) -> Result<Box<dyn StreamSource>> + Send + Sync>;
/// Builds a sink from a spec.
pub type SinkFactory = Arc<dyn Fn(&Spec) -> Result<Box<dyn InferenceSink>> + Send + Sync>;

/// Schemes that exist in streamscore but need a cargo feature.
const FEATURE_SCHEMES: &[(&str, &str)] = &[
    ("parquet", "parquet"),
    ("kafka", "kafka"),
    ("eventhubs", "kafka"),
    ("blob", "azure"),
    ("appinsights", "azure"),
    ("logsingestion", "azure"),
];

/// Scheme → factory, for sources and sinks. [`SpecRegistry::default`] holds the built-ins;
/// integrators add theirs with [`SpecRegistry::register_source`] / [`SpecRegistry::register_sink`].
#[derive(Clone)]
pub struct SpecRegistry {
    sources: HashMap<String, SourceFactory>,
    sinks: HashMap<String, SinkFactory>,
}

impl fmt::Debug for SpecRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sources: Vec<_> = self.sources.keys().collect();
        let mut sinks: Vec<_> = self.sinks.keys().collect();
        sources.sort();
        sinks.sort();
        f.debug_struct("SpecRegistry")
            .field("sources", &sources)
            .field("sinks", &sinks)
            .finish()
    }
}

impl Default for SpecRegistry {
    fn default() -> Self {
        let mut r = SpecRegistry::empty();
        crate::source::register_builtin(&mut r);
        crate::sink::register_builtin(&mut r);
        #[cfg(feature = "kafka")]
        crate::kafka::register(&mut r);
        r
    }
}

impl SpecRegistry {
    /// A registry with no schemes at all.
    pub fn empty() -> Self {
        SpecRegistry {
            sources: HashMap::new(),
            sinks: HashMap::new(),
        }
    }

    /// Adds (or replaces) the source factory of `scheme`.
    pub fn register_source(
        &mut self,
        scheme: &str,
        factory: impl Fn(&Spec) -> Result<Box<dyn StreamSource>> + Send + Sync + 'static,
    ) {
        self.sources
            .insert(scheme.to_ascii_lowercase(), Arc::new(factory));
    }

    /// Adds (or replaces) the sink factory of `scheme`.
    pub fn register_sink(
        &mut self,
        scheme: &str,
        factory: impl Fn(&Spec) -> Result<Box<dyn InferenceSink>> + Send + Sync + 'static,
    ) {
        self.sinks.insert(scheme.to_ascii_lowercase(), Arc::new(factory));
    }

    /// Builds the source a spec names.
    pub fn source(&self, spec: &str) -> Result<Box<dyn StreamSource>> {
        let spec = Spec::parse(spec)?;
        match self.sources.get(&spec.scheme) {
            Some(f) => f(&spec),
            None => Err(self.unknown(&spec, self.sources.keys())),
        }
    }

    /// Builds the sink a spec names.
    pub fn sink(&self, spec: &str) -> Result<Box<dyn InferenceSink>> {
        let spec = Spec::parse(spec)?;
        match self.sinks.get(&spec.scheme) {
            Some(f) => f(&spec),
            None => Err(self.unknown(&spec, self.sinks.keys())),
        }
    }

    fn unknown<'a>(&self, spec: &Spec, known: impl Iterator<Item = &'a String>) -> Error {
        if let Some((_, feature)) = FEATURE_SCHEMES.iter().find(|(s, _)| *s == spec.scheme) {
            return Error::FeatureDisabled {
                scheme: spec.scheme.clone(),
                feature,
            };
        }
        let mut known: Vec<&String> = known.collect();
        known.sort();
        let known: Vec<String> = known.into_iter().map(|k| format!("{k}:")).collect();
        Error::InvalidSpec {
            spec: spec.raw.clone(),
            reason: format!(
                "unknown scheme `{}:` here; available: {}",
                spec.scheme,
                known.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        let s = Spec::parse("file:data/events.jsonl?follow=true").unwrap();
        assert_eq!(
            (s.scheme.as_str(), s.path.as_str(), s.authority.as_deref()),
            ("file", "data/events.jsonl", None)
        );
        assert!(s.bool_param("follow", false).unwrap());
        let s = Spec::parse("kafka://h1:9092,h2:9092/scores?group=g1").unwrap();
        assert_eq!(s.authority.as_deref(), Some("h1:9092,h2:9092"));
        assert_eq!(s.path, "scores");
        assert_eq!(s.params["group"], "g1");
        let s = Spec::parse("eventhubs://EH_CONN?group=$Default").unwrap();
        assert_eq!((s.authority.as_deref(), s.path.as_str()), (Some("EH_CONN"), ""));
        let s = Spec::parse("stdout:").unwrap();
        assert_eq!((s.scheme.as_str(), s.path.as_str()), ("stdout", ""));
        let s = Spec::parse("blob://logs/prod/credit").unwrap();
        assert_eq!(
            (s.authority.as_deref(), s.path.as_str()),
            (Some("logs"), "prod/credit")
        );
        let s = Spec::parse("jsonl:/var/log/ss?endpoint=credit&max_bytes=1000").unwrap();
        assert_eq!(s.u64_param("max_bytes", 0).unwrap(), 1000);
        assert_eq!(s.u64_param("other", 7).unwrap(), 7);
    }

    #[test]
    fn errors_say_what_is_accepted() {
        assert!(
            Spec::parse("events.jsonl")
                .unwrap_err()
                .to_string()
                .contains("expected SCHEME:")
        );
        let e = Spec::parse("file:x?follow").unwrap_err().to_string();
        assert!(e.contains("KEY=VALUE"), "{e}");
        let e = Spec::parse("file:x?a=1&a=2").unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        let s = Spec::parse("file:x?folow=true").unwrap();
        let e = s.only_params(&["follow", "state"]).unwrap_err().to_string();
        assert!(
            e.contains("unknown parameter `folow`") && e.contains("follow, state"),
            "{e}"
        );
        let e = Spec::parse("file:x?follow=maybe")
            .unwrap()
            .bool_param("follow", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("true or false"), "{e}");
        let r = SpecRegistry::default();
        let e = r.source("nats://x").unwrap_err().to_string();
        assert!(e.contains("unknown scheme `nats:`") && e.contains("file:"), "{e}");
        #[cfg(not(feature = "kafka"))]
        {
            let e = r.sink("kafka://h:1/t").unwrap_err();
            assert!(
                matches!(e, Error::FeatureDisabled { feature: "kafka", .. }),
                "{e:?}"
            );
        }
    }
}
