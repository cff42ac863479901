//! A real HTTP webhook receiver for tests: answers `fail_status` to the first
//! `fail_first` requests and 200 afterwards, recording every request and deduplicating
//! successful deliveries on `Idempotency-Key`, as a well-behaved receiver would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::sync::{mpsc, oneshot};

use crate::model::{decision_id, Action, Decision, Scope};

#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub timestamp: String,
    pub signature: String,
    pub idempotency_key: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

#[derive(Debug)]
struct Inner {
    fail_first: usize,
    fail_status: StatusCode,
    requests: Mutex<Vec<Recorded>>,
    /// Successful (2xx) answers per idempotency key.
    delivered: Mutex<HashMap<String, usize>>,
    /// Each key the first time it is delivered.
    first_deliveries: mpsc::UnboundedSender<String>,
}

#[derive(Debug)]
pub(crate) struct Receiver {
    addr: SocketAddr,
    inner: Arc<Inner>,
    first_deliveries: mpsc::UnboundedReceiver<String>,
    stop: Option<oneshot::Sender<()>>,
}

impl Receiver {
    pub(crate) async fn start(fail_first: usize, fail_status: u16) -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            fail_first,
            fail_status: StatusCode::from_u16(fail_status).expect("valid status"),
            requests: Mutex::new(Vec::new()),
            delivered: Mutex::new(HashMap::new()),
            first_deliveries: tx,
        });
        let app = Router::new()
            .route("/hook", post(handle))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("receiver serve");
        });
        Receiver {
            addr,
            inner,
            first_deliveries: rx,
            stop: Some(stop),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().expect("lock").clone()
    }

    pub(crate) fn delivered_counts(&self) -> HashMap<String, usize> {
        self.inner.delivered.lock().expect("lock").clone()
    }

    /// Waits for the next key delivered for the first time.
    pub(crate) async fn next_first_delivery(&mut self) -> Option<String> {
        self.first_deliveries.recv().await
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
    let record = Recorded {
        timestamp: header(&headers, "x-outrider-timestamp"),
        signature: header(&headers, "x-outrider-signature"),
        idempotency_key: header(&headers, "idempotency-key"),
        content_type: header(&headers, "content-type"),
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
        let mut delivered = inner.delivered.lock().expect("lock");
        let count = delivered.entry(key.clone()).or_insert(0);
        *count += 1;
        *count == 1
    };
    if first {
        let _ = inner.first_deliveries.send(key);
    }
    StatusCode::OK
}

pub(crate) fn sample_decision(alert_id: &str, token: &str) -> Decision {
    Decision {
        id: decision_id(alert_id, Action::RevokeToken, Scope::Token, token),
        alert_id: alert_id.to_owned(),
        created_at: chrono::Utc::now(),
        action: Action::RevokeToken,
        scope: Scope::Token,
        value: token.to_owned(),
        ttl_secs: 600,
        origin: "test".into(),
        simulated: false,
        reason: "test decision".into(),
    }
}
