//! RFC 7009 token revocation at the token server.
//!
//! For each revoking decision (`revoke_token`, `revoke_sessions`, `block`) the target
//! POSTs `application/x-www-form-urlencoded` `token=...&token_type_hint=...` to the
//! revocation endpoint, authenticated as an OAuth client with `client_secret_basic`
//! (the secret comes from an environment variable) or `private_key_jwt` (an RFC 7523
//! client assertion signed with ES256 or RS256).
//!
//! # What is sent, and when nothing is
//!
//! RFC 7009 needs the token string itself. Outrider never stores raw tokens (it keys
//! them by `jti` + `aud`, else a keyed hash), so a decision can be revoked here only
//! when the gateway passed the token along and the caller put it in the decision's
//! [`crate::DecisionContext::token`]. Everything else is recorded as *skipped*, with
//! the reason, and never retried:
//!
//! - a token decision without the token;
//! - identity decisions, unless `identity_mode = "carried_token"`, which revokes the
//!   token the decision carries (revoking a refresh token ends its session at most
//!   servers); session-wide logout through an admin API is not implemented, route
//!   identity decisions to a SET target (`session-revoked`) instead;
//! - IP decisions, simulated (shadow mode) decisions, and actions that do not revoke
//!   (`throttle`, `step_up`, `notify`).
//!
//! # Answers
//!
//! - 2xx: done (RFC 7009 answers 200 for unknown or already invalid tokens too).
//! - 503, other 5xx, 408, 429, network errors: retried with backoff.
//! - 401, 403, or 400 with `invalid_client` / `unauthorized_client`: the server refused
//!   our client credentials. Retried with backoff (and counted by the circuit breaker),
//!   each one logged at error level: an operator has to fix the credentials.
//! - 400 `unsupported_token_type`, `invalid_request` and other 4xx: rejected for good,
//!   recorded as failed.

mod config;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{ClientAuth, IdentityMode, RevocationConfig};
pub use sink::{RevocationTarget, CLIENT_ASSERTION_TYPE};
