//! The service on real SQLite databases (a temp file and `sqlite::memory:`), migrated by the real
//! Migrator.

use futures_util::StreamExt;
use serde_json::json;
use userauth::service::{AuthError, AuthService, ListFilter};

use crate::common::{Backend, PASSWORD, TestDb, service, service_for, service_with_clock, settings};
use userauth::service::RequestContext;

async fn setup(backend: Backend) -> (TestDb, AuthService) {
    let db = TestDb::new(backend);
    let svc = service(&db.url).await;
    (db, svc)
}

async fn register_login_authenticate_logout(backend: Backend) {
    let (_db, svc) = setup(backend).await;
    {
        let user = svc.register(&RequestContext::operator(), "  Alice@Example.com ", PASSWORD).await.unwrap();
        assert_eq!(user.email, "alice@example.com");
        let session = svc.login(&RequestContext::operator(), "ALICE@example.com", PASSWORD).await.unwrap();
        assert_eq!(session.user.id, user.id);
        assert!(session.user.last_login_at.is_some());
        let me = svc.authenticate(session.token.expose()).await.unwrap();
        assert_eq!(me.user.id, user.id);
        svc.logout(&RequestContext::operator(), session.token.expose()).await.unwrap();
        assert!(matches!(svc.authenticate(session.token.expose()).await, Err(AuthError::NotAuthenticated)));
        // Logout is idempotent.
        svc.logout(&RequestContext::operator(), session.token.expose()).await.unwrap();
    }
}

async fn duplicate_emails_are_refused_case_insensitively(backend: Backend) {
    let (_db, svc) = setup(backend).await;
    {
        svc.register(&RequestContext::operator(), "bob@example.com", PASSWORD).await.unwrap();
        assert!(matches!(
            svc.register(&RequestContext::operator(), "BOB@example.com ", PASSWORD).await,
            Err(AuthError::UserExists)
        ));
    }
}

async fn bad_emails_and_passwords_are_refused(backend: Backend) {
    let (_db, svc) = setup(backend).await;
    {
        assert!(matches!(
            svc.register(&RequestContext::operator(), "nope", PASSWORD).await,
            Err(AuthError::InvalidEmail(_))
        ));
        assert!(matches!(
            svc.register(&RequestContext::operator(), "a@b.c", "short").await,
            Err(AuthError::InvalidPassword(_))
        ));
        assert!(matches!(
            svc.register(&RequestContext::operator(), "a@b.c", &"x".repeat(73)).await,
            Err(AuthError::InvalidPassword(_))
        ));
        let users: Vec<_> = svc.list_users(&ListFilter::default()).await.unwrap().collect().await;
        assert!(users.is_empty(), "nothing stored after refused registrations");
    }
}

async fn wrong_password_and_unknown_email_fail_alike(backend: Backend) {
    let (_db, svc) = setup(backend).await;
    {
        svc.register(&RequestContext::operator(), "carol@example.com", PASSWORD).await.unwrap();
        let before = svc.hasher().verifications();
        let wrong = svc.login(&RequestContext::operator(), "carol@example.com", "not the password").await.unwrap_err();
        let unknown = svc.login(&RequestContext::operator(), "nobody@example.com", PASSWORD).await.unwrap_err();
        assert!(matches!(wrong, AuthError::InvalidCredentials));
        assert!(matches!(unknown, AuthError::InvalidCredentials));
        assert_eq!(wrong.to_string(), unknown.to_string());
        // Each path ran exactly one bcrypt verification.
        assert_eq!(svc.hasher().verifications() - before, 2);
    }
}

async fn many_sessions_per_user(backend: Backend) {
    let (_db, svc) = setup(backend).await;
    {
        svc.register(&RequestContext::operator(), "dan@example.com", PASSWORD).await.unwrap();
        let a = svc.login(&RequestContext::operator(), "dan@example.com", PASSWORD).await.unwrap();
        let b = svc.login(&RequestContext::operator(), "dan@example.com", PASSWORD).await.unwrap();
        assert_ne!(a.token.expose(), b.token.expose());
        assert!(svc.authenticate(a.token.expose()).await.is_ok());
        assert!(svc.authenticate(b.token.expose()).await.is_ok());
        assert_eq!(svc.logout_everywhere("dan@example.com").await.unwrap(), 2);
        assert!(svc.authenticate(a.token.expose()).await.is_err());
    }
}

async fn reset_token_flow(backend: Backend) {
    let (_db, svc) = setup(backend).await;
    {
        svc.register(&RequestContext::operator(), "erin@example.com", PASSWORD).await.unwrap();
        let session = svc.login(&RequestContext::operator(), "erin@example.com", PASSWORD).await.unwrap();
        let old = svc.request_reset(&RequestContext::operator(), "erin@example.com").await.unwrap();
        let new = svc.request_reset(&RequestContext::operator(), "Erin@Example.com").await.unwrap();
        assert_eq!(new.email, "erin@example.com");
        // A newer token voids the older one.
        assert!(matches!(
            svc.update_password(&RequestContext::operator(), old.token.expose(), "a brand new password", None).await,
            Err(AuthError::InvalidResetToken)
        ));
        // Policy is checked without using up the token.
        assert!(matches!(
            svc.update_password(&RequestContext::operator(), new.token.expose(), "short", None).await,
            Err(AuthError::InvalidPassword(_))
        ));
        let user = svc
            .update_password(&RequestContext::operator(), new.token.expose(), "a brand new password", None)
            .await
            .unwrap();
        assert_eq!(user.email, "erin@example.com");
        // Single use.
        assert!(matches!(
            svc.update_password(&RequestContext::operator(), new.token.expose(), "another new password", None).await,
            Err(AuthError::InvalidResetToken)
        ));
        // Every session ended; the old password is gone, the new one works.
        assert!(svc.authenticate(session.token.expose()).await.is_err());
        assert!(svc.login(&RequestContext::operator(), "erin@example.com", PASSWORD).await.is_err());
        assert!(svc.login(&RequestContext::operator(), "erin@example.com", "a brand new password").await.is_ok());
        assert!(matches!(
            svc.request_reset(&RequestContext::operator(), "nobody@example.com").await,
            Err(AuthError::UserNotFound)
        ));
    }
}

async fn classic_update_checks_the_token_owner(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service(&db.url).await;
    svc.register(&RequestContext::operator(), "frank@example.com", PASSWORD).await.unwrap();
    svc.register(&RequestContext::operator(), "grace@example.com", PASSWORD).await.unwrap();
    let t = svc.request_reset(&RequestContext::operator(), "frank@example.com").await.unwrap();
    assert!(matches!(
        svc.update_password(
            &RequestContext::operator(),
            t.token.expose(),
            "a brand new password",
            Some("grace@example.com")
        )
        .await,
        Err(AuthError::InvalidResetToken)
    ));
    svc.update_password(
        &RequestContext::operator(),
        t.token.expose(),
        "a brand new password",
        Some("FRANK@example.com"),
    )
    .await
    .unwrap();
}

async fn list_users_streams_with_session_counts(backend: Backend) {
    let (_db, svc) = setup(backend).await;
    {
        for i in 0..5 {
            svc.register(&RequestContext::operator(), &format!("user{i}@example.com"), PASSWORD).await.unwrap();
        }
        svc.login(&RequestContext::operator(), "user1@example.com", PASSWORD).await.unwrap();
        svc.login(&RequestContext::operator(), "user1@example.com", PASSWORD).await.unwrap();
        let rows: Vec<_> = svc.list_users(&ListFilter::default()).await.unwrap().map(|r| r.unwrap()).collect().await;
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[0].email, "user0@example.com");
        let u1 = rows.iter().find(|r| r.email == "user1@example.com").unwrap();
        assert_eq!(u1.active_sessions, 2);
        assert!(u1.last_login_at.is_some());
        assert_eq!(rows.iter().filter(|r| r.active_sessions == 0).count(), 4);
        let limited: Vec<_> =
            svc.list_users(&ListFilter { limit: Some(2), ..Default::default() }).await.unwrap().collect().await;
        assert_eq!(limited.len(), 2);
    }
}

async fn sessions_expire_when_idle_and_absolutely(backend: Backend) {
    let db = TestDb::new(backend);
    let idle = settings(&db.url, &[("session_idle_timeout_secs", json!(60))]);
    let (svc, clock) = service_with_clock(&idle).await;
    svc.register(&RequestContext::operator(), "idle@example.com", PASSWORD).await.unwrap();
    let s = svc.login(&RequestContext::operator(), "idle@example.com", PASSWORD).await.unwrap();
    clock.advance(secs(59));
    assert!(svc.authenticate(s.token.expose()).await.is_ok());
    clock.advance(secs(61));
    assert!(matches!(svc.authenticate(s.token.expose()).await, Err(AuthError::NotAuthenticated)));

    let absolute = settings(&db.url, &[("session_absolute_timeout_secs", json!(120))]);
    let (svc, clock) = service_with_clock(&absolute).await;
    svc.register(&RequestContext::operator(), "absolute@example.com", PASSWORD).await.unwrap();
    let s = svc.login(&RequestContext::operator(), "absolute@example.com", PASSWORD).await.unwrap();
    // Used every 30 seconds (never idle for long), it still ends at the absolute limit.
    for _ in 0..3 {
        clock.advance(secs(30));
        assert!(svc.authenticate(s.token.expose()).await.is_ok());
    }
    clock.advance(secs(31));
    assert!(svc.authenticate(s.token.expose()).await.is_err());
}

async fn reset_tokens_expire(backend: Backend) {
    let db = TestDb::new(backend);
    let (svc, clock) = service_with_clock(&settings(&db.url, &[("reset_token_ttl_secs", json!(900))])).await;
    svc.register(&RequestContext::operator(), "ttl@example.com", PASSWORD).await.unwrap();
    let t = svc.request_reset(&RequestContext::operator(), "ttl@example.com").await.unwrap();
    clock.advance(secs(901));
    assert!(matches!(
        svc.update_password(&RequestContext::operator(), t.token.expose(), "a brand new password", None).await,
        Err(AuthError::InvalidResetToken)
    ));
}

async fn login_failures_lock_the_account_for_the_window(backend: Backend) {
    let db = TestDb::new(backend);
    let (svc, clock) = service_with_clock(&settings(
        &db.url,
        &[("login_max_failures", json!(3)), ("login_failure_window_secs", json!(900))],
    ))
    .await;
    svc.register(&RequestContext::operator(), "lock@example.com", PASSWORD).await.unwrap();
    svc.register(&RequestContext::operator(), "other@example.com", PASSWORD).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(
            svc.login(&RequestContext::operator(), "lock@example.com", "wrong password!").await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    // Locked: even the right password gets the lockout, with a wait hint.
    match svc.login(&RequestContext::operator(), "lock@example.com", PASSWORD).await {
        Err(AuthError::AccountLocked { retry_after_secs }) => assert!((899..=900).contains(&retry_after_secs)),
        other => panic!("expected a lockout, got {other:?}"),
    }
    // Other accounts are unaffected; unknown emails are counted too.
    assert!(svc.login(&RequestContext::operator(), "other@example.com", PASSWORD).await.is_ok());
    for _ in 0..3 {
        let _ = svc.login(&RequestContext::operator(), "ghost@example.com", "whatever it is").await;
    }
    assert!(matches!(
        svc.login(&RequestContext::operator(), "ghost@example.com", "whatever").await,
        Err(AuthError::AccountLocked { .. })
    ));
    clock.advance(secs(899));
    assert!(matches!(
        svc.login(&RequestContext::operator(), "lock@example.com", PASSWORD).await,
        Err(AuthError::AccountLocked { .. })
    ));
    clock.advance(secs(2));
    assert!(svc.login(&RequestContext::operator(), "lock@example.com", PASSWORD).await.is_ok());
}

async fn success_resets_the_failure_count(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service_for(&settings(&db.url, &[("login_max_failures", json!(3))])).await;
    svc.register(&RequestContext::operator(), "reset-count@example.com", PASSWORD).await.unwrap();
    for _ in 0..2 {
        let _ = svc.login(&RequestContext::operator(), "reset-count@example.com", "wrong password!").await;
    }
    svc.login(&RequestContext::operator(), "reset-count@example.com", PASSWORD).await.unwrap();
    for _ in 0..2 {
        let _ = svc.login(&RequestContext::operator(), "reset-count@example.com", "wrong password!").await;
    }
    assert!(svc.login(&RequestContext::operator(), "reset-count@example.com", PASSWORD).await.is_ok());
}

async fn reset_requests_are_throttled_per_account(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service_for(&settings(&db.url, &[("reset_max_requests", json!(2))])).await;
    svc.register(&RequestContext::operator(), "many@example.com", PASSWORD).await.unwrap();
    svc.register(&RequestContext::operator(), "few@example.com", PASSWORD).await.unwrap();
    svc.request_reset(&RequestContext::operator(), "many@example.com").await.unwrap();
    svc.request_reset(&RequestContext::operator(), "many@example.com").await.unwrap();
    assert!(matches!(
        svc.request_reset(&RequestContext::operator(), "many@example.com").await,
        Err(AuthError::TooManyResetRequests { .. })
    ));
    assert!(svc.request_reset(&RequestContext::operator(), "few@example.com").await.is_ok());
    // The operator is not throttled.
    assert!(svc.operator_reset("many@example.com").await.is_ok());
}

async fn purge_removes_only_expired_rows(backend: Backend) {
    let db = TestDb::new(backend);
    let (svc, clock) = service_with_clock(&settings(&db.url, &[("session_idle_timeout_secs", json!(60))])).await;
    svc.register(&RequestContext::operator(), "purge@example.com", PASSWORD).await.unwrap();
    let old = svc.login(&RequestContext::operator(), "purge@example.com", PASSWORD).await.unwrap();
    clock.advance(secs(61));
    let fresh = svc.login(&RequestContext::operator(), "purge@example.com", PASSWORD).await.unwrap();
    svc.purge_expired().await.unwrap();
    assert!(svc.authenticate(fresh.token.expose()).await.is_ok());
    assert!(svc.authenticate(old.token.expose()).await.is_err());
}

crate::backend_tests!(
    register_login_authenticate_logout,
    duplicate_emails_are_refused_case_insensitively,
    bad_emails_and_passwords_are_refused,
    wrong_password_and_unknown_email_fail_alike,
    many_sessions_per_user,
    reset_token_flow,
    classic_update_checks_the_token_owner,
    list_users_streams_with_session_counts,
    sessions_expire_when_idle_and_absolutely,
    reset_tokens_expire,
    login_failures_lock_the_account_for_the_window,
    success_resets_the_failure_count,
    reset_requests_are_throttled_per_account,
    purge_removes_only_expired_rows,
);

/// The synchronous reader used for SQLite files sees new sessions and revocations at once
/// (it must never answer from stale data), and decodes the rows the ORM wrote.
#[tokio::test]
async fn fast_session_reads_see_commits_immediately() {
    use userauth::service::db::{DatabaseKind, DatabaseUrl};
    use userauth::service::fast_read::SessionReader;
    let db = TestDb::sqlite_file();
    let svc = service(&db.url).await;
    let url = DatabaseUrl::parse(&db.url).unwrap();
    let DatabaseKind::SqliteFile { path, .. } = url.kind() else { panic!("a file") };
    let reader = SessionReader::sqlite(path.clone());
    let user = svc.register(&RequestContext::operator(), "fast@example.com", PASSWORD).await.unwrap();
    let s = svc.login(&RequestContext::operator(), "fast@example.com", PASSWORD).await.unwrap();
    let row = reader.lookup(&s.token.digest()).await.unwrap().expect("visible right after login");
    assert_eq!(row.user_id, user.id);
    assert_eq!(row.email, "fast@example.com");
    assert_eq!(row.created_at.timestamp(), user.created_at.timestamp());
    assert!(row.last_login_at.is_some());
    svc.logout(&RequestContext::operator(), s.token.expose()).await.unwrap();
    assert!(reader.lookup(&s.token.digest()).await.unwrap().is_none(), "gone right after logout");
    let s2 = svc.login(&RequestContext::operator(), "fast@example.com", PASSWORD).await.unwrap();
    assert!(reader.lookup(&s2.token.digest()).await.unwrap().is_some());
    assert_eq!(svc.logout_everywhere("fast@example.com").await.unwrap(), 1);
    assert!(reader.lookup(&s2.token.digest()).await.unwrap().is_none(), "gone right after revocation");
}

fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

/// On a healthy database the fast path never falls back to the ORM (a fallback is a bug signal),
/// including for a file name that needs decoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_session_reads_do_not_fall_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/my%20data.db?mode=rwc", dir.path().display());
    let svc = service(&url).await;
    assert!(dir.path().join("my data.db").exists(), "the name was decoded as sqlx decodes it");
    svc.register(&RequestContext::operator(), "nofall@example.com", PASSWORD).await.unwrap();
    let s = svc.login(&RequestContext::operator(), "nofall@example.com", PASSWORD).await.unwrap();
    let lookups = (0..50).map(|_| {
        let (svc, token) = (svc.clone(), s.token.expose().to_owned());
        tokio::spawn(async move { svc.authenticate(&token).await.map(|a| a.user.email) })
    });
    for r in futures_util::future::join_all(lookups).await {
        assert_eq!(r.unwrap().unwrap(), "nofall@example.com");
    }
    assert_eq!(svc.fast_read_fallbacks(), Some(0));
}
