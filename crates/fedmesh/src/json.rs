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
    crate::inert::print_line(&pretty(&to_json(full_name, message)?)?);
    Ok(())
}

/// `value` as pretty JSON, inert on a terminal (see [`inert`]).
pub fn pretty(value: &impl serde::Serialize) -> Result<String> {
    Ok(inert(serde_json::to_string_pretty(value)?))
}

/// `value` as JSON on one line, inert on a terminal (see [`inert`]).
pub fn line(value: &impl serde::Serialize) -> Result<String> {
    Ok(inert(serde_json::to_string(value)?))
}

/// `json` with what serde_json leaves raw escaped as `\uXXXX`: DEL, the C1 controls (U+009B
/// is a CSI to some terminals) and the bidirectional controls; serde_json escapes the C0 ones
/// itself. Such characters can only be inside strings, so the document means the same.
fn inert(json: String) -> String {
    use std::fmt::Write as _;
    let forbidden = |c| fedmesh_core::text::forbidden(c, fedmesh_core::text::Lines::Many);
    if !json.chars().any(forbidden) {
        return json;
    }
    let mut escaped = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if forbidden(c) {
            // All are in the Basic Multilingual Plane: four hex digits. Writing to a String
            // cannot fail.
            let _ = write!(escaped, "\\u{:04x}", u32::from(c));
        } else {
            escaped.push(c);
        }
    }
    escaped
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

    #[test]
    fn every_control_and_bidi_character_is_escaped_and_the_text_survives() {
        let summary = "a\u{1b}]0;pwned\u{7} b\u{7f} c\u{9b}2J d\u{202e}e\n";
        let incident = pb::Incident {
            summary: summary.into(),
            ..Default::default()
        };
        let value = to_json("fedmesh.v1.Incident", &incident).unwrap();
        for text in [pretty(&value).unwrap(), line(&value).unwrap()] {
            assert!(
                !text.chars().any(
                    |c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c)
                ),
                "{text}"
            );
            assert!(text.contains(r"\u001b]0;pwned\u0007"), "{text}");
            assert!(
                text.contains(r"\u007f") && text.contains(r"\u009b") && text.contains(r"\u202e")
            );
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back["summary"], summary);
        }
    }
}
