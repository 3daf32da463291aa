//! sled alone under the write pattern of a busy provider node, to tell sled's memory from
//! fedmesh's: batches of records under random ids (like usage record ids) plus one journal
//! entry per batch under a sequential key, flushed after every batch (fedmesh acknowledges
//! writes once durable). Prints the process's resident memory and the database's size on
//! disk as it goes. BENCHMARKS.md ("Soak") has the results.
//!
//! ```sh
//! cargo run --release -p fedmesh-store --example sled_memory -- --seconds 180 --cache-mb 4
//! ```
//!
//! `--keep-batches N` deletes each batch (its records and journal entry) N batches after it was
//! written, so the data held stays bounded; `--records 0` / `--journal 0` leave out one of the
//! two trees; `--value-bytes` sets the size of a record. `--month-batches N` closes a month every
//! N batches (removing the month before last's records and journal), `--month-first 1` leads
//! record keys with their month, `--transactions 1` writes each batch and its journal entry in
//! one transaction. `--flush-every-ms` sets how often sled's background thread runs in every
//! database of the process (sled's default 500; fedmesh's `storage.clean_interval_ms`, 100):
//! each run frees at most one segment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn disk_mib(dir: &std::path::Path) -> f64 {
    fn walk(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => walk(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(dir) as f64 / (1024.0 * 1024.0)
}

/// Sleeps until `next` moves on by `tick`, or moves it to now when behind.
fn pace(next: &mut Instant, tick: Duration) {
    *next += tick;
    let now = Instant::now();
    if *next > now {
        std::thread::sleep(*next - now);
    } else {
        *next = now;
    }
}

/// Writes `db` in two-tree transactions at `rate` per second, keeping the last 10,000 keys.
fn neighbour(db: sled::Db, seed: u64, rate: u64) {
    use sled::Transactional as _;
    let a = db.open_tree("a").unwrap();
    let b = db.open_tree("b").unwrap();
    let tick = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut next = Instant::now();
    let value = vec![0x3c; 300];
    for i in 0u64.. {
        let key = (i ^ seed.rotate_left(40)).to_be_bytes();
        let old = i
            .checked_sub(10_000)
            .map(|o| (o ^ seed.rotate_left(40)).to_be_bytes());
        (&a, &b)
            .transaction(|(a, b)| {
                a.insert(&key, value.clone())?;
                b.insert(&key, &key)?;
                if let Some(old) = old {
                    a.remove(&old)?;
                    b.remove(&old)?;
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .unwrap();
        db.flush().unwrap();
        pace(&mut next, tick);
    }
}

fn main() {
    let seconds: u64 = arg("--seconds", 180);
    let batches_per_second: u64 = arg("--batches-per-second", 60);
    let batch: usize = arg("--batch", 10);
    let value_bytes: usize = arg("--value-bytes", 200);
    let cache_mb: u64 = arg("--cache-mb", 64);
    let sample: u64 = arg("--sample-seconds", 15);
    // 0 keeps everything; N deletes each batch's records and journal entry N batches later.
    let keep_batches: usize = arg("--keep-batches", 0);
    let with_records = arg("--records", 1u8) == 1;
    let with_journal = arg("--journal", 1u8) == 1;
    // 0: one key per record; N: records go to N keys, each value growing by 32 bytes a record
    // (`--records` then does not apply).
    let slots: u64 = arg("--slots", 0);
    // N > 0: a month is N batches; at each month's start the records of the month before the
    // last are removed in one sweep of 1,000-key batches (a month closing), and the journal
    // keeps two months. `--month-first 1` puts the month before the random part of a key.
    let month_batches: u64 = arg("--month-batches", 0);
    let month_first = arg("--month-first", 0u8) == 1;
    // 1: a batch's records and its journal entry are written in one sled transaction, as the
    // provider's node writes them.
    let transactions = arg("--transactions", 0u8) == 1;
    // N > 0: N other databases in the same process, each written by its own thread in
    // two-tree transactions (`--neighbour-rate` per second, flushed each), as the other nodes
    // of an in-process federation write theirs. sled's transactions take a lock shared by
    // every database of the process.
    let flush_every_ms: u64 = arg("--flush-every-ms", 500);
    let neighbours: usize = arg("--neighbours", 0);
    let neighbour_rate: u64 = arg("--neighbour-rate", 100);
    let mut neighbour_dirs = Vec::new();
    for n in 0..neighbours {
        let ndir = tempfile::tempdir().unwrap();
        let ndb = sled::Config::new()
            .path(ndir.path())
            .cache_capacity(8 * 1024 * 1024)
            .flush_every_ms(Some(flush_every_ms))
            .open()
            .unwrap();
        neighbour_dirs.push(ndir);
        std::thread::spawn(move || neighbour(ndb, n as u64, neighbour_rate));
    }
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(cache_mb * 1024 * 1024)
        .flush_every_ms(Some(flush_every_ms))
        .open()
        .unwrap();
    let records = db.open_tree("record_ids").unwrap();
    let journal = db.open_tree("journal").unwrap();
    println!(
        "sled alone: {batches_per_second} batches/s of {batch} records ({value_bytes} B) + a journal entry, flushed each, cache {cache_mb} MiB"
    );
    println!("| t | records | RSS | on disk |");
    println!("|---|---|---|---|");
    let started = Instant::now();
    let tick = Duration::from_secs_f64(1.0 / batches_per_second as f64);
    let mut next = Instant::now();
    let mut revision = 0u64;
    let mut written = 0u64;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut last_sample = Instant::now();
    let value = vec![0x5a; value_bytes];
    let mut kept: std::collections::VecDeque<Vec<Vec<u8>>> = std::collections::VecDeque::new();
    let mut months: std::collections::VecDeque<Vec<Vec<u8>>> = std::collections::VecDeque::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        if month_batches > 0 && revision.is_multiple_of(month_batches) {
            months.push_back(Vec::new());
            if months.len() > 2 {
                let closed = months.pop_front().unwrap_or_default();
                for chunk in closed.chunks(1_000) {
                    let mut sweep = sled::Batch::default();
                    for key in chunk {
                        sweep.remove(key.clone());
                    }
                    records.apply_batch(sweep).unwrap();
                }
                let first = revision.saturating_sub(2 * month_batches);
                for old in journal.range(..first.to_be_bytes()).keys() {
                    journal.remove(old.unwrap()).unwrap();
                }
            }
        }
        let mut batch_ops = sled::Batch::default();
        written += if slots > 0 { batch as u64 } else { 0 };
        let mut keys = Vec::with_capacity(batch);
        if keep_batches > 0 && kept.len() >= keep_batches {
            for old in kept.pop_front().unwrap_or_default() {
                batch_ops.remove(old);
            }
            journal
                .remove((revision + 1 - keep_batches as u64).to_be_bytes())
                .unwrap();
        }
        for _ in 0..batch {
            // xorshift: 8 random bytes then the batch number, like random ids.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut key = Vec::with_capacity(24);
            if month_first {
                key.extend_from_slice(&(revision / month_batches.max(1)).to_be_bytes());
            }
            key.extend_from_slice(&state.to_be_bytes());
            key.extend_from_slice(&revision.to_be_bytes());
            if let Some(month) = months.back_mut() {
                month.push(key.clone());
            }
            if slots > 0 {
                let slot = (state % slots).to_be_bytes();
                let mut grown = records
                    .get(slot)
                    .unwrap()
                    .map(|v| v.to_vec())
                    .unwrap_or_default();
                grown.extend_from_slice(&key);
                grown.extend_from_slice(&key);
                records.insert(slot, grown).unwrap();
                continue;
            }
            keys.push(key.clone());
            batch_ops.insert(key, value.clone());
            written += 1;
        }
        if keep_batches > 0 {
            kept.push_back(keys);
        }
        revision += 1;
        if transactions {
            use sled::Transactional as _;
            let entry = vec![0xa5; value_bytes * batch];
            (&records, &journal)
                .transaction(|(r, j)| {
                    r.apply_batch(&batch_ops)?;
                    j.insert(&revision.to_be_bytes(), entry.clone())?;
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })
                .unwrap();
        } else if with_records {
            records.apply_batch(batch_ops).unwrap();
        }
        if with_journal && !transactions {
            journal
                .insert(revision.to_be_bytes(), vec![0xa5; value_bytes * batch])
                .unwrap();
        }
        db.flush().unwrap();
        if last_sample.elapsed() >= Duration::from_secs(sample) {
            last_sample = Instant::now();
            println!(
                "| {:.0} s | {written} | {:.0} MiB | {:.0} MiB |",
                started.elapsed().as_secs_f64(),
                rss_mib(),
                disk_mib(dir.path())
            );
        }
        pace(&mut next, tick);
    }
}
