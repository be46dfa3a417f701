//! Criterion micro-benchmarks of the hot paths: RESP framing and reply encoding of large
//! pipelines, tensor VALUES parsing, blob copy into an aligned buffer, batch concatenate / split.
//! Run with `cargo bench -p locus-benches`.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use locus::server::protocol::{frame_request, Framed, Limits};
use locus::server::reply::Reply;
use locus::tensor::{DType, Tensor};

const LIMITS: Limits = Limits {
    max_bulk: 512 << 20,
    authenticated: true,
};

fn pipeline(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        let key = format!("key:{i:08}");
        v.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$3\r\nxyz\r\n",
                key.len()
            )
            .as_bytes(),
        );
    }
    v
}

fn resp(c: &mut Criterion) {
    let wire = pipeline(1000);
    let mut g = c.benchmark_group("resp");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("frame 1000-command pipeline", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&wire[..]);
            let mut n = 0;
            while let Ok(Framed::Request(r)) = frame_request(&mut buf, &LIMITS) {
                n += r.len();
            }
            black_box(n)
        })
    });
    let replies: Vec<Reply> = (0..1000)
        .map(|i| Reply::bulk(format!("value-{i}")))
        .collect();
    for proto in [2u8, 3] {
        g.bench_function(format!("encode 1000 bulk replies RESP{proto}"), |b| {
            b.iter(|| {
                let mut out = BytesMut::with_capacity(32 * 1024);
                for r in &replies {
                    r.encode(proto, &mut out);
                }
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn tensors(c: &mut Criterion) {
    let mut g = c.benchmark_group("tensor");
    let values: Vec<String> = (0..1024).map(|i| format!("{}", i as f32 / 7.0)).collect();
    g.throughput(Throughput::Elements(1024));
    g.bench_function("parse 1024 FLOAT VALUES", |b| {
        b.iter(|| {
            black_box(Tensor::from_values(DType::Float, &[1024], &values, usize::MAX).unwrap())
        })
    });
    let blob = vec![7u8; 1 << 20];
    g.throughput(Throughput::Bytes(1 << 20));
    g.bench_function("copy 1 MiB blob into an aligned buffer", |b| {
        b.iter(|| {
            black_box(Tensor::from_blob(DType::Float, &[1 << 18], &[&blob], usize::MAX).unwrap())
        })
    });
    let rows: Vec<Tensor> = (0..32)
        .map(|_| {
            Tensor::from_blob(DType::Float, &[1, 286], &[&vec![1u8; 286 * 4]], usize::MAX).unwrap()
        })
        .collect();
    let refs: Vec<&Tensor> = rows.iter().collect();
    g.throughput(Throughput::Elements(32));
    g.bench_function("concatenate 32 [1,286] rows into a batch", |b| {
        b.iter(|| black_box(Tensor::concat_batch(&refs, usize::MAX).unwrap()))
    });
    let batch = Tensor::concat_batch(&refs, usize::MAX).unwrap();
    g.bench_function("split a [32,2] batch output into rows", |b| {
        let out =
            Tensor::from_blob(DType::Float, &[32, 2], &[&vec![0u8; 256]], usize::MAX).unwrap();
        b.iter(|| black_box((0..32).map(|i| out.slice_batch(i, 1)).collect::<Vec<_>>()))
    });
    black_box(batch);
    g.finish();
}

criterion_group!(benches, resp, tensors);
criterion_main!(benches);
