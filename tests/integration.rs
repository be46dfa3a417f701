//! Every integration test in one binary: each suite is a module here, so the test build links
//! (with the release profile's LTO) once instead of once per suite.

mod common;

mod aof;
mod benchmark_tool;
mod concurrency;
mod dag;
mod models;
mod persistence;
mod protocol_props;
mod server_basics;
mod tls;
mod type_models;
