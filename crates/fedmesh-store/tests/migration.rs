//! A database written by the previous schema version opens and is migrated, losing nothing.
//! The fixture is a backup of a demo provider node taken with schema version 1
//! (`tests/fixtures/README.md`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use fedmesh_proto::pb;
use fedmesh_store::backup;
use fedmesh_store::migrate::RequestRecord;
use fedmesh_store::usage::{Filed, RecordError};
use fedmesh_store::{SCHEMA_VERSION, Store};
use prost::Message as _;

/// The member of an offer id (`member.name`).
fn fedmesh_core_member(offer_id: &str) -> String {
    offer_id.split('.').next().unwrap().to_owned()
}

const FIXTURE: &[u8] = include_bytes!("fixtures/node-schema-1.fmbak");

type Trees = BTreeMap<Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>>;

fn trees(bytes: &[u8]) -> (backup::Summary, Trees) {
    let (summary, trees) = backup::read(bytes).unwrap();
    let trees = trees
        .into_iter()
        .map(|(name, entries)| {
            let entries = entries
                .into_iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            (name.to_vec(), entries)
        })
        .collect();
    (summary, trees)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_schema_1_database_opens_migrated_and_complete() {
    let (summary, old) = trees(FIXTURE);
    assert_eq!(summary.schema_version, 1);
    let requests_v1 = &old[b"requests".as_slice()];
    assert_eq!(requests_v1.len(), 5, "the fixture's idempotency records");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let before = now();
    // Restoring writes the version-1 database as it was, then opens it: the migration runs.
    backup::restore(FIXTURE, &data).unwrap();
    let store = Store::open(&data).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);

    // Every idempotency record keeps what it made and is dated to the migration.
    for (key, made) in requests_v1 {
        let record = store.request_record_full(key).unwrap().unwrap();
        assert_eq!(record.made.as_bytes(), made.as_slice());
        assert!((before..=now()).contains(&record.recorded_at_unix));
        assert_eq!(
            store.request_record(key).unwrap().unwrap().as_bytes(),
            made.as_slice()
        );
    }

    // Every other tree is exactly as it was (the journal id apart: a restore starts a new one).
    let (_, new) = trees(&store.snapshot().unwrap().bytes);
    assert_eq!(
        new.keys().collect::<Vec<_>>(),
        old.keys().collect::<Vec<_>>(),
        "the same trees"
    );
    for (name, entries) in &old {
        match name.as_slice() {
            b"requests" => assert_eq!(new[name].len(), entries.len()),
            b"meta" => {
                let meta: BTreeMap<_, _> = new[name].iter().cloned().collect();
                assert_eq!(
                    meta[b"schema_version".as_slice()],
                    SCHEMA_VERSION.to_be_bytes()
                );
            }
            _ => assert_eq!(
                &new[name],
                entries,
                "tree {}",
                String::from_utf8_lossy(name)
            ),
        }
    }
    // What the node serves from it reads back.
    let offers = store.list_offers("", 10, |_| true).unwrap();
    assert_eq!(offers.len(), 1);
    let offer_id = offers[0].offer_id.clone();
    drop(store);

    // Opening again changes nothing.
    let again = Store::open(&data).unwrap();
    let (_, third) = trees(&again.snapshot().unwrap().bytes);
    assert!(third == new, "reopening changed the database");
    // The fixture does not record sled's id generator: the restore moved the new one past
    // the ids in its usage bucket keys, so new buckets and outbox items take fresh keys.
    let highest = old[b"record_buckets".as_slice()]
        .iter()
        .map(|(key, _)| u64::from_be_bytes(key[key.len() - 8..].try_into().unwrap()))
        .max()
        .unwrap();
    let next = again
        .enqueue(&fedmesh_store::outbox::OutboxItem::default())
        .unwrap();
    assert!(next > highest, "{next} after {highest}");
    // Its usage records were indexed by content (schema 1): a repeat is still a duplicate and
    // a changed record still a conflict; a new record is indexed by its fingerprint.
    let stored = again.usage_records(&offer_id, 0, u32::MAX - 1).unwrap();
    let usage_ids = old[b"record_ids".as_slice()]
        .iter()
        .filter(|(key, _)| key.first() == Some(&b'u'))
        .count();
    assert!(usage_ids > 0);
    assert_eq!(stored.len(), usage_ids);
    let member = fedmesh_core_member(&offer_id);
    let batch = |record: pb::UsageRecord| vec![Filed::Usage(record, 0)];
    let repeat = again
        .store_records(&member, batch(stored[0].clone()))
        .unwrap();
    assert_eq!((repeat.accepted, repeat.duplicates), (0, 1));
    let changed = pb::UsageRecord {
        value: stored[0].value + 1.0,
        ..stored[0].clone()
    };
    assert!(matches!(
        again.store_records(&member, batch(changed)),
        Err(RecordError::Conflict { .. })
    ));
    let fresh = pb::UsageRecord {
        record_id: "after-migration".into(),
        ..stored[0].clone()
    };
    let added = again.store_records(&member, batch(fresh)).unwrap();
    assert_eq!(added.accepted, 1);
    let (_, now) = trees(&again.snapshot().unwrap().bytes);
    let mut key = vec![b'u'];
    key.extend_from_slice(offer_id.as_bytes());
    key.push(0);
    key.extend_from_slice(b"after-migration");
    let (_, value) = now[b"record_ids".as_slice()]
        .iter()
        .find(|(k, _)| *k == key)
        .unwrap();
    assert_eq!(value.len(), 17, "a fingerprint, not the record");
}

#[test]
fn new_idempotency_records_are_dated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.set_request_record(b"rq-1", "queued").unwrap();
    let record = store.request_record_full(b"rq-1").unwrap().unwrap();
    assert_eq!(record.made, "queued");
    assert!(now() - record.recorded_at_unix <= 5);
    // Stored as the message itself.
    let (_, trees) = trees(&store.snapshot().unwrap().bytes);
    let raw = &trees[b"requests".as_slice()][0].1;
    assert_eq!(RequestRecord::decode(raw.as_slice()).unwrap(), record);
}

/// A migration interrupted before its commit leaves version 1, and the next opening does it.
#[test]
fn a_database_left_at_version_1_is_migrated_at_the_next_opening() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    backup::restore(FIXTURE, &data).unwrap();
    // Back to what a crash before the migration's commit leaves: version 1 and raw records.
    {
        let store = Store::open(&data).unwrap();
        store.set_schema_version(1).unwrap();
    }
    let db = sled::open(&data).unwrap();
    let requests = db.open_tree("requests").unwrap();
    for pair in requests.iter() {
        let (key, value) = pair.unwrap();
        let made = RequestRecord::decode(value.as_ref()).unwrap().made;
        requests.insert(key, made.as_bytes()).unwrap();
    }
    db.flush().unwrap();
    drop(requests);
    drop(db);
    let store = Store::open(&data).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let (_, old) = trees(FIXTURE);
    for (key, made) in &old[b"requests".as_slice()] {
        assert_eq!(
            store.request_record(key).unwrap().unwrap().as_bytes(),
            made.as_slice()
        );
    }
}
