//! The `leadtrail` binary: serve, migrate, backup, default-config, user add, rollups rebuild.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use leadtrail::config::{Config, ConfigLayer, DEFAULT_CONFIG_TOML};
use leadtrail::domain::ids::OrgId;
use leadtrail::domain::user::{Email, Role, hash_password};
use leadtrail::{demo, server, telemetry};

/// A capture allocates a few dozen small values (JSON documents, ids, rows) on the request
/// threads and frees many of them on the writer's: glibc's allocator spent a sixth of the
/// server's CPU on that under load; mimalloc's per-thread heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "leadtrail",
    version,
    about = "Lead source attribution for home-services businesses"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (migrations run first).
    Serve {
        #[command(flatten)]
        settings: Settings,
        /// Seed a demo organization with widgets and sources, and print how to use it.
        #[arg(long)]
        demo: bool,
    },
    /// Run database migrations and exit.
    Migrate {
        #[command(flatten)]
        settings: Settings,
    },
    /// Print every setting with its default and a comment.
    DefaultConfig,
    /// Manage dashboard users.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Copy a live SQLite database to FILE while the service keeps serving (a consistent
    /// snapshot: every lead acknowledged before the copy began). Restore by stopping the
    /// service and putting the copy in the database file's place (README).
    Backup {
        #[command(flatten)]
        settings: Settings,
        /// Where to write the copy; an existing file is refused.
        file: PathBuf,
    },
    /// Report rollups (the counters reports read).
    Rollups {
        #[command(subcommand)]
        action: RollupsCommand,
    },
}

#[derive(Subcommand)]
enum RollupsCommand {
    /// Recompute the rollups from the raw leads and visits: after an upgrade, or to audit
    /// them. Safe while the service runs (one organization per transaction).
    Rebuild {
        #[command(flatten)]
        settings: Settings,
        /// Only this organization (`org_…`); every organization when absent.
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a dashboard user to an organization. The password is read from the first line of
    /// standard input (never from a flag, which would land in shell history); an address that
    /// already has a login joins the organization and keeps its own password.
    Add {
        #[command(flatten)]
        settings: Settings,
        /// The organization's id (`org_…`).
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        /// owner, member or viewer.
        #[arg(long, default_value = "member")]
        role: String,
    },
}

#[derive(Args)]
struct Settings {
    /// Address to listen on.
    #[arg(long, env = "LEADTRAIL_BIND")]
    bind: Option<String>,
    /// sqlite://FILE or postgres://USER@HOST/DB.
    #[arg(long, env = "LEADTRAIL_DATABASE_URL")]
    database_url: Option<String>,
    /// Optional TOML file (see `leadtrail default-config`).
    #[arg(long, env = "LEADTRAIL_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, env = "LEADTRAIL_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    #[arg(long, env = "LEADTRAIL_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Where people reach the service, e.g. https://leads.example.com.
    #[arg(long, env = "LEADTRAIL_PUBLIC_BASE_URL")]
    public_base_url: Option<String>,
    #[arg(long, env = "LEADTRAIL_SECURE_COOKIES")]
    secure_cookies: Option<bool>,
    #[arg(long, env = "LEADTRAIL_HEADER_READ_TIMEOUT")]
    header_read_timeout: Option<String>,
    #[arg(long, env = "LEADTRAIL_REQUEST_TIMEOUT")]
    request_timeout: Option<String>,
    #[arg(long, env = "LEADTRAIL_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Reverse proxies (CIDRs) whose X-Forwarded-For / Forwarded headers are believed.
    #[arg(long, env = "LEADTRAIL_TRUSTED_PROXIES")]
    trusted_proxies: Option<String>,
    #[arg(long, env = "LEADTRAIL_ALLOW_PRIVATE_WEBHOOK_TARGETS")]
    allow_private_webhook_targets: Option<bool>,
    #[arg(long, env = "LEADTRAIL_WEBHOOK_RETRY_SCHEDULE")]
    webhook_retry_schedule: Option<String>,
    #[arg(long, env = "LEADTRAIL_CAPTURE_RATE_LIMIT")]
    capture_rate_limit: Option<u32>,
    #[arg(long, env = "LEADTRAIL_OPEN_PARAMETER")]
    open_parameter: Option<String>,
    /// pretty or json.
    #[arg(long, env = "LEADTRAIL_LOG_FORMAT")]
    log_format: Option<String>,
    #[arg(long, env = "LEADTRAIL_ENRICHER_URL")]
    enricher_url: Option<String>,
    #[arg(long, env = "LEADTRAIL_ENRICHER_TIMEOUT")]
    enricher_timeout: Option<String>,
    #[arg(long, env = "LEADTRAIL_WEBHOOK_DISABLE_AFTER")]
    webhook_disable_after: Option<String>,
    #[arg(long, env = "LEADTRAIL_WEBHOOK_ALLOWED_PORTS")]
    webhook_allowed_ports: Option<String>,
    #[arg(long, env = "LEADTRAIL_WEBHOOK_EGRESS_PROXY")]
    webhook_egress_proxy: Option<String>,
    #[arg(long, env = "LEADTRAIL_WEBHOOK_ENDPOINT_CONCURRENCY")]
    webhook_endpoint_concurrency: Option<usize>,
    #[arg(long, env = "LEADTRAIL_WEBHOOK_CONCURRENCY")]
    webhook_concurrency: Option<usize>,
    #[arg(long, env = "LEADTRAIL_WEBHOOK_MAX_ENDPOINTS")]
    webhook_max_endpoints: Option<u32>,
    #[arg(long, env = "LEADTRAIL_WEBHOOK_MANUAL_SENDS_PER_MINUTE")]
    webhook_manual_sends_per_minute: Option<u32>,
    #[arg(long, env = "LEADTRAIL_WEBHOOK_LAG_WARNING")]
    webhook_lag_warning: Option<String>,
    /// Database connections of this node (default 8 on SQLite, 16 on PostgreSQL).
    #[arg(long, env = "LEADTRAIL_DATABASE_POOL_SIZE")]
    database_pool_size: Option<u32>,
    #[arg(long, env = "LEADTRAIL_DATABASE_STATEMENT_TIMEOUT")]
    database_statement_timeout: Option<String>,
    #[arg(long, env = "LEADTRAIL_DATABASE_LOCK_TIMEOUT")]
    database_lock_timeout: Option<String>,
    #[arg(long, env = "LEADTRAIL_WEBHOOK_POLL_INTERVAL")]
    webhook_poll_interval: Option<String>,
    #[arg(long, env = "LEADTRAIL_CROSS_NODE_WAKEUPS")]
    cross_node_wakeups: Option<bool>,
}

impl Settings {
    fn resolve(self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => ConfigLayer::from_toml_file(path)?,
            None => ConfigLayer::default(),
        };
        let flags = ConfigLayer {
            bind: self.bind,
            database_url: self.database_url,
            admin_token: self.admin_token,
            metrics_token: self.metrics_token,
            public_base_url: self.public_base_url,
            secure_cookies: self.secure_cookies,
            header_read_timeout: self.header_read_timeout,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections,
            trusted_proxies: self.trusted_proxies,
            allow_private_webhook_targets: self.allow_private_webhook_targets,
            webhook_retry_schedule: self.webhook_retry_schedule,
            capture_rate_limit: self.capture_rate_limit,
            open_parameter: self.open_parameter,
            log_format: self.log_format,
            tiers: None,
            enricher_url: self.enricher_url,
            enricher_timeout: self.enricher_timeout,
            webhook_disable_after: self.webhook_disable_after,
            webhook_allowed_ports: self.webhook_allowed_ports,
            webhook_egress_proxy: self.webhook_egress_proxy,
            webhook_endpoint_concurrency: self.webhook_endpoint_concurrency,
            webhook_concurrency: self.webhook_concurrency,
            webhook_max_endpoints: self.webhook_max_endpoints,
            webhook_manual_sends_per_minute: self.webhook_manual_sends_per_minute,
            webhook_lag_warning: self.webhook_lag_warning,
            database_pool_size: self.database_pool_size,
            database_statement_timeout: self.database_statement_timeout,
            database_lock_timeout: self.database_lock_timeout,
            webhook_poll_interval: self.webhook_poll_interval,
            cross_node_wakeups: self.cross_node_wakeups,
        };
        Ok(Config::resolve(flags.over(file))?)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leadtrail: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::DefaultConfig => {
            print!("{DEFAULT_CONFIG_TOML}");
            Ok(())
        }
        Command::Migrate { settings } => {
            let config = settings.resolve()?;
            telemetry::init_logging(config.log_format);
            let store = leadtrail::store::Store::connect(&config.database_url).await?;
            store.migrate().await?;
            store.close().await;
            tracing::info!("migrations are up to date");
            Ok(())
        }
        Command::User {
            action:
                UserCommand::Add {
                    settings,
                    org,
                    email,
                    role,
                },
        } => {
            let config = settings.resolve()?;
            telemetry::init_logging(config.log_format);
            let org = OrgId::parse(&org)
                .ok_or_else(|| anyhow::anyhow!("--org must be an organization id like org_…"))?;
            let email = Email::parse("email", &email)?;
            let role = Role::parse("role", &role)?;
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password_hash = hash_password("password", password.trim_end_matches(['\r', '\n']))?;
            let store = leadtrail::store::Store::connect(&config.database_url).await?;
            store.migrate().await?;
            let created = store
                .create_user(&org, email.as_str(), &password_hash, role)
                .await;
            store.close().await;
            let user = match created {
                Ok(user) => user,
                Err(leadtrail::store::StoreError::NotFound) => {
                    anyhow::bail!("no organization {org}")
                }
                Err(e) => return Err(e.into()),
            };
            println!("added {} ({}) to {org}", user.email, role.id());
            Ok(())
        }
        Command::Rollups {
            action: RollupsCommand::Rebuild { settings, org },
        } => {
            let config = settings.resolve()?;
            telemetry::init_logging(config.log_format);
            let org = org
                .map(|o| {
                    OrgId::parse(&o).ok_or_else(|| {
                        anyhow::anyhow!("--org must be an organization id like org_…")
                    })
                })
                .transpose()?;
            let store = leadtrail::store::Store::connect(&config.database_url).await?;
            store.migrate().await?;
            if let Some(org) = &org
                && let Err(leadtrail::store::StoreError::NotFound) = store.organization(org).await
            {
                store.close().await;
                anyhow::bail!("no organization {org}");
            }
            let started = std::time::Instant::now();
            let rebuilt = store.rebuild_rollups(org.as_ref()).await;
            store.close().await;
            println!(
                "rebuilt the report rollups of {} organization(s) in {:.1} s",
                rebuilt?,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Backup { settings, file } => {
            let config = settings.resolve()?;
            telemetry::init_logging(config.log_format);
            // A backup of a file that is not there is a mistake, not an empty database.
            let url = match leadtrail::store::Backend::from_url(&config.database_url)? {
                leadtrail::store::Backend::Sqlite if !config.database_url.contains("mode=") => {
                    let sep = if config.database_url.contains('?') {
                        '&'
                    } else {
                        '?'
                    };
                    format!("{}{sep}mode=rw", config.database_url)
                }
                _ => config.database_url.clone(),
            };
            let store = leadtrail::store::Store::connect(&url).await?;
            let started = std::time::Instant::now();
            let copied = store.backup_into(&file).await;
            store.close().await;
            let copied = copied?;
            println!(
                "backed up {} organization(s) and {} lead(s) to {} ({} bytes) in {:.1} s",
                copied.organizations,
                copied.leads,
                copied.path.display(),
                copied.bytes,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Serve { settings, demo } => {
            let config = settings.resolve()?;
            telemetry::init_logging(config.log_format);
            let bind = config.bind;
            let service = server::prepare(config).await?;
            let listener = tokio::net::TcpListener::bind(bind).await?;
            let address = listener.local_addr()?;
            if demo {
                let seeded = demo::seed(&service.state).await?;
                println!("{}", seeded.instructions(address));
            }
            let public = service.state.config.public_base_url.clone();
            if !bind.ip().is_loopback() && public.starts_with(&format!("http://{bind}")) {
                tracing::warn!(
                    %public,
                    "public_base_url is unset: invite links and embed snippets name the bound \
                     address; set LEADTRAIL_PUBLIC_BASE_URL to the address people use"
                );
            }
            tracing::info!(%address, %public, "leadtrail is serving");
            server::serve(service, listener, server::shutdown_signal()).await
        }
    }
}
