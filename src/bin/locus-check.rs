//! `locus-check <snapshot>`: verifies a Locus snapshot (structure, record count and checksum)
//! and reports the first bad offset, like redis-check-rdb.

use locus::persist::{self, Loaded};
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(file) = args.first() else {
        eprintln!("Usage: locus-check <snapshot file>");
        std::process::exit(2)
    };
    let path = Path::new(file);
    match persist::read(path) {
        Ok(records) => {
            let (mut values, mut models) = (0, 0);
            for r in &records {
                match r {
                    Loaded::Value(..) => values += 1,
                    Loaded::Model { .. } => models += 1,
                }
            }
            println!("[offset 0] Checking snapshot {file}");
            println!(
                "Snapshot looks OK: {} keys ({values} values, {models} models), checksum verified",
                records.len()
            );
        }
        Err(e) => {
            println!("[offset {}] {}", e.offset, e.message);
            println!(
                "Snapshot {file} is NOT valid: first problem at offset {}",
                e.offset
            );
            std::process::exit(1)
        }
    }
}
