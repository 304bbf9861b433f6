//! Metrics: the Prometheus recorder behind `GET /metrics`, and the names of every metric the
//! facade records, in one place. Label values are bounded (route templates, decision names,
//! status codes), never ids.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "syncjob_http_requests_total";
pub const HTTP_DURATION: &str = "syncjob_http_request_duration_seconds";
pub const START_DECISIONS: &str = "syncjob_start_decisions_total";
pub const GRAPH_REQUESTS: &str = "syncjob_graph_requests_total";
pub const GRAPH_DURATION: &str = "syncjob_graph_request_duration_seconds";
pub const GRAPH_TOKEN_CACHE: &str = "syncjob_graph_token_cache_total";
pub const GRAPH_TOKEN_REFRESHES: &str = "syncjob_graph_token_refreshes_total";
pub const GRAPH_CIRCUIT_STATE: &str = "syncjob_graph_circuit_state";
pub const GRAPH_CIRCUIT_OPENED: &str = "syncjob_graph_circuit_opened_total";
pub const JWKS_FETCHES: &str = "syncjob_jwks_fetches_total";
pub const GUARD_STORE_ERRORS: &str = "syncjob_guard_store_errors_total";
pub const WEBHOOK_DELIVERIES: &str = "syncjob_webhook_deliveries_total";
pub const RATE_LIMITED: &str = "syncjob_rate_limited_total";
pub const LOAD_SHED: &str = "syncjob_load_shed_total";
pub const JOB_READS: &str = "syncjob_job_reads_total";
pub const CONNECTIONS_OPEN: &str = "syncjob_http_connections_open";
pub const CONNECTIONS_CLOSED: &str = "syncjob_http_connections_closed_total";

/// One metric family as emitted: its name, its type, and its labels, each with the values it
/// takes when they are a fixed set (`None`: route templates, status codes).
pub struct Family {
    pub name: &'static str,
    pub kind: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    pub labels: &'static [(&'static str, Option<&'static [&'static str]>)],
}

/// Every metric the facade emits, for the README's table and the test that holds the two to
/// each other.
pub const FAMILIES: &[Family] = &[
    Family {
        name: HTTP_REQUESTS,
        kind: "counter",
        help: "HTTP requests answered, by route template, method and status",
        labels: &[
            ("route", None),
            (
                "method",
                Some(&[
                    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other",
                ]),
            ),
            ("status", None),
        ],
    },
    Family {
        name: HTTP_DURATION,
        kind: "histogram",
        help: "HTTP request duration, by route template",
        labels: &[("route", None)],
    },
    Family {
        name: START_DECISIONS,
        kind: "counter",
        help: "Start decisions: forwarded, denied, cooldown, active, coalesced, replayed, whatIf, failed",
        labels: &[(
            "decision",
            Some(&[
                "forwarded",
                "denied",
                "cooldown",
                "active",
                "whatIf",
                "failed",
                "coalesced",
                "replayed",
            ]),
        )],
    },
    Family {
        name: GRAPH_REQUESTS,
        kind: "counter",
        help: "Calls to Graph, by operation and status (or timeout / unreachable)",
        labels: &[("operation", Some(GRAPH_OPERATIONS)), ("status", None)],
    },
    Family {
        name: GRAPH_DURATION,
        kind: "histogram",
        help: "Graph call duration per attempt, by operation",
        labels: &[("operation", Some(GRAPH_OPERATIONS))],
    },
    Family {
        name: GRAPH_TOKEN_CACHE,
        kind: "counter",
        help: "Graph token lookups: hit or miss",
        labels: &[("result", Some(&["hit", "miss"]))],
    },
    Family {
        name: GRAPH_TOKEN_REFRESHES,
        kind: "counter",
        help: "Graph token requests to Entra, by kind (app, on_behalf_of) and result",
        labels: &[
            ("kind", Some(&["app", "on_behalf_of"])),
            ("result", Some(&["ok", "error"])),
        ],
    },
    Family {
        name: GRAPH_CIRCUIT_STATE,
        kind: "gauge",
        help: "Graph circuit breaker: 0 closed, 1 half-open, 2 open",
        labels: &[],
    },
    Family {
        name: GRAPH_CIRCUIT_OPENED,
        kind: "counter",
        help: "Times the Graph circuit breaker opened",
        labels: &[],
    },
    Family {
        name: JWKS_FETCHES,
        kind: "counter",
        help: "Signing key set fetches, by result",
        labels: &[("result", Some(&["ok", "error"]))],
    },
    Family {
        name: GUARD_STORE_ERRORS,
        kind: "counter",
        help: "Guard store (memory or Redis) operations that failed",
        labels: &[],
    },
    Family {
        name: WEBHOOK_DELIVERIES,
        kind: "counter",
        help: "Webhook deliveries: accepted, replayed, or retry (a redelivery asked for)",
        labels: &[("result", Some(&["accepted", "replayed", "retry"]))],
    },
    Family {
        name: RATE_LIMITED,
        kind: "counter",
        help: "Requests refused by the per-caller rate limit",
        labels: &[],
    },
    Family {
        name: LOAD_SHED,
        kind: "counter",
        help: "Requests shed by the global concurrency limit",
        labels: &[],
    },
    Family {
        name: JOB_READS,
        kind: "counter",
        help: "Job reads answered, by cache: hit (no Graph call), miss (one Graph call), off",
        labels: &[("cache", Some(&["hit", "miss", "off"]))],
    },
    Family {
        name: CONNECTIONS_OPEN,
        kind: "gauge",
        help: "Client connections open",
        labels: &[],
    },
    Family {
        name: CONNECTIONS_CLOSED,
        kind: "counter",
        help: "Client connections closed by the facade: header_timeout (request head too slow), idle",
        labels: &[("reason", Some(&["header_timeout", "idle"]))],
    },
];

/// The `operation` label of Graph calls.
pub const GRAPH_OPERATIONS: &[&str] =
    &["start", "get_job", "owners", "resolve_app_id", "list_jobs"];

/// A log writer that keeps what is written, for tests that read log lines.
#[cfg(test)]
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Longest caller-chosen value written into a log line, in characters.
pub const LOGGED_VALUE_MAX: usize = 256;

/// A caller-chosen value as it may appear in a log line, in either format: cut to
/// `LOGGED_VALUE_MAX` characters (marked with `…`) and with control characters, quotes and
/// backslashes escaped, so that no value can end a line, colour a terminal or forge an entry.
pub fn shown(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(LOGGED_VALUE_MAX) + 8);
    for (count, c) in value.chars().enumerate() {
        if count == LOGGED_VALUE_MAX {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

/// Seconds; from a fast cache hit to a slow Graph call.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide recorder (installed on first use; metrics are global to the process).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .expect("buckets are not empty");
        let handle = match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (an embedding program's): render an empty registry.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        };
        describe();
        handle
    })
}

fn describe() {
    for &Family {
        name, kind, help, ..
    } in FAMILIES
    {
        match kind {
            "counter" => metrics::describe_counter!(name, help),
            "gauge" => metrics::describe_gauge!(name, help),
            _ => metrics::describe_histogram!(name, metrics::Unit::Seconds, help),
        }
    }
}

/// Prometheus text exposition.
pub fn render() -> String {
    let handle = prometheus();
    handle.run_upkeep();
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_values_are_escaped_and_cut() {
        assert_eq!(shown("kid\r\n\u{1b}[31maudit"), "kid\\r\\n\\u{1b}[31maudit");
        let long = "a".repeat(60_000);
        let cut = shown(&long);
        assert_eq!(cut.chars().count(), LOGGED_VALUE_MAX + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(shown("plain-value"), "plain-value");
    }

    /// Every `"label" => "value"` written at a metrics call in the sources is in `FAMILIES`.
    #[test]
    fn every_label_value_in_the_code_is_catalogued() {
        let mut sources = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        let mut files = Vec::new();
        while let Some(path) = sources.pop() {
            for entry in std::fs::read_dir(&path).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if !path.ends_with("emulator") {
                        sources.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let mut checked = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for line in text
                .lines()
                .filter(|l| l.contains("metrics::") && l.contains("=>"))
            {
                for pair in line.split(", \"").skip(1) {
                    let Some((label, rest)) = pair.split_once("\" => \"") else {
                        continue;
                    };
                    let value = rest.split('"').next().unwrap();
                    let known = FAMILIES.iter().any(|family| {
                        family.labels.iter().any(|(name, values)| {
                            *name == label && values.is_some_and(|v| v.contains(&value))
                        })
                    });
                    assert!(
                        known,
                        "{}: {label} = {value} is not in FAMILIES",
                        file.display()
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 5, "the scan found the metrics calls ({checked})");
    }
}
