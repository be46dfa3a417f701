use super::*;
use proptest::prelude::*;

const MAX: usize = 1 << 30;

fn dtype() -> impl Strategy<Value = DType> {
    prop::sample::select(DType::ALL.to_vec())
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 1..4)
}

/// A valid random blob for `dtype` with `n` elements.
fn blob(dtype: DType, n: usize, seed: &[u8]) -> Vec<u8> {
    let byte = |i: usize| seed[i % seed.len()];
    match dtype {
        DType::String => (0..n)
            .flat_map(|i| vec![b'a' + byte(i) % 26, byte(i + 1) % 26 + b'a', 0])
            .collect(),
        DType::Bool => (0..n).map(|i| byte(i) & 1).collect(),
        // NaN payloads would not compare equal after a VALUES round trip; keep floats finite.
        DType::Float => (0..n)
            .flat_map(|i| ((byte(i) as f32 - 100.0) / 7.0).to_le_bytes())
            .collect(),
        DType::Double => (0..n)
            .flat_map(|i| ((byte(i) as f64 - 100.0) / 3.0).to_le_bytes())
            .collect(),
        DType::Float16 => (0..n)
            .flat_map(|i| {
                half::f16::from_f32(byte(i) as f32 / 4.0)
                    .to_bits()
                    .to_le_bytes()
            })
            .collect(),
        DType::BFloat16 => (0..n)
            .flat_map(|i| {
                half::bf16::from_f32(byte(i) as f32 / 4.0)
                    .to_bits()
                    .to_le_bytes()
            })
            .collect(),
        other => (0..n * other.size().unwrap()).map(byte).collect(),
    }
}

/// Text for an element the way the server prints it (`%.17g` for floats).
fn text(e: &Element) -> Vec<u8> {
    match e {
        Element::Int(i) => i.to_string().into_bytes(),
        Element::UInt(u) => u.to_string().into_bytes(),
        Element::Float(f) => crate::numbers::format_f64_g17(*f).into_bytes(),
        Element::Str(s) => s.to_vec(),
    }
}

proptest! {
    #[test]
    fn blob_round_trip_is_byte_identical(dtype in dtype(), shape in shape(), seed in prop::collection::vec(any::<u8>(), 1..64)) {
        let n: usize = shape.iter().product();
        let data = blob(dtype, n, &seed);
        let t = Tensor::from_blob(dtype, &shape, &[&data], MAX).unwrap();
        prop_assert_eq!(&t.blob()[..], &data[..]);
        prop_assert_eq!(t.shape(), &shape[..]);
        prop_assert_eq!(t.dtype(), dtype);
        prop_assert_eq!(t.blob().as_ptr() as usize % 64, 0, "aligned");
        // The same bytes split into chunks give the same tensor.
        let mid = data.len() / 2;
        let chunked = Tensor::from_blob(dtype, &shape, &[&data[..mid], &data[mid..]], MAX).unwrap();
        prop_assert_eq!(chunked, t);
    }

    #[test]
    fn values_round_trip_is_value_identical(dtype in dtype(), shape in shape(), seed in prop::collection::vec(any::<u8>(), 1..64)) {
        let n: usize = shape.iter().product();
        let t = Tensor::from_blob(dtype, &shape, &[&blob(dtype, n, &seed)], MAX).unwrap();
        let texts: Vec<Vec<u8>> = t.elements().iter().map(text).collect();
        let back = Tensor::from_values(dtype, &shape, &texts, MAX).unwrap();
        prop_assert_eq!(back.elements(), t.elements());
        prop_assert_eq!(&back.blob()[..], &t.blob()[..]);
    }

    #[test]
    fn concat_then_slice_gives_back_the_parts(dtype in dtype(), rows in prop::collection::vec(1usize..4, 1..5), cols in 1usize..4, seed in prop::collection::vec(any::<u8>(), 1..64)) {
        let parts: Vec<Tensor> = rows.iter().enumerate().map(|(i, &r)| {
            let mut s = seed.clone();
            s.push(i as u8);
            Tensor::from_blob(dtype, &[r, cols], &[&blob(dtype, r * cols, &s)], MAX).unwrap()
        }).collect();
        let refs: Vec<&Tensor> = parts.iter().collect();
        let batch = Tensor::concat_batch(&refs, MAX).unwrap();
        prop_assert_eq!(batch.shape()[0], rows.iter().sum::<usize>());
        let mut at = 0;
        for p in &parts {
            let s = batch.slice_batch(at, p.shape()[0]);
            prop_assert_eq!(&s, p);
            at += p.shape()[0];
        }
    }
}

#[test]
fn errors_use_redisai_texts() {
    let e = |r: Result<Tensor, TensorError>| r.unwrap_err().0;
    assert_eq!(
        e(Tensor::from_blob(DType::Float, &[2], &[b"abc"], MAX)),
        ERR_BLOB_LEN
    );
    assert_eq!(
        e(Tensor::from_values(DType::Int32, &[2], &["1", "1.5"], MAX)),
        ERR_VALUE
    );
    assert_eq!(
        e(Tensor::from_values(DType::Float, &[2], &["1", "x"], MAX)),
        ERR_VALUE
    );
    assert_eq!(
        e(Tensor::from_values(DType::Bool, &[2], &["1", "2"], MAX)),
        ERR_VALUE
    );
    assert_eq!(
        e(Tensor::from_values(DType::Int8, &[1], &["128"], MAX)),
        ERR_VALUE
    );
    assert_eq!(
        e(Tensor::from_values(DType::Uint8, &[1], &["-1"], MAX)),
        ERR_VALUE
    );
    assert_eq!(
        e(Tensor::from_blob(DType::Bool, &[2], &[b"\x02\x01"], MAX)),
        ERR_BOOL_BLOB
    );
    assert_eq!(
        e(Tensor::from_blob(DType::String, &[2], &[b"one\0"], MAX)),
        ERR_STRINGS
    );
    assert_eq!(
        e(Tensor::from_blob(DType::String, &[2], &[b"one\0two"], MAX)),
        ERR_STRINGS
    );
    assert_eq!(
        e(Tensor::from_values(DType::String, &[1], &["a\0b"], MAX)),
        ERR_NUL_IN_STRING
    );
    assert!(
        e(Tensor::from_values(DType::Float, &[2], &["1"], MAX)).contains("wrong number of values")
    );
}

#[test]
fn huge_shapes_are_refused_before_allocating() {
    let e = Tensor::zeros(DType::Double, &[1 << 40, 1 << 40], MAX).unwrap_err();
    assert!(e.0.contains("too large"), "{e}");
    let e = Tensor::zeros(DType::Float, &[1 << 20, 1 << 10], 1 << 20).unwrap_err();
    assert!(e.0.contains("too large"), "{e}");
    assert_eq!(
        Tensor::zeros(DType::Float, &[0], MAX).unwrap_err().0,
        ERR_SHAPE
    );
}

#[test]
fn zeros_and_strings() {
    let t = Tensor::zeros(DType::Int16, &[2, 3], MAX).unwrap();
    assert_eq!(t.elements(), vec![Element::Int(0); 6]);
    let s = Tensor::from_values(DType::String, &[2], &["hello", ""], MAX).unwrap();
    assert_eq!(&s.blob()[..], b"hello\0\0");
    assert_eq!(
        s.strings(),
        vec![Bytes::from_static(b"hello"), Bytes::new()]
    );
}
