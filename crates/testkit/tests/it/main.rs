//! Integration tests over HTTP against a real server on a random loopback
//! port, each run on SQLite and on PostgreSQL.

mod authorization;
mod authorization_failures;
mod black_box;
mod discovery;
mod dpop;
mod fetching;
mod governance;
mod input;
mod key_rotation;
mod management;
mod mcp_clients;
mod mcp_sdk;
mod metadata_documents;
mod node;
mod node_client;
mod real_client;
mod registration;
mod replicas;
mod restart;
mod software_statement_keys;
mod software_statements;
mod token;
mod users;
mod workloads;
