//! The Grafana dashboards and the alert rules are real. A real Prometheus
//! scrapes an in-process ingress and processor (on the real Kafka and CQL
//! database) every second while signed webhooks flow through them, and every
//! PromQL expression is sent to it: each dashboard query must return data,
//! each alert rule must load, evaluate without error and parse. `promtool`
//! checks the rule file, runs its unit tests and checks the compose
//! Prometheus config.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use inboxflow_tests::ingress::{
    ACME_PHONE, GLOBEX_PHONES, TEST_REGISTRY, TestIngress, TestTopics, kapso_message_body,
    spawn_ingress_with,
};
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::prometheus::{Target, TestPrometheus, binary, promtool, repo_root};
use inboxflow_tests::webhooks::{Inbound, Status, meta_body};
use inboxflow_tests::{kafka, poll};
use processor::app::RunningProcessor;
use serde_json::Value;
use shared::record;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(120);
const DASHBOARDS: &str = "deploy/grafana/dashboards";
const ALERTS: &str = "deploy/prometheus/alerts.yml";
/// Grafana's built-in variables, as a short test sees them: `[1m]` holds
/// sixty one-second scrapes.
const BUILTINS: &[(&str, &str)] = &[
    ("__rate_interval", "1m"),
    ("__interval", "1m"),
    ("__interval_ms", "60000"),
    ("__range", "5m"),
    ("__range_s", "300"),
    ("__range_ms", "300000"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_and_every_alert_rule_evaluates_on_live_metrics()
-> anyhow::Result<()> {
    // Arrange: a processor and an ingress sharing fresh topics, scraped by Prometheus.
    binary("prometheus")?;
    let queries = dashboard_queries()?;
    let env = ProcessorEnv::new(2).await?;
    let mut cfg = env.cfg.clone();
    cfg.admin_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let processor = RunningProcessor::start(cfg).await?;
    let topics = TestTopics {
        routed: env.cfg.kafka.webhook_topic.clone(),
        unrouted: env.cfg.kafka.unrouted_topic.clone(),
        dead_letter: env.cfg.kafka.dead_letter_topic.clone(),
    };
    let ingress = spawn_ingress_with(TEST_REGISTRY, topics, |c| c).await?;
    let processor_admin = processor
        .admin_addr
        .context("the processor has no admin server")?;
    let targets = [
        Target {
            job: "ingress",
            address: format!("127.0.0.1:{}", ingress.admin_port),
        },
        Target {
            job: "processor",
            address: processor_admin.to_string(),
        },
    ];
    let prometheus = TestPrometheus::start(&targets, &[repo_root().join(ALERTS)]).await?;
    prometheus.wait_for_targets(targets.len(), WAIT).await?;

    // Act: webhooks keep flowing while the queries are polled, so that every
    // rate has increases between scrapes.
    let (stop, stopped) = watch::channel(false);
    let (statuses, checked) = tokio::join!(drive_traffic(&ingress, &env, stopped), async {
        let dashboards = expect_data(&prometheus, &queries).await;
        let rules = expect_rules_evaluated(&prometheus).await;
        let coverage = expect_every_metric_charted(&prometheus, &queries).await;
        let _ = stop.send(true);
        dashboards.and(rules).and(coverage)
    });

    // Assert
    checked?;
    let statuses = statuses?;
    assert!(
        statuses.get(&200).copied().unwrap_or(0) >= 10,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&401).copied().unwrap_or(0) >= 1,
        "{statuses:?}"
    );
    processor.stop().await?;
    ingress.shutdown().await?;
    env.cleanup().await
}

#[test]
fn promtool_accepts_the_rules_their_unit_tests_and_the_compose_prometheus_config()
-> anyhow::Result<()> {
    let rules = promtool(&["check", "rules", ALERTS])?;
    assert!(rules.contains("SUCCESS"), "{rules}");
    let tests = promtool(&["test", "rules", "deploy/prometheus/alerts_test.yml"])?;
    assert!(tests.contains("SUCCESS"), "{tests}");
    // Syntax and rule files; the docker DNS names are only resolved at run time.
    let config = promtool(&["check", "config", "deploy/prometheus/prometheus.yml"])?;
    assert!(config.contains("SUCCESS"), "{config}");
    Ok(())
}

#[test]
fn dashboards_are_well_formed_and_provisioned_where_compose_mounts_them() -> anyhow::Result<()> {
    let root = repo_root();
    let mut uids = BTreeSet::new();
    for (file, dashboard) in dashboards()? {
        let uid = dashboard["uid"].as_str().unwrap_or_default().to_owned();
        ensure!(
            !uid.is_empty() && uids.insert(uid.clone()),
            "{file}: missing or repeated uid {uid:?}"
        );
        let mut ids = BTreeSet::new();
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or_default();
            ensure!(
                ids.insert(panel["id"].as_i64()),
                "{file}: repeated panel id in {title:?}"
            );
            let x = panel["gridPos"]["x"].as_i64().unwrap_or(-1);
            let w = panel["gridPos"]["w"].as_i64().unwrap_or(0);
            ensure!(
                x >= 0 && w > 0 && x + w <= 24,
                "{file}: {title:?} is off the 24-column grid"
            );
            if panel["type"] == "row" {
                continue;
            }
            ensure!(
                panel["datasource"]["uid"] == "${datasource}",
                "{file}: {title:?} must use $datasource"
            );
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            ensure!(!targets.is_empty(), "{file}: {title:?} has no query");
            let refs: BTreeSet<&str> = targets.iter().filter_map(|t| t["refId"].as_str()).collect();
            ensure!(
                refs.len() == targets.len(),
                "{file}: {title:?} has missing or repeated refIds"
            );
        }
        for var in variables(&dashboard) {
            if var["includeAll"] == true {
                ensure!(
                    var["allValue"].is_string(),
                    "{file}: variable {} needs an allValue",
                    var["name"]
                );
            }
        }
    }
    let provider =
        std::fs::read_to_string(root.join("deploy/grafana/provisioning/dashboards/inboxflow.yml"))?;
    let compose = std::fs::read_to_string(root.join("deploy/docker-compose.yml"))?;
    ensure!(
        provider.contains("path: /etc/grafana/dashboards/inboxflow"),
        "provider path changed"
    );
    ensure!(
        compose.contains("./grafana/dashboards:/etc/grafana/dashboards/inboxflow:ro"),
        "docker-compose.yml must mount the dashboards where the provider reads them"
    );
    let home = "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH: /etc/grafana/dashboards/inboxflow/";
    let home_file = compose
        .lines()
        .find_map(|l| l.trim().strip_prefix(home))
        .context("docker-compose.yml sets no Grafana home dashboard")?;
    ensure!(
        root.join(DASHBOARDS).join(home_file).is_file(),
        "home dashboard {home_file} does not exist"
    );
    Ok(())
}

// ------------------------------------------------------------ dashboards ---

/// One PromQL query of one panel, Grafana variables already substituted.
#[derive(Debug, Clone)]
struct PanelQuery {
    place: String,
    promql: String,
}

fn dashboards() -> anyhow::Result<Vec<(String, Value)>> {
    let dir = repo_root().join(DASHBOARDS);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    ensure!(
        files.len() >= 3,
        "expected the overview, ingress and processor dashboards in {}",
        dir.display()
    );
    files
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path)?;
            let json =
                serde_json::from_str(&text).with_context(|| format!("{name} is not JSON"))?;
            Ok((name, json))
        })
        .collect()
}

/// Every panel, including those inside collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

fn variables(dashboard: &Value) -> Vec<&Value> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect()
}

/// Every query of every dashboard, with `$__rate_interval` and friends and
/// each variable's "All" value substituted, as Grafana would send it.
fn dashboard_queries() -> anyhow::Result<Vec<PanelQuery>> {
    let mut out = Vec::new();
    for (file, dashboard) in dashboards()? {
        let mut values: Vec<(String, String)> = BUILTINS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        for var in variables(&dashboard)
            .into_iter()
            .filter(|v| v["type"] == "query")
        {
            let name = var["name"].as_str().unwrap_or_default().to_owned();
            let all = var["allValue"]
                .as_str()
                .with_context(|| format!("{file}: ${name} has no allValue"))?;
            values.push((name, all.to_owned()));
        }
        // Longest names first, so that `$__range` never eats `$__range_s`.
        values.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let Some(expr) = target["expr"].as_str() else {
                    continue;
                };
                let mut promql = expr.to_owned();
                for (name, value) in &values {
                    for form in [
                        format!("${{{name}:regex}}"),
                        format!("${{{name}}}"),
                        format!("${name}"),
                    ] {
                        promql = promql.replace(&form, value);
                    }
                }
                let place = format!("{file} / {} / {}", panel["title"], target["refId"]);
                ensure!(!promql.contains('$'), "{place}: unknown variable in {expr}");
                out.push(PanelQuery { place, promql });
            }
        }
    }
    Ok(out)
}

/// Each query must parse at once, and return a finite sample before the deadline.
async fn expect_data(prometheus: &TestPrometheus, queries: &[PanelQuery]) -> anyhow::Result<()> {
    let mut rejected = Vec::new();
    for q in queries {
        if let Err(e) = prometheus.query(&q.promql).await {
            rejected.push(format!("{}: {e:#}\n    {}", q.place, q.promql));
        }
    }
    ensure!(
        rejected.is_empty(),
        "Prometheus rejects dashboard queries:\n{}",
        rejected.join("\n")
    );
    let pending = Mutex::new(queries.to_vec());
    poll::until("every dashboard query to return data", WAIT, || async {
        let waiting: Vec<PanelQuery> = pending
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .clone();
        let mut still = Vec::new();
        for q in waiting {
            if !prometheus.query(&q.promql).await?.has_data() {
                still.push(q);
            }
        }
        if still.is_empty() {
            return Ok(Some(()));
        }
        let report: Vec<String> = still
            .iter()
            .map(|q| format!("{}: {}", q.place, q.promql))
            .collect();
        *pending.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = still;
        tokio::time::sleep(Duration::from_millis(500)).await;
        bail!("no data yet for:\n{}", report.join("\n"))
    })
    .await
}

// ----------------------------------------------------------------- rules ---

/// Every rule of alerts.yml is loaded and evaluated without error, and its
/// expression, as Prometheus parsed it, is accepted by the query API.
async fn expect_rules_evaluated(prometheus: &TestPrometheus) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(repo_root().join(ALERTS))?;
    let expected: BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            l.strip_prefix("- alert:")
                .or_else(|| l.strip_prefix("- record:"))
        })
        .map(|name| name.trim().to_owned())
        .collect();
    ensure!(
        expected.len() >= 5,
        "found only {} rules in {ALERTS}",
        expected.len()
    );
    let rules = poll::until("every alert rule evaluated", WAIT, || async {
        let rules = prometheus.rules().await?;
        let names: BTreeSet<String> = rules.iter().map(|r| r.name.clone()).collect();
        let failing: Vec<String> = rules
            .iter()
            .filter(|r| r.health != "ok")
            .map(|r| format!("{} ({}: {})", r.name, r.health, r.last_error))
            .collect();
        if names == expected && failing.is_empty() {
            return Ok(Some(rules));
        }
        bail!("loaded {names:?}, expected {expected:?}; not ok: {failing:?}")
    })
    .await?;
    for rule in rules {
        prometheus
            .query(&rule.query)
            .await
            .with_context(|| format!("alert {}: {}", rule.name, rule.query))?;
    }
    Ok(())
}

/// Every metric the two services export appears in some dashboard query.
async fn expect_every_metric_charted(
    prometheus: &TestPrometheus,
    queries: &[PanelQuery],
) -> anyhow::Result<()> {
    let names = prometheus
        .query("count by (__name__) ({__name__=~\"inboxflow_.+\"})")
        .await?;
    let uncharted: BTreeSet<String> = names
        .samples
        .iter()
        .filter_map(|(labels, _)| labels.get("__name__").and_then(Value::as_str))
        .map(|n| {
            n.trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count")
                .to_owned()
        })
        .filter(|base| !queries.iter().any(|q| q.promql.contains(base.as_str())))
        .collect();
    ensure!(
        uncharted.is_empty(),
        "metrics on no dashboard: {uncharted:?}"
    );
    Ok(())
}

// --------------------------------------------------------------- traffic ---

/// Sends webhooks every 250 ms until `stop` (at most 600 rounds): valid Meta
/// and Kapso deliveries, repeats (duplicates), bad signatures, unparseable
/// bodies (ingress dead letters), unknown numbers (unrouted), unknown message
/// types (skipped events) and poison records written straight to the webhook
/// topic (processor dead letters); rewrites the registry once (a reload).
/// Returns how many responses had each status.
async fn drive_traffic(
    ingress: &TestIngress,
    env: &ProcessorEnv,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<BTreeMap<u16, usize>> {
    let producer = kafka::producer()?;
    let mut statuses = BTreeMap::new();
    let mut previous = Vec::new();
    for round in 0..600usize {
        if *stop.borrow() {
            break;
        }
        let id = format!("wamid.dash.{round}");
        let sender = format!("55119000000{:02}", round % 3);
        let status = Status {
            id: format!("wamid.dash.{}", round.saturating_sub(1)),
            status: "delivered",
            timestamp: 1_700_000_100 + round as i64,
            recipient: sender.clone(),
        };
        let body = meta_body(
            ACME_PHONE,
            &[Inbound::new(id, sender, 1_700_000_000 + round as i64)],
            &[status],
        );
        let mut responses = vec![
            ingress.post_meta(&body).await?,
            ingress
                .post_kapso(&kapso_message_body(GLOBEX_PHONES[0], "hello"))
                .await?,
        ];
        match round % 5 {
            0 if !previous.is_empty() => responses.push(ingress.post_meta(&previous).await?),
            1 => responses.push(
                ingress
                    .kapso_request_with_signature("/webhooks/kapso", &body, &"0".repeat(64))
                    .send()
                    .await?,
            ),
            _ => {}
        }
        match round % 10 {
            2 => responses.push(ingress.post_kapso(b"not json {").await?),
            3 => responses.push(
                ingress
                    .post_kapso(&kapso_message_body("999000000000009", "who"))
                    .await?,
            ),
            4 => responses.push(ingress.post_meta(&unknown_message_type_body(round)).await?),
            5 => {
                let headers = [
                    (record::SCHEMA_VERSION_HEADER, "1"),
                    (record::SOURCE_HEADER, "meta"),
                ];
                kafka::produce(
                    &producer,
                    &env.cfg.kafka.webhook_topic,
                    "ws_acme",
                    b"poison",
                    &headers,
                )
                .await?;
            }
            _ => {}
        }
        if round == 3 {
            ingress.write_registry(&format!(
                "{TEST_REGISTRY}\n# reloaded by the dashboards test\n"
            ))?;
        }
        for r in responses {
            *statuses.entry(r.status().as_u16()).or_insert(0) += 1;
        }
        previous = body;
        let _ = tokio::time::timeout(Duration::from_millis(250), stop.changed()).await;
    }
    Ok(statuses)
}

/// A Meta body whose only message has a type inboxflow does not model.
fn unknown_message_type_body(round: usize) -> Vec<u8> {
    let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "waba-1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": ACME_PHONE},
            "messages": [{"from": "5511900000001", "id": format!("wamid.hologram.{round}"),
                          "timestamp": "1700000000", "type": "hologram"}]}}]}]});
    serde_json::to_vec(&body).unwrap_or_default()
}
