//! Identities of the federation's actors, carried as the single URI SAN of each certificate:
//!
//! | actor | URI |
//! |---|---|
//! | member node | `spiffe://<federation>/member/<member-id>/node` |
//! | member admin | `spiffe://<federation>/member/<member-id>/admin/<name>` |
//! | member agent | `spiffe://<federation>/member/<member-id>/agent/<name>` |
//! | coordinator | `spiffe://<federation>/coordinator` |
//! | consortium operator | `spiffe://<federation>/operator/<name>` |

use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid identity or identity part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The URI does not start with `spiffe://`.
    #[error("identity `{0}` is not a spiffe:// URI")]
    NotSpiffe(String),
    /// The path is none of the four known shapes.
    #[error(
        "identity `{0}` has an unknown path: expected /coordinator, /operator/<name> or /member/<id>/node|admin/<name>|agent/<name>"
    )]
    UnknownPath(String),
    /// A federation name, member id or admin/agent name breaks the naming rule.
    #[error("{what} `{value}` is invalid: {rule}")]
    BadName {
        /// Which part: `federation`, `member id` or `name`.
        what: &'static str,
        /// The offending value.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
}

const LABEL_RULE: &str =
    "use 1 to 63 characters among a-z, 0-9 and '-', starting with a letter and not ending with '-'";
const FEDERATION_RULE: &str = "use 1 to 253 characters: dot-separated labels of a-z, 0-9 and '-', each starting with a letter or digit";

fn is_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// A member institution's id (`unistra`, `rennes2`): a DNS-label-like name, valid by
/// construction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(String);

impl MemberId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for MemberId {
    type Err = IdentityError;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if !is_label(value) {
            return Err(IdentityError::BadName {
                what: "member id",
                value: value.to_owned(),
                rule: LABEL_RULE,
            });
        }
        Ok(Self(value.to_owned()))
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A federation's name, the trust domain of its identities (`esup.example`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FederationName(String);

impl FederationName {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for FederationName {
    type Err = IdentityError;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let labels_ok = value.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        });
        if value.is_empty() || value.len() > 253 || !labels_ok {
            return Err(IdentityError::BadName {
                what: "federation",
                value: value.to_owned(),
                rule: FEDERATION_RULE,
            });
        }
        Ok(Self(value.to_owned()))
    }
}

impl fmt::Display for FederationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a certificate's holder is allowed to be, before any per-member check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A member institution's node.
    Node,
    /// A member's administrator.
    Admin,
    /// A member's metering or probing job.
    Agent,
    /// The federation's coordinator.
    Coordinator,
    /// A person of the consortium who runs the federation: sees every member's figures on the
    /// coordinator and its dashboard.
    Operator,
}

impl Role {
    /// Every role, for tables and tests.
    pub const ALL: [Role; 5] = [
        Role::Node,
        Role::Admin,
        Role::Agent,
        Role::Coordinator,
        Role::Operator,
    ];

    /// The lowercase name used in URIs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Coordinator => "coordinator",
            Role::Operator => "operator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who the holder of an identity is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A member's node.
    Node {
        /// The member running it.
        member: MemberId,
    },
    /// A member's administrator.
    Admin {
        /// The member the admin works for.
        member: MemberId,
        /// The admin's name (a label).
        name: String,
    },
    /// A member's agent.
    Agent {
        /// The member the agent reports for.
        member: MemberId,
        /// The agent's name (a label).
        name: String,
    },
    /// The coordinator.
    Coordinator,
    /// A consortium operator.
    Operator {
        /// The operator's name (a label).
        name: String,
    },
}

/// A verified actor of a federation: its federation and who it is there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The federation (trust domain) the identity belongs to.
    pub federation: FederationName,
    /// Who the holder is.
    pub principal: Principal,
}

impl Identity {
    /// A member's node identity.
    pub fn node(federation: FederationName, member: MemberId) -> Self {
        Self {
            federation,
            principal: Principal::Node { member },
        }
    }

    /// The coordinator's identity.
    pub fn coordinator(federation: FederationName) -> Self {
        Self {
            federation,
            principal: Principal::Coordinator,
        }
    }

    /// The holder's role.
    pub fn role(&self) -> Role {
        match self.principal {
            Principal::Node { .. } => Role::Node,
            Principal::Admin { .. } => Role::Admin,
            Principal::Agent { .. } => Role::Agent,
            Principal::Coordinator => Role::Coordinator,
            Principal::Operator { .. } => Role::Operator,
        }
    }

    /// The member the holder belongs to; `None` for the coordinator and operators.
    pub fn member(&self) -> Option<&MemberId> {
        match &self.principal {
            Principal::Node { member }
            | Principal::Admin { member, .. }
            | Principal::Agent { member, .. } => Some(member),
            Principal::Coordinator | Principal::Operator { .. } => None,
        }
    }

    /// The admin's, agent's or operator's name; `None` for nodes and the coordinator.
    pub fn name(&self) -> Option<&str> {
        match &self.principal {
            Principal::Admin { name, .. }
            | Principal::Agent { name, .. }
            | Principal::Operator { name } => Some(name),
            Principal::Node { .. } | Principal::Coordinator => None,
        }
    }

    /// Whether the holder runs the federation (the coordinator itself or a consortium
    /// operator): it sees every member's figures.
    pub fn is_consortium(&self) -> bool {
        matches!(self.role(), Role::Coordinator | Role::Operator)
    }

    /// The identity as its URI.
    pub fn to_uri(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}", self.federation)?;
        match &self.principal {
            Principal::Coordinator => f.write_str("/coordinator"),
            Principal::Node { member } => write!(f, "/member/{member}/node"),
            Principal::Admin { member, name } => write!(f, "/member/{member}/admin/{name}"),
            Principal::Agent { member, name } => write!(f, "/member/{member}/agent/{name}"),
            Principal::Operator { name } => write!(f, "/operator/{name}"),
        }
    }
}

fn parse_name(value: &str) -> Result<String, IdentityError> {
    if !is_label(value) {
        return Err(IdentityError::BadName {
            what: "name",
            value: value.to_owned(),
            rule: LABEL_RULE,
        });
    }
    Ok(value.to_owned())
}

impl FromStr for Identity {
    type Err = IdentityError;
    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let rest = uri
            .strip_prefix("spiffe://")
            .ok_or_else(|| IdentityError::NotSpiffe(uri.to_owned()))?;
        let (federation, path) = rest
            .split_once('/')
            .ok_or_else(|| IdentityError::UnknownPath(uri.to_owned()))?;
        let federation: FederationName = federation.parse()?;
        let segments: Vec<&str> = path.split('/').collect();
        let principal = match segments.as_slice() {
            ["coordinator"] => Principal::Coordinator,
            ["operator", name] => Principal::Operator {
                name: parse_name(name)?,
            },
            ["member", member, "node"] => Principal::Node {
                member: member.parse()?,
            },
            ["member", member, "admin", name] => Principal::Admin {
                member: member.parse()?,
                name: parse_name(name)?,
            },
            ["member", member, "agent", name] => Principal::Agent {
                member: member.parse()?,
                name: parse_name(name)?,
            },
            _ => return Err(IdentityError::UnknownPath(uri.to_owned())),
        };
        Ok(Self {
            federation,
            principal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_round_trips() {
        for uri in [
            "spiffe://esup.example/coordinator",
            "spiffe://esup.example/member/unistra/node",
            "spiffe://esup.example/member/rennes2/admin/alice",
            "spiffe://esup.example/member/rouen/agent/probe-1",
            "spiffe://esup.example/operator/alice",
        ] {
            let identity: Identity = uri.parse().unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert_eq!(identity.to_uri(), uri);
        }
    }

    #[test]
    fn roles_members_and_names_are_extracted() {
        let admin: Identity = "spiffe://fed/member/rennes2/admin/alice".parse().unwrap();
        assert_eq!(admin.role(), Role::Admin);
        assert_eq!(admin.member().map(MemberId::as_str), Some("rennes2"));
        assert_eq!(admin.name(), Some("alice"));
        let coordinator: Identity = "spiffe://fed/coordinator".parse().unwrap();
        assert_eq!(coordinator.role(), Role::Coordinator);
        assert_eq!(coordinator.member(), None);
    }

    #[test]
    fn malformed_identities_are_rejected_with_the_reason() {
        let cases = [
            ("https://fed/coordinator", "not a spiffe"),
            ("spiffe://fed", "unknown path"),
            ("spiffe://fed/member/unistra", "unknown path"),
            ("spiffe://fed/member/unistra/node/extra", "unknown path"),
            ("spiffe://fed/member/Unistra/node", "member id `Unistra`"),
            ("spiffe://fed/member/unistra/admin/", "name ``"),
            ("spiffe://fed/member/-x/node", "member id `-x`"),
            ("spiffe://Fed/coordinator", "federation `Fed`"),
            ("spiffe://fed/member/unistra/root", "unknown path"),
            ("spiffe://fed/operator", "unknown path"),
            ("spiffe://fed/operator/Alice", "name `Alice`"),
        ];
        for (uri, expected) in cases {
            let err = uri.parse::<Identity>().expect_err(uri).to_string();
            assert!(err.contains(expected), "{uri}: `{err}` lacks `{expected}`");
        }
    }

    #[test]
    fn member_ids_follow_the_label_rule() {
        for good in ["a", "unistra", "rennes2", "univ-lorraine", &"a".repeat(63)] {
            assert!(good.parse::<MemberId>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "2univ",
            "univ-",
            "UNIV",
            "un_iv",
            "un.iv",
            &"a".repeat(64),
        ] {
            assert!(bad.parse::<MemberId>().is_err(), "{bad}");
        }
    }
}
