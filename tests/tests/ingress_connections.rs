//! Connections, not requests: one client cannot take every connection slot
//! (its connections beyond `max_connections_per_client` get a fast 503 while
//! another client is served), a 401 closes its connection, and the admin
//! listener binds loopback by default, has its own connection cap and cannot
//! hold up shutdown with an idle connection.
//! (ingress_reject.rs covers the global `max_connections` cap.)
//!
//! Nothing here waits on a timer: answers are awaited with a generous
//! deadline, or polled with [`poll::until`]; durations are printed, never
//! asserted.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use inboxflow_tests::ingress::{
    ACME_PHONE, KAPSO_SECRET, TEST_REGISTRY, TestIngress, TestTopics, kapso_message_body,
    metric_value, metrics_text, spawn_ingress_with,
};
use inboxflow_tests::poll;
use inboxflow_tests::raw_http::{
    Observed, connect_from, get_and_close, has_header, has_header_named, read_until_closed,
    status_of,
};
use ingress::IngressConfig;
use shared::signing::kapso_signature;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A deadline for answers that should come at once; generous for CI.
const DEADLINE: Duration = Duration::from_secs(20);
const ONE_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

async fn ingress(
    adjust: impl FnOnce(IngressConfig) -> IngressConfig,
) -> anyhow::Result<TestIngress> {
    spawn_ingress_with(TEST_REGISTRY, TestTopics::create().await?, adjust).await
}

fn rejected(metrics: &str, listener: &str, reason: &str) -> f64 {
    let series = format!(
        "inboxflow_ingress_connections_rejected_total{{listener=\"{listener}\",reason=\"{reason}\"}}"
    );
    metric_value(metrics, &series).unwrap_or(0.0)
}

/// A fast 503 refusal: status, `Retry-After` and `Connection: close`.
fn assert_refused(response: &str) {
    assert_eq!(status_of(response), Some(503), "{response}");
    assert!(has_header(response, "connection", "close"), "{response}");
    assert!(has_header_named(response, "retry-after"), "{response}");
}

/// A signed Kapso webhook on a fresh connection from `source`; the status.
async fn post_kapso_from(source: IpAddr, port: u16) -> anyhow::Result<Option<u16>> {
    let body = kapso_message_body(ACME_PHONE, "from another client");
    let head = format!(
        "POST /webhooks/kapso HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nX-Webhook-Event: whatsapp.message.received\r\n\
         X-Webhook-Signature: {}\r\nContent-Length: {}\r\n\r\n",
        kapso_signature(KAPSO_SECRET, &body),
        body.len()
    );
    let mut stream = connect_from(source, port).await?;
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    Ok(status_of(&read_until_closed(&mut stream, DEADLINE).await?))
}

#[tokio::test]
async fn one_client_over_its_cap_gets_fast_503s_while_another_client_is_served()
-> anyhow::Result<()> {
    const CAP: usize = 8;
    const OPENED: usize = 40;
    const PROBES: usize = 10;
    const SERVED: usize = 20;
    let app = ingress(|mut cfg| {
        cfg.max_connections_per_client = CAP;
        // Idle connections must stay held for the whole test.
        cfg.header_read_timeout = Duration::from_secs(300);
        cfg
    })
    .await?;

    // One client opens many idle connections.
    let mut hog = Vec::new();
    for _ in 0..OPENED {
        hog.push(connect_from(ONE_CLIENT, app.port).await?);
    }
    let seen = std::sync::Mutex::new(vec![Observed::default(); OPENED]);
    let (hog_ref, seen_ref) = (&hog, &seen);
    poll::until(
        "the client's connections beyond its cap to be answered",
        DEADLINE,
        || async move {
            let mut seen = seen_ref.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            for (observed, stream) in seen.iter_mut().zip(hog_ref) {
                observed.take_ready(stream);
            }
            let closed = seen.iter().filter(|o| o.closed).count();
            Ok((closed >= OPENED - CAP).then_some(()))
        },
    )
    .await?;
    let mut seen = seen.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?;
    // Further requests of the same client: refused as soon as sent, timed.
    let mut refusal_ms = Vec::new();
    for _ in 0..PROBES {
        let started = Instant::now();
        let mut probe = connect_from(ONE_CLIENT, app.port).await?;
        assert_refused(&get_and_close(&mut probe, "/healthz", DEADLINE).await?);
        refusal_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    // Another client is served meanwhile.
    let mut served = 0;
    let mut slowest_ms = 0.0_f64;
    for _ in 0..SERVED {
        let started = Instant::now();
        let mut other = connect_from(OTHER_CLIENT, app.port).await?;
        let answer = get_and_close(&mut other, "/healthz", DEADLINE).await?;
        assert_eq!(status_of(&answer), Some(200), "{answer}");
        served += 1;
        slowest_ms = slowest_ms.max(started.elapsed().as_secs_f64() * 1000.0);
    }
    let webhook = post_kapso_from(OTHER_CLIENT, app.port).await?;

    for (observed, stream) in seen.iter_mut().zip(&hog) {
        observed.take_ready(stream);
    }
    let refused: Vec<&Observed> = seen.iter().filter(|o| o.closed).collect();
    let held = seen
        .iter()
        .filter(|o| !o.closed && o.received.is_empty())
        .count();
    refusal_ms.sort_by(f64::total_cmp);
    println!(
        "client {ONE_CLIENT}: {OPENED} connections opened, {held} held, {} refused with 503 \
         (then {PROBES} more refused: median {:.1} ms, max {:.1} ms); client {OTHER_CLIENT}: \
         {served} of {SERVED} requests served (slowest {slowest_ms:.1} ms), a signed webhook \
         answered {webhook:?}",
        refused.len(),
        refusal_ms[PROBES / 2],
        refusal_ms[PROBES - 1],
    );
    assert_eq!(held, CAP, "the client keeps exactly its cap");
    assert_eq!(refused.len(), OPENED - CAP);
    for observed in refused {
        assert_refused(&observed.text());
    }
    assert_eq!(webhook, Some(200));
    let metrics = metrics_text(&app).await?;
    let counted = rejected(&metrics, "webhooks", "client_full");
    assert_eq!(counted, (OPENED - CAP + PROBES) as f64, "{metrics}");
    Ok(())
}

#[tokio::test]
async fn an_authentication_failure_closes_the_connection() -> anyhow::Result<()> {
    let app = ingress(|mut cfg| {
        // Only the 401 may close the connection, not the idle timeout.
        cfg.header_read_timeout = Duration::from_secs(300);
        cfg
    })
    .await?;
    let body = kapso_message_body(ACME_PHONE, "forged");
    let head = format!(
        "POST /webhooks/kapso HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         X-Webhook-Signature: {}\r\nContent-Length: {}\r\n\r\n",
        kapso_signature("not-the-secret", &body),
        body.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await?;

    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    // Ends only if the server closes the keep-alive connection after the 401.
    let answer = read_until_closed(&mut stream, DEADLINE).await?;

    assert_eq!(status_of(&answer), Some(401), "{answer}");
    assert!(has_header(&answer, "connection", "close"), "{answer}");
    Ok(())
}

#[test]
fn the_admin_listener_binds_loopback_by_default() {
    let defaults = IngressConfig::default();
    assert_eq!(
        defaults.admin_addr,
        "127.0.0.1:9090".parse().expect("address")
    );
}

#[tokio::test]
async fn an_idle_admin_connection_does_not_hold_up_shutdown() -> anyhow::Result<()> {
    let app = ingress(|mut cfg| {
        cfg.admin_shutdown_timeout = Duration::from_secs(1);
        // Only the drain deadline may end the half-sent request.
        cfg.admin_header_read_timeout = Duration::from_secs(300);
        cfg
    })
    .await?;
    let mut idle = TcpStream::connect(("127.0.0.1", app.admin_port)).await?;
    let mut half_sent = TcpStream::connect(("127.0.0.1", app.admin_port)).await?;
    half_sent
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n")
        .await?;
    // The admin listener serves (so both connections above were accepted).
    let mut check = TcpStream::connect(("127.0.0.1", app.admin_port)).await?;
    let answer = get_and_close(&mut check, "/healthz", DEADLINE).await?;
    assert_eq!(status_of(&answer), Some(200), "{answer}");

    let started = Instant::now();
    app.shutdown().await?; // fails after 30 s if the admin connections hold it
    let stopped_in = started.elapsed();

    read_until_closed(&mut idle, DEADLINE).await?;
    read_until_closed(&mut half_sent, DEADLINE).await?;
    println!("stopped in {stopped_in:?} with an idle and a half-sent admin connection open");
    Ok(())
}

#[tokio::test]
async fn admin_connections_beyond_the_admin_cap_get_a_fast_503() -> anyhow::Result<()> {
    let app = ingress(|mut cfg| {
        cfg.admin_max_connections = 2;
        cfg.admin_header_read_timeout = Duration::from_secs(300);
        cfg
    })
    .await?;
    let first = TcpStream::connect(("127.0.0.1", app.admin_port)).await?;
    let _second = TcpStream::connect(("127.0.0.1", app.admin_port)).await?;

    let mut third = TcpStream::connect(("127.0.0.1", app.admin_port)).await?;
    let refused = get_and_close(&mut third, "/metrics", DEADLINE).await?;
    drop(first);
    let served = poll::until("an admin slot to free", DEADLINE, || async {
        let mut stream = TcpStream::connect(("127.0.0.1", app.admin_port)).await?;
        let answer = get_and_close(&mut stream, "/metrics", DEADLINE).await?;
        Ok((status_of(&answer) == Some(200)).then_some(answer))
    })
    .await?;

    assert_refused(&refused);
    let counted = rejected(&served, "admin", "server_full");
    assert!(counted >= 1.0, "{served}");
    Ok(())
}
