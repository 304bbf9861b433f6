//! A real `redis-server` on a free loopback port, for the guard's shared store.
//!
//! Without the binary the Redis tests are skipped with a notice, unless
//! `SYNCJOB_REQUIRE_REDIS=1` (set by `.ci/run`), where its absence fails them.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    /// With TLS: the files of a private CA and the server's certificate, and the password.
    tls: Option<Tls>,
}

/// A private CA made for one test, a server certificate it signed, and a password.
pub struct Tls {
    pub dir: std::path::PathBuf,
    pub password: String,
}

impl Tls {
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn password_file(&self) -> std::path::PathBuf {
        self.dir.join("password")
    }

    fn make(port: u16) -> Self {
        let dir =
            std::env::temp_dir().join(format!("syncjob-redis-tls-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs (CI installs it)");
            assert!(status.success(), "openssl {args:?}");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=syncjob test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            dir.join("ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ]);
        let password = format!("key-{}", uuid_like());
        std::fs::write(dir.join("password"), format!("{password}\n")).unwrap();
        Self { dir, password }
    }
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// A running server, or `None` (with a printed notice) when Redis is not installed here.
    pub fn start() -> Option<Self> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os("SYNCJOB_REQUIRE_REDIS").is_none(),
                "SYNCJOB_REQUIRE_REDIS is set but redis-server is not installed"
            );
            eprintln!(
                "NOTICE: redis-server not found; skipping a Redis guard test (CI installs it and sets SYNCJOB_REQUIRE_REDIS=1)"
            );
            return None;
        }
        let mut server = Self {
            child: None,
            port: free_port(),
            tls: None,
        };
        server.restart();
        Some(server)
    }

    /// A server that speaks TLS only, with a certificate from a private CA and a password.
    pub fn start_tls() -> Option<Self> {
        let mut server = Self::start()?;
        server.stop();
        server.tls = Some(Tls::make(server.port));
        server.restart();
        Some(server)
    }

    pub fn tls(&self) -> &Tls {
        self.tls.as_ref().expect("a TLS server")
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// An administrator's connection (over TLS, with the current password).
    pub fn admin(&self, password: &str) -> redis::Connection {
        let tls = self.tls();
        let url = format!("rediss://:{password}@127.0.0.1:{}", self.port);
        let client = redis::Client::build_with_tls(
            url.as_str(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(tls.ca_file()).unwrap()),
            },
        )
        .unwrap();
        client.get_connection().expect("admin connection")
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts (again) on the same port, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let mut listen: Vec<String> = vec!["--port".into(), port.clone()];
        if let Some(tls) = &self.tls {
            let file = |name: &str| tls.dir.join(name).display().to_string();
            listen = vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port,
                "--tls-cert-file".into(),
                file("server.pem"),
                "--tls-key-file".into(),
                file("server.key"),
                "--tls-ca-cert-file".into(),
                file("ca.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
                "--requirepass".into(),
                tls.password.clone(),
            ];
        }
        let child = Command::new("redis-server")
            .args(listen)
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(tls) = &self.tls {
            let _ = std::fs::remove_dir_all(&tls.dir);
        }
    }
}
