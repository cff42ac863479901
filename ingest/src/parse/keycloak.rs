//! Keycloak login and admin events as JSON lines, in the shape of Keycloak's
//! `EventRepresentation` and `AdminEventRepresentation` (what the admin REST API's
//! `GET /admin/realms/{realm}/events` returns element by element, and what JSON event
//! listener SPIs write). The `jboss-logging` listener's `key=value` text is not this format.
//!
//! User events: `{ "time", "type", "realmId", "clientId", "userId", "sessionId",
//! "ipAddress", "error", "details": { "username", "grant_type", "token_id", ... } }`.
//!
//! | `type` | event | `grant_type` when `details.grant_type` is absent |
//! | --- | --- | --- |
//! | `LOGIN` | `login_success` | - |
//! | `LOGIN_ERROR`, `CLIENT_LOGIN_ERROR` | `login_failure` | `client_credentials` for the latter |
//! | `CODE_TO_TOKEN` | `token_issued` | `authorization_code` |
//! | `CLIENT_LOGIN` | `token_issued` | `client_credentials` |
//! | `TOKEN_EXCHANGE` | `token_issued` | `urn:ietf:params:oauth:grant-type:token-exchange` |
//! | `OAUTH2_DEVICE_CODE_TO_TOKEN`, `AUTHREQID_TO_TOKEN`, `PERMISSION_TOKEN`, `JWT_BEARER`, `OAUTH2_EXTENSION_GRANT` | `token_issued` | the grant's URN |
//! | `REFRESH_TOKEN` | `token_refreshed` | `refresh_token` |
//! | `LOGOUT` | `logout` | - |
//! | `REVOKE_GRANT` | `token_revoked` | - |
//! | any other `*_ERROR` whose `error` is `invalid_client_credentials` or `invalid_user_credentials` | `login_failure` | the grant's |
//! | anything else (`REFRESH_TOKEN_ERROR`, `CODE_TO_TOKEN_ERROR`, `INTROSPECT_TOKEN`, ...) | skipped, labelled with the snake_case type | |
//!
//! Why these choices:
//! - `subject` is Keycloak's `userId` (a UUID), because that is the `sub` of the tokens it
//!   issues, so token-server and gateway views of one user share the identity key
//!   `sub:<userId>`. A failed login's subject is `details.username`, the name that was
//!   tried (the user may not exist), falling back to `userId`.
//! - `CLIENT_LOGIN` (client credentials) keeps `userId` as the subject: it is the client's
//!   service-account user, which is the `sub` of the tokens the grant issues.
//! - `client_id` is `clientId`, except that a `REVOKE_GRANT` names the client whose grant
//!   was revoked (`details.revoked_client`) rather than the account console that did it.
//! - `token_id` is `jti:<details.token_id>` (for a revocation, else the refresh token's id),
//!   the form the identity extractor gives a JWT without an audience.
//! - A wrong client secret or password presented at any endpoint is a credential guess, so
//!   those `*_ERROR` events are failures whatever the endpoint. Other token-endpoint errors
//!   (a replayed, revoked or expired refresh token or code) have no event kind yet and are
//!   skipped with their type as the label, so they stay countable.
//! - `ipAddress` is the client address Keycloak resolved (from its proxy settings); there is
//!   no `X-Forwarded-For` here. Keycloak logs no user agent.
//!
//! Admin events: `{ "time", "realmId", "authDetails": { "realmId", "clientId", "userId",
//! "ipAddress" }, "operationType", "resourceType", "resourcePath", "representation",
//! "error" }`. Those that revoke sessions or tokens become `token_revoked` with the affected
//! user as subject and the admin's address as `client_ip`: `DELETE users/{id}` (the user and
//! every session), `DELETE users/{id}/sessions`, `DELETE users/{id}/consents/{client}` (also
//! revokes the client's offline tokens), `DELETE sessions/{id}`, `ACTION users/{id}/logout`,
//! `ACTION logout-all`. Every other admin event, and any with an `error`, is skipped.

use std::borrow::Cow;

use serde::Deserialize;

use super::fields::present;
use super::kong::{ip, refuse_non_object, time, Scalar, Text};
use super::{check_line, classify, Format, LineParser, ParseError, Parsed, ParserContext};
use crate::event::{Event, EventTime, TokenEvent, TokenEventKind};

#[derive(Debug)]
pub struct KeycloakParser {
    ctx: ParserContext,
}

impl KeycloakParser {
    pub fn new(ctx: ParserContext) -> Self {
        Self { ctx }
    }
}

impl LineParser for KeycloakParser {
    fn format(&self) -> Format {
        Format::Keycloak
    }

    fn parse(&self, line: &[u8]) -> Result<Parsed, ParseError> {
        let text = check_line(line, self.ctx.max_line_bytes)?;
        refuse_non_object(text)?;
        let rec: KeycloakEvent<'_> = serde_json::from_str(text).map_err(classify)?;
        let ts = time("time", rec.time.as_ref())?;
        if let Some(kind) = text_of(rec.kind.as_ref()) {
            return user_event(ts, kind, &rec);
        }
        if rec.operation_type.is_some() || rec.auth_details.is_some() {
            return admin_event(ts, &rec);
        }
        Err(ParseError::missing("type"))
    }
}

/// The fields of both event representations; a user event has `type`, an admin event
/// `operationType`.
#[derive(Debug, Deserialize)]
struct KeycloakEvent<'a> {
    #[serde(borrow)]
    time: Option<Scalar<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow, rename = "clientId")]
    client_id: Option<Text<'a>>,
    #[serde(borrow, rename = "userId")]
    user_id: Option<Text<'a>>,
    #[serde(borrow, rename = "ipAddress")]
    ip_address: Option<Text<'a>>,
    #[serde(borrow)]
    error: Option<Text<'a>>,
    #[serde(borrow)]
    details: Option<Details<'a>>,
    #[serde(borrow, rename = "operationType")]
    operation_type: Option<Text<'a>>,
    #[serde(borrow, rename = "resourcePath")]
    resource_path: Option<Text<'a>>,
    #[serde(borrow, rename = "authDetails")]
    auth_details: Option<AuthDetails<'a>>,
}

/// The entries of `details` Outrider reads (Keycloak's `Details` constants).
#[derive(Debug, Deserialize)]
struct Details<'a> {
    #[serde(borrow)]
    username: Option<Text<'a>>,
    #[serde(borrow)]
    grant_type: Option<Text<'a>>,
    /// The issued access token's `jti`.
    #[serde(borrow)]
    token_id: Option<Text<'a>>,
    #[serde(borrow)]
    refresh_token_id: Option<Text<'a>>,
    /// On `REVOKE_GRANT` from the account console: the client whose grant was revoked
    /// (`clientId` is then the console itself).
    #[serde(borrow)]
    revoked_client: Option<Text<'a>>,
}

#[derive(Debug, Deserialize)]
struct AuthDetails<'a> {
    #[serde(borrow, rename = "ipAddress")]
    ip_address: Option<Text<'a>>,
}

fn user_event(ts: EventTime, kind: &str, rec: &KeycloakEvent<'_>) -> Result<Parsed, ParseError> {
    let kind = upper(kind);
    let (event, default_grant) = match classify_type(&kind, text_of(rec.error.as_ref())) {
        Ok(mapped) => mapped,
        Err(label) => return Ok(Parsed::Skipped(label)),
    };
    let details = rec.details.as_ref();
    let user_id = text_of(rec.user_id.as_ref());
    let username = text_of(details.and_then(|d| d.username.as_ref()));
    let subject = match event {
        TokenEventKind::LoginFailure => username.or(user_id),
        _ => user_id.or(username),
    };
    let token_id = match event {
        TokenEventKind::TokenRevoked => text_of(details.and_then(|d| d.token_id.as_ref()))
            .or_else(|| text_of(details.and_then(|d| d.refresh_token_id.as_ref()))),
        _ => text_of(details.and_then(|d| d.token_id.as_ref())),
    };
    Ok(Parsed::Event(Event::Token(TokenEvent {
        ts,
        event,
        subject: subject.map(str::to_owned),
        client_id: text_of(details.and_then(|d| d.revoked_client.as_ref()))
            .filter(|_| event == TokenEventKind::TokenRevoked)
            .or_else(|| text_of(rec.client_id.as_ref()))
            .map(str::to_owned),
        grant_type: text_of(details.and_then(|d| d.grant_type.as_ref()))
            .or(default_grant)
            .map(str::to_owned),
        token_id: token_id.map(|t| format!("jti:{t}")),
        client_ip: ip("ipAddress", rec.ip_address.as_ref())?,
        user_agent: String::new(),
    })))
}

/// A user event type's kind and default grant, or the label it is skipped with.
fn classify_type(
    kind: &str,
    error: Option<&str>,
) -> Result<(TokenEventKind, Option<&'static str>), &'static str> {
    use TokenEventKind::*;
    match kind {
        "LOGIN" => Ok((LoginSuccess, None)),
        "LOGIN_ERROR" => Ok((LoginFailure, None)),
        "CLIENT_LOGIN_ERROR" => Ok((LoginFailure, default_grant("CLIENT_LOGIN"))),
        "REFRESH_TOKEN" => Ok((TokenRefreshed, default_grant(kind))),
        "LOGOUT" => Ok((Logout, None)),
        "REVOKE_GRANT" => Ok((TokenRevoked, None)),
        "CODE_TO_TOKEN"
        | "CLIENT_LOGIN"
        | "TOKEN_EXCHANGE"
        | "OAUTH2_DEVICE_CODE_TO_TOKEN"
        | "AUTHREQID_TO_TOKEN"
        | "PERMISSION_TOKEN"
        | "JWT_BEARER"
        | "OAUTH2_EXTENSION_GRANT" => Ok((TokenIssued, default_grant(kind))),
        _ => match kind.strip_suffix("_ERROR") {
            Some(base) if is_credential_error(error) => Ok((LoginFailure, default_grant(base))),
            _ => Err(skip_label(kind)),
        },
    }
}

/// The OAuth `grant_type` a token-endpoint event type stands for.
fn default_grant(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "CODE_TO_TOKEN" => "authorization_code",
        "CLIENT_LOGIN" => "client_credentials",
        "REFRESH_TOKEN" => "refresh_token",
        "TOKEN_EXCHANGE" => "urn:ietf:params:oauth:grant-type:token-exchange",
        "OAUTH2_DEVICE_CODE_TO_TOKEN" => "urn:ietf:params:oauth:grant-type:device_code",
        "AUTHREQID_TO_TOKEN" => "urn:openid:params:grant-type:ciba",
        "PERMISSION_TOKEN" => "urn:ietf:params:oauth:grant-type:uma-ticket",
        "JWT_BEARER" => "urn:ietf:params:oauth:grant-type:jwt-bearer",
        _ => return None,
    })
}

/// Keycloak's `Errors` for a wrong secret or password: a guess, wherever it was presented.
fn is_credential_error(error: Option<&str>) -> bool {
    matches!(
        error,
        Some("invalid_client_credentials" | "invalid_user_credentials")
    )
}

/// Keycloak's event types in snake_case, for skip labels (which must be `'static`).
const EVENT_TYPES: &[&str] = &[
    "login",
    "login_error",
    "register",
    "register_error",
    "logout",
    "logout_error",
    "code_to_token",
    "code_to_token_error",
    "client_login",
    "client_login_error",
    "refresh_token",
    "refresh_token_error",
    "validate_access_token",
    "validate_access_token_error",
    "introspect_token",
    "introspect_token_error",
    "federated_identity_link",
    "federated_identity_link_error",
    "remove_federated_identity",
    "remove_federated_identity_error",
    "update_email",
    "update_email_error",
    "update_profile",
    "update_profile_error",
    "update_password",
    "update_password_error",
    "update_totp",
    "update_totp_error",
    "verify_email",
    "verify_email_error",
    "verify_profile",
    "verify_profile_error",
    "remove_totp",
    "remove_totp_error",
    "grant_consent",
    "grant_consent_error",
    "update_consent",
    "update_consent_error",
    "revoke_grant",
    "revoke_grant_error",
    "send_verify_email",
    "send_verify_email_error",
    "send_reset_password",
    "send_reset_password_error",
    "send_identity_provider_link",
    "send_identity_provider_link_error",
    "reset_password",
    "reset_password_error",
    "restart_authentication",
    "restart_authentication_error",
    "invalid_signature",
    "invalid_signature_error",
    "register_node",
    "register_node_error",
    "unregister_node",
    "unregister_node_error",
    "user_info_request",
    "user_info_request_error",
    "identity_provider_link_account",
    "identity_provider_link_account_error",
    "identity_provider_login",
    "identity_provider_login_error",
    "identity_provider_first_login",
    "identity_provider_first_login_error",
    "identity_provider_post_login",
    "identity_provider_post_login_error",
    "identity_provider_response",
    "identity_provider_response_error",
    "identity_provider_retrieve_token",
    "identity_provider_retrieve_token_error",
    "impersonate",
    "impersonate_error",
    "custom_required_action",
    "custom_required_action_error",
    "execute_actions",
    "execute_actions_error",
    "execute_action_token",
    "execute_action_token_error",
    "client_info",
    "client_info_error",
    "client_register",
    "client_register_error",
    "client_update",
    "client_update_error",
    "client_delete",
    "client_delete_error",
    "client_initiated_account_linking",
    "client_initiated_account_linking_error",
    "token_exchange",
    "token_exchange_error",
    "oauth2_device_auth",
    "oauth2_device_auth_error",
    "oauth2_device_verify_user_code",
    "oauth2_device_verify_user_code_error",
    "oauth2_device_code_to_token",
    "oauth2_device_code_to_token_error",
    "authreqid_to_token",
    "authreqid_to_token_error",
    "permission_token",
    "permission_token_error",
    "delete_account",
    "delete_account_error",
    "pushed_authorization_request",
    "pushed_authorization_request_error",
    "user_disabled_by_permanent_lockout",
    "user_disabled_by_permanent_lockout_error",
    "user_disabled_by_temporary_lockout",
    "user_disabled_by_temporary_lockout_error",
    "oauth2_extension_grant",
    "oauth2_extension_grant_error",
    "jwt_bearer",
    "jwt_bearer_error",
    "update_credential",
    "update_credential_error",
    "remove_credential",
    "remove_credential_error",
    "federated_identity_override_link",
    "federated_identity_override_link_error",
    "invite_org",
    "invite_org_error",
    "user_session_deleted",
    "user_session_deleted_error",
];

/// The label a skipped user event is counted under; types newer than this list share one.
fn skip_label(kind: &str) -> &'static str {
    EVENT_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(kind))
        .copied()
        .unwrap_or("other_user_event")
}

fn admin_event(ts: EventTime, rec: &KeycloakEvent<'_>) -> Result<Parsed, ParseError> {
    let operation =
        text_of(rec.operation_type.as_ref()).ok_or_else(|| ParseError::missing("operationType"))?;
    if text_of(rec.error.as_ref()).is_some() {
        return Ok(Parsed::Skipped("admin_event_error"));
    }
    let path = text_of(rec.resource_path.as_ref()).unwrap_or_default();
    let Some(revoked) = revocation(&upper(operation), path) else {
        return Ok(Parsed::Skipped("admin_event"));
    };
    let auth = rec.auth_details.as_ref();
    Ok(Parsed::Event(Event::Token(TokenEvent {
        ts,
        event: TokenEventKind::TokenRevoked,
        subject: revoked.user.map(str::to_owned),
        client_id: revoked.client.map(str::to_owned),
        grant_type: None,
        token_id: None,
        client_ip: ip(
            "authDetails.ipAddress",
            auth.and_then(|a| a.ip_address.as_ref()),
        )?,
        user_agent: String::new(),
    })))
}

/// Whose sessions or tokens an admin operation revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Revoked<'a> {
    user: Option<&'a str>,
    client: Option<&'a str>,
}

fn revocation<'a>(operation: &str, resource_path: &'a str) -> Option<Revoked<'a>> {
    let mut segments = resource_path.trim_matches('/').split('/');
    let parts = [
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ];
    if segments.next().is_some() {
        return None;
    }
    let user = |id: &'a str, client: Option<&'a str>| {
        (!id.is_empty()).then_some(Revoked {
            user: Some(id),
            client: client.filter(|c| !c.is_empty()),
        })
    };
    let nobody = Revoked {
        user: None,
        client: None,
    };
    match (operation, parts) {
        ("DELETE", [Some("users"), Some(id), None, None]) => user(id, None),
        ("DELETE", [Some("users"), Some(id), Some("sessions"), None]) => user(id, None),
        ("DELETE", [Some("users"), Some(id), Some("consents"), Some(client)]) => {
            user(id, Some(client))
        }
        ("ACTION", [Some("users"), Some(id), Some("logout"), None]) => user(id, None),
        ("DELETE", [Some("sessions"), Some(id), None, None]) if !id.is_empty() => Some(nobody),
        ("ACTION", [Some("logout-all"), None, None, None]) => Some(nobody),
        _ => None,
    }
}

fn text_of<'s>(t: Option<&'s Text<'_>>) -> Option<&'s str> {
    present(t.map(|t| t.as_str().trim()))
}

/// Event types and operations are upper case; some listeners write them otherwise.
fn upper(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_lowercase()) {
        Cow::Owned(s.to_ascii_uppercase())
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{IdentityConfig, IdentityExtractor};
    use crate::parse::{ParseErrorReason, DEFAULT_MAX_LINE_BYTES};
    use proptest::prelude::*;
    use std::sync::Arc;

    const USER: &str = "3f2b8c1e-9a7d-4e6f-8b1a-2c3d4e5f6a7b";
    const CODE_TO_TOKEN: &str = r#"{"id":"9d5a","time":1795341600250,"type":"CODE_TO_TOKEN","realmId":"bank","clientId":"web-app","userId":"3f2b8c1e-9a7d-4e6f-8b1a-2c3d4e5f6a7b","sessionId":"s-1","ipAddress":"203.0.113.9","details":{"token_id":"onrtac:7c1e","grant_type":"authorization_code","refresh_token_type":"Refresh","scope":"openid profile","refresh_token_id":"r-1","code_id":"s-1","client_auth_method":"client-secret"}}"#;

    fn parser() -> KeycloakParser {
        KeycloakParser::new(ParserContext {
            identity: Arc::new(IdentityExtractor::with_key(
                &IdentityConfig::default(),
                b"k",
            )),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        })
    }

    fn token(line: &str) -> TokenEvent {
        match parser().parse(line.as_bytes()) {
            Ok(Parsed::Event(Event::Token(e))) => e,
            other => panic!("expected a token event, got {other:?}"),
        }
    }

    fn user_line(kind: &str, error: Option<&str>, details: &str) -> String {
        let error = error.map_or(String::new(), |e| format!(r#""error":"{e}","#));
        format!(
            r#"{{"time":1795341600000,"type":"{kind}","realmId":"bank","clientId":"web-app","userId":"{USER}","ipAddress":"198.51.100.7",{error}"details":{{{details}}}}}"#
        )
    }

    #[test]
    fn a_code_exchange_issues_a_token_joinable_with_the_gateway() {
        let e = token(CODE_TO_TOKEN);
        assert_eq!(e.event, TokenEventKind::TokenIssued);
        assert_eq!(e.ts, EventTime(1_795_341_600_250));
        assert_eq!(e.subject.as_deref(), Some(USER));
        assert_eq!(e.client_id.as_deref(), Some("web-app"));
        assert_eq!(e.grant_type.as_deref(), Some("authorization_code"));
        assert_eq!(e.token_id.as_deref(), Some("jti:onrtac:7c1e"));
        assert_eq!(e.identity_key(), format!("sub:{USER}"));
    }

    #[test]
    fn failures_name_what_was_tried_and_credential_errors_anywhere_are_failures() {
        let e = token(&user_line(
            "LOGIN_ERROR",
            Some("invalid_user_credentials"),
            r#""username":"alice","auth_method":"openid-connect","grant_type":"password""#,
        ));
        assert_eq!(e.event, TokenEventKind::LoginFailure);
        assert_eq!(e.subject.as_deref(), Some("alice"));
        assert_eq!(e.grant_type.as_deref(), Some("password"));
        let e = token(&user_line(
            "CODE_TO_TOKEN_ERROR",
            Some("invalid_client_credentials"),
            "",
        ));
        assert_eq!(e.event, TokenEventKind::LoginFailure);
        assert_eq!(e.grant_type.as_deref(), Some("authorization_code"));
        let replay = user_line("REFRESH_TOKEN_ERROR", Some("invalid_token"), "");
        assert_eq!(
            parser().parse(replay.as_bytes()),
            Ok(Parsed::Skipped("refresh_token_error"))
        );
    }

    #[test]
    fn a_revoked_grant_names_the_revoked_client() {
        let line = user_line("REVOKE_GRANT", None, r#""revoked_client":"mobile-app""#)
            .replace(r#""clientId":"web-app""#, r#""clientId":"account-console""#);
        let e = token(&line);
        assert_eq!(e.event, TokenEventKind::TokenRevoked);
        assert_eq!(e.client_id.as_deref(), Some("mobile-app"));
    }

    #[test]
    fn the_type_table() {
        use TokenEventKind::*;
        for (kind, want) in [
            ("LOGIN", Some(LoginSuccess)),
            ("login", Some(LoginSuccess)),
            ("CLIENT_LOGIN", Some(TokenIssued)),
            ("CLIENT_LOGIN_ERROR", Some(LoginFailure)),
            ("REFRESH_TOKEN", Some(TokenRefreshed)),
            ("TOKEN_EXCHANGE", Some(TokenIssued)),
            ("LOGOUT", Some(Logout)),
            ("REVOKE_GRANT", Some(TokenRevoked)),
            ("INTROSPECT_TOKEN", None),
            ("UPDATE_PASSWORD", None),
        ] {
            let got = classify_type(&upper(kind), Some("some_error"))
                .ok()
                .map(|(k, _)| k);
            assert_eq!(got, want, "{kind}");
        }
        assert_eq!(
            classify_type("INTROSPECT_TOKEN", None),
            Err("introspect_token")
        );
        assert_eq!(
            classify_type("SOMETHING_NEW", None),
            Err("other_user_event")
        );
    }

    #[test]
    fn admin_revocations_and_other_admin_events() {
        let admin = |op: &str, path: &str| {
            format!(
                r#"{{"time":1795341600000,"realmId":"bank","authDetails":{{"realmId":"master","clientId":"security-admin-console","userId":"adm-1","ipAddress":"10.1.2.3"}},"operationType":"{op}","resourceType":"USER","resourcePath":"{path}"}}"#
            )
        };
        let e = token(&admin("ACTION", &format!("users/{USER}/logout")));
        assert_eq!(e.event, TokenEventKind::TokenRevoked);
        assert_eq!(e.subject.as_deref(), Some(USER));
        assert_eq!(e.client_ip.to_string(), "10.1.2.3");
        let e = token(&admin("DELETE", &format!("users/{USER}/consents/web-app")));
        assert_eq!(e.client_id.as_deref(), Some("web-app"));
        assert_eq!(token(&admin("ACTION", "logout-all")).subject, None);
        let skipped = parser().parse(admin("UPDATE", &format!("users/{USER}")).as_bytes());
        assert_eq!(skipped, Ok(Parsed::Skipped("admin_event")));
    }

    #[test]
    fn bad_lines_are_named() {
        let reason = |l: &str| parser().parse(l.as_bytes()).unwrap_err().reason;
        assert_eq!(
            reason(r#"{"type":"LOGIN"}"#),
            ParseErrorReason::MissingField
        );
        assert_eq!(
            reason(r#"{"time":1795341600000}"#),
            ParseErrorReason::MissingField
        );
        assert_eq!(
            reason(&CODE_TO_TOKEN.replace(r#""ipAddress":"203.0.113.9","#, "")),
            ParseErrorReason::MissingField
        );
        assert_eq!(
            reason(&CODE_TO_TOKEN.replace("203.0.113.9", "unknown")),
            ParseErrorReason::InvalidValue
        );
        assert_eq!(
            reason(&CODE_TO_TOKEN.replace(r#""type":"CODE_TO_TOKEN""#, r#""type":3"#)),
            ParseErrorReason::WrongType
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parser().parse(&bytes);
        }

        #[test]
        fn a_strict_prefix_is_refused(cut in 0usize..CODE_TO_TOKEN.len()) {
            prop_assert!(parser().parse(&CODE_TO_TOKEN.as_bytes()[..cut]).is_err());
        }

        /// Every known type parses; an error event never becomes a success.
        #[test]
        fn every_type_parses_and_errors_never_succeed(
            i in 0usize..EVENT_TYPES.len(),
            error in prop::sample::select(vec!["invalid_user_credentials", "invalid_token", "expired_code"]),
        ) {
            let kind = EVENT_TYPES[i].to_ascii_uppercase();
            let is_error = kind.ends_with("_ERROR");
            let line = user_line(&kind, is_error.then_some(error), r#""username":"bob""#);
            match parser().parse(line.as_bytes()) {
                Ok(Parsed::Event(Event::Token(e))) => {
                    prop_assert!(!is_error || e.event == TokenEventKind::LoginFailure, "{kind}");
                    prop_assert_eq!(e.client_ip.to_string(), "198.51.100.7");
                }
                Ok(Parsed::Skipped(label)) => prop_assert_eq!(label, EVENT_TYPES[i]),
                other => prop_assert!(false, "{kind}: {other:?}"),
            }
        }
    }
}
