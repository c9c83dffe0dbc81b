//! What one run measured ([`Report`]), and the markdown table `docs/benchmarks.md` shows.

use std::collections::BTreeMap;
use std::time::Duration;

use reviewapp_testkit::RequestRecord;

use crate::MIN_WRITES;

/// Latency distribution, in milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Latency {
    /// 50th percentile.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The slowest sample.
    pub max: f64,
}

impl Latency {
    /// The distribution of `samples` (all zero when there are none).
    pub(crate) fn of(mut samples: Vec<Duration>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1].as_secs_f64() * 1000.0
        };
        Latency {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Requests the operator sent during a phase.
#[derive(Clone, Debug, Default)]
pub struct Requests {
    /// GET requests that are not watches (gets and lists).
    pub reads: usize,
    /// Watch requests (streams opened).
    pub watches: usize,
    /// POST, PUT, PATCH, DELETE.
    pub writes: usize,
    /// POST of a build Job.
    pub job_creates: usize,
    /// Reads and writes by method and resource, e.g. `PATCH deployments` (to explain a number).
    pub by: BTreeMap<String, usize>,
}

impl Requests {
    /// Counts the requests of `log`.
    pub(crate) fn of(log: &[RequestRecord]) -> Requests {
        let mut out = Requests::default();
        for r in log {
            if r.watch {
                out.watches += 1;
            } else if r.is_write() {
                out.writes += 1;
                if r.method == "POST" && r.path.ends_with("/jobs") {
                    out.job_creates += 1;
                }
            } else {
                out.reads += 1;
            }
            if !r.watch {
                *out.by
                    .entry(format!("{} {}", r.method, resource_of(&r.path)))
                    .or_default() += 1;
            }
        }
        out
    }
}

/// The plural (and subresource) a request path addresses.
fn resource_of(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    // /api/v1/namespaces/ns/plural[/name[/sub]] or /apis/g/v/namespaces/ns/plural[/name[/sub]]
    let rest = match parts.first() {
        Some(&"api") => &parts[2.min(parts.len())..],
        _ => &parts[3.min(parts.len())..],
    };
    let rest = if rest.first() == Some(&"namespaces") && rest.len() > 2 {
        &rest[2..]
    } else {
        rest
    };
    match rest {
        [plural, _, sub] => format!("{plural}/{sub}"),
        [plural, ..] => (*plural).to_string(),
        [] => path.to_string(),
    }
}

/// The operator process's resource use (`None` when it ran in-process).
#[derive(Clone, Debug, Default)]
pub struct Usage {
    /// Peak resident set (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// User + system CPU time, seconds.
    pub cpu_seconds: f64,
}

/// Everything one run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The number of ReviewApps (N).
    pub apps: usize,
    /// ReviewApp created → its 6 children exist (burst of N creates).
    pub create_to_applied: Latency,
    /// First create → last app fully applied.
    pub create_burst: Duration,
    /// Build finished → Deployment at 1 replica with the built image, one build at a time.
    pub deploy_sequential: Latency,
    /// The same, N builds finishing in a burst.
    pub deploy_burst: Latency,
    /// First build finished → last app deployed, in the burst.
    pub deploy_burst_total: Duration,
    /// Requests per lifecycle phase (create, deploy, push, redeploy, delete).
    pub phases: Vec<(String, Requests)>,
    /// Restart: time until `/readyz` answered 200.
    pub restart_ready: Duration,
    /// Restart: time until every app's ADD was handled.
    pub restart_converged: Duration,
    /// Requests from the restart until every ADD was handled (and 1 s more).
    pub restart_requests: Requests,
    /// Idle window: its length, the RECONCILE events handled in it, and its requests.
    pub idle_window: Duration,
    /// RECONCILE events handled in the idle window.
    pub idle_reconciles: u64,
    /// Requests in the idle window.
    pub idle_requests: Requests,
    /// Operator process during create → redeploy (`None`: in-process daemon).
    pub lifecycle_usage: Option<Usage>,
    /// Operator process during restart + convergence.
    pub restart_usage: Option<Usage>,
    /// Operator process during the idle window (CPU only of the window).
    pub idle_usage: Option<Usage>,
}

impl Report {
    /// Writes per app over one lifecycle, and the minimum.
    pub fn lifecycle_writes_per_app(&self) -> (f64, usize) {
        let writes: usize = self.phases.iter().map(|(_, r)| r.writes).sum();
        (self.per_app(writes), minimum_writes())
    }

    /// Reads per app over one lifecycle.
    pub fn lifecycle_reads_per_app(&self) -> f64 {
        let reads: usize = self.phases.iter().map(|(_, r)| r.reads).sum();
        self.per_app(reads)
    }

    /// Idle writes per hour at the real 30 s tick: writes per full tick of all apps × 120.
    pub fn idle_writes_per_hour(&self) -> f64 {
        let ticks = self.idle_reconciles as f64 / self.apps.max(1) as f64;
        if ticks == 0.0 {
            return self.idle_requests.writes as f64 * 120.0;
        }
        self.idle_requests.writes as f64 / ticks * 120.0
    }

    /// `count` divided by the number of apps.
    fn per_app(&self, count: usize) -> f64 {
        count as f64 / self.apps.max(1) as f64
    }
}

/// The fewest writes one lifecycle can take.
fn minimum_writes() -> usize {
    MIN_WRITES.iter().map(|(_, w)| w).sum()
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn mib(usage: &Option<Usage>) -> String {
    usage.as_ref().map_or("n/a".into(), |u| {
        format!("{:.1}", u.peak_rss_kib as f64 / 1024.0)
    })
}

fn cpu(usage: &Option<Usage>) -> String {
    usage
        .as_ref()
        .map_or("n/a".into(), |u| format!("{:.2}", u.cpu_seconds))
}

fn p50_p99_max(l: &Latency) -> String {
    format!("{:.1} / {:.1} / {:.1}", l.p50, l.p99, l.max)
}

/// A table with a row per metric and a column per report.
struct Table<'r> {
    reports: &'r [Report],
    rows: Vec<(String, Vec<String>)>,
}

impl Table<'_> {
    /// Adds the row `name`, its cell for each report computed by `cell`.
    fn row(&mut self, name: &str, cell: impl Fn(&Report) -> String) {
        let cells = self.reports.iter().map(cell).collect();
        self.rows.push((name.to_string(), cells));
    }

    /// Build → deployed and create → applied latencies.
    fn latency_rows(&mut self) {
        self.row(
            "build finished → deployed, one at a time: p50 / p99 / max (ms)",
            |r| p50_p99_max(&r.deploy_sequential),
        );
        self.row(
            "build finished → deployed, N at once: p50 / p99 / max (ms)",
            |r| p50_p99_max(&r.deploy_burst),
        );
        self.row("N builds finished at once → last deployed (ms)", |r| {
            ms(r.deploy_burst_total)
        });
        self.row(
            "created → 6 children applied, N at once: p50 / p99 (ms)",
            |r| {
                let l = &r.create_to_applied;
                format!("{:.1} / {:.1}", l.p50, l.p99)
            },
        );
        self.row("burst of N creates: all applied (ms) / apps per s", |r| {
            let s = r.create_burst.as_secs_f64();
            let rate = if s > 0.0 { r.apps as f64 / s } else { 0.0 };
            format!("{} / {rate:.0}", ms(r.create_burst))
        });
    }

    /// Writes, reads and watches of one lifecycle.
    fn request_rows(&mut self) {
        self.row(
            &format!(
                "writes per app per lifecycle (minimum {})",
                minimum_writes()
            ),
            |r| {
                let (w, min) = r.lifecycle_writes_per_app();
                format!("{w:.2} (min {min})")
            },
        );
        for (i, (phase, min)) in MIN_WRITES.iter().enumerate() {
            self.row(&format!("  writes per app: {phase} (minimum {min})"), |r| {
                r.phases
                    .get(i)
                    .map_or("n/a".into(), |(_, q)| format!("{:.2}", r.per_app(q.writes)))
            });
        }
        self.row("reads (GET/LIST) per app per lifecycle", |r| {
            format!("{:.2}", r.lifecycle_reads_per_app())
        });
        self.row("watch requests during the lifecycle (total)", |r| {
            let watches: usize = r.phases.iter().map(|(_, q)| q.watches).sum();
            watches.to_string()
        });
    }

    /// The idle window.
    fn idle_rows(&mut self) {
        self.row("idle: writes in window / RECONCILEs handled", |r| {
            format!(
                "{} / {} in {:.0} s",
                r.idle_requests.writes,
                r.idle_reconciles,
                r.idle_window.as_secs_f64()
            )
        });
        self.row("idle: writes per hour at the 30 s tick", |r| {
            format!("{:.0}", r.idle_writes_per_hour())
        });
        self.row("idle: reads per app per tick", |r| {
            let ticks = r.idle_reconciles as f64;
            if ticks == 0.0 {
                "n/a".into()
            } else {
                format!("{:.2}", r.idle_requests.reads as f64 / ticks)
            }
        });
    }

    /// The restart.
    fn restart_rows(&mut self) {
        self.row("restart: until /readyz 200 (ms)", |r| ms(r.restart_ready));
        self.row("restart: until every ADD handled (ms)", |r| {
            ms(r.restart_converged)
        });
        self.row("restart: builds started / writes", |r| {
            let q = &r.restart_requests;
            format!("{} / {}", q.job_creates, q.writes)
        });
        self.row("restart: reads / watch requests", |r| {
            let q = &r.restart_requests;
            format!("{} / {}", q.reads, q.watches)
        });
    }

    /// Memory and CPU of the operator process.
    fn usage_rows(&mut self) {
        self.row("operator peak RSS, create → redeploy (MiB)", |r| {
            mib(&r.lifecycle_usage)
        });
        self.row("operator CPU time, create → redeploy (s)", |r| {
            cpu(&r.lifecycle_usage)
        });
        self.row(
            "operator peak RSS / CPU, restart → converged (MiB / s)",
            |r| format!("{} / {}", mib(&r.restart_usage), cpu(&r.restart_usage)),
        );
        self.row("operator CPU time in the idle window (s)", |r| {
            cpu(&r.idle_usage)
        });
    }

    /// The table in markdown, a column per report headed `N = <apps>`.
    fn render(&self) -> String {
        let mut out = String::from("| metric |");
        for r in self.reports {
            out.push_str(&format!(" N = {} |", r.apps));
        }
        out.push_str("\n|---|");
        for _ in self.reports {
            out.push_str("---|");
        }
        out.push('\n');
        for (name, cells) in &self.rows {
            out.push_str(&format!("| {name} | {} |\n", cells.join(" | ")));
        }
        out
    }
}

/// The reports as one markdown table (a column per N).
pub fn markdown(reports: &[Report]) -> String {
    let mut table = Table {
        reports,
        rows: Vec::new(),
    };
    table.latency_rows();
    table.request_rows();
    table.idle_rows();
    table.restart_rows();
    table.usage_rows();
    table.render()
}

/// Requests (reads and writes, no watches) by method and resource, per phase, per app (to
/// explain the counts).
pub fn request_breakdown(report: &Report) -> String {
    let mut out = format!("requests per app by phase at N = {}:\n", report.apps);
    for (phase, q) in &report.phases {
        let parts: Vec<String> =
            q.by.iter()
                .map(|(k, v)| format!("{k} {:.2}", report.per_app(*v)))
                .collect();
        out.push_str(&format!("  {phase}: {}\n", parts.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_path_names_its_resource() {
        assert_eq!(
            resource_of("/apis/apps/v1/namespaces/ns/deployments/web"),
            "deployments"
        );
        assert_eq!(
            resource_of("/apis/g/v1/reviewapps/app-1/status"),
            "reviewapps/status"
        );
        assert_eq!(resource_of("/api/v1/namespaces/ns/secrets"), "secrets");
    }

    #[test]
    fn latency_percentiles_are_nearest_rank() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(samples);
        assert_eq!((l.p50, l.p99, l.max), (50.0, 99.0, 100.0));
        assert_eq!(Latency::of(Vec::new()).max, 0.0);
    }
}
