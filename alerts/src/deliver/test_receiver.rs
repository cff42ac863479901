//! A real HTTP receiver for tests: answers `fail_status` (with `fail_body`) to the
//! first `fail_first` requests and while switched down, `success_status` otherwise,
//! recording every request and deduplicating successful deliveries on
//! `Idempotency-Key` (else on the body), as a well-behaved receiver would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
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
    pub authorization: String,
    pub body: Vec<u8>,
    /// The status this request was answered with.
    pub answered: u16,
    /// Wall-clock unix ms when it arrived.
    pub at_ms: i64,
}

#[derive(Debug)]
struct Inner {
    fail_first: usize,
    fail_status: StatusCode,
    fail_body: String,
    success_status: StatusCode,
    down: AtomicBool,
    requests: Mutex<Vec<Recorded>>,
    /// Successful answers per idempotency key.
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

#[derive(Debug, Clone)]
pub(crate) struct ReceiverBuilder {
    fail_first: usize,
    fail_status: u16,
    fail_body: String,
    success_status: u16,
}

impl ReceiverBuilder {
    pub(crate) fn fail_first(mut self, n: usize, status: u16) -> Self {
        self.fail_first = n;
        self.fail_status = status;
        self
    }

    pub(crate) fn fail_body(mut self, body: &str) -> Self {
        self.fail_body = body.to_owned();
        self
    }

    pub(crate) fn success_status(mut self, status: u16) -> Self {
        self.success_status = status;
        self
    }

    pub(crate) async fn start(self) -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            fail_first: self.fail_first,
            fail_status: StatusCode::from_u16(self.fail_status).expect("valid status"),
            fail_body: self.fail_body,
            success_status: StatusCode::from_u16(self.success_status).expect("valid status"),
            down: AtomicBool::new(false),
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
}

impl Receiver {
    pub(crate) fn builder() -> ReceiverBuilder {
        ReceiverBuilder {
            fail_first: 0,
            fail_status: 503,
            fail_body: String::new(),
            success_status: 200,
        }
    }

    pub(crate) async fn start(fail_first: usize, fail_status: u16) -> Receiver {
        Self::builder()
            .fail_first(fail_first, fail_status)
            .start()
            .await
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// While down, every request is answered with the fail status.
    pub(crate) fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
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

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut record = Recorded {
        timestamp: header(&headers, "x-outrider-timestamp"),
        signature: header(&headers, "x-outrider-signature"),
        idempotency_key: header(&headers, "idempotency-key"),
        content_type: header(&headers, "content-type"),
        authorization: header(&headers, "authorization"),
        body: body.to_vec(),
        answered: 0,
        at_ms: chrono::Utc::now().timestamp_millis(),
    };
    let key = if record.idempotency_key.is_empty() {
        String::from_utf8_lossy(&record.body).into_owned()
    } else {
        record.idempotency_key.clone()
    };
    let fail = {
        let mut requests = inner.requests.lock().expect("lock");
        let fail = requests.len() < inner.fail_first || inner.down.load(Ordering::SeqCst);
        record.answered = if fail {
            inner.fail_status.as_u16()
        } else {
            inner.success_status.as_u16()
        };
        requests.push(record);
        fail
    };
    if fail {
        let mut response = (inner.fail_status, inner.fail_body.clone()).into_response();
        if inner.fail_body.starts_with('{') {
            response.headers_mut().insert(
                "content-type",
                axum::http::HeaderValue::from_static("application/json"),
            );
        }
        return response;
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
    inner.success_status.into_response()
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
