//! Registry reloads without restart: on file change and on SIGHUP; a file
//! that fails to parse keeps the previous registry.

use std::time::Duration;

use inboxflow_tests::ingress::{
    ACME_PHONE, TEST_REGISTRY, TestIngress, kapso_message_body, metric_value, metrics_text,
    spawn_ingress,
};
use inboxflow_tests::poll;

const NEW_PHONE: &str = "300000000000004";

fn registry_with_new_workspace() -> String {
    format!(
        "{TEST_REGISTRY}\n[[workspace]]\nid = \"ws_initech\"\nphone_number_ids = [\"{NEW_PHONE}\"]\n"
    )
}

/// Posts a fresh body for `phone` and returns the key it was written under.
async fn route_of(app: &TestIngress, phone: &str) -> anyhow::Result<String> {
    let body = kapso_message_body(phone, "where do I go");
    let res = app.post_kapso(&body).await?;
    anyhow::ensure!(res.status() == 200, "status {}", res.status());
    let mut all = app.read_all(&app.topics.routed).await?;
    all.extend(app.read_all(&app.topics.unrouted).await?);
    let record = all
        .into_iter()
        .find(|r| r.value == body)
        .ok_or_else(|| anyhow::anyhow!("record not found"))?;
    Ok(format!(
        "{}:{}",
        record.topic,
        record.key.unwrap_or_default()
    ))
}

async fn reloads(app: &TestIngress, result: &str) -> anyhow::Result<f64> {
    let text = metrics_text(app).await?;
    let series = format!("inboxflow_ingress_registry_reloads_total{{result=\"{result}\"}}");
    Ok(metric_value(&text, &series).unwrap_or(0.0))
}

#[tokio::test]
async fn a_changed_registry_file_routes_a_previously_unknown_number() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let before = route_of(&app, NEW_PHONE).await?;
    assert_eq!(before, format!("{}:{NEW_PHONE}", app.topics.unrouted));

    app.write_registry(&registry_with_new_workspace())?;

    let want = format!("{}:ws_initech", app.topics.routed);
    poll::until(
        "the new number to route to ws_initech",
        Duration::from_secs(15),
        || async { Ok((route_of(&app, NEW_PHONE).await? == want).then_some(())) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_registry_file_that_fails_to_parse_keeps_the_previous_registry() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;

    app.write_registry("[[workspace]]\nid = \"broken\"\nphone_number_ids = [\"1\", \n")?;

    poll::until(
        "a failed reload to be counted",
        Duration::from_secs(15),
        || async { Ok((reloads(&app, "error").await? >= 1.0).then_some(())) },
    )
    .await?;
    assert_eq!(
        route_of(&app, ACME_PHONE).await?,
        format!("{}:ws_acme", app.topics.routed)
    );
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_a_change_that_the_file_poll_cannot_see() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    // Same length and modification time: invisible to the mtime/length poll.
    let original = std::fs::metadata(&app.registry_path)?.modified()?;
    let same_length = TEST_REGISTRY.replace(ACME_PHONE, NEW_PHONE);
    assert_eq!(same_length.len(), TEST_REGISTRY.len());
    // Written aside and renamed over it, so the poll never sees another stamp.
    let aside = app.registry_path.with_extension("next");
    std::fs::write(&aside, &same_length)?;
    std::fs::File::options()
        .write(true)
        .open(&aside)?
        .set_modified(original)?;
    std::fs::rename(&aside, &app.registry_path)?;
    assert_eq!(std::fs::metadata(&app.registry_path)?.modified()?, original);
    let baseline = reloads(&app, "ok").await?;

    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()?;

    assert!(status.success());
    poll::until("a SIGHUP reload", Duration::from_secs(15), || async {
        Ok((reloads(&app, "ok").await? > baseline).then_some(()))
    })
    .await?;
    assert_eq!(
        route_of(&app, NEW_PHONE).await?,
        format!("{}:ws_acme", app.topics.routed)
    );
    Ok(())
}
