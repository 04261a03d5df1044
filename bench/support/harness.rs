//! What every load benchmark needs: the release binary on a fresh database, CPU time of a
//! process, percentiles, median-and-range summaries, and an open-loop generator that reports
//! the rate it actually reached.
#![allow(dead_code, reason = "each benchmark uses a part")]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

pub const ADMIN: &str = "bench-operator-token-0123456789abcdef";
/// What the benchmarks send for `/metrics`.
pub const METRICS: &str = "bench-metrics-token-0123456789abcdef";

/// The release binary serving on loopback; stopped (SIGTERM) when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `leadtrail serve` on a fresh SQLite file with rate limits off, private webhook
    /// targets allowed, and `env` on top.
    pub fn start(env: &[(&str, &str)]) -> BenchResult<Server> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_leadtrail"));
        command
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env(
                "LEADTRAIL_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("bench.db").display()),
            )
            .env("LEADTRAIL_ADMIN_TOKEN", ADMIN)
            .env("LEADTRAIL_METRICS_TOKEN", METRICS)
            .env("LEADTRAIL_CAPTURE_RATE_LIMIT", "0")
            .env("LEADTRAIL_ALLOW_PRIVATE_WEBHOOK_TARGETS", "true")
            .env("LEADTRAIL_WEBHOOK_MANUAL_SENDS_PER_MINUTE", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("server did not start".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        })
    }

    /// The SQLite file the server writes.
    pub fn database_path(&self) -> std::path::PathBuf {
        self._dir.path().join("bench.db")
    }

    /// A directory of this run, removed with the server.
    pub fn scratch_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) the server has used so far.
    pub fn cpu(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.pid()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) this benchmark process has used so far: the load generator's
/// own cost, printed so a reader can see it was not the bottleneck.
pub fn own_cpu() -> f64 {
    cpu_seconds("/proc/self/stat")
}

fn cpu_seconds(stat_path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start at ") ".
    let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// How the machine's CPUs spent their time so far (`/proc/stat`), in CPU-seconds: busy (user,
/// system, interrupts), idle, and idle while a disk request was outstanding (`iowait`). Two
/// readings apart say whether a phase had the machine to spare or used all of it.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy: f64,
    pub idle: f64,
    pub iowait: f64,
}

impl MachineCpu {
    pub fn now() -> MachineCpu {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<f64> = stat
            .lines()
            .find(|l| l.starts_with("cpu "))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        // user nice system idle iowait irq softirq steal …, in clock ticks (1/100 s).
        let at = |i: usize| fields.get(i).copied().unwrap_or(0.0) / 100.0;
        MachineCpu {
            busy: at(0) + at(1) + at(2) + at(5) + at(6) + at(7),
            idle: at(3),
            iowait: at(4),
        }
    }

    /// Cores busy on average over `seconds`.
    pub fn busy_cores(&self, seconds: f64) -> f64 {
        self.busy / seconds
    }
}

impl std::ops::Sub for MachineCpu {
    type Output = MachineCpu;

    fn sub(self, earlier: MachineCpu) -> MachineCpu {
        MachineCpu {
            busy: self.busy - earlier.busy,
            idle: self.idle - earlier.idle,
            iowait: self.iowait - earlier.iowait,
        }
    }
}

/// A thread's time on a CPU and its time runnable but waiting for one, in seconds
/// (`schedstat`: the kernel's own accounting, in nanoseconds). On a machine whose cores are
/// all busy, a thread that wakes (an fsync done, a job handed over) waits its turn: that wait
/// is the second figure.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sched {
    pub on_cpu: f64,
    pub waiting: f64,
}

impl Sched {
    fn read(path: &std::path::Path) -> Sched {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut f = text
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(0.0));
        Sched {
            on_cpu: f.next().unwrap_or(0.0) / 1e9,
            waiting: f.next().unwrap_or(0.0) / 1e9,
        }
    }

    /// The calling thread's own.
    pub fn this_thread() -> Sched {
        Sched::read(std::path::Path::new("/proc/thread-self/schedstat"))
    }

    /// Process `pid`'s threads, summed by thread name (tokio's workers share one).
    pub fn by_thread_name(pid: u32) -> std::collections::BTreeMap<String, Sched> {
        let mut by_name = std::collections::BTreeMap::<String, Sched>::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return by_name;
        };
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let one = Sched::read(&task.path().join("schedstat"));
            let sum = by_name.entry(comm.trim_end().to_owned()).or_default();
            sum.on_cpu += one.on_cpu;
            sum.waiting += one.waiting;
        }
        by_name
    }
}

impl std::ops::Sub for Sched {
    type Output = Sched;

    fn sub(self, earlier: Sched) -> Sched {
        Sched {
            on_cpu: self.on_cpu - earlier.on_cpu,
            waiting: self.waiting - earlier.waiting,
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median of repeated measurements, with their range.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Summary {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let median = if v.is_empty() {
            0.0
        } else if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        Summary {
            median,
            min: v.first().copied().unwrap_or(0.0),
            max: v.last().copied().unwrap_or(0.0),
        }
    }

    /// `1234 (1100–1300)` with `decimals` places.
    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }
}

/// A target, evaluated: prints `met` or `NOT met` and remembers failures for the exit code.
#[derive(Default)]
pub struct Targets {
    missed: Vec<String>,
}

impl Targets {
    pub fn check(&mut self, what: &str, met: bool) -> &'static str {
        if met {
            "met"
        } else {
            self.missed.push(what.to_owned());
            "NOT met"
        }
    }

    pub fn missed(&self) -> &[String] {
        &self.missed
    }
}

/// What an open-loop run did: requests are started on a fixed schedule whether or not earlier
/// ones have answered, so a slow server shows as latency, not as a lower offered rate.
pub struct OpenLoop<T> {
    /// Requests started per second, measured (target: the asked rate).
    pub achieved_rate: f64,
    pub results: Vec<T>,
}

/// Starts `count` calls of `call` at `rate` per second and waits for them all. The schedule
/// is absolute (request i starts at start + i/rate), so a late wake-up is caught up, never
/// silently dropped; `achieved_rate` says what was really offered.
pub async fn open_loop<T, F, Fut>(rate: f64, count: usize, call: F) -> OpenLoop<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let start = tokio::time::Instant::now();
    let step = Duration::from_secs_f64(1.0 / rate);
    let mut tasks = Vec::with_capacity(count);
    let mut last_start = start;
    for i in 0..count {
        tokio::time::sleep_until(start + step * i as u32).await;
        last_start = tokio::time::Instant::now();
        tasks.push(tokio::spawn(call(i)));
    }
    let offered_for = last_start.duration_since(start).as_secs_f64();
    let mut results = Vec::with_capacity(count);
    for t in tasks {
        if let Ok(r) = t.await {
            results.push(r);
        }
    }
    OpenLoop {
        achieved_rate: if offered_for > 0.0 {
            (count.saturating_sub(1)) as f64 / offered_for
        } else {
            0.0
        },
        results,
    }
}

/// What a server's metrics say about its capture batches so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchStats {
    /// Captures written, and the transactions they were written in.
    pub captures: f64,
    pub batches: f64,
    /// SQLite: seconds of the capture transactions' work (statements) and of their commits.
    pub work_seconds: f64,
    pub commit_seconds: f64,
}

impl std::ops::Sub for BatchStats {
    type Output = BatchStats;

    fn sub(self, earlier: BatchStats) -> BatchStats {
        BatchStats {
            captures: self.captures - earlier.captures,
            batches: self.batches - earlier.batches,
            work_seconds: self.work_seconds - earlier.work_seconds,
            commit_seconds: self.commit_seconds - earlier.commit_seconds,
        }
    }
}

/// The capture batch figures from the server's metrics.
pub async fn batch_stats(client: &reqwest::Client, server: &Server) -> BenchResult<BatchStats> {
    let metrics = client
        .get(format!("{}/metrics", server.base))
        .bearer_auth(METRICS)
        .send()
        .await?
        .text()
        .await?;
    // The value of the first sample whose name (and labels, if any) start with `prefix`.
    let stat = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(BatchStats {
        captures: stat("capture_batch_size_sum"),
        batches: stat("capture_batch_size_count"),
        work_seconds: stat(r#"sqlite_write_seconds_sum{what="capture",part="work"}"#),
        commit_seconds: stat(r#"sqlite_write_seconds_sum{what="capture",part="commit"}"#),
    })
}

/// The PostgreSQL server the benchmarks use (`LEADTRAIL_TEST_POSTGRES_URL`, else this
/// project's local one).
pub fn postgres_admin_url() -> String {
    std::env::var("LEADTRAIL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh PostgreSQL database, dropped by `drop_now`.
pub struct Database {
    name: String,
    pub url: String,
}

impl Database {
    pub async fn create(label: &str) -> BenchResult<Database> {
        use sqlx::Connection;
        let admin = postgres_admin_url();
        let name = format!("lt_bench_{}_{label}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Ok(Database {
            url: format!("{base}/{name}"),
            name,
        })
    }

    pub async fn drop_now(self) {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut conn)
            .await;
        }
    }
}
