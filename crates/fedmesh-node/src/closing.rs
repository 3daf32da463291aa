//! Closing the months of this node's offers (design section 9, docs/usage.md "Closed months").
//!
//! A periodic task, like the idempotency sweep: at start and every
//! `usage.close_check_interval_ms`, every month of every offer of this member that is due
//! ([`fedmesh_core::closing::is_closed`]) and not closed yet is closed, oldest first:
//!
//! 1. the month is marked closed, under the lock record batches take: from then on its records
//!    are refused, and every batch stored before is in what follows;
//! 2. its reports are computed from the records as of the month's closing instant and written,
//!    journaled, each once: the offer report (aggregates without people, for the coordinator)
//!    and one per tenancy served in the month, with usage in it, or with adjustments issued in
//!    it (for its subscriber; its statement carries them);
//! 3. its usage records, and the availability records no later report needs, move to the
//!    archive and their keys leave the database.
//!
//! Each step is recorded when done; a crash anywhere is taken up by the next pass, which never
//! writes a report twice (a report id is written once) and computes a missing one as of the
//! same instant.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fedmesh_core::MemberId;
use fedmesh_core::closing;
use fedmesh_core::cost::{self, Days};
use fedmesh_core::span::Secs;
use fedmesh_core::usage::{self, Month};
use fedmesh_grpc::figures::{self, calendar_of};
use fedmesh_proto::pb;
use fedmesh_store::reports::CloseStage;
use fedmesh_store::{Store, StoreError};
use tokio::sync::watch;

/// Closes the months of one member's offers.
#[derive(Debug, Clone)]
pub struct Closer {
    store: Store,
    member: MemberId,
    close_after_days: u32,
}

/// What one pass closed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// The (offer, month) closed in this pass.
    pub closed: Vec<(String, Month)>,
    /// Reports written in this pass.
    pub reports: usize,
}

impl Closer {
    /// The closer of `member`'s offers, whose months close `close_after_days` after they end.
    pub fn new(store: Store, member: MemberId, close_after_days: u32) -> Self {
        Self {
            store,
            member,
            close_after_days,
        }
    }

    /// Closes every month due at `now` (Unix seconds) and not closed yet, and makes the reports
    /// written durable. Blocks on the store: call it off the async runtime, or in a test.
    pub fn close_due(&self, now: Secs) -> Result<(Pass, Option<u64>), StoreError> {
        let mut pass = Pass::default();
        let mut last_revision = None;
        let offers = self.store.list_offers("", usize::MAX, |o| {
            o.provider_member_id == self.member.as_str()
        })?;
        for offer in offers {
            let cal = calendar_of(&offer);
            // From the offer's first month, or the first month it has records of (a tenant's
            // history reported after it moved in).
            let created = offer.create_time.as_ref().map_or(now, |t| t.seconds);
            let mut month = Month::of_day(cal.local_day(created));
            if let Some(first) = self.store.first_record_month(&offer.offer_id)?
                && let Some(first) = Month::new((first / 100) as i32, first % 100)
            {
                month = month.min(first);
            }
            let last = closing::last_closed(&cal, self.close_after_days, now);
            while month <= last {
                let stage = self
                    .store
                    .closed_month(&offer.offer_id, month.key())?
                    .map(|m| m.stage());
                if stage != Some(CloseStage::Archived) {
                    let (written, revision) = self.close(&offer, month)?;
                    pass.reports += written;
                    pass.closed.push((offer.offer_id.clone(), month));
                    last_revision = revision.max(last_revision);
                }
                month = month.next();
            }
        }
        Ok((pass, last_revision))
    }

    /// Closes one month of `offer`, from where an earlier pass stopped.
    fn close(&self, offer: &pb::Offer, month: Month) -> Result<(usize, Option<u64>), StoreError> {
        let cal = calendar_of(offer);
        let key = month.key();
        // The month's instant of closing, not the pass's: a report computed again after a
        // crash is computed as of the same instant.
        let at = closing::close_time(&cal, month, self.close_after_days);
        let mark = self.store.mark_closing(&offer.offer_id, key, at)?;
        let mut written = 0;
        let mut last = None;
        if mark.stage() == CloseStage::Closing {
            for report in self.reports(offer, month, mark.close_time)? {
                if let Some(revision) = self.store.write_report(self.member.as_str(), report)? {
                    written += 1;
                    last = Some(revision);
                }
            }
            // Durable with the stage (sled flushes the whole database).
            self.store
                .set_close_stage(&offer.offer_id, key, CloseStage::Reported)?;
        }
        // The next month's report reads availability from one MAX_OUTAGE before it starts:
        // UTC months up to two before this one are no longer needed.
        let through = month.previous().previous().key();
        let archived = self.store.archive_month(&offer.offer_id, key, through)?;
        self.store
            .set_close_stage(&offer.offer_id, key, CloseStage::Archived)?;
        tracing::info!(offer = %offer.offer_id, %month, reports = written, usage_records = archived.usage_records, availability_records = archived.availability_records, ids_dropped = archived.ids_removed, "month closed");
        Ok((written, last))
    }

    /// The reports of `offer`'s `month`, as of `at`: the offer's, then one per tenancy served
    /// in the month or with usage in it.
    pub fn reports(
        &self,
        offer: &pb::Offer,
        month: Month,
        at: Secs,
    ) -> Result<Vec<pb::MonthlyReport>, StoreError> {
        let cal = calendar_of(offer);
        let span = month.span(&cal);
        let records = figures::month_usage(&self.store, &offer.offer_id, month)?;
        let tenancies = self.store.list_subscriptions("", usize::MAX, |s| {
            s.offer_id == offer.offer_id && s.provider_member_id == self.member.as_str()
        })?;
        let (_, outages) = figures::month_availability_at(&self.store, offer, month, at)?;
        let compliance = figures::sla_compliance_at(&self.store, offer, month, at)?;
        let base = pb::MonthlyReport {
            offer_id: offer.offer_id.clone(),
            provider_member_id: self.member.to_string(),
            month: Some(month.to_proto()),
            time_zone: cal.zone_name().to_owned(),
            close_time: Some(prost_types::Timestamp {
                seconds: at,
                nanos: 0,
            }),
            compliance: Some(compliance),
            outages,
            ..Default::default()
        };
        let mut reports = vec![pb::MonthlyReport {
            report_id: format!("{}/{month}", offer.offer_id),
            scope: pb::ReportScope::Offer as i32,
            metrics: Some(figures::month_metrics_at(
                &records, &tenancies, month, &cal, at,
            )),
            metric_totals: metric_totals(&records),
            incidents: Some(figures::incident_statistics_at(
                &self.store,
                offer,
                month,
                at,
                |_| true,
            )?),
            ..base.clone()
        }];
        let with_usage: BTreeSet<&str> =
            records.iter().map(|r| r.subscription_id.as_str()).collect();
        for tenancy in &tenancies {
            // Adjustments of earlier closed months issued in this one are on its statement.
            let adjustments = crate::reports::adjustment_lines(
                &self.store,
                &tenancy.subscription_id,
                Days::month(month),
                &cal,
            )?;
            if !served_during(tenancy, span.start, span.end)
                && !with_usage.contains(tenancy.subscription_id.as_str())
                && adjustments.is_empty()
            {
                continue;
            }
            let own: Vec<&pb::UsageRecord> = records
                .iter()
                .filter(|r| r.subscription_id == tenancy.subscription_id)
                .collect();
            let mut users = BTreeMap::new();
            if let Some(largest) = own
                .iter()
                .filter(|r| r.metric == "active_users")
                .map(|r| r.value)
                .reduce(f64::max)
            {
                users.insert(month, largest);
            }
            let mut statement =
                cost::statement(offer, tenancy, &cal, Days::month(month), &users, at);
            statement.lines.extend(adjustments);
            statement.total = statement.total.map(|total| pb::Money {
                amount_micros: statement
                    .lines
                    .iter()
                    .map(|l| l.amount.as_ref().map_or(0, |m| m.amount_micros))
                    .sum(),
                ..total
            });
            let id = tenancy.subscription_id.clone();
            reports.push(pb::MonthlyReport {
                report_id: format!("{id}/{month}"),
                scope: pb::ReportScope::Tenancy as i32,
                subscription_id: id.clone(),
                subscriber_member_id: tenancy.subscriber_member_id.clone(),
                tenant_usage: usage::aggregate(own.iter().copied()),
                incidents: Some(figures::incident_statistics_at(
                    &self.store,
                    offer,
                    month,
                    at,
                    |i| i.subscription_id == id,
                )?),
                statement: Some(statement),
                ..base.clone()
            });
        }
        Ok(reports)
    }

    /// Closes what is due at start and then every `interval`, until `stop`.
    pub async fn run(self, interval: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            let closer = self.clone();
            let now = figures::now();
            match tokio::task::spawn_blocking(move || closer.close_due(now)).await {
                Ok(Ok((pass, revision))) => {
                    if let Some(revision) = revision
                        && let Err(error) = self.store.journal_durable(revision).await
                    {
                        tracing::error!(%error, "cannot make the monthly reports durable");
                    }
                    if !pass.closed.is_empty() {
                        tracing::info!(
                            months = pass.closed.len(),
                            reports = pass.reports,
                            "months closed"
                        );
                    }
                }
                Ok(Err(error)) => tracing::error!(%error, "cannot close the months due"),
                Err(error) => tracing::error!(%error, "the closing task failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// Whether `subscription` was served (active or suspended) at some instant of `[start, end)`.
fn served_during(subscription: &pb::Subscription, start: Secs, end: Secs) -> bool {
    usage::is_served(usage::state_at(subscription, start))
        || subscription.history.iter().any(|change| {
            change
                .change_time
                .as_ref()
                .is_some_and(|t| (start..end).contains(&t.seconds))
                && usage::is_served(
                    pb::SubscriptionState::try_from(change.to_state)
                        .unwrap_or(pb::SubscriptionState::Unspecified),
                )
        })
}

/// Per-metric totals over every tenant: no tenancy is named.
fn metric_totals(records: &[pb::UsageRecord]) -> Vec<pb::MetricTotal> {
    let mut totals: BTreeMap<String, pb::MetricTotal> = BTreeMap::new();
    for aggregate in usage::aggregate(records) {
        let total = totals
            .entry(aggregate.metric.clone())
            .or_insert_with(|| pb::MetricTotal {
                metric: aggregate.metric.clone(),
                ..Default::default()
            });
        total.tenant_count += 1;
        total.sum_of_last_values += aggregate.last_value;
        total.max_value = total.max_value.max(aggregate.max_value);
        total.sum_value += aggregate.sum_value;
        total.record_count += aggregate.record_count;
    }
    totals.into_values().collect()
}

#[cfg(test)]
mod tests {
    use fedmesh_core::calendar;
    use fedmesh_store::usage::Filed;

    use super::*;

    const OFFER: &str = "unistra.collab";

    fn at(y: i32, m: u32, d: u32, hour: i64) -> Secs {
        calendar::days_from_civil(y, m, d) * 86_400 + hour * 3600
    }

    fn ts(seconds: Secs) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    /// A store with unistra's offer (published in November 2026), one tenancy approved on
    /// 2 November, and November usage of it.
    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .update_offer::<()>("unistra", OFFER, |_, _| {
                Ok(pb::Offer {
                    offer_id: OFFER.into(),
                    provider_member_id: "unistra".into(),
                    create_time: ts(at(2026, 11, 1, 9)),
                    ..Default::default()
                })
            })
            .unwrap();
        store
            .update_subscription::<()>("unistra", "unistra.s2", None, |_, _| {
                Ok(pb::Subscription {
                    subscription_id: "unistra.s2".into(),
                    offer_id: OFFER.into(),
                    provider_member_id: "unistra".into(),
                    subscriber_member_id: "rouen".into(),
                    state: pb::SubscriptionState::Active as i32,
                    history: vec![pb::SubscriptionStateChange {
                        to_state: pb::SubscriptionState::Active as i32,
                        change_time: ts(at(2026, 11, 2, 10)),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
            })
            .unwrap();
        let record = |id: &str, value: f64| {
            Filed::Usage(
                pb::UsageRecord {
                    record_id: id.into(),
                    offer_id: OFFER.into(),
                    subscription_id: "unistra.s2".into(),
                    metric: "active_users".into(),
                    value,
                    period: Some(pb::Period {
                        start_time: ts(at(2026, 11, 10, 9)),
                        end_time: ts(at(2026, 11, 10, 10)),
                    }),
                    ..Default::default()
                },
                202_611,
            )
        };
        store
            .store_records("unistra", vec![record("u1", 120.0), record("u2", 150.0)])
            .unwrap();
        (dir, store)
    }

    #[test]
    fn closing_is_decided_by_the_instant_and_done_once_even_after_a_crash() {
        let (_dir, store) = store();
        let closer = Closer::new(store.clone(), "unistra".parse().unwrap(), 5);
        let november = Month::new(2026, 11).unwrap();
        // Before the grace period ends, nothing closes.
        let (early, _) = closer.close_due(at(2026, 12, 5, 12)).unwrap();
        assert_eq!(early, Pass::default());
        assert_eq!(store.record_id_keys(OFFER).unwrap(), 2);
        // A pass interrupted after the mark and the offer report: the next one writes only
        // what is missing, as of the same instant.
        let close_time = closing::close_time(&calendar_of(&pb::Offer::default()), november, 5);
        store.mark_closing(OFFER, 202_611, close_time).unwrap();
        let offer = store.get_offer(OFFER).unwrap().unwrap();
        let first = closer.reports(&offer, november, close_time).unwrap();
        assert_eq!(first.len(), 2, "the offer's report and the tenancy's");
        store.write_report("unistra", first[0].clone()).unwrap();
        let (pass, revision) = closer.close_due(at(2026, 12, 9, 12)).unwrap();
        assert_eq!(pass.closed, [(OFFER.to_owned(), november)]);
        assert_eq!(pass.reports, 1, "the tenancy's report only");
        assert!(revision.is_some());
        let tenancy = store.get_report("unistra.s2/2026-11").unwrap().unwrap();
        assert_eq!(
            tenancy, first[1],
            "computed as of the month's closing instant"
        );
        assert_eq!(
            tenancy.tenant_usage.first().map(|a| a.max_value),
            Some(150.0)
        );
        // The statement bills the days served from 2 November.
        let statement = tenancy.statement.unwrap();
        assert!(
            statement
                .lines
                .iter()
                .any(|l| l.kind == pb::CostLineKind::TenantFee as i32),
            "{statement:?}"
        );
        // The month's id keys are gone, its records archived.
        assert_eq!(store.record_id_keys(OFFER).unwrap(), 0);
        assert!(
            store
                .usage_records(OFFER, 202_611, 202_611)
                .unwrap()
                .is_empty()
        );
        // Done: a later pass closes December only (no records, one offer report, and the
        // tenancy's, served in December).
        let (later, _) = closer.close_due(at(2027, 1, 9, 12)).unwrap();
        assert_eq!(
            later.closed,
            [(OFFER.to_owned(), Month::new(2026, 12).unwrap())]
        );
        assert_eq!(store.list_reports("", 100, |_| true).unwrap().len(), 4);
    }
}
