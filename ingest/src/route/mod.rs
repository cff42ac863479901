//! Route templates from concrete paths, so that per-API features, alerts and the API
//! inventory group `/accounts/8812` and `/accounts/9141` as one endpoint.
//!
//! Three sources, combined by [`RouteResolver`]:
//! - [`openapi`]: the operations declared in OpenAPI specs (the most precise: the spec's own
//!   templates, parameter names, `deprecated` flags);
//! - [`learned`]: templates learned from traffic by per-position segment cardinality;
//! - [`template`]: a stateless heuristic that replaces id-like segments with `{id}`.
//!
//! Path conventions shared by all three: the query string and fragment are ignored; a path
//! is split on `/` and every part is a segment, empty ones included, so `/a/` has three
//! segments (`""`, `"a"`, `""`) and `//a` too. A route template always has exactly as many
//! segments as the path it was made from; a trailing slash or a doubled slash is therefore
//! a different route (servers differ on whether they redirect, strip or refuse those, so an
//! undeclared variant is worth seeing as such).

pub mod learned;
pub mod openapi;
pub mod resolver;

pub use learned::LearnedTemplates;
pub use openapi::{HttpMethod, OpenApiMatcher, Operation, RouteMatch};
pub use resolver::{Resolved, RouteConfig, RouteResolver, RouteSource};

/// True for a path segment that names an object rather than a resource: all digits, a UUID,
/// or a long hexadecimal string.
pub fn is_object_id(segment: &str) -> bool {
    let len = segment.len();
    if len == 0 {
        return false;
    }
    let all_digits = segment.bytes().all(|b| b.is_ascii_digit());
    let is_uuid = len == 36
        && segment.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    let long_hex = len >= 16 && segment.bytes().all(|b| b.is_ascii_hexdigit());
    all_digits || is_uuid || long_hex
}

/// The object ids in a path, in order.
pub fn object_ids(path: &str) -> impl Iterator<Item = &str> {
    strip_query(path).split('/').filter(|s| is_object_id(s))
}

/// The route template of a concrete path: `/accounts/8812/tx/77` -> `/accounts/{id}/tx/{id}`.
pub fn template(path: &str) -> String {
    let path = strip_query(path);
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(if is_object_id(seg) { "{id}" } else { seg });
    }
    out
}

/// The path without its query string and fragment.
pub(crate) fn strip_query(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_replace_numeric_uuid_and_hex_segments() {
        assert_eq!(template("/accounts/8812/tx/77"), "/accounts/{id}/tx/{id}");
        assert_eq!(
            template("/users/3f2b8c1e-9a7d-4e6f-8b1a-2c3d4e5f6a7b?x=1"),
            "/users/{id}"
        );
        assert_eq!(template("/files/deadbeefdeadbeef01"), "/files/{id}");
        assert_eq!(template("/v2/orders"), "/v2/orders");
    }

    #[test]
    fn object_ids_are_extracted_in_order() {
        let ids: Vec<_> = object_ids("/accounts/8812/tx/77").collect();
        assert_eq!(ids, ["8812", "77"]);
    }
}
