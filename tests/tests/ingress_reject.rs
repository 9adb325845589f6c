//! Refused requests: bad signatures (401, nothing written), oversized and
//! slow bodies (413, 408), wrong methods and paths (405, 404). Never a 500.

use std::time::{Duration, Instant};

use inboxflow_tests::ingress::{
    ACME_PHONE, KAPSO_SECRET, META_SECRET, TEST_REGISTRY, TestIngress, kapso_message_body,
    meta_body, metric_value, metrics_text, spawn_ingress, spawn_ingress_with,
};
use shared::signing::{kapso_signature, meta_signature};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FOUR_MIB: usize = 4 * 1024 * 1024;

/// Sends `head` (request line and headers, without the blank line), then
/// `body` chunks, on a raw connection; returns the response status line.
/// Writes stop quietly once the server has closed its side.
async fn raw_exchange(app: &TestIngress, head: &str, body: &[Vec<u8>]) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await?;
    stream
        .write_all(format!("{head}\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    for chunk in body {
        if stream.write_all(chunk).await.is_err() {
            break;
        }
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await?? {
            0 => break,
            n => response.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn bad_signatures_get_401_and_write_nothing() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = kapso_message_body(ACME_PHONE, "forged");
    let good = kapso_signature(KAPSO_SECRET, &body);
    let bad_kapso = [
        (
            "wrong secret",
            Some(kapso_signature("not-our-secret", &body)),
        ),
        ("truncated", Some(good[..40].to_owned())),
        ("sha1= prefix", Some(format!("sha1={good}"))),
        (
            "sha256= prefix, wrong secret",
            Some(format!(
                "sha256={}",
                kapso_signature("not-our-secret", &body)
            )),
        ),
        ("not hex", Some("zz".repeat(32))),
        ("missing", None),
    ];

    for (case, signature) in bad_kapso {
        let mut req = app
            .client
            .post(app.url("/webhooks/kapso"))
            .body(body.clone());
        if let Some(sig) = signature {
            req = req.header("x-webhook-signature", sig);
        }
        assert_eq!(req.send().await?.status(), 401, "kapso: {case}");
    }
    let meta = meta_body(&[ACME_PHONE]);
    let bare_hex = kapso_signature(META_SECRET, &meta);
    let wrong_meta = meta_signature("other", &meta);
    for (case, sig) in [
        ("no sha256= prefix", bare_hex),
        ("wrong secret", wrong_meta),
    ] {
        let res = app
            .client
            .post(app.url("/webhooks/meta"))
            .header("x-hub-signature-256", sig)
            .body(meta.clone())
            .send()
            .await?;
        assert_eq!(res.status(), 401, "meta: {case}");
    }
    let sentinel = kapso_message_body(ACME_PHONE, "sentinel");
    assert_eq!(app.post_kapso(&sentinel).await?.status(), 200);

    let routed = app.read_all(&app.topics.routed).await?;
    assert_eq!(routed.len(), 1, "only the sentinel was written");
    assert_eq!(routed[0].value, sentinel);
    assert!(app.read_all(&app.topics.unrouted).await?.is_empty());
    assert!(app.read_all(&app.topics.dead_letter).await?.is_empty());
    let metrics = metrics_text(&app).await?;
    let failures = |source: &str, reason: &str| {
        metric_value(
            &metrics,
            &format!(
                "inboxflow_ingress_signature_failures_total{{reason=\"{reason}\",source=\"{source}\"}}"
            ),
        )
    };
    assert_eq!(failures("kapso", "mismatch"), Some(2.0));
    assert_eq!(failures("kapso", "malformed"), Some(3.0));
    assert_eq!(failures("kapso", "missing"), Some(1.0));
    assert_eq!(failures("meta", "malformed"), Some(1.0));
    Ok(())
}

#[tokio::test]
async fn a_declared_body_of_4_mib_plus_one_byte_gets_413_before_it_is_sent() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let head = format!(
        "POST /webhooks/kapso HTTP/1.1\r\nContent-Length: {}\r\nX-Webhook-Signature: {}",
        FOUR_MIB + 1,
        "ab".repeat(32)
    );

    // No body byte is sent: the answer must come from the declared length alone.
    let status = raw_exchange(&app, &head, &[]).await?;

    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert!(app.read_all(&app.topics.routed).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_full_body_of_4_mib_plus_one_byte_gets_413() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = vec![b'a'; FOUR_MIB + 1];

    let res = app.post_kapso(&body).await;

    // The server answers before reading the body; the client may see the 413
    // or, having the connection closed under its upload, an error. Never a 2xx.
    if let Ok(res) = res {
        assert_eq!(res.status(), 413);
    }
    let metrics = metrics_text(&app).await?;
    let answered = "inboxflow_ingress_requests_total{route=\"kapso\",status=\"413\"}";
    assert_eq!(
        metric_value(&metrics, answered),
        Some(1.0),
        "the server answered 413"
    );
    assert!(app.read_all(&app.topics.routed).await?.is_empty());
    assert!(app.read_all(&app.topics.dead_letter).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_chunked_body_without_content_length_over_the_limit_gets_413() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let head = format!(
        "POST /webhooks/kapso HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Webhook-Signature: {}",
        "ab".repeat(32)
    );
    let chunk_size = 256 * 1024;
    let mut chunk = format!("{chunk_size:x}\r\n").into_bytes();
    chunk.extend(std::iter::repeat_n(b'a', chunk_size));
    chunk.extend_from_slice(b"\r\n");
    // 4 MiB + 256 KiB, and no terminating chunk: only the count can stop it.
    let chunks = vec![chunk; FOUR_MIB / chunk_size + 1];

    let status = raw_exchange(&app, &head, &chunks).await?;

    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    Ok(())
}

#[tokio::test]
async fn a_body_that_stalls_gets_408_after_the_read_timeout() -> anyhow::Result<()> {
    let topics = inboxflow_tests::ingress::TestTopics::create().await?;
    let app = spawn_ingress_with(TEST_REGISTRY, topics, |mut cfg| {
        cfg.body_read_timeout = Duration::from_secs(1);
        cfg
    })
    .await?;
    let head = format!(
        "POST /webhooks/kapso HTTP/1.1\r\nContent-Length: 100\r\nX-Webhook-Signature: {}",
        "ab".repeat(32)
    );
    let started = Instant::now();

    let status = raw_exchange(&app, &head, &[b"{\"partial\":".to_vec()]).await?;

    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    Ok(())
}

#[tokio::test]
async fn wrong_methods_get_405_with_allow_and_unknown_paths_404() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;

    let get_kapso = app.client.get(app.url("/webhooks/kapso")).send().await?;
    let put_meta = app.client.put(app.url("/webhooks/meta")).send().await?;
    let delete_ws = app
        .client
        .delete(app.url("/webhooks/kapso/ws_acme"))
        .send()
        .await?;
    let unknown = app.client.post(app.url("/webhooks/other")).send().await?;
    let bad_query = app
        .client
        .get(app.url("/webhooks/meta?hub.mode=a&hub.mode=b"))
        .send()
        .await?;
    let health = app.client.get(app.url("/healthz")).send().await?;

    assert_eq!(get_kapso.status(), 405);
    assert_eq!(get_kapso.headers()["allow"], "POST");
    assert_eq!(put_meta.status(), 405);
    assert_eq!(put_meta.headers()["allow"], "GET, POST");
    assert_eq!(delete_ws.status(), 405);
    assert_eq!(unknown.status(), 404);
    assert_eq!(bad_query.status(), 400);
    assert_eq!(health.status(), 200);
    let metrics = metrics_text(&app).await?;
    let count = |route: &str, status: u16| {
        metric_value(
            &metrics,
            &format!("inboxflow_ingress_requests_total{{route=\"{route}\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(count("kapso", 405), Some(1.0));
    assert_eq!(count("other", 404), Some(1.0));
    assert!(!metrics.contains("status=\"500\""), "{metrics}");
    Ok(())
}

#[tokio::test]
async fn connections_beyond_max_connections_get_a_fast_503_until_a_slot_frees() -> anyhow::Result<()>
{
    let topics = inboxflow_tests::ingress::TestTopics::create().await?;
    let app = spawn_ingress_with(TEST_REGISTRY, topics, |mut cfg| {
        cfg.max_connections = 1;
        cfg.max_connections_per_client = 1;
        cfg.header_read_timeout = Duration::from_secs(300);
        cfg
    })
    .await?;
    let held = TcpStream::connect(("127.0.0.1", app.port)).await?;
    let health = app.url("/healthz");
    let deadline = Duration::from_secs(20);

    let while_held = app.client.get(&health).timeout(deadline).send().await?;
    drop(held);
    let after = inboxflow_tests::poll::until("a free slot", deadline, || async {
        let res = app.client.get(&health).timeout(deadline).send().await;
        Ok(res.ok().filter(|r| r.status() == 200).map(|_| ()))
    })
    .await;

    assert_eq!(while_held.status(), 503, "served beyond the limit");
    let headers = while_held.headers();
    assert_eq!(
        headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    assert_eq!(
        headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
    after?;
    let metrics = metrics_text(&app).await?;
    let series = "inboxflow_ingress_connections_rejected_total{listener=\"webhooks\",reason=\"server_full\"}";
    assert!(metric_value(&metrics, series) >= Some(1.0), "{metrics}");
    Ok(())
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() -> anyhow::Result<()> {
    let topics = inboxflow_tests::ingress::TestTopics::create().await?;
    let app = spawn_ingress_with(TEST_REGISTRY, topics, |mut cfg| {
        cfg.header_read_timeout = Duration::from_secs(1);
        cfg
    })
    .await?;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await?;
    let started = Instant::now();

    stream
        .write_all(b"POST /webhooks/kapso HTTP/1.1\r\nHost: x\r\n")
        .await?;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;

    let waited = started.elapsed();
    assert!(read.is_ok(), "connection still open after 10 s");
    assert!(
        waited >= Duration::from_millis(900),
        "closed before the timeout: {waited:?}"
    );
    let answer = String::from_utf8_lossy(&rest);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    Ok(())
}
