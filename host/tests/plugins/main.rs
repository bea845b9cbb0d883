//! Wasm plugins in the proxy: the runtime, configuration, grants, reload, the shipped
//! plugins in each guest language, hostile guests, and `interpose plugin`. One test
//! binary per subject (each links the whole host, wasmtime included); each file is a
//! module.

#[path = "../http_support/mod.rs"]
mod http_support;
#[path = "../support/mod.rs"]
mod support;

mod plugin_compat;
mod plugin_config;
mod plugin_dev;
mod plugin_grants;
mod plugin_guard_and_cache;
mod plugin_hostile;
mod plugin_hostile_guests;
mod plugin_http;
mod plugin_languages;
mod plugin_moderation;
mod plugin_oci;
mod plugin_reload;
mod plugin_runtime;
mod plugin_servers;
mod plugin_startup;
mod plugin_store;
mod plugin_trust;
mod plugins;
