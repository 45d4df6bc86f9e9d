//! Where each value of a YAML document is, so that errors found after deserialization
//! (a duplicate host, an invalid CIDR) can still point at `file:line:column`.
//!
//! serde gives typed values without positions; the YAML parser gives positions without
//! types. This module walks the parser's events once and records, for every field path
//! (`hosts[2].address`), where its key and its value start.

use std::collections::BTreeMap;
use std::fmt;

use serde_saphyr::granit_parser::{Event, Parser};

use crate::diag::Location;

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path into a YAML document, printed as `cluster.network.podSubnet` or `hosts[2].name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.into()));
        next
    }

    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    pub fn parent(&self) -> Self {
        let mut parent = self.clone();
        parent.0.pop();
        parent
    }

    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Option<Location>,
    value: Location,
}

/// Positions of the keys and values of the first document of a YAML text.
#[derive(Debug, Default)]
pub struct SourceMap {
    entries: BTreeMap<String, Entry>,
}

enum Frame {
    /// In a mapping: the key just read (waiting for its value), if any.
    Mapping {
        pending_key: Option<(String, Location)>,
    },
    Sequence {
        next_index: usize,
    },
}

impl SourceMap {
    /// Index `text`. A syntax error stops the walk; what was read before it stays indexed
    /// (the deserializer reports the syntax error itself, with its own position).
    pub fn build(text: &str) -> Self {
        let mut map = SourceMap::default();
        let mut stack: Vec<(Frame, FieldPath)> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let here = Location { line: span.start.line(), column: span.start.col() + 1 };
            match event {
                Event::DocumentEnd => break,
                Event::Scalar(value, ..) => {
                    // A scalar is either a mapping key or a value.
                    if let Some((Frame::Mapping { pending_key }, _)) = stack.last_mut()
                        && pending_key.is_none()
                    {
                        *pending_key = Some((value.into_owned(), here));
                        continue;
                    }
                    let path = map.value_path(&mut stack, here);
                    map.record(path, here);
                }
                Event::Alias(_) => {
                    if let Some((Frame::Mapping { pending_key }, _)) = stack.last_mut()
                        && pending_key.is_none()
                    {
                        // A complex (aliased) key: keep the structure balanced, name it by position.
                        *pending_key = Some((format!("<alias at line {}>", here.line), here));
                        continue;
                    }
                    let path = map.value_path(&mut stack, here);
                    map.record(path, here);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let path = if stack.is_empty() {
                        map.record_root(here);
                        FieldPath::root()
                    } else {
                        map.value_path(&mut stack, here)
                    };
                    let frame = match event {
                        Event::MappingStart(..) => Frame::Mapping { pending_key: None },
                        _ => Frame::Sequence { next_index: 0 },
                    };
                    stack.push((frame, path));
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        map
    }

    /// The path of the value that starts at `here`, advancing the enclosing container.
    fn value_path(&mut self, stack: &mut [(Frame, FieldPath)], here: Location) -> FieldPath {
        let Some((frame, parent)) = stack.last_mut() else {
            self.record_root(here);
            return FieldPath::root();
        };
        match frame {
            Frame::Mapping { pending_key } => match pending_key.take() {
                Some((key, key_at)) => {
                    let path = parent.key(key);
                    self.entries.insert(path.to_string(), Entry { key: Some(key_at), value: here });
                    path
                }
                // A mapping or sequence used as a key: index it under a synthetic name.
                None => parent.key(format!("<key at line {}>", here.line)),
            },
            Frame::Sequence { next_index } => {
                let path = parent.index(*next_index);
                *next_index += 1;
                self.entries.entry(path.to_string()).or_insert(Entry { key: None, value: here });
                path
            }
        }
    }

    fn record(&mut self, path: FieldPath, at: Location) {
        self.entries.entry(path.to_string()).or_insert(Entry { key: None, value: at });
    }

    fn record_root(&mut self, at: Location) {
        self.entries.entry(String::new()).or_insert(Entry { key: None, value: at });
    }

    /// Where the value at `path` starts, or the nearest recorded ancestor's position.
    pub fn value_location(&self, path: &FieldPath) -> Option<Location> {
        let mut path = path.clone();
        loop {
            if let Some(entry) = self.entries.get(&path.to_string()) {
                return Some(entry.value);
            }
            if path.0.is_empty() {
                return None;
            }
            path = path.parent();
        }
    }

    /// The path of the value or key that starts exactly at `at`, if any (to name the field
    /// of an error that the deserializer reported only by position).
    pub fn path_at(&self, at: Location) -> Option<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.value == at || e.key == Some(at))
            // A nested mapping starts where its first key does: name the innermost field.
            .max_by_key(|(path, _)| path.len())
            .map(|(path, _)| path.clone())
    }

    /// Where the key of `path` is (for "unknown field" errors), falling back to its value.
    pub fn key_location(&self, path: &FieldPath) -> Option<Location> {
        match self.entries.get(&path.to_string()) {
            Some(Entry { key: Some(key), .. }) => Some(*key),
            _ => self.value_location(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
cluster:
  name: demo
  network:
    podSubnet: 10.244.0.0/16
hosts:
  - name: cp1
    roles: [control-plane]
  - name: w1
    roles:
      - worker
";

    fn at(line: usize, column: usize) -> Option<Location> {
        Some(Location { line, column })
    }

    #[test]
    fn locates_nested_mapping_values() {
        let map = SourceMap::build(DOC);
        let path = FieldPath::root().key("cluster").key("network").key("podSubnet");
        assert_eq!(path.to_string(), "cluster.network.podSubnet");
        assert_eq!(map.value_location(&path), at(4, 16));
        assert_eq!(map.key_location(&path), at(4, 5));
    }

    #[test]
    fn locates_sequence_items_and_flow_sequences() {
        let map = SourceMap::build(DOC);
        let hosts = FieldPath::root().key("hosts");
        assert_eq!(map.value_location(&hosts.index(1).key("name")), at(8, 11));
        assert_eq!(map.value_location(&hosts.index(0).key("roles").index(0)), at(7, 13));
        assert_eq!(map.value_location(&hosts.index(1).key("roles").index(0)), at(10, 9));
    }

    #[test]
    fn unknown_paths_fall_back_to_the_nearest_ancestor() {
        let map = SourceMap::build(DOC);
        let missing = FieldPath::root().key("hosts").index(1).key("address");
        assert_eq!(map.value_location(&missing), at(8, 5));
    }

    #[test]
    fn finds_the_path_at_a_position() {
        let map = SourceMap::build(DOC);
        assert_eq!(map.path_at(Location { line: 8, column: 11 }).as_deref(), Some("hosts[1].name"));
        assert_eq!(map.path_at(Location { line: 8, column: 12 }), None);
    }

    #[test]
    fn stops_quietly_at_a_syntax_error() {
        let map = SourceMap::build("a: 1\nb: [unclosed\n");
        assert_eq!(map.value_location(&FieldPath::root().key("a")), at(1, 4));
    }
}
