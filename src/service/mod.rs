//! All of userauth's behaviour: registration, login, sessions, logout, reset tokens, password
//! changes and listing. It knows nothing of HTTP or the terminal; the edges map [`AuthError`].

pub mod account;
pub mod admin;
pub mod audit;
pub mod db;
pub mod domain;
pub mod fast_read;
pub mod hashing;
pub mod import;
pub mod key;
pub mod key_store;
pub mod mail;
pub mod metrics;
mod names;
pub mod outbox;
pub mod passkeys;
pub mod password_policy;
mod reauth;
pub mod reset_link;
pub mod second_factor;
mod throttle;
pub mod verification;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use sea_orm::sea_query::{Expr, LikeExpr, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    ExprTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use crate::entity::{self, reset_token, session, user};
use audit::{EventKind, NewEvent};
use domain::{Email, EmailError, Password, PasswordError, SecretToken, presented_token_digest};
use hashing::{HashTicket, Hasher};
use throttle::Kind;

/// Every way a service call can fail. The HTTP API maps these to status codes, the CLI to exit codes.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid email: {0}")]
    InvalidEmail(#[from] EmailError),
    #[error("invalid password: {0}")]
    InvalidPassword(#[from] PasswordError),
    #[error("a user with this email already exists")]
    UserExists,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("too many failed logins for this account; try again in {retry_after_secs} seconds")]
    AccountLocked { retry_after_secs: u64 },
    #[error("too many reset requests for this account; try again in {retry_after_secs} seconds")]
    TooManyResetRequests { retry_after_secs: u64 },
    #[error("no user with this email")]
    UserNotFound,
    #[error("the reset token is unknown, expired or already used")]
    InvalidResetToken,
    #[error("no valid session")]
    NotAuthenticated,
    #[error("no such session among yours")]
    SessionNotFound,
    #[error("the server is busy; try again in a second")]
    Busy,
    #[error("the email address is not confirmed yet")]
    EmailNotConfirmed,
    #[error("the confirmation token is unknown, expired or already used")]
    InvalidVerificationToken,
    #[error("mail: {0}")]
    Mail(#[from] mail::MailError),
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the passkey credential was not accepted")]
    InvalidPasskey,
    #[error("the passkey was not accepted")]
    PasskeyLoginFailed,
    #[error("no such passkey among yours")]
    PasskeyNotFound,
    #[error("invalid passkey name: {0}")]
    InvalidPasskeyName(String),
    #[error("passkeys need public_url with a domain name")]
    PasskeysUnavailable,
    #[error("this login needs its second factor first")]
    SecondFactorRequired,
    #[error("the code is wrong, expired or already used")]
    InvalidCode,
    #[error("two-factor authentication is already enabled")]
    AlreadyEnabled,
    #[error("two-factor authentication is not enabled")]
    NotEnabled,
    #[error("there is no two-factor enrolment to confirm")]
    NothingToConfirm,
}

impl AuthError {
    /// True when the database could not be reached (as opposed to a query failing): the edges
    /// answer 503, a state that passes once the database is back.
    pub fn is_unavailable(&self) -> bool {
        use sea_orm::RuntimeErr;
        use sea_orm::sqlx::Error as Sqlx;
        match self {
            AuthError::Database(DbErr::Conn(_) | DbErr::ConnectionAcquire(_)) => true,
            AuthError::Database(DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) => {
                matches!(**e, Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed)
            }
            _ => false,
        }
    }
}

/// Who performs an operation, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Cli,
    Api { client: Option<IpAddr> },
}

/// The rules of api.md §3, as configured.
#[derive(Debug, Clone)]
pub struct Policy {
    pub bcrypt_cost: u32,
    pub password_min_length: usize,
    pub session_idle_timeout: Duration,
    pub session_absolute_timeout: Duration,
    pub reset_token_ttl: Duration,
    pub login_max_failures: u32,
    pub login_failure_window: Duration,
    pub reset_max_requests: u32,
    pub reset_window: Duration,
    /// How many bcrypt computations may run at once.
    pub hash_concurrency: usize,
    /// How many requests may wait for one of them.
    pub hash_queue_max: usize,
    pub reset_delivery: mail::ResetDelivery,
    /// Whether per-client limits are on (`client_rate_per_minute > 0`).
    pub client_limits: bool,
    /// Whether account events are written to the audit log.
    pub audit: bool,
    pub audit_retention: Duration,
    /// The operator's common-password list (api.md §13); the built-in list is always on.
    pub blocklist: password_policy::Blocklist,
    pub email_verification: verification::EmailVerification,
    pub verification_ttl: Duration,
    /// How long a pending login (password right, second factor owed) lives (api.md §10).
    pub second_factor_timeout: Duration,
}

impl Policy {
    pub fn parse_password(&self, raw: impl Into<String>) -> Result<Password, PasswordError> {
        Password::parse(raw.into(), self.password_min_length)
    }

    /// A password about to be *set* for the account `email`: the length rules, then the common
    /// passwords and the email itself (api.md §13). Existing hashes are never re-checked.
    pub fn parse_new_password(&self, raw: impl Into<String>, email: &str) -> Result<Password, PasswordError> {
        let password = self.parse_password(raw)?;
        if self.blocklist.refuses(password.expose(), email) {
            return Err(PasswordError::TooCommon);
        }
        Ok(password)
    }

    /// `last_seen_at` is written at most this often per session, so that resolving a session is
    /// normally a read. A tenth of the idle timeout keeps the idle expiry accurate to 10%.
    fn touch_interval(&self) -> Duration {
        (self.session_idle_timeout / 10).min(Duration::from_secs(60))
    }
}

/// What callers may see of a user: never the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<user::Model> for UserView {
    fn from(m: user::Model) -> Self {
        Self { id: m.id, email: m.email, created_at: m.created_at, last_login_at: m.last_login_at }
    }
}

/// A session just created by a login. `token` goes to the client (the cookie) and nowhere else.
#[derive(Debug)]
pub struct NewSession {
    pub token: SecretToken,
    pub user: UserView,
    pub expires_at: DateTime<Utc>,
    /// Empty for a full session. Otherwise `token` is a pending login's (api.md §10), which
    /// only the second step can finish with one of these factors.
    pub second_factor: Vec<&'static str>,
}

/// What a self-service reset request did (api.md §1 and §7).
#[derive(Debug)]
pub enum ResetRequest {
    /// `reset_delivery = "response"`: the token, for the answer.
    Token(IssuedResetToken),
    /// `reset_delivery = "email"`: a message is on its way if the address has an account.
    Emailed,
}

#[derive(Debug)]
pub struct IssuedResetToken {
    pub email: String,
    pub token: SecretToken,
    pub expires_at: DateTime<Utc>,
}

/// Which users `list_users` returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    /// Case-insensitive substring of the email.
    pub email_contains: Option<String>,
}

/// One row of `user list`.
#[derive(Debug, Clone, FromQueryResult)]
pub struct UserSummary {
    pub id: Uuid,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub active_sessions: i64,
    /// `None`: not confirmed yet (api.md §13).
    pub email_confirmed_at: Option<DateTime<Utc>>,
    /// 1 when TOTP is on (api.md §10's `factors`).
    pub totp_factors: i64,
    /// How many passkeys the user has (api.md §11; `factors` shows `passkey`).
    pub passkeys: i64,
}

#[derive(Clone)]
pub struct AuthService {
    db: DatabaseConnection,
    policy: Arc<Policy>,
    hasher: Hasher,
    /// The session lookup outside the ORM, for SQLite files and PostgreSQL (see `fast_read`).
    fast: Option<Arc<fast_read::SessionReader>>,
    clock: Clock,
    /// Who is acting: the operator's CLI, or an HTTP client (set per request by the edge with
    /// [`AuthService::for_client`]). Recorded in the audit log; an HTTP client's share of the
    /// hashing queue is bounded.
    actor: Actor,
    /// The `User-Agent` of the HTTP request being served, recorded with the sessions it opens.
    user_agent: Option<String>,
    mailer: Option<mail::Mailer>,
    metrics: Option<Arc<metrics::Metrics>>,
    /// The server key (api.md §14). `new` starts with a random one so the service is always keyed;
    /// every command sets the configured key with [`AuthService::with_key`].
    key: Arc<key::ServerKey>,
    /// The WebAuthn relying party (api.md §11); `None`: passkeys are unavailable.
    passkeys: Option<Arc<passkeys::RelyingParty>>,
    /// How the sessions this service opens log in, as `login_succeeded` records it.
    login_method: &'static str,
}

/// A live session as `authenticate` sees it.
struct ActiveSession {
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user: UserView,
}

/// Timestamps as the API and the CLI show them: RFC 3339, UTC, whole seconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Where the service reads the time: the system clock, or one a test moves forward instead of
/// sleeping through timeouts.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Self(Arc::new(Utc::now))
    }

    pub fn from_fn(f: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl AuthService {
    pub fn new(db: DatabaseConnection, policy: Policy) -> Self {
        let hasher = Hasher::new(policy.bcrypt_cost, policy.hash_concurrency, policy.hash_queue_max);
        Self {
            db,
            policy: Arc::new(policy),
            hasher,
            fast: None,
            clock: Clock::system(),
            actor: Actor::Cli,
            user_agent: None,
            mailer: None,
            metrics: None,
            // A failing OS random source leaves nothing safe to do: fail loudly rather than run unkeyed.
            key: Arc::new(key::ServerKey::generate().expect("the operating system's random source failed")),
            passkeys: None,
            login_method: "password",
        }
    }

    /// The same service using the configured server key.
    pub fn with_key(mut self, key: Arc<key::ServerKey>) -> Self {
        self.key = key;
        self
    }

    pub fn key(&self) -> &key::ServerKey {
        &self.key
    }

    /// The same service sending mail through `mailer` (reset links, `user reset --send`).
    pub fn with_mailer(mut self, mailer: Option<mail::Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    pub fn mailer(&self) -> Option<&mail::Mailer> {
        self.mailer.as_ref()
    }

    /// The same service counting what it does into `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<metrics::Metrics>>) -> Self {
        self.hasher.set_metrics(metrics.clone());
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> Option<&Arc<metrics::Metrics>> {
        self.metrics.as_ref()
    }

    fn count(&self, f: impl FnOnce(&metrics::Metrics)) {
        if let Some(m) = &self.metrics {
            f(m);
        }
    }

    /// The Prometheus exposition, with the hashing queue's depth and the mail counts read now.
    pub fn render_metrics(&self) -> Option<String> {
        let emails = self.mailer.as_ref().map(|m| {
            use std::sync::atomic::Ordering::Relaxed;
            let s = m.stats();
            (s.sent.load(Relaxed), s.failed.load(Relaxed) + s.dropped.load(Relaxed))
        });
        self.metrics.as_ref().map(|m| m.render(self.hasher.queue_depth(), emails))
    }

    /// The same service acting for an HTTP request from `client` (a cheap clone).
    pub fn for_client(&self, client: Option<IpAddr>) -> Self {
        Self { actor: Actor::Api { client }, ..self.clone() }
    }

    /// The same, recording `user_agent` (cut to 256 characters) with the sessions it opens.
    pub fn with_user_agent(mut self, user_agent: Option<&str>) -> Self {
        self.user_agent = user_agent.map(|ua| ua.chars().filter(|c| !c.is_control()).take(256).collect());
        self
    }

    /// The address whose share of the hashing queue a request counts against: the HTTP client's,
    /// when per-client limits are on.
    fn hash_client(&self) -> Option<IpAddr> {
        match self.actor {
            Actor::Api { client } if self.policy.client_limits => client,
            _ => None,
        }
    }

    /// The same service reading the time from `clock` (tests move it instead of sleeping).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Resolves sessions with the session reader (`fast_read`, the server's hot path) when `url`
    /// names a SQLite file or a PostgreSQL database; an in-memory SQLite database keeps the ORM path.
    pub fn with_fast_session_reads(mut self, url: &db::DatabaseUrl) -> Self {
        match url.kind() {
            db::DatabaseKind::SqliteFile { path, .. } => {
                self.fast = Some(Arc::new(fast_read::SessionReader::sqlite(path.clone())));
            }
            // The backend is checked too: `get_postgres_connection_pool` panics on any other.
            db::DatabaseKind::Postgres { .. } if self.db.get_database_backend() == sea_orm::DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                self.fast = Some(Arc::new(fast_read::SessionReader::postgres(pool)));
            }
            _ => {}
        }
        self
    }

    /// How many session lookups fell back from the fast path to the ORM (`None`: no fast path).
    pub fn fast_read_fallbacks(&self) -> Option<u64> {
        self.fast.as_ref().map(|f| f.fallbacks())
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Readiness: the database answers a trivial query.
    pub async fn health(&self) -> Result<(), AuthError> {
        self.db.execute_unprepared("SELECT 1").await?;
        Ok(())
    }

    pub async fn register(&self, email: &str, password: &str) -> Result<UserView, AuthError> {
        // A place in the hashing queue first: a flood is refused before it costs anything else.
        let ticket = self.hasher.admit(self.hash_client())?;
        let email = Email::parse(email)?;
        let password = self.policy.parse_new_password(password, email.as_str())?;
        self.create_user(&ticket, &email, &password).await
    }

    async fn create_user(
        &self,
        ticket: &HashTicket,
        email: &Email,
        password: &Password,
    ) -> Result<UserView, AuthError> {
        // Cheap early answer for the common case; the unique index settles races.
        if self.find_user(email).await?.is_some() {
            return Err(AuthError::UserExists);
        }
        let hash = ticket.hash(password).await?;
        let at = self.now();
        let model = user::ActiveModel {
            id: Set(Uuid::new_v4()),
            email: Set(email.as_str().to_owned()),
            password_hash: Set(hash),
            created_at: Set(at),
            updated_at: Set(at),
            last_login_at: Set(None),
            // Through this path (verification off, or the operator) the address counts as confirmed.
            email_confirmed_at: Set(Some(at)),
            credential_version: Set(0),
        };
        let txn = self.db.begin().await?;
        let user = match model.insert(&txn).await {
            Ok(m) => m,
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(AuthError::UserExists);
            }
            Err(e) => return Err(e.into()),
        };
        // Through the API an account is registered; from the CLI the operator adds it.
        let kind = if self.actor == Actor::Cli { EventKind::UserAdded } else { EventKind::Registered };
        self.audit_in(&txn, vec![NewEvent::new(kind, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        self.count(|m| m.registration());
        Ok(user.into())
    }

    async fn find_user(&self, email: &Email) -> Result<Option<user::Model>, AuthError> {
        Ok(user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(&self.db).await?)
    }

    /// Checks credentials and opens a new session. Unknown emails and wrong passwords cost the
    /// same bcrypt verification and the same throttle write, and fail identically.
    ///
    /// Order matters (api.md §6): a place in the hashing queue (503 when full), then the attempt
    /// is counted against the account in one atomic statement (429 when the window is used up),
    /// and only then does bcrypt run; so at most `login_max_failures` wrong passwords are ever
    /// verified per window, however many requests race.
    pub async fn login(&self, email: &str, password: &str) -> Result<NewSession, AuthError> {
        let result = self.login_checked(email, password).await;
        let outcome = match &result {
            Ok(_) => Some(metrics::LoginResult::Success),
            Err(AuthError::InvalidCredentials) => Some(metrics::LoginResult::Invalid),
            Err(AuthError::AccountLocked { .. }) => Some(metrics::LoginResult::Locked),
            Err(AuthError::Busy) => Some(metrics::LoginResult::Busy),
            Err(_) => None,
        };
        if let Some(outcome) = outcome {
            self.count(|m| m.login(outcome));
        }
        result
    }

    async fn login_checked(&self, email: &str, password: &str) -> Result<NewSession, AuthError> {
        let ticket = self.hasher.admit(self.hash_client())?;
        let Ok(email) = Email::parse(email) else {
            // No account can have this address; still spend the verification so that
            // malformed input is not a faster path.
            ticket.verify(password, None).await?;
            return Err(AuthError::InvalidCredentials);
        };
        let (max, window) = (self.policy.login_max_failures, self.policy.login_failure_window);
        if let Some(retry_after_secs) =
            throttle::reserve(&self.db, self.now(), Kind::Login, email.as_str(), max, window).await?
        {
            // One event per account per window: the first refusal marks the window and writes it in
            // the same transaction; the rest are only counted (metrics) and cost no audit write.
            let txn = self.db.begin().await?;
            if throttle::note_refusal(&txn, Kind::Login, email.as_str(), max).await? {
                // Read in the transaction: a one-connection pool (SQLite in memory) has no other.
                let user = user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(&txn).await?;
                self.audit_in(&txn, vec![NewEvent::new(EventKind::LoginLocked, user.map(|u| u.id), email.as_str())])
                    .await?;
            }
            txn.commit().await?;
            return Err(AuthError::AccountLocked { retry_after_secs });
        }
        let user = self.find_user(&email).await?;
        let matched = ticket.verify(password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
        let user = match user {
            Some(u) if matched => u,
            // The attempt stays counted.
            other => {
                drop(ticket);
                let event = NewEvent::new(EventKind::LoginFailed, other.map(|u| u.id), email.as_str());
                self.audit_alone(vec![event]).await?;
                return Err(AuthError::InvalidCredentials);
            }
        };
        // A hash of another cost or prefix (imported, or from before a cost change) is replaced
        // now that the password is known, so every account costs the same to verify.
        let upgraded = if self.hasher.needs_upgrade(&user.password_hash) {
            match ticket.hash_secret(password).await {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "re-hashing at the configured cost failed; keeping the old hash");
                    None
                }
            }
        } else {
            None
        };
        drop(ticket);
        // Only after a correct password: a wrong one never learns whether the address is confirmed.
        // Before the second factor: an unconfirmed address gets no pending login either.
        if self.policy.email_verification == verification::EmailVerification::Required
            && user.email_confirmed_at.is_none()
        {
            throttle::clear(&self.db, Kind::Login, email.as_str()).await?;
            return Err(AuthError::EmailNotConfirmed);
        }
        // A user with a second factor gets a pending login instead (api.md §10).
        if let Some(pending) = self.begin_second_factor(&user, upgraded.as_deref()).await? {
            return Ok(pending);
        }
        throttle::clear(&self.db, Kind::Login, email.as_str()).await?;
        self.open_session(user, upgraded).await
    }

    async fn open_session(&self, user: user::Model, new_hash: Option<String>) -> Result<NewSession, AuthError> {
        let token = SecretToken::generate().map_err(|e| AuthError::Internal(e.to_string()))?;
        let at = self.now();
        let expires_at = at + chrono_dur(self.policy.session_absolute_timeout);
        let idle_cutoff = at - chrono_dur(self.policy.session_idle_timeout);
        let txn = self.db.begin().await?;
        // Write first (on SQLite the transaction then holds the write lock from its first statement),
        // and only if the password is still the one just verified: a login racing a password
        // change must not leave a session behind that the change should have ended. The guard is
        // the credential version, not the hash text: a concurrent upgrade re-hashes the same
        // password (and keeps the version), which must not turn this correct login into a 401.
        let mut update = user::Entity::update_many().col_expr(user::Column::LastLoginAt, Expr::value(at));
        if let Some(h) = new_hash {
            update = update.col_expr(user::Column::PasswordHash, Expr::value(h));
        }
        let still_valid = update
            .filter(user::Column::Id.eq(user.id))
            .filter(user::Column::CredentialVersion.eq(user.credential_version))
            .exec(&txn)
            .await?;
        if still_valid.rows_affected != 1 {
            return Err(AuthError::InvalidCredentials);
        }
        session::ActiveModel {
            token_hash: Set(token.digest()),
            user_id: Set(user.id),
            created_at: Set(at),
            last_seen_at: Set(at),
            expires_at: Set(expires_at),
            public_id: Set(Some(Uuid::new_v4())),
            user_agent: Set(self.user_agent.clone()),
            client: Set(match self.actor {
                Actor::Api { client } => client.map(|c| c.to_string()),
                Actor::Cli => None,
            }),
        }
        .insert(&txn)
        .await?;
        // Housekeeping on this user's own rows, so dead sessions do not pile up.
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(user.id))
            .filter(session::Column::ExpiresAt.lte(at).or(session::Column::LastSeenAt.lte(idle_cutoff)))
            .exec(&txn)
            .await?;
        self.audit_in(&txn, vec![NewEvent::new(EventKind::LoginSucceeded, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        let user = UserView { last_login_at: Some(at), ..UserView::from(user) };
        Ok(NewSession { token, user, expires_at, second_factor: Vec::new() })
    }

    /// Resolves a presented session token to its user, enforcing the idle and absolute timeouts.
    pub async fn authenticate(&self, presented: &str) -> Result<UserView, AuthError> {
        let digest = presented_token_digest(presented).ok_or(AuthError::NotAuthenticated)?;
        let read = match &self.fast {
            Some(f) => Some(f.lookup(&digest).await.map_err(|e| f.note_fallback(&e))),
            None => None,
        };
        let found = match read {
            Some(Ok(row)) => row.map(|r| ActiveSession {
                last_seen_at: r.last_seen_at,
                expires_at: r.expires_at,
                user: UserView {
                    id: r.user_id,
                    email: r.email,
                    created_at: r.created_at,
                    last_login_at: r.last_login_at,
                },
            }),
            // The reader failed (noted): the ORM path answers.
            Some(Err(())) | None => self.find_session(&digest).await?,
        };
        let Some(sess) = found else {
            return Err(AuthError::NotAuthenticated);
        };
        let at = self.now();
        if at >= sess.expires_at || at - sess.last_seen_at >= chrono_dur(self.policy.session_idle_timeout) {
            session::Entity::delete_by_id(digest).exec(&self.db).await?;
            return Err(AuthError::NotAuthenticated);
        }
        if at - sess.last_seen_at >= chrono_dur(self.policy.touch_interval()) {
            session::Entity::update_many()
                .col_expr(session::Column::LastSeenAt, Expr::value(at))
                .filter(session::Column::TokenHash.eq(digest))
                .exec(&self.db)
                .await?;
        }
        Ok(sess.user)
    }

    async fn find_session(&self, digest: &str) -> Result<Option<ActiveSession>, AuthError> {
        let found =
            session::Entity::find_by_id(digest.to_owned()).find_also_related(user::Entity).one(&self.db).await?;
        Ok(match found {
            Some((sess, Some(user))) => {
                Some(ActiveSession { last_seen_at: sess.last_seen_at, expires_at: sess.expires_at, user: user.into() })
            }
            _ => None,
        })
    }

    /// Ends the session, if there is one. Idempotent.
    pub async fn logout(&self, presented: &str) -> Result<(), AuthError> {
        let Some(digest) = presented_token_digest(presented) else { return Ok(()) };
        // A pending login (api.md §10) ends too.
        entity::pending_login::Entity::delete_by_id(digest.clone()).exec(&self.db).await?;
        let txn = self.db.begin().await?;
        let ended = session::Entity::delete_many()
            .filter(session::Column::TokenHash.eq(digest))
            .exec_with_returning(&txn)
            .await?;
        if let Some(s) = ended.first() {
            let email = user::Entity::find_by_id(s.user_id).one(&txn).await?.map(|u| u.email);
            let event = NewEvent { kind: EventKind::LoggedOut, user_id: Some(s.user_id), email };
            self.audit_in(&txn, vec![event]).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Ends every session of the user. Returns how many were ended.
    pub async fn logout_everywhere(&self, email: &str) -> Result<u64, AuthError> {
        let email = Email::parse(email)?;
        let user = self.find_user(&email).await?.ok_or(AuthError::UserNotFound)?;
        let txn = self.db.begin().await?;
        let res = session::Entity::delete_many().filter(session::Column::UserId.eq(user.id)).exec(&txn).await?;
        self.audit_in(&txn, vec![NewEvent::new(EventKind::SessionsRevoked, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        Ok(res.rows_affected)
    }

    /// Issues a reset token through the public API: throttled per account.
    pub async fn request_reset(&self, email: &str) -> Result<IssuedResetToken, AuthError> {
        self.issue_reset(email, true).await
    }

    /// A reset request from the API, delivered as configured: in the answer, or by email with the
    /// same answer for every well-formed address. In email mode the request is only counted and
    /// stored (encrypted) in the outbox, the same work for every address; the lookup, the token
    /// and the email happen after the answer (`outbox.rs`, api.md §14).
    pub async fn self_service_reset(&self, email: &str) -> Result<ResetRequest, AuthError> {
        if self.policy.reset_delivery == mail::ResetDelivery::Response {
            return self.request_reset(email).await.map(ResetRequest::Token);
        }
        if self.mailer.is_none() {
            return Err(AuthError::Internal("no mailer configured".into()));
        }
        let email = Email::parse(email)?;
        self.enqueue_reset_request(&email).await?;
        Ok(ResetRequest::Emailed)
    }

    /// Issues a reset token for the operator and emails it (`userauth user reset --send`);
    /// returns the mail server's reply.
    pub async fn operator_reset_by_email(&self, email: &str) -> Result<(String, String), AuthError> {
        let mailer =
            self.mailer.as_ref().ok_or_else(|| AuthError::Internal("smtp_url and mail_from are not set".into()))?;
        let issued = self.operator_reset(email).await?;
        let message = mailer.reset_message(&issued.email, &issued.token, issued.expires_at)?;
        let reply = mailer.send_now(message).await?;
        Ok((issued.email, reply))
    }

    /// Issues a reset token for the operator (`userauth user reset`): not throttled.
    pub async fn operator_reset(&self, email: &str) -> Result<IssuedResetToken, AuthError> {
        let issued = self.issue_reset(email, false).await?;
        // The operator vouches for the account: its failed-login count starts afresh.
        throttle::clear(&self.db, Kind::Login, &issued.email).await?;
        Ok(issued)
    }

    async fn issue_reset(&self, email: &str, throttled: bool) -> Result<IssuedResetToken, AuthError> {
        let email = Email::parse(email)?;
        let user = self.find_user(&email).await?.ok_or(AuthError::UserNotFound)?;
        // Counted and decided in one statement before the token exists, as logins are.
        let (max, window) = (self.policy.reset_max_requests, self.policy.reset_window);
        if throttled
            && let Some(retry_after_secs) =
                throttle::reserve(&self.db, self.now(), Kind::Reset, email.as_str(), max, window).await?
        {
            return Err(AuthError::TooManyResetRequests { retry_after_secs });
        }
        self.store_reset_token(&user).await
    }

    /// A new reset token for `user`, stored (hashed) in place of any older one.
    async fn store_reset_token(&self, user: &user::Model) -> Result<IssuedResetToken, AuthError> {
        let token = SecretToken::generate().map_err(|e| AuthError::Internal(e.to_string()))?;
        let at = self.now();
        let expires_at = at + chrono_dur(self.policy.reset_token_ttl);
        let txn = self.db.begin().await?;
        // A new token voids every older one.
        reset_token::Entity::delete_many().filter(reset_token::Column::UserId.eq(user.id)).exec(&txn).await?;
        reset_token::ActiveModel {
            token_hash: Set(token.digest()),
            user_id: Set(user.id),
            created_at: Set(at),
            expires_at: Set(expires_at),
            used_at: Set(None),
        }
        .insert(&txn)
        .await?;
        self.audit_in(&txn, vec![NewEvent::new(EventKind::ResetIssued, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        self.count(|m| m.password_reset(metrics::ResetStage::Issued));
        Ok(IssuedResetToken { email: user.email.clone(), token, expires_at })
    }

    /// Sets a new password with a reset token: single use, and every session of the user ends.
    /// With `expected_email`, the token must belong to that account (the classic route).
    pub async fn update_password(
        &self,
        presented: &str,
        new_password: &str,
        expected_email: Option<&str>,
    ) -> Result<UserView, AuthError> {
        let ticket = self.hasher.admit(self.hash_client())?;
        let digest = presented_token_digest(presented).ok_or(AuthError::InvalidResetToken)?;
        let at = self.now();
        let found =
            reset_token::Entity::find_by_id(digest.clone()).find_also_related(user::Entity).one(&self.db).await?;
        let Some((token, Some(user))) = found else {
            return Err(AuthError::InvalidResetToken);
        };
        if token.used_at.is_some() || at >= token.expires_at {
            return Err(AuthError::InvalidResetToken);
        }
        if let Some(expected) = expected_email
            && Email::parse(expected).ok().as_ref().map(Email::as_str) != Some(user.email.as_str())
        {
            return Err(AuthError::InvalidResetToken);
        }
        let password = self.policy.parse_new_password(new_password, &user.email)?;
        // Hash before the transaction: no lock is held during the slow part.
        let hash = ticket.hash(&password).await?;
        drop(ticket);
        let txn = self.db.begin().await?;
        // Claim the token; the condition makes two concurrent uses race to one winner.
        let claimed = reset_token::Entity::update_many()
            .col_expr(reset_token::Column::UsedAt, Expr::value(at))
            .filter(reset_token::Column::TokenHash.eq(digest))
            .filter(reset_token::Column::UsedAt.is_null())
            .filter(reset_token::Column::ExpiresAt.gt(at))
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            return Err(AuthError::InvalidResetToken);
        }
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .col_expr(user::Column::UpdatedAt, Expr::value(at))
            // A new password: logins that verified the old one can no longer open a session.
            .col_expr(user::Column::CredentialVersion, Expr::col(user::Column::CredentialVersion).add(1i64))
            .filter(user::Column::Id.eq(user.id))
            .exec(&txn)
            .await?;
        session::Entity::delete_many().filter(session::Column::UserId.eq(user.id)).exec(&txn).await?;
        // A completed reset proves control of the mailbox or of the operator's token: the lockout ends.
        throttle::clear(&txn, Kind::Login, &user.email).await?;
        self.audit_in(&txn, vec![NewEvent::new(EventKind::PasswordReset, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        self.count(|m| m.password_reset(metrics::ResetStage::Completed));
        Ok(user.into())
    }

    /// Streams users in creation order with their active-session counts: constant memory
    /// whatever the number of users.
    pub async fn list_users(
        &self,
        filter: &ListFilter,
    ) -> Result<impl Stream<Item = Result<UserSummary, AuthError>> + '_, AuthError> {
        let at = self.now();
        let idle_cutoff = at - chrono_dur(self.policy.session_idle_timeout);
        let active_sessions = Query::select()
            .expr(Expr::col((session::Entity, session::Column::TokenHash)).count())
            .from(session::Entity)
            .and_where(Expr::col((session::Entity, session::Column::UserId)).equals((user::Entity, user::Column::Id)))
            .and_where(Expr::col((session::Entity, session::Column::ExpiresAt)).gt(at))
            .and_where(Expr::col((session::Entity, session::Column::LastSeenAt)).gt(idle_cutoff))
            .to_owned();
        let mut query = user::Entity::find()
            .select_only()
            .columns([user::Column::Id, user::Column::Email, user::Column::CreatedAt, user::Column::LastLoginAt])
            .expr_as(Expr::from(active_sessions), "active_sessions")
            .column(user::Column::EmailConfirmedAt)
            .expr_as(Expr::from(second_factor::totp_count_query()), "totp_factors")
            .expr_as(Expr::from(passkeys::passkey_count_query()), "passkeys")
            .order_by_asc(user::Column::CreatedAt)
            .order_by_asc(user::Column::Id);
        if let Some(needle) = filter.email_contains.as_deref().filter(|n| !n.is_empty()) {
            // Emails are stored lower-cased; LIKE wildcards in the needle are matched literally.
            let escaped = needle.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            query = query.filter(
                Expr::col((user::Entity, user::Column::Email)).like(LikeExpr::new(format!("%{escaped}%")).escape('\\')),
            );
        }
        if let Some(offset) = filter.offset {
            query = query.offset(offset);
        }
        // SQLite accepts OFFSET only after a LIMIT: "no limit" is the largest one it takes.
        if let Some(limit) = filter.limit.or(filter.offset.map(|_| i64::MAX as u64)) {
            query = query.limit(limit);
        }
        let stream = query.into_model::<UserSummary>().stream(&self.db).await?;
        Ok(stream.map(|row| row.map_err(AuthError::from)))
    }

    /// Deletes expired sessions, reset tokens and throttle windows. Returns rows removed.
    pub async fn purge_expired(&self) -> Result<u64, AuthError> {
        let at = self.now();
        let idle_cutoff = at - chrono_dur(self.policy.session_idle_timeout);
        let mut removed = session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lte(at).or(session::Column::LastSeenAt.lte(idle_cutoff)))
            .exec(&self.db)
            .await?
            .rows_affected;
        removed += reset_token::Entity::delete_many()
            .filter(reset_token::Column::ExpiresAt.lte(at))
            .exec(&self.db)
            .await?
            .rows_affected;
        removed += crate::entity::email_verification_token::Entity::delete_many()
            .filter(crate::entity::email_verification_token::Column::ExpiresAt.lte(at))
            .exec(&self.db)
            .await?
            .rows_affected;
        removed += throttle::purge(&self.db, at, Kind::Login, self.policy.login_failure_window).await?;
        removed += throttle::purge(&self.db, at, Kind::Reset, self.policy.reset_window).await?;
        removed += self.purge_passkey_challenges().await?;
        removed += self.purge_pending_logins().await?;
        Ok(removed)
    }
}
