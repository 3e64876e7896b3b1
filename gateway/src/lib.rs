//! Octo's server (binary `octo`): users and sign-in, the multiplexed WebSocket, the dispatcher
//! that hands commands to the local runner and appends what its harnesses report, and the demo
//! mode. Everything it serves is a read of the log or of a projection of it.

pub mod app;
pub mod auth;
pub mod commands;
pub mod config;
pub mod demo;
pub mod dispatcher;
pub mod fork;
pub mod frames;
pub mod graphql;
pub mod listing;
pub mod rerun;
pub mod server;
pub mod users;
pub mod view;
pub mod ws;

pub use config::ServeConfig;
pub use server::{Server, start};
