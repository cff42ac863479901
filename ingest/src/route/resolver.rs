//! One place that turns (method, concrete path) into a route template, for every request:
//! the OpenAPI specs when configured, else templates learned from traffic (when enabled),
//! else the stateless heuristic.
//!
//! With specs, a path no spec matches is still templated (learned or heuristic) so that
//! shadow endpoints group sensibly in the inventory; only unmatched paths are learned from,
//! which keeps the learner small.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::learned::{LearnedTemplates, DEFAULT_MAX_NODES};
use super::openapi::{OpenApiMatcher, Operation};
use super::template;
use crate::error::{Error, Result};

/// The `[route]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// OpenAPI 3 spec files (YAML or JSON), relative to the working directory.
    pub openapi: Vec<PathBuf>,
    /// Learn templates from traffic for paths no spec matches.
    pub learn: bool,
    /// Cap on the learner's trie nodes; about 200 bytes each.
    pub max_learned_nodes: usize,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self {
            openapi: Vec::new(),
            learn: true,
            max_learned_nodes: DEFAULT_MAX_NODES,
        }
    }
}

/// Which source produced a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RouteSource {
    #[serde(rename = "openapi")]
    OpenApi,
    #[serde(rename = "learned")]
    Learned,
    #[serde(rename = "heuristic")]
    Heuristic,
}

/// The route of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub route: String,
    pub source: RouteSource,
    /// The specs mark this operation `deprecated`.
    pub deprecated: bool,
    /// The specs declare this method on this route.
    pub declared: bool,
}

/// Resolves routes; holds the specs' trie and the learner.
#[derive(Debug)]
pub struct RouteResolver {
    openapi: Option<OpenApiMatcher>,
    learned: Option<LearnedTemplates>,
}

impl RouteResolver {
    /// Loads the specs; fails with the spec's path and the problem when one cannot be read.
    pub fn new(config: &RouteConfig) -> Result<Self> {
        if config.learn && config.max_learned_nodes == 0 {
            return Err(Error::Config(
                "route.max_learned_nodes must be at least 1 when route.learn is on".into(),
            ));
        }
        let openapi = if config.openapi.is_empty() {
            None
        } else {
            Some(OpenApiMatcher::from_files(&config.openapi)?)
        };
        let learned = config
            .learn
            .then(|| LearnedTemplates::new(config.max_learned_nodes));
        Ok(Self { openapi, learned })
    }

    /// The route of one request. Never fails: a path no source knows gets the heuristic
    /// template. The route has as many `/`-separated segments as the path (query ignored).
    pub fn resolve(&mut self, method: &str, path: &str) -> Resolved {
        if let Some(hit) = self
            .openapi
            .as_ref()
            .and_then(|m| m.match_route(method, path))
        {
            return Resolved {
                route: hit.route.to_owned(),
                source: RouteSource::OpenApi,
                deprecated: hit.deprecated(),
                declared: hit.declared(),
            };
        }
        let (route, source) = match &mut self.learned {
            Some(learned) => (learned.observe_template(path), RouteSource::Learned),
            None => (template(path), RouteSource::Heuristic),
        };
        Resolved {
            route,
            source,
            deprecated: false,
            declared: false,
        }
    }

    /// True when specs are configured (so "not declared" means something).
    pub fn has_specs(&self) -> bool {
        self.openapi.is_some()
    }

    /// The operations the specs declare (empty without specs).
    pub fn operations(&self) -> &[Operation] {
        self.openapi.as_ref().map_or(&[], |m| m.operations())
    }

    /// The learner, when learning is on.
    pub fn learned(&self) -> Option<&LearnedTemplates> {
        self.learned.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bank_config() -> RouteConfig {
        RouteConfig {
            openapi: vec![
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/openapi/bank.yaml")
            ],
            ..RouteConfig::default()
        }
    }

    fn segments(s: &str) -> usize {
        crate::route::strip_query(s).split('/').count()
    }

    #[test]
    fn specs_first_then_learned_templates() {
        let mut r = RouteResolver::new(&bank_config()).unwrap();
        assert!(r.has_specs());
        let got = r.resolve("GET", "/v1/accounts/acc-1/transactions");
        assert_eq!(got.route, "/v1/accounts/{accountId}/transactions");
        assert_eq!(got.source, RouteSource::OpenApi);
        assert!(got.declared && !got.deprecated);
        let got = r.resolve("GET", "/v0/balance");
        assert!(got.declared && got.deprecated);
        let got = r.resolve("DELETE", "/v1/profile");
        assert_eq!(
            (got.route.as_str(), got.source),
            ("/v1/profile", RouteSource::OpenApi)
        );
        assert!(!got.declared);
        let got = r.resolve("GET", "/v1/admin/users/42");
        assert_eq!(got.route, "/v1/admin/users/{param}");
        assert_eq!(got.source, RouteSource::Learned);
        assert!(!got.declared);
        assert_eq!(
            r.learned().unwrap().node_count(),
            6,
            "only unmatched paths are learned"
        );
    }

    #[test]
    fn without_learning_the_heuristic_applies() {
        let config = RouteConfig {
            learn: false,
            ..RouteConfig::default()
        };
        let mut r = RouteResolver::new(&config).unwrap();
        assert!(!r.has_specs() && r.operations().is_empty());
        let got = r.resolve("GET", "/accounts/8812");
        assert_eq!(
            (got.route.as_str(), got.source),
            ("/accounts/{id}", RouteSource::Heuristic)
        );
    }

    #[test]
    fn config_is_strict_and_has_defaults() {
        let c: RouteConfig = toml::from_str("openapi = [\"a.yaml\"]").unwrap();
        assert!(c.learn);
        assert_eq!(c.max_learned_nodes, DEFAULT_MAX_NODES);
        assert!(toml::from_str::<RouteConfig>("learn_more = true").is_err());
        let zero = RouteConfig {
            max_learned_nodes: 0,
            ..RouteConfig::default()
        };
        assert!(RouteResolver::new(&zero).is_err());
        let missing = RouteConfig {
            openapi: vec!["/nonexistent/spec.yaml".into()],
            ..RouteConfig::default()
        };
        let err = RouteResolver::new(&missing).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/spec.yaml"), "{err}");
    }

    proptest! {
        #[test]
        fn resolve_never_panics_and_keeps_the_segment_count(
            paths in proptest::collection::vec(
                prop_oneof![
                    "\\PC*",
                    "(/(v1|v0|accounts|payments|users|me|[a-z]{1,8}|[0-9]{1,6}|\\{x\\}|))*(\\?[a-z=&]*)?",
                ],
                1..40,
            ),
            method in prop_oneof![
                Just("GET".to_owned()),
                Just("post".to_owned()),
                Just("PROPFIND".to_owned()),
                "\\PC{0,8}",
            ],
        ) {
            let mut with_specs = RouteResolver::new(&bank_config()).unwrap();
            let mut tiny = RouteResolver::new(&RouteConfig { max_learned_nodes: 8, ..RouteConfig::default() }).unwrap();
            let mut heuristic = RouteResolver::new(&RouteConfig { learn: false, ..RouteConfig::default() }).unwrap();
            for path in &paths {
                for r in [&mut with_specs, &mut tiny, &mut heuristic] {
                    let got = r.resolve(&method, path);
                    prop_assert_eq!(segments(&got.route), segments(path), "{:?} -> {:?}", path, got.route);
                    prop_assert!(!got.deprecated || got.declared);
                }
            }
        }
    }
}
