//! Route templates from OpenAPI specs: the declared operations and a matcher from
//! (method, concrete path) to the declared template.
//!
//! Specs are read as YAML or JSON (OpenAPI 3.0 and 3.1; a Swagger 2.0 `basePath` is honoured
//! too). Each operation's route is its server base path joined with its path template, e.g.
//! server `https://api.example.com/v1` and path `/accounts/{accountId}` give
//! `/v1/accounts/{accountId}`: the spec's parameter names are kept because analysts read them.
//!
//! Matching walks a segment trie, so its cost grows with the path's depth, not with the
//! number of operations. Per segment, a literal child is tried before a mixed segment such as
//! `{name}.json`, which is tried before a whole-segment parameter (OpenAPI's rule: `/users/me`
//! beats `/users/{id}`); a branch that fails deeper falls back to the next candidate. A match
//! that declares the request's method wins over a more literal one that does not (as routers
//! do); when no template declares the method, the most specific path match is returned with
//! no operation, which the inventory reports as a shadow use.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use super::strip_query;
use crate::error::{Error, Result};

/// Server URLs whose variables expand to more base paths than this keep only the first ones:
/// a spec is a description of one API, not a generator of prefixes.
const MAX_PREFIXES_PER_SERVER_LIST: usize = 32;

/// The HTTP methods an OpenAPI path item declares operations for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Put,
    Post,
    Delete,
    Patch,
    Head,
    Options,
    Trace,
}

impl HttpMethod {
    /// In the order a path item lists them.
    pub const ALL: [HttpMethod; 8] = [
        Self::Get,
        Self::Put,
        Self::Post,
        Self::Delete,
        Self::Patch,
        Self::Head,
        Self::Options,
        Self::Trace,
    ];

    /// The method as sent on the wire (upper case).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
            Self::Post => "POST",
            Self::Delete => "DELETE",
            Self::Patch => "PATCH",
            Self::Head => "HEAD",
            Self::Options => "OPTIONS",
            Self::Trace => "TRACE",
        }
    }

    /// Case-insensitive; `None` for methods a spec cannot declare (CONNECT, PROPFIND, ...).
    pub fn parse(method: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(method))
    }

    /// The path item's field name.
    fn spec_key(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Put => "put",
            Self::Post => "post",
            Self::Delete => "delete",
            Self::Patch => "patch",
            Self::Head => "head",
            Self::Options => "options",
            Self::Trace => "trace",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One declared operation: a method on a route template (base path included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operation {
    pub method: HttpMethod,
    /// The canonical template, e.g. `/v1/accounts/{accountId}`.
    pub route: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    pub deprecated: bool,
    /// The spec file that declared it.
    pub spec: PathBuf,
}

/// The result of matching a request against the specs.
#[derive(Debug, Clone, Copy)]
pub struct RouteMatch<'a> {
    /// The matched template.
    pub route: &'a str,
    /// The operation for the request's method; `None` when the path matched a template that
    /// does not declare that method.
    pub operation: Option<&'a Operation>,
}

impl RouteMatch<'_> {
    /// Whether the specs declare this method on this route.
    pub fn declared(&self) -> bool {
        self.operation.is_some()
    }

    /// Whether the declared operation is marked `deprecated: true`.
    pub fn deprecated(&self) -> bool {
        self.operation.is_some_and(|op| op.deprecated)
    }
}

/// The declared operations of one or more specs and a trie over their route templates.
#[derive(Debug)]
pub struct OpenApiMatcher {
    /// `nodes[0]` is the root; children are indices into this arena.
    nodes: Vec<Node>,
    endpoints: Vec<Endpoint>,
    operations: Vec<Operation>,
}

#[derive(Debug, Default)]
struct Node {
    literals: HashMap<Box<str>, u32>,
    /// Mixed segments (`{name}.json`), the most literal characters first.
    patterns: Vec<(SegmentPattern, u32)>,
    param: Option<u32>,
    endpoint: Option<u32>,
}

/// A route template that ends at a trie node, with its operations by method.
#[derive(Debug)]
struct Endpoint {
    route: Box<str>,
    operations: [Option<u32>; 8],
}

/// A segment mixing literal text and parameters, e.g. `{name}.{ext}` or `v{version}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SegmentPattern {
    parts: Vec<Part>,
    literal_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Box<str>),
    Param,
}

enum Segment<'a> {
    Literal(&'a str),
    Param,
    Pattern(SegmentPattern),
}

impl Default for OpenApiMatcher {
    fn default() -> Self {
        Self {
            nodes: vec![Node::default()],
            endpoints: Vec::new(),
            operations: Vec::new(),
        }
    }
}

impl OpenApiMatcher {
    /// A matcher with no operations: every path is unmatched.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads every spec, in order; an operation declared twice keeps its first declaration.
    pub fn from_files<P: AsRef<Path>>(paths: &[P]) -> Result<Self> {
        let mut matcher = Self::new();
        for path in paths {
            matcher.load_file(path.as_ref())?;
        }
        Ok(matcher)
    }

    /// Loads one spec file: JSON when its name ends in `.json` or its text starts with `{`,
    /// YAML otherwise.
    pub fn load_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_str(&text, path)
    }

    /// Loads a spec from text; `origin` names it in errors and in each [`Operation`].
    pub fn load_str(&mut self, text: &str, origin: &Path) -> Result<()> {
        let fail =
            |detail: String| Error::Config(format!("OpenAPI spec {}: {detail}", origin.display()));
        let doc = parse_document(text, origin).map_err(fail)?;
        let declared = declared_operations(&doc).map_err(fail)?;
        for op in declared {
            self.insert(op, origin).map_err(fail)?;
        }
        Ok(())
    }

    /// Every declared operation, in declaration order.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// True when no operation has been loaded.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// The template matching `path` (its query string is ignored), preferring one that
    /// declares `method`; `None` when no template matches the path.
    pub fn match_route(&self, method: &str, path: &str) -> Option<RouteMatch<'_>> {
        let method = HttpMethod::parse(method);
        let mut fallback = None;
        let endpoint = self
            .search(0, strip_query(path).split('/'), method, &mut fallback)
            .or(fallback)?;
        let endpoint = self.endpoints.get(endpoint as usize)?;
        let operation = method
            .and_then(|m| endpoint.operations[m.index()])
            .and_then(|i| self.operations.get(i as usize));
        Some(RouteMatch {
            route: &endpoint.route,
            operation,
        })
    }

    /// Depth-first search in precedence order. Returns the first endpoint that declares the
    /// method; remembers the first endpoint reached at all in `fallback`.
    fn search(
        &self,
        node: u32,
        mut segments: std::str::Split<'_, char>,
        method: Option<HttpMethod>,
        fallback: &mut Option<u32>,
    ) -> Option<u32> {
        let node = &self.nodes[node as usize];
        let Some(segment) = segments.next() else {
            let endpoint = node.endpoint?;
            let declares = |m: HttpMethod| self.endpoints[endpoint as usize].operations[m.index()];
            if method.and_then(declares).is_some() {
                return Some(endpoint);
            }
            fallback.get_or_insert(endpoint);
            return None;
        };
        let mut descend = |child: u32| self.search(child, segments.clone(), method, fallback);
        if let Some(found) = node.literals.get(segment).and_then(|&c| descend(c)) {
            return Some(found);
        }
        for (pattern, child) in &node.patterns {
            if pattern.matches(segment) {
                if let Some(found) = descend(*child) {
                    return Some(found);
                }
            }
        }
        match node.param {
            Some(child) if !segment.is_empty() => descend(child),
            _ => None,
        }
    }

    fn insert(&mut self, op: DeclaredOperation, origin: &Path) -> Result<(), String> {
        let mut node = 0u32;
        for segment in op.route.split('/') {
            let parsed =
                parse_segment(segment).map_err(|e| format!("paths.{}: {e}", op.spec_path))?;
            node = self.child(node, parsed);
        }
        let endpoint = match self.nodes[node as usize].endpoint {
            Some(e) => e,
            None => {
                let e = to_u32(self.endpoints.len());
                self.endpoints.push(Endpoint {
                    route: op.route.into_boxed_str(),
                    operations: [None; 8],
                });
                self.nodes[node as usize].endpoint = Some(e);
                e
            }
        };
        let endpoint = &mut self.endpoints[endpoint as usize];
        let slot = &mut endpoint.operations[op.method.index()];
        if slot.is_none() {
            *slot = Some(to_u32(self.operations.len()));
            self.operations.push(Operation {
                method: op.method,
                route: endpoint.route.to_string(),
                operation_id: op.operation_id,
                deprecated: op.deprecated,
                spec: origin.to_path_buf(),
            });
        }
        Ok(())
    }

    /// The child of `node` for `segment`, created if needed.
    fn child(&mut self, node: u32, segment: Segment<'_>) -> u32 {
        let next = to_u32(self.nodes.len());
        let parent = &mut self.nodes[node as usize];
        let (child, created) = match segment {
            Segment::Literal(text) => match parent.literals.get(text) {
                Some(&c) => (c, false),
                None => {
                    parent.literals.insert(text.into(), next);
                    (next, true)
                }
            },
            Segment::Param => match parent.param {
                Some(c) => (c, false),
                None => {
                    parent.param = Some(next);
                    (next, true)
                }
            },
            Segment::Pattern(pattern) => {
                match parent.patterns.iter().find(|(p, _)| *p == pattern) {
                    Some(&(_, c)) => (c, false),
                    None => {
                        parent.patterns.push((pattern, next));
                        parent
                            .patterns
                            .sort_by_key(|(p, _)| std::cmp::Reverse(p.literal_len));
                        (next, true)
                    }
                }
            }
        };
        if created {
            self.nodes.push(Node::default());
        }
        child
    }
}

/// Arena indices: a spec with more than 4 billion segments is not one we can load anyway.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn parse_segment(segment: &str) -> Result<Segment<'_>, String> {
    if !segment.contains(['{', '}']) {
        return Ok(Segment::Literal(segment));
    }
    let mut parts = Vec::new();
    let mut rest = segment;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('{') {
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in segment `{segment}`"))?;
            let name = &after[..close];
            if name.is_empty() || name.contains('{') {
                return Err(format!("bad parameter name in segment `{segment}`"));
            }
            if parts.last() == Some(&Part::Param) {
                return Err(format!(
                    "adjacent parameters in segment `{segment}` cannot be told apart"
                ));
            }
            parts.push(Part::Param);
            rest = &after[close + 1..];
        } else {
            let end = rest.find(['{', '}']).unwrap_or(rest.len());
            if end == 0 {
                return Err(format!("unmatched `}}` in segment `{segment}`"));
            }
            parts.push(Part::Literal(rest[..end].into()));
            rest = &rest[end..];
        }
    }
    if parts == [Part::Param] {
        return Ok(Segment::Param);
    }
    let literal_len = parts
        .iter()
        .map(|p| match p {
            Part::Literal(l) => l.len(),
            Part::Param => 0,
        })
        .sum();
    Ok(Segment::Pattern(SegmentPattern { parts, literal_len }))
}

impl SegmentPattern {
    fn matches(&self, segment: &str) -> bool {
        match_parts(&self.parts, segment)
    }
}

/// Each parameter matches one or more characters; a parameter before a literal tries every
/// occurrence of that literal (templates have no adjacent parameters, see [`parse_segment`]).
fn match_parts(parts: &[Part], text: &str) -> bool {
    match parts {
        [] => text.is_empty(),
        [Part::Literal(lit), rest @ ..] => text
            .strip_prefix(&**lit)
            .is_some_and(|after| match_parts(rest, after)),
        [Part::Param] => !text.is_empty(),
        [Part::Param, Part::Literal(lit), rest @ ..] => text
            .match_indices(&**lit)
            .any(|(i, _)| i > 0 && match_parts(rest, &text[i + lit.len()..])),
        [Part::Param, Part::Param, ..] => false,
    }
}

/// An operation as read from a spec, before it enters the trie.
struct DeclaredOperation {
    method: HttpMethod,
    route: String,
    /// The `paths` key, for error messages.
    spec_path: String,
    operation_id: Option<String>,
    deprecated: bool,
}

fn parse_document(text: &str, origin: &Path) -> Result<Value, String> {
    let is_json = origin
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with('{');
    if is_json {
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
    } else {
        serde_norway::from_str(text).map_err(|e| format!("invalid YAML: {e}"))
    }
}

/// Version check, base paths and every operation of a parsed spec.
fn declared_operations(doc: &Value) -> Result<Vec<DeclaredOperation>, String> {
    let root = doc
        .as_object()
        .ok_or("expected a mapping at the top level")?;
    let prefixes = root_prefixes(root)?;
    let components = root
        .get("components")
        .and_then(|c| c.get("pathItems"))
        .and_then(Value::as_object);
    let paths = match root.get("paths") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(paths)) => paths,
        Some(_) => return Err("`paths` must be a mapping".into()),
    };
    let mut out = Vec::new();
    for (key, item) in paths {
        if key.starts_with("x-") {
            continue;
        }
        if !key.starts_with('/') || key.contains(['?', '#']) {
            return Err(format!(
                "paths.{key}: a path must start with `/` and have no query or fragment"
            ));
        }
        let item = resolve_path_item(key, item, components)?;
        let item_prefixes = match item.get("servers") {
            Some(servers) => server_prefixes(servers, &format!("paths.{key}.servers"))?,
            None => None,
        };
        for method in HttpMethod::ALL {
            let Some(op) = item.get(method.spec_key()) else {
                continue;
            };
            let at = format!("paths.{key}.{}", method.spec_key());
            let op = op
                .as_object()
                .ok_or_else(|| format!("{at}: an operation must be a mapping"))?;
            let deprecated = match op.get("deprecated") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(format!("{at}.deprecated: expected true or false")),
            };
            let operation_id = match op.get("operationId") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(format!("{at}.operationId: expected a string")),
            };
            let op_prefixes = match op.get("servers") {
                Some(servers) => server_prefixes(servers, &format!("{at}.servers"))?,
                None => None,
            };
            let chosen = op_prefixes
                .as_ref()
                .or(item_prefixes.as_ref())
                .unwrap_or(&prefixes);
            for prefix in chosen {
                out.push(DeclaredOperation {
                    method,
                    route: format!("{prefix}{key}"),
                    spec_path: key.clone(),
                    operation_id: operation_id.clone(),
                    deprecated,
                });
            }
        }
    }
    Ok(out)
}

/// The document-level base paths: OpenAPI 3's `servers` (default `/`), Swagger 2's
/// `basePath`.
fn root_prefixes(root: &Map<String, Value>) -> Result<Vec<String>, String> {
    if let Some(version) = root.get("openapi") {
        let version = match version {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err("`openapi` must be a version string".into()),
        };
        if !version.starts_with("3.") {
            return Err(format!(
                "unsupported OpenAPI version {version} (3.0 and 3.1 are supported)"
            ));
        }
        return Ok(match root.get("servers") {
            Some(servers) => server_prefixes(servers, "servers")?,
            None => None,
        }
        .unwrap_or_else(|| vec![String::new()]));
    }
    match root.get("swagger").and_then(Value::as_str) {
        Some("2.0") => {
            let base = root.get("basePath").and_then(Value::as_str).unwrap_or("");
            Ok(vec![normalise_prefix(base)])
        }
        _ => Err("not an OpenAPI 3 document: no `openapi` version field".into()),
    }
}

/// A path item, following a local `$ref` to `#/components/pathItems/...`.
fn resolve_path_item<'a>(
    key: &str,
    item: &'a Value,
    components: Option<&'a Map<String, Value>>,
) -> Result<&'a Map<String, Value>, String> {
    let item = item
        .as_object()
        .ok_or_else(|| format!("paths.{key}: a path item must be a mapping"))?;
    let Some(reference) = item.get("$ref") else {
        return Ok(item);
    };
    reference
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/pathItems/"))
        .and_then(|name| components?.get(name))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            format!(
                "paths.{key}: cannot resolve $ref {reference} (only #/components/pathItems/... \
                 within the same file; bundle multi-file specs first)"
            )
        })
}

/// The base paths of a `servers` list; `None` when the list is empty (the level above
/// applies).
fn server_prefixes(servers: &Value, at: &str) -> Result<Option<Vec<String>>, String> {
    let servers = servers
        .as_array()
        .ok_or_else(|| format!("{at}: expected a list of servers"))?;
    let mut prefixes: Vec<String> = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let url = server
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{at}[{i}]: a server needs a `url` string"))?;
        let variables = server.get("variables").and_then(Value::as_object);
        for prefix in expand_variables(url_path(url), variables) {
            let prefix = normalise_prefix(&prefix);
            if !prefixes.contains(&prefix) && prefixes.len() < MAX_PREFIXES_PER_SERVER_LIST {
                prefixes.push(prefix);
            }
        }
    }
    Ok((!prefixes.is_empty()).then_some(prefixes))
}

/// The path part of a server URL: `https://api.example.com/v1` -> `/v1`,
/// `//host/v1` -> `/v1`, relative `v1` or `./v1` -> `/v1`. Works on the raw template:
/// `{scheme}://{region}.example.com/{base}` -> `/{base}`.
fn url_path(url: &str) -> &str {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let after_authority = match url.find("://") {
        Some(i) if !url[..i].contains('/') => Some(&url[i + 3..]),
        _ => url.strip_prefix("//"),
    };
    match after_authority {
        Some(rest) => rest.find('/').map_or("", |i| &rest[i..]),
        None => {
            let mut rel = url;
            while let Some(r) = rel.strip_prefix("./").or_else(|| rel.strip_prefix("../")) {
                rel = r;
            }
            if rel == "." || rel == ".." {
                ""
            } else {
                rel
            }
        }
    }
}

/// Substitutes server variables: every `enum` value, else the `default`; an undeclared
/// variable stays a `{name}` path parameter.
fn expand_variables(path: &str, variables: Option<&Map<String, Value>>) -> Vec<String> {
    let mut results = vec![String::new()];
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + len];
        let values = variable_values(name, variables);
        let literal = &rest[..open];
        results = results
            .iter()
            .flat_map(|r| values.iter().map(move |v| format!("{r}{literal}{v}")))
            .take(MAX_PREFIXES_PER_SERVER_LIST)
            .collect();
        rest = &rest[open + len + 1..];
    }
    for r in &mut results {
        r.push_str(rest);
    }
    results
}

fn variable_values(name: &str, variables: Option<&Map<String, Value>>) -> Vec<String> {
    let Some(var) = variables.and_then(|v| v.get(name)) else {
        return vec![format!("{{{name}}}")];
    };
    let listed: Vec<String> = var
        .get("enum")
        .and_then(Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !listed.is_empty() {
        return listed;
    }
    match var.get("default").and_then(Value::as_str) {
        Some(default) => vec![default.to_owned()],
        None => vec![format!("{{{name}}}")],
    }
}

/// `""` for the root; otherwise a leading `/` and no trailing one: `v1/` -> `/v1`.
fn normalise_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/openapi")
            .join(name)
    }

    fn bank() -> OpenApiMatcher {
        OpenApiMatcher::from_files(&[testdata("bank.yaml")]).unwrap()
    }

    fn from_yaml(text: &str) -> OpenApiMatcher {
        let mut m = OpenApiMatcher::new();
        m.load_str(text, Path::new("inline.yaml")).unwrap();
        m
    }

    fn route<'a>(m: &'a OpenApiMatcher, method: &str, path: &str) -> Option<&'a str> {
        m.match_route(method, path).map(|r| r.route)
    }

    #[test]
    fn bank_spec_matches_templates_under_the_server_base_path() {
        let m = bank();
        assert_eq!(route(&m, "GET", "/v1/accounts"), Some("/v1/accounts"));
        assert_eq!(
            route(&m, "GET", "/v1/accounts/acc-123/transactions/tx9?limit=5"),
            Some("/v1/accounts/{accountId}/transactions/{transactionId}")
        );
        assert_eq!(
            route(&m, "get", "/v1/accounts/acc-123"),
            Some("/v1/accounts/{accountId}")
        );
        // Without the base path, with a trailing slash, or empty parameter: no match.
        assert_eq!(route(&m, "GET", "/accounts"), None);
        assert_eq!(route(&m, "GET", "/v1/accounts/"), None);
        assert_eq!(route(&m, "GET", "/v1/accounts//transactions"), None);
        assert_eq!(route(&m, "GET", "/v1/unknown"), None);
    }

    #[test]
    fn operations_carry_ids_and_deprecated_flags() {
        let m = bank();
        let hit = m.match_route("GET", "/v0/balance").unwrap();
        assert!(hit.declared() && hit.deprecated());
        let hit = m.match_route("POST", "/v1/payments").unwrap();
        assert!(hit.declared() && !hit.deprecated());
        assert_eq!(
            hit.operation.unwrap().operation_id.as_deref(),
            Some("createPayment")
        );
        assert!(m
            .operations()
            .iter()
            .all(|op| op.spec.ends_with("bank.yaml")));
    }

    #[test]
    fn undeclared_method_matches_the_path_without_an_operation() {
        let m = bank();
        let hit = m.match_route("DELETE", "/v1/accounts/acc-1").unwrap();
        assert_eq!(hit.route, "/v1/accounts/{accountId}");
        assert!(!hit.declared() && !hit.deprecated());
        let hit = m.match_route("PROPFIND", "/v1/accounts").unwrap();
        assert!(!hit.declared());
    }

    #[test]
    fn literal_segments_beat_parameters_and_fall_back_when_deeper_fails() {
        let m = from_yaml(
            "openapi: 3.0.3\npaths:\n  /users/me:\n    get: {}\n  /users/{id}:\n    get: {}\n    delete: {}\n  /users/{id}/orders:\n    get: {}\n  /files/{name}.json:\n    get: {}\n  /files/{file}:\n    get: {}\n",
        );
        assert_eq!(route(&m, "GET", "/users/me"), Some("/users/me"));
        assert_eq!(route(&m, "GET", "/users/42"), Some("/users/{id}"));
        assert_eq!(
            route(&m, "GET", "/users/me/orders"),
            Some("/users/{id}/orders")
        );
        // The literal template does not declare DELETE; the parameter one does.
        assert_eq!(route(&m, "DELETE", "/users/me"), Some("/users/{id}"));
        assert_eq!(
            route(&m, "GET", "/files/a.b.json"),
            Some("/files/{name}.json")
        );
        assert_eq!(route(&m, "GET", "/files/a.json.txt"), Some("/files/{file}"));
        assert_eq!(route(&m, "GET", "/files/.json"), Some("/files/{file}"));
    }

    #[test]
    fn json_spec_with_templated_servers_and_path_level_servers() {
        let m = OpenApiMatcher::from_files(&[testdata("cards.json")]).unwrap();
        // `https://{region}.cards.example.com/{version}` with version enum [v2, v3].
        assert_eq!(route(&m, "GET", "/v2/cards/c1"), Some("/v2/cards/{cardId}"));
        assert_eq!(route(&m, "GET", "/v3/cards/c1"), Some("/v3/cards/{cardId}"));
        // A path-level `servers` overrides the document's.
        assert_eq!(
            route(&m, "GET", "/internal/health"),
            Some("/internal/health")
        );
        assert_eq!(route(&m, "GET", "/v2/health"), None);
        // An operation-level `servers` overrides both.
        assert_eq!(
            route(&m, "POST", "/batch/cards/c1/block"),
            Some("/batch/cards/{cardId}/block")
        );
        let hit = m.match_route("PUT", "/v3/cards/c1").unwrap();
        assert!(hit.deprecated());
    }

    #[test]
    fn server_url_path_parts() {
        assert_eq!(url_path("https://api.example.com/v1"), "/v1");
        assert_eq!(url_path("https://api.example.com"), "");
        assert_eq!(url_path("//api.example.com/v1/?x=1"), "/v1/");
        assert_eq!(url_path("/v1"), "/v1");
        assert_eq!(url_path("./v1"), "v1");
        assert_eq!(url_path("."), "");
        assert_eq!(url_path("{scheme}://{host}/api/{v}"), "/api/{v}");
        assert_eq!(normalise_prefix("v1/"), "/v1");
        assert_eq!(normalise_prefix("/"), "");
        assert_eq!(expand_variables("/api/{v}", None), ["/api/{v}"]);
    }

    #[test]
    fn two_specs_share_one_trie_and_the_first_declaration_wins() {
        let mut m =
            from_yaml("openapi: 3.1.0\npaths:\n  /a/{x}:\n    get:\n      operationId: first\n");
        m.load_str(
            "{\"openapi\": \"3.1.0\", \"paths\": {\"/a/{y}\": {\"get\": {\"operationId\": \"second\"}, \"post\": {}}}}",
            Path::new("b.json"),
        )
        .unwrap();
        assert_eq!(m.operations().len(), 2);
        let hit = m.match_route("POST", "/a/1").unwrap();
        assert_eq!(hit.route, "/a/{x}");
        assert_eq!(hit.operation.unwrap().spec, Path::new("b.json"));
        let hit = m.match_route("GET", "/a/1").unwrap();
        assert_eq!(
            hit.operation.unwrap().operation_id.as_deref(),
            Some("first")
        );
    }

    #[test]
    fn swagger_2_base_path_and_local_path_item_refs() {
        let m = from_yaml("swagger: '2.0'\nbasePath: /api/\npaths:\n  /ping:\n    get: {}\n");
        assert_eq!(route(&m, "GET", "/api/ping"), Some("/api/ping"));
        let m = from_yaml(
            "openapi: 3.1.0\npaths:\n  /ping:\n    $ref: '#/components/pathItems/Ping'\ncomponents:\n  pathItems:\n    Ping:\n      get:\n        deprecated: true\n",
        );
        assert!(m.match_route("GET", "/ping").unwrap().deprecated());
    }

    #[test]
    fn bad_specs_name_the_file_and_the_problem() {
        let err = |text: &str| {
            let mut m = OpenApiMatcher::new();
            m.load_str(text, Path::new("specs/x.yaml"))
                .unwrap_err()
                .to_string()
        };
        let e = err("openapi: 3.0.0\npaths:\n  /a/{id:\n    get: {}\n");
        assert!(e.contains("specs/x.yaml") && e.contains("unclosed"), "{e}");
        let e = err("info: {}\n");
        assert!(e.contains("no `openapi` version"), "{e}");
        let e = err("openapi: 2.5.0\n");
        assert!(e.contains("unsupported OpenAPI version 2.5.0"), "{e}");
        let e = err("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      deprecated: maybe\n");
        assert!(e.contains("paths./a.get.deprecated"), "{e}");
        let e = err("openapi: 3.0.0\npaths:\n  a:\n    get: {}\n");
        assert!(e.contains("must start with `/`"), "{e}");
        let e = err("openapi: 3.0.0\npaths: [\n");
        assert!(e.contains("invalid YAML"), "{e}");
        let e = err("openapi: 3.0.0\npaths:\n  /a:\n    $ref: 'other.yaml#/x'\n");
        assert!(e.contains("cannot resolve $ref"), "{e}");
        let e = err("openapi: 3.0.0\npaths:\n  /a/{x}{y}:\n    get: {}\n");
        assert!(e.contains("adjacent parameters"), "{e}");
        let missing = OpenApiMatcher::from_files(&[testdata("does-not-exist.yaml")])
            .unwrap_err()
            .to_string();
        assert!(missing.contains("does-not-exist.yaml"), "{missing}");
        let mut m = OpenApiMatcher::new();
        let e = m
            .load_str("{\"openapi\": \"3.0.0\",", Path::new("y.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("y.json") && e.contains("invalid JSON"), "{e}");
    }

    #[test]
    fn yaml_number_versions_and_extension_keys_are_accepted() {
        let m = from_yaml(
            "openapi: 3.1\nservers: []\npaths:\n  x-internal: true\n  /a:\n    x-owner: payments\n    get:\n      responses:\n        200:\n          description: ok\n",
        );
        assert_eq!(route(&m, "GET", "/a"), Some("/a"));
    }
}
