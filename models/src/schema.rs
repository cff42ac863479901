//! The feature schema a model was trained on.

use serde::{Deserialize, Serialize};

/// Names the feature vector layout. A model records it so a detector computing a different
/// feature set refuses the model instead of scoring garbage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSchema {
    /// Version id of the feature set, e.g. `identity-v1`; bumped whenever features change.
    pub id: String,
    /// Feature names, in column order.
    pub features: Vec<String>,
}

impl FeatureSchema {
    /// Builds a schema from an id and column names.
    pub fn new<S: Into<String>>(
        id: impl Into<String>,
        features: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            id: id.into(),
            features: features.into_iter().map(Into::into).collect(),
        }
    }

    /// Number of feature columns.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// True when the schema has no features.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }
}
