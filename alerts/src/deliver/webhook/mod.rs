//! Signed webhook delivery of decisions (the generic target).
//!
//! Each request carries `X-Outrider-Timestamp` (unix seconds) and
//! `X-Outrider-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, so a
//! receiver can check both origin and freshness with [`verify`], and `Idempotency-Key`
//! (the decision id) so it can ignore redeliveries. The body is the decision as JSON.

mod config;
pub(crate) mod sink;
#[cfg(test)]
mod tests;

pub use config::WebhookConfig;
pub use sink::{sign, verify, WebhookSink, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
