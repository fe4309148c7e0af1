//! HTTP: routes, extractors and response shaping (axum only: no SQL, no
//! crypto). `public` is the OAuth/OIDC surface, `admin` the admin API.

pub mod admin;
mod browser;
mod cors;
mod middleware;
pub mod public;
