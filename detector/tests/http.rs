#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! The service's HTTP API beside a replay: callers authenticate, analysts read the alerts
//! the pipeline stored, gateways pull its decisions with a cursor.

mod common;

use std::collections::BTreeSet;

use outrider_alerts::{ApiKeyConfig, HttpConfig, Role};
use outrider_detector::pipeline::PipelineStats;
use outrider_detector::service::{self, RunOptions};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::{oneshot, watch};

const SOC_KEY_ENV: &str = "OUTRIDER_TEST_API_KEY_SOC";
const SOC_KEY: &str = "soc-test-key-0123456789";
const EDGE_KEY_ENV: &str = "OUTRIDER_TEST_API_KEY_EDGE";
const EDGE_KEY: &str = "edge-test-key-0123456789";

fn http_config(keys: Vec<ApiKeyConfig>) -> HttpConfig {
    HttpConfig {
        listen: "127.0.0.1:0".into(),
        api_keys: keys,
        ..HttpConfig::default()
    }
}

fn key(name: &str, env: &str, role: Role) -> ApiKeyConfig {
    ApiKeyConfig {
        name: name.into(),
        key_env: env.into(),
        roles: vec![role],
        set_receiver: None,
    }
}

/// GET `url` with an optional bearer key: the status and the JSON body.
async fn get(client: &reqwest::Client, url: &str, key: Option<&str>) -> (StatusCode, Value) {
    let mut req = client.get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_the_replays_alerts_and_decisions_to_authenticated_callers() {
    std::env::set_var(SOC_KEY_ENV, SOC_KEY);
    std::env::set_var(EDGE_KEY_ENV, EDGE_KEY);
    let dir = tempfile::tempdir().unwrap();
    let input = common::write_traffic(dir.path(), &common::attack_traffic(60, 30));
    let mut config = common::replay_config(dir.path(), input);
    config.http = Some(http_config(vec![
        key("soc", SOC_KEY_ENV, Role::Analyst),
        key("edge", EDGE_KEY_ENV, Role::Gateway),
    ]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (progress_tx, mut progress) = watch::channel(PipelineStats::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let service = tokio::spawn({
        let config = config.clone();
        let options = RunOptions {
            progress: Some(progress_tx),
            http_listener: Some(listener),
            ..RunOptions::default()
        };
        async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            service::run_with(&config, options, shutdown).await
        }
    });
    let stats = common::progress::source_ended(&mut progress).await;
    assert!(stats.alerts > 0 && stats.decisions > 0, "{stats:?}");
    let client = reqwest::Client::new();
    let alerts_url = format!("{base}/v1/alerts?limit=1000");

    // No key, an unknown key: 401 with a bearer challenge. A gateway key: 403.
    let resp = client.get(&alerts_url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let (status, _) = get(&client, &alerts_url, Some("not-a-key-0123456789")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = get(&client, &alerts_url, Some(EDGE_KEY)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The analyst reads every alert the pipeline stored.
    let (status, body) = get(&client, &alerts_url, Some(SOC_KEY)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let alert_ids = ids(&body["alerts"]);
    assert_eq!(alert_ids.len() as u64, stats.alerts);

    // Every alert belongs to one of the incidents the pipeline stored.
    let (status, body) = get(
        &client,
        &format!("{base}/v1/incidents?limit=1000"),
        Some(SOC_KEY),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let grouped: BTreeSet<String> = body["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["alert_ids"].as_array().unwrap().iter())
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    for id in &alert_ids {
        assert!(grouped.contains(id), "alert {id} is in no incident");
    }

    // The gateway pulls every decision in pages of 5, following the cursor.
    let mut pulled: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}/v1/decisions/stream?limit=5&cursor={c}"),
            None => format!("{base}/v1/decisions/stream?limit=5"),
        };
        let (status, page) = get(&client, &url, Some(EDGE_KEY)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let added = page["added"].as_array().unwrap();
        assert!(added.len() <= 5);
        pulled.extend(added.iter().cloned());
        cursor = Some(page["cursor"].as_str().unwrap().to_owned());
        if page["more"] == false {
            break;
        }
    }
    let pulled_ids: BTreeSet<String> = ids(&Value::Array(pulled.clone())).into_iter().collect();
    assert_eq!(
        pulled_ids.len(),
        pulled.len(),
        "a decision was handed out twice"
    );
    assert_eq!(pulled.len() as u64, stats.decisions);
    let cursor = cursor.unwrap();

    // An analyst marks an alert with decisions a false positive: the next pull withdraws
    // its decisions, and hands out nothing new.
    let alert_with_decisions = pulled[0]["alert_id"].as_str().unwrap().to_owned();
    assert!(alert_ids.contains(&alert_with_decisions));
    let its_decisions: BTreeSet<String> = pulled
        .iter()
        .filter(|d| d["alert_id"] == alert_with_decisions.as_str())
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    let (status, detail) = get(
        &client,
        &format!("{base}/v1/alerts/{alert_with_decisions}"),
        Some(SOC_KEY),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let stored_decisions: BTreeSet<String> = ids(&detail["decisions"]).into_iter().collect();
    assert_eq!(stored_decisions, its_decisions);
    let resp = client
        .patch(format!("{base}/v1/alerts/{alert_with_decisions}"))
        .bearer_auth(SOC_KEY)
        .json(&serde_json::json!({"status": "false_positive", "note": "test traffic"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, page) = get(
        &client,
        &format!("{base}/v1/decisions/stream?cursor={cursor}"),
        Some(EDGE_KEY),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(ids(&page["added"]).is_empty(), "{page}");
    let withdrawn: BTreeSet<String> = ids(&page["expired"]).into_iter().collect();
    assert_eq!(withdrawn, its_decisions);
    assert!(page["expired"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["withdrawn"] == true));

    stop.send(()).unwrap();
    let summary = service.await.unwrap().unwrap();
    assert_eq!(
        summary.stats, stats,
        "nothing happened after the replay ended"
    );
}

#[tokio::test]
async fn a_missing_api_key_stops_the_service_before_it_starts_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::write_traffic(dir.path(), &common::attack_traffic(5, 2));
    let mut config = common::replay_config(dir.path(), input);
    config.http = Some(http_config(vec![key(
        "soc",
        "OUTRIDER_TEST_UNSET_API_KEY",
        Role::Analyst,
    )]));
    let err = service::run(&config, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("http.api_keys \"soc\"") && err.contains("OUTRIDER_TEST_UNSET_API_KEY"),
        "{err}"
    );
}

#[tokio::test]
async fn without_an_http_section_no_listener_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::write_traffic(dir.path(), &common::attack_traffic(5, 2));
    let config = common::replay_config(dir.path(), input);
    let options = RunOptions {
        http_listener: Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
        ..RunOptions::default()
    };
    let err = service::run_with(&config, options, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("[http]"), "{err}");
}
