//! AWS API Gateway access logs in JSON, for REST APIs and HTTP APIs.
//!
//! The log format is a template of `$context` variables whose keys the user chooses, so
//! this parser reads the keys AWS uses in its console's JSON example (`requestId`, `ip`,
//! `requestTime`, `httpMethod`, `resourcePath` / `routeKey`, `status`, `protocol`,
//! `responseLength`, ...) and the spellings people commonly give the other variables,
//! flattened with dots as AWS names them (`authorizer.principalId`, `identity.apiKeyId`).
//! Nested objects are not read; the `mapping` format covers any other layout.
//!
//! | key(s) | `$context` variable | event field |
//! | --- | --- | --- |
//! | `extendedRequestId`, else `requestId` | `extendedRequestId`, `requestId` | `request_id` |
//! | `requestTimeEpoch`, else `requestTime` (CLF) | same | `ts` |
//! | `ip`, `sourceIp`, `identity.sourceIp` | `identity.sourceIp` | the peer address |
//! | `httpMethod`, else the method of `routeKey` | `httpMethod`, `routeKey` | `method` |
//! | `path`, else `resourcePath`, else the template of `routeKey` | `path`, ... | `path` (query dropped) |
//! | `resourcePath` (REST), else the template of `routeKey` (HTTP) | same | `route` |
//! | `status` | `status` | `status` |
//! | `responseLatency`, else `integrationLatency` | same | `latency_ms` |
//! | `responseLength` | `responseLength` | `bytes_out` |
//! | `userAgent`, `identity.userAgent` | `identity.userAgent` | `user_agent` |
//! | `principalId`, `authorizer.claims.sub`, `authorizer.jwt.claims.sub`, `sub`, `user`, `caller` | authorizer / IAM principals | `subject` |
//! | `clientId`, `authorizer.claims.client_id`, `authorizer.jwt.claims.client_id` | authorizer claims | `client_id` |
//! | `apiKeyId`, `identity.apiKeyId` (else `apiKey`) | `identity.apiKeyId` | `api_key_hash` (keyed hash) |
//! | `jti`, `authorizer.claims.jti`, `authorizer.jwt.claims.jti` | authorizer claims | `token_id` (`jti:<id>`) |
//!
//! Why these choices:
//! - `extendedRequestId` is preferred: callers can set `requestId` through the
//!   `x-amzn-RequestId` header, but cannot set the extended id.
//! - AWS writes `-` for a variable with no value, and quotes numbers when the template
//!   does; both are accepted everywhere.
//! - `resourcePath` / `routeKey` are the API's own route templates (`/pets/{petId}`); a
//!   greedy proxy resource (`/{proxy+}`) or HTTP's `$default` route says nothing about the
//!   API, so those fall back to [`crate::route::template`] of the concrete path.
//! - REST's `$context.path` is the path the client called, including the stage prefix
//!   (`/prod/pets/42`) on the default endpoint: it is kept as logged, because a custom
//!   domain's base path mapping changes the prefix and the stage alone cannot remove it
//!   reliably. The route template, which never has the prefix, is what features group by.
//! - `identity.sourceIp` is the address of the TCP connection to API Gateway, so it is the
//!   peer. Headers cannot be logged, so there is no `X-Forwarded-For` to consult.
//! - Requests made with the console's "Test" button log `test-invoke-source-ip` as the
//!   address; they are not client traffic and are skipped (`test_invoke`).
//! - The mTLS `identity.clientCert.serialNumber` is not a SHA-256 thumbprint, so it is not
//!   used as `cert_thumbprint`.

use serde::Deserialize;

use super::fields::{derived_request_id, path_of, present};
use super::kong::{bytes, ip, number, refuse_non_object, status, time, Scalar, Text};
use super::{check_line, classify, Format, LineParser, ParseError, Parsed, ParserContext};
use crate::event::{ApiEvent, Event};
use crate::identity::Credentials;

#[derive(Debug)]
pub struct AwsApigwParser {
    ctx: ParserContext,
}

impl AwsApigwParser {
    pub fn new(ctx: ParserContext) -> Self {
        Self { ctx }
    }
}

impl LineParser for AwsApigwParser {
    fn format(&self) -> Format {
        Format::AwsApigw
    }

    fn parse(&self, line: &[u8]) -> Result<Parsed, ParseError> {
        let text = check_line(line, self.ctx.max_line_bytes)?;
        refuse_non_object(text)?;
        let rec: AccessLog<'_> = serde_json::from_str(text).map_err(classify)?;
        if text_of(rec.ip.as_ref()).or(text_of(rec.source_ip.as_ref())) == Some(TEST_INVOKE_IP) {
            return Ok(Parsed::Skipped("test_invoke"));
        }
        self.event(text, &rec).map(|e| Parsed::Event(Event::Api(e)))
    }
}

impl AwsApigwParser {
    fn event(&self, line: &str, rec: &AccessLog<'_>) -> Result<ApiEvent, ParseError> {
        let ts = match rec.request_time_epoch.as_ref() {
            Some(epoch) if !is_absent(epoch) => time("requestTimeEpoch", Some(epoch))?,
            _ => time("requestTime", rec.request_time.as_ref())?,
        };
        let logged_ip = match text_of(rec.ip.as_ref()) {
            Some(_) => rec.ip.as_ref(),
            None => rec.source_ip.as_ref(),
        };
        let peer = ip("ip", logged_ip)?;
        let status = status("status", rec.status.as_ref())?;
        let route_key = RouteKey::parse(text_of(rec.route_key.as_ref()));
        let method = text_of(rec.http_method.as_ref())
            .or(route_key.method)
            .ok_or_else(|| ParseError::missing("httpMethod"))?;
        let resource_path = text_of(rec.resource_path.as_ref());
        let declared = resource_path.or(route_key.template);
        let path = text_of(rec.path.as_ref())
            .or(declared)
            .map(path_of)
            .ok_or_else(|| ParseError::missing("path"))?;
        let route = match declared.filter(|t| !is_greedy(t)) {
            Some(t) => t.to_owned(),
            None => crate::route::template(path),
        };
        let jti =
            first_text(&[&rec.jti, &rec.claims_jti, &rec.jwt_jti]).map(|j| format!("jti:{j}"));
        let identified = self.ctx.identity.identify(&Credentials {
            api_key: first_text(&[&rec.api_key_id, &rec.api_key]),
            peer_ip: Some(peer),
            subject: rec.subject(),
            client_id: first_text(&[&rec.client_id, &rec.claims_client_id, &rec.jwt_client_id]),
            token_id: jti.as_deref(),
            ..Credentials::default()
        });
        Ok(ApiEvent {
            ts,
            request_id: first_text(&[&rec.extended_request_id, &rec.request_id]).map_or_else(
                || derived_request_id(Format::AwsApigw, line.as_bytes()),
                str::to_owned,
            ),
            route,
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            latency_ms: match rec.response_latency.as_ref() {
                Some(l) if !is_absent(l) => number("responseLatency", Some(l))?,
                _ => number("integrationLatency", rec.integration_latency.as_ref())?,
            },
            bytes_in: 0,
            bytes_out: bytes("responseLength", rec.response_length.as_ref())?,
            client_ip: identified.client_ip.unwrap_or(peer),
            user_agent: text_of(rec.user_agent.as_ref())
                .unwrap_or_default()
                .to_owned(),
            identity: identified.identity,
            origin: Default::default(),
        })
    }
}

/// The keys read from an access-log record; every one is optional because the user
/// writes the template. Aliases are spellings of one variable, so a record holds at most one.
#[derive(Debug, Deserialize)]
struct AccessLog<'a> {
    #[serde(borrow, rename = "requestId", alias = "request_id")]
    request_id: Option<Text<'a>>,
    #[serde(borrow, rename = "extendedRequestId", alias = "extended_request_id")]
    extended_request_id: Option<Text<'a>>,
    #[serde(borrow)]
    ip: Option<Text<'a>>,
    #[serde(
        borrow,
        rename = "sourceIp",
        alias = "source_ip",
        alias = "identity.sourceIp"
    )]
    source_ip: Option<Text<'a>>,
    /// CLF: `22/Nov/2026:10:00:00 +0000` (seconds).
    #[serde(borrow, rename = "requestTime", alias = "request_time")]
    request_time: Option<Scalar<'a>>,
    /// Epoch milliseconds.
    #[serde(borrow, rename = "requestTimeEpoch", alias = "request_time_epoch")]
    request_time_epoch: Option<Scalar<'a>>,
    #[serde(borrow, rename = "httpMethod", alias = "http_method")]
    http_method: Option<Text<'a>>,
    /// REST: the resource's template, `/pets/{petId}`.
    #[serde(borrow, rename = "resourcePath", alias = "resource_path")]
    resource_path: Option<Text<'a>>,
    /// HTTP: `GET /pets/{petId}` or `$default`.
    #[serde(borrow, rename = "routeKey", alias = "route_key")]
    route_key: Option<Text<'a>>,
    #[serde(borrow)]
    path: Option<Text<'a>>,
    #[serde(borrow, alias = "statusCode", alias = "status_code")]
    status: Option<Scalar<'a>>,
    #[serde(borrow, rename = "responseLength", alias = "response_length")]
    response_length: Option<Scalar<'a>>,
    #[serde(borrow, rename = "responseLatency", alias = "response_latency")]
    response_latency: Option<Scalar<'a>>,
    #[serde(
        borrow,
        rename = "integrationLatency",
        alias = "integration_latency",
        alias = "integration.latency"
    )]
    integration_latency: Option<Scalar<'a>>,
    #[serde(
        borrow,
        rename = "userAgent",
        alias = "user_agent",
        alias = "identity.userAgent"
    )]
    user_agent: Option<Text<'a>>,
    #[serde(borrow, alias = "identity.user")]
    user: Option<Text<'a>>,
    #[serde(borrow, alias = "identity.caller")]
    caller: Option<Text<'a>>,
    #[serde(
        borrow,
        rename = "principalId",
        alias = "principal_id",
        alias = "authorizer.principalId"
    )]
    principal_id: Option<Text<'a>>,
    #[serde(
        borrow,
        rename = "authorizer.claims.sub",
        alias = "claims.sub",
        alias = "authorizer.sub"
    )]
    claims_sub: Option<Text<'a>>,
    #[serde(borrow, rename = "authorizer.jwt.claims.sub", alias = "jwt.claims.sub")]
    jwt_sub: Option<Text<'a>>,
    #[serde(borrow)]
    sub: Option<Text<'a>>,
    #[serde(
        borrow,
        rename = "clientId",
        alias = "client_id",
        alias = "authorizer.clientId",
        alias = "authorizer.client_id"
    )]
    client_id: Option<Text<'a>>,
    #[serde(
        borrow,
        rename = "authorizer.claims.client_id",
        alias = "claims.client_id"
    )]
    claims_client_id: Option<Text<'a>>,
    #[serde(
        borrow,
        rename = "authorizer.jwt.claims.client_id",
        alias = "jwt.claims.client_id"
    )]
    jwt_client_id: Option<Text<'a>>,
    /// The id of the API key, not the key.
    #[serde(
        borrow,
        rename = "apiKeyId",
        alias = "api_key_id",
        alias = "identity.apiKeyId"
    )]
    api_key_id: Option<Text<'a>>,
    /// The key itself; hashed like any API key.
    #[serde(
        borrow,
        rename = "apiKey",
        alias = "api_key",
        alias = "identity.apiKey"
    )]
    api_key: Option<Text<'a>>,
    #[serde(borrow)]
    jti: Option<Text<'a>>,
    #[serde(borrow, rename = "authorizer.claims.jti", alias = "claims.jti")]
    claims_jti: Option<Text<'a>>,
    #[serde(borrow, rename = "authorizer.jwt.claims.jti")]
    jwt_jti: Option<Text<'a>>,
}

impl AccessLog<'_> {
    /// The authenticated principal: a Lambda authorizer's `principalId`, a Cognito or JWT
    /// authorizer's `sub`, else the IAM user or caller.
    fn subject(&self) -> Option<&str> {
        first_text(&[
            &self.principal_id,
            &self.claims_sub,
            &self.jwt_sub,
            &self.sub,
            &self.user,
            &self.caller,
        ])
    }
}

/// What the console's "Test" button logs instead of a source address.
const TEST_INVOKE_IP: &str = "test-invoke-source-ip";

/// An HTTP API route key: `GET /pets/{petId}`, `ANY /{proxy+}` or `$default`.
#[derive(Debug, Default, Clone, Copy)]
struct RouteKey<'a> {
    method: Option<&'a str>,
    template: Option<&'a str>,
}

impl<'a> RouteKey<'a> {
    fn parse(key: Option<&'a str>) -> Self {
        let Some((method, template)) = key.and_then(|k| k.trim().split_once(' ')) else {
            return Self::default();
        };
        let template = template.trim();
        Self {
            method: Some(method).filter(|m| !m.is_empty() && *m != "ANY"),
            template: Some(template).filter(|t| t.starts_with('/')),
        }
    }
}

/// A greedy path variable (`{proxy+}`) matches any path: no use as a route.
fn is_greedy(template: &str) -> bool {
    template.contains("+}")
}

fn is_absent(v: &Scalar<'_>) -> bool {
    matches!(v, Scalar::Text(t) if present(Some(t)).is_none())
}

fn text_of<'s>(t: Option<&'s Text<'_>>) -> Option<&'s str> {
    present(t.map(|t| t.as_str().trim()))
}

fn first_text<'s>(candidates: &[&'s Option<Text<'_>>]) -> Option<&'s str> {
    candidates.iter().find_map(|t| text_of(t.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventTime;
    use crate::identity::{IdentityConfig, IdentityExtractor};
    use crate::parse::{ParseErrorReason, DEFAULT_MAX_LINE_BYTES};
    use proptest::prelude::*;
    use std::sync::Arc;

    /// The REST console's JSON example plus the variables people commonly add.
    const REST: &str = r#"{"requestId":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef","extendedRequestId":"Lg8Z3FjIoAMFb8g=","ip":"198.51.100.23","caller":"-","user":"-","requestTime":"22/Nov/2026:10:00:00 +0000","requestTimeEpoch":"1795341600250","httpMethod":"GET","resourcePath":"/pets/{petId}","path":"/prod/pets/42","status":"200","protocol":"HTTP/1.1","responseLength":"512","responseLatency":"38","integrationLatency":"31","userAgent":"okhttp/4.12.0","principalId":"user-7","apiKeyId":"a1b2c3d4e5"}"#;
    /// The HTTP API console's JSON example.
    const HTTP: &str = r#"{ "requestId":"JWxe7jV3IAMEVBg=", "ip": "2001:db8::7", "requestTime":"22/Nov/2026:10:00:01 +0000", "httpMethod":"POST","routeKey":"POST /orders", "status":"201","protocol":"HTTP/1.1", "responseLength":"43", "extendedRequestId": "JWxe7jV3IAMEVBg=" }"#;

    fn parser() -> AwsApigwParser {
        AwsApigwParser::new(ParserContext {
            identity: Arc::new(IdentityExtractor::with_key(
                &IdentityConfig::default(),
                b"k",
            )),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        })
    }

    fn api(line: &str) -> ApiEvent {
        match parser().parse(line.as_bytes()) {
            Ok(Parsed::Event(Event::Api(e))) => e,
            other => panic!("expected an api event, got {other:?}"),
        }
    }

    fn reason(line: &str) -> ParseErrorReason {
        parser().parse(line.as_bytes()).unwrap_err().reason
    }

    #[test]
    fn reads_a_rest_api_record() {
        let e = api(REST);
        assert_eq!(
            e.request_id, "Lg8Z3FjIoAMFb8g=",
            "the id callers cannot set"
        );
        assert_eq!(
            e.ts,
            EventTime(1_795_341_600_250),
            "epoch ms beats CLF seconds"
        );
        assert_eq!(e.route, "/pets/{petId}");
        assert_eq!(e.path, "/prod/pets/42");
        assert_eq!((e.status, e.bytes_out, e.latency_ms), (200, 512, 38.0));
        assert_eq!(e.identity.subject.as_deref(), Some("user-7"));
        let hash = e.identity.api_key_hash.unwrap();
        assert!(hash.len() == 32 && !hash.contains("a1b2"));
    }

    #[test]
    fn reads_an_http_api_record_by_its_route_key() {
        let e = api(HTTP);
        assert_eq!(e.ts, EventTime(1_795_341_601_000));
        assert_eq!((e.method.as_str(), e.route.as_str()), ("POST", "/orders"));
        assert_eq!(
            e.path, "/orders",
            "no path logged: the route key's template"
        );
        assert_eq!(e.client_ip.to_string(), "2001:db8::7");
        let default_route = HTTP.replace(
            r#""routeKey":"POST /orders""#,
            r#""routeKey":"$default","path":"/v1/items/9""#,
        );
        let e = api(&default_route);
        assert_eq!(e.route, "/v1/items/{id}");
    }

    #[test]
    fn greedy_proxies_fall_back_to_the_path_and_numbers_may_be_unquoted() {
        let line = REST
            .replace("/pets/{petId}", "/{proxy+}")
            .replace(r#""status":"200""#, r#""status":404"#)
            .replace(r#""responseLatency":"38""#, r#""responseLatency":"-""#);
        let e = api(&line);
        assert_eq!(e.route, "/prod/pets/{id}");
        assert_eq!(e.status, 404);
        assert_eq!(
            e.latency_ms, 31.0,
            "integration latency when the response's is absent"
        );
    }

    #[test]
    fn console_test_invocations_are_skipped() {
        let line = REST.replace("198.51.100.23", "test-invoke-source-ip");
        assert_eq!(
            parser().parse(line.as_bytes()),
            Ok(Parsed::Skipped("test_invoke"))
        );
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(reason("{}"), ParseErrorReason::MissingField);
        assert_eq!(
            reason(&HTTP.replace(r#""ip": "2001:db8::7","#, "")),
            ParseErrorReason::MissingField
        );
        assert_eq!(
            reason(&HTTP.replace("2001:db8::7", "-")),
            ParseErrorReason::MissingField
        );
        assert_eq!(
            reason(&REST.replace(r#""status":"200""#, r#""status":"OK""#)),
            ParseErrorReason::InvalidValue
        );
        assert_eq!(
            reason(&REST.replace(r#""ip":"198.51.100.23""#, r#""ip":42"#)),
            ParseErrorReason::WrongType
        );
        assert_eq!(reason(&HTTP[..40]), ParseErrorReason::Truncated);
        assert_eq!(
            reason(&HTTP.replace("22/Nov/2026:10:00:01 +0000", "yesterday")),
            ParseErrorReason::InvalidValue
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parser().parse(&bytes);
        }

        #[test]
        fn a_strict_prefix_is_refused(cut in 0usize..REST.len()) {
            prop_assert!(parser().parse(&REST.as_bytes()[..cut]).is_err());
        }

        #[test]
        fn quoted_and_bare_numbers_read_the_same(
            status in 100u16..600,
            len in 0u64..1 << 40,
            latency in 0u32..100_000,
            epoch in 1_000_000_000_000u64..4_000_000_000_000,
        ) {
            let with = |quote: &str| {
                REST.replace(r#""status":"200""#, &format!(r#""status":{quote}{status}{quote}"#))
                    .replace(r#""responseLength":"512""#, &format!(r#""responseLength":{quote}{len}{quote}"#))
                    .replace(r#""responseLatency":"38""#, &format!(r#""responseLatency":{quote}{latency}{quote}"#))
                    .replace(r#""requestTimeEpoch":"1795341600250""#, &format!(r#""requestTimeEpoch":{quote}{epoch}{quote}"#))
            };
            let (a, b) = (api(&with("\"")), api(&with("")));
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(a.status, status);
            prop_assert_eq!(a.bytes_out, len);
            prop_assert_eq!(a.ts.0, epoch as i64);
        }
    }
}
