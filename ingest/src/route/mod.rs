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
    let bytes = segment.as_bytes();
    if bytes.len() == 36 && is_uuid(bytes) {
        return true;
    }
    // One pass for both digit runs and hex runs (every digit is a hex digit); most
    // segments are words and stop at their first non-hex letter.
    let mut all_digits = !bytes.is_empty();
    for &b in bytes {
        if !b.is_ascii_hexdigit() {
            return false;
        }
        all_digits &= b.is_ascii_digit();
    }
    all_digits || bytes.len() >= 16
}

fn is_uuid(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| match i {
        8 | 13 | 18 | 23 => b == b'-',
        _ => b.is_ascii_hexdigit(),
    })
}

/// The object ids in a path, in order.
pub fn object_ids(path: &str) -> impl Iterator<Item = &str> {
    strip_query(path).split('/').filter(|s| is_object_id(s))
}

/// The route template of a concrete path: `/accounts/8812/tx/77` -> `/accounts/{id}/tx/{id}`.
pub fn template(path: &str) -> String {
    let path = strip_query(path);
    let mut out = String::with_capacity(path.len() + 4);
    // Most segments are kept: copy the stretches between id segments whole, not segment by
    // segment. `kept` is where the next stretch starts.
    let (mut kept, mut start) = (0, 0);
    loop {
        // Segments are a few bytes long: an inline byte search beats `split('/')`'s searcher.
        let rest = path.as_bytes().get(start..).unwrap_or_default();
        let end = rest
            .iter()
            .position(|&b| b == b'/')
            .map_or(path.len(), |i| start + i);
        if is_object_id(path.get(start..end).unwrap_or_default()) {
            out.push_str(path.get(kept..start).unwrap_or_default());
            out.push_str("{id}");
            kept = end;
        }
        if end == path.len() {
            out.push_str(path.get(kept..).unwrap_or_default());
            return out;
        }
        start = end + 1;
    }
}

/// The path without its query string and fragment.
pub(crate) fn strip_query(path: &str) -> &str {
    // Both delimiters are ASCII, so a byte search finds the same place as a char search.
    match path.bytes().position(|b| b == b'?' || b == b'#') {
        Some(end) => path.get(..end).unwrap_or(path),
        None => path,
    }
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

    /// The straightforward versions of `template`, `is_object_id` and `strip_query`, which
    /// the faster ones must match exactly.
    fn reference_template(path: &str) -> String {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let parts: Vec<&str> = path
            .split('/')
            .map(|seg| {
                if reference_is_object_id(seg) {
                    "{id}"
                } else {
                    seg
                }
            })
            .collect();
        parts.join("/")
    }

    fn reference_is_object_id(segment: &str) -> bool {
        let len = segment.len();
        let all_digits = len > 0 && segment.bytes().all(|b| b.is_ascii_digit());
        let is_uuid = len == 36
            && segment.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_hexdigit(),
            });
        let long_hex = len >= 16 && segment.bytes().all(|b| b.is_ascii_hexdigit());
        all_digits || is_uuid || long_hex
    }

    proptest::proptest! {
        #[test]
        fn templates_match_the_reference(
            path in "(/([0-9]{1,6}|[0-9a-fA-F]{14,18}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f-]{36}|[a-zé.]{0,6}|))*([?#][a-z=&/?#]*)?",
            noise in ".{0,30}",
        ) {
            for p in [path.as_str(), noise.as_str()] {
                proptest::prop_assert_eq!(template(p), reference_template(p));
                proptest::prop_assert_eq!(strip_query(p), p.split(['?', '#']).next().unwrap_or(p));
                for seg in p.split('/') {
                    proptest::prop_assert_eq!(is_object_id(seg), reference_is_object_id(seg));
                }
            }
        }
    }
}
