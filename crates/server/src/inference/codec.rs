//! Tensor data as the V2 protocol carries it: JSON arrays (row-major, nested or flat), and raw
//! little-endian bytes (the REST binary extension, gRPC's `raw_input_contents`), where a BYTES
//! element is a 4-byte little-endian length followed by its bytes.

use crate::tensor::{checked_size, DType, Element, Tensor};
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value as Json;

/// A shape as the protocol gives it (signed), checked.
pub fn shape_of(name: &str, dims: &[i64]) -> Result<Vec<usize>, String> {
    dims.iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| format!("input '{name}' has a negative dimension in its shape"))
        })
        .collect()
}

/// Builds a tensor from raw bytes.
pub fn from_raw(
    name: &str,
    dtype: DType,
    shape: &[usize],
    raw: Bytes,
    max_bytes: usize,
) -> Result<Tensor, String> {
    let (n, bytes) = checked_size(dtype, shape, max_bytes).map_err(|e| plain(&e.0))?;
    if dtype != DType::String {
        if raw.len() != bytes {
            return Err(format!(
                "input '{name}' has {} bytes of data, but its shape and datatype need {bytes}",
                raw.len()
            ));
        }
        if dtype == DType::Bool && raw.iter().any(|&b| b > 1) {
            return Err(format!("input '{name}': BOOL elements must be 0 or 1"));
        }
        return Tensor::from_shared(dtype, shape, raw).map_err(|e| plain(&e.0));
    }
    let mut values: Vec<&[u8]> = Vec::with_capacity(n);
    let mut rest = &raw[..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(format!(
                "input '{name}': a BYTES element's length is cut short"
            ));
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        rest = &rest[4..];
        if rest.len() < len {
            return Err(format!("input '{name}': a BYTES element is cut short"));
        }
        values.push(&rest[..len]);
        rest = &rest[len..];
    }
    if values.len() != n {
        return Err(format!(
            "input '{name}' has {} BYTES elements, but its shape needs {n}",
            values.len()
        ));
    }
    Tensor::from_values(dtype, shape, &values, max_bytes).map_err(|e| plain(&e.0))
}

/// A tensor's data as raw bytes.
pub fn to_raw(t: &Tensor) -> Bytes {
    if t.dtype() != DType::String {
        return t.blob().clone();
    }
    let strings = t.strings();
    let mut out = BytesMut::with_capacity(strings.iter().map(|s| s.len() + 4).sum());
    for s in strings {
        out.put_u32_le(s.len() as u32);
        out.put_slice(&s);
    }
    out.freeze()
}

/// One element of a JSON `data` member, as the parser met it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    F(f64),
    I(i64),
    U(u64),
    S(String),
    B(bool),
    Null,
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Scalar::F(x) => write!(f, "{x}"),
            Scalar::I(x) => write!(f, "{x}"),
            Scalar::U(x) => write!(f, "{x}"),
            Scalar::S(x) => write!(f, "{x:?}"),
            Scalar::B(x) => write!(f, "{x}"),
            Scalar::Null => f.write_str("null"),
        }
    }
}

/// A JSON `data` member flattened in row-major order while it is parsed: one pass over the
/// text, no tree of values.
#[derive(Debug, Default)]
pub struct FlatData(pub Vec<Scalar>);

impl<'de> serde::Deserialize<'de> for FlatData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FlatData, D::Error> {
        let mut out = Vec::new();
        serde::de::DeserializeSeed::deserialize(Flatten(&mut out), d)?;
        Ok(FlatData(out))
    }
}

/// Appends the scalars of nested arrays to a vector.
struct Flatten<'a>(&'a mut Vec<Scalar>);

impl<'de> serde::de::DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("tensor data: values in nested arrays")
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push(Scalar::F(v));
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(Scalar::I(v));
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push(Scalar::U(v));
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.push(Scalar::B(v));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push(Scalar::S(v.to_string()));
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push(Scalar::Null);
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flatten(self.0))?.is_some() {}
        Ok(())
    }
}

/// Builds a tensor from a flattened JSON `data` member.
pub fn from_json(
    name: &str,
    dtype: DType,
    shape: &[usize],
    data: &[Scalar],
    max_bytes: usize,
) -> Result<Tensor, String> {
    let (n, bytes) = checked_size(dtype, shape, max_bytes).map_err(|e| plain(&e.0))?;
    if data.len() != n {
        return Err(format!(
            "input '{name}' has {} elements of data, but its shape needs {n}",
            data.len()
        ));
    }
    let bad = |v: &Scalar| {
        format!(
            "input '{name}': {v} is not a {} value",
            super::v2_type(dtype)
        )
    };
    let float = |v: &Scalar| match v {
        Scalar::F(x) => Ok(*x),
        Scalar::I(x) => Ok(*x as f64),
        Scalar::U(x) => Ok(*x as f64),
        other => Err(bad(other)),
    };
    // The common numeric types are written straight into the buffer.
    let buf = match dtype {
        DType::Float => {
            let mut buf = Vec::with_capacity(bytes);
            for v in data {
                buf.extend_from_slice(&(float(v)? as f32).to_le_bytes());
            }
            buf
        }
        DType::Double => {
            let mut buf = Vec::with_capacity(bytes);
            for v in data {
                buf.extend_from_slice(&float(v)?.to_le_bytes());
            }
            buf
        }
        _ => {
            let texts = data
                .iter()
                .map(|v| match (dtype, v) {
                    (DType::String, Scalar::S(s)) => Ok(s.clone().into_bytes()),
                    (DType::Bool, Scalar::B(b)) => {
                        Ok(if *b { b"1".to_vec() } else { b"0".to_vec() })
                    }
                    (DType::String | DType::Bool, _) => Err(bad(v)),
                    (_, Scalar::F(_) | Scalar::I(_) | Scalar::U(_)) => {
                        Ok(v.to_string().into_bytes())
                    }
                    _ => Err(bad(v)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Tensor::from_values(dtype, shape, &texts, max_bytes)
                .map_err(|e| format!("input '{name}': {}", plain(&e.0)));
        }
    };
    Tensor::from_blob(dtype, shape, &[&buf], max_bytes).map_err(|e| plain(&e.0))
}

/// A tensor's data as a flat JSON array.
pub fn to_json(t: &Tensor) -> Json {
    match t.dtype() {
        DType::Float => Json::Array(
            t.blob()
                .chunks_exact(4)
                .map(|c| {
                    let x = f32::from_le_bytes(c.try_into().expect("4 bytes"));
                    serde_json::Number::from_f64(x as f64).map_or(Json::Null, Json::Number)
                })
                .collect(),
        ),
        DType::Bool => Json::Array(t.blob().iter().map(|&b| Json::Bool(b != 0)).collect()),
        _ => Json::Array(
            t.elements()
                .into_iter()
                .map(|e| match e {
                    Element::Int(i) => Json::from(i),
                    Element::UInt(u) => Json::from(u),
                    Element::Float(f) => {
                        serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
                    }
                    Element::Str(s) => Json::String(String::from_utf8_lossy(&s).into_owned()),
                })
                .collect(),
        ),
    }
}

fn plain(text: &str) -> String {
    text.strip_prefix("ERR ").unwrap_or(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(text: &str) -> Vec<Scalar> {
        serde_json::from_str::<FlatData>(text).unwrap().0
    }

    #[test]
    fn bytes_elements_round_trip_through_raw() {
        let t = Tensor::from_values(DType::String, &[2], &[b"ab".as_ref(), b""], 1 << 20).unwrap();
        let raw = to_raw(&t);
        assert_eq!(&raw[..], b"\x02\0\0\0ab\0\0\0\0");
        let back = from_raw("x", DType::String, &[2], raw, 1 << 20).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn raw_data_must_match_the_shape() {
        let err = from_raw(
            "x",
            DType::Float,
            &[2],
            Bytes::from_static(&[0; 7]),
            1 << 20,
        )
        .unwrap_err();
        assert!(err.contains("7 bytes"), "{err}");
        let cut = from_raw(
            "x",
            DType::String,
            &[1],
            Bytes::from_static(b"\x05\0\0\0ab"),
            1 << 20,
        )
        .unwrap_err();
        assert!(cut.contains("cut short"), "{cut}");
    }

    #[test]
    fn nested_json_is_read_row_major_in_one_pass() {
        let data = flat("[[1, 2.5], [3, 4]]");
        let t = from_json("x", DType::Float, &[2, 2], &data, 1 << 20).unwrap();
        assert_eq!(to_json(&t), serde_json::json!([1.0, 2.5, 3.0, 4.0]));
        let d = from_json("x", DType::Double, &[1], &flat("[0.1]"), 64).unwrap();
        assert_eq!(&d.blob()[..], &0.1f64.to_le_bytes());
        let ints = from_json("x", DType::Int32, &[2, 2], &data, 1 << 20);
        assert!(ints.is_err(), "2.5 is not an INT32");
        let short = from_json("x", DType::Float, &[3, 2], &data, 1 << 20).unwrap_err();
        assert!(short.contains("4 elements"), "{short}");
        let bad = from_json("x", DType::Float, &[2], &flat(r#"[1, "a"]"#), 64).unwrap_err();
        assert!(bad.contains("\"a\" is not a FP32 value"), "{bad}");
        // INT64 keeps every digit (no trip through f64).
        let big = from_json("x", DType::Int64, &[1], &flat("[9007199254740993]"), 64).unwrap();
        assert_eq!(&big.blob()[..], &9007199254740993i64.to_le_bytes());
    }

    #[test]
    fn json_booleans_and_strings() {
        let b = from_json("x", DType::Bool, &[2], &flat("[true, false]"), 64).unwrap();
        assert_eq!(to_json(&b), serde_json::json!([true, false]));
        let s = from_json("x", DType::String, &[1], &flat(r#"["hi"]"#), 64).unwrap();
        assert_eq!(to_json(&s), serde_json::json!(["hi"]));
        assert!(from_json("x", DType::Bool, &[1], &flat("[2]"), 64).is_err());
    }
}
