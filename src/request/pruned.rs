//! JSON read only where a parser looks. A [`Shape`] says which members and items of a document
//! are read; those are built into a `serde_json::Value` as usual, and everything else is
//! skipped unread (serde's `IgnoredAny`) and stands in the tree as an empty value of its kind
//! (`""`, `[]`, `{}`), so that a message can still say "not an object". A body full of caller
//! content the gateway never reads (a callout's subject, say) then costs a scan, not a tree.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// What of a value is read.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Only its kind: a stand-in is built.
    Kind,
    /// A scalar as is (a string, number, boolean or null); a container only by its kind.
    Scalar,
    /// An array's first `n` items as [`Shape::Scalar`]; the rest skipped. Otherwise as `Scalar`.
    Items(usize),
    /// An object's listed members with their shapes, every other member with the default one.
    /// Otherwise as `Scalar`.
    Object(&'static [(&'static str, Shape)], &'static Shape),
}

/// Parses `text` as JSON, building only what `shape` reads.
pub fn from_str(text: &str, shape: Shape) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = shape.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Parses `bytes` as a JSON object, building only what `members` reads of it (other members
/// with `default`).
pub fn object_from_slice(
    bytes: &[u8],
    members: &'static [(&'static str, Shape)],
    default: &'static Shape,
) -> serde_json::Result<Map<String, Value>> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Shape::Object(members, default).deserialize(&mut de)?;
    de.end()?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(serde::de::Error::invalid_type(
            unexpected(&other),
            &"a JSON object",
        )),
    }
}

fn unexpected(value: &Value) -> serde::de::Unexpected<'_> {
    use serde::de::Unexpected;
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(_) => Unexpected::Other("number"),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> DeserializeSeed<'de> for Shape {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self {
            // Skipped as serde skips (strings unchecked), keeping only the first byte's news.
            Shape::Kind => Ok(stand_in(<&RawValue>::deserialize(deserializer)?.get())),
            _ => deserializer.deserialize_any(self),
        }
    }
}

/// An empty value of the kind `raw` is.
fn stand_in(raw: &str) -> Value {
    match raw.as_bytes().first() {
        Some(b'{') => Value::Object(Map::new()),
        Some(b'[') => Value::Array(Vec::new()),
        Some(b'"') => Value::String(String::new()),
        Some(b't') => Value::Bool(true),
        Some(b'f') => Value::Bool(false),
        Some(b'n') | None => Value::Null,
        Some(_) => Value::from(0),
    }
}

impl<'de> Visitor<'de> for Shape {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let keep = match self {
            Shape::Items(n) => n,
            _ => 0,
        };
        let mut items = Vec::new();
        while items.len() < keep {
            match seq.next_element_seed(Shape::Scalar)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Shape::Object(members, default) = self else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Value::Object(Map::new()));
        };
        let mut object = Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let shape = members
                .iter()
                .find(|(name, _)| *name == key)
                .map_or(*default, |(_, shape)| *shape);
            let value = map.next_value_seed(shape)?;
            object.insert(key.into_owned(), value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const INNER: &[(&str, Shape)] = &[("id", Shape::Scalar)];
    const DATA: &[(&str, Shape)] = &[
        ("path", Shape::Scalar),
        ("workflow", Shape::Object(INNER, &Shape::Kind)),
    ];
    const TOP: &[(&str, Shape)] = &[
        ("reasons", Shape::Items(2)),
        ("data", Shape::Object(DATA, &Shape::Kind)),
    ];

    #[test]
    fn only_what_the_shape_reads_is_built() {
        let text = json!({
            "status": "completed",
            "reasons": ["a", {"x": 1}, "c", "d"],
            "other": {"deep": [1, 2, {"a": "b"}]},
            "data": {
                "path": "/p",
                "workflow": {"id": "w", "name": "Ada"},
                "subject": {"displayName": "Ada Lovelace", "mail": ["a@b"]},
                "n": 7
            }
        })
        .to_string();
        let built = object_from_slice(text.as_bytes(), TOP, &Shape::Scalar).unwrap();
        assert_eq!(
            Value::Object(built),
            json!({
                "status": "completed",
                "reasons": ["a", {}],
                "other": {},
                "data": {"path": "/p", "workflow": {"id": "w", "name": ""}, "subject": {}, "n": 0}
            })
        );
    }

    #[test]
    fn read_scalars_keep_their_values() {
        let text = r#"{"t": true, "f": false, "n": -1, "u": 7, "x": 1.5, "z": null, "s": "s"}"#;
        let v = from_str(text, Shape::Object(&[], &Shape::Scalar)).unwrap();
        assert_eq!(v, serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn skipped_content_is_still_checked_as_json_and_escapes_are_decoded_where_read() {
        assert!(object_from_slice(br#"{"other": {"a": [1, }}"#, TOP, &Shape::Scalar).is_err());
        assert!(object_from_slice(br#"{"a": 1} x"#, TOP, &Shape::Scalar).is_err());
        assert!(object_from_slice(br#"[1]"#, TOP, &Shape::Scalar).is_err());
        let v = from_str(
            r#"{"data": {"path": "\/p\u00e9"}}"#,
            Shape::Object(TOP, &Shape::Kind),
        )
        .unwrap();
        assert_eq!(v["data"]["path"], "/p\u{e9}");
        // A lone surrogate where nothing reads it is skipped, as serde skips it; where it is
        // read, it is an error, as in any string serde_json builds.
        assert!(from_str(r#"{"other": "\udfff"}"#, Shape::Object(TOP, &Shape::Kind)).is_ok());
        assert!(
            from_str(
                r#"{"data": {"path": "\udfff"}}"#,
                Shape::Object(TOP, &Shape::Kind)
            )
            .is_err()
        );
    }
}
