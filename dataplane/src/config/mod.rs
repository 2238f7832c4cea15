//! The gateway configuration: gw.toml schema and validation.
