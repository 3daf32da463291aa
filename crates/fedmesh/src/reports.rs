//! Usage, availability, cost statements and federation metrics from the terminal:
//! `fedmesh usage ...`, `fedmesh availability report`, `fedmesh statement` and
//! `fedmesh metrics ...`.
//!
//! Reports are read from a CSV or JSON-lines file (`docs/usage.md`), checked whole before
//! anything is sent, then sent in batches with a progress bar; a batch that fails to arrive is
//! retried (reports are idempotent by record id), and every refused record is printed with its
//! line number.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use fedmesh_core::usage::{MAX_BATCH, Month};
use fedmesh_proto::pb;
use fedmesh_proto::pb::metrics_service_client::MetricsServiceClient;
use fedmesh_proto::pb::node_service_client::NodeServiceClient;
use fedmesh_proto::pb::subscription_service_client::SubscriptionServiceClient;
use fedmesh_proto::pb::usage_service_client::UsageServiceClient;
use tonic::Code;

use crate::cli::{CallFailed, Connection, call};
use crate::inert::{Lines, inert};
use crate::json;
use crate::say;

/// `fedmesh usage ...`.
#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Send usage records from a CSV or JSON-lines file (as a provider's agent).
    Report(ReportArgs),
    /// Show an offer's usage and availability for a month (tenants see their own).
    Show {
        /// The offer.
        #[arg(long)]
        offer: String,
        /// The month, e.g. 2026-11; the current month by default.
        #[arg(long)]
        period: Option<Month>,
        /// Only this subscription.
        #[arg(long)]
        subscription: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show an offer's use against its declared capacity, with a monthly trend (provider).
    Capacity {
        /// The offer.
        #[arg(long)]
        offer: String,
        /// Months in the trend, the current one included.
        #[arg(long, default_value_t = 6)]
        months: i32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `fedmesh availability ...`.
#[derive(Debug, Subcommand)]
pub enum AvailabilityCommand {
    /// Send probe results and outages from a CSV or JSON-lines file (as a provider's agent).
    Report(ReportArgs),
}

/// Where records come from and how they are sent.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The file: `.csv` with a header line, or `.jsonl` with one object per line.
    #[arg(long)]
    file: PathBuf,
    /// The offer of records whose file has no `offer_id`.
    #[arg(long)]
    offer: Option<String>,
    /// Records per call (at most 1000).
    #[arg(long, default_value_t = MAX_BATCH)]
    batch_size: usize,
}

/// `fedmesh metrics ...`, on the coordinator.
#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Members, nodes up, offers, tenants and users.
    Summary {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Monthly tenants, users, storage and requests of one offer.
    Offer {
        /// The offer.
        offer_id: String,
        /// First month, e.g. 2026-01.
        #[arg(long)]
        from: Month,
        /// Last month; the current month by default.
        #[arg(long)]
        to: Option<Month>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// What one member provides and subscribes to, for one month.
    Member {
        /// The member.
        member_id: String,
        /// The month, e.g. 2026-11; the current month by default.
        #[arg(long)]
        period: Option<Month>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Incident statistics per offer and priority for one month.
    Incidents {
        /// The month, e.g. 2026-11.
        #[arg(long)]
        period: Month,
        /// Only this offer.
        #[arg(long)]
        offer: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Incidents not yet resolved across the federation, with SLA state and escalation.
    Open {
        /// Only incidents escalated at least this many times.
        #[arg(long, default_value_t = 0)]
        escalated: i32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Availability against the SLA and SLO, per offer, for one month.
    Sla {
        /// The month, e.g. 2026-11.
        #[arg(long)]
        period: Month,
        /// Only this offer.
        #[arg(long)]
        offer: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Output of `fedmesh statement`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StatementFormat {
    /// For reading.
    Text,
    /// One line per cost line, for a spreadsheet.
    Csv,
    /// A JSON array of statements.
    Json,
}

// ------------------------------------------------------------------------------------------
// Reading report files.

/// One record read from a file, with the line it came from.
#[derive(Debug, Clone)]
pub struct Line<R> {
    /// 1-based line number in the file.
    pub number: usize,
    /// The record.
    pub record: R,
}

/// Splits one CSV line into fields (RFC 4180 quoting, no line breaks inside fields).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, '"') => return Err("a quote inside an unquoted field".into()),
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("an unterminated quoted field".into());
    }
    fields.push(field);
    Ok(fields)
}

/// The rows of a file as (line number, column → value), whatever its format.
fn rows(path: &Path) -> Result<Vec<(usize, serde_json::Map<String, serde_json::Value>)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let jsonl = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => false,
        Some("jsonl" | "ndjson") => true,
        _ => bail!(
            "{}: name the file .csv or .jsonl so that its format is known",
            path.display()
        ),
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if jsonl {
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(serde_json::Value::Object(map)) => out.push((number, map)),
                Ok(_) => errors.push(format!("line {number}: not a JSON object")),
                Err(e) => errors.push(format!("line {number}: {e}")),
            }
            continue;
        }
        let fields = match csv_fields(line) {
            Ok(fields) => fields,
            Err(e) => {
                errors.push(format!("line {number}: {e}"));
                continue;
            }
        };
        match &header {
            None => header = Some(fields.iter().map(|f| f.trim().to_owned()).collect()),
            Some(names) => {
                if fields.len() != names.len() {
                    errors.push(format!(
                        "line {number}: {} fields where the header has {}",
                        fields.len(),
                        names.len()
                    ));
                    continue;
                }
                let map = names
                    .iter()
                    .zip(fields)
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v)))
                    .collect();
                out.push((number, map));
            }
        }
    }
    if !errors.is_empty() {
        let shown: Vec<&str> = errors.iter().take(20).map(String::as_str).collect();
        bail!(
            "{}: {} malformed line(s), nothing was sent:\n{}",
            path.display(),
            errors.len(),
            shown.join("\n")
        );
    }
    Ok(out)
}

/// Reads column values of one row.
struct Row<'a> {
    number: usize,
    map: &'a serde_json::Map<String, serde_json::Value>,
}

impl Row<'_> {
    fn text(&self, key: &str) -> Option<String> {
        match self.map.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn required(&self, key: &str) -> Result<String, String> {
        self.text(key)
            .ok_or_else(|| format!("line {}: `{key}` is required", self.number))
    }

    fn number(&self, key: &str) -> Result<f64, String> {
        let text = self.required(key)?;
        text.trim()
            .parse()
            .map_err(|_| format!("line {}: `{key}` is not a number: {text}", self.number))
    }

    fn time(&self, key: &str) -> Result<prost_types::Timestamp, String> {
        let text = self.required(key)?;
        let at: jiff::Timestamp = text.trim().parse().map_err(|_| {
            format!(
                "line {}: `{key}` is not an RFC 3339 time such as 2026-11-02T08:00:00Z: {text}",
                self.number
            )
        })?;
        Ok(prost_types::Timestamp {
            seconds: at.as_second(),
            nanos: at.subsec_nanosecond(),
        })
    }

    fn flag(&self, key: &str) -> Result<bool, String> {
        match self.text(key).as_deref().map(str::trim) {
            None | Some("" | "false" | "0" | "no") => Ok(false),
            Some("true" | "1" | "yes") => Ok(true),
            Some(other) => Err(format!(
                "line {}: `{key}` must be true or false, not {other}",
                self.number
            )),
        }
    }

    fn offer(&self, default: Option<&str>) -> Result<String, String> {
        self.text("offer_id")
            .or_else(|| default.map(str::to_owned))
            .ok_or_else(|| {
                format!(
                    "line {}: `offer_id` is required (or pass --offer)",
                    self.number
                )
            })
    }
}

fn read_all<R>(path: &Path, parse: impl Fn(&Row<'_>) -> Result<R, String>) -> Result<Vec<Line<R>>> {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for (number, map) in rows(path)? {
        match parse(&Row { number, map: &map }) {
            Ok(record) => records.push(Line { number, record }),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        let shown: Vec<&str> = errors.iter().take(20).map(String::as_str).collect();
        bail!(
            "{}: {} invalid record(s), nothing was sent:\n{}",
            path.display(),
            errors.len(),
            shown.join("\n")
        );
    }
    Ok(records)
}

/// Reads usage records: columns `record_id, offer_id, subscription_id, tenant_id, metric,
/// value, period_start, period_end` (offer_id optional with `--offer`; one of
/// subscription_id and tenant_id).
pub fn read_usage(path: &Path, offer: Option<&str>) -> Result<Vec<Line<pb::UsageRecord>>> {
    read_all(path, |row| {
        Ok(pb::UsageRecord {
            record_id: row.required("record_id")?,
            offer_id: row.offer(offer)?,
            subscription_id: row.text("subscription_id").unwrap_or_default(),
            tenant_id: row.text("tenant_id").unwrap_or_default(),
            metric: row.required("metric")?,
            value: row.number("value")?,
            period: Some(pb::Period {
                start_time: Some(row.time("period_start")?),
                end_time: Some(row.time("period_end")?),
            }),
            ..Default::default()
        })
    })
}

/// Reads availability records: columns `record_id, offer_id, kind` (`probe` or `outage`),
/// `start`, `end` (outages), `up` (probes), `planned_maintenance`, `description`.
pub fn read_availability(
    path: &Path,
    offer: Option<&str>,
) -> Result<Vec<Line<pb::AvailabilityRecord>>> {
    use pb::availability_record::Observation;
    read_all(path, |row| {
        let observation = match row.required("kind")?.trim() {
            "probe" => Observation::Probe(pb::ProbeResult {
                probe_time: Some(row.time("start")?),
                up: row.flag("up")?,
                latency: None,
                detail: row.text("description").unwrap_or_default(),
            }),
            "outage" => Observation::Outage(pb::Outage {
                period: Some(pb::Period {
                    start_time: Some(row.time("start")?),
                    end_time: Some(row.time("end")?),
                }),
                description: row.text("description").unwrap_or_default(),
                incident_id: row.text("incident_id").unwrap_or_default(),
            }),
            other => {
                return Err(format!(
                    "line {}: `kind` must be probe or outage, not {other}",
                    row.number
                ));
            }
        };
        Ok(pb::AvailabilityRecord {
            record_id: row.required("record_id")?,
            offer_id: row.offer(offer)?,
            observation: Some(observation),
            planned_maintenance: row.flag("planned_maintenance")?,
            maintenance_id: row.text("maintenance_id").unwrap_or_default(),
            ..Default::default()
        })
    })
}

// ------------------------------------------------------------------------------------------
// Sending.

/// A progress bar on a terminal, a line per batch otherwise.
struct Progress {
    total: usize,
    terminal: bool,
}

impl Progress {
    fn show(&self, done: usize) {
        let mut err = std::io::stderr();
        if self.terminal {
            let width = 30;
            let filled = (done * width).checked_div(self.total).unwrap_or(width);
            let _ = write!(
                err,
                "\r[{}{}] {done}/{} records",
                "#".repeat(filled),
                ".".repeat(width - filled),
                self.total
            );
            if done == self.total {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "sent {done}/{} records", self.total);
        }
    }
}

/// Counts over a whole file.
#[derive(Debug, Default)]
struct Totals {
    accepted: i64,
    duplicates: i64,
    refused: Vec<String>,
}

/// One batch's answer, whatever the record kind.
struct BatchAnswer {
    accepted: i32,
    duplicates: i32,
    rejections: Vec<pb::RecordRejection>,
}

/// Sends `lines` in batches through `send`, retrying a batch that did not arrive.
async fn send_batches<R: Clone>(
    endpoint: &str,
    lines: Vec<Line<R>>,
    batch_size: usize,
    mut send: impl AsyncFnMut(Vec<R>) -> Result<BatchAnswer, tonic::Status>,
) -> Result<()> {
    if !(1..=MAX_BATCH).contains(&batch_size) {
        bail!("--batch-size must be 1 to {MAX_BATCH}");
    }
    let progress = Progress {
        total: lines.len(),
        terminal: std::io::stderr().is_terminal(),
    };
    let mut totals = Totals::default();
    let mut done = 0;
    for batch in lines.chunks(batch_size) {
        let records: Vec<R> = batch.iter().map(|l| l.record.clone()).collect();
        let mut attempt = 0;
        let answer = loop {
            match send(records.clone()).await {
                Ok(answer) => break answer,
                // Every record of the batch falls in a closed month: each line is refused, with
                // the node's reason, and the next batches go on.
                Err(status) if status.code() == Code::FailedPrecondition => {
                    for line in batch {
                        totals.refused.push(format!(
                            "line {}: refused: {}",
                            line.number,
                            status.message()
                        ));
                    }
                    break BatchAnswer {
                        accepted: 0,
                        duplicates: 0,
                        rejections: Vec::new(),
                    };
                }
                // Reports are idempotent: a batch whose answer was lost is sent again.
                Err(status)
                    if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded)
                        && attempt < 4 =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                }
                Err(status) => {
                    let (first, last) = (
                        batch.first().map_or(0, |l| l.number),
                        batch.last().map_or(0, |l| l.number),
                    );
                    eprintln!(
                        "lines {first}-{last} were not stored; {done} records before them were sent ({} stored, {} already stored)",
                        totals.accepted, totals.duplicates
                    );
                    return Err(CallFailed {
                        endpoint: endpoint.to_owned(),
                        status,
                    }
                    .into());
                }
            }
        };
        totals.accepted += i64::from(answer.accepted);
        totals.duplicates += i64::from(answer.duplicates);
        for rejection in answer.rejections {
            let line = rejection
                .reason
                .strip_prefix("records[")
                .and_then(|rest| rest.split(']').next())
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| batch.get(i))
                .map_or(0, |l| l.number);
            totals.refused.push(format!(
                "line {line}: record {} refused: {}",
                rejection.record_id, rejection.reason
            ));
        }
        done += batch.len();
        progress.show(done);
    }
    say!(
        "{} records: {} stored, {} already stored, {} refused",
        done,
        totals.accepted,
        totals.duplicates,
        totals.refused.len()
    );
    if !totals.refused.is_empty() {
        for line in &totals.refused {
            // The node's reasons quote the file's text.
            eprintln!("{}", inert(line, Lines::Many));
        }
        bail!("{} record(s) refused", totals.refused.len());
    }
    Ok(())
}

/// Runs `fedmesh usage ...`.
pub async fn usage(connect: &Connection, command: UsageCommand) -> Result<()> {
    let mut client = UsageServiceClient::new(connect.channel()?);
    let endpoint = &connect.endpoint;
    match command {
        UsageCommand::Report(args) => {
            let lines = read_usage(&args.file, args.offer.as_deref())?;
            send_batches(endpoint, lines, args.batch_size, async |records| {
                let r = client
                    .report_usage(pb::ReportUsageRequest { records })
                    .await?
                    .into_inner();
                Ok(BatchAnswer {
                    accepted: r.accepted_count,
                    duplicates: r.duplicate_count,
                    rejections: r.rejections,
                })
            })
            .await
        }
        UsageCommand::Show {
            offer,
            period,
            subscription,
            json,
        } => {
            let month = period.unwrap_or_else(this_month).to_proto();
            let usage = call(
                endpoint,
                client.get_usage(pb::GetUsageRequest {
                    offer_id: offer.clone(),
                    subscription_id: subscription.unwrap_or_default(),
                    month: Some(month),
                    metrics: Vec::new(),
                }),
            )
            .await?;
            let availability = call(
                endpoint,
                client.get_availability(pb::GetAvailabilityRequest {
                    offer_id: offer.clone(),
                    month: Some(month),
                }),
            )
            .await?;
            if json {
                let value = serde_json::json!({
                    "usage": json::to_json("fedmesh.v1.GetUsageResponse", &usage)?,
                    "availability": json::to_json("fedmesh.v1.GetAvailabilityResponse", &availability)?,
                });
                say!("{}", crate::json::pretty(&value)?);
                return Ok(());
            }
            say!("{offer}, {}-{:02}", month.year, month.month);
            if usage.aggregates.is_empty() {
                say!("  no usage reported");
            } else {
                say!(
                    "  {:<28} {:<16} {:>14} {:>14} {:>16} {:>8}",
                    "subscription",
                    "metric",
                    "last",
                    "max",
                    "sum",
                    "records"
                );
            }
            for a in &usage.aggregates {
                say!(
                    "  {:<28} {:<16} {:>14} {:>14} {:>16} {:>8}",
                    a.subscription_id,
                    a.metric,
                    metric_value(&a.metric, a.last_value),
                    metric_value(&a.metric, a.max_value),
                    metric_value(&a.metric, a.sum_value),
                    a.record_count
                );
            }
            if let Some(s) = &availability.availability {
                say!(
                    "  availability in the service window {:.3}% (SLA {}%), outside {:.3}% (SLO {}%)",
                    s.in_window_availability_percent,
                    availability.availability_sla_percent,
                    s.out_of_window_availability_percent,
                    availability.availability_slo_percent
                );
                say!(
                    "  downtime {} in the window, {} outside; maintenance {}; {} outages, {} probes",
                    hours(&s.in_window_downtime),
                    hours(&s.out_of_window_downtime),
                    hours(&s.maintenance_time),
                    s.outage_count,
                    s.probe_count
                );
            }
            Ok(())
        }
        UsageCommand::Capacity {
            offer,
            months,
            json,
        } => {
            let c = call(
                endpoint,
                client.get_capacity(pb::GetCapacityRequest {
                    offer_id: offer,
                    trend_months: months,
                }),
            )
            .await?;
            if json {
                return json::print("fedmesh.v1.GetCapacityResponse", &c);
            }
            let declared = c.declared.unwrap_or_default();
            say!(
                "{}: {} tenants of {} declared ({:.0}%), {} users per tenant at most",
                c.offer_id,
                c.tenant_count,
                declared.max_tenants,
                c.tenant_use_percent,
                declared.max_users_per_tenant
            );
            for t in &c.tenants {
                say!(
                    "  {:<28} {:<16} {:>6} declared {:>8} active {:>10}",
                    t.subscription_id,
                    t.subscriber_member_id,
                    t.declared_users,
                    t.active_users,
                    storage(t.storage_bytes)
                );
            }
            say!("  month     tenants  active users      storage   requests");
            for p in &c.trend {
                let m = p.month.unwrap_or_default();
                say!(
                    "  {}-{:02}  {:>7}  {:>12}  {:>11}  {:>9}",
                    m.year,
                    m.month,
                    p.tenant_count,
                    p.active_users,
                    storage(p.storage_bytes),
                    p.requests
                );
            }
            Ok(())
        }
    }
}

/// Runs `fedmesh availability ...`.
pub async fn availability(connect: &Connection, command: AvailabilityCommand) -> Result<()> {
    let mut client = UsageServiceClient::new(connect.channel()?);
    match command {
        AvailabilityCommand::Report(args) => {
            let lines = read_availability(&args.file, args.offer.as_deref())?;
            send_batches(&connect.endpoint, lines, args.batch_size, async |records| {
                let r = client
                    .report_availability(pb::ReportAvailabilityRequest { records })
                    .await?
                    .into_inner();
                Ok(BatchAnswer {
                    accepted: r.accepted_count,
                    duplicates: r.duplicate_count,
                    rejections: r.rejections,
                })
            })
            .await
        }
    }
}

fn this_month() -> Month {
    let cal = fedmesh_core::calendar::Calendar::from_proto(
        "calendar",
        &fedmesh_core::calendar::default_proto(),
    )
    .unwrap_or_else(|_| fedmesh_core::calendar::Calendar::around_the_clock());
    Month::of_day(cal.local_day(fedmesh_grpc::figures::now()))
}

fn hours(d: &Option<prost_types::Duration>) -> String {
    let s = d.as_ref().map_or(0, |d| d.seconds);
    format!("{}h{:02}", s / 3600, s % 3600 / 60)
}

// ------------------------------------------------------------------------------------------
// Statements.

/// A statement period: `2026-11`, `2026`, or `2026-01-01..2026-06-30`.
pub fn parse_period(text: &str) -> Result<pb::DateRange> {
    let date = |s: &str| -> Result<pb::LocalDate> {
        let parts: Vec<&str> = s.split('-').collect();
        let [y, m, d] = parts.as_slice() else {
            bail!("`{s}` is not a date such as 2026-11-30");
        };
        Ok(pb::LocalDate {
            year: y.parse()?,
            month: m.parse()?,
            day: d.parse()?,
        })
    };
    if let Some((start, end)) = text.split_once("..") {
        return Ok(pb::DateRange {
            start_date: Some(date(start)?),
            end_date: Some(date(end)?),
        });
    }
    if let Ok(month) = text.parse::<Month>() {
        return Ok(fedmesh_core::cost::Days::month(month).to_proto());
    }
    if let Ok(year) = text.parse::<i32>() {
        return Ok(pb::DateRange {
            start_date: Some(pb::LocalDate {
                year,
                month: 1,
                day: 1,
            }),
            end_date: Some(pb::LocalDate {
                year,
                month: 12,
                day: 31,
            }),
        });
    }
    bail!("`{text}` is not a period: use 2026-11, 2026 or 2026-01-01..2026-06-30")
}

fn euros(m: &Option<pb::Money>) -> String {
    let m = m.clone().unwrap_or_default();
    money(m.amount_micros, &m.currency_code)
}

/// A value of `metric` as people read it: bytes in kB/MB/GB (metrics named `…_bytes`), other
/// values as [`quantity`].
pub fn metric_value(metric: &str, value: f64) -> String {
    if metric.ends_with("_bytes") {
        storage(value)
    } else {
        quantity(value)
    }
}

/// A count or quantity as people read it: at most 4 decimals, no trailing zeros (`1200`,
/// `0.3333`, `12.5`).
pub fn quantity(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    // `-0.0000` is 0.
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// `micros` of `currency` rounded to the cent: `1234.50 EUR`.
fn money(micros: i64, currency: &str) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let cents = (micros.unsigned_abs() + 5_000) / 10_000;
    format!("{sign}{}.{:02} {currency}", cents / 100, cents % 100)
}

/// A storage size as people read it: `512 B`, `3.4 MB`, `1.25 TB` (powers of 1000, as
/// storage is sold).
pub fn storage(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes.abs() < 1000.0 {
        return format!("{bytes:.0} B");
    }
    let mut value = bytes / 1000.0;
    let mut unit = 0;
    while value.abs() >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = if value.abs() < 10.0 {
        2
    } else if value.abs() < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.decimals$} {}", UNITS[unit])
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn date_text(d: &Option<pb::LocalDate>) -> String {
    let d = d.unwrap_or_default();
    format!("{}-{:02}-{:02}", d.year, d.month, d.day)
}

/// Runs `fedmesh statement`: the cost statements of `member`'s tenancies over `period`, on
/// the caller's own node (which asks providers for the tenancies it subscribed to).
pub async fn statement(
    connect: &Connection,
    scope: &StatementScope,
    period: &str,
    format: StatementFormat,
) -> Result<()> {
    let period = parse_period(period)?;
    let channel = connect.channel()?;
    let endpoint = &connect.endpoint;
    let mut subscriptions = SubscriptionServiceClient::new(channel.clone());
    let mut usage = UsageServiceClient::new(channel.clone());
    let me = call(
        endpoint,
        NodeServiceClient::new(channel).who_am_i(pb::WhoAmIRequest {}),
    )
    .await?;
    let request = pb::ListSubscriptionsRequest {
        page_size: 500,
        subscriber_member_id: scope.member.clone().unwrap_or_default(),
        offer_id: scope.offer.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut tenancies =
        crate::admin::all_subscriptions(endpoint, &mut subscriptions, request).await?;
    // Only tenancies that have (or had) a tenant are billed.
    tenancies.retain(|s| fedmesh_core::usage::has_tenant(s.state));
    let mut statements = Vec::new();
    for tenancy in &tenancies {
        let statement = call(
            endpoint,
            usage.get_cost_statement(pb::GetCostStatementRequest {
                subscription_id: tenancy.subscription_id.clone(),
                period: Some(period),
            }),
        )
        .await?
        .statement
        .unwrap_or_default();
        statements.push(statement);
    }
    match format {
        StatementFormat::Json => {
            let values = statements
                .iter()
                .map(|s| json::to_json("fedmesh.v1.CostStatement", s))
                .collect::<Result<Vec<_>>>()?;
            say!("{}", crate::json::pretty(&values)?);
        }
        StatementFormat::Csv => {
            say!(
                "subscription_id,offer_id,provider_member_id,subscriber_member_id,tenant_id,period_start,period_end,kind,description,quantity,unit_price,amount,currency"
            );
            for s in &statements {
                for l in &s.lines {
                    let kind = pb::CostLineKind::try_from(l.kind)
                        .map(|k| {
                            k.as_str_name()
                                .trim_start_matches("COST_LINE_KIND_")
                                .to_lowercase()
                        })
                        .unwrap_or_default();
                    let micros = |m: &Option<pb::Money>| {
                        let v = m.as_ref().map_or(0, |m| m.amount_micros);
                        format!("{}.{:06}", v / 1_000_000, (v % 1_000_000).abs())
                    };
                    say!(
                        "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                        csv_field(&s.subscription_id),
                        csv_field(&s.offer_id),
                        csv_field(&s.provider_member_id),
                        csv_field(&s.subscriber_member_id),
                        csv_field(&s.tenant_id),
                        date_text(&s.period.as_ref().and_then(|p| p.start_date)),
                        date_text(&s.period.as_ref().and_then(|p| p.end_date)),
                        kind,
                        csv_field(&l.description),
                        // Day-prorated quantities are long fractions: 4 decimals are exact
                        // enough for any amount the line states.
                        format!("{:.4}", l.quantity),
                        micros(&l.unit_price),
                        micros(&l.amount),
                        s.currency_code
                    );
                }
            }
        }
        StatementFormat::Text => {
            if statements.is_empty() {
                say!("no billed tenancy of {scope} on {}'s node", me.member_id);
                return Ok(());
            }
            let today = jiff::Timestamp::from_second(fedmesh_grpc::figures::now())
                .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
                .ok();
            let ends = period.end_date.map(|d| (d.year, d.month, d.day));
            if let (Some(today), Some((y, m, d))) = (today, ends)
                && (
                    i32::from(today.year()),
                    i32::from(today.month()),
                    i32::from(today.day()),
                ) < (y, m, d)
            {
                say!(
                    "to date: the period is not over ({} today), so these amounts will still grow",
                    today
                );
            }
            let mut totals: std::collections::BTreeMap<String, i64> = Default::default();
            for s in &statements {
                let total = s.total.clone().unwrap_or_default();
                *totals.entry(total.currency_code).or_default() += total.amount_micros;
            }
            for s in &statements {
                say!(
                    "{} on {} (provider {}, tenant {}), {} to {}",
                    s.subscription_id,
                    s.offer_id,
                    s.provider_member_id,
                    s.tenant_id,
                    date_text(&s.period.as_ref().and_then(|p| p.start_date)),
                    date_text(&s.period.as_ref().and_then(|p| p.end_date)),
                );
                for l in &s.lines {
                    say!("  {:>16}  {}", euros(&l.amount), l.description);
                }
                say!("  {:>16}  total", euros(&s.total));
            }
            if statements.len() > 1 {
                for (currency, micros) in &totals {
                    say!(
                        "{:>18}  grand total of {} tenancies",
                        money(*micros, currency),
                        statements.len()
                    );
                }
            }
        }
    }
    Ok(())
}

/// Whose statements: a subscriber member's tenancies (`--member`), or the tenants of one of
/// your offers (`--offer`, what to invoice each tenant), or both narrowed together.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(required = true, multiple = true)]
pub struct StatementScope {
    /// The subscriber member.
    #[arg(long)]
    pub member: Option<String>,
    /// One of your offers: a statement for each of its tenants.
    #[arg(long)]
    pub offer: Option<String>,
}

impl std::fmt::Display for StatementScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.member, &self.offer) {
            (Some(member), Some(offer)) => write!(f, "{member} on {offer}"),
            (Some(member), None) => write!(f, "{member}"),
            (None, Some(offer)) => write!(f, "any member on {offer}"),
            (None, None) => write!(f, "anyone"),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Metrics.

/// Runs `fedmesh metrics ...` against the coordinator.
pub async fn metrics(connect: &Connection, command: MetricsCommand) -> Result<()> {
    let mut client = MetricsServiceClient::new(connect.channel()?);
    let endpoint = &connect.endpoint;
    match command {
        MetricsCommand::Summary { json } => {
            let s = call(
                endpoint,
                client.get_federation_summary(pb::GetFederationSummaryRequest {}),
            )
            .await?;
            if json {
                return json::print("fedmesh.v1.GetFederationSummaryResponse", &s);
            }
            say!(
                "{} members, {}/{} nodes up, {} offers ({} available, {} pilot), {} tenants, {} users",
                s.member_count,
                s.nodes_up,
                s.node_count,
                s.offer_count,
                s.available_offer_count,
                s.pilot_offer_count,
                s.tenant_count,
                s.user_count
            );
        }
        MetricsCommand::Offer {
            offer_id,
            from,
            to,
            json,
        } => {
            let m = call(
                endpoint,
                client.get_offer_metrics(pb::GetOfferMetricsRequest {
                    offer_id,
                    from_month: Some(from.to_proto()),
                    to_month: to.map(Month::to_proto),
                }),
            )
            .await?;
            if json {
                return json::print("fedmesh.v1.GetOfferMetricsResponse", &m);
            }
            say!("{} (provider {})", m.offer_id, m.provider_member_id);
            say!("  month     tenants      users      storage     requests");
            for p in &m.months {
                let month = p.month.unwrap_or_default();
                say!(
                    "  {}-{:02}  {:>7}  {:>9}  {:>11}  {:>11}",
                    month.year,
                    month.month,
                    p.tenant_count,
                    p.user_count,
                    storage(p.storage_bytes as f64),
                    p.request_count
                );
            }
        }
        MetricsCommand::Member {
            member_id,
            period,
            json,
        } => {
            let m = call(
                endpoint,
                client.get_member_metrics(pb::GetMemberMetricsRequest {
                    member_id,
                    month: period.map(Month::to_proto),
                }),
            )
            .await?;
            if json {
                return json::print("fedmesh.v1.GetMemberMetricsResponse", &m);
            }
            let month = m.month.unwrap_or_default();
            say!("{}, {}-{:02}", m.member_id, month.year, month.month);
            say!("  provides:");
            for p in &m.provided {
                let f = p.metrics.unwrap_or_default();
                say!(
                    "    {:<24} {:>3} tenants {:>9} users {:>10} {:>11} requests  {}",
                    p.offer_id,
                    f.tenant_count,
                    f.user_count,
                    storage(f.storage_bytes as f64),
                    f.request_count,
                    p.service_name
                );
            }
            say!("  subscribes to:");
            for s in &m.subscribed {
                let state = pb::SubscriptionState::try_from(s.state)
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("SUBSCRIPTION_STATE_")
                            .to_lowercase()
                    })
                    .unwrap_or_default();
                say!(
                    "    {:<24} {:<11} {:>9} users {:>10} {:>11} requests  ({})",
                    s.offer_id,
                    state,
                    s.user_count,
                    storage(s.storage_bytes as f64),
                    s.request_count,
                    s.subscription_id
                );
            }
        }
        MetricsCommand::Incidents {
            period,
            offer,
            json,
        } => {
            let r = call(
                endpoint,
                client.get_incident_statistics(pb::GetIncidentStatisticsRequest {
                    offer_id: offer.unwrap_or_default(),
                    month: Some(period.to_proto()),
                }),
            )
            .await?;
            if json {
                return json::print("fedmesh.v1.GetIncidentStatisticsResponse", &r);
            }
            say!("Incidents, {period}");
            // "At month end" only once the month has ended (UTC, the earliest any offer's
            // month ends); before, the count is of those open now.
            let this_month = jiff::Timestamp::from_second(fedmesh_grpc::figures::now())
                .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
                .ok()
                .and_then(|d| {
                    Month::new(i32::from(d.year()), u32::try_from(d.month()).unwrap_or(0))
                });
            let when = if this_month.is_some_and(|now| period >= now) {
                "still open now"
            } else {
                "still open at month end"
            };
            for o in &r.offers {
                say!(
                    "  {:<28} opened {:>3}, {when} {:>3}",
                    o.offer_id,
                    o.opened_count,
                    o.open_at_month_end
                );
                for p in o.by_priority.iter().filter(|p| p.opened_count > 0) {
                    let median = |d: &Option<prost_types::Duration>| {
                        d.as_ref().map_or("-".to_owned(), |d| {
                            format!("{}h{:02}", d.seconds / 3600, d.seconds % 3600 / 60)
                        })
                    };
                    say!(
                        "    {:<3} opened {:>3} resolved {:>3}  median ack {} resolve {}  in time: ack {:.0}% resolve {:.0}%",
                        pb::Priority::try_from(p.priority)
                            .map(|p| p.as_str_name().trim_start_matches("PRIORITY_"))
                            .unwrap_or("?"),
                        p.opened_count,
                        p.resolved_count,
                        median(&p.median_time_to_acknowledge),
                        median(&p.median_time_to_resolve),
                        p.acknowledged_in_time_percent,
                        p.resolved_in_time_percent
                    );
                }
            }
        }
        MetricsCommand::Open { escalated, json } => {
            // Every page, as one response.
            let mut r = pb::ListOpenIncidentsResponse::default();
            loop {
                let page = call(
                    endpoint,
                    client.list_open_incidents(pb::ListOpenIncidentsRequest {
                        offer_id: String::new(),
                        min_escalation_level: escalated,
                        page_size: 1000,
                        page_token: r.next_page_token.clone(),
                    }),
                )
                .await?;
                r.incidents.extend(page.incidents);
                r.next_page_token = page.next_page_token;
                if r.next_page_token.is_empty() {
                    break;
                }
            }
            if json {
                return json::print("fedmesh.v1.ListOpenIncidentsResponse", &r);
            }
            if r.incidents.is_empty() {
                say!("no open incident");
            }
            for i in &r.incidents {
                let states: Vec<String> = i
                    .sla_clocks
                    .iter()
                    .map(|c| {
                        pb::SlaClockState::try_from(c.state)
                            .map(|s| {
                                s.as_str_name()
                                    .trim_start_matches("SLA_CLOCK_STATE_")
                                    .to_lowercase()
                            })
                            .unwrap_or_default()
                    })
                    .collect();
                say!(
                    "  {:<36} {:<18} {} → {}  sla {}  escalation level {}",
                    i.incident_id,
                    i.offer_id,
                    i.subscriber_member_id,
                    i.provider_member_id,
                    states.join("/"),
                    i.escalation_level
                );
            }
        }
        MetricsCommand::Sla {
            period,
            offer,
            json,
        } => {
            let r = call(
                endpoint,
                client.get_sla_compliance(pb::GetSlaComplianceRequest {
                    offer_id: offer.unwrap_or_default(),
                    month: Some(period.to_proto()),
                }),
            )
            .await?;
            if json {
                return json::print("fedmesh.v1.GetSlaComplianceResponse", &r);
            }
            say!("SLA compliance, {period}");
            for o in &r.offers {
                let a = o.availability.clone().unwrap_or_default();
                let verdict = |met: bool| if met { "met" } else { "MISSED" };
                say!(
                    "  {:<28} in window {:>8.3}% (SLA {}% {})  outside {:>8.3}% (SLO {}% {})  requests in time {}/{} ({} {})",
                    o.offer_id,
                    a.in_window_availability_percent,
                    o.availability_sla_percent,
                    verdict(o.sla_met),
                    a.out_of_window_availability_percent,
                    o.availability_slo_percent,
                    verdict(o.slo_met),
                    o.requests_in_time,
                    o.request_count,
                    o.request_handling_target_percent,
                    verdict(o.request_target_met)
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn quantities_keep_four_decimals_at_most_and_no_trailing_zeros() {
        assert_eq!(quantity(1200.0), "1200");
        assert_eq!(quantity(1.0 / 3.0), "0.3333");
        assert_eq!(quantity(12.5), "12.5");
        assert_eq!(quantity(-0.00001), "0");
    }

    use super::*;

    #[test]
    fn sizes_and_amounts_read_as_people_write_them() {
        assert_eq!(storage(512.0), "512 B");
        assert_eq!(storage(3_400_000.0), "3.40 MB");
        assert_eq!(storage(52_000_000_000.0), "52.0 GB");
        assert_eq!(storage(1_250_000_000_000.0), "1.25 TB");
        assert_eq!(money(1_234_500_000, "EUR"), "1234.50 EUR");
        // 0.999 rounds to the next unit, not to "0.100".
        assert_eq!(money(999_000, "EUR"), "1.00 EUR");
        assert_eq!(money(-2_500_000, "EUR"), "-2.50 EUR");
    }

    fn file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn csv_and_jsonl_usage_files_read_alike() {
        let (_d, csv) = file(
            "u.csv",
            "record_id,tenant_id,metric,value,period_start,period_end\n\
             r1,rouen,active_users,120,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z\n\
             \"r,2\",rouen,requests,\"3,5\",2026-11-02T00:00:00Z,2026-11-03T00:00:00Z\n",
        );
        let err = read_usage(&csv, Some("unistra.pod"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3: `value` is not a number: 3,5"),
            "{err}"
        );
        let (_d, csv) = file(
            "u.csv",
            "record_id,tenant_id,metric,value,period_start,period_end\n\
             r1,rouen,active_users,120,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z\n\
             \"r,2\",rouen,requests,35,2026-11-02T00:00:00+01:00,2026-11-03T00:00:00Z\n",
        );
        let lines = read_usage(&csv, Some("unistra.pod")).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].number, 3);
        assert_eq!(lines[1].record.record_id, "r,2");
        assert_eq!(lines[1].record.offer_id, "unistra.pod");
        let (_d, jsonl) = file(
            "u.jsonl",
            "{\"record_id\":\"r1\",\"offer_id\":\"unistra.pod\",\"tenant_id\":\"rouen\",\"metric\":\"active_users\",\"value\":120,\"period_start\":\"2026-11-02T00:00:00Z\",\"period_end\":\"2026-11-03T00:00:00Z\"}\n",
        );
        let from_json = read_usage(&jsonl, None).unwrap();
        assert_eq!(from_json[0].record, lines[0].record);
    }

    #[test]
    fn malformed_files_name_every_bad_line_and_send_nothing() {
        let (_d, path) = file(
            "u.csv",
            "record_id,metric,value,period_start,period_end\n\
             a,requests,1,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z\n\
             b,requests,1,yesterday,2026-11-03T00:00:00Z\n\
             c,requests\n",
        );
        let err = read_usage(&path, None).unwrap_err().to_string();
        assert!(
            err.contains("line 4: 2 fields where the header has 5"),
            "{err}"
        );
        let (_d, path) = file(
            "u.csv",
            "record_id,metric,value,period_start,period_end\n\
             b,requests,1,yesterday,2026-11-03T00:00:00Z\n",
        );
        let err = read_usage(&path, Some("x.y")).unwrap_err().to_string();
        assert!(
            err.contains("line 2: `period_start` is not an RFC 3339 time"),
            "{err}"
        );
        let (_d, path) = file("u.txt", "");
        assert!(
            read_usage(&path, None)
                .unwrap_err()
                .to_string()
                .contains(".csv or .jsonl")
        );
    }

    #[test]
    fn availability_rows_are_probes_or_outages() {
        let (_d, path) = file(
            "a.csv",
            "record_id,kind,start,end,up,planned_maintenance,description\n\
             p1,probe,2026-11-02T08:00:00Z,,false,,HTTP 503\n\
             o1,outage,2026-11-02T08:00:00Z,2026-11-02T09:00:00Z,,true,upgrade\n",
        );
        let lines = read_availability(&path, Some("unistra.pod")).unwrap();
        assert!(matches!(
            &lines[0].record.observation,
            Some(pb::availability_record::Observation::Probe(p)) if !p.up && p.detail == "HTTP 503"
        ));
        assert!(lines[1].record.planned_maintenance);
    }

    #[test]
    fn periods_are_months_years_or_ranges() {
        let november = parse_period("2026-11").unwrap();
        assert_eq!(november.end_date.unwrap().day, 30);
        assert_eq!(parse_period("2027").unwrap().end_date.unwrap().month, 12);
        assert_eq!(
            parse_period("2026-01-01..2026-06-30")
                .unwrap()
                .end_date
                .unwrap()
                .month,
            6
        );
        assert!(parse_period("last month").is_err());
    }
}
