//! Black-box tests over real HTTP, on SQLite and PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

mod admin;
mod audit;
mod backchannel;
mod browser;
mod cli;
mod crash;
mod discovery;
mod faults;
mod keys;
mod limits;
mod login;
mod login_errors;
mod logout;
mod revocation;
mod store;
mod token;
mod upstream;
mod users;
