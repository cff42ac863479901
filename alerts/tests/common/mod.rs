//! A webhook receiver on 127.0.0.1:0 for the integration tests: fails the first
//! `fail_first` requests with `fail_status`, then answers 200; records every request and
//! applies each `Idempotency-Key` once, as a well-behaved receiver would.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::sync::{mpsc, oneshot};

use outrider_alerts::{decision_id, Action, Decision, Scope};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub timestamp: String,
    pub signature: String,
    pub idempotency_key: String,
    pub body: Vec<u8>,
}

#[derive(Debug)]
struct Inner {
    fail_first: usize,
    fail_status: StatusCode,
    requests: Mutex<Vec<Recorded>>,
    applied: Mutex<HashMap<String, usize>>,
    /// Each key when first applied, with the arrival time.
    first: mpsc::UnboundedSender<(String, std::time::Instant)>,
}

#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    inner: Arc<Inner>,
    first: mpsc::UnboundedReceiver<(String, std::time::Instant)>,
    stop: Option<oneshot::Sender<()>>,
}

impl Receiver {
    pub async fn start(fail_first: usize, fail_status: u16) -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            fail_first,
            fail_status: StatusCode::from_u16(fail_status).expect("status"),
            requests: Mutex::new(Vec::new()),
            applied: Mutex::new(HashMap::new()),
            first: tx,
        });
        let app = Router::new()
            .route("/hook", post(handle))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Receiver {
            addr,
            inner,
            first: rx,
            stop: Some(stop),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().expect("lock").clone()
    }

    /// Successful (2xx) answers per idempotency key. The receiver applies a key only
    /// the first time; repeats are answered 200 and ignored.
    pub fn ok_counts(&self) -> HashMap<String, usize> {
        self.inner.applied.lock().expect("lock").clone()
    }

    /// The next key applied for the first time, and when it arrived.
    pub async fn next_applied(&mut self) -> Option<(String, std::time::Instant)> {
        self.first.recv().await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let arrived = std::time::Instant::now();
    let record = Recorded {
        timestamp: header(&headers, "x-outrider-timestamp"),
        signature: header(&headers, "x-outrider-signature"),
        idempotency_key: header(&headers, "idempotency-key"),
        body: body.to_vec(),
    };
    let key = record.idempotency_key.clone();
    let seen = {
        let mut requests = inner.requests.lock().expect("lock");
        requests.push(record);
        requests.len()
    };
    if seen <= inner.fail_first {
        return inner.fail_status;
    }
    let first = {
        let mut applied = inner.applied.lock().expect("lock");
        let n = applied.entry(key.clone()).or_insert(0);
        *n += 1;
        *n == 1
    };
    if first {
        let _ = inner.first.send((key, arrived));
    }
    StatusCode::OK
}

pub fn decision(token: &str) -> Decision {
    let alert_id = "alert-it";
    Decision {
        id: decision_id(alert_id, Action::RevokeToken, Scope::Token, token),
        alert_id: alert_id.to_owned(),
        created_at: chrono::Utc::now(),
        action: Action::RevokeToken,
        scope: Scope::Token,
        value: token.to_owned(),
        ttl_secs: 600,
        origin: "integration-test".into(),
        simulated: false,
        reason: "integration test".into(),
    }
}
