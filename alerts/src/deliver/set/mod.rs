//! Security Event Tokens (RFC 8417) carrying CAEP events, pushed (RFC 8935) or queued
//! for polling (RFC 8936).
//!
//! Each SET is a JWT with `typ: secevent+jwt`, signed (ES256 by default) with a key
//! whose public half [`SetTarget::jwks`] publishes; its claims are `iss`, `iat`, a
//! deterministic `jti` (the same decision and target always give the same one, so a
//! receiver dedupes redeliveries), `aud`, `txn` (the decision id), `sub_id` (an RFC 9493
//! subject identifier) and `events` with one CAEP event:
//!
//! | decision action | CAEP event |
//! |---|---|
//! | `revoke_token`, `revoke_sessions`, `block` | `session-revoked` |
//! | `step_up`, `throttle` | `token-claims-change` (`claims.outrider_action`) |
//! | `notify` | none: skipped |
//!
//! IP decisions (no RFC 9493 subject) and simulated ones are skipped. The subject is the
//! decision context's [`crate::SubjectId`] when the caller gives one; otherwise an
//! identity `sub:<s>` becomes `iss_sub` (with `subject_issuer`) or `opaque`, `email:<e>`
//! becomes `email`, and a token id becomes `opaque`.
//!
//! Push answers: 202 is delivered (other 2xx too, logged); 400 with
//! `{"err":...,"description":...}` is a permanent failure, recorded with the code and
//! not retried; 401 / 403 are authentication problems, retried and logged at error
//! level; 5xx, 408, 429 and network errors are retried.

mod config;
mod event;
mod poll;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{SetConfig, SetDelivery};
pub use event::{SetClaims, SESSION_REVOKED, TOKEN_CLAIMS_CHANGE};
pub use poll::{PollRequest, PollResponse, PolledSetState, SetErr, SetPollQueue};
pub use sink::{Issued, SetTarget, SECEVENT_CONTENT_TYPE, SECEVENT_TYP};
