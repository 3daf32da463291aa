//! Incidents and maintenance windows, written with the journal like every entity: on the
//! provider's node the reference copy, on a subscriber's node the mirror of its own; on the
//! coordinator, the incidents replicated from every provider (without texts or people).
//!
//! An incident is stored and journaled without its comment list, each comment kept once, in
//! its event; every read rebuilds the list ([`pb::Incident::with_comment_list`]). Rows stored
//! before, with their list, read the same.

use fedmesh_proto::pb;
use prost::Message as _;
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::catalogue::{Applied, CURSORS_TREE, Cursor};
use crate::journal::{Entity, WriteError};
use crate::{Store, StoreError, decode};

const INCIDENTS_TREE: &str = "incidents";
const MAINTENANCE_TREE: &str = "maintenance";

const INCIDENT: Entity<pb::Incident> = Entity {
    tree: INCIDENTS_TREE,
    kind: pb::EntityKind::Incident,
    id: |i| &i.incident_id,
    payload: pb::journal_entry::Payload::Incident,
};

const MAINTENANCE: Entity<pb::MaintenanceWindow> = Entity {
    tree: MAINTENANCE_TREE,
    kind: pb::EntityKind::MaintenanceWindow,
    id: |m| &m.maintenance_id,
    payload: pb::journal_entry::Payload::MaintenanceWindow,
};

fn scan<M: prost::Message + Default>(
    tree: &sled::Tree,
    name: &'static str,
    after: &str,
    limit: usize,
    shape: fn(M) -> M,
    keep: impl Fn(&M) -> bool,
) -> Result<Vec<M>, StoreError> {
    let mut out = Vec::new();
    for item in tree.range::<&[u8], _>((
        std::ops::Bound::Excluded(after.as_bytes()),
        std::ops::Bound::Unbounded,
    )) {
        let (key, raw) = item?;
        let value: M = shape(decode(name, &key, &raw)?);
        if keep(&value) {
            out.push(value);
            if out.len() == limit {
                break;
            }
        }
    }
    Ok(out)
}

impl Store {
    /// Creates or changes an incident; with `request_key`, also records which incident that
    /// client request touched, in the same transaction (idempotent retries).
    pub fn update_incident<E>(
        &self,
        member_id: &str,
        incident_id: &str,
        request_key: Option<&[u8]>,
        decide: impl FnOnce(Option<pb::Incident>, u64) -> Result<pb::Incident, E>,
    ) -> Result<(pb::Incident, u64), WriteError<E>> {
        let _writing = self.writing();
        self.write_journaled(
            &INCIDENT,
            member_id,
            incident_id,
            request_key,
            |current, revision| {
                decide(current.map(pb::Incident::with_comment_list), revision)
                    .map(pb::Incident::without_comment_list)
            },
        )
        .map(|(incident, revision)| (incident.with_comment_list(), revision))
    }

    /// An incident by id.
    pub fn get_incident(&self, id: &str) -> Result<Option<pb::Incident>, StoreError> {
        self.tree(INCIDENTS_TREE)?
            .get(id.as_bytes())?
            .map(|raw| {
                decode(INCIDENTS_TREE, id.as_bytes(), &raw).map(pb::Incident::with_comment_list)
            })
            .transpose()
    }

    /// Up to `limit` incidents with an id after `after`, in id (opening time) order, that
    /// `keep` accepts.
    pub fn list_incidents(
        &self,
        after: &str,
        limit: usize,
        keep: impl Fn(&pb::Incident) -> bool,
    ) -> Result<Vec<pb::Incident>, StoreError> {
        scan(
            &*self.tree(INCIDENTS_TREE)?,
            INCIDENTS_TREE,
            after,
            limit,
            pb::Incident::with_comment_list,
            keep,
        )
    }

    /// Folds `f` over every incident, in id order, one decoded at a time: what counts or
    /// sums over all incidents needs no memory for all of them.
    pub fn fold_incidents<T>(
        &self,
        init: T,
        mut f: impl FnMut(T, pb::Incident) -> T,
    ) -> Result<T, StoreError> {
        let mut acc = init;
        for item in self.tree(INCIDENTS_TREE)?.iter() {
            let (key, raw) = item?;
            let incident: pb::Incident = decode(INCIDENTS_TREE, &key, &raw)?;
            acc = f(acc, incident.with_comment_list());
        }
        Ok(acc)
    }

    /// Creates or changes a maintenance window (see [`Store::update_incident`]).
    pub fn update_maintenance<E>(
        &self,
        member_id: &str,
        maintenance_id: &str,
        request_key: Option<&[u8]>,
        decide: impl FnOnce(Option<pb::MaintenanceWindow>, u64) -> Result<pb::MaintenanceWindow, E>,
    ) -> Result<(pb::MaintenanceWindow, u64), WriteError<E>> {
        let _writing = self.writing();
        self.write_journaled(&MAINTENANCE, member_id, maintenance_id, request_key, decide)
    }

    /// A maintenance window by id.
    pub fn get_maintenance(&self, id: &str) -> Result<Option<pb::MaintenanceWindow>, StoreError> {
        self.tree(MAINTENANCE_TREE)?
            .get(id.as_bytes())?
            .map(|raw| decode(MAINTENANCE_TREE, id.as_bytes(), &raw))
            .transpose()
    }

    /// Up to `limit` maintenance windows with an id after `after` that `keep` accepts.
    pub fn list_maintenance(
        &self,
        after: &str,
        limit: usize,
        keep: impl Fn(&pb::MaintenanceWindow) -> bool,
    ) -> Result<Vec<pb::MaintenanceWindow>, StoreError> {
        scan(
            &*self.tree(MAINTENANCE_TREE)?,
            MAINTENANCE_TREE,
            after,
            limit,
            |m| m,
            keep,
        )
    }

    /// Applies an incident replicated from `source`'s journal at `position` (on the
    /// coordinator), with the cursor in the same transaction; an older version than the one
    /// stored (fewer events) is ignored. A position at or below the cursor is a duplicate.
    pub fn apply_incident(
        &self,
        source: &str,
        position: &Cursor,
        incident: &pb::Incident,
    ) -> Result<Applied, StoreError> {
        let _writing = self.writing();
        let incidents = self.tree(INCIDENTS_TREE)?;
        let cursors = self.tree(CURSORS_TREE)?;
        self.catalogue_log.append(|_| {
            let applied = self.cursor(source)?.is_some_and(|stored| {
                stored.journal_id == position.journal_id && position.revision <= stored.revision
            });
            if applied || self.resyncing(source)?.is_some() {
                return Ok((Applied::Duplicate, None));
            }
            let newer = self
                .get_incident(&incident.incident_id)?
                .is_none_or(|current| current.events.len() <= incident.events.len());
            let (value, cursor) = (
                incident.clone().without_comment_list().encode_to_vec(),
                position.encode_to_vec(),
            );
            let result: Result<(), TransactionError<()>> =
                (&*incidents, &*cursors).transaction(|(incidents, cursors)| {
                    if newer {
                        incidents.insert(incident.incident_id.as_bytes(), value.as_slice())?;
                    }
                    cursors.insert(source.as_bytes(), cursor.as_slice())?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                });
            result.map_err(StoreError::from_transaction)?;
            Ok((Applied::CursorOnly, None))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commented(incident: &pb::Incident, sequence: u64, body: &str) -> pb::Incident {
        let comment = pb::IncidentComment {
            comment_id: format!("{}/c{sequence}", incident.incident_id),
            body: body.into(),
            ..Default::default()
        };
        let mut next = incident.clone();
        next.events.push(pb::IncidentEvent {
            sequence,
            kind: pb::IncidentEventKind::Commented as i32,
            comment: Some(comment.clone()),
            ..Default::default()
        });
        next.comments.push(comment);
        next
    }

    #[test]
    fn each_comment_is_stored_once_and_read_in_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let opened = pb::Incident {
            incident_id: "INC-1".into(),
            ..Default::default()
        };
        let first = commented(&opened, 1, "first");
        let (written, _) = store
            .update_incident("rennes2", "INC-1", None, |_, _| {
                Ok::<_, std::convert::Infallible>(first.clone())
            })
            .unwrap();
        assert_eq!(written, first, "the writer gets the list back");
        // The next change sees the list, as the core's actions expect.
        let (second, revision) = store
            .update_incident("rennes2", "INC-1", None, |current, _| {
                let current = current.unwrap();
                assert_eq!(current.comments.len(), 1);
                Ok::<_, std::convert::Infallible>(commented(&current, 2, "second"))
            })
            .unwrap();
        assert_eq!(second.comments.len(), 2);

        // Stored and journaled without the list.
        let raw = store
            .tree(INCIDENTS_TREE)
            .unwrap()
            .get(b"INC-1")
            .unwrap()
            .unwrap();
        let kept = pb::Incident::decode(raw.as_ref()).unwrap();
        assert!(kept.comments.is_empty());
        assert_eq!(kept.events.len(), 2);
        let entry = store
            .tree(crate::journal::JOURNAL_TREE)
            .unwrap()
            .get(crate::log::key(revision))
            .unwrap()
            .unwrap();
        let Some(pb::journal_entry::Payload::Incident(journaled)) =
            pb::JournalEntry::decode(entry.as_ref()).unwrap().payload
        else {
            panic!("not an incident entry");
        };
        assert!(journaled.comments.is_empty());

        // Read back with it, by every way in.
        let bodies = |i: &pb::Incident| {
            i.comments
                .iter()
                .map(|c| c.body.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            bodies(&store.get_incident("INC-1").unwrap().unwrap()),
            ["first", "second"]
        );
        let listed = store
            .list_incidents("", 10, |i| i.comments.len() == 2)
            .unwrap();
        assert_eq!(listed.len(), 1);
        let folded = store
            .fold_incidents(Vec::new(), |mut all, i| {
                all.push(bodies(&i));
                all
            })
            .unwrap();
        assert_eq!(folded, [["first", "second"]]);

        // An incident stored before, with its list, reads the same.
        store
            .tree(INCIDENTS_TREE)
            .unwrap()
            .insert(b"INC-1", second.encode_to_vec())
            .unwrap();
        assert_eq!(store.get_incident("INC-1").unwrap().unwrap(), second);
    }
}
