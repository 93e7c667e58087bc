//! Finds the line and column of a YAML path (`stages[2].load.id`) and deserializes a value found
//! at a path. Both reuse `yaml_serde`'s own position tracking: a seed walks to the node and either
//! fails there on purpose (the error then carries the node's location) or deserializes it, so that
//! its errors carry their true location in the whole file.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a path the way `yaml_serde` does in its messages: `stages[0].load.id`.
pub fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k)
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

const FOUND: &str = "\u{0}clv-located";

/// 1-based (line, column) of the node at `path`, if it exists.
pub fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    let err = Walk { path, then: Fail }.deserialize(yaml_serde::Deserializer::from_str(text)).err()?;
    if !err.to_string().contains(FOUND) {
        return None;
    }
    err.location().map(|l| (l.line(), l.column()))
}

/// Deserializes the node at `path` as `T`; `Ok(None)` when there is no such node.
pub fn deserialize_at<T: de::DeserializeOwned>(text: &str, path: &[Seg]) -> Result<Option<T>, yaml_serde::Error> {
    Walk { path, then: Take(PhantomData::<T>) }.deserialize(yaml_serde::Deserializer::from_str(text))
}

/// What to do once the walk reaches its node.
trait AtNode: Copy {
    type Out;
    fn at<'de, D: Deserializer<'de>>(self, d: D) -> Result<Option<Self::Out>, D::Error>;
}

#[derive(Clone, Copy)]
struct Fail;
impl AtNode for Fail {
    type Out = ();
    fn at<'de, D: Deserializer<'de>>(self, d: D) -> Result<Option<()>, D::Error> {
        d.deserialize_any(FailVisitor)
    }
}

struct Take<T>(PhantomData<T>);
impl<T> Clone for Take<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Take<T> {}
impl<T: de::DeserializeOwned> AtNode for Take<T> {
    type Out = T;
    fn at<'de, D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        T::deserialize(d).map(Some)
    }
}

struct FailVisitor;
impl<'de> Visitor<'de> for FailVisitor {
    type Value = Option<()>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any node")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(E::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

struct Walk<'p, N> {
    path: &'p [Seg],
    then: N,
}

impl<'de, N: AtNode> DeserializeSeed<'de> for Walk<'_, N> {
    type Value = Option<N::Out>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match self.path.split_first() {
            None => self.then.at(d),
            Some((Seg::Key(_), _)) => d.deserialize_map(self),
            Some((Seg::Index(_), _)) => d.deserialize_seq(self),
        }
    }
}

impl<'de, N: AtNode> Visitor<'de> for Walk<'_, N> {
    type Value = Option<N::Out>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping or a sequence")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (Some((Seg::Key(want), rest)), mut found) = (self.path.split_first(), None) else {
            return Ok(None);
        };
        while let Some(key) = map.next_key::<yaml_serde::Value>()? {
            if found.is_none() && key.as_str() == Some(want.as_str()) {
                found = map.next_value_seed(Walk { path: rest, then: self.then })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (Some((Seg::Index(want), rest)), mut found, mut i) = (self.path.split_first(), None, 0) else {
            return Ok(None);
        };
        loop {
            if i == *want {
                match seq.next_element_seed(Walk { path: rest, then: self.then })? {
                    Some(v) => found = v,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }
    // A scalar where the walk expected a container: the path does not exist.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}
