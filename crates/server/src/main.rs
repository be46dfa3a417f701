//! `locus-server [config-file] [--name value ...]`, with redis-server's conventions.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's allocated and resident bytes (INFO memory, maxmemory, /metrics).
fn jemalloc_stats() -> (usize, usize) {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    let allocated = tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0);
    let resident = tikv_jemalloc_ctl::stats::resident::read().unwrap_or(0);
    (allocated, resident)
}

use locus::config::Config;
use locus::server::io_pool::IoPool;
use locus::server::{self, Server};
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!("Usage: locus-server [/path/to/locus.conf] [--name value ...]");
    eprintln!("       locus-server --version");
    eprintln!("Examples:");
    eprintln!("       locus-server --port 7000 --dir /data --appendonly yes");
    std::process::exit(1)
}

/// Splits the command line into an optional config file and `--name value...` overrides.
fn parse_args() -> (Option<PathBuf>, Vec<(String, String)>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut file = None;
    let mut overrides = Vec::new();
    let mut i = 0;
    if let Some(first) = args.first() {
        match first.as_str() {
            "-v" | "--version" => {
                println!(
                    "Locus server v={} (redis_version {})",
                    locus::LOCUS_VERSION,
                    locus::REDIS_VERSION
                );
                std::process::exit(0)
            }
            "-h" | "--help" => usage(),
            f if !f.starts_with("--") => {
                file = Some(PathBuf::from(f));
                i = 1;
            }
            _ => {}
        }
    }
    while i < args.len() {
        let Some(name) = args[i].strip_prefix("--") else {
            usage()
        };
        let mut values = Vec::new();
        i += 1;
        while i < args.len() && !args[i].starts_with("--") {
            values.push(args[i].clone());
            i += 1;
        }
        overrides.push((name.to_string(), values.join(" ")));
    }
    (file, overrides)
}

fn init_logging(config: &Config) {
    let level = match config.get("loglevel").as_str() {
        "debug" => "debug",
        "verbose" => "info",
        "notice" => "info",
        "warning" => "warn",
        _ => "off",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOCUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let logfile = config.get("logfile");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if logfile.is_empty() {
        builder.init();
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&logfile)
        {
            Ok(f) => builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init(),
            Err(e) => {
                eprintln!("Can't open the log file '{logfile}': {e}");
                std::process::exit(1)
            }
        }
    }
}

fn main() {
    locus::util::init_clock();
    locus::cmd::server::set_allocator_stats(jemalloc_stats);
    let (file, overrides) = parse_args();
    let config = match Config::load(file.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("\n{e}");
            std::process::exit(1)
        }
    };
    init_logging(&config);
    let dir = config.get("dir");
    if let Err(e) = std::env::set_current_dir(&dir) {
        eprintln!("Can't chdir to '{dir}': {e}");
        std::process::exit(1)
    }
    // io-threads: how many event loops serve sockets. 0 (the default) takes half the cores,
    // leaving the rest to model execution and to clients on the same machine.
    let io_threads = match config.get_i64("io-threads") {
        0 => (std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            / 2)
        .max(1),
        n => n as usize,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(locus::server::io_pool::on_park)
        .on_thread_unpark(locus::server::io_pool::on_unpark)
        .build()
        .expect("tokio runtime");
    let pool = match IoPool::start(runtime.handle().clone(), io_threads - 1) {
        Ok(p) => std::sync::Arc::new(p),
        Err(e) => {
            eprintln!("Can't start the event-loop threads: {e}");
            std::process::exit(1)
        }
    };
    let server = Server::new(config);
    locus::notify::install(&server);
    locus::tracking::install(&server);
    if let Err(e) = server.load_acl() {
        tracing::error!("{e}");
        eprintln!("{e}");
        std::process::exit(1)
    }
    if let Err(e) = runtime.block_on(server.load_data()) {
        tracing::error!("{e}");
        eprintln!("{e}");
        std::process::exit(1)
    }
    tracing::info!(
        "Locus {} starting, pid {}",
        locus::LOCUS_VERSION,
        std::process::id()
    );
    let result = runtime.block_on(server::serve(server, pool.clone()));
    pool.stop();
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    if let Err(e) = result {
        tracing::error!("{e}");
        std::process::exit(1)
    }
}
