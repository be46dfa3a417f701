//! `locus-check [--fix] <file>`: verifies a Locus snapshot, an append-only file, or a whole
//! AOF (its manifest or directory), and reports the first bad offset, like redis-check-rdb and
//! redis-check-aof. `--fix` cuts a damaged or torn AOF tail off at the last good record. A
//! Redis RDB file is checked as `--import-rdb` would read it.

use locus::persist::aof::{self, ReadError};
use locus::persist::{self, Loaded};
use std::path::{Path, PathBuf};
use std::process::exit;

fn usage() -> ! {
    eprintln!("Usage: locus-check [--fix] <snapshot | incremental AOF file | AOF manifest | AOF directory>");
    exit(2)
}

fn main() {
    let mut fix = false;
    let mut file = None;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--fix" => fix = true,
            "-h" | "--help" => usage(),
            _ if file.is_none() => file = Some(PathBuf::from(a)),
            _ => usage(),
        }
    }
    let Some(path) = file else { usage() };
    let ok = if path.is_dir() {
        match find_manifest(&path) {
            Some(m) => check_manifest(&m, fix),
            None => {
                println!("No AOF manifest in {}", path.display());
                false
            }
        }
    } else if path.extension().is_some_and(|e| e == "manifest") {
        check_manifest(&path, fix)
    } else if is_snapshot(&path) {
        check_snapshot(&path)
    } else if has_magic(&path, b"REDIS") {
        check_rdb(&path)
    } else {
        check_incr(&path, fix)
    };
    exit(if ok { 0 } else { 1 })
}

fn is_snapshot(path: &Path) -> bool {
    has_magic(path, persist::MAGIC)
}

fn has_magic(path: &Path, magic: &[u8]) -> bool {
    use std::io::Read;
    let mut head = vec![0u8; magic.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == magic
}

/// Reads a Redis RDB file through the importer's decoding (models are decoded, not loaded) and
/// reports what an import would bring in, unknown module types by name.
fn check_rdb(path: &Path) -> bool {
    let file = path.display();
    println!("[offset 0] Checking RDB file {file}");
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            println!("Can't open {file}: {e}");
            return false;
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    match persist::migrate::import_rdb(&bytes, true, now, |_, _, _, _, _, _| Ok(())) {
        Ok(r) => {
            println!(
                "RDB version {} looks OK: {} keys ({} models), {} function libraries, {} expired keys",
                r.rdb_version,
                r.keys,
                r.models,
                r.functions.len(),
                r.expired
            );
            for (name, count) in &r.skipped {
                println!(
                    "{count} keys of module type '{name}' cannot be imported (import-skip-unknown leaves them out)"
                );
            }
            true
        }
        Err(e) => {
            println!("RDB file {file} is NOT valid: {e}");
            false
        }
    }
}

fn find_manifest(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "manifest"))
}

fn check_snapshot(path: &Path) -> bool {
    let file = path.display();
    match persist::read(path) {
        Ok(records) => {
            let (mut values, mut models, mut libraries, mut jobs) = (0, 0, 0, 0);
            for r in &records {
                match r {
                    Loaded::Value(..) => values += 1,
                    Loaded::Model { .. } => models += 1,
                    Loaded::Function(_) => libraries += 1,
                    // Settings of a key, not a key.
                    Loaded::RequestLog(..) | Loaded::Monitor(..) => {}
                    Loaded::Job(..) => jobs += 1,
                }
            }
            println!("[offset 0] Checking snapshot {file}");
            let mut libs = if libraries > 0 {
                format!(", {libraries} function libraries")
            } else {
                String::new()
            };
            if jobs > 0 {
                libs.push_str(&format!(", {jobs} scoring jobs"));
            }
            println!(
                "Snapshot looks OK: {} keys ({values} values, {models} models){libs}, checksum verified",
                values + models
            );
            true
        }
        Err(e) => {
            println!("[offset {}] {}", e.offset, e.message);
            println!(
                "Snapshot {file} is NOT valid: first problem at offset {}",
                e.offset
            );
            false
        }
    }
}

/// Checks one incremental file; with `fix`, cuts it at the first bad record.
fn check_incr(path: &Path, fix: bool) -> bool {
    let file = path.display();
    let data = match aof::map_file(path) {
        Ok(d) => d,
        Err(e) => {
            println!("Can't open {file}: {e}");
            return false;
        }
    };
    let len = data.len();
    let mut commands = 0usize;
    let result = aof::read_records(&data, |r| {
        commands += r.commands.len();
        Ok(())
    });
    drop(data);
    match result {
        Ok(records) => {
            println!("AOF {file} is valid: {records} records, {commands} commands, {len} bytes");
            true
        }
        Err(e) => {
            let offset = e.offset();
            println!("[offset {offset}] {e}");
            let what = match e {
                ReadError::Truncated { .. } => "ends with a torn record",
                ReadError::Corrupt { .. } => "is damaged",
            };
            println!(
                "AOF {file} {what} at offset {offset}: {} bytes after it",
                len as u64 - offset
            );
            if !fix {
                println!("Run with --fix to cut the file at offset {offset}.");
                return false;
            }
            match std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(offset).and_then(|_| f.sync_all()))
            {
                Ok(()) => {
                    println!(
                        "Successfully truncated AOF {file} to {offset} bytes ({} bytes removed)",
                        len as u64 - offset
                    );
                    true
                }
                Err(err) => {
                    println!("Failed to truncate AOF {file}: {err}");
                    false
                }
            }
        }
    }
}

/// Checks every file a manifest names; `fix` applies only to the last incremental file, the
/// only place a crash can leave a torn record.
fn check_manifest(path: &Path, fix: bool) -> bool {
    let manifest = match aof::load_manifest(path) {
        Ok(m) => m,
        Err(e) => {
            println!("{e}");
            return false;
        }
    };
    println!("Checking AOF manifest {}", path.display());
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut ok = true;
    if let Some(base) = &manifest.base {
        ok &= check_snapshot(&dir.join(&base.file));
    }
    for (i, part) in manifest.incrs.iter().enumerate() {
        let last = i + 1 == manifest.incrs.len();
        ok &= check_incr(&dir.join(&part.file), fix && last);
    }
    if ok {
        println!("AOF analyzed: every file is valid");
    }
    ok
}
