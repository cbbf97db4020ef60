//! A record's top-level members, borrowed from the input line without building a `Value` tree.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The top-level members of a record object, in input order, values still raw JSON.
#[derive(Debug, Default)]
pub struct RawFields<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawFields<'a> {
    /// Parses a raw record object.
    pub fn parse(record: &'a RawValue) -> Result<Self, serde_json::Error> {
        serde_json::from_str(record.get())
    }

    /// The raw value of a member; `None` when absent.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// True when the member is absent or `null`.
    pub fn is_null_or_absent(&self, name: &str) -> bool {
        self.get(name).is_none_or(|v| v.get() == "null")
    }

    /// All members in input order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> {
        self.fields.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when the record has no members.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawFields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawFields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((k, v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    fields.push((k.0, v));
                }
                Ok(RawFields { fields })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A member name that borrows from the input unless it contains escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_members() {
        let raw: &RawValue =
            serde_json::from_str(r#"{"id":1,"n\u0041me":"x","o":{"a":[1]},"z":null}"#).unwrap();
        let f = RawFields::parse(raw).unwrap();
        assert_eq!(f.get("id").unwrap().get(), "1");
        assert_eq!(f.get("nAme").unwrap().get(), "\"x\"");
        assert_eq!(f.get("o").unwrap().get(), r#"{"a":[1]}"#);
        assert!(f.is_null_or_absent("z") && f.is_null_or_absent("missing"));
    }
}
