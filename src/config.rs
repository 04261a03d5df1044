//! Settings: command-line flags over `LEADTRAIL_…` environment variables over an optional TOML
//! file over defaults. Validated once at start, so the rest of the program holds parsed values.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::tier::TierLimits;
use crate::domain::tracking_url::OpenParameter;
use crate::http::client_ip::TrustedProxies;
use crate::store::DatabaseSettings;
use crate::webhooks::target::{AllowedPorts, TargetPolicy};

/// The commented defaults that `leadtrail default-config` prints.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../config.default.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: String,
    pub admin_token: Option<String>,
    /// Bearer token a Prometheus scraper sends for `/metrics` (off while unset).
    pub metrics_token: Option<String>,
    /// Where people reach the service (`https://leads.example.com`): the origin of invite links
    /// and embed snippets. Never taken from a request's `Host`.
    pub public_base_url: String,
    /// Cookies carry `Secure` and responses `Strict-Transport-Security`: the service is reached
    /// over https only. Never decided by a request's `X-Forwarded-Proto`.
    pub secure_cookies: bool,
    /// Slow or idle clients: deadlines for a request's head and for a whole request, and how
    /// many connections are served at once.
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    /// Reverse proxies whose forwarding headers name the client.
    pub trusted_proxies: TrustedProxies,
    pub allow_private_webhook_targets: bool,
    pub webhook_retry_schedule: Vec<Duration>,
    pub capture_rate_limit: u32,
    pub open_parameter: OpenParameter,
    pub log_format: LogFormat,
    pub tiers: TierLimits,
    pub enricher_url: Option<String>,
    pub enricher_timeout: Duration,
    /// An endpoint failing this long, with its retries used up, is disabled.
    pub webhook_disable_after: Duration,
    /// Ports a webhook URL may name.
    pub webhook_allowed_ports: AllowedPorts,
    /// An explicit egress proxy for webhook deliveries (environment proxies are ignored).
    pub webhook_egress_proxy: Option<url::Url>,
    /// Deliveries one endpoint may have in flight at once, across all nodes.
    pub webhook_endpoint_concurrency: usize,
    /// Deliveries one node sends at once, over all endpoints.
    pub webhook_concurrency: usize,
    /// Webhook endpoints one organization may have.
    pub webhook_max_endpoints: u32,
    /// Test sends, resends and replays per organization per minute.
    pub webhook_manual_sends_per_minute: u32,
    /// A delivery due for longer than this is logged as late.
    pub webhook_lag_warning: Duration,
    /// Database connections of this node, and how long one statement or one lock wait may
    /// take while serving.
    pub database: DatabaseSettings,
    /// How often the dispatcher looks for work nobody woke it for (other nodes' deliveries
    /// without a wake-up, held deliveries); `None`: 500 ms on SQLite, 5 s on PostgreSQL, where
    /// other nodes' work arrives by `LISTEN/NOTIFY`.
    pub webhook_poll_interval: Option<Duration>,
    /// On PostgreSQL, hear other nodes' work at once through `LISTEN/NOTIFY` (off for poolers
    /// without sessions or databases without it: polling alone, every 500 ms).
    pub cross_node_wakeups: bool,
}

impl Config {
    /// Where webhooks may go, from the settings.
    pub fn webhook_targets(&self) -> TargetPolicy {
        TargetPolicy {
            allow_private: self.allow_private_webhook_targets,
            ports: self.webhook_allowed_ports.clone(),
        }
    }
}

/// The raw, all-optional shape shared by the TOML file and the flag/environment layer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    pub bind: Option<String>,
    pub database_url: Option<String>,
    pub admin_token: Option<String>,
    pub metrics_token: Option<String>,
    pub public_base_url: Option<String>,
    pub secure_cookies: Option<bool>,
    pub header_read_timeout: Option<String>,
    pub request_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub trusted_proxies: Option<String>,
    pub allow_private_webhook_targets: Option<bool>,
    pub webhook_retry_schedule: Option<String>,
    pub capture_rate_limit: Option<u32>,
    pub open_parameter: Option<String>,
    pub log_format: Option<String>,
    pub tiers: Option<TierLimits>,
    pub enricher_url: Option<String>,
    pub enricher_timeout: Option<String>,
    pub webhook_disable_after: Option<String>,
    pub webhook_allowed_ports: Option<String>,
    pub webhook_egress_proxy: Option<String>,
    pub webhook_endpoint_concurrency: Option<usize>,
    pub webhook_concurrency: Option<usize>,
    pub webhook_max_endpoints: Option<u32>,
    pub webhook_manual_sends_per_minute: Option<u32>,
    pub webhook_lag_warning: Option<String>,
    pub database_pool_size: Option<u32>,
    pub database_statement_timeout: Option<String>,
    pub database_lock_timeout: Option<String>,
    pub webhook_poll_interval: Option<String>,
    pub cross_node_wakeups: Option<bool>,
}

impl ConfigLayer {
    /// Values present in `self` win over `under`.
    pub fn over(self, under: ConfigLayer) -> ConfigLayer {
        ConfigLayer {
            bind: self.bind.or(under.bind),
            database_url: self.database_url.or(under.database_url),
            admin_token: self.admin_token.or(under.admin_token),
            metrics_token: self.metrics_token.or(under.metrics_token),
            public_base_url: self.public_base_url.or(under.public_base_url),
            secure_cookies: self.secure_cookies.or(under.secure_cookies),
            header_read_timeout: self.header_read_timeout.or(under.header_read_timeout),
            request_timeout: self.request_timeout.or(under.request_timeout),
            max_connections: self.max_connections.or(under.max_connections),
            trusted_proxies: self.trusted_proxies.or(under.trusted_proxies),
            allow_private_webhook_targets: self
                .allow_private_webhook_targets
                .or(under.allow_private_webhook_targets),
            webhook_retry_schedule: self.webhook_retry_schedule.or(under.webhook_retry_schedule),
            capture_rate_limit: self.capture_rate_limit.or(under.capture_rate_limit),
            open_parameter: self.open_parameter.or(under.open_parameter),
            log_format: self.log_format.or(under.log_format),
            tiers: self.tiers.or(under.tiers),
            enricher_url: self.enricher_url.or(under.enricher_url),
            enricher_timeout: self.enricher_timeout.or(under.enricher_timeout),
            webhook_disable_after: self.webhook_disable_after.or(under.webhook_disable_after),
            webhook_allowed_ports: self.webhook_allowed_ports.or(under.webhook_allowed_ports),
            webhook_egress_proxy: self.webhook_egress_proxy.or(under.webhook_egress_proxy),
            webhook_endpoint_concurrency: self
                .webhook_endpoint_concurrency
                .or(under.webhook_endpoint_concurrency),
            webhook_concurrency: self.webhook_concurrency.or(under.webhook_concurrency),
            webhook_max_endpoints: self.webhook_max_endpoints.or(under.webhook_max_endpoints),
            webhook_manual_sends_per_minute: self
                .webhook_manual_sends_per_minute
                .or(under.webhook_manual_sends_per_minute),
            webhook_lag_warning: self.webhook_lag_warning.or(under.webhook_lag_warning),
            database_pool_size: self.database_pool_size.or(under.database_pool_size),
            database_statement_timeout: self
                .database_statement_timeout
                .or(under.database_statement_timeout),
            database_lock_timeout: self.database_lock_timeout.or(under.database_lock_timeout),
            webhook_poll_interval: self.webhook_poll_interval.or(under.webhook_poll_interval),
            cross_node_wakeups: self.cross_node_wakeups.or(under.cross_node_wakeups),
        }
    }

    pub fn from_toml_file(path: &Path) -> Result<ConfigLayer, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }
}

/// The origin people use, without a trailing slash; unset, the bound address over http (right
/// for local use; a deployment sets it).
fn public_base_url(value: Option<String>, bind: SocketAddr) -> Result<String, ConfigError> {
    let Some(raw) = value.filter(|v| !v.is_empty()) else {
        return Ok(format!("http://{bind}"));
    };
    let url =
        url::Url::parse(&raw).map_err(|e| ConfigError(format!("public_base_url {raw:?}: {e}")))?;
    let plain_origin = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty();
    if !plain_origin {
        return Err(ConfigError(format!(
            "public_base_url {raw:?}: use an http(s) origin such as https://leads.example.com"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Tokens that guard the service are long enough not to be guessed; empty means unset.
const MIN_TOKEN_CHARS: usize = 32;

fn secret_token(value: Option<String>, key: &str) -> Result<Option<String>, ConfigError> {
    match value.filter(|t| !t.is_empty()) {
        Some(t) if t.chars().count() < MIN_TOKEN_CHARS => Err(ConfigError(format!(
            "{key} must be at least {MIN_TOKEN_CHARS} characters (for example `openssl rand -hex 32`)"
        ))),
        other => Ok(other),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Fills every gap from the embedded defaults, then validates.
    pub fn resolve(layer: ConfigLayer) -> Result<Config, ConfigError> {
        let defaults: ConfigLayer = toml::from_str(DEFAULT_CONFIG_TOML)
            .map_err(|e| ConfigError(format!("embedded defaults: {e}")))?;
        let l = layer.over(defaults);
        let need = |v: Option<String>, key: &str| {
            v.ok_or_else(|| ConfigError(format!("{key} is required")))
        };
        let bind = need(l.bind, "bind")?;
        let log_format = match need(l.log_format, "log_format")?.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError(format!(
                    "log_format {other:?}: use pretty or json"
                )));
            }
        };
        let open = need(l.open_parameter, "open_parameter")?;
        let bind: SocketAddr = bind
            .parse()
            .map_err(|e| ConfigError(format!("bind {bind:?}: {e}")))?;
        let public_base_url = public_base_url(l.public_base_url, bind)?;
        Ok(Config {
            bind,
            secure_cookies: l
                .secure_cookies
                .unwrap_or(public_base_url.starts_with("https://")),
            public_base_url,
            header_read_timeout: parse_duration(&need(
                l.header_read_timeout,
                "header_read_timeout",
            )?)?,
            request_timeout: parse_duration(&need(l.request_timeout, "request_timeout")?)?,
            max_connections: at_least_one(l.max_connections, "max_connections")?,
            trusted_proxies: TrustedProxies::parse(l.trusted_proxies.as_deref().unwrap_or(""))
                .map_err(|e| ConfigError(format!("trusted_proxies: {e}")))?,
            database_url: need(l.database_url, "database_url")?,
            admin_token: secret_token(l.admin_token, "admin_token")?,
            metrics_token: secret_token(l.metrics_token, "metrics_token")?,
            allow_private_webhook_targets: l.allow_private_webhook_targets.unwrap_or(false),
            webhook_retry_schedule: parse_schedule(&need(
                l.webhook_retry_schedule,
                "webhook_retry_schedule",
            )?)?,
            capture_rate_limit: l.capture_rate_limit.unwrap_or(0),
            open_parameter: OpenParameter::parse(&open).map_err(|e| ConfigError(e.message))?,
            log_format,
            tiers: l.tiers.unwrap_or_default(),
            enricher_url: l.enricher_url.filter(|u| !u.is_empty()),
            enricher_timeout: parse_duration(&need(l.enricher_timeout, "enricher_timeout")?)?,
            webhook_disable_after: parse_duration(&need(
                l.webhook_disable_after,
                "webhook_disable_after",
            )?)?,
            webhook_allowed_ports: AllowedPorts::parse(&need(
                l.webhook_allowed_ports,
                "webhook_allowed_ports",
            )?)
            .map_err(|e| ConfigError(format!("webhook_allowed_ports: {e}")))?,
            webhook_egress_proxy: l
                .webhook_egress_proxy
                .filter(|p| !p.is_empty())
                .map(|p| {
                    url::Url::parse(&p)
                        .map_err(|e| ConfigError(format!("webhook_egress_proxy {p:?}: {e}")))
                })
                .transpose()?,
            webhook_endpoint_concurrency: at_least_one(
                l.webhook_endpoint_concurrency,
                "webhook_endpoint_concurrency",
            )?,
            webhook_concurrency: at_least_one(l.webhook_concurrency, "webhook_concurrency")?,
            webhook_max_endpoints: l.webhook_max_endpoints.unwrap_or(20),
            webhook_manual_sends_per_minute: l.webhook_manual_sends_per_minute.unwrap_or(0),
            webhook_lag_warning: parse_duration(&need(
                l.webhook_lag_warning,
                "webhook_lag_warning",
            )?)?,
            database: DatabaseSettings {
                pool_size: match l.database_pool_size {
                    Some(0) => {
                        return Err(ConfigError("database_pool_size must be at least 1".into()));
                    }
                    other => other,
                },
                statement_timeout: optional_duration(l.database_statement_timeout)?,
                lock_timeout: optional_duration(l.database_lock_timeout)?,
            },
            webhook_poll_interval: optional_duration(l.webhook_poll_interval)?,
            cross_node_wakeups: l.cross_node_wakeups.unwrap_or(true),
        })
    }

    /// Defaults with a given database; what tests and the demo start from.
    pub fn with_database(database_url: &str) -> Result<Config, ConfigError> {
        Config::resolve(ConfigLayer {
            database_url: Some(database_url.to_owned()),
            ..ConfigLayer::default()
        })
    }
}

/// A duration where `0` (or nothing) means no limit.
fn optional_duration(value: Option<String>) -> Result<Option<Duration>, ConfigError> {
    match value.as_deref().map(str::trim) {
        None | Some("" | "0") => Ok(None),
        Some(raw) => parse_duration(raw).map(Some),
    }
}

fn at_least_one(value: Option<usize>, key: &str) -> Result<usize, ConfigError> {
    match value {
        Some(n) if n > 0 => Ok(n),
        Some(_) => Err(ConfigError(format!("{key} must be at least 1"))),
        None => Err(ConfigError(format!("{key} is required"))),
    }
}

/// `5s,5m,30m,2h` → durations. Units: ms, s, m, h, d.
pub fn parse_schedule(raw: &str) -> Result<Vec<Duration>, ConfigError> {
    let schedule = raw
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if schedule.is_empty() {
        return Err(ConfigError(
            "webhook_retry_schedule must name at least one delay".into(),
        ));
    }
    Ok(schedule)
}

pub fn parse_duration(raw: &str) -> Result<Duration, ConfigError> {
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        ConfigError(format!(
            "duration {raw:?}: expected a number and a unit, like 5s"
        ))
    })?;
    let seconds = |factor: u64| Duration::from_secs(n.saturating_mul(factor));
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(seconds(1)),
        "m" => Ok(seconds(60)),
        "h" => Ok(seconds(3600)),
        "d" => Ok(seconds(86_400)),
        _ => Err(ConfigError(format!(
            "duration {raw:?}: unit must be ms, s, m, h or d"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_resolve_to_a_valid_config() {
        let config = Config::resolve(ConfigLayer::default());
        assert!(config.is_ok(), "{config:?}");
        let config = config.unwrap_or_else(|_| unreachable!());
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.tiers, TierLimits::default());
        assert!(config.admin_token.is_none());
        let total: Duration = config.webhook_retry_schedule.iter().sum();
        let days = total.as_secs_f64() / 86_400.0;
        assert!(
            (2.5..=3.5).contains(&days),
            "default retry window is {days:.2} days"
        );
    }

    #[test]
    fn links_use_the_public_base_url_and_https_turns_secure_cookies_on() {
        let plain = Config::resolve(ConfigLayer::default()).expect("defaults");
        assert_eq!(plain.public_base_url, "http://127.0.0.1:8080");
        assert!(!plain.secure_cookies);
        let deployed = Config::resolve(ConfigLayer {
            public_base_url: Some("https://Leads.Example.com/".into()),
            ..ConfigLayer::default()
        })
        .expect("an https origin");
        assert_eq!(deployed.public_base_url, "https://leads.example.com");
        assert!(deployed.secure_cookies);
        for bad in [
            "leads.example.com",
            "ftp://x.example",
            "https://x.example/app",
            "https://u@x.example",
        ] {
            let refused = Config::resolve(ConfigLayer {
                public_base_url: Some(bad.into()),
                ..ConfigLayer::default()
            });
            assert!(refused.is_err(), "{bad}");
        }
    }

    #[test]
    fn a_short_operator_or_metrics_token_refuses_to_start() {
        for key in ["admin_token", "metrics_token"] {
            let mut layer = ConfigLayer::default();
            let short = Some("too-short-to-be-safe".to_owned());
            match key {
                "admin_token" => layer.admin_token = short,
                _ => layer.metrics_token = short,
            }
            let err = Config::resolve(layer).expect_err(key).to_string();
            assert!(err.contains(key) && err.contains("32 characters"), "{err}");
        }
        let layer = ConfigLayer {
            admin_token: Some("a".repeat(32)),
            metrics_token: Some(String::new()),
            ..ConfigLayer::default()
        };
        let config = Config::resolve(layer).expect("long enough");
        assert_eq!(config.admin_token.as_deref(), Some("a".repeat(32).as_str()));
        assert!(config.metrics_token.is_none());
    }

    #[test]
    fn flags_and_environment_win_over_the_file() {
        let file = ConfigLayer {
            bind: Some("0.0.0.0:9000".into()),
            capture_rate_limit: Some(5),
            ..ConfigLayer::default()
        };
        let flags = ConfigLayer {
            bind: Some("127.0.0.1:7000".into()),
            ..ConfigLayer::default()
        };
        let config =
            Config::resolve(flags.over(file)).map(|c| (c.bind.port(), c.capture_rate_limit));
        assert_eq!(config.ok(), Some((7000, 5)));
    }

    #[test]
    fn retry_schedule_parses_units_and_refuses_garbage() {
        let s = parse_schedule("5s,5m,2h,1d,250ms").unwrap_or_default();
        assert_eq!(
            s,
            vec![
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(7200),
                Duration::from_secs(86_400),
                Duration::from_millis(250)
            ]
        );
        assert!(parse_schedule("5x").is_err());
        assert!(parse_schedule("").is_err());
        assert!(parse_schedule("s").is_err());
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        assert!(toml::from_str::<ConfigLayer>("bnd = \"x\"").is_err());
    }
}
