//! The short lists of a row's context (routes, IPs, tokens, request ids), kept inline.
//!
//! Every window end emits hundreds of rows and almost none of them alert: four small heap
//! lists per row cost more allocator work than the rest of the row. A list holds at most
//! [`CONTEXT_CAP`] values, inline, and reads as a slice.

use std::fmt;
use std::ops::Deref;

use smallvec::SmallVec;

/// How many routes, IPs, tokens and request ids a row keeps for the analyst.
pub const CONTEXT_CAP: usize = 8;

/// At most [`CONTEXT_CAP`] values, stored inline (no allocation), read as a slice.
#[derive(Clone, PartialEq, Eq)]
pub struct ContextList<T>(SmallVec<[T; CONTEXT_CAP]>);

impl<T> ContextList<T> {
    pub fn new() -> Self {
        Self(SmallVec::new())
    }

    pub fn is_full(&self) -> bool {
        self.0.len() == CONTEXT_CAP
    }

    /// Appends `value` unless the list is full; returns whether it did.
    pub fn push(&mut self, value: T) -> bool {
        if self.is_full() {
            return false;
        }
        self.0.push(value);
        true
    }
}

impl<T> Default for ContextList<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Deref for ContextList<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.0
    }
}

/// Like a slice: `[a, b]`.
impl<T: fmt::Debug> fmt::Debug for ContextList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Keeps the first [`CONTEXT_CAP`] values.
impl<T> FromIterator<T> for ContextList<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self(iter.into_iter().take(CONTEXT_CAP).collect())
    }
}

impl<'a, T> IntoIterator for &'a ContextList<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_keeps_the_first_values_up_to_the_cap() {
        let mut list = ContextList::new();
        for i in 0..CONTEXT_CAP {
            assert!(list.push(i));
        }
        assert!(list.is_full());
        assert!(!list.push(99), "full: refused");
        assert_eq!(&list[..], (0..CONTEXT_CAP).collect::<Vec<_>>());
        let collected: ContextList<usize> = (0..100).collect();
        assert_eq!(collected, list);
        assert_eq!(format!("{:?}", ContextList::from_iter([1, 2])), "[1, 2]");
    }
}
