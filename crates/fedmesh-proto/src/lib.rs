//! The fedmesh v1 contract (`proto/fedmesh/v1/`), generated at build time.
//!
//! - [`pb`]: messages, enums, clients (`*_client`) and servers (`*_server`) of package
//!   `fedmesh.v1`.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, served by reflection so that grpcurl and
//!   other clients can discover the API.
#![forbid(unsafe_code)]

mod generated {
    #![allow(unreachable_pub, missing_debug_implementations, clippy::all)]
    #[rustfmt::skip]
    pub mod fedmesh_v1 {
        include!(concat!(env!("OUT_DIR"), "/fedmesh.v1.rs"));
    }
}

/// Package `fedmesh.v1`.
pub mod pb {
    pub use crate::generated::fedmesh_v1::*;
}

impl pb::Incident {
    /// The incident with its comment list rebuilt from its events, in their order. The list is
    /// derived: each comment is the `comment` of one event. Nodes store and journal incidents
    /// without it ([`pb::Incident::without_comment_list`]) and rebuild it for whoever reads
    /// one, clients and followers alike.
    #[must_use]
    pub fn with_comment_list(mut self) -> Self {
        self.comments = self
            .events
            .iter()
            .filter_map(|e| e.comment.clone())
            .collect();
        self
    }

    /// The incident without its comment list, each comment kept once, in its event.
    #[must_use]
    pub fn without_comment_list(mut self) -> Self {
        self.comments.clear();
        self
    }
}

/// The encoded `FileDescriptorSet` of package `fedmesh.v1`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/fedmesh_v1_descriptor.bin"));

/// Fully qualified names of the services a member node serves.
pub const NODE_SERVICES: &[&str] = &[
    "fedmesh.v1.NodeService",
    "fedmesh.v1.OfferService",
    "fedmesh.v1.SubscriptionService",
    "fedmesh.v1.UsageService",
    "fedmesh.v1.IncidentService",
    "fedmesh.v1.JournalService",
    "fedmesh.v1.CatalogueService",
    "fedmesh.v1.ReportService",
];

/// Fully qualified names of the services the coordinator serves.
pub const COORDINATOR_SERVICES: &[&str] = &[
    "fedmesh.v1.RegistryService",
    "fedmesh.v1.CatalogueService",
    "fedmesh.v1.MetricsService",
];

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn descriptor_set_decodes_and_holds_every_service() {
        let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET)
            .unwrap_or_else(|e| panic!("descriptor set does not decode: {e}"));
        let services: Vec<String> = set
            .file
            .iter()
            .filter(|f| f.package() == "fedmesh.v1")
            .flat_map(|f| f.service.iter().map(|s| format!("fedmesh.v1.{}", s.name())))
            .collect();
        for expected in NODE_SERVICES.iter().chain(COORDINATOR_SERVICES) {
            assert!(
                services.iter().any(|s| s == expected),
                "{expected} missing from the descriptor set (have {services:?})"
            );
        }
    }
}
