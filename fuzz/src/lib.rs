//! What the fuzz targets of `fuzz_targets/` share: the fixed world a request is checked
//! against (a provider, its published offer, tenancies, a clock), and the input format of the
//! targets that replay several requests.
//!
//! Inputs of the request targets are protobuf messages of `fedmesh_proto::pb`, decoded with
//! `prost` from the fuzzer's bytes exactly as tonic decodes them off the wire. A target that
//! replays a sequence of requests reads *steps*: a selector byte (which request, which party)
//! followed by one length-delimited message, see [`Steps`]. `examples/seeds.rs` writes valid
//! inputs of every target in these formats to `seeds/`.

use std::sync::OnceLock;

use fedmesh_core::MemberId;
use fedmesh_core::calendar::Calendar;
use fedmesh_core::config::Layers;
use fedmesh_core::span::Secs;
use fedmesh_proto::pb;
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The instant every target treats as now: 2026-11-16T10:00:00Z. A fixed clock keeps a crash
/// reproducible from its input alone.
pub const NOW: Secs = 1_794_823_200;

/// The federation of the fixtures.
pub const FEDERATION: &str = "esup.example";
/// The providing member: the node whose RPCs the targets stand for.
pub const PROVIDER: &str = "rennes2";
/// A subscribing member.
pub const SUBSCRIBER: &str = "unistra";

/// The offer file the fixture offer is published from.
pub const OFFER_FILE: &str = include_str!("../../examples/offers/collaboration.toml");

/// `t` as a protobuf timestamp.
pub fn ts(seconds: Secs) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// The providing member's id.
pub fn provider() -> MemberId {
    PROVIDER.parse().expect("a valid member id")
}

/// The subscribing member's id.
pub fn subscriber() -> MemberId {
    SUBSCRIBER.parse().expect("a valid member id")
}

/// The identity URI of a member's admin (who calls most RPCs).
pub fn admin_uri(member: &str) -> String {
    format!("spiffe://{FEDERATION}/member/{member}/admin/alice")
}

/// The identity URI of a member's node.
pub fn node_uri(member: &str) -> String {
    format!("spiffe://{FEDERATION}/member/{member}/node")
}

/// The provider's offer as its node stores it: `examples/offers/collaboration.toml`, parsed,
/// validated and published as `rennes2.collab`.
pub fn offer() -> &'static pb::Offer {
    static OFFER: OnceLock<pb::Offer> = OnceLock::new();
    OFFER.get_or_init(|| {
        let parsed = fedmesh::offer_file::parse_offer_file(OFFER_FILE).expect("example parses");
        let valid =
            fedmesh_core::offer::validate(parsed, &provider()).expect("example offer is valid");
        fedmesh_core::offer::publish(None, valid, &provider(), "", "1".into(), ts(NOW - 86_400))
            .expect("a first publish creates")
            .offer
    })
}

/// The fixture offer's calendar, as the node builds it for figures and SLA clocks.
pub fn calendar() -> &'static Calendar {
    static CALENDAR: OnceLock<Calendar> = OnceLock::new();
    CALENDAR.get_or_init(|| fedmesh_grpc::figures::calendar_of(offer()))
}

/// The fixture offer's engagement.
pub fn engagement() -> &'static pb::ServiceEngagement {
    offer().engagement.as_ref().expect("a valid offer has one")
}

/// A tenancy on the fixture offer in `state`, of `member`, whose tenant (when it has one) is
/// named after the member.
pub fn tenancy(member: &str, state: pb::SubscriptionState) -> pb::Subscription {
    let served = fedmesh_core::usage::has_tenant(state as i32);
    pb::Subscription {
        subscription_id: format!("{PROVIDER}.s-{member}"),
        offer_id: offer().offer_id.clone(),
        provider_member_id: PROVIDER.into(),
        subscriber_member_id: member.into(),
        state: state as i32,
        tenant_id: if served { member.into() } else { String::new() },
        tenant_url: if served {
            fedmesh_core::offer::tenant_url(offer(), member)
        } else {
            String::new()
        },
        user_count: 1200,
        contact_email: format!("dsi@{member}.example"),
        accepted_terms_version: offer().terms_version.clone(),
        request_id: format!("req-{member}"),
        create_time: Some(ts(NOW - 200 * 86_400)),
        update_time: Some(ts(NOW - 100 * 86_400)),
        history: vec![
            pb::SubscriptionStateChange {
                from_state: pb::SubscriptionState::Unspecified as i32,
                to_state: pb::SubscriptionState::Requested as i32,
                change_time: Some(ts(NOW - 200 * 86_400)),
                actor: admin_uri(member),
                actor_member_id: member.into(),
                reason: String::new(),
            },
            pb::SubscriptionStateChange {
                from_state: pb::SubscriptionState::Requested as i32,
                to_state: state as i32,
                change_time: Some(ts(NOW - 100 * 86_400)),
                actor: admin_uri(PROVIDER),
                actor_member_id: PROVIDER.into(),
                reason: String::new(),
            },
        ],
        ..Default::default()
    }
}

/// The tenancies of the fixture offer: active, suspended, terminated, and one still requested
/// (which has no tenant).
pub fn tenancies() -> &'static [pb::Subscription] {
    static TENANCIES: OnceLock<Vec<pb::Subscription>> = OnceLock::new();
    TENANCIES.get_or_init(|| {
        use pb::SubscriptionState as S;
        vec![
            tenancy(SUBSCRIBER, S::Active),
            tenancy("rouen", S::Active),
            tenancy("lorraine", S::Suspended),
            tenancy("nantes", S::Terminated),
            tenancy("lille", S::Requested),
        ]
    })
}

/// An input read as steps: a selector byte, then one length-delimited protobuf message.
#[derive(Debug)]
pub struct Steps<'a> {
    rest: &'a [u8],
}

impl<'a> Steps<'a> {
    /// Steps over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// The next selector byte, `None` at the end of the input.
    pub fn selector(&mut self) -> Option<u8> {
        let (&first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first)
    }

    /// The next message, `None` when the bytes left do not start with one (the input ends
    /// there: a gRPC server would refuse the whole request).
    pub fn message<M: Message + Default>(&mut self) -> Option<M> {
        match M::decode_length_delimited(&mut self.rest) {
            Ok(message) => Some(message),
            Err(_) => {
                self.rest = &[];
                None
            }
        }
    }
}

/// One step in the format [`Steps`] reads: what the seed generator writes.
pub fn step(selector: u8, message: &impl Message) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend(message.encode_length_delimited_to_vec());
    out
}

/// A single-message input with a selector byte in front (the targets that take one of
/// several request types).
pub fn selected(selector: u8, message: &impl Message) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend(message.encode_to_vec());
    out
}

/// A configuration input: the file's text, then optionally a NUL byte and overrides, one a
/// line: `FEDMESH_...=value` lines are environment variables, any other line a `--set`
/// argument. `None` when the file is not UTF-8.
pub fn config_layers(data: &[u8], file_name: &str, env_prefix: &str) -> Option<Layers> {
    let text = std::str::from_utf8(data).ok()?;
    let (file, overrides) = text.split_once('\0').unwrap_or((text, ""));
    let mut env = Vec::new();
    let mut set = Vec::new();
    for line in overrides.lines().take(8) {
        match line.split_once('=') {
            Some((name, value)) if name.starts_with("FEDMESH_") => env.push((name, value)),
            _ => set.push(line),
        }
    }
    Layers::new()
        .file(file_name, file)
        .env(env_prefix, env)
        .set_args(set)
        .ok()
}

/// Round trip of a loaded configuration: written out as TOML and loaded again, it is the same
/// configuration. Skipped when it holds a NaN, which never equals itself.
pub fn assert_config_round_trips<T: Serialize + DeserializeOwned>(config: &T, file_name: &str) {
    let Ok(table) = toml::Table::try_from(config) else {
        return;
    };
    if has_nan(&toml::Value::Table(table.clone())) {
        return;
    }
    let text = toml::to_string(config).expect("a table serializes");
    let reloaded: T = Layers::new()
        .file(file_name, text.as_str())
        .load()
        .unwrap_or_else(|e| panic!("written config does not load again: {e}\n{text}"));
    let again = toml::Table::try_from(&reloaded).expect("it serialized before");
    assert_eq!(again, table, "config changes across a round trip:\n{text}");
}

fn has_nan(value: &toml::Value) -> bool {
    match value {
        toml::Value::Float(f) => f.is_nan(),
        toml::Value::Array(items) => items.iter().any(has_nan),
        toml::Value::Table(table) => table.values().any(has_nan),
        _ => false,
    }
}
