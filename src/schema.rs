//! JSON Schema of the configuration format, generated from the raw model.
//!
//! Invariant: the committed `schemas/kvmtune.schema.json` equals [`config_schema_json`]'s output
//! (a test fails when it is stale).

use crate::config::raw::RawConfig;

/// The schema as pretty JSON with a trailing newline.
pub fn config_schema_json() -> String {
    let schema = schemars::schema_for!(RawConfig);
    serde_json::to_string_pretty(&schema).expect("schema serializes") + "\n"
}
