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

/// Flattens nested JSON arrays (row-major) into `out`.
fn flatten<'a>(v: &'a Json, out: &mut Vec<&'a Json>) {
    match v {
        Json::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// Builds a tensor from a JSON `data` member.
pub fn from_json(
    name: &str,
    dtype: DType,
    shape: &[usize],
    data: &Json,
    max_bytes: usize,
) -> Result<Tensor, String> {
    let (n, bytes) = checked_size(dtype, shape, max_bytes).map_err(|e| plain(&e.0))?;
    let mut flat = Vec::with_capacity(n);
    flatten(data, &mut flat);
    if flat.len() != n {
        return Err(format!(
            "input '{name}' has {} elements of data, but its shape needs {n}",
            flat.len()
        ));
    }
    let bad = |v: &Json| {
        format!(
            "input '{name}': {v} is not a {} value",
            super::v2_type(dtype)
        )
    };
    // The common numeric types are written straight into the buffer.
    macro_rules! direct {
        ($get:ident, $t:ty) => {{
            let mut buf = Vec::with_capacity(bytes);
            for v in &flat {
                let x = v.$get().ok_or_else(|| bad(v))?;
                buf.extend_from_slice(&(x as $t).to_le_bytes());
            }
            buf
        }};
    }
    let buf = match dtype {
        DType::Float => direct!(as_f64, f32),
        DType::Double => direct!(as_f64, f64),
        DType::Int64 => direct!(as_i64, i64),
        _ => {
            let texts = flat
                .iter()
                .map(|v| match (dtype, v) {
                    (DType::String, Json::String(s)) => Ok(s.clone().into_bytes()),
                    (DType::Bool, Json::Bool(b)) => {
                        Ok(if *b { b"1".to_vec() } else { b"0".to_vec() })
                    }
                    (DType::String | DType::Bool, _) => Err(bad(v)),
                    (_, Json::Number(x)) => Ok(x.to_string().into_bytes()),
                    _ => Err(bad(v)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Tensor::from_values(dtype, shape, &texts, max_bytes)
                .map_err(|e| format!("input '{name}': {}", plain(&e.0)));
        }
    };
    Tensor::from_blob(dtype, shape, &[&buf], max_bytes).map_err(|e| plain(&e.0))
}

/// Builds a tensor from the text of a JSON `data` member. Floating-point data (the common case)
/// is read straight into numbers, without building a JSON tree.
pub fn from_json_text(
    name: &str,
    dtype: DType,
    shape: &[usize],
    text: &str,
    max_bytes: usize,
) -> Result<Tensor, String> {
    if matches!(dtype, DType::Float | DType::Double) {
        let (n, bytes) = checked_size(dtype, shape, max_bytes).map_err(|e| plain(&e.0))?;
        let mut numbers = Vec::with_capacity(n);
        let mut de = serde_json::Deserializer::from_str(text);
        if serde::de::DeserializeSeed::deserialize(FlatNumbers(&mut numbers), &mut de).is_ok()
            && numbers.len() == n
        {
            let mut buf = Vec::with_capacity(bytes);
            for x in numbers {
                match dtype {
                    DType::Float => buf.extend_from_slice(&(x as f32).to_le_bytes()),
                    _ => buf.extend_from_slice(&x.to_le_bytes()),
                }
            }
            return Tensor::from_blob(dtype, shape, &[&buf], max_bytes).map_err(|e| plain(&e.0));
        }
        // Not plain numbers, or not as many as the shape needs: the general path says why.
    }
    let data: Json = serde_json::from_str(text)
        .map_err(|e| format!("input '{name}': its data is not valid JSON: {e}"))?;
    from_json(name, dtype, shape, &data, max_bytes)
}

/// Appends the numbers of nested JSON arrays to a vector, in row-major order.
struct FlatNumbers<'a>(&'a mut Vec<f64>);

impl<'de> serde::de::DeserializeSeed<'de> for FlatNumbers<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FlatNumbers<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("numbers in nested arrays")
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push(v);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(FlatNumbers(self.0))?.is_some() {}
        Ok(())
    }
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
    fn nested_json_is_read_row_major() {
        let data: Json = serde_json::from_str("[[1, 2.5], [3, 4]]").unwrap();
        let t = from_json("x", DType::Float, &[2, 2], &data, 1 << 20).unwrap();
        assert_eq!(to_json(&t), serde_json::json!([1.0, 2.5, 3.0, 4.0]));
        let ints = from_json("x", DType::Int32, &[2, 2], &data, 1 << 20);
        assert!(ints.is_err(), "2.5 is not an INT32");
        let short = from_json("x", DType::Float, &[3, 2], &data, 1 << 20).unwrap_err();
        assert!(short.contains("4 elements"), "{short}");
    }

    #[test]
    fn json_text_takes_the_fast_path_for_floats_and_explains_bad_data() {
        let t = from_json_text("x", DType::Float, &[2, 2], "[[1, 2.5], [3, 4]]", 64).unwrap();
        assert_eq!(to_json(&t), serde_json::json!([1.0, 2.5, 3.0, 4.0]));
        let d = from_json_text("x", DType::Double, &[1], "[0.1]", 64).unwrap();
        assert_eq!(&d.blob()[..], &0.1f64.to_le_bytes());
        let bad = from_json_text("x", DType::Float, &[2], r#"[1, "a"]"#, 64).unwrap_err();
        assert!(bad.contains("\"a\" is not a FP32 value"), "{bad}");
        let short = from_json_text("x", DType::Float, &[3], "[1, 2]", 64).unwrap_err();
        assert!(short.contains("2 elements"), "{short}");
        let ints = from_json_text("x", DType::Int32, &[2], "[1, 2]", 64).unwrap();
        assert_eq!(ints.dtype(), DType::Int32);
    }

    #[test]
    fn json_booleans_and_strings() {
        let b = from_json(
            "x",
            DType::Bool,
            &[2],
            &serde_json::json!([true, false]),
            64,
        )
        .unwrap();
        assert_eq!(to_json(&b), serde_json::json!([true, false]));
        let s = from_json("x", DType::String, &[1], &serde_json::json!(["hi"]), 64).unwrap();
        assert_eq!(to_json(&s), serde_json::json!(["hi"]));
        assert!(from_json("x", DType::Bool, &[1], &serde_json::json!([2]), 64).is_err());
    }
}
