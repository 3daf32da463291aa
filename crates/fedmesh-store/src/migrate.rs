//! Schema migrations: a database of an older schema is brought to [`SCHEMA_VERSION`] when it
//! is opened, one version at a time. Each migration commits its changes and the new version
//! number in one sled transaction: a crash leaves the database at the old version, and the
//! next opening runs the migration again from the start.
//!
//! | version | change |
//! |---|---|
//! | 1 | the first schema |
//! | 2 | idempotency records (`requests`) say when they were recorded ([`RequestRecord`]); a record of version 1 is dated to its migration |
//! | 3 | the provider's usage record index (`record_ids`) keeps a 17-byte fingerprint of each new record instead of its content, the coordinator's keeps nothing; values written before still compare, and nothing is rewritten: the version only keeps older binaries, which would take a fingerprint for a conflicting content, from opening the database |

use prost::Message as _;
use sled::Transactional as _;
use sled::transaction::ConflictableTransactionError;

use crate::{SCHEMA_KEY, SCHEMA_VERSION, StoreError};

/// An idempotency record: what a client request made (an entity id, or `queued`), and when
/// it was recorded. Stored in the `requests` tree, under the request's key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestRecord {
    /// The id of what the request made.
    #[prost(string, tag = "1")]
    pub made: String,
    /// When it was recorded, in Unix seconds.
    #[prost(int64, tag = "2")]
    pub recorded_at_unix: i64,
}

/// Now on the federation's clock, in Unix seconds.
pub(crate) fn now_unix() -> i64 {
    fedmesh_core::clock::now_secs()
}

/// One migration: from `to - 1` to `to`.
struct Migration {
    to: u32,
    what: &'static str,
    run: fn(&sled::Db) -> Result<(), StoreError>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        to: 2,
        what: "idempotency records say when they were recorded",
        run: v2_request_times,
    },
    Migration {
        to: 3,
        what: "usage record ids keep fingerprints",
        run: v3_record_fingerprints,
    },
];

/// Brings a database at schema `found` to [`SCHEMA_VERSION`].
pub(crate) fn migrate(db: &sled::Db, path: &std::path::Path, found: u32) -> Result<(), StoreError> {
    for migration in MIGRATIONS
        .iter()
        .filter(|m| m.to > found && m.to <= SCHEMA_VERSION)
    {
        let started = std::time::Instant::now();
        (migration.run)(db)?;
        tracing::info!(
            path = %path.display(),
            from = migration.to - 1,
            to = migration.to,
            took_ms = started.elapsed().as_millis() as u64,
            "database migrated: {}",
            migration.what
        );
    }
    db.flush()?;
    Ok(())
}

/// Version 2: every idempotency record becomes a [`RequestRecord`], dated now.
fn v2_request_times(db: &sled::Db) -> Result<(), StoreError> {
    let requests = db.open_tree(crate::journal::REQUESTS_TREE)?;
    let meta = db.open_tree(crate::META_TREE)?;
    let now = now_unix();
    let old: Vec<(sled::IVec, Vec<u8>)> = requests
        .iter()
        .map(|pair| {
            let (key, value) = pair?;
            let record = RequestRecord {
                made: String::from_utf8_lossy(&value).into_owned(),
                recorded_at_unix: now,
            };
            Ok((key, record.encode_to_vec()))
        })
        .collect::<Result<_, sled::Error>>()?;
    (&requests, &meta)
        .transaction(|(requests, meta)| {
            for (key, value) in &old {
                requests.insert(key, value.as_slice())?;
            }
            meta.insert(SCHEMA_KEY, &2u32.to_be_bytes())?;
            Ok::<_, ConflictableTransactionError<()>>(())
        })
        .map_err(StoreError::from_transaction)
}

/// Version 3: new `record_ids` values are fingerprints; the stored ones stay as they are.
fn v3_record_fingerprints(db: &sled::Db) -> Result<(), StoreError> {
    db.open_tree(crate::META_TREE)?
        .insert(SCHEMA_KEY, &3u32.to_be_bytes())?;
    Ok(())
}
