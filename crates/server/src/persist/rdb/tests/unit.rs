//! Unit tests of the primitives and encodings, and round trips of values through payloads.

use super::super::codec::{parse_canonical_i64, put_len, put_string, Reader};
use super::super::listpack::{self, Element};
use super::super::object::double_text;
use super::super::{
    crc64, decode_object, dump_payload, encode_object, legacy, lzf, restore_payload,
    verify_dump_payload, ModuleValue, RdbError, RdbValue,
};
use super::{canonical, sample_values, Rng};

#[test]
fn crc64_matches_redis_test_vectors() {
    assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    let mut lorem = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed \
do eiusmod tempor incididunt ut labore et dolore magna \
aliqua. Ut enim ad minim veniam, quis nostrud exercitation \
ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis \
aute irure dolor in reprehenderit in voluptate velit esse \
cillum dolore eu fugiat nulla pariatur. Excepteur sint \
occaecat cupidatat non proident, sunt in culpa qui officia \
deserunt mollit anim id est laborum."
        .to_vec();
    lorem.push(0); // Redis's test hashes sizeof(li), the terminator included.
    assert_eq!(crc64(0, &lorem), 0xc779_4709_e696_83b3);
}

#[test]
fn crc64_extends_incrementally() {
    let data = Rng::new(3).bytes(1000);
    for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
        let (a, b) = data.split_at(split);
        assert_eq!(crc64(crc64(0, a), b), crc64(0, &data), "split at {split}");
    }
}

#[test]
fn lzf_round_trips_and_refuses_what_does_not_shrink() {
    let mut rng = Rng::new(11);
    let mut inputs: Vec<Vec<u8>> = vec![
        b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
        b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc".to_vec(),
        vec![0; 100_000],
    ];
    inputs.push((0..20_000).map(|i| (i % 251) as u8).collect());
    inputs.push((0..5000).map(|_| b"ACGT"[rng.below(4)]).collect());
    for input in &inputs {
        let compressed = lzf::compress(input, input.len() - 4).expect("compressible");
        assert!(compressed.len() <= input.len() - 4);
        assert_eq!(
            lzf::decompress(&compressed, input.len()).as_deref(),
            Some(&input[..])
        );
        assert_eq!(lzf::decompress(&compressed, input.len() + 1), None);
        assert_eq!(lzf::decompress(&compressed, input.len() - 1), None);
    }
    let noise = rng.bytes(1000);
    assert_eq!(lzf::compress(&noise, noise.len() - 4), None);
    assert_eq!(
        lzf::decompress(&[0x20, 0x00], 10),
        None,
        "back reference before the start"
    );
    assert_eq!(
        lzf::decompress(&[0x05, b'a'], 6),
        None,
        "literal run past the input"
    );
    assert_eq!(
        lzf::decompress(&[0x00, b'a', 0xe0], 20),
        None,
        "cut reference"
    );
    assert_eq!(lzf::decompress(&[], 0).as_deref(), Some(&[][..]));
}

#[test]
fn lengths_round_trip_in_each_width() {
    for len in [
        0,
        1,
        63,
        64,
        16383,
        16384,
        u32::MAX as u64,
        u32::MAX as u64 + 1,
        u64::MAX,
    ] {
        let mut out = Vec::new();
        put_len(&mut out, len);
        let expected_width = match len {
            0..=63 => 1,
            64..=16383 => 2,
            16384..=0xffff_ffff => 5,
            _ => 9,
        };
        assert_eq!(out.len(), expected_width, "width of {len}");
        let mut r = Reader::new(&out);
        assert_eq!(r.read_len(), Ok(len));
        assert_eq!(r.remaining(), 0);
    }
    assert_eq!(
        Reader::new(&[0x82]).read_len(),
        Err(RdbError::Corrupt("unknown length encoding"))
    );
    assert_eq!(Reader::new(&[0x40]).read_len(), Err(RdbError::Truncated));
}

#[test]
fn strings_choose_redis_encodings() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"0", &[0xc0, 0]),
        (b"-128", &[0xc0, 0x80]),
        (b"127", &[0xc0, 0x7f]),
        (b"128", &[0xc1, 0x80, 0]),
        (b"-32768", &[0xc1, 0, 0x80]),
        (b"32768", &[0xc2, 0, 0x80, 0, 0]),
        (b"-2147483648", &[0xc2, 0, 0, 0, 0x80]),
        (b"2147483648", b"\x0a2147483648"),
        (b"007", b"\x03007"),
        (b"-0", b"\x02-0"),
        (b"+1", b"\x02+1"),
        (b"", &[0]),
    ];
    for (input, expected) in cases {
        let mut out = Vec::new();
        put_string(&mut out, input);
        assert_eq!(
            &out[..],
            *expected,
            "encoding of {:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(Reader::new(&out).string().as_deref(), Ok(*input));
    }
    let long = b"x".repeat(21);
    let mut out = Vec::new();
    put_string(&mut out, &long);
    assert_eq!(out[0], 0xc3, "21 repeated bytes are LZF-compressed");
    assert_eq!(Reader::new(&out).string(), Ok(long));
}

#[test]
fn canonical_integers_are_those_redis_recognises() {
    let good: &[(&str, i64)] = &[
        ("0", 0),
        ("-1", -1),
        ("9223372036854775807", i64::MAX),
        ("-9223372036854775808", i64::MIN),
        ("10", 10),
    ];
    for (text, v) in good {
        assert_eq!(parse_canonical_i64(text.as_bytes()), Some(*v), "{text}");
    }
    for text in [
        "",
        "-",
        "-0",
        "01",
        "+1",
        " 1",
        "1 ",
        "9223372036854775808",
        "1a",
        "1.0",
    ] {
        assert_eq!(parse_canonical_i64(text.as_bytes()), None, "{text:?}");
    }
    assert_eq!(parse_canonical_i64(b"-9223372036854775809"), None);
}

#[test]
fn listpack_elements_round_trip_at_every_encoding_boundary() {
    let ints = [
        0,
        127,
        128,
        -1,
        -4096,
        4095,
        4096,
        -4097,
        32767,
        -32768,
        32768,
        8_388_607,
        -8_388_608,
        8_388_608,
        i32::MAX as i64,
        i32::MIN as i64,
        i32::MAX as i64 + 1,
        i64::MAX,
        i64::MIN,
    ];
    let strings: Vec<Vec<u8>> = [0usize, 1, 63, 64, 125, 126, 127, 4095, 4096, 16380, 20000]
        .iter()
        .map(|&n| vec![b's'; n])
        .collect();
    let mut lp = listpack::Builder::new();
    for v in ints {
        lp.push_int(v);
    }
    for s in &strings {
        lp.push_bytes(s);
    }
    lp.push_bytes(b"12");
    let bytes = lp.finish();
    let parsed = listpack::parse(&bytes).expect("valid listpack");
    let mut expected: Vec<Element<'_>> = ints.iter().map(|&v| Element::Int(v)).collect();
    expected.extend(strings.iter().map(|s| Element::Bytes(s)));
    expected.push(Element::Int(12));
    assert_eq!(parsed, expected);
}

#[test]
fn listpack_matches_redis_bytes() {
    // lpNew + lpAppend("a") + lpAppendInteger(1000), as listpack.c lays them out.
    let mut lp = listpack::Builder::new();
    lp.push_bytes(b"a");
    lp.push_int(1000);
    assert_eq!(
        lp.finish(),
        vec![13, 0, 0, 0, 2, 0, 0x81, b'a', 2, 0xc3, 0xe8, 2, 0xff]
    );
}

#[test]
fn intsets_round_trip_in_each_width() {
    for values in [vec![-5, 0, 7], vec![-40000, 1], vec![i64::MIN, 0, i64::MAX]] {
        let blob = legacy::build_intset(&values);
        assert_eq!(legacy::parse_intset(&blob), Ok(values));
    }
    let unsorted = {
        let mut blob = legacy::build_intset(&[1, 2]);
        blob.swap(8, 10);
        blob
    };
    assert!(legacy::parse_intset(&unsorted).is_err());
}

#[test]
fn scores_are_printed_as_redis_d2string_prints_them() {
    let cases: &[(f64, &str)] = &[
        (0.1, "0.10000000000000001"),
        (1.5, "1.5"),
        (1e-300, "1e-300"),
        (7.3, "7.2999999999999998"),
        (-2.5e20, "-2.5e+20"),
        (1e-5, "1.0000000000000001e-05"),
        (123.456, "123.456"),
        (1e21, "1e+21"),
        (5e-324, "4.9406564584124654e-324"),
        (f64::MAX, "1.7976931348623157e+308"),
        (-1.0 / 3.0, "-0.33333333333333331"),
        (9.3e18, "9.3e+18"),
        (0.0001, "0.0001"),
        (1.234e-5, "1.234e-05"),
        (1234567.125, "1234567.125"),
        (4.611686018427388e18, "4611686018427387904"),
        (-7.0, "-7"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ];
    for (v, text) in cases {
        assert_eq!(double_text(*v), *text, "{v:e}");
    }
}

#[test]
fn module_type_ids_encode_name_and_version() {
    let id = ModuleValue::type_id_of("test__rdb", 1).expect("valid");
    let value = ModuleValue {
        type_id: id,
        body: vec![0],
    };
    assert_eq!(value.name(), "test__rdb");
    assert_eq!(value.encver(), 1);
    assert_eq!(ModuleValue::type_id_of("short", 0), None);
    assert_eq!(ModuleValue::type_id_of("bad name!", 0), None);
    assert_eq!(ModuleValue::type_id_of("abcdefghi", 1024), None);
}

#[test]
fn payload_footer_is_checked_as_redis_checks_it() {
    let mut payload = dump_payload(&RdbValue::String(b"v".to_vec()));
    assert_eq!(
        restore_payload(&payload),
        Ok(RdbValue::String(b"v".to_vec()))
    );
    for short in 0..10 {
        assert_eq!(
            restore_payload(&payload[..short]),
            Err(RdbError::VersionOrChecksum)
        );
    }
    let n = payload.len();
    payload[n - 10] = 11;
    assert_eq!(
        verify_dump_payload(&payload),
        Err(RdbError::VersionOrChecksum)
    );
    payload[n - 10] = 9; // An older version is fine, once the checksum matches again.
    let crc = crc64(0, &payload[..n - 8]);
    payload[n - 8..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(verify_dump_payload(&payload), Ok(()));
    payload[n - 8..].copy_from_slice(&[0; 8]);
    assert_eq!(
        restore_payload(&payload).map_err(|e| e.restore_reply()),
        Err("ERR DUMP payload version or checksum are wrong"),
        "a zero checksum is checked like any other"
    );
    assert_eq!(RdbError::Truncated.restore_reply(), "ERR Bad data format");
}

#[test]
fn every_sample_value_round_trips() {
    for value in sample_values() {
        let payload = dump_payload(&value);
        let decoded = restore_payload(&payload).expect("decodes");
        assert_eq!(canonical(&decoded), canonical(&value));
        assert_eq!(dump_payload(&decoded), payload, "re-encoding is stable");
        assert_eq!(
            decode_object(&encode_object(&value)).map(|v| canonical(&v)),
            Ok(canonical(&value))
        );
    }
}

#[test]
fn empty_collections_are_refused_like_redis() {
    for value in [
        RdbValue::List(vec![]),
        RdbValue::Set(vec![]),
        RdbValue::ZSet(vec![]),
        RdbValue::Hash(vec![]),
    ] {
        assert_eq!(
            restore_payload(&dump_payload(&value)),
            Err(RdbError::EmptyValue)
        );
    }
}

#[test]
fn duplicates_and_nan_scores_are_refused() {
    let dup_set = RdbValue::Set(vec![b"a".to_vec(), b"b".to_vec(), b"a".to_vec()]);
    assert!(restore_payload(&dump_payload(&dup_set)).is_err());
    let dup_hash = RdbValue::Hash(vec![
        (b"f".to_vec(), b"1".to_vec()),
        (b"f".to_vec(), b"2".to_vec()),
    ]);
    assert!(restore_payload(&dump_payload(&dup_hash)).is_err());
    let nan = RdbValue::ZSet(vec![(b"m".to_vec(), f64::NAN)]);
    assert!(restore_payload(&dump_payload(&nan)).is_err());
    let big_nan = RdbValue::ZSet(
        (0..200)
            .map(|i| (i.to_string().into_bytes(), f64::NAN))
            .collect(),
    );
    assert!(restore_payload(&dump_payload(&big_nan)).is_err());
}

#[test]
fn hostile_lengths_fail_without_allocating() {
    let huge_string = [0u8, 0x81, 0, 0, 1, 0, 0, 0, 0, 0];
    assert_eq!(decode_object(&huge_string), Err(RdbError::Truncated));
    let mut huge_lzf = vec![0u8, 0xc3, 3];
    huge_lzf.extend_from_slice(&[0x81, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0xe0]);
    assert!(decode_object(&huge_lzf).is_err());
    for rdb_type in [1u8, 2, 3, 4, 5, 14, 15, 18, 19] {
        let mut count = vec![rdb_type, 0x81];
        count.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(decode_object(&count).is_err(), "type {rdb_type}");
    }
}
