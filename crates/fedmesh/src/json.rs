//! `--json` output: any message of the contract in protobuf's canonical JSON mapping, with
//! the `.proto` field names (`offer_id`, as in offer files and configuration).

use anyhow::{Context as _, Result};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

/// `message` (of type `full_name`, e.g. `fedmesh.v1.Offer`) as JSON.
pub fn to_json<M: prost::Message>(full_name: &str, message: &M) -> Result<serde_json::Value> {
    let pool = DescriptorPool::decode(fedmesh_proto::FILE_DESCRIPTOR_SET)
        .context("decoding the contract's descriptors")?;
    let descriptor = pool
        .get_message_by_name(full_name)
        .with_context(|| format!("{full_name} is not in the contract"))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    Ok(dynamic.serialize_with_options(serde_json::value::Serializer, &options)?)
}

/// Prints `message` as pretty JSON on stdout.
pub fn print<M: prost::Message>(full_name: &str, message: &M) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&to_json(full_name, message)?)?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use fedmesh_proto::pb;

    use super::*;

    #[test]
    fn messages_render_with_proto_names_and_enum_names() {
        let offer = pb::Offer {
            offer_id: "unistra.otp".into(),
            status: pb::OfferStatus::Pilot as i32,
            ..Default::default()
        };
        let json = to_json("fedmesh.v1.Offer", &offer).unwrap();
        assert_eq!(json["offer_id"], "unistra.otp");
        assert_eq!(json["status"], "OFFER_STATUS_PILOT");
    }
}
