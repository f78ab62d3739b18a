//! Who an operation acts for: the operator at the CLI, the server's own housekeeping, or one HTTP
//! request (its client address and `User-Agent`). A small value the edges build per request and
//! pass to the operations that record it (audit events, a new session's browser and address, the
//! client's share of the hashing queue), so the one shared service is never cloned per request.

use std::net::IpAddr;

use super::AuthService;

/// Who performs an operation, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Cli,
    Api { client: Option<IpAddr> },
}

/// The context of one operation: who acts, and for an HTTP request its `User-Agent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    actor: Actor,
    /// Control characters dropped, at most 256 characters; recorded with the sessions it opens.
    user_agent: Option<String>,
}

impl RequestContext {
    /// The operator at the CLI: recorded as `cli`; an account it adds is "added", not "registered".
    pub fn operator() -> Self {
        Self { actor: Actor::Cli, user_agent: None }
    }

    /// The server's own work after the answer (the mail outbox, housekeeping). The audit log has
    /// always recorded it as the operator's (`cli`).
    pub fn system() -> Self {
        Self::operator()
    }

    /// An HTTP request from `client` (when known) sending `user_agent`.
    pub fn http(client: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent.map(|ua| ua.chars().filter(|c| !c.is_control()).take(256).collect());
        Self { actor: Actor::Api { client }, user_agent }
    }

    pub fn actor(&self) -> Actor {
        self.actor
    }

    /// The HTTP client's address, when there is one and it is known.
    pub fn client(&self) -> Option<IpAddr> {
        match self.actor {
            Actor::Api { client } => client,
            Actor::Cli => None,
        }
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    pub fn is_operator(&self) -> bool {
        self.actor == Actor::Cli
    }
}

impl AuthService {
    /// The address whose share of the hashing queue an operation counts against: the HTTP
    /// client's, when per-client limits are on.
    pub(super) fn hash_client(&self, ctx: &RequestContext) -> Option<IpAddr> {
        if self.policy.client_limits { ctx.client() } else { None }
    }
}
