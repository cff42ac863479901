//! Route templates learned from traffic, for APIs without a spec.
//!
//! A trie of path segments: each node is a position in a path, given the template of the
//! segments before it. Rules, per segment at a node:
//! 1. an empty segment (`//`, trailing `/`) stays empty: it is never a parameter;
//! 2. a segment that [`looks_like_param`] (numeric, UUID, long hex, date, email, IP address,
//!    digit-heavy or random-looking token, longer than [`MAX_LITERAL_LEN`]) is a parameter
//!    from its first sighting, as in the stateless [`super::template`];
//! 3. any other segment is a literal while the node has seen at most `threshold` (default
//!    50) distinct literals; the first one past that turns the node into a parameter node:
//!    its literal children are dropped and, from then on, every non-empty segment there is
//!    `{param}`. A parameter node never turns back, so templates only ever get coarser.
//!    So `/users/me` is a literal until 50 other user names have been seen after `/users/`;
//!    then it is `/users/{param}` like them (only a spec can tell `me` apart).
//!
//! Parameters are written `{param}`. Templates depend only on the order of observations, so
//! a replay gives the same templates.
//!
//! Memory is bounded by `max_nodes` trie nodes (default [`DEFAULT_MAX_NODES`]). A node holds
//! at most `threshold` literal keys of at most [`MAX_LITERAL_LEN`] bytes, and each key belongs
//! to exactly one child node, so the whole trie takes at most about
//! `max_nodes × (size_of::<Node>() + MAX_LITERAL_LEN + hash-map slot overhead)`, about 200
//! bytes a node: 2 MB for the default. When the trie is full, a segment that has no node is
//! written `{param}` (as if it were high-cardinality): that keeps the number of distinct
//! templates bounded too, which matters to everything keyed by route downstream.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{is_object_id, strip_query};

/// How a learned parameter segment is written.
pub const PARAM: &str = "{param}";
/// Distinct literal values a position may have before it becomes a parameter.
pub const DEFAULT_PARAM_THRESHOLD: usize = 50;
/// Default cap on trie nodes (about 2 MB, see the module docs).
pub const DEFAULT_MAX_NODES: usize = 10_000;
/// Longer segments are parameters: a route literal is a short word, not a blob.
pub const MAX_LITERAL_LEN: usize = 64;

/// Templates learned from the paths seen so far; see the module docs for the rules.
#[derive(Debug)]
pub struct LearnedTemplates {
    /// Arena; `nodes[0]` is the root. Freed nodes are reset and reused via `free`.
    nodes: Vec<Node>,
    free: Vec<u32>,
    live: usize,
    max_nodes: usize,
    threshold: usize,
}

#[derive(Debug, Default)]
struct Node {
    literals: HashMap<Box<str>, u32>,
    empty: Option<u32>,
    param: Option<u32>,
    /// Too many distinct literals were seen here: every non-empty segment is a parameter.
    is_param: bool,
}

/// Where a segment leads and how it is written.
enum Step<'a> {
    Literal(&'a str, Option<u32>),
    Param(Option<u32>),
}

impl Default for LearnedTemplates {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_NODES)
    }
}

impl LearnedTemplates {
    /// A learner with at most `max_nodes` trie nodes (at least 1) and the default threshold.
    pub fn new(max_nodes: usize) -> Self {
        Self::with_threshold(max_nodes, DEFAULT_PARAM_THRESHOLD)
    }

    /// A learner whose positions become parameters past `threshold` distinct literals.
    pub fn with_threshold(max_nodes: usize, threshold: usize) -> Self {
        Self {
            nodes: vec![Node::default()],
            free: Vec::new(),
            live: 1,
            max_nodes: max_nodes.max(1),
            threshold,
        }
    }

    /// Trie nodes in use (never more than the `max_nodes` given at construction).
    pub fn node_count(&self) -> usize {
        self.live
    }

    /// Learns from one concrete path (its query string is ignored).
    pub fn observe(&mut self, path: &str) {
        self.walk(path, None);
    }

    /// Learns from `path` and returns its template afterwards, in one walk: what the
    /// resolver calls for every request.
    pub fn observe_template(&mut self, path: &str) -> String {
        let mut out = String::with_capacity(path.len() + 8);
        self.walk(path, Some(&mut out));
        out
    }

    /// The template of `path` given what has been learned, without learning from it. A
    /// segment never seen at its position is written as is, unless it looks like a
    /// parameter or the trie is full.
    pub fn template(&self, path: &str) -> String {
        let path = strip_query(path);
        let mut out = String::with_capacity(path.len() + 8);
        let mut node = Some(0);
        for (i, segment) in path.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            let step = match node {
                Some(n) => self.lookup(n, segment),
                None => self.off_trie(segment),
            };
            node = emit(step, &mut out);
        }
        out
    }

    fn walk(&mut self, path: &str, mut out: Option<&mut String>) {
        let mut node = Some(0);
        for (i, segment) in strip_query(path).split('/').enumerate() {
            let step = match node {
                Some(n) => self.learn(n, segment),
                None => self.off_trie(segment),
            };
            node = match out.as_deref_mut() {
                Some(out) => {
                    if i > 0 {
                        out.push('/');
                    }
                    emit(step, out)
                }
                None => next_node(&step),
            };
        }
    }

    fn is_full(&self) -> bool {
        self.live >= self.max_nodes
    }

    /// Read-only step: follows existing nodes only.
    fn lookup<'s>(&self, node: u32, segment: &'s str) -> Step<'s> {
        let n = &self.nodes[node as usize];
        if segment.is_empty() {
            return Step::Literal(segment, n.empty);
        }
        if n.is_param {
            return Step::Param(n.param);
        }
        // Known literals first: the common case skips the id heuristics (an id-like segment
        // is never stored as a literal, so the order does not change the outcome).
        if let Some(&child) = n.literals.get(segment) {
            return Step::Literal(segment, Some(child));
        }
        if looks_like_param(segment) || self.is_full() {
            Step::Param(n.param)
        } else {
            Step::Literal(segment, None)
        }
    }

    /// Learning step: creates the child it needs while there is room.
    fn learn<'s>(&mut self, node: u32, segment: &'s str) -> Step<'s> {
        let idx = node as usize;
        if segment.is_empty() {
            let child = self.child_or_alloc(idx, |n| &mut n.empty);
            return Step::Literal(segment, child);
        }
        if !self.nodes[idx].is_param {
            if let Some(&child) = self.nodes[idx].literals.get(segment) {
                return Step::Literal(segment, Some(child));
            }
        }
        if self.nodes[idx].is_param || looks_like_param(segment) {
            return Step::Param(self.child_or_alloc(idx, |n| &mut n.param));
        }
        if self.nodes[idx].literals.len() >= self.threshold {
            self.make_param(idx);
            return Step::Param(self.child_or_alloc(idx, |n| &mut n.param));
        }
        match self.alloc() {
            Some(child) => {
                self.nodes[idx].literals.insert(segment.into(), child);
                Step::Literal(segment, Some(child))
            }
            None => Step::Param(self.nodes[idx].param),
        }
    }

    /// Outside the trie (a child could not be created, or was never seen).
    fn off_trie<'s>(&self, segment: &'s str) -> Step<'s> {
        if !segment.is_empty() && (self.is_full() || looks_like_param(segment)) {
            Step::Param(None)
        } else {
            Step::Literal(segment, None)
        }
    }

    fn child_or_alloc(
        &mut self,
        idx: usize,
        slot: fn(&mut Node) -> &mut Option<u32>,
    ) -> Option<u32> {
        if let Some(child) = *slot(&mut self.nodes[idx]) {
            return Some(child);
        }
        let child = self.alloc()?;
        *slot(&mut self.nodes[idx]) = Some(child);
        Some(child)
    }

    fn alloc(&mut self) -> Option<u32> {
        if self.is_full() {
            return None;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let id = u32::try_from(self.nodes.len()).ok()?;
                self.nodes.push(Node::default());
                id
            }
        };
        self.live += 1;
        Some(id)
    }

    /// Turns a node into a parameter node and frees its literal subtrees.
    fn make_param(&mut self, idx: usize) {
        let node = &mut self.nodes[idx];
        node.is_param = true;
        let mut stack: Vec<u32> = node.literals.drain().map(|(_, c)| c).collect();
        node.literals.shrink_to_fit();
        while let Some(id) = stack.pop() {
            let freed = std::mem::take(&mut self.nodes[id as usize]);
            stack.extend(freed.literals.into_values());
            stack.extend(freed.empty);
            stack.extend(freed.param);
            self.free.push(id);
            self.live -= 1;
        }
    }
}

fn next_node(step: &Step<'_>) -> Option<u32> {
    match *step {
        Step::Literal(_, node) | Step::Param(node) => node,
    }
}

fn emit(step: Step<'_>, out: &mut String) -> Option<u32> {
    match step {
        Step::Literal(segment, node) => {
            out.push_str(segment);
            node
        }
        Step::Param(node) => {
            out.push_str(PARAM);
            node
        }
    }
}

/// True for a segment that is almost certainly a value rather than a resource name: an
/// object id ([`is_object_id`]), a date, an email address, an IP address, a digit-heavy
/// token (`INV-000123`), a random-looking token, or anything longer than
/// [`MAX_LITERAL_LEN`].
pub fn looks_like_param(segment: &str) -> bool {
    segment.len() > MAX_LITERAL_LEN
        || is_object_id(segment)
        || is_date(segment)
        || is_email(segment)
        || is_ip(segment)
        || is_digit_heavy(segment)
        || is_random_token(segment)
}

/// `2026-11-22`, optionally followed by a time (`2026-11-22T10:00:00Z`).
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() >= 10
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b.len() == 10 || matches!(b[10], b'T' | b't' | b' ' | b'_'))
}

/// `local@domain.tld`, also percent-encoded (`%40`).
fn is_email(s: &str) -> bool {
    let split = s.split_once('@').or_else(|| s.split_once("%40"));
    split.is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain
                .rsplit_once('.')
                .is_some_and(|(host, tld)| !host.is_empty() && !tld.is_empty())
    })
}

fn is_ip(s: &str) -> bool {
    s.contains(['.', ':']) && s.parse::<IpAddr>().is_ok()
}

/// At least five digits making up at least half of the segment: `INV-000123`, `v20260101`.
fn is_digit_heavy(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    digits >= 5 && digits * 2 >= s.len()
}

/// A long token from a base64/base64url-like alphabet with letters, digits and frequent
/// switches between upper case, lower case and digits (`eyJhbGciOiJIUzI1NiJ9`,
/// `cus_NffrFeUfNV2Hib`); CamelCase words (`PaymentV2Request`) switch too rarely.
fn is_random_token(s: &str) -> bool {
    if s.len() < 16 {
        return false;
    }
    let (mut digit, mut letter, mut switches, mut prev) = (false, false, 0usize, None);
    for b in s.bytes() {
        let class = if b.is_ascii_digit() {
            0u8
        } else if b.is_ascii_uppercase() {
            1
        } else if b.is_ascii_lowercase() {
            2
        } else if b"-_+=~.%".contains(&b) {
            continue;
        } else {
            return false;
        };
        digit |= class == 0;
        letter |= class != 0;
        switches += usize::from(prev.is_some_and(|p| p != class));
        prev = Some(class);
    }
    digit && letter && switches * 3 >= s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_other_id_like_segments_are_parameters_from_the_first_sight() {
        let mut l = LearnedTemplates::default();
        assert_eq!(
            l.observe_template("/accounts/8812/tx/77"),
            "/accounts/{param}/tx/{param}"
        );
        assert_eq!(
            l.template("/accounts/9141/tx/1"),
            "/accounts/{param}/tx/{param}"
        );
        for id in [
            "3f2b8c1e-9a7d-4e6f-8b1a-2c3d4e5f6a7b",
            "deadbeefdeadbeef01",
            "2026-11-22",
            "2026-11-22T10:00:00Z",
            "alice@example.com",
            "alice%40example.com",
            "10.0.0.1",
            "fd00::1",
            "INV-000123",
            "eyJhbGciOiJIUzI1NiJ9",
            "cus_NffrFeUfNV2Hib",
        ] {
            assert!(looks_like_param(id), "{id}");
        }
        for word in [
            "users",
            "me",
            "v1",
            "v2",
            "oauth2",
            "en-US",
            "1.0",
            "iso8601",
            "PaymentV2Request",
            "oauth2-authorization-server",
            "GetUserProfileDetails",
            "",
            "well-known",
        ] {
            assert!(!looks_like_param(word), "{word}");
        }
    }

    #[test]
    fn a_position_becomes_a_parameter_past_fifty_distinct_literals_and_stays_one() {
        let mut l = LearnedTemplates::default();
        for _ in 0..100 {
            assert_eq!(l.observe_template("/users/me"), "/users/me");
        }
        // 49 more names: 50 distinct literals, all still literal.
        for i in 0..49 {
            let name = format!("user{}", char::from(b'a' + (i % 26) as u8)).repeat(1 + i / 26);
            assert_eq!(
                l.observe_template(&format!("/users/{name}")),
                format!("/users/{name}")
            );
        }
        assert_eq!(l.template("/users/me"), "/users/me");
        assert_eq!(
            l.template("/users/alice"),
            "/users/alice",
            "not observed: as is"
        );
        // The 51st distinct name turns the position into a parameter, for every value.
        assert_eq!(l.observe_template("/users/alice"), "/users/{param}");
        for name in ["me", "bob", "carol", "usera"] {
            assert_eq!(
                l.observe_template(&format!("/users/{name}")),
                "/users/{param}"
            );
        }
        assert_eq!(l.template("/users/dave/orders"), "/users/{param}/orders");
        // Siblings and other positions are unaffected.
        assert_eq!(l.observe_template("/accounts/me"), "/accounts/me");
    }

    #[test]
    fn sixty_names_give_one_template_and_subpaths_are_relearnt_below_the_parameter() {
        let mut l = LearnedTemplates::default();
        let names: Vec<String> = (0..60)
            .map(|i| format!("name-{}", char::from(b'a' + (i % 26) as u8)) + &"x".repeat(i / 26))
            .collect();
        for name in &names {
            l.observe(&format!("/users/{name}/orders"));
        }
        for name in &names {
            assert_eq!(
                l.template(&format!("/users/{name}/orders")),
                "/users/{param}/orders"
            );
        }
        assert_eq!(
            l.template("/users/zed/orders/5"),
            "/users/{param}/orders/{param}"
        );
    }

    #[test]
    fn empty_segments_and_query_strings_are_kept_apart() {
        let mut l = LearnedTemplates::default();
        assert_eq!(l.observe_template("/a//b/?q=1"), "/a//b/");
        assert_eq!(l.observe_template(""), "");
        assert_eq!(l.observe_template("/"), "/");
        assert_eq!(l.observe_template("no-slash"), "no-slash");
    }

    #[test]
    fn memory_is_bounded_by_max_nodes_and_a_full_trie_writes_parameters() {
        let mut l = LearnedTemplates::with_threshold(100, 1_000);
        for i in 0..10_000 {
            l.observe(&format!("/r{}/s{}/t{}", i % 97, i % 13, i % 7));
            assert!(l.node_count() <= 100);
        }
        assert_eq!(l.node_count(), 100);
        // A known prefix keeps its literals; an unknown segment in a full trie is a parameter.
        assert_eq!(l.template("/r0/s0/t0"), "/r0/s0/t0");
        assert_eq!(l.observe_template("/brand/new"), "/{param}/{param}");
    }

    #[test]
    fn turning_a_node_into_a_parameter_frees_its_literal_subtrees() {
        let mut l = LearnedTemplates::with_threshold(1_000, 5);
        for i in 0..5 {
            l.observe(&format!("/p/n{}/a/b/c", char::from(b'a' + i)));
        }
        let before = l.node_count();
        l.observe("/p/extra/a/b/c");
        assert!(l.node_count() < before, "{} < {before}", l.node_count());
        assert_eq!(l.template("/p/na/a/b/c"), "/p/{param}/a/b/c");
    }

    #[test]
    fn templates_are_deterministic_for_a_given_order() {
        let paths: Vec<String> = (0..500)
            .map(|i| format!("/x/k{}/y/{}", i % 70, i))
            .collect();
        let run = || {
            let mut l = LearnedTemplates::with_threshold(64, 50);
            paths
                .iter()
                .map(|p| l.observe_template(p))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
