//! The HTTP API against a real server on 127.0.0.1:0: authentication (401), roles
//! (403), and real answers from an embedded store, a decision feed and a SET poll queue
//! filled by the policy engine and the incident grouper.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use outrider_alerts::{
    alert_id, AlertStatus, AlertStore, ApiKeyConfig, DecisionFeed, EmbeddedStore,
    FeatureContribution, HttpApi, HttpConfig, IncidentConfig, IncidentGrouper, Jwks, JwsAlg,
    PolicySet, Role, SetPollQueue, Severity, SigningKey,
};

const ANALYST_KEY: &str = "analyst-key-for-tests-0001";
const GATEWAY_KEY: &str = "gateway-key-for-tests-0002";
const NO_STREAM_KEY: &str = "gateway-key-without-stream-0003";
const T0: i64 = 1_700_000_000;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + secs, 0).expect("valid time")
}

fn env(var: &str) -> Option<String> {
    match var {
        "IT_ANALYST" => Some(ANALYST_KEY.into()),
        "IT_GATEWAY" => Some(GATEWAY_KEY.into()),
        "IT_NO_STREAM" => Some(NO_STREAM_KEY.into()),
        _ => None,
    }
}

fn config(poll_wait_ms: u64, public_jwks: bool) -> HttpConfig {
    let key = |name: &str, var: &str, role: Role, stream: Option<&str>| ApiKeyConfig {
        name: name.into(),
        key_env: var.into(),
        roles: vec![role],
        set_receiver: stream.map(str::to_owned),
    };
    HttpConfig {
        api_keys: vec![
            key("soc", "IT_ANALYST", Role::Analyst, None),
            key("edge", "IT_GATEWAY", Role::Gateway, Some("rp")),
            key("legacy", "IT_NO_STREAM", Role::Gateway, None),
        ],
        poll_wait_ms,
        public_jwks,
        max_page: 50,
        ..HttpConfig::default()
    }
}

fn alert(identity: &str, at: i64, severity: Severity, api: &str) -> outrider_alerts::Alert {
    outrider_alerts::Alert {
        id: alert_id(identity, t(at), "iforest"),
        created_at: t(at + 5),
        window_start: t(at - 60),
        window_end: t(at),
        identity: identity.into(),
        apis: vec![api.into()],
        client_ips: vec!["198.51.100.20".into()],
        token_ids: vec![format!("jti:{}@bank", identity.len())],
        score: 0.9,
        threshold: 0.7,
        severity,
        model_version: "iforest".into(),
        features: vec![FeatureContribution {
            name: "distinct_object_ids".into(),
            value: 90.0,
            baseline: 3.0,
            baseline_p99: 10.0,
            contribution: 0.7,
        }],
        evidence_request_ids: vec!["req-1".into()],
        event_count: 40,
        status: AlertStatus::Open,
        rule_hits: Vec::new(),
        risk: None,
    }
}

/// What the servers serve, filled the way the detector would.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<EmbeddedStore>,
    feed: Arc<DecisionFeed>,
    queue: Arc<SetPollQueue>,
    jwks: Jwks,
    alerts: Vec<outrider_alerts::Alert>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let feed = Arc::new(DecisionFeed::open(dir.path()).expect("feed"));
    let queue = Arc::new(SetPollQueue::open(dir.path()).expect("queue"));
    let alerts = vec![
        alert("sub:alice", 60, Severity::High, "/v1/accounts/{id}"),
        alert("sub:bob", 3700, Severity::Critical, "/v1/export"),
        alert("ip:203.0.113.9", 120, Severity::Medium, "/v1/login"),
    ];
    let mut grouper = IncidentGrouper::new(IncidentConfig {
        campaign_min_identities: 0,
        ..IncidentConfig::default()
    })
    .expect("grouper");
    let batch = grouper.group(&alerts);
    store.insert_alerts(&batch.raised).await.expect("insert");
    store
        .upsert_incidents(&batch.incidents)
        .await
        .expect("incidents");
    // Decisions are created now (wall clock), so the feed has them in force.
    let decisions = PolicySet::builtin(3600, false).decide_all(&batch.raised, Utc::now());
    store.insert_decisions(&decisions).await.expect("decisions");
    feed.append(&decisions).expect("feed");
    let pem = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/keys/ec-sec1.pem"),
    )
    .expect("test key");
    let jwks = SigningKey::from_pem(&pem, JwsAlg::ES256, None)
        .expect("key")
        .jwks();
    Fixture {
        _dir: dir,
        store,
        feed,
        queue,
        jwks,
        alerts,
    }
}

struct Server {
    base: String,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<outrider_alerts::Result<()>>>,
}

impl Server {
    async fn start(f: &Fixture, cfg: HttpConfig) -> Server {
        let api = HttpApi::with_env(&cfg, f.store.clone(), &env)
            .expect("api")
            .with_decision_feed(f.feed.clone())
            .with_poll_queue(f.queue.clone())
            .with_jwks(f.jwks.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(api.run(listener, async move {
            let _ = stopped.await;
        }));
        Server {
            base,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn get(&self, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let req = self.client.get(format!("{}{path}", self.base));
        match key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    async fn json(&self, req: reqwest::RequestBuilder, want: StatusCode) -> Value {
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let body: Value = resp.json().await.expect("json body");
        assert_eq!(status, want, "{body}");
        body
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn every_route_wants_a_valid_key() {
    let f = fixture().await;
    let s = Server::start(&f, config(1000, false)).await;
    let routes = [
        ("GET", "/v1/alerts"),
        ("GET", "/v1/alerts/counts"),
        ("GET", "/v1/alerts/abc"),
        ("PATCH", "/v1/alerts/abc"),
        ("GET", "/v1/incidents"),
        ("GET", "/v1/incidents/abc"),
        ("PATCH", "/v1/incidents/abc"),
        ("GET", "/v1/decisions/stream"),
        ("POST", "/v1/sets/poll"),
        ("GET", "/v1/jwks"),
        ("GET", "/v1/no-such-route"),
    ];
    for (method, path) in routes {
        let url = format!("{}{path}", s.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        for auth in [
            None,
            Some("Bearer wrong-key-wrong-key-wrong"),
            Some("Bearer "),
            Some(&format!("Basic {ANALYST_KEY}") as &str),
            Some(&format!("Bearer {ANALYST_KEY}x") as &str),
        ] {
            let mut req = s.client.request(method.clone(), &url).body("{}");
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.expect("request");
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            assert_eq!(
                resp.headers()["www-authenticate"],
                "Bearer realm=\"outrider\""
            );
        }
    }
    // A valid key on an unknown route: 404, not 401.
    let resp = s
        .get("/v1/no-such-route", Some(ANALYST_KEY))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn roles_decide_what_a_key_may_do() {
    let f = fixture().await;
    let s = Server::start(&f, config(1000, false)).await;
    for path in ["/v1/alerts", "/v1/alerts/counts", "/v1/incidents"] {
        let body = s
            .json(s.get(path, Some(GATEWAY_KEY)), StatusCode::FORBIDDEN)
            .await;
        assert!(
            body["error"].as_str().unwrap().contains("analyst"),
            "{body}"
        );
    }
    let patch = s
        .client
        .patch(format!("{}/v1/alerts/{}", s.base, f.alerts[0].id))
        .bearer_auth(GATEWAY_KEY)
        .json(&json!({"status": "resolved"}));
    s.json(patch, StatusCode::FORBIDDEN).await;
    let still_open = f.store.alert(&f.alerts[0].id).await.unwrap().unwrap();
    assert_eq!(
        still_open.status,
        AlertStatus::Open,
        "a forbidden patch changed nothing"
    );

    s.json(
        s.get("/v1/decisions/stream", Some(ANALYST_KEY)),
        StatusCode::FORBIDDEN,
    )
    .await;
    let poll = |key: &str| {
        s.client
            .post(format!("{}/v1/sets/poll", s.base))
            .bearer_auth(key)
            .json(&json!({"returnImmediately": true}))
    };
    s.json(poll(ANALYST_KEY), StatusCode::FORBIDDEN).await;
    let body = s.json(poll(NO_STREAM_KEY), StatusCode::FORBIDDEN).await;
    assert!(
        body["error"].as_str().unwrap().contains("set_receiver"),
        "{body}"
    );
    s.json(poll(GATEWAY_KEY), StatusCode::OK).await;
    s.stop().await;
}

#[tokio::test]
async fn analysts_query_alerts_counts_and_incidents() {
    let f = fixture().await;
    let s = Server::start(&f, config(1000, false)).await;
    let [alice, bob, ip] = [&f.alerts[0], &f.alerts[1], &f.alerts[2]];

    let body = s
        .json(s.get("/v1/alerts", Some(ANALYST_KEY)), StatusCode::OK)
        .await;
    assert_eq!(
        ids(&body["alerts"]),
        [bob.id.as_str(), &ip.id, &alice.id],
        "newest first"
    );
    let q = format!(
        "/v1/alerts?min_severity=high&since={}&until={}",
        T0 + 60,
        "2023-11-15T00:00:00Z"
    );
    let body = s.json(s.get(&q, Some(ANALYST_KEY)), StatusCode::OK).await;
    assert_eq!(ids(&body["alerts"]), [bob.id.as_str(), &alice.id]);
    let q = "/v1/alerts?api=%2Fv1%2Fexport&identity=sub%3Abob&limit=1";
    let body = s.json(s.get(q, Some(ANALYST_KEY)), StatusCode::OK).await;
    assert_eq!(ids(&body["alerts"]), [bob.id.as_str()]);
    let body = s
        .json(
            s.get("/v1/alerts?severity=high", Some(ANALYST_KEY)),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(
        body["error"].as_str().unwrap().contains("severity"),
        "{body}"
    );
    s.json(
        s.get("/v1/alerts?limit=51", Some(ANALYST_KEY)),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // 22:00 UTC holds alice and the IP, 23:00 bob.
    let body = s
        .json(
            s.get("/v1/alerts/counts?bucket=1h&by=severity", Some(ANALYST_KEY)),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        body["buckets"],
        json!([
            {"start": "2023-11-14T22:00:00Z", "severity": "medium", "count": 1},
            {"start": "2023-11-14T22:00:00Z", "severity": "high", "count": 1},
            {"start": "2023-11-14T23:00:00Z", "severity": "critical", "count": 1},
        ])
    );

    let path = format!("/v1/alerts/{}", alice.id);
    let detail = s
        .json(s.get(&path, Some(ANALYST_KEY)), StatusCode::OK)
        .await;
    assert_eq!(detail["alert"]["identity"], "sub:alice");
    assert_eq!(detail["decisions"][0]["action"], "revoke_token");
    assert_eq!(detail["notes"], json!([]));
    s.json(
        s.get("/v1/alerts/nope", Some(ANALYST_KEY)),
        StatusCode::NOT_FOUND,
    )
    .await;

    let body = s
        .json(s.get("/v1/incidents", Some(ANALYST_KEY)), StatusCode::OK)
        .await;
    let incidents = body["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 3, "one per identity");
    assert_eq!(incidents[0]["key"], "sub:bob", "newest first");
    let q = "/v1/incidents?identity=sub%3Aalice&kind=identity";
    let body = s.json(s.get(q, Some(ANALYST_KEY)), StatusCode::OK).await;
    let alice_incident = body["incidents"][0].clone();
    assert_eq!(alice_incident["alert_ids"], json!([alice.id]));
    let path = format!("/v1/incidents/{}", alice_incident["id"].as_str().unwrap());
    let patched = s
        .json(
            s.client
                .patch(format!("{}{path}", s.base))
                .bearer_auth(ANALYST_KEY)
                .json(&json!({"status": "acknowledged"})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(patched["incident"]["status"], "acknowledged");
    let got = s
        .json(s.get(&path, Some(ANALYST_KEY)), StatusCode::OK)
        .await;
    assert_eq!(got["incident"]["status"], "acknowledged");
    s.stop().await;
}

#[tokio::test]
async fn analysts_change_status_and_add_notes_and_false_positives_leave_the_feed() {
    let f = fixture().await;
    let s = Server::start(&f, config(1000, false)).await;
    let alice = &f.alerts[0];
    let url = format!("{}/v1/alerts/{}", s.base, alice.id);

    let first = s
        .json(
            s.get("/v1/decisions/stream", Some(GATEWAY_KEY)),
            StatusCode::OK,
        )
        .await;
    let alice_decisions: Vec<String> = first["added"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["alert_id"] == alice.id.as_str())
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(alice_decisions.len(), 1, "one token revoked for alice");

    let bad = s
        .client
        .patch(&url)
        .bearer_auth(ANALYST_KEY)
        .json(&json!({"stat": "resolved"}));
    let body = s.json(bad, StatusCode::BAD_REQUEST).await;
    assert!(body["error"].as_str().unwrap().contains("stat"), "{body}");
    let empty = s
        .client
        .patch(&url)
        .bearer_auth(ANALYST_KEY)
        .json(&json!({}));
    s.json(empty, StatusCode::BAD_REQUEST).await;

    let patch = s.client.patch(&url).bearer_auth(ANALYST_KEY).json(&json!({
        "status": "false_positive",
        "note": "load test from the QA team",
    }));
    let detail = s.json(patch, StatusCode::OK).await;
    assert_eq!(detail["alert"]["status"], "false_positive");
    assert_eq!(detail["notes"][0]["author"], "soc");
    assert_eq!(detail["notes"][0]["text"], "load test from the QA team");
    let stored = f.store.alert(&alice.id).await.unwrap().unwrap();
    assert_eq!(stored.status, AlertStatus::FalsePositive);
    let listed = s
        .json(
            s.get("/v1/alerts?status=false_positive", Some(ANALYST_KEY)),
            StatusCode::OK,
        )
        .await;
    assert_eq!(ids(&listed["alerts"]), [alice.id.as_str()]);

    let cursor = first["cursor"].as_str().unwrap();
    let next = s
        .json(
            s.get(
                &format!("/v1/decisions/stream?cursor={cursor}"),
                Some(GATEWAY_KEY),
            ),
            StatusCode::OK,
        )
        .await;
    let expired: Vec<&str> = next["expired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        expired, alice_decisions,
        "withdrawn from the gateways' feed"
    );
    assert_eq!(next["expired"][0]["withdrawn"], true);
    assert_eq!(next["expired"][0]["jti"], "9");
    assert_eq!(next["expired"][0]["aud"], "bank");

    let missing = s
        .client
        .patch(format!("{}/v1/alerts/nope", s.base))
        .bearer_auth(ANALYST_KEY)
        .json(&json!({"note": "x"}));
    s.json(missing, StatusCode::NOT_FOUND).await;
    s.stop().await;
}

#[tokio::test]
async fn gateways_pull_decisions_with_a_cursor() {
    let f = fixture().await;
    let s = Server::start(&f, config(1000, false)).await;
    let first = s
        .json(
            s.get("/v1/decisions/stream", Some(GATEWAY_KEY)),
            StatusCode::OK,
        )
        .await;
    let added = first["added"].as_array().unwrap();
    assert_eq!(added.len(), 3, "two token revocations and an IP block");
    let token = added
        .iter()
        .find(|d| d["scope"] == "token")
        .expect("a token decision");
    assert!(
        token["jti"].is_string() && token["aud"] == "bank",
        "{token}"
    );
    assert!(token["expires_at"].is_string());
    assert_eq!(first["more"], false);

    let cursor = first["cursor"].as_str().unwrap().to_owned();
    let again = s
        .json(
            s.get(
                &format!("/v1/decisions/stream?cursor={cursor}"),
                Some(GATEWAY_KEY),
            ),
            StatusCode::OK,
        )
        .await;
    assert_eq!(again["added"], json!([]));

    let late = PolicySet::builtin(60, false).decide(
        &alert("sub:carol", 7000, Severity::High, "/v1/x"),
        Utc::now(),
    );
    f.feed.append(&late).unwrap();
    let next = s
        .json(
            s.get(
                &format!("/v1/decisions/stream?cursor={cursor}&limit=5"),
                Some(GATEWAY_KEY),
            ),
            StatusCode::OK,
        )
        .await;
    assert_eq!(ids(&next["added"]), [late[0].id.as_str()]);

    let body = s
        .json(
            s.get("/v1/decisions/stream?cursor=forged", Some(GATEWAY_KEY)),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(body["error"].as_str().unwrap().contains("cursor"), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn set_receivers_poll_acknowledge_and_long_poll() {
    let f = fixture().await;
    f.queue.push("rp", "jti-1", "eyJ.set.one").unwrap();
    f.queue.push("rp", "jti-2", "eyJ.set.two").unwrap();
    f.queue.push("other", "jti-9", "eyJ.not.yours").unwrap();
    let s = Server::start(&f, config(1500, false)).await;
    let poll = |body: Value| {
        s.client
            .post(format!("{}/v1/sets/poll", s.base))
            .bearer_auth(GATEWAY_KEY)
            .json(&body)
    };
    let body = s
        .json(
            poll(json!({"maxEvents": 1, "returnImmediately": true})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        body,
        json!({"sets": {"jti-1": "eyJ.set.one"}, "moreAvailable": true})
    );
    let body = s
        .json(
            poll(json!({"ack": ["jti-1"], "returnImmediately": true})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        body,
        json!({"sets": {"jti-2": "eyJ.set.two"}}),
        "only this key's stream"
    );
    let body = s
        .json(
            poll(json!({"ack": ["jti-2"], "returnImmediately": true})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(body, json!({"sets": {}}));

    // Nothing queued and returnImmediately false: the poll is held for poll_wait_ms.
    let started = Instant::now();
    let body = s
        .json(poll(json!({"returnImmediately": false})), StatusCode::OK)
        .await;
    assert_eq!(body, json!({"sets": {}}));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    s.json(poll(json!({"returnImmediately": true})), StatusCode::OK)
        .await;
    assert!(started.elapsed() < Duration::from_millis(1500));

    let bad = s
        .json(poll(json!({"maxEvents": "ten"})), StatusCode::BAD_REQUEST)
        .await;
    assert!(bad["error"].as_str().unwrap().starts_with("body"), "{bad}");
    s.stop().await;

    // A long poll returns as soon as a SET is queued (here with a 30 s limit).
    let s = Server::start(&f, config(30_000, false)).await;
    let client = s.client.clone();
    let url = format!("{}/v1/sets/poll", s.base);
    let started = Instant::now();
    let waiting = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(GATEWAY_KEY)
            .json(&json!({}))
            .send()
            .await
            .expect("poll")
            .json::<Value>()
            .await
            .expect("json")
    });
    f.queue.push("rp", "jti-3", "eyJ.set.three").unwrap();
    let body = waiting.await.expect("poll task");
    assert_eq!(body, json!({"sets": {"jti-3": "eyJ.set.three"}}));
    assert!(started.elapsed() < Duration::from_secs(30));
    s.stop().await;
}

#[tokio::test]
async fn the_jwks_is_public_only_when_configured() {
    let f = fixture().await;
    let private = Server::start(&f, config(1000, false)).await;
    private
        .json(private.get("/v1/jwks", None), StatusCode::UNAUTHORIZED)
        .await;
    let body = private
        .json(private.get("/v1/jwks", Some(GATEWAY_KEY)), StatusCode::OK)
        .await;
    assert_eq!(body, serde_json::to_value(&f.jwks).unwrap());
    assert_eq!(body["keys"][0]["kty"], "EC");
    assert!(body["keys"][0].get("d").is_none(), "no private part");
    private.stop().await;

    let public = Server::start(&f, config(1000, true)).await;
    let body = public
        .json(public.get("/v1/jwks", None), StatusCode::OK)
        .await;
    assert_eq!(body, serde_json::to_value(&f.jwks).unwrap());
    // Only the JWKS is public.
    public
        .json(public.get("/v1/alerts", None), StatusCode::UNAUTHORIZED)
        .await;
    public.stop().await;
}

#[tokio::test]
async fn bad_key_configs_fail_at_start_up() {
    let f = fixture().await;
    let mut cfg = config(1000, false);
    cfg.api_keys[0].key_env = "IT_NOT_SET".into();
    let err = HttpApi::with_env(&cfg, f.store.clone(), &env).unwrap_err();
    assert!(err.to_string().contains("IT_NOT_SET"), "{err}");
    let err = HttpApi::with_env(&HttpConfig::default(), f.store.clone(), &env).unwrap_err();
    assert!(err.to_string().contains("api_keys is empty"), "{err}");
    let cfg: Result<HttpConfig, _> = toml::from_str("listen = \"x\"\napi_key = []");
    assert!(cfg.unwrap_err().to_string().contains("api_key"));
}
