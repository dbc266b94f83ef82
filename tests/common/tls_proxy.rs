//! A real TLS reverse proxy where a tunnel would be: Debian's nginx, with a certificate
//! signed by a CA the test makes, proxying to a receiver on loopback. Shared by the core's
//! reachability suite and the desktop app's end-to-end tests (included by `#[path]`), so
//! it depends on nothing but std, tempfile, tokio and reqwest.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Generous: the machine is shared; these only turn a hang into a failure.
const START_DEADLINE: Duration = Duration::from_secs(60);
const EXIT_DEADLINE: Duration = Duration::from_secs(60);

/// A program the tests need, found on PATH or in the sbin directories (nginx lives in
/// /usr/sbin, which a plain user's PATH often lacks). Missing is a failure, never a skip.
pub fn require(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} is not installed, and the reachability tests need it: \
                 `bash scripts/setup.sh e2e` installs it (these tests fail rather than skip)"
            )
        })
}

/// A loopback port nothing listens on at the moment.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("the bound address").port()
}

/// Runs an async block (a reqwest call) to its end on a runtime of its own.
pub fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
        .block_on(future)
}

/// An HTTPS client that trusts the system's store and, when given, the test's CA.
pub fn client(ca: Option<&Path>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(20)).no_proxy();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).expect("read the test CA");
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("the test CA is PEM"));
    }
    builder.build().expect("build an HTTPS client")
}

/// Waits until `look` gives a value; its last error is in the failure.
fn eventually<T>(what: &str, deadline: Duration, mut look: impl FnMut() -> Result<T, String>) -> T {
    let until = Instant::now() + deadline;
    loop {
        match look() {
            Ok(value) => return value,
            Err(last) if Instant::now() > until => panic!("timed out waiting for {what}; last: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Runs a command to its end, with a deadline.
fn run_to_exit(mut cmd: Command, what: &str) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let child = child.unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    child.wait_with_output().unwrap_or_else(|e| panic!("{what} did not finish: {e}"))
}

pub struct TlsProxy {
    dir: TempDir,
    /// Where it listens (`https://localhost:PORT`), the same across restarts.
    pub port: u16,
    upstream: u16,
    /// The CA that signed the proxy's certificate, which no system store trusts.
    pub ca_pem_path: PathBuf,
    child: Option<Child>,
}

impl TlsProxy {
    /// Makes the certificate and picks the port, without starting: a receiver's
    /// configuration names the proxy's URL before the receiver's port is known.
    pub fn new() -> TlsProxy {
        require("nginx");
        let dir = tempfile::Builder::new().prefix("cpwatch-proxy-").tempdir().expect("create a temp dir");
        let file = |name: &str| dir.path().join(name);
        // A CA and a server certificate it signs, as a lab's proxy has: rustls refuses a
        // self-signed CA certificate presented as the server's own (CaUsedAsEndEntity).
        let ca = file("ca.pem");
        openssl(
            dir.path(),
            "make the test CA",
            &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=cpwatch test CA"],
            &[("-keyout", "ca-key.pem"), ("-out", "ca.pem")],
        );
        openssl(
            dir.path(),
            "make the proxy's key and request",
            &["req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"],
            &[("-keyout", "key.pem"), ("-out", "cert.csr")],
        );
        std::fs::write(
            file("cert.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write the certificate's extensions");
        openssl(
            dir.path(),
            "sign the proxy's certificate with the test CA",
            &["x509", "-req", "-days", "2", "-CAcreateserial"],
            &[
                ("-in", "cert.csr"),
                ("-CA", "ca.pem"),
                ("-CAkey", "ca-key.pem"),
                ("-extfile", "cert.ext"),
                ("-out", "cert.pem"),
            ],
        );
        TlsProxy { port: free_port(), upstream: 0, ca_pem_path: ca, child: None, dir }
    }

    /// `https://localhost:PORT`: what a researcher would configure as `public_url`.
    pub fn origin(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Points the proxy at another port, (re)starting it on its own port.
    pub fn set_upstream(&mut self, upstream: u16) {
        self.stop();
        self.upstream = upstream;
        self.write_config();
        self.run();
    }

    /// Stops and starts again with the same port and upstream: the tunnel is back.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    fn write_config(&self) {
        let tmp = self.dir.path().display().to_string();
        // As root, nginx's workers switch to `nobody`, who cannot enter this 0700 temp
        // dir to buffer a body; they may as well stay root (the user directive only
        // applies when the master runs as root, and is ignored with a warning otherwise).
        let user = if is_root() { "user root;\n" } else { "" };
        let conf = format!(
            "{user}daemon off;\nmaster_process on;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n\
             events {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {tmp}/client_body;\n  proxy_temp_path {tmp}/proxy;\n  \
             fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n  \
             server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {tmp}/cert.pem;\n    ssl_certificate_key {tmp}/key.pem;\n    \
             location / {{\n      proxy_pass http://127.0.0.1:{upstream};\n      proxy_set_header Host $http_host;\n      \
             proxy_set_header X-Forwarded-Host $http_host;\n    }}\n  }}\n}}\n",
            port = self.port,
            upstream = self.upstream,
        );
        std::fs::write(self.dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
    }

    /// Starts nginx and waits until it answers HTTPS with the test's certificate.
    fn run(&mut self) {
        let tmp = self.dir.path();
        let stderr = std::fs::File::create(tmp.join("nginx.stderr")).expect("create nginx's stderr file");
        let child = Command::new(require("nginx"))
            .arg("-p")
            .arg(tmp)
            .arg("-c")
            .arg(tmp.join("nginx.conf"))
            .arg("-e")
            .arg(tmp.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nginx: {e}"));
        self.child = Some(child);
        let url = format!("{}/", self.origin());
        let ca = self.ca_pem_path.clone();
        eventually(&format!("nginx answering {url}"), START_DEADLINE, || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("nginx exited ({status}) instead of serving; {}", self.logs());
            }
            // Any HTTP answer will do (502 while the upstream is down): the proxy is up.
            // Until it listens the port refuses; any other error will not go away.
            match block_on(async { client(Some(&ca)).get(&url).send().await }) {
                Ok(response) => Ok(response.status()),
                Err(e) if format!("{e:?}").contains("ConnectionRefused") => Err(format!("{e:?}")),
                Err(e) => panic!("nginx answers {url} with an error: {e:?}; {}", self.logs()),
            }
        });
    }

    /// SIGTERM to the master, which takes its workers with it (SIGKILL would leave the
    /// workers serving on the port). Stopped means the port refuses connections.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let until = Instant::now() + EXIT_DEADLINE;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > until {
                let _ = child.kill();
                panic!("nginx did not stop on SIGTERM; {}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("nginx stderr:\n{}\nnginx error.log:\n{}", read("nginx.stderr"), read("error.log"))
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let until = Instant::now() + EXIT_DEADLINE;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("--- {}", self.logs());
            }
        }
    }
}

/// Runs openssl in `dir` with `args`, then each `(flag, file in dir)`; it must succeed.
fn openssl(dir: &Path, what: &str, args: &[&str], files: &[(&str, &str)]) {
    let mut cmd = Command::new(require("openssl"));
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    for (flag, name) in files {
        cmd.arg(flag).arg(dir.join(name));
    }
    let out = run_to_exit(cmd, &format!("openssl {}", args.join(" ")));
    assert!(out.status.success(), "openssl could not {what}: {}", String::from_utf8_lossy(&out.stderr));
}

pub fn is_root() -> bool {
    let mut cmd = Command::new("id");
    cmd.arg("-u");
    let out = run_to_exit(cmd, "id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}
