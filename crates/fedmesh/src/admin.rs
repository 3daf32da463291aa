//! Admin subcommands that manage a member's own node: `fedmesh offer ...` and
//! `fedmesh catalogue ...`. Each talks to one node over mTLS (see [`crate::cli`]); read
//! commands take `--json`.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use fedmesh_proto::pb;
use fedmesh_proto::pb::catalogue_service_client::CatalogueServiceClient;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;
use tonic::Code;

use crate::cli::{CallFailed, Connection, call};
use crate::inert::{Lines, inert};
use crate::json;
use crate::say;

/// `fedmesh offer ...`: the member's own offers, on its node.
#[derive(Debug, Subcommand)]
pub enum OfferCommand {
    /// Publish an offer from a TOML file (docs/offers.md); to update one, pass its etag.
    Publish {
        /// The offer file.
        #[arg(long)]
        file: PathBuf,
        /// The etag of the version you are updating (`fedmesh offer show`); empty to create.
        #[arg(long, default_value = "")]
        etag: String,
        /// Print the stored offer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the node's offers.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one offer.
    Show {
        /// The offer id (`<member>.<service_id>`).
        offer_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a published offer back as the TOML file that publishes it (to edit it as it
    /// stands, then publish with the etag the file names).
    Export {
        /// The offer id.
        offer_id: String,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Withdraw an offer (final).
    Withdraw {
        /// The offer id.
        offer_id: String,
        /// Only if the offer is still at this etag.
        #[arg(long, default_value = "")]
        etag: String,
        /// Why, for the node's log.
        #[arg(long, default_value = "")]
        reason: String,
        /// Withdraw without asking, even when tenancies are running on the offer (scripts).
        #[arg(long)]
        yes: bool,
    },
}

/// `fedmesh catalogue ...`: the federation catalogue as the member's node sees it (its cache
/// of the coordinator's catalogue, browsable while the coordinator is down).
#[derive(Debug, Subcommand)]
pub enum CatalogueCommand {
    /// Search offers.
    Search {
        /// Words to find in names and descriptions (French or English, accents ignored).
        #[arg(default_value = "")]
        text: String,
        /// Only this category.
        #[arg(long)]
        category: Option<String>,
        /// Only this provider member.
        #[arg(long)]
        provider: Option<String>,
        /// Only these statuses: pilot, available, deprecated, withdrawn (repeatable).
        #[arg(long, value_parser = ["pilot", "available", "deprecated", "withdrawn"])]
        status: Vec<String>,
        /// Only offers that can take another tenant.
        #[arg(long)]
        free: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One offer in full, as a subscriber reads it before subscribing: the engagement
    /// (window, holidays, closures, deadlines per priority), capacity left, pricing, GDPR
    /// facts, contact, terms and approval.
    Show {
        /// The offer id (`<member>.<service_id>`).
        offer_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print catalogue changes as they happen (after the current catalogue), until Ctrl-C.
    Watch {
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

fn status_word(status: i32) -> String {
    pb::OfferStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("OFFER_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn summary(offer: &pb::Offer) -> String {
    format!(
        "{:<24} {:<11} {:<14} v{:<8} {}",
        offer.offer_id,
        status_word(offer.status),
        offer.category,
        inert(&offer.version, Lines::One),
        inert(&offer.service_name, Lines::One)
    )
}

/// Runs an offer command.
pub async fn offer(connect: &Connection, command: OfferCommand) -> Result<()> {
    let mut client = OfferServiceClient::new(connect.channel()?);
    let endpoint = &connect.endpoint;
    match command {
        OfferCommand::Publish { file, etag, json } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let offer = crate::offer_file::parse_offer_file(&text)
                .with_context(|| format!("{}", file.display()))?;
            let request = pb::PublishOfferRequest {
                offer: Some(offer),
                etag: etag.clone(),
            };
            let response = match call(endpoint, client.publish_offer(request)).await {
                Err(CallFailed { status, .. })
                    if status.code() == Code::Aborted && etag.is_empty() =>
                {
                    anyhow::bail!(
                        "{}\nthe offer already exists: to update it, pass the etag of the version you changed with --etag (see `fedmesh offer show`)",
                        status.message()
                    );
                }
                other => other?,
            };
            let stored = response.offer.unwrap_or_default();
            if json {
                return json::print("fedmesh.v1.Offer", &stored);
            }
            let verb = if response.created {
                "published"
            } else {
                "updated"
            };
            say!("{verb} {} (etag {})", stored.offer_id, stored.etag);
        }
        OfferCommand::List { json } => {
            let mut page_token = String::new();
            let mut offers = Vec::new();
            loop {
                let page = call(
                    endpoint,
                    client.list_offers(pb::ListOffersRequest {
                        page_size: 500,
                        page_token,
                        ..Default::default()
                    }),
                )
                .await?;
                offers.extend(page.offers);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if json {
                let list = pb::ListOffersResponse {
                    offers,
                    next_page_token: String::new(),
                };
                return json::print("fedmesh.v1.ListOffersResponse", &list);
            }
            if offers.is_empty() {
                say!("no offers on this node");
            }
            for offer in &offers {
                say!("{}", summary(offer));
            }
        }
        OfferCommand::Show { offer_id, json } => {
            let offer = call(endpoint, client.get_offer(pb::GetOfferRequest { offer_id }))
                .await?
                .offer
                .unwrap_or_default();
            if json {
                return json::print("fedmesh.v1.Offer", &offer);
            }
            crate::offer_view::print(&offer, None);
        }
        OfferCommand::Export { offer_id, out } => {
            let offer = call(endpoint, client.get_offer(pb::GetOfferRequest { offer_id }))
                .await?
                .offer
                .unwrap_or_default();
            let file = crate::offer_file::to_toml(&offer).context("writing the offer as TOML")?;
            match out {
                Some(path) => {
                    std::fs::write(&path, file)
                        .with_context(|| format!("writing {}", path.display()))?;
                    say!(
                        "{} written to {} (etag {})",
                        offer.offer_id,
                        path.display(),
                        offer.etag
                    );
                }
                None => crate::inert::print_line(file.trim_end()),
            }
        }
        OfferCommand::Withdraw {
            offer_id,
            etag,
            reason,
            yes,
        } => {
            let running = running_tenancies(connect, &offer_id).await?;
            if !running.is_empty() && !yes {
                confirm_withdrawal(&offer_id, &running)?;
            }
            let offer = call(
                endpoint,
                client.withdraw_offer(pb::WithdrawOfferRequest {
                    offer_id,
                    etag,
                    reason,
                }),
            )
            .await?
            .offer
            .unwrap_or_default();
            say!("withdrew {} (etag {})", offer.offer_id, offer.etag);
            if !running.is_empty() {
                say!(
                    "{} tenancies keep running until you terminate them (fedmesh subscription terminate <id>); new requests are refused",
                    running.len()
                );
            }
        }
    }
    Ok(())
}

/// Every subscription `request` lists, page after page.
pub(crate) async fn all_subscriptions(
    endpoint: &str,
    client: &mut pb::subscription_service_client::SubscriptionServiceClient<
        fedmesh_grpc::GrpcChannel,
    >,
    mut request: pb::ListSubscriptionsRequest,
) -> Result<Vec<pb::Subscription>, CallFailed> {
    let mut all = Vec::new();
    loop {
        let page = call(endpoint, client.list_subscriptions(request.clone())).await?;
        all.extend(page.subscriptions);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        request.page_token = page.next_page_token;
    }
}

/// The tenancies of `offer_id` that are requested, active or suspended.
async fn running_tenancies(connect: &Connection, offer_id: &str) -> Result<Vec<pb::Subscription>> {
    let mut client =
        pb::subscription_service_client::SubscriptionServiceClient::new(connect.channel()?);
    let request = pb::ListSubscriptionsRequest {
        page_size: 500,
        offer_id: offer_id.to_owned(),
        states: [
            pb::SubscriptionState::Requested,
            pb::SubscriptionState::Active,
            pb::SubscriptionState::Suspended,
        ]
        .map(|s| s as i32)
        .to_vec(),
        ..Default::default()
    };
    Ok(all_subscriptions(&connect.endpoint, &mut client, request).await?)
}

/// Says what withdrawing does to `running` and asks on a terminal; elsewhere asks for `--yes`.
fn confirm_withdrawal(offer_id: &str, running: &[pb::Subscription]) -> Result<()> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    say!(
        "{offer_id} has {} tenancies requested, active or suspended:",
        running.len()
    );
    for s in running {
        say!("  {}", subscription_line(s));
    }
    say!(
        "Withdrawing is final: the offer leaves the catalogue for new requests, which are refused; these tenancies keep running until you terminate them."
    );
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("not withdrawn: run again with --yes to withdraw {offer_id} all the same");
    }
    print!("Withdraw {offer_id}? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        anyhow::bail!("not withdrawn");
    }
    Ok(())
}

fn catalogue_line(entry: &pb::CatalogueOffer) -> String {
    let reachable = if entry.provider_node_up {
        ""
    } else {
        "  [provider unreachable]"
    };
    match &entry.offer {
        Some(offer) => format!("{}{reachable}", summary(offer)),
        None => String::new(),
    }
}

/// Runs a catalogue command.
pub async fn catalogue(connect: &Connection, command: CatalogueCommand) -> Result<()> {
    let mut client = CatalogueServiceClient::new(connect.channel()?);
    let endpoint = &connect.endpoint;
    match command {
        CatalogueCommand::Show { offer_id, json } => {
            let entry = call(
                endpoint,
                client.get_catalogue_offer(pb::GetCatalogueOfferRequest { offer_id }),
            )
            .await?
            .offer
            .unwrap_or_default();
            if json {
                return json::print("fedmesh.v1.CatalogueOffer", &entry);
            }
            crate::offer_view::print(&entry.offer.clone().unwrap_or_default(), Some(&entry));
        }
        CatalogueCommand::Search {
            text,
            category,
            provider,
            status,
            free,
            json,
        } => {
            let statuses = status
                .iter()
                .filter_map(|s| {
                    pb::OfferStatus::from_str_name(&format!("OFFER_STATUS_{}", s.to_uppercase()))
                })
                .map(|s| s as i32)
                .collect();
            let mut request = pb::SearchOffersRequest {
                page_size: 500,
                text,
                category: category.unwrap_or_default(),
                provider_member_id: provider.unwrap_or_default(),
                statuses,
                has_free_capacity: free,
                ..Default::default()
            };
            let mut offers = Vec::new();
            loop {
                let page = call(endpoint, client.search_offers(request.clone())).await?;
                offers.extend(page.offers);
                if page.next_page_token.is_empty() {
                    break;
                }
                request.page_token = page.next_page_token;
            }
            if json {
                let total_size = i32::try_from(offers.len()).unwrap_or(i32::MAX);
                let result = pb::SearchOffersResponse {
                    offers,
                    next_page_token: String::new(),
                    total_size,
                };
                return json::print("fedmesh.v1.SearchOffersResponse", &result);
            }
            if offers.is_empty() {
                say!("no offer matches");
            }
            for entry in &offers {
                say!("{}", catalogue_line(entry));
            }
        }
        CatalogueCommand::Watch { json } => {
            let mut stream = call(
                endpoint,
                client.watch_catalogue(pb::WatchCatalogueRequest::default()),
            )
            .await?;
            let mut caught_up = false;
            loop {
                let message = match stream.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) => anyhow::bail!("the node ended the watch"),
                    Err(status) => {
                        return Err(CallFailed {
                            endpoint: endpoint.clone(),
                            status,
                        }
                        .into());
                    }
                };
                if message.caught_up && !caught_up {
                    caught_up = true;
                    if !json {
                        say!("-- the catalogue above is current; changes follow --");
                    }
                }
                if let Some(change) = message.change {
                    if json {
                        say!(
                            "{}",
                            crate::json::line(&json::to_json(
                                "fedmesh.v1.CatalogueChange",
                                &change
                            )?)?
                        );
                    } else if let Some(entry) = &change.offer {
                        say!("{}", catalogue_line(entry));
                    }
                }
            }
        }
    }
    Ok(())
}

/// `fedmesh subscription ...`: tenancies, on your member's node. As a subscriber: `request`,
/// `cancel`, `change-users` (sent to the provider's node, or queued until it answers). As a
/// provider: `approve`, `reject`, `suspend`, `resume`, `terminate`. Both: `list`, `show`.
#[derive(Debug, Subcommand)]
pub enum SubscriptionCommand {
    /// Ask for a tenancy on another member's offer.
    Request {
        /// The offer id (`<member>.<service_id>`).
        #[arg(long)]
        offer: String,
        /// How many users the tenancy is for.
        #[arg(long)]
        users: i32,
        /// Who the provider contacts about the tenancy.
        #[arg(long)]
        contact: String,
        /// The version of the offer's terms you accept (`fedmesh catalogue search --json`).
        #[arg(long)]
        accept_terms: String,
        /// As a pilot tenant.
        #[arg(long)]
        pilot: bool,
        /// Your request id; retrying with the same id never creates a second tenancy.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// List the tenancies your node knows (on your offers, and yours elsewhere), in id order.
    List {
        /// Only tenancies in these states (repeatable).
        #[arg(long, value_enum)]
        state: Vec<TenancyState>,
        /// Only the tenancies on your offers (`provider`) or yours elsewhere (`subscriber`).
        #[arg(long, value_enum)]
        role: Option<Side>,
        /// Only tenancies of this offer.
        #[arg(long)]
        offer: Option<String>,
    },
    /// Show one tenancy with its history.
    Show {
        /// The subscription id.
        id: String,
    },
    /// Approve a request on your offer.
    Approve {
        /// The subscription id.
        id: String,
        /// The tenant's id in your service (default: the subscriber's member id).
        #[arg(long, default_value = "")]
        tenant_id: String,
        /// The tenant-facing URL.
        #[arg(long, default_value = "")]
        tenant_url: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Reject a request on your offer.
    Reject {
        /// The subscription id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Suspend a tenant of your offer.
    Suspend {
        /// The subscription id.
        id: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Resume a suspended tenant.
    Resume {
        /// The subscription id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Terminate a tenancy of your offer; with --data-deleted, confirm its data is gone.
    Terminate {
        /// The subscription id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        /// Confirm the tenant's data is exported and deleted: the tenancy ends.
        #[arg(long)]
        data_deleted: bool,
    },
    /// Withdraw your request, or leave a tenancy.
    Cancel {
        /// The subscription id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Change the number of users of your tenancy.
    ChangeUsers {
        /// The subscription id.
        id: String,
        /// The new number of users.
        #[arg(long)]
        users: i32,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// A request id for a write: 16 random bytes from the system's secure source, in hex.
pub fn new_request_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A tenancy's state, as `--state` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TenancyState {
    /// Asked for, waiting for the provider's decision.
    Requested,
    /// Provisioned and running.
    Active,
    /// Refused by the provider.
    Rejected,
    /// Stopped for a while by the provider.
    Suspended,
    /// Ended, data not yet deleted.
    Terminating,
    /// Ended, data deleted.
    Terminated,
}

impl From<TenancyState> for pb::SubscriptionState {
    fn from(state: TenancyState) -> Self {
        match state {
            TenancyState::Requested => Self::Requested,
            TenancyState::Active => Self::Active,
            TenancyState::Rejected => Self::Rejected,
            TenancyState::Suspended => Self::Suspended,
            TenancyState::Terminating => Self::Terminating,
            TenancyState::Terminated => Self::Terminated,
        }
    }
}

/// Which side of a tenancy the reader's member is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    /// The tenancies on your member's offers.
    Provider,
    /// Your member's tenancies on other members' offers.
    Subscriber,
}

/// Orders subscription ids as people count: `rouen.s4` before `rouen.s12`.
fn id_order(id: &str) -> (&str, u64, &str) {
    let digits = id.len() - id.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, number) = id.split_at(id.len() - digits);
    (stem, number.parse().unwrap_or(0), id)
}

fn state_word(state: i32) -> String {
    pb::SubscriptionState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("SUBSCRIPTION_STATE_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn subscription_line(s: &pb::Subscription) -> String {
    format!(
        "{:<16} {:<12} {:<20} {:<10} -> {:<10} {:>6} users",
        if s.subscription_id.is_empty() {
            "(queued)"
        } else {
            s.subscription_id.as_str()
        },
        state_word(s.state),
        s.offer_id,
        s.subscriber_member_id,
        s.provider_member_id,
        s.user_count
    )
}

fn subscription_details(s: &pb::Subscription) {
    say!("{}", subscription_line(s));
    if !s.tenant_id.is_empty() || !s.tenant_url.is_empty() {
        say!("  tenant        {} {}", s.tenant_id, s.tenant_url);
    }
    if let Some(deadline) = &s.data_retention_deadline {
        say!("  data deleted by {}", crate::times::local(Some(deadline)));
    }
    for change in &s.history {
        say!(
            "  {:<32} {:>10} -> {:<12} by {} {}",
            change
                .change_time
                .map(|t| crate::times::local(Some(&t)))
                .unwrap_or_default(),
            state_word(change.from_state),
            state_word(change.to_state),
            change.actor,
            change.reason
        );
    }
}

/// Runs a subscription command.
pub async fn subscription(
    connect: &Connection,
    command: SubscriptionCommand,
    json: bool,
) -> Result<()> {
    use pb::subscription_service_client::SubscriptionServiceClient;
    let mut client = SubscriptionServiceClient::new(connect.channel()?);
    let endpoint = &connect.endpoint;
    let report = |s: &pb::Subscription, queued: bool, verb: &str| -> Result<()> {
        if json {
            let mut value = json::to_json("fedmesh.v1.Subscription", s)?;
            if let Some(object) = value.as_object_mut() {
                object.insert("queued".to_owned(), serde_json::Value::Bool(queued));
            }
            say!("{}", crate::json::pretty(&value)?);
        } else if queued {
            say!(
                "queued: the provider's node is unreachable; your node delivers the request when it answers"
            );
        } else {
            say!("{verb}: {}", subscription_line(s));
        }
        Ok(())
    };
    match command {
        SubscriptionCommand::Request {
            offer,
            users,
            contact,
            accept_terms,
            pilot,
            request_id,
        } => {
            let request_id = match request_id {
                Some(id) => id,
                None => new_request_id()?,
            };
            let response = call(
                endpoint,
                client.request_subscription(pb::RequestSubscriptionRequest {
                    request_id: request_id.clone(),
                    offer_id: offer,
                    user_count: users,
                    contact_email: contact,
                    accepted_terms_version: accept_terms,
                    pilot,
                    ..Default::default()
                }),
            )
            .await?;
            if json {
                return json::print("fedmesh.v1.RequestSubscriptionResponse", &response);
            }
            report(
                &response.subscription.unwrap_or_default(),
                response.queued,
                "requested",
            )?;
            say!("request id {request_id} (retry with --request-id {request_id})");
        }
        SubscriptionCommand::List { state, role, offer } => {
            let request = pb::ListSubscriptionsRequest {
                page_size: 500,
                offer_id: offer.unwrap_or_default(),
                states: state
                    .iter()
                    .map(|s| pb::SubscriptionState::from(*s) as i32)
                    .collect(),
                ..Default::default()
            };
            let own = match role {
                Some(_) => {
                    let mut node =
                        pb::node_service_client::NodeServiceClient::new(connect.channel()?);
                    call(endpoint, node.who_am_i(pb::WhoAmIRequest {}))
                        .await?
                        .server_member_id
                }
                None => String::new(),
            };
            let mut all = all_subscriptions(endpoint, &mut client, request).await?;
            all.retain(|s| match role {
                Some(Side::Provider) => s.provider_member_id == own,
                Some(Side::Subscriber) => s.subscriber_member_id == own,
                None => true,
            });
            all.sort_by(|a, b| id_order(&a.subscription_id).cmp(&id_order(&b.subscription_id)));
            if json {
                let list = pb::ListSubscriptionsResponse {
                    subscriptions: all,
                    next_page_token: String::new(),
                };
                return json::print("fedmesh.v1.ListSubscriptionsResponse", &list);
            }
            if all.is_empty() {
                say!("no subscriptions");
                return Ok(());
            }
            say!(
                "{:<16} {:<12} {:<20} {:<10} -> {:<10} {:>12}",
                "ID",
                "STATE",
                "OFFER",
                "SUBSCRIBER",
                "PROVIDER",
                "USERS"
            );
            for s in &all {
                say!("{}", subscription_line(s));
            }
        }
        SubscriptionCommand::Show { id } => {
            let s = call(
                endpoint,
                client.get_subscription(pb::GetSubscriptionRequest {
                    subscription_id: id,
                }),
            )
            .await?
            .subscription
            .unwrap_or_default();
            if json {
                return json::print("fedmesh.v1.Subscription", &s);
            }
            subscription_details(&s);
        }
        SubscriptionCommand::Approve {
            id,
            tenant_id,
            tenant_url,
            reason,
        } => {
            let r = call(
                endpoint,
                client.approve_subscription(pb::ApproveSubscriptionRequest {
                    request_id: new_request_id()?,
                    subscription_id: id,
                    tenant_id,
                    tenant_url,
                    reason,
                }),
            )
            .await?;
            report(&r.subscription.unwrap_or_default(), false, "approved")?;
        }
        SubscriptionCommand::Reject { id, reason } => {
            let r = call(
                endpoint,
                client.reject_subscription(pb::RejectSubscriptionRequest {
                    request_id: new_request_id()?,
                    subscription_id: id,
                    reason,
                }),
            )
            .await?;
            report(&r.subscription.unwrap_or_default(), false, "rejected")?;
        }
        SubscriptionCommand::Suspend { id, reason } => {
            let r = call(
                endpoint,
                client.suspend_subscription(pb::SuspendSubscriptionRequest {
                    request_id: new_request_id()?,
                    subscription_id: id,
                    reason,
                }),
            )
            .await?;
            report(&r.subscription.unwrap_or_default(), false, "suspended")?;
        }
        SubscriptionCommand::Resume { id, reason } => {
            let r = call(
                endpoint,
                client.resume_subscription(pb::ResumeSubscriptionRequest {
                    request_id: new_request_id()?,
                    subscription_id: id,
                    reason,
                }),
            )
            .await?;
            report(&r.subscription.unwrap_or_default(), false, "resumed")?;
        }
        SubscriptionCommand::Terminate {
            id,
            reason,
            data_deleted,
        } => {
            let r = call(
                endpoint,
                client.terminate_subscription(pb::TerminateSubscriptionRequest {
                    request_id: new_request_id()?,
                    subscription_id: id,
                    reason,
                    confirm_data_deleted: data_deleted,
                }),
            )
            .await?;
            let verb = if data_deleted {
                "terminated"
            } else {
                "terminating"
            };
            report(&r.subscription.unwrap_or_default(), r.queued, verb)?;
        }
        SubscriptionCommand::Cancel { id, reason } => {
            let r = call(
                endpoint,
                client.cancel_subscription(pb::CancelSubscriptionRequest {
                    request_id: new_request_id()?,
                    subscription_id: id,
                    reason,
                }),
            )
            .await?;
            report(&r.subscription.unwrap_or_default(), r.queued, "cancelled")?;
        }
        SubscriptionCommand::ChangeUsers { id, users, reason } => {
            let r = call(
                endpoint,
                client.change_users(pb::ChangeUsersRequest {
                    request_id: new_request_id()?,
                    subscription_id: id,
                    user_count: users,
                    reason,
                }),
            )
            .await?;
            report(&r.subscription.unwrap_or_default(), r.queued, "changed")?;
        }
    }
    Ok(())
}

/// `fedmesh member`: offboarding, by the consortium on the coordinator.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Remove a member from the federation (with the coordinator's certificate): its node is
    /// deregistered, its offers leave the catalogue, every node refuses its identities and
    /// ends its tenancies within a CRL refresh. Revoke its certificates as well.
    Remove {
        /// The member to remove.
        member: String,
        /// Why; shown to the other members.
        #[arg(long)]
        reason: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the members removed from the federation.
    Removed {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `fedmesh member` command against the coordinator.
pub async fn member(connect: &Connection, command: MemberCommand) -> Result<()> {
    use fedmesh_proto::pb::registry_service_client::RegistryServiceClient;
    let mut client = RegistryServiceClient::new(connect.channel()?);
    let endpoint = &connect.endpoint;
    match command {
        MemberCommand::Remove {
            member,
            reason,
            json,
        } => {
            let response = call(
                endpoint,
                client.remove_member(pb::RemoveMemberRequest {
                    member_id: member,
                    reason,
                }),
            )
            .await?;
            if json {
                return json::print("fedmesh.v1.RemoveMemberResponse", &response);
            }
            let removed = response.removed.unwrap_or_default();
            say!(
                "{} removed from the federation ({}); {} offers withdrawn from the catalogue",
                removed.member_id,
                removed.reason,
                response.withdrawn_offers
            );
            say!(
                "every node refuses its identities and ends its tenancies at its next CRL refresh; revoke its certificates with `fedmesh certs revoke` too"
            );
        }
        MemberCommand::Removed { json } => {
            let response = call(endpoint, client.get_crl(pb::GetCrlRequest {})).await?;
            if json {
                let list = pb::GetCrlResponse {
                    removed_members: response.removed_members,
                    ..Default::default()
                };
                return json::print("fedmesh.v1.GetCrlResponse", &list);
            }
            if response.removed_members.is_empty() {
                say!("no member was removed");
            }
            for removed in response.removed_members {
                let at = removed.removed_at.map_or_else(String::new, |t| {
                    jiff::Timestamp::from_second(t.seconds)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                });
                say!("{}\t{}\t{}", removed.member_id, at, removed.reason);
            }
        }
    }
    Ok(())
}
