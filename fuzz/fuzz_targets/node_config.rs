//! The node's configuration: `fedmesh_core::config::Layers` (file text, `FEDMESH_NODE_*`
//! variables, `--set` arguments; see `fedmesh_fuzz::config_layers` for the input) loaded as
//! `NodeConfig`, then `NodeConfig::validate`.
//!
//! Round trip: a configuration that validates, written out as TOML, loads to the same one.
#![no_main]

use fedmesh_fuzz::{assert_config_round_trips, config_layers};
use fedmesh_node::config::{ENV_PREFIX, NodeConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(layers) = config_layers(data, "node.toml", ENV_PREFIX) else {
        return;
    };
    let Ok(config) = layers.load::<NodeConfig>() else {
        return;
    };
    if config.validate().is_ok() {
        assert_config_round_trips(&config, "node.toml");
    }
});
