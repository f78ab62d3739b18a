#![allow(dead_code)]
//! A throwaway PostgreSQL cluster for the test binary: `initdb` in a temp dir, loopback only, a
//! random port, one fresh database per test. A watchdog process stops the cluster and removes
//! its files once this test process has exited. `USERAUTH_TEST_PG_URL` (an admin URL) uses an
//! existing server instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Cluster {
    /// `postgres://postgres@127.0.0.1:PORT` (no database).
    pub base: String,
    pub admin_db: String,
    pub data_dir: Option<PathBuf>,
    pub bin_dir: Option<PathBuf>,
    pub port: u16,
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

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|d| d.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().or_else(|| Path::new("/usr/bin/initdb").exists().then(|| PathBuf::from("/usr/bin")))
}

/// Runs a PostgreSQL server binary, as the `postgres` user when we are root (initdb refuses root).
pub fn pg_command(bin: &Path, program: &str) -> Command {
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
        let (base, db) = url.rsplit_once('/').ok_or("USERAUTH_TEST_PG_URL needs a database name")?;
        let port = base.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(5432);
        return Ok(Cluster { base: base.into(), admin_db: db.into(), data_dir: None, bin_dir: None, port });
    }
    let (bin, root, data, port) = init_and_start()?;
    spawn_watchdog(&bin, &data, &root);
    Ok(Cluster {
        base: format!("postgres://postgres@127.0.0.1:{port}"),
        admin_db: "postgres".into(),
        data_dir: Some(data),
        bin_dir: Some(bin),
        port,
    })
}

/// `initdb` into a new temp dir and start a server there: (bin dir, root dir, data dir, port).
fn init_and_start() -> Result<(PathBuf, PathBuf, PathBuf, u16), String> {
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
    let port = super::common::free_port();
    start_server(&bin, &data, &root, port)?;
    Ok((bin, root, data, port))
}

/// A cluster of one test's own, for tests that stop and start the server. Removed on drop.
pub struct PrivateCluster {
    pub bin: PathBuf,
    pub root: PathBuf,
    pub data: PathBuf,
    pub port: u16,
}

impl PrivateCluster {
    pub fn start() -> PrivateCluster {
        let (bin, root, data, port) = init_and_start().expect("private PostgreSQL cluster");
        spawn_watchdog(&bin, &data, &root);
        let c = PrivateCluster { bin, root, data, port };
        let out = Command::new("psql")
            .arg(format!("postgres://postgres@127.0.0.1:{}/postgres", c.port))
            .args(["-q", "-c", "CREATE DATABASE app"])
            .output()
            .expect("psql");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        c
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/app", self.port)
    }

    pub fn stop(&self) {
        stop_server(&self.bin, &self.data);
    }

    pub fn restart(&self) {
        start_server(&self.bin, &self.data, &self.root, self.port).expect("restart PostgreSQL");
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Starts (or restarts) the server of a cluster made by `start`.
pub fn start_server(bin: &Path, data: &Path, root: &Path, port: u16) -> Result<(), String> {
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
        root.display()
    );
    let out = pg_command(bin, "pg_ctl")
        .arg("-D")
        .arg(data)
        .args(["-o", &opts, "-l"])
        .arg(root.join("server.log"))
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

pub fn stop_server(bin: &Path, data: &Path) {
    let _ = pg_command(bin, "pg_ctl").arg("-D").arg(data).args(["-m", "fast", "-w", "stop"]).output();
}

fn spawn_watchdog(bin: &Path, data: &Path, root: &Path) {
    let pid = std::process::id();
    let runas = if is_root() { "runuser -u postgres -- " } else { "" };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runas}{} -D {} -m immediate stop >/dev/null 2>&1; rm -rf {}",
        bin.join("pg_ctl").display(),
        data.display(),
        root.display()
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
    psql(c, &format!("CREATE DATABASE {name}"));
    format!("{}/{name}", c.base)
}

fn psql(c: &Cluster, sql: &str) {
    let out = Command::new("psql")
        .arg(format!("{}/{}", c.base, c.admin_db))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql (apt-get install postgresql-client)");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}
