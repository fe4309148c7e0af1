//! The protocol, free of HTTP framework types: parameter parsing, client
//! registration and authentication, scopes, resources, redirect URIs, and
//! the token endpoint with one module per grant.

pub mod authorize;
pub mod backchannel;
pub mod client;
pub mod client_auth;
pub mod clients;
pub mod form;
pub mod grant;
pub mod introspection;
pub mod login;
pub mod logout;
pub mod redirect_uri;
pub mod resource;
pub mod revocation;
pub mod revoked;
pub mod scope;
pub mod token_endpoint;
pub mod userinfo;
pub mod users;
