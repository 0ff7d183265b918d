//! Kafka and Azure Event Hubs (feature `kafka`): a consumer-group [`KafkaSource`] and a producer
//! [`KafkaSink`], on librdkafka (built from source by `rdkafka`).
//!
//! - **Source**: one member of a consumer group. Offsets are committed only when the pipeline
//!   commits, that is after every sink flushed (at-least-once); auto-commit is off. When the
//!   group takes partitions away (another process joined, or this one leaves), the revocation
//!   waits until every event already handed to the pipeline from those partitions is written,
//!   flushed and committed ([`StreamSource::commit_wanted`] asks the pipeline to commit at once),
//!   so a graceful rebalance repeats nothing. A process that dies is replaced by the others
//!   after `session.timeout.ms`; they resume from its last commit (its uncommitted events are
//!   scored again: duplicates, recognisable by partition and offset).
//! - **Sink**: an idempotent producer with `acks=all`; every record is one JSON message (the
//!   [`InferenceRecord`] layout) keyed by its source partition, so the
//!   records of one source partition stay in order. `flush` waits for every delivery report; a
//!   failed delivery fails every later `write`/`flush` of the sink, so the pipeline stops
//!   instead of committing past a lost record. Dead letters go to the sink's topic as JSON.
//! - **Event Hubs**: [`EventHubsConnection`] turns a connection string into the Kafka endpoint
//!   settings (`<namespace>.servicebus.windows.net:9093`, SASL_SSL, PLAIN,
//!   `$ConnectionString`); the key never appears in `Debug` output, logs or errors. With
//!   Entra ID instead (`eventhubs://NAMESPACE.servicebus.windows.net/HUB?auth=entra`, features
//!   `kafka` and `azure`): SASL_SSL with OAUTHBEARER, tokens for
//!   `https://NAMESPACE.servicebus.windows.net/.default` from the credential chain of the Blob
//!   registry (service principal, workload identity, managed identity, Azure CLI), refreshed by
//!   librdkafka before they expire.
//!
//! Specs (see [`crate::spec`]): `kafka://HOST:PORT[,HOST:PORT]/TOPIC?group=G` and
//! `eventhubs://ENV_VAR?group=G[&topic=HUB]` or
//! `eventhubs://NAMESPACE.servicebus.windows.net/HUB?group=G&auth=entra`, all with `config=FILE` (a `key=value` file of
//! librdkafka settings, e.g. credentials) and `rdkafka.KEY=VALUE` (one librdkafka setting).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, Statistics, TopicPartitionList};

use crate::batch::ScoredBatch;
use crate::error::{Error, Result};
use crate::jsonwrite::{write_f64, write_int, write_str};
use crate::spec::Spec;
use crate::traits::{Checkpoint, DeadLetter, Event, InferenceRecord, InferenceSink, StreamSource};

/// The librdkafka binding, for embedders that need more than the settings map.
pub use rdkafka;

/// Settings whose values are secrets: never shown by `Debug`.
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.contains("token")
        || k.contains("sasl.oauthbearer.config")
        || k == "ssl.key.pem"
        || k == "ssl_key"
}

/// Where a Kafka source or sink connects, and with which librdkafka settings.
///
/// `Debug` shows every setting except secrets (passwords, tokens, keys).
#[derive(Clone)]
pub struct KafkaConfig {
    /// The topic (for Event Hubs: the event hub).
    pub topic: String,
    /// The consumer group (sources only).
    pub group: Option<String>,
    /// Longest wait of a revocation for the pipeline to commit the revoked partitions' events
    /// in flight; after it the partitions are released anyway (their uncommitted events are
    /// read again by the next owner). Default 30 s.
    pub drain_timeout: Duration,
    /// Longest wait of `flush` for delivery reports, and longest time a source's commit is
    /// retried while the broker is unreachable (restarting). Default 60 s.
    pub flush_timeout: Duration,
    settings: BTreeMap<String, String>,
    label: String,
    /// Entra ID tokens for SASL OAUTHBEARER (Event Hubs with `auth=entra`).
    oauth: Option<OAuthProvider>,
}

/// Where OAUTHBEARER tokens come from: an Entra ID credential and the scope asked for.
#[derive(Clone)]
pub struct OAuthProvider {
    /// The scope of the tokens (`https://NAMESPACE.servicebus.windows.net/.default`).
    pub scope: String,
    #[cfg(feature = "azure")]
    credential: Arc<dyn azure_core::credentials::TokenCredential>,
}

impl fmt::Debug for OAuthProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthProvider")
            .field("scope", &self.scope)
            .finish()
    }
}

impl OAuthProvider {
    /// Tokens for `scope` from `credential`.
    #[cfg(feature = "azure")]
    pub fn new(
        credential: Arc<dyn azure_core::credentials::TokenCredential>,
        scope: impl Into<String>,
    ) -> OAuthProvider {
        OAuthProvider {
            scope: scope.into(),
            credential,
        }
    }

    /// A token for librdkafka, fetched on a thread of its own: librdkafka asks from its poll
    /// threads, which may be inside an async runtime that must not be blocked on. The error
    /// is the credential's (it names what to set), never the token.
    #[cfg(feature = "azure")]
    pub fn fetch(&self) -> std::result::Result<rdkafka::client::OAuthToken, String> {
        let credential = self.credential.clone();
        let scope = self.scope.clone();
        let token = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("could not start a runtime for the token request: {e}"))?;
            runtime
                .block_on(credential.get_token(&[scope.as_str()], None))
                .map_err(|e| format!("no Entra ID token for {scope}: {e}"))
        })
        .join()
        .map_err(|_| "the token request panicked".to_string())??;
        Ok(rdkafka::client::OAuthToken {
            token: token.token.secret().to_string(),
            // Event Hubs ignores it; librdkafka wants one.
            principal_name: "streamscore".into(),
            lifetime_ms: (token.expires_on.unix_timestamp_nanos() / 1_000_000) as i64,
        })
    }

    #[cfg(not(feature = "azure"))]
    fn fetch(&self) -> std::result::Result<rdkafka::client::OAuthToken, String> {
        Err("Entra ID tokens need the `azure` feature".into())
    }
}

/// Answers librdkafka's OAUTHBEARER token requests from `oauth`.
fn oauth_token(
    oauth: Option<&OAuthProvider>,
) -> std::result::Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
    match oauth {
        Some(p) => p.fetch().map_err(Into::into),
        None => Err(
            "sasl.mechanism OAUTHBEARER needs a token source: use an eventhubs:// spec with auth=entra"
                .into(),
        ),
    }
}

/// The Entra ID token source of Event Hubs `namespace`, from the credential chain the
/// environment selects (the Blob registry's: service principal, workload identity, managed
/// identity, Azure CLI).
#[cfg(feature = "azure")]
fn entra_provider(
    namespace: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<OAuthProvider, String> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    let chain = ml_registry::azure::credential::credential_chain(&var)?;
    let credential = ml_registry::azure::credential::build(&chain, &var)?;
    Ok(OAuthProvider::new(
        credential,
        KafkaConfig::event_hubs_scope(namespace),
    ))
}

#[cfg(not(feature = "azure"))]
fn entra_provider(_: &str, _: &dyn Fn(&str) -> Option<String>) -> std::result::Result<OAuthProvider, String> {
    Err("auth=entra (Entra ID tokens) needs the `azure` feature as well as `kafka`".into())
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings: BTreeMap<&str, &str> = self
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { "<redacted>" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("settings", &settings)
            .field("oauth", &self.oauth)
            .finish()
    }
}

impl KafkaConfig {
    /// A plain-text connection to `bootstrap` (`host:port[,host:port]`) for `topic`.
    pub fn new(bootstrap: &str, topic: &str) -> KafkaConfig {
        let mut settings = BTreeMap::new();
        settings.insert("bootstrap.servers".to_string(), bootstrap.to_string());
        KafkaConfig {
            topic: topic.to_string(),
            group: None,
            drain_timeout: Duration::from_secs(30),
            flush_timeout: Duration::from_secs(60),
            settings,
            label: format!("kafka://{bootstrap}/{topic}"),
            oauth: None,
        }
    }

    /// Event Hubs with Entra ID: the Kafka endpoint of `namespace`
    /// (`NAMESPACE.servicebus.windows.net`), SASL OAUTHBEARER with tokens for
    /// `https://NAMESPACE/.default` from `oauth`'s credential, for the event hub `hub`.
    pub fn event_hubs_entra(namespace: &str, hub: &str, oauth: OAuthProvider) -> KafkaConfig {
        let bootstrap = if namespace.contains(':') {
            namespace.to_string()
        } else {
            format!("{namespace}:9093")
        };
        let mut config = KafkaConfig::new(&bootstrap, hub);
        config.set("security.protocol", "SASL_SSL");
        config.set("sasl.mechanism", "OAUTHBEARER");
        config.oauth = Some(oauth);
        config.label = format!("eventhubs://{namespace}/{hub}");
        config
    }

    /// The scope of Event Hubs tokens for `namespace` (without a port).
    pub fn event_hubs_scope(namespace: &str) -> String {
        let host = namespace.split(':').next().unwrap_or(namespace);
        format!("https://{host}/.default")
    }

    /// An Event Hubs connection: the Kafka endpoint of the namespace, SASL PLAIN with the
    /// connection string; the topic is `hub`, or else the connection string's `EntityPath`.
    pub fn event_hubs(connection: &EventHubsConnection, hub: Option<&str>) -> Result<KafkaConfig> {
        let topic = match (hub, connection.entity_path.as_deref()) {
            (Some(h), Some(e)) if h != e => {
                return Err(Error::InvalidSetting {
                    name: "topic",
                    reason: format!(
                        "`topic={h}` differs from the connection string's EntityPath `{e}`; give one of them"
                    ),
                });
            }
            (Some(h), _) | (None, Some(h)) => h.to_string(),
            (None, None) => {
                return Err(Error::InvalidSetting {
                    name: "topic",
                    reason: "the Event Hubs connection string has no EntityPath: add `?topic=EVENT_HUB` to the spec"
                        .into(),
                });
            }
        };
        let mut config = KafkaConfig::new(&connection.bootstrap_servers(), &topic);
        for (k, v) in connection.kafka_settings() {
            config.set(k, v);
        }
        config.label = format!("eventhubs://{}/{topic}", connection.namespace);
        Ok(config)
    }

    /// Sets one librdkafka setting (overrides the defaults of the source and sink).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.settings.insert(key.into(), value.into());
        self
    }

    /// The librdkafka settings given (the source and sink add their defaults under them).
    pub fn settings(&self) -> &BTreeMap<String, String> {
        &self.settings
    }

    /// Reads `key=value` lines (`#` comments, blank lines) of librdkafka settings from a file.
    /// Errors name the line, never its value (it may be a secret).
    pub fn load_properties(&mut self, path: &std::path::Path) -> Result<&mut Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(Error::InvalidSetting {
                    name: "config",
                    reason: format!("{} line {}: expected key=value", path.display(), i + 1),
                });
            };
            self.set(k.trim(), v.trim());
        }
        Ok(self)
    }

    /// The configuration a spec names: `kafka://HOSTS/TOPIC` or `eventhubs://ENV_VAR`, with
    /// `group`, `topic` (Event Hubs), `config=FILE` and `rdkafka.KEY=VALUE` parameters.
    pub fn from_spec(spec: &Spec) -> Result<KafkaConfig> {
        Self::from_spec_with_env(spec, &|name| std::env::var(name).ok())
    }

    /// [`KafkaConfig::from_spec`] with the environment given as a lookup function.
    pub fn from_spec_with_env(spec: &Spec, env: &dyn Fn(&str) -> Option<String>) -> Result<KafkaConfig> {
        let bad = |reason: String| Error::InvalidSpec {
            spec: spec.raw.clone(),
            reason,
        };
        let mut config = match spec.scheme.as_str() {
            "kafka" => {
                let hosts = spec
                    .authority
                    .as_deref()
                    .filter(|h| !h.trim().is_empty())
                    .ok_or_else(|| bad("expected kafka://HOST:PORT[,HOST:PORT]/TOPIC".into()))?;
                if spec.path.trim().is_empty() || spec.path.contains('/') {
                    return Err(bad(
                        "expected one topic after the hosts: kafka://HOST:PORT/TOPIC".into()
                    ));
                }
                if spec.params.contains_key("topic") {
                    return Err(bad(
                        "the topic is the path of a kafka:// spec, not a parameter".into()
                    ));
                }
                KafkaConfig::new(hosts, &spec.path)
            }
            "eventhubs" if spec.params.contains_key("auth") => {
                let auth = spec.params.get("auth").map(String::as_str).unwrap_or_default();
                if auth != "entra" {
                    return Err(bad(format!(
                        "unknown auth `{auth}`; use auth=entra for Entra ID, or leave it out for a connection string"
                    )));
                }
                let namespace = spec
                    .authority
                    .as_deref()
                    .filter(|n| n.contains('.') && !n.contains(char::is_whitespace))
                    .ok_or_else(|| {
                        bad("with auth=entra, expected eventhubs://NAMESPACE.servicebus.windows.net/EVENT_HUB".into())
                    })?;
                if spec.path.is_empty() || spec.path.contains('/') {
                    return Err(bad(
                        "with auth=entra, give the event hub as the path: eventhubs://NAMESPACE.servicebus.windows.net/EVENT_HUB".into(),
                    ));
                }
                if spec.params.contains_key("topic") {
                    return Err(bad(
                        "with auth=entra the event hub is the path, not `topic`".into()
                    ));
                }
                let oauth = entra_provider(namespace, env).map_err(&bad)?;
                KafkaConfig::event_hubs_entra(namespace, &spec.path, oauth)
            }
            "eventhubs" => {
                let var = spec
                    .authority
                    .as_deref()
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| {
                        bad("expected eventhubs://ENV_VAR: the name of the environment variable that holds the connection string".into())
                    })?;
                if !spec.path.is_empty() {
                    return Err(bad(
                        "eventhubs:// takes the name of an environment variable only; give the event hub as EntityPath or ?topic=HUB".into(),
                    ));
                }
                let value = env(var).ok_or_else(|| {
                    bad(format!(
                        "environment variable {var} is not set (or not UTF-8); it must hold the Event Hubs connection string \
                         Endpoint=sb://NAMESPACE.servicebus.windows.net/;SharedAccessKeyName=...;SharedAccessKey=...[;EntityPath=HUB]"
                    ))
                })?;
                let connection = EventHubsConnection::parse(&value)?;
                KafkaConfig::event_hubs(&connection, spec.params.get("topic").map(String::as_str))?
            }
            other => return Err(bad(format!("`{other}:` is not a Kafka scheme"))),
        };
        for (k, v) in &spec.params {
            match k.as_str() {
                "group" => {
                    if v.is_empty() {
                        return Err(bad("`group` must not be empty".into()));
                    }
                    config.group = Some(v.clone());
                }
                "topic" => {}
                "auth" if spec.scheme == "eventhubs" => {}
                "config" => {
                    config.load_properties(std::path::Path::new(v))?;
                }
                "drain_timeout_ms" => {
                    config.drain_timeout = Duration::from_millis(spec.u64_param(k, 30_000)?);
                }
                "flush_timeout_ms" => {
                    config.flush_timeout = Duration::from_millis(spec.u64_param(k, 60_000)?);
                }
                _ => match k.strip_prefix("rdkafka.") {
                    Some(key) if !key.is_empty() => {
                        config.set(key, v.clone());
                    }
                    _ => {
                        return Err(bad(format!(
                            "unknown parameter `{k}`; accepted: group, config, drain_timeout_ms, flush_timeout_ms, \
                             rdkafka.KEY (a librdkafka setting){}",
                            if spec.scheme == "eventhubs" {
                                ", topic, auth"
                            } else {
                                ""
                            }
                        )));
                    }
                },
            }
        }
        Ok(config)
    }

    fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.settings {
            c.set(k, v);
        }
        c
    }

    fn describe(&self) -> String {
        match &self.group {
            Some(g) => format!("{}?group={g}", self.label),
            None => self.label.clone(),
        }
    }
}

/// An Event Hubs connection string, parsed. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct EventHubsConnection {
    /// The fully qualified namespace (`NAMESPACE.servicebus.windows.net`), with a port when the
    /// endpoint gave one.
    pub namespace: String,
    /// `SharedAccessKeyName`.
    pub key_name: Option<String>,
    /// `EntityPath`: the event hub, when the string is scoped to one.
    pub entity_path: Option<String>,
    /// The whole connection string: the SASL password of the Kafka endpoint.
    secret: String,
}

impl fmt::Debug for EventHubsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventHubsConnection")
            .field("namespace", &self.namespace)
            .field("key_name", &self.key_name)
            .field("entity_path", &self.entity_path)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl EventHubsConnection {
    /// Parses `Endpoint=sb://NS.servicebus.windows.net/;SharedAccessKeyName=N;SharedAccessKey=K[;EntityPath=HUB]`
    /// (or `SharedAccessSignature=...` instead of the key name and key). Keys are
    /// case-insensitive; errors say what is missing or malformed without repeating any value.
    pub fn parse(s: &str) -> Result<EventHubsConnection> {
        let bad = |reason: String| Error::InvalidSetting {
            name: "Event Hubs connection string",
            reason,
        };
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(bad("it is empty".into()));
        }
        let mut parts: BTreeMap<String, &str> = BTreeMap::new();
        for (i, part) in trimmed.split(';').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((k, v)) = part.split_once('=') else {
                return Err(bad(format!(
                    "part {} is not KEY=VALUE (parts are separated by ';')",
                    i + 1
                )));
            };
            let key = k.trim().to_ascii_lowercase();
            if key.is_empty() {
                return Err(bad(format!("part {} has no key before '='", i + 1)));
            }
            if parts.insert(key, v.trim()).is_some() {
                return Err(bad(format!("`{}` is given twice", k.trim())));
            }
        }
        let endpoint = parts
            .get("endpoint")
            .ok_or_else(|| bad("it has no Endpoint=sb://NAMESPACE.servicebus.windows.net/".into()))?;
        let host = endpoint
            .strip_prefix("sb://")
            .ok_or_else(|| {
                bad("Endpoint must start with sb:// (sb://NAMESPACE.servicebus.windows.net/)".into())
            })?
            .trim_end_matches('/');
        if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
            return Err(bad(
                "Endpoint must be sb://NAMESPACE.servicebus.windows.net/ (a host name, nothing after it)"
                    .into(),
            ));
        }
        let sas = parts.contains_key("sharedaccesssignature");
        let key_name = parts.get("sharedaccesskeyname").map(|v| v.to_string());
        let has_key = parts.get("sharedaccesskey").is_some_and(|k| !k.is_empty());
        if !sas {
            if key_name.is_none() && !parts.contains_key("sharedaccesskey") {
                return Err(bad(
                    "it has neither SharedAccessKeyName and SharedAccessKey nor SharedAccessSignature \
                     (copy it from the portal: Event Hubs namespace → Shared access policies)"
                        .into(),
                ));
            }
            if key_name.as_deref().is_none_or(str::is_empty) {
                return Err(bad("SharedAccessKeyName is missing or empty".into()));
            }
            if !has_key {
                return Err(bad("SharedAccessKey is missing or empty".into()));
            }
        }
        let entity_path = match parts.get("entitypath") {
            Some(&"") => return Err(bad("EntityPath is empty".into())),
            Some(e) => Some(e.to_string()),
            None => None,
        };
        Ok(EventHubsConnection {
            namespace: host.to_string(),
            key_name,
            entity_path,
            secret: trimmed.to_string(),
        })
    }

    /// `NAMESPACE:9093` (or the endpoint's own port).
    pub fn bootstrap_servers(&self) -> String {
        if self.namespace.contains(':') {
            self.namespace.clone()
        } else {
            format!("{}:9093", self.namespace)
        }
    }

    /// The librdkafka settings of the Event Hubs Kafka endpoint, the password included.
    pub fn kafka_settings(&self) -> Vec<(String, String)> {
        vec![
            ("bootstrap.servers".into(), self.bootstrap_servers()),
            ("security.protocol".into(), "SASL_SSL".into()),
            ("sasl.mechanism".into(), "PLAIN".into()),
            ("sasl.username".into(), "$ConnectionString".into()),
            ("sasl.password".into(), self.secret.clone()),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Source

/// Events buffered between librdkafka's poll thread and the pipeline, per-partition bookkeeping.
#[derive(Default)]
struct SourceState {
    buffer: VecDeque<Event>,
    /// Partitions this member owns now.
    assigned: BTreeSet<u32>,
    /// Offset of the first event handed to the pipeline in the current assignment.
    start: BTreeMap<u32, u64>,
    /// One past the last offset handed to the pipeline.
    delivered: BTreeMap<u32, u64>,
    /// One past the last offset committed.
    committed: BTreeMap<u32, u64>,
    /// A revocation waits for the pipeline to commit.
    draining: bool,
    /// A commit made for a revocation was refused: waiting longer is useless.
    drain_refused: bool,
    lag: Option<u64>,
    /// An error that stops the source.
    failure: Option<String>,
}

struct SourceShared {
    state: Mutex<SourceState>,
    /// Signalled when the buffer has room or a commit landed (the poll thread waits on it).
    changed: Condvar,
    /// Signalled when events arrive (the pipeline's `next_batch` waits on it).
    arrived: tokio::sync::Notify,
    stop: AtomicBool,
    capacity: usize,
}

impl SourceShared {
    fn lock(&self) -> MutexGuard<'_, SourceState> {
        // A panic while holding the lock leaves plain data behind: keep going with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct SourceContext {
    shared: Arc<SourceShared>,
    oauth: Option<OAuthProvider>,
    topic: String,
    drain_timeout: Duration,
}

impl ClientContext for SourceContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _: Option<&str>,
    ) -> std::result::Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        oauth_token(self.oauth.as_ref())
    }

    fn stats(&self, statistics: Statistics) {
        let mut state = self.shared.lock();
        let lag = statistics.topics.get(&self.topic).map(|t| {
            t.partitions
                .iter()
                .filter(|(p, _)| **p >= 0 && state.assigned.contains(&(**p as u32)))
                .map(|(_, p)| p.consumer_lag.max(0) as u64)
                .sum()
        });
        state.lag = lag;
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<u32> {
    tpl.elements()
        .iter()
        .filter(|e| e.partition() >= 0)
        .map(|e| e.partition() as u32)
        .collect()
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let revoked = partitions_of(tpl);
        // Partitions lost (this member missed its session) belong to others already: a
        // commit would be refused, so there is nothing to wait for.
        let lost = consumer.assignment_lost();
        let shared = &self.shared;
        let mut state = shared.lock();
        // Events read but not handed out yet are simply dropped: the next owner reads them.
        state.buffer.retain(|e| !revoked.contains(&e.partition));
        let outstanding = |s: &SourceState| {
            revoked.iter().any(|p| match s.delivered.get(p) {
                Some(d) => s.committed.get(p).is_none_or(|c| c < d),
                None => false,
            })
        };
        let deadline = Instant::now() + self.drain_timeout;
        if !lost && outstanding(&state) && !shared.stop.load(Ordering::SeqCst) {
            state.draining = true;
            state.drain_refused = false;
            shared.arrived.notify_one();
            while outstanding(&state) && !shared.stop.load(Ordering::SeqCst) {
                if state.drain_refused {
                    eprintln!(
                        "warning: kafka: {}: the commit of partitions {revoked:?} was refused during the rebalance; \
                         the next owner reads their uncommitted events again",
                        self.topic
                    );
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    eprintln!(
                        "warning: kafka: {}: partitions {revoked:?} revoked before the pipeline committed their events \
                         within {:?}; the next owner reads them again",
                        self.topic, self.drain_timeout
                    );
                    break;
                }
                state = shared
                    .changed
                    .wait_timeout(state, (deadline - now).min(Duration::from_millis(100)))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            state.draining = false;
        }
        for p in &revoked {
            state.assigned.remove(p);
            state.start.remove(p);
            state.delivered.remove(p);
            state.committed.remove(p);
        }
        let owned: Vec<u32> = state.assigned.iter().copied().collect();
        drop(state);
        if !revoked.is_empty() {
            eprintln!(
                "kafka: {}: revoked {revoked:?}; owns partitions {owned:?}",
                self.topic
            );
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let assigned = partitions_of(tpl);
            let mut state = self.shared.lock();
            state.assigned.extend(assigned.iter().copied());
            let owned: Vec<u32> = state.assigned.iter().copied().collect();
            drop(state);
            eprintln!(
                "kafka: {}: assigned {assigned:?}; owns partitions {owned:?}",
                self.topic
            );
        }
    }
}

/// Errors after which a consumer cannot go on (wrong credentials, missing topic, no access).
fn is_fatal(e: &KafkaError) -> bool {
    matches!(e, KafkaError::MessageConsumptionFatal(_))
        || matches!(
            e.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Fatal
                    | RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::GroupAuthorizationFailed
                    | RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::InvalidGroupId
            )
        )
}

/// Commit errors that only mean a rebalance overtook the commit: the events are read again.
fn is_rebalance_race(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::NoOffset
                | RDKafkaErrorCode::AssignmentLost
                | RDKafkaErrorCode::State
        )
    )
}

/// Errors of a broker that is down, restarting or moving its group coordinator: worth
/// retrying. (`WaitingForCoordinator` is librdkafka's answer to a commit while it looks for
/// the coordinator again, as after a broker restart: failing the source on it stopped the
/// pipeline and gave its partitions up for good.)
fn is_transient(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::WaitingForCoordinator
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::NotCoordinator
        )
    )
}

/// A member of a Kafka (or Event Hubs) consumer group; see the [module docs](self).
pub struct KafkaSource {
    consumer: Arc<BaseConsumer<SourceContext>>,
    /// How long a commit that fails for a transient reason is retried (`flush_timeout`).
    commit_retry_for: Duration,
    shared: Arc<SourceShared>,
    poller: Option<JoinHandle<()>>,
    label: String,
    topic: String,
}

impl fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSource")
            .field("source", &self.label)
            .finish()
    }
}

impl KafkaSource {
    /// Joins `config.group` (required) and subscribes to `config.topic`. Reads from the
    /// earliest offset when the group has no commit for a partition.
    pub fn new(config: &KafkaConfig) -> Result<KafkaSource> {
        let label = config.describe();
        let failed = |reason: String| Error::SourceFailed {
            source_name: label.clone(),
            reason,
        };
        let group = config.group.as_deref().ok_or_else(|| Error::InvalidSetting {
            name: "group",
            reason: format!(
                "a Kafka source needs a consumer group: add ?group=NAME to {}",
                config.label
            ),
        })?;
        let shared = Arc::new(SourceShared {
            state: Mutex::new(SourceState::default()),
            changed: Condvar::new(),
            arrived: tokio::sync::Notify::new(),
            stop: AtomicBool::new(false),
            capacity: 10_000,
        });
        let context = SourceContext {
            shared: shared.clone(),
            oauth: config.oauth.clone(),
            topic: config.topic.clone(),
            drain_timeout: config.drain_timeout,
        };
        let consumer: BaseConsumer<SourceContext> = config
            .client_config(&[
                ("group.id", group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "earliest"),
                ("statistics.interval.ms", "1000"),
                // Incremental rebalancing: a member gives partitions back while the group is
                // stable, so its last commit of them is accepted (with the eager protocol the
                // broker refuses commits once the rebalance has begun), and the partitions it
                // keeps go on being scored.
                ("partition.assignment.strategy", "cooperative-sticky"),
            ])
            .create_with_context(context)
            .map_err(|e| failed(format!("could not create the consumer: {e}")))?;
        consumer
            .subscribe(&[config.topic.as_str()])
            .map_err(|e| failed(format!("could not subscribe to {}: {e}", config.topic)))?;
        let consumer = Arc::new(consumer);
        let poller = std::thread::Builder::new()
            .name("kafka-source".into())
            .spawn({
                let consumer = consumer.clone();
                let shared = shared.clone();
                move || poll_loop(&consumer, &shared)
            })
            .map_err(|e| failed(format!("could not start the poll thread: {e}")))?;
        Ok(KafkaSource {
            consumer,
            commit_retry_for: config.flush_timeout,
            shared,
            poller: Some(poller),
            label,
            topic: config.topic.clone(),
        })
    }

    /// The partitions this member owns now.
    pub fn assignment(&self) -> Vec<u32> {
        self.shared.lock().assigned.iter().copied().collect()
    }
}

/// Polls librdkafka (which also runs the rebalance callbacks) and buffers events for the
/// pipeline, waiting while the buffer is full.
fn poll_loop(consumer: &BaseConsumer<SourceContext>, shared: &SourceShared) {
    while !shared.stop.load(Ordering::SeqCst) {
        {
            let mut state = shared.lock();
            while state.buffer.len() >= shared.capacity && !shared.stop.load(Ordering::SeqCst) {
                state = shared
                    .changed
                    .wait_timeout(state, Duration::from_millis(100))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let partition = m.partition();
                let offset = m.offset();
                if partition < 0 || offset < 0 {
                    continue;
                }
                let event = Event {
                    payload: m.payload().unwrap_or_default().to_vec(),
                    key: m.key().map(<[u8]>::to_vec),
                    partition: partition as u32,
                    offset: offset as u64,
                    timestamp_ms: m.timestamp().to_millis(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                let mut state = shared.lock();
                if state.assigned.contains(&event.partition) {
                    state.buffer.push_back(event);
                    drop(state);
                    shared.arrived.notify_one();
                }
            }
            Some(Err(e)) if is_fatal(&e) => {
                shared.lock().failure = Some(e.to_string());
                shared.arrived.notify_one();
                return;
            }
            Some(Err(e)) => eprintln!("warning: kafka: {e}"),
        }
    }
}

#[async_trait]
impl StreamSource for KafkaSource {
    async fn next_batch(&mut self, max: usize, deadline: Instant) -> Result<Vec<Event>> {
        loop {
            {
                let mut state = self.shared.lock();
                if let Some(reason) = state.failure.clone() {
                    return Err(Error::SourceFailed {
                        source_name: self.label.clone(),
                        reason,
                    });
                }
                if !state.buffer.is_empty() {
                    let n = state.buffer.len().min(max.max(1));
                    let events: Vec<Event> = state.buffer.drain(..n).collect();
                    for e in &events {
                        state.start.entry(e.partition).or_insert(e.offset);
                        state.delivered.insert(e.partition, e.offset + 1);
                    }
                    drop(state);
                    self.shared.changed.notify_all();
                    return Ok(events);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let _ = tokio::time::timeout(deadline - now, self.shared.arrived.notified()).await;
        }
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        let mut offsets = Vec::new();
        {
            let state = self.shared.lock();
            for (&p, &next) in &checkpoint.next_offsets {
                // Only partitions owned now, and only positions of this assignment: a stale
                // position of a partition owned before must not rewind the group's commit.
                let current = state.assigned.contains(&p)
                    && state.start.get(&p).is_some_and(|&s| next > s)
                    && state.committed.get(&p).is_none_or(|&c| next > c);
                if current {
                    offsets.push((p, next));
                }
            }
        }
        if offsets.is_empty() {
            return Ok(());
        }
        for &(p, next) in &offsets {
            tpl.add_partition_offset(&self.topic, p as i32, Offset::Offset(next as i64))
                .map_err(|e| Error::Internal(format!("offset list: {e}")))?;
        }
        // A broker that is restarting or a coordinator that moves makes the commit fail for a
        // while: retried (the events are written and flushed; only the commit is late) until
        // `commit_retry_for` has passed, so the pipeline goes on by itself once the broker is
        // back instead of stopping.
        let started = Instant::now();
        let mut wait = Duration::from_millis(100);
        let result = loop {
            let consumer = self.consumer.clone();
            let list = tpl.clone();
            let result = tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
                .await
                .map_err(|e| Error::Internal(format!("commit task failed: {e}")))?;
            match result {
                Err(e) if is_transient(&e) && started.elapsed() + wait < self.commit_retry_for => {
                    eprintln!(
                        "warning: kafka: {}: commit failed ({e}); retrying in {} ms",
                        self.topic,
                        wait.as_millis()
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                other => break other,
            }
        };
        match result {
            Ok(()) => {
                let mut state = self.shared.lock();
                for (p, next) in offsets {
                    if state.assigned.contains(&p) {
                        state.committed.insert(p, next);
                    }
                }
                drop(state);
                self.shared.changed.notify_all();
                Ok(())
            }
            Err(e) if is_rebalance_race(&e) => {
                let mut state = self.shared.lock();
                if state.draining {
                    state.drain_refused = true;
                }
                drop(state);
                self.shared.changed.notify_all();
                eprintln!(
                    "warning: kafka: {}: commit overtaken by a rebalance ({e}); the events since the last commit are read again",
                    self.topic
                );
                Ok(())
            }
            Err(e) => Err(Error::SourceFailed {
                source_name: self.label.clone(),
                reason: format!("commit failed: {e}"),
            }),
        }
    }

    fn commit_wanted(&self) -> bool {
        self.shared.lock().draining
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    fn lag(&self) -> Option<u64> {
        self.shared.lock().lag
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        if let Some(p) = self.poller.take() {
            let _ = p.join();
        }
        // Dropping the consumer closes it: it leaves the group, so the others take its
        // partitions at once (the commits are done: the pipeline committed before it ended).
    }
}

// ---------------------------------------------------------------------------------------------
// Sink

#[derive(Default)]
struct SinkShared {
    /// The first delivery failure: the sink refuses everything after it.
    failure: Mutex<Option<String>>,
}

struct SinkContext {
    shared: Arc<SinkShared>,
    oauth: Option<OAuthProvider>,
}

impl ClientContext for SinkContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _: Option<&str>,
    ) -> std::result::Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        oauth_token(self.oauth.as_ref())
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            let mut failure = self.shared.failure.lock().unwrap_or_else(|p| p.into_inner());
            if failure.is_none() {
                *failure = Some(format!(
                    "delivery to {} partition {} failed: {e}",
                    m.topic(),
                    m.partition()
                ));
            }
        }
    }
}

/// A Kafka (or Event Hubs) producer writing one JSON message per record; see the
/// [module docs](self).
pub struct KafkaSink {
    producer: Arc<ThreadedProducer<SinkContext>>,
    shared: Arc<SinkShared>,
    topic: String,
    label: String,
    flush_timeout: Duration,
    buf: Vec<u8>,
}

impl fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSink").field("sink", &self.label).finish()
    }
}

impl KafkaSink {
    /// An idempotent producer (`acks=all`) to `config.topic`.
    pub fn new(config: &KafkaConfig) -> Result<KafkaSink> {
        let shared = Arc::new(SinkShared::default());
        let producer: ThreadedProducer<SinkContext> = config
            .client_config(&[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "5"),
            ])
            .create_with_context(SinkContext {
                shared: shared.clone(),
                oauth: config.oauth.clone(),
            })
            .map_err(|e| Error::SinkFailed {
                sink: config.label.clone(),
                attempts: 1,
                reason: format!("could not create the producer: {e}"),
            })?;
        Ok(KafkaSink {
            producer: Arc::new(producer),
            shared,
            topic: config.topic.clone(),
            label: config.label.clone(),
            flush_timeout: config.flush_timeout,
            buf: Vec::new(),
        })
    }

    fn check(&self) -> Result<()> {
        match self
            .shared
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(f) => Err(Error::Kafka {
                reason: format!(
                    "{f}; the sink stops here so that no record is committed without being delivered"
                ),
            }),
            None => Ok(()),
        }
    }

    /// Queues one message, waiting while librdkafka's queue is full.
    async fn send(&self, key: &[u8], payload: &[u8]) -> Result<()> {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    // The producer's thread drains the queue; give it a moment.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => {
                    return Err(Error::Kafka {
                        reason: format!("could not queue a message for {}: {e}", self.topic),
                    });
                }
            }
        }
    }
}

/// Writes the [`InferenceRecord`] JSON layout of row `r` of `batch` (what `serde_json` writes
/// for `batch.records()[r]`) straight from the batch's serialized inputs and outputs.
fn record_json(buf: &mut Vec<u8>, batch: &ScoredBatch, r: usize) {
    let info = batch.info();
    let (position, event_ts) = &batch.rows()[r];
    buf.clear();
    buf.extend_from_slice(b"{\"correlation_id\":");
    write_str(buf, &info.correlation_id);
    buf.extend_from_slice(b",\"request_id\":");
    write_str(buf, &info.correlation_id);
    buf.extend_from_slice(b",\"timestamp_ms\":");
    write_int(buf, info.timestamp_ms);
    buf.extend_from_slice(b",\"event_timestamp_ms\":");
    match event_ts {
        Some(t) => write_int(buf, *t),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"model_name\":");
    write_str(buf, &info.model_name);
    buf.extend_from_slice(b",\"model_version\":");
    write_str(buf, &info.model_version);
    buf.extend_from_slice(b",\"position\":{\"partition\":");
    write_int(buf, position.partition);
    buf.extend_from_slice(b",\"offset\":");
    write_int(buf, position.offset);
    buf.extend_from_slice(b"},\"inputs\":");
    buf.extend_from_slice(batch.input_json(r));
    buf.extend_from_slice(b",\"outputs\":");
    buf.extend_from_slice(batch.output_json(r));
    buf.extend_from_slice(b",\"latency_ms\":");
    write_f64(buf, info.latency_ms);
    buf.push(b'}');
}

#[async_trait]
impl InferenceSink for KafkaSink {
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> Result<()> {
        self.check()?;
        for r in records {
            let payload = serde_json::to_vec(r).map_err(|e| Error::Internal(e.to_string()))?;
            let key = r.position.partition.to_string();
            self.send(key.as_bytes(), &payload).await?;
        }
        Ok(())
    }

    async fn write_scored(&mut self, batch: &ScoredBatch) -> Result<()> {
        self.check()?;
        let mut buf = std::mem::take(&mut self.buf);
        let mut key = itoa::Buffer::new();
        for r in 0..batch.len() {
            record_json(&mut buf, batch, r);
            let k = key.format(batch.rows()[r].0.partition);
            self.send(k.as_bytes(), &buf).await?;
        }
        self.buf = buf;
        Ok(())
    }

    async fn write_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()> {
        self.check()?;
        for l in letters {
            let payload = serde_json::to_vec(l).map_err(|e| Error::Internal(e.to_string()))?;
            let key = l.position.partition.to_string();
            self.send(key.as_bytes(), &payload).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        let producer = self.producer.clone();
        let timeout = self.flush_timeout;
        let flushed = tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .map_err(|e| Error::Internal(format!("flush task failed: {e}")))?;
        self.check()?;
        flushed.map_err(|e| Error::Kafka {
            reason: format!(
                "{} messages to {} not delivered within {:?}: {e}",
                self.producer.in_flight_count(),
                self.topic,
                timeout
            ),
        })
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}

pub(crate) fn register(registry: &mut crate::spec::SpecRegistry) {
    for scheme in ["kafka", "eventhubs"] {
        registry.register_source(scheme, |spec| {
            Ok(Box::new(KafkaSource::new(&KafkaConfig::from_spec(spec)?)?))
        });
        registry.register_sink(scheme, |spec| {
            // A sink ignores `group`, so one spec can name a topic for both directions.
            Ok(Box::new(KafkaSink::new(&KafkaConfig::from_spec(spec)?)?))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entra ID: the exact librdkafka settings (no password anywhere), the namespace's token
    /// scope, and the credential's token handed to librdkafka with its expiry.
    #[cfg(feature = "azure")]
    #[test]
    fn event_hubs_with_entra_id_authenticates_with_oauthbearer_tokens_for_the_namespace() {
        use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};

        let env = |k: &str| {
            [
                ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
                ("AZURE_CLIENT_ID", "app"),
                ("AZURE_CLIENT_SECRET", "sp-secret-do-not-log"),
            ]
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
        };
        let spec =
            Spec::parse("eventhubs://shop.servicebus.windows.net/orders?group=scorers&auth=entra").unwrap();
        let config = KafkaConfig::from_spec_with_env(&spec, &env).unwrap();
        let expected: BTreeMap<String, String> = [
            ("bootstrap.servers", "shop.servicebus.windows.net:9093"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("security.protocol", "SASL_SSL"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(config.settings(), &expected);
        assert_eq!(config.topic, "orders");
        assert_eq!(config.group.as_deref(), Some("scorers"));
        assert_eq!(
            config.oauth.as_ref().unwrap().scope,
            "https://shop.servicebus.windows.net/.default"
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("sp-secret-do-not-log"), "{debug}");

        // What is wrong is said, without the secret.
        for (spec, wanted) in [
            (
                "eventhubs://CONN_VAR?auth=entra",
                "eventhubs://NAMESPACE.servicebus.windows.net/EVENT_HUB",
            ),
            (
                "eventhubs://shop.servicebus.windows.net?auth=entra",
                "give the event hub as the path",
            ),
            (
                "eventhubs://shop.servicebus.windows.net/orders?auth=kerberos",
                "unknown auth `kerberos`",
            ),
        ] {
            let e = KafkaConfig::from_spec_with_env(&Spec::parse(spec).unwrap(), &env)
                .unwrap_err()
                .to_string();
            assert!(e.contains(wanted), "{spec}: {e}");
        }
        let half = |k: &str| (k == "AZURE_CLIENT_SECRET").then(|| "sp-secret-do-not-log".to_string());
        let e = KafkaConfig::from_spec_with_env(&spec, &half)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs AZURE_TENANT_ID, AZURE_CLIENT_ID"), "{e}");
        assert!(!e.contains("sp-secret-do-not-log"), "{e}");

        // The token librdkafka gets: the credential's, for the namespace scope, with its expiry.
        #[derive(Debug, Default)]
        struct Recording(Mutex<Vec<String>>);
        #[async_trait]
        impl TokenCredential for Recording {
            async fn get_token(
                &self,
                scopes: &[&str],
                _: Option<TokenRequestOptions<'_>>,
            ) -> azure_core::Result<AccessToken> {
                self.0
                    .lock()
                    .unwrap()
                    .extend(scopes.iter().map(|s| s.to_string()));
                let expires = time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
                Ok(AccessToken::new(Secret::new("eyJ0eXAi.token"), expires))
            }
        }
        let recording = Arc::new(Recording::default());
        let provider = OAuthProvider::new(
            recording.clone(),
            KafkaConfig::event_hubs_scope("shop.servicebus.windows.net:9093"),
        );
        let token = oauth_token(Some(&provider)).unwrap();
        assert_eq!(token.token, "eyJ0eXAi.token");
        assert_eq!(token.lifetime_ms, 1_900_000_000_000);
        assert!(!token.principal_name.is_empty());
        assert_eq!(
            *recording.0.lock().unwrap(),
            ["https://shop.servicebus.windows.net/.default"]
        );
        let Err(e) = oauth_token(None) else {
            panic!("a token without a provider")
        };
        assert!(e.to_string().contains("auth=entra"), "{e}");
    }

    /// librdkafka itself asks our context for the token: a producer configured for
    /// OAUTHBEARER calls the credential before it sends anything (no broker is needed for that).
    #[cfg(feature = "azure")]
    #[test]
    fn librdkafka_asks_the_credential_for_the_oauthbearer_token() {
        use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};

        #[derive(Debug)]
        struct Signal(std::sync::mpsc::SyncSender<String>);
        #[async_trait]
        impl TokenCredential for Signal {
            async fn get_token(
                &self,
                scopes: &[&str],
                _: Option<TokenRequestOptions<'_>>,
            ) -> azure_core::Result<AccessToken> {
                let _ = self.0.try_send(scopes.join(" "));
                let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
                Ok(AccessToken::new(Secret::new("eyJ0eXAi.token"), expires))
            }
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let provider = OAuthProvider::new(
            Arc::new(Signal(tx)),
            KafkaConfig::event_hubs_scope("ns.servicebus.windows.net"),
        );
        let mut config = KafkaConfig::event_hubs_entra("127.0.0.1:1", "hub", provider);
        // Plain text to a closed port: the token is asked for before any connection.
        config.set("security.protocol", "SASL_PLAINTEXT");
        let _sink = KafkaSink::new(&config).unwrap();
        let scope = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("librdkafka asked for a token");
        assert_eq!(scope, "https://ns.servicebus.windows.net/.default");
    }

    const KEY: &str = "c2VjcmV0LWtleS1kby1ub3QtbG9nLXRoaXM9PQ==";

    fn conn(rest: &str) -> String {
        format!(
            "Endpoint=sb://shop.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey={KEY}{rest}"
        )
    }

    #[test]
    fn a_connection_string_gives_the_exact_kafka_endpoint_settings() {
        let s = conn(";EntityPath=orders");
        let c = EventHubsConnection::parse(&s).unwrap();
        assert_eq!(c.namespace, "shop.servicebus.windows.net");
        assert_eq!(c.key_name.as_deref(), Some("listen"));
        assert_eq!(c.entity_path.as_deref(), Some("orders"));
        let config = KafkaConfig::event_hubs(&c, None).unwrap();
        assert_eq!(config.topic, "orders");
        let expected: BTreeMap<String, String> = [
            ("bootstrap.servers", "shop.servicebus.windows.net:9093"),
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "$ConnectionString"),
            ("sasl.password", s.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(config.settings(), &expected);
        // Keys are case-insensitive, a trailing ';' is fine, a topic may come from the spec.
        let lower = format!(
            "endpoint=sb://shop.servicebus.windows.net;sharedaccesskeyname=listen;sharedaccesskey={KEY};"
        );
        let c = EventHubsConnection::parse(&lower).unwrap();
        assert_eq!(
            (c.entity_path.as_deref(), c.bootstrap_servers().as_str()),
            (None, "shop.servicebus.windows.net:9093")
        );
        assert_eq!(
            KafkaConfig::event_hubs(&c, Some("payments")).unwrap().topic,
            "payments"
        );
    }

    #[test]
    fn malformed_connection_strings_are_refused_without_repeating_the_key() {
        let cases = [
            (String::new(), "empty"),
            (
                format!(
                    "Endpoint=https://shop.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey={KEY}"
                ),
                "sb://",
            ),
            (
                format!("SharedAccessKeyName=a;SharedAccessKey={KEY}"),
                "no Endpoint",
            ),
            (
                "Endpoint=sb://shop.servicebus.windows.net/".to_string(),
                "neither SharedAccessKeyName",
            ),
            (
                "Endpoint=sb://shop.servicebus.windows.net/;SharedAccessKeyName=a".to_string(),
                "SharedAccessKey is missing",
            ),
            (
                format!("Endpoint=sb://shop.servicebus.windows.net/;SharedAccessKey={KEY}"),
                "SharedAccessKeyName is missing",
            ),
            (
                format!(
                    "Endpoint=sb://shop.servicebus.windows.net/;SharedAccessKeyName;SharedAccessKey={KEY}"
                ),
                "part 2 is not KEY=VALUE",
            ),
            (conn(&format!(";SharedAccessKey={KEY}")), "given twice"),
            (conn(";EntityPath="), "EntityPath is empty"),
            (
                format!(
                    "Endpoint=sb://shop.servicebus.windows.net/x/y;SharedAccessKeyName=a;SharedAccessKey={KEY}"
                ),
                "nothing after it",
            ),
        ];
        for (s, expected) in cases {
            let e = EventHubsConnection::parse(&s).unwrap_err().to_string();
            assert!(e.contains(expected), "{s:?}: {e}");
            assert!(
                e.starts_with("invalid setting `Event Hubs connection string`"),
                "{e}"
            );
            assert!(!e.contains(KEY) && !e.contains("c2VjcmV0"), "the key leaked: {e}");
        }
        let c = EventHubsConnection::parse(&conn("")).unwrap();
        let e = KafkaConfig::event_hubs(&c, None).unwrap_err().to_string();
        assert!(e.contains("no EntityPath") && !e.contains(KEY), "{e}");
        let c = EventHubsConnection::parse(&conn(";EntityPath=orders")).unwrap();
        let e = KafkaConfig::event_hubs(&c, Some("other"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("differs") && !e.contains(KEY), "{e}");
    }

    #[test]
    fn the_key_never_shows_in_debug_output_descriptions_or_spec_errors() {
        let s = conn(";EntityPath=orders");
        let c = EventHubsConnection::parse(&s).unwrap();
        let config = KafkaConfig::event_hubs(&c, None).unwrap();
        for text in [format!("{c:?}"), format!("{config:?}"), config.describe()] {
            assert!(!text.contains(KEY), "{text}");
        }
        assert!(format!("{config:?}").contains("\"sasl.password\": \"<redacted>\""));
        assert_eq!(
            config.describe(),
            "eventhubs://shop.servicebus.windows.net/orders"
        );
        // Through the spec: the value comes from the environment, never from the spec.
        let env = |name: &str| (name == "SS_TEST_EH_CONN_1").then(|| s.clone());
        let spec = Spec::parse("eventhubs://SS_TEST_EH_CONN_1?group=$Default&rdkafka.client.id=a").unwrap();
        let config = KafkaConfig::from_spec_with_env(&spec, &env).unwrap();
        assert_eq!(config.group.as_deref(), Some("$Default"));
        assert_eq!(config.settings()["client.id"], "a");
        assert_eq!(config.settings()["sasl.password"], s);
        assert!(!format!("{config:?}").contains(KEY));
        let e = KafkaConfig::from_spec_with_env(
            &Spec::parse("eventhubs://SS_TEST_EH_CONN_1?topic=x").unwrap(),
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("differs") && !e.contains(KEY), "{e}");
        let e = KafkaConfig::from_spec_with_env(
            &Spec::parse("eventhubs://SS_TEST_EH_NOT_SET?group=g").unwrap(),
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("SS_TEST_EH_NOT_SET is not set"), "{e}");
    }

    #[test]
    fn kafka_specs_take_hosts_topic_group_and_raw_settings() {
        let spec =
            Spec::parse("kafka://h1:9092,h2:9092/events?group=g&rdkafka.session.timeout.ms=6000").unwrap();
        let c = KafkaConfig::from_spec(&spec).unwrap();
        assert_eq!((c.topic.as_str(), c.group.as_deref()), ("events", Some("g")));
        assert_eq!(c.settings()["bootstrap.servers"], "h1:9092,h2:9092");
        assert_eq!(c.settings()["session.timeout.ms"], "6000");
        for (raw, expected) in [
            ("kafka://h:1/", "one topic"),
            ("kafka://h:1/a/b", "one topic"),
            ("kafka:///t", "expected kafka://HOST:PORT"),
            ("kafka://h:1/t?grup=g", "unknown parameter `grup`"),
            ("kafka://h:1/t?group=", "must not be empty"),
        ] {
            let e = KafkaConfig::from_spec(&Spec::parse(raw).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{raw}: {e}");
        }
        let e = KafkaSource::new(&KafkaConfig::new("h:1", "t"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("?group=NAME"), "{e}");
    }

    #[test]
    fn a_properties_file_adds_settings_and_errors_name_the_line_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.properties");
        std::fs::write(&path, "# credentials\nsasl.username = u\n\nsasl.password=p4ss\n").unwrap();
        let mut c = KafkaConfig::new("h:1", "t");
        c.load_properties(&path).unwrap();
        assert_eq!(
            (
                c.settings()["sasl.username"].as_str(),
                c.settings()["sasl.password"].as_str()
            ),
            ("u", "p4ss")
        );
        assert!(!format!("{c:?}").contains("p4ss"));
        std::fs::write(&path, "a=1\nsecretvalue\n").unwrap();
        let e = c.load_properties(&path).unwrap_err().to_string();
        assert!(e.contains("line 2") && !e.contains("secretvalue"), "{e}");
    }
}
