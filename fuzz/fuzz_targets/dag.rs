//! AI.DAGEXECUTE's whole request (LOAD, PERSIST, KEYS, ROUTING, TIMEOUT and the ops after
//! each `|>`) run through the server's command path in process, against a keyspace with a
//! tensor in it; the server must answer every request, error or not.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use locus::config::Config;
use locus::server::protocol::Request;
use locus::server::Server;
use std::sync::{Arc, LazyLock};

struct Fixture {
    server: Arc<Server>,
    rt: tokio::runtime::Runtime,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let overrides = [
        ("tensor-max-bytes".to_string(), "1mb".to_string()),
        ("save".to_string(), String::new()),
    ];
    let config = Config::load(None, &overrides).expect("config");
    let server = Server::new(config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let f = Fixture { server, rt };
    run(&f, &["AI.TENSORSET", "t", "FLOAT", "2", "2", "VALUES", "1", "2", "3", "4"]);
    f
});

fn run(f: &Fixture, words: &[&str]) {
    let argv: Vec<Bytes> = words.iter().map(|w| Bytes::from(w.to_string())).collect();
    execute(f, argv);
}

fn execute(f: &Fixture, argv: Vec<Bytes>) {
    let _guard = f.rt.enter();
    let mut client = f.server.clients.detached(0);
    let _ = f.server.execute(&mut client, Request::from_args(&argv));
}

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    let mut argv = vec![Bytes::from_static(b"AI.DAGEXECUTE")];
    argv.extend(data.split(|&b| b == b' ').map(Bytes::copy_from_slice));
    execute(f, argv);
});
