//! The session reader (`service/fast_read.rs`) on both of its backends, a SQLite file and
//! PostgreSQL: the same answers as the ORM path in every state a session can be in, no fallback
//! under concurrent load, and `last_seen_at` written at most once per touch interval.

use std::time::Duration;

use sea_orm::EntityTrait;
use serde_json::json;
use userauth::entity::{session, user};
use userauth::service::db::{DatabaseKind, connect};
use userauth::service::fast_read::{SessionReader, SessionRow};
use userauth::service::{AuthError, AuthService, NewSession};

use crate::common::{Backend, PASSWORD, TestClock, TestDb, service_with_clock, settings};
use userauth::service::RequestContext;

const EMAIL: &str = "reader@example.com";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A reader of the database `svc` uses, built as `serve` builds its own.
fn reader_for(svc: &AuthService, db: &TestDb) -> SessionReader {
    let url = userauth::service::db::DatabaseUrl::parse(&db.url).unwrap();
    match url.kind() {
        DatabaseKind::SqliteFile { path, .. } => SessionReader::sqlite(path.clone()),
        DatabaseKind::Postgres { .. } => SessionReader::postgres(svc.db().get_postgres_connection_pool()),
        DatabaseKind::SqliteMemory => panic!("the reader serves files and servers"),
    }
}

/// The session and its user as the ORM reads them.
async fn orm_row(svc: &AuthService, digest: &str) -> Option<SessionRow> {
    let (s, u) =
        session::Entity::find_by_id(digest.to_owned()).find_also_related(user::Entity).one(svc.db()).await.unwrap()?;
    let u = u.expect("a session has its user");
    Some(SessionRow {
        user_id: s.user_id,
        last_seen_at: s.last_seen_at,
        expires_at: s.expires_at,
        email: u.email,
        created_at: u.created_at,
        last_login_at: u.last_login_at,
    })
}

/// Another service on the same database with its own connections: the ORM path alone, or
/// another instance.
async fn plain_service(db: &TestDb, extra: &[(&str, serde_json::Value)], clock: &TestClock) -> AuthService {
    let loaded = settings(&db.url, extra);
    AuthService::new(connect(&loaded.db).await.unwrap(), loaded.settings.policy()).with_clock(clock.clock())
}

fn is_unauthenticated<T: std::fmt::Debug>(r: &Result<T, AuthError>) -> bool {
    matches!(r, Err(AuthError::NotAuthenticated))
}

/// Each state a session can be in is set up twice, for one session resolved through the reader
/// and one through the ORM path (same database, same clock): the answers and what is left in
/// the database must be the same.
async fn reader_answers_as_the_orm_does(backend: Backend) {
    let db = TestDb::new(backend);
    let timeouts = [("session_idle_timeout_secs", json!(600)), ("session_absolute_timeout_secs", json!(900))];
    let (fast, clock) = service_with_clock(&settings(&db.url, &timeouts)).await;
    assert_eq!(fast.fast_read_fallbacks(), Some(0), "this database has a session reader");
    let orm = plain_service(&db, &timeouts, &clock).await;
    assert_eq!(orm.fast_read_fallbacks(), None, "the ORM path alone");
    let other_instance = plain_service(&db, &timeouts, &clock).await;
    let reader = reader_for(&fast, &db);
    fast.register(&RequestContext::operator(), EMAIL, PASSWORD).await.unwrap();
    let login = || async { fast.login(&RequestContext::operator(), EMAIL, PASSWORD).await.unwrap() };
    let gone = |s: NewSession| {
        let svc = fast.clone();
        async move { session::Entity::find_by_id(s.token.digest()).one(svc.db()).await.unwrap().is_none() }
    };

    // Live: the same user, and the reader decodes exactly the row the ORM reads.
    let (a, b) = (login().await, login().await);
    let via_reader = fast.authenticate(a.token.expose()).await.unwrap();
    assert_eq!(via_reader.user, orm.authenticate(b.token.expose()).await.unwrap().user);
    assert_eq!(via_reader.user.email, EMAIL);
    let row = reader.lookup(&a.token.digest()).await.unwrap().expect("a live session");
    assert_eq!(Some(row), orm_row(&fast, &a.token.digest()).await);
    assert!(reader.lookup(&"0".repeat(64)).await.unwrap().is_none(), "no such session");

    // Idle for longer than the idle timeout: refused and deleted by both.
    let (a, b) = (login().await, login().await);
    clock.advance(secs(601));
    assert!(is_unauthenticated(&fast.authenticate(a.token.expose()).await));
    assert!(is_unauthenticated(&orm.authenticate(b.token.expose()).await));
    assert!(gone(a).await && gone(b).await);

    // Kept alive by use, then past the absolute timeout.
    let (a, b) = (login().await, login().await);
    clock.advance(secs(500));
    assert_eq!(
        fast.authenticate(a.token.expose()).await.unwrap().user,
        orm.authenticate(b.token.expose()).await.unwrap().user
    );
    clock.advance(secs(450));
    assert!(is_unauthenticated(&fast.authenticate(a.token.expose()).await), "absolute timeout");
    assert!(is_unauthenticated(&orm.authenticate(b.token.expose()).await), "absolute timeout");
    assert!(gone(a).await && gone(b).await);

    // Logged out.
    let (a, b) = (login().await, login().await);
    assert!(fast.authenticate(a.token.expose()).await.is_ok());
    other_instance.logout(&RequestContext::operator(), a.token.expose()).await.unwrap();
    other_instance.logout(&RequestContext::operator(), b.token.expose()).await.unwrap();
    assert!(is_unauthenticated(&fast.authenticate(a.token.expose()).await));
    assert!(is_unauthenticated(&orm.authenticate(b.token.expose()).await));

    // Revoked by another instance right after a successful read: the next read refuses it.
    let (a, b) = (login().await, login().await);
    assert!(fast.authenticate(a.token.expose()).await.is_ok());
    assert!(reader.lookup(&a.token.digest()).await.unwrap().is_some());
    assert_eq!(other_instance.logout_everywhere(EMAIL).await.unwrap(), 2);
    assert!(reader.lookup(&a.token.digest()).await.unwrap().is_none(), "no cache serves an ended session");
    assert!(is_unauthenticated(&fast.authenticate(a.token.expose()).await));
    assert!(is_unauthenticated(&orm.authenticate(b.token.expose()).await));

    // A user deleted with its sessions.
    let a = login().await;
    assert!(fast.authenticate(a.token.expose()).await.is_ok());
    other_instance.delete_user(EMAIL).await.unwrap();
    assert!(is_unauthenticated(&fast.authenticate(a.token.expose()).await));

    assert_eq!(fast.fast_read_fallbacks(), Some(0), "every answer came from the reader");
    assert_eq!(reader.fallbacks(), 0);
}

/// 50 lookups at once (more than the reader's connections on PostgreSQL): all answered by the
/// reader, none by the ORM fallback.
async fn no_fallback_under_concurrent_lookups(backend: Backend) {
    let db = TestDb::new(backend);
    let (svc, _clock) = service_with_clock(&settings(&db.url, &[])).await;
    svc.register(&RequestContext::operator(), EMAIL, PASSWORD).await.unwrap();
    let s = svc.login(&RequestContext::operator(), EMAIL, PASSWORD).await.unwrap();
    for round in 0..3 {
        let lookups = (0..50).map(|_| {
            let (svc, token) = (svc.clone(), s.token.expose().to_owned());
            tokio::spawn(async move { svc.authenticate(&token).await.map(|a| a.user.email) })
        });
        for r in futures_util::future::join_all(lookups).await {
            assert_eq!(r.unwrap().unwrap(), EMAIL, "round {round}");
        }
    }
    assert_eq!(svc.fast_read_fallbacks(), Some(0));
}

/// A read touches `last_seen_at` only once a touch interval (a tenth of the idle timeout, at
/// most 60 s) has passed since the last write, so most reads write nothing.
async fn last_seen_is_written_once_per_touch_interval(backend: Backend) {
    let db = TestDb::new(backend);
    // Idle timeout 600 s: touch interval 60 s.
    let (svc, clock) = service_with_clock(&settings(&db.url, &[("session_idle_timeout_secs", json!(600))])).await;
    svc.register(&RequestContext::operator(), EMAIL, PASSWORD).await.unwrap();
    let s = svc.login(&RequestContext::operator(), EMAIL, PASSWORD).await.unwrap();
    let digest = s.token.digest();
    let seen = || async { orm_row(&svc, &digest).await.expect("the session").last_seen_at };
    let t0 = seen().await;
    for _ in 0..3 {
        clock.advance(secs(19));
        svc.authenticate(s.token.expose()).await.unwrap();
        assert_eq!(seen().await, t0, "within the interval: no write");
    }
    clock.advance(secs(4)); // 61 s after the login
    svc.authenticate(s.token.expose()).await.unwrap();
    let t1 = seen().await;
    assert!(t1 - t0 >= chrono::Duration::seconds(61), "touched: {t0} -> {t1}");
    for _ in 0..5 {
        clock.advance(secs(10));
        svc.authenticate(s.token.expose()).await.unwrap();
        assert_eq!(seen().await, t1, "one write per interval");
    }
    clock.advance(secs(10)); // 60 s after the touch
    svc.authenticate(s.token.expose()).await.unwrap();
    assert!(seen().await - t1 >= chrono::Duration::seconds(60), "touched again");
    assert_eq!(svc.fast_read_fallbacks(), Some(0));
}

/// Concurrent lookups of different sessions (PostgreSQL answers them in shared batches): each
/// gets the answer for its own token — live ones their user, ended and unknown ones nothing —
/// the same as one lookup at a time.
async fn concurrent_lookups_each_get_their_own_answer(backend: Backend) {
    let db = TestDb::new(backend);
    let (svc, _clock) = service_with_clock(&settings(&db.url, &[])).await;
    let reader = std::sync::Arc::new(reader_for(&svc, &db));
    let mut tokens = Vec::new();
    for n in 0..6 {
        let email = format!("batch{n}@example.com");
        svc.register(&RequestContext::operator(), &email, PASSWORD).await.unwrap();
        let s = svc.login(&RequestContext::operator(), &email, PASSWORD).await.unwrap();
        if n % 3 == 2 {
            svc.logout(&RequestContext::operator(), s.token.expose()).await.unwrap();
        }
        tokens.push(s.token.digest());
    }
    tokens.push("0".repeat(64));
    let mut expected = Vec::new();
    for t in &tokens {
        expected.push(reader.lookup(t).await.unwrap().map(|r| r.email));
    }
    assert_eq!(expected.iter().filter(|e| e.is_some()).count(), 4, "four live sessions: {expected:?}");
    for round in 0..3 {
        let lookups = (0..70).map(|i| {
            let (reader, token) = (reader.clone(), tokens[i % tokens.len()].clone());
            tokio::spawn(async move { (i, reader.lookup(&token).await.map(|r| r.map(|r| r.email))) })
        });
        for r in futures_util::future::join_all(lookups).await {
            let (i, answer) = r.unwrap();
            assert_eq!(answer.unwrap(), expected[i % tokens.len()], "round {round}, lookup {i}");
        }
    }
    assert_eq!(reader.fallbacks(), 0);
}

/// Lookups given up half-way (a client that disconnects drops its request) strand no other
/// lookup: the ones left and the next ones are all answered.
async fn abandoned_lookups_strand_nobody(backend: Backend) {
    use futures_util::FutureExt;
    let db = TestDb::new(backend);
    let (svc, _clock) = service_with_clock(&settings(&db.url, &[])).await;
    let reader = std::sync::Arc::new(reader_for(&svc, &db));
    svc.register(&RequestContext::operator(), EMAIL, PASSWORD).await.unwrap();
    let token = svc.login(&RequestContext::operator(), EMAIL, PASSWORD).await.unwrap().token.digest();
    for round in 0..5 {
        // Every other lookup is polled once (queued) and then dropped.
        let kept: Vec<_> = (0..40)
            .filter_map(|i| {
                let mut lookup = Box::pin({
                    let (reader, token) = (reader.clone(), token.clone());
                    async move { reader.lookup(&token).await.map(|r| r.map(|r| r.email)) }
                });
                let polled = (&mut lookup).now_or_never();
                (i % 2 == 0).then_some((polled, lookup))
            })
            .collect();
        for (polled, lookup) in kept {
            let answer = match polled {
                Some(a) => a,
                None => tokio::time::timeout(secs(10), lookup).await.expect("answered, not stranded"),
            };
            assert_eq!(answer.unwrap().as_deref(), Some(EMAIL), "round {round}");
        }
    }
    let next = tokio::time::timeout(secs(10), reader.lookup(&token)).await.expect("the next lookup is answered");
    assert_eq!(next.unwrap().map(|r| r.email).as_deref(), Some(EMAIL));
}

/// While lookups of a session keep a query in flight all the time, the session is ended: every
/// lookup that starts after the logout has returned sees it gone (a shared query answers only
/// lookups queued before it started, never later ones).
async fn no_lookup_after_logout_sees_the_session(backend: Backend) {
    let db = TestDb::new(backend);
    let (svc, _clock) = service_with_clock(&settings(&db.url, &[])).await;
    let reader = std::sync::Arc::new(reader_for(&svc, &db));
    svc.register(&RequestContext::operator(), EMAIL, PASSWORD).await.unwrap();
    for round in 0..5 {
        let s = svc.login(&RequestContext::operator(), EMAIL, PASSWORD).await.unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load: Vec<_> = (0..8)
            .map(|_| {
                let (reader, token, stop) = (reader.clone(), s.token.digest(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        reader.lookup(&token).await.unwrap();
                        // The SQLite reader answers without yielding: let the test's task run.
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        assert!(reader.lookup(&s.token.digest()).await.unwrap().is_some(), "live before the logout");
        svc.logout(&RequestContext::operator(), s.token.expose()).await.unwrap();
        let after = (0..20).map(|_| {
            let (reader, token) = (reader.clone(), s.token.digest());
            tokio::spawn(async move { reader.lookup(&token).await.unwrap() })
        });
        for r in futures_util::future::join_all(after).await {
            assert_eq!(r.unwrap(), None, "round {round}: a lookup after the logout saw the session");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for l in load {
            l.await.unwrap();
        }
    }
}

crate::backend_tests!(
    persistent: reader_answers_as_the_orm_does,
    no_fallback_under_concurrent_lookups,
    last_seen_is_written_once_per_touch_interval,
    concurrent_lookups_each_get_their_own_answer,
    abandoned_lookups_strand_nobody,
    no_lookup_after_logout_sees_the_session,
);

/// A TCP proxy in front of the test database that can go silent: it keeps every connection open
/// and forwards nothing, as a server behind a dropped network does (no answer, no reset).
struct SilentProxy {
    port: u16,
    silent: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentProxy {
    async fn start(url: &str) -> SilentProxy {
        use sea_orm::sqlx::postgres::PgConnectOptions;
        let opts: PgConnectOptions = url.parse().expect("a PostgreSQL URL");
        let socket = opts.get_socket().map(|dir| dir.join(format!(".s.PGSQL.{}", opts.get_port())));
        let tcp = (opts.get_host().to_owned(), opts.get_port());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let silent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = silent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (flag, socket, tcp) = (flag.clone(), socket.clone(), tcp.clone());
                tokio::spawn(async move {
                    let (cr, cw) = client.into_split();
                    match socket {
                        Some(path) => {
                            let Ok(server) = tokio::net::UnixStream::connect(path).await else { return };
                            let (sr, sw) = server.into_split();
                            tokio::join!(pump(cr, sw, flag.clone()), pump(sr, cw, flag));
                        }
                        None => {
                            let Ok(server) = tokio::net::TcpStream::connect(tcp).await else { return };
                            let (sr, sw) = server.into_split();
                            tokio::join!(pump(cr, sw, flag.clone()), pump(sr, cw, flag));
                        }
                    }
                });
            }
        });
        SilentProxy { port, silent }
    }

    fn set_silent(&self, silent: bool) {
        self.silent.store(silent, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies one direction; while the proxy is silent, what arrives is held back.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    silent: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        while silent.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A PostgreSQL server that goes silent mid-connection holds no lookup past the pool's acquire
/// timeout: the lookup fails (its request takes the ORM path) instead of hanging with every
/// other request queued behind it, and once the server answers again the reader recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reader_gives_up_on_a_silent_server() {
    use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    if !Backend::Postgres.available() {
        return;
    }
    let db = TestDb::new(Backend::Postgres);
    let (svc, _clock) = service_with_clock(&settings(&db.url, &[])).await;
    svc.register(&RequestContext::operator(), EMAIL, PASSWORD).await.unwrap();
    let digest = svc.login(&RequestContext::operator(), EMAIL, PASSWORD).await.unwrap().token.digest();
    let proxy = SilentProxy::start(&db.url).await;
    let direct: PgConnectOptions = db.url.parse().unwrap();
    let via_proxy = PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(proxy.port)
        .username(direct.get_username())
        .database(direct.get_database().expect("the URL names a database"));
    let pool = PgPoolOptions::new().max_connections(2).acquire_timeout(secs(1)).connect_lazy_with(via_proxy);
    let reader = std::sync::Arc::new(SessionReader::postgres(&pool));
    assert!(reader.lookup(&digest).await.unwrap().is_some(), "through the proxy while it forwards");

    proxy.set_silent(true);
    let lookups = (0..5).map(|_| {
        let (reader, digest) = (reader.clone(), digest.clone());
        tokio::spawn(async move { tokio::time::timeout(secs(20), reader.lookup(&digest)).await })
    });
    for r in futures_util::future::join_all(lookups).await {
        let answer = r.unwrap().expect("a lookup hung on a silent server");
        assert!(answer.is_err(), "a silent server cannot have answered: {answer:?}");
    }

    proxy.set_silent(false);
    let recovered = crate::waiting::eventually_async(secs(20), "the reader to answer again", || async {
        reader.lookup(&digest).await.ok().flatten()
    })
    .await;
    assert_eq!(recovered.email, EMAIL, "the reader answers again once the server does");
}
