//! The little of an ONNX file that Locus reads itself, straight from the protobuf wire format
//! (ONNX Runtime does not expose it): ZipMap nodes' class labels, and whether any initializer
//! keeps its data in an external file (which a model stored as a key cannot have).
//!
//! Field numbers are onnx.proto's: ModelProto.graph = 7; GraphProto.node = 1,
//! GraphProto.initializer = 5; NodeProto.output = 2, NodeProto.op_type = 4,
//! NodeProto.attribute = 5; AttributeProto.name = 1, ints = 8, strings = 9;
//! TensorProto.data_location = 14 (EXTERNAL = 1).

use std::collections::HashMap;

/// One field of a protobuf message.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of a message, in order; `None` if the bytes are not a well-formed message.
fn fields(b: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let key = varint(b, &mut pos)?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(varint(b, &mut pos)?),
            1 => {
                pos = pos.checked_add(8).filter(|&p| p <= b.len())?;
                Field::Other
            }
            2 => {
                let len = usize::try_from(varint(b, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|&e| e <= b.len())?;
                let bytes = &b[pos..end];
                pos = end;
                Field::Bytes(bytes)
            }
            5 => {
                pos = pos.checked_add(4).filter(|&p| p <= b.len())?;
                Field::Other
            }
            _ => return None,
        };
        out.push((number, field));
    }
    Some(out)
}

fn graph(model: &[u8]) -> Option<&[u8]> {
    fields(model)?.into_iter().find_map(|(n, f)| match (n, f) {
        (7, Field::Bytes(g)) => Some(g),
        _ => None,
    })
}

/// Whether an initializer of the main graph keeps its data in an external file.
pub fn has_external_initializers(model: &[u8]) -> bool {
    let Some(g) = graph(model).and_then(fields) else {
        return false;
    };
    g.iter().any(|(n, f)| match (n, f) {
        (5, Field::Bytes(t)) => fields(t).is_some_and(|t| {
            t.iter()
                .any(|(n, f)| matches!((n, f), (14, Field::Varint(1))))
        }),
        _ => false,
    })
}

/// The class labels of each ZipMap node, by the name of its output: string labels as they are,
/// integer labels in decimal.
pub fn zipmap_labels(model: &[u8]) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    let Some(g) = graph(model).and_then(fields) else {
        return out;
    };
    for (n, f) in &g {
        let (1, Field::Bytes(node)) = (n, f) else {
            continue;
        };
        let Some(node) = fields(node) else { continue };
        let is_zipmap = node
            .iter()
            .any(|(n, f)| matches!((n, f), (4, Field::Bytes(b)) if *b == b"ZipMap"));
        if !is_zipmap {
            continue;
        }
        let output = node.iter().find_map(|(n, f)| match (n, f) {
            (2, Field::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        });
        let mut labels = Vec::new();
        for (n, f) in &node {
            let (5, Field::Bytes(attr)) = (n, f) else {
                continue;
            };
            let Some(attr) = fields(attr) else { continue };
            let name = attr.iter().find_map(|(n, f)| match (n, f) {
                (1, Field::Bytes(b)) => Some(*b),
                _ => None,
            });
            match name {
                Some(b"classlabels_strings") => {
                    for (n, f) in &attr {
                        if let (9, Field::Bytes(s)) = (n, f) {
                            labels.push(String::from_utf8_lossy(s).into_owned());
                        }
                    }
                }
                Some(b"classlabels_int64s") => {
                    for (n, f) in &attr {
                        match (n, f) {
                            (8, Field::Varint(v)) => labels.push((*v as i64).to_string()),
                            (8, Field::Bytes(packed)) => {
                                let mut pos = 0;
                                while let Some(v) = varint(packed, &mut pos) {
                                    labels.push((v as i64).to_string());
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(o) = output {
            out.insert(o, labels);
        }
    }
    out
}
