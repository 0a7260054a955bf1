//! The trie behind [`TriggerIndex`].

use std::collections::HashSet;
use std::hash::Hash;

use foldhash::fast::RandomState;
use foldhash::HashMap;

use super::pattern::{check_name, parse_pattern, Segment, Syntax};
use crate::CoreError;

/// Index of a node in [`TriggerIndex::nodes`]. `u32` keeps nodes small; 4 billion is far beyond
/// any number of pattern segments an index can hold in memory.
type NodeId = u32;

const ROOT: NodeId = 0;

/// One value registered under one pattern.
#[derive(Debug, Clone)]
struct Registration<V> {
    /// When it was added: [`TriggerIndex::matches`] returns values in this order.
    order: u64,
    value: V,
}

/// A node of the trie: the patterns that share a prefix of segments.
#[derive(Debug, Clone)]
struct Node<V> {
    exact: HashMap<Box<str>, NodeId>,
    single: Option<NodeId>,
    multi: Option<NodeId>,
    /// Reached through a `#` edge: the node also consumes any segment itself.
    is_multi: bool,
    /// The pattern spelled by the path to this node, kept while values are registered here.
    pattern: Option<Box<str>>,
    /// The values registered under that pattern, oldest first.
    values: Vec<Registration<V>>,
}

impl<V> Node<V> {
    fn new(is_multi: bool) -> Self {
        Self {
            exact: HashMap::default(),
            single: None,
            multi: None,
            is_multi,
            pattern: None,
            values: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty()
            && self.exact.is_empty()
            && self.single.is_none()
            && self.multi.is_none()
    }

    /// The node reached from this one by `segment`, if any.
    fn child(&self, segment: Segment<'_>) -> Option<NodeId> {
        match segment {
            Segment::Exact(text) => self.exact.get(text).copied(),
            Segment::Single => self.single,
            Segment::Multi => self.multi,
        }
    }
}

/// Patterns with the values registered under them, matched against names in one walk of a trie.
///
/// A pattern may hold many values; registering the same `(pattern, value)` twice keeps one
/// registration (the first). [`matches`](Self::matches) returns each matching value once, in the
/// order its earliest matching registration was made.
///
/// ```
/// use flowhost_core::triggers::{Syntax, TriggerIndex};
///
/// let mut index = TriggerIndex::new(Syntax::Event);
/// index.add("order.*", "audit").unwrap();
/// index.add("order.paid", "ship").unwrap();
/// index.add("#", "log").unwrap();
/// assert_eq!(index.matches("order.paid").unwrap(), [&"audit", &"ship", &"log"]);
/// assert_eq!(index.matches("invoice.sent").unwrap(), [&"log"]);
/// ```
#[derive(Debug, Clone)]
pub struct TriggerIndex<V> {
    syntax: Syntax,
    /// The trie; `nodes[ROOT]` is the root. Removed nodes go to `free` and are reused.
    nodes: Vec<Node<V>>,
    free: Vec<NodeId>,
    /// The number of `(pattern, value)` registrations.
    len: usize,
    /// The order of the next registration.
    next_order: u64,
}

impl<V: Eq + Hash> TriggerIndex<V> {
    /// An empty index whose patterns and names follow `syntax`.
    #[must_use]
    pub fn new(syntax: Syntax) -> Self {
        Self {
            syntax,
            nodes: vec![Node::new(false)],
            free: Vec::new(),
            len: 0,
            next_order: 0,
        }
    }

    /// The syntax of this index's patterns and names.
    #[must_use]
    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// The number of `(pattern, value)` registrations.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Registers `value` under `pattern`. Returns `false`, changing nothing, if that exact pair is
    /// already registered.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidPattern`] if `pattern` is not valid in this index's syntax (see
    /// [`parse_pattern`]).
    pub fn add(&mut self, pattern: &str, value: V) -> Result<bool, CoreError> {
        let segments = parse_pattern(self.syntax, pattern)?;
        let mut node = ROOT;
        for segment in segments {
            node = match self.nodes[node as usize].child(segment) {
                Some(child) => child,
                None => self.add_child(node, segment)?,
            };
        }
        let node = &mut self.nodes[node as usize];
        if node
            .values
            .iter()
            .any(|registration| registration.value == value)
        {
            return Ok(false);
        }
        if node.pattern.is_none() {
            node.pattern = Some(pattern.into());
        }
        node.values.push(Registration {
            order: self.next_order,
            value,
        });
        self.next_order += 1;
        self.len += 1;
        Ok(true)
    }

    /// Unregisters `value` from `pattern`. Returns whether it was registered there.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidPattern`] if `pattern` is not valid in this index's syntax: such a
    /// pattern can never have been added, so passing it is a mistake worth hearing about.
    pub fn remove(&mut self, pattern: &str, value: &V) -> Result<bool, CoreError> {
        let segments = parse_pattern(self.syntax, pattern)?;
        // The path from the root, to prune the nodes the removal leaves empty.
        let mut path = Vec::with_capacity(segments.len() + 1);
        let mut node = ROOT;
        path.push(node);
        for segment in &segments {
            match self.nodes[node as usize].child(*segment) {
                Some(child) => node = child,
                None => return Ok(false),
            }
            path.push(node);
        }
        let values = &mut self.nodes[node as usize].values;
        let Some(position) = values
            .iter()
            .position(|registration| registration.value == *value)
        else {
            return Ok(false);
        };
        // `remove`, not `swap_remove`: the other values keep their order.
        values.remove(position);
        if values.is_empty() {
            self.nodes[node as usize].pattern = None;
        }
        self.len -= 1;
        self.prune(&path, &segments);
        Ok(true)
    }

    /// The values whose patterns match `name`, each once, in registration order (of the earliest
    /// matching registration of each value).
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidName`] if `name` is empty or contains wildcards (see [`check_name`]).
    pub fn matches(&self, name: &str) -> Result<Vec<&V>, CoreError> {
        check_name(self.syntax, name)?;
        let mut found: Vec<&Registration<V>> = Vec::new();
        for node in self.matching_nodes(name) {
            found.extend(&self.nodes[node as usize].values);
        }
        found.sort_unstable_by_key(|registration| registration.order);
        if found.len() > 1 {
            let mut seen = HashSet::with_capacity_and_hasher(found.len(), RandomState::default());
            found.retain(|registration| seen.insert(&registration.value));
        }
        Ok(found
            .into_iter()
            .map(|registration| &registration.value)
            .collect())
    }

    /// The patterns that hold at least one value, sorted by code point.
    #[must_use]
    pub fn patterns(&self) -> Vec<&str> {
        let mut patterns: Vec<&str> = self
            .nodes
            .iter()
            .filter(|node| !node.values.is_empty())
            .filter_map(|node| node.pattern.as_deref())
            .collect();
        patterns.sort_unstable();
        patterns
    }

    /// Every `(pattern, value)` registration, in registration order.
    pub fn registrations(&self) -> impl Iterator<Item = (&str, &V)> {
        let mut all: Vec<(u64, &str, &V)> = self
            .nodes
            .iter()
            .filter_map(|node| node.pattern.as_deref().map(|pattern| (node, pattern)))
            .flat_map(|(node, pattern)| {
                node.values
                    .iter()
                    .map(move |registration| (registration.order, pattern, &registration.value))
            })
            .collect();
        all.sort_unstable_by_key(|(order, _, _)| *order);
        all.into_iter().map(|(_, pattern, value)| (pattern, value))
    }

    /// The nodes whose patterns match `name`: the trie run as an automaton, one set of live nodes
    /// per segment, so `#` costs no backtracking however many there are.
    fn matching_nodes(&self, name: &str) -> Vec<NodeId> {
        let mut segments = name.split(self.syntax.separator());
        let mut live = vec![ROOT];
        // MQTT §4.7.2: a topic starting with `$` is not matched by a leading `+` or `#`, so the
        // first level may only follow exact edges from the root.
        if self.syntax == Syntax::Mqtt && name.starts_with('$') {
            let first = segments.next().unwrap_or_default();
            live = self.nodes[ROOT as usize]
                .exact
                .get(first)
                .copied()
                .into_iter()
                .collect();
        }
        self.close_over_multi(&mut live);
        let mut next = Vec::new();
        for segment in segments {
            if live.is_empty() {
                break;
            }
            next.clear();
            for &id in &live {
                let node = &self.nodes[id as usize];
                next.extend(node.exact.get(segment).copied());
                next.extend(node.single);
                if node.is_multi {
                    next.push(id);
                }
            }
            self.close_over_multi(&mut next);
            std::mem::swap(&mut live, &mut next);
        }
        live
    }

    /// Adds to `nodes` every node reachable through `#` edges (a `#` may match zero segments),
    /// then sorts and deduplicates them.
    fn close_over_multi(&self, nodes: &mut Vec<NodeId>) {
        let mut index = 0;
        while index < nodes.len() {
            if let Some(multi) = self.nodes[nodes[index] as usize].multi {
                nodes.push(multi);
            }
            index += 1;
        }
        nodes.sort_unstable();
        nodes.dedup();
    }

    fn add_child(&mut self, parent: NodeId, segment: Segment<'_>) -> Result<NodeId, CoreError> {
        let child = Node::new(segment == Segment::Multi);
        let id = if let Some(id) = self.free.pop() {
            self.nodes[id as usize] = child;
            id
        } else {
            let id = NodeId::try_from(self.nodes.len()).map_err(|_| {
                CoreError::InvalidArgument(
                    "a trigger index cannot hold more than 2^32 pattern segments".to_owned(),
                )
            })?;
            self.nodes.push(child);
            id
        };
        let parent = &mut self.nodes[parent as usize];
        match segment {
            Segment::Exact(text) => {
                parent.exact.insert(text.into(), id);
            }
            Segment::Single => parent.single = Some(id),
            Segment::Multi => parent.multi = Some(id),
        }
        Ok(id)
    }

    /// Frees the nodes at the end of `path` (the nodes of `segments`, after the root) that are
    /// left empty, from the deepest up.
    fn prune(&mut self, path: &[NodeId], segments: &[Segment<'_>]) {
        for depth in (1..path.len()).rev() {
            let node = path[depth];
            if !self.nodes[node as usize].is_empty() {
                return;
            }
            let parent = &mut self.nodes[path[depth - 1] as usize];
            match segments[depth - 1] {
                Segment::Exact(text) => {
                    parent.exact.remove(text);
                }
                Segment::Single => parent.single = None,
                Segment::Multi => parent.multi = None,
            }
            // Drops the node's map now rather than when the slot is reused.
            self.nodes[node as usize] = Node::new(false);
            self.free.push(node);
        }
    }
}

#[cfg(test)]
mod tests;
