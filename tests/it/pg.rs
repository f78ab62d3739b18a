//! A throwaway PostgreSQL cluster for the test binary: `initdb` in a temp dir, listening only on a
//! Unix socket in that dir (no TCP port to race other tests for), one fresh database per test. A
//! watchdog process stops the cluster and removes its files once this test process has exited.
//! `USERAUTH_TEST_PG_URL` (an admin URL) uses an existing server instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The shared cluster: its admin URL (`postgres://postgres@localhost/postgres?host=DIR`).
pub struct Cluster {
    admin_url: String,
}

impl Cluster {
    /// The URL of database `name` on this server (same user, host or socket, and options).
    pub fn url_for(&self, name: &str) -> String {
        url_for(&self.admin_url, name)
    }
}

fn url_for(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("a PostgreSQL URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("PostgreSQL test cluster: {e}"),
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// The newest PostgreSQL server binaries installed (Debian keeps them off `PATH`).
pub fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|d| d.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.pop().or_else(|| crate::prereq::program("initdb").and_then(|p| p.parent().map(Path::to_path_buf)))
}

/// Runs a PostgreSQL server binary, as the `postgres` user when we are root (initdb refuses root).
fn pg_command(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

fn start() -> Result<Cluster, String> {
    if let Ok(url) = std::env::var("USERAUTH_TEST_PG_URL") {
        return Ok(Cluster { admin_url: url });
    }
    let server = init_and_start()?;
    Ok(Cluster { admin_url: server.url_for("postgres") })
}

/// A cluster's files and how to start it.
struct Server {
    bin: PathBuf,
    /// The temp dir: the data dir, the log and the socket are inside.
    root: PathBuf,
    data: PathBuf,
}

impl Server {
    /// The socket's directory is the URL's `host` (sqlx and libpq both read it there).
    fn url_for(&self, name: &str) -> String {
        format!("postgres://postgres@localhost/{name}?host={}", self.root.display())
    }

    fn start(&self) -> Result<(), String> {
        // Only the Unix socket: `listen_addresses` empty means no TCP at all.
        let opts = format!(
            "-k {} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            self.root.display()
        );
        let out = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &opts, "-l"])
            .arg(self.root.join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn stop(&self) {
        let _ = pg_command(&self.bin, "pg_ctl").arg("-D").arg(&self.data).args(["-m", "fast", "-w", "stop"]).output();
    }
}

/// `initdb` into a new temp dir and start a server there, stopped by a watchdog when this test
/// process ends.
fn init_and_start() -> Result<Server, String> {
    let bin = bin_dir().ok_or("PostgreSQL server binaries not found (apt-get install postgresql)")?;
    let root = tempfile::Builder::new().prefix("userauth-pg-").tempdir().map_err(|e| e.to_string())?.keep();
    let data = root.join("data");
    if is_root() {
        let ok =
            Command::new("chown").args(["-R", "postgres:postgres"]).arg(&root).status().map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err("chown of the cluster directory failed".into());
        }
    }
    let out = pg_command(&bin, "initdb")
        .args(["-D"])
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let server = Server { bin, root, data };
    server.start()?;
    spawn_watchdog(&server);
    Ok(server)
}

/// A cluster of one test's own, for tests that stop and start the server. Removed on drop.
pub struct PrivateCluster(Server);

impl PrivateCluster {
    pub fn start() -> PrivateCluster {
        let c = PrivateCluster(init_and_start().expect("private PostgreSQL cluster"));
        psql(&c.0.url_for("postgres"), "CREATE DATABASE app");
        c
    }

    pub fn url(&self) -> String {
        self.0.url_for("app")
    }

    pub fn stop(&self) {
        self.0.stop();
    }

    pub fn restart(&self) {
        self.0.start().expect("restart PostgreSQL");
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.0.stop();
        let _ = std::fs::remove_dir_all(&self.0.root);
    }
}

fn spawn_watchdog(server: &Server) {
    let pid = std::process::id();
    let runas = if is_root() { "runuser -u postgres -- " } else { "" };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runas}{} -D {} -m immediate stop >/dev/null 2>&1; rm -rf {}",
        server.bin.join("pg_ctl").display(),
        server.data.display(),
        server.root.display()
    );
    let _ = Command::new("setsid")
        .args(["bash", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// A fresh, empty database; returns its URL.
pub fn fresh_database() -> String {
    let c = cluster();
    let name = format!("t{}_{}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::Relaxed));
    psql(&c.admin_url, &format!("CREATE DATABASE {name}"));
    c.url_for(&name)
}

/// The single value `sql` yields on the database at `url`, as psql prints it unaligned.
pub fn query(url: &str, sql: &str) -> String {
    psql(url, sql)
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-tA", "-c", sql])
        .output()
        .expect("psql (apt-get install postgresql-client)");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
