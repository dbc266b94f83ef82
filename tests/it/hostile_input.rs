//! Hostile input over a real socket: the receiver faces the open internet through its
//! tunnel, so every malformed or malicious request below gets an exact expected answer
//! and leaves an exact trace: nothing stored for what is refused, exactly the expected
//! delivery for what is accepted, one refused-log row for what the receiver refuses
//! itself and none for what HTTP parsing or routing answers. Afterwards the receiver is
//! still healthy; and a flood of refused requests grows neither the refused log beyond
//! its configured size nor the process's memory without bound.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use cpwatch::receive::signature::{self, Scheme};

use crate::harness::{self, raw_connect, raw_exchange, Auth, DataDir, Server, WAIT_DEADLINE};

/// Webhook 15 and 16 sign with their own passcodes, 20 uses Basic, 21 a bearer token;
/// there is no default, so other webhook ids are refused.
const PASSCODE_15: &str = "passcode of webhook fifteen";
const PASSCODE_16: &str = "passcode of webhook sixteen";
const BASIC_USER: &str = "centrepoint";
const BASIC_PASSWORD: &str = "pa:ss word";
const BEARER: &str = "tok-21-secret";
const MAX_BODY: usize = 256 * 1024;
const CONFIG: &str =
    "max_body_bytes = 262144\nheader_timeout_secs = 1\nbody_timeout_secs = 2\nmax_connections = 32\n";

fn configure(data: &DataDir) {
    data.configure("15", &Auth::Passcode { passcode: PASSCODE_15.into(), scheme: Scheme::Base64Sha256 });
    data.configure("16", &Auth::Passcode { passcode: PASSCODE_16.into(), scheme: Scheme::Base64Sha256 });
    data.configure("20", &Auth::Basic { user: BASIC_USER.into(), password: BASIC_PASSWORD.into() });
    data.configure("21", &Auth::Bearer(BEARER.into()));
}

fn sign(passcode: &str, body: &[u8]) -> String {
    signature::sign(Scheme::Base64Sha256, passcode.as_bytes(), body).expect("base64 signs any body")
}

fn basic(credentials: &[u8]) -> String {
    format!("Basic {}", BASE64.encode(credentials))
}

/// One header line as raw bytes (no CRLF).
fn h(name: &str, value: impl AsRef<[u8]>) -> Vec<u8> {
    let mut line = format!("{name}: ").into_bytes();
    line.extend_from_slice(value.as_ref());
    line
}

/// The request line, each header line exactly as given, a blank line, then the body.
fn raw(line: &str, headers: &[Vec<u8>], body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{line}\r\n").into_bytes();
    for header in headers {
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(body);
    bytes
}

/// Host, Content-Length and `Connection: close` for `body`.
fn framing(body: &[u8]) -> Vec<Vec<u8>> {
    vec![h("Host", "receiver.example"), h("Content-Length", body.len().to_string()), h("Connection", "close")]
}

/// The CentrePoint headers of an `upload` delivery.
fn centrepoint(id: &str, webhook: &str) -> Vec<Vec<u8>> {
    vec![
        h("Content-Type", "application/json"),
        h("X-ActiGraph-Event", "upload"),
        h("X-ActiGraph-Delivery", id),
        h("X-ActiGraph-Webhook-Id", webhook),
    ]
}

fn upload_body(upload: &str) -> Vec<u8> {
    format!(r#"{{"status":"started","uploadId":"{upload}","subjectId":"44732","studyId":"903"}}"#)
        .into_bytes()
}

/// A complete `upload` delivery for webhook 15 with `extra` headers, signed over `body`.
fn signed_15(line: &str, id: &str, body: &[u8], extra: &[Vec<u8>]) -> Vec<u8> {
    let mut headers = centrepoint(id, "15");
    headers.push(h("X-ActiGraph-Signature", sign(PASSCODE_15, body)));
    headers.extend_from_slice(extra);
    headers.extend(framing(body));
    raw(line, &headers, body)
}

/// A delivery for webhook 15 whose body is `body`, signed, posted to /webhook.
fn post_15(id: &str, body: &[u8]) -> Vec<u8> {
    signed_15("POST /webhook HTTP/1.1", id, body, &[])
}

/// A delivery for `webhook` carrying `credential` as its only authentication headers.
fn with_credentials(id: &str, webhook: &str, credential: Vec<Vec<u8>>, body: &[u8]) -> Vec<u8> {
    let mut headers = centrepoint(id, webhook);
    headers.extend(credential);
    headers.extend(framing(body));
    raw("POST /webhook HTTP/1.1", &headers, body)
}

/// How a case talks to the receiver.
enum Send {
    /// Written at once; read until the server closes.
    Raw(Vec<u8>),
    /// `head`, then `piece` every `pause` for as long as the server reads (up to a cap).
    Trickle { head: Vec<u8>, piece: Vec<u8>, pause: Duration },
}

/// What a case must leave behind.
struct Expect {
    /// The statuses of the responses, in order; empty when the connection is closed
    /// without any response.
    statuses: Vec<u16>,
    /// Deliveries stored by the case: id, exact body, flag.
    stored: Vec<(String, Vec<u8>, Option<&'static str>)>,
    /// The statuses of the refused-log rows the case adds, in order.
    logged: Vec<u16>,
    /// Text that must not appear in the response (an injected header).
    absent: Option<&'static str>,
    /// Text that must appear in the response (an echoed validation code).
    present: Option<String>,
}

impl Expect {
    /// Refused by the receiver itself: this status, one refused-log row, nothing stored.
    fn refused(status: u16) -> Expect {
        Expect {
            statuses: vec![status],
            stored: Vec::new(),
            logged: vec![status],
            absent: None,
            present: None,
        }
    }
    /// Answered by HTTP parsing or routing: this status, no log row, nothing stored.
    fn answered(status: u16) -> Expect {
        Expect { statuses: vec![status], stored: Vec::new(), logged: Vec::new(), absent: None, present: None }
    }
    /// Closed without an answer: nothing stored, nothing logged.
    fn closed() -> Expect {
        Expect { statuses: Vec::new(), stored: Vec::new(), logged: Vec::new(), absent: None, present: None }
    }
    /// Accepted with 200 and stored once, exactly as sent.
    fn stored(id: &str, body: &[u8], flag: Option<&'static str>) -> Expect {
        Expect {
            statuses: vec![200],
            stored: vec![(id.to_string(), body.to_vec(), flag)],
            logged: Vec::new(),
            absent: None,
            present: None,
        }
    }
    fn then_stored(mut self, id: &str, body: &[u8]) -> Expect {
        self.statuses.push(200);
        self.stored.push((id.to_string(), body.to_vec(), None));
        self
    }
    fn without(mut self, text: &'static str) -> Expect {
        self.absent = Some(text);
        self
    }
}

struct Case {
    rule: &'static str,
    send: Send,
    expect: Expect,
}

fn case(rule: &'static str, request: Vec<u8>, expect: Expect) -> Case {
    Case { rule, send: Send::Raw(request), expect }
}

/// What came back from a trickled request.
struct Trickled {
    text: String,
    /// True when the server closed the connection before the client gave up.
    closed_by_server: bool,
    sent: usize,
}

/// Sends `head` then `piece` every `pause`, until the server answers or closes, or
/// `cap` passes (then the client gives up: the server let it go on for too long).
fn trickle(addr: SocketAddr, head: &[u8], piece: &[u8], pause: Duration, cap: Duration) -> Trickled {
    let mut stream = raw_connect(addr);
    let mut received = Vec::new();
    let mut sent = 0;
    let mut closed_by_server = false;
    let started = Instant::now();
    if stream.write_all(head).is_ok() {
        stream.set_nonblocking(true).expect("make the socket non-blocking");
        loop {
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf) {
                Ok(0) => {
                    closed_by_server = true;
                    break;
                }
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    closed_by_server = true;
                    break;
                }
            }
            if started.elapsed() > cap {
                break;
            }
            match stream.write(piece) {
                Ok(n) => sent += n,
                // The server stopped reading and closed (or reset) the connection.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    closed_by_server = true;
                    break;
                }
            }
            std::thread::sleep(pause);
        }
    } else {
        closed_by_server = true;
    }
    // Whatever the server still sends before closing.
    stream.set_nonblocking(false).expect("make the socket blocking");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("set a read timeout");
    let mut rest = Vec::new();
    if stream.read_to_end(&mut rest).is_ok() {
        closed_by_server = true;
    }
    received.extend_from_slice(&rest);
    Trickled { text: String::from_utf8_lossy(&received).into_owned(), closed_by_server, sent }
}

/// Writes `request` at once and reads until the server closes the connection: the
/// text received, and whether the server closed it (rather than the read timing out).
fn exchange(addr: SocketAddr, request: &[u8]) -> (String, bool) {
    let mut stream = raw_connect(addr);
    // The server may answer and close before reading everything (413, 431).
    let _ = stream.write_all(request);
    let mut received = Vec::new();
    let closed = match stream.read_to_end(&mut received) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

/// The status of every response in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = text[at..].find("HTTP/1.") {
        let start = at + offset;
        let line_start = start == 0 || text[..start].ends_with('\n');
        if line_start {
            if let Some(code) = text.get(start + 9..start + 12).and_then(|c| c.parse().ok()) {
                found.push(code);
            }
        }
        at = start + 7;
    }
    found
}

/// Counts refused-log rows and checks each case's trace against it.
struct Trace<'a> {
    data: &'a DataDir,
    server: &'a Server,
    logged: usize,
    stored: i64,
    sentinels: usize,
}

impl Trace<'_> {
    /// A refusal after the case: once it is logged, anything the case logged is too (the
    /// writer keeps order), so an exact row count proves the case logged exactly what it should.
    fn sentinel(&mut self, rule: &str) {
        self.sentinels += 1;
        let id = format!("sentinel-{}", self.sentinels);
        let body = upload_body("1");
        let mut headers = centrepoint(&id, "15");
        headers.extend(framing(&body));
        let reply = raw_exchange(self.server.addr, &raw("POST /webhook HTTP/1.1", &headers, &body));
        assert_eq!(
            reply.status,
            Some(401),
            "{rule}: the receiver still refuses an unsigned delivery afterwards"
        );
        self.logged += 1;
        let rows = self.data.wait_for_refused(self.logged);
        assert_eq!(rows.len(), self.logged, "{rule}: the case left exactly its expected refused-log rows");
        assert_eq!(rows.last().and_then(|r| r.delivery_id.clone()), Some(id), "{rule}: the sentinel is last");
    }

    fn run(&mut self, case: Case) {
        let rule = case.rule;
        let uploads = self.data.table("SELECT * FROM uploads ORDER BY study_id, upload_id");
        let (text, closed) = match case.send {
            Send::Raw(request) => exchange(self.server.addr, &request),
            Send::Trickle { head, piece, pause } => {
                let t = trickle(self.server.addr, &head, &piece, pause, Duration::from_secs(20));
                eprintln!("{rule}: {} bytes trickled before the server stopped it", t.sent);
                (t.text, t.closed_by_server)
            }
        };
        assert!(closed, "{rule}: the server closes a connection it will not read to the end");
        let expect = case.expect;
        assert_eq!(statuses(&text), expect.statuses, "{rule}: the response statuses; got:\n{text}");
        if let Some(absent) = expect.absent {
            assert!(
                !text.to_ascii_lowercase().contains(absent),
                "{rule}: no {absent:?} in the response:\n{text}"
            );
        }
        if let Some(present) = &expect.present {
            assert!(text.to_ascii_lowercase().contains(present.as_str()), "{rule}: {present:?} in:\n{text}");
        }
        for (id, body, flag) in &expect.stored {
            let rows = self.data.deliveries(id);
            assert_eq!(rows.len(), 1, "{rule}: delivery {id:?} is stored once");
            assert_eq!(&rows[0].body, body, "{rule}: delivery {id:?} is stored byte for byte");
            assert_eq!(rows[0].flag.as_deref(), *flag, "{rule}: delivery {id:?} is flagged as expected");
        }
        self.stored += expect.stored.len() as i64;
        assert_eq!(
            self.data.count("SELECT count(*) FROM deliveries"),
            self.stored,
            "{rule}: exactly the expected deliveries are stored"
        );
        if expect.stored.is_empty() {
            assert_eq!(
                self.data.table("SELECT * FROM uploads ORDER BY study_id, upload_id"),
                uploads,
                "{rule}: no upload changes"
            );
        }
        if !expect.logged.is_empty() {
            self.logged += expect.logged.len();
            let rows = self.data.wait_for_refused(self.logged);
            let statuses: Vec<u16> =
                rows[rows.len() - expect.logged.len()..].iter().map(|r| r.status as u16).collect();
            assert_eq!(statuses, expect.logged, "{rule}: the refused log records the refusal");
        }
        self.sentinel(rule);
    }
}

fn cases() -> Vec<Case> {
    let body = upload_body("93100");
    let sig = sign(PASSCODE_15, &body);
    let mut cases = Vec::new();

    // --- Sizes and framing ---------------------------------------------------------
    let mut headers = centrepoint("oversize-declared", "15");
    headers.extend([
        h("X-ActiGraph-Signature", &sig),
        h("Host", "r"),
        h("Expect", "100-continue"),
        h("Content-Length", (MAX_BODY + 1).to_string()),
        h("Connection", "close"),
    ]);
    cases.push(case(
        "a body declared over the limit is refused with 413 before it is sent",
        raw("POST /webhook HTTP/1.1", &headers, b""),
        Expect::refused(413),
    ));
    let big = vec![b' '; MAX_BODY + 1];
    let mut headers = centrepoint("oversize-chunked", "15");
    headers.extend([h("X-ActiGraph-Signature", sign(PASSCODE_15, &big)), h("Host", "r")]);
    headers.extend([h("Transfer-Encoding", "chunked"), h("Connection", "close")]);
    let mut request = raw("POST /webhook HTTP/1.1", &headers, format!("{:x}\r\n", big.len()).as_bytes());
    request.extend_from_slice(&big);
    cases.push(case("a chunked body over the limit is refused with 413", request, Expect::refused(413)));
    let mut headers = centrepoint("endless-fast", "15");
    headers.extend([h("X-ActiGraph-Signature", &sig), h("Host", "r"), h("Transfer-Encoding", "chunked")]);
    cases.push(Case {
        rule: "an endless chunked body is cut off at the limit with 413 and the connection closed",
        send: Send::Trickle {
            head: raw("POST /webhook HTTP/1.1", &headers, b""),
            piece: format!("4000\r\n{}\r\n", "x".repeat(0x4000)).into_bytes(),
            pause: Duration::from_millis(1),
        },
        expect: Expect::refused(413),
    });
    let mut headers = centrepoint("endless-slow", "15");
    headers.extend([h("X-ActiGraph-Signature", &sig), h("Host", "r"), h("Transfer-Encoding", "chunked")]);
    cases.push(Case {
        rule: "an endless body trickling under the limit is cut off by the body timeout with 408",
        send: Send::Trickle {
            head: raw("POST /webhook HTTP/1.1", &headers, b""),
            piece: b"8\r\n        \r\n".to_vec(),
            pause: Duration::from_millis(100),
        },
        expect: Expect::refused(408),
    });
    let mut request = post_15("content-length-longer", &body);
    request.truncate(request.len() - 10);
    cases.push(case(
        "a Content-Length longer than the body sent gets 408, never 2xx",
        request,
        Expect::refused(408),
    ));
    let mut headers = centrepoint("content-length-shorter", "15");
    headers.extend([h("X-ActiGraph-Signature", &sig), h("Host", "r"), h("Connection", "close")]);
    headers.push(h("Content-Length", (body.len() - 10).to_string()));
    cases.push(case(
        "a Content-Length shorter than the body cuts it, so its signature fails with 401",
        raw("POST /webhook HTTP/1.1", &headers, &body),
        Expect::refused(401),
    ));
    for (rule, value) in [
        ("a Content-Length that is not a number is 400", "12abc"),
        ("a negative Content-Length is 400", "-5"),
        ("a Content-Length beyond 2^64 is 400", "18446744073709551616"),
    ] {
        let mut headers = centrepoint("bad-length", "15");
        headers.extend([h("X-ActiGraph-Signature", &sig), h("Host", "r"), h("Content-Length", value)]);
        cases.push(case(rule, raw("POST /webhook HTTP/1.1", &headers, &body), Expect::answered(400)));
    }
    let mut headers = centrepoint("two-lengths", "15");
    headers.extend([h("X-ActiGraph-Signature", &sig), h("Host", "r")]);
    headers.extend([h("Content-Length", body.len().to_string()), h("Content-Length", "5")]);
    cases.push(case(
        "two different Content-Length headers are 400",
        raw("POST /webhook HTTP/1.1", &headers, &body),
        Expect::answered(400),
    ));
    // Request smuggling: the chunked reading ends the body early and leaves a second,
    // signed request behind it; the Content-Length reading would swallow it as body.
    let inner = post_15("smuggled-inner", &upload_body("93101"));
    for (rule, id, te_first) in [
        (
            "Transfer-Encoding wins over Content-Length and the smuggled request is never run",
            "smuggle-cl-te",
            false,
        ),
        (
            "Transfer-Encoding before Content-Length: the smuggled request is never run either",
            "smuggle-te-cl",
            true,
        ),
    ] {
        let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
        chunked.extend_from_slice(&body);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        chunked.extend_from_slice(&inner);
        let mut headers = centrepoint(id, "15");
        headers.extend([h("X-ActiGraph-Signature", &sig), h("Host", "r")]);
        let (te, cl) = (h("Transfer-Encoding", "chunked"), h("Content-Length", chunked.len().to_string()));
        headers.extend(if te_first { [te, cl] } else { [cl, te] });
        cases.push(case(
            rule,
            raw("POST /webhook HTTP/1.1", &headers, &chunked),
            Expect::stored(id, &body, None),
        ));
    }
    for (rule, te) in [
        ("a Transfer-Encoding that does not end in chunked is 400", "chunked, identity"),
        ("an unknown Transfer-Encoding is 400", "xchunked"),
    ] {
        let mut headers = centrepoint("bad-te", "15");
        headers.extend([h("X-ActiGraph-Signature", &sig), h("Host", "r"), h("Transfer-Encoding", te)]);
        cases.push(case(rule, raw("POST /webhook HTTP/1.1", &headers, b"0\r\n\r\n"), Expect::answered(400)));
    }
    let mut headers = centrepoint("te-http10", "15");
    headers.extend([h("X-ActiGraph-Signature", &sig), h("Transfer-Encoding", "chunked")]);
    cases.push(case(
        "Transfer-Encoding in HTTP/1.0 is 400",
        raw("POST /webhook HTTP/1.0", &headers, format!("{:x}\r\n", body.len()).as_bytes()),
        Expect::answered(400),
    ));
    // Pipelining: several requests in one write on one connection.
    let keep_alive = |id: &str, body: &[u8]| {
        let mut headers = centrepoint(id, "15");
        headers.extend([
            h("X-ActiGraph-Signature", sign(PASSCODE_15, body)),
            h("Host", "r"),
            h("Content-Length", body.len().to_string()),
        ]);
        raw("POST /webhook HTTP/1.1", &headers, body)
    };
    let (b1, b2, b3) = (upload_body("93102"), upload_body("93103"), upload_body("93104"));
    let mut pipelined = keep_alive("pipelined-1", &b1);
    pipelined.extend(keep_alive("pipelined-2", &b2));
    pipelined.extend(post_15("pipelined-3", &b3));
    cases.push(case(
        "pipelined deliveries are each answered, in order, and each stored",
        pipelined,
        Expect::stored("pipelined-1", &b1, None)
            .then_stored("pipelined-2", &b2)
            .then_stored("pipelined-3", &b3),
    ));
    let mut pipelined = {
        let mut headers = centrepoint("pipelined-unsigned", "15");
        headers.extend([h("Host", "r"), h("Content-Length", b1.len().to_string())]);
        raw("POST /webhook HTTP/1.1", &headers, &b1)
    };
    let b4 = upload_body("93105");
    pipelined.extend(post_15("pipelined-after-refusal", &b4));
    cases.push(case(
        "a refused pipelined request does not stop the next one",
        pipelined,
        Expect {
            statuses: vec![401, 200],
            stored: vec![("pipelined-after-refusal".into(), b4, None)],
            logged: vec![401],
            absent: None,
            present: None,
        },
    ));
    // A request refused before its body is read: the unread body (which holds a whole
    // signed request) must never be parsed as the next request.
    let hidden = post_15("hidden-in-unread-body", &upload_body("93106"));
    let mut headers = vec![h("X-ActiGraph-Delivery", "no-event"), h("X-ActiGraph-Webhook-Id", "15")];
    headers.extend([h("Host", "r"), h("Content-Length", hidden.len().to_string())]);
    cases.push(case(
        "the unread body of a refused request is never run as a request",
        raw("POST /webhook HTTP/1.1", &headers, &hidden),
        Expect::refused(400),
    ));

    // --- Request line: methods, paths, versions ------------------------------------
    for (rule, method) in [
        ("GET on the webhook path is 405", "GET"),
        ("PUT on the webhook path is 405", "PUT"),
        ("DELETE on the webhook path is 405", "DELETE"),
        ("PATCH on the webhook path is 405", "PATCH"),
        ("TRACE on the webhook path is 405", "TRACE"),
        ("a lower-case method is another method: 405", "post"),
    ] {
        let request = signed_15(&format!("{method} /webhook HTTP/1.1"), "wrong-method", &body, &[]);
        cases.push(case(rule, request, Expect::answered(405)));
    }
    cases.push(case(
        "HEAD on the webhook path is 405",
        raw("HEAD /webhook HTTP/1.1", &[h("Host", "r"), h("Connection", "close")], b""),
        Expect::answered(405),
    ));
    for (rule, target) in [
        ("a trailing slash is another path: 404", "/webhook/"),
        ("paths are case-sensitive: 404", "/WEBHOOK"),
        ("dot segments are not resolved: 404", "/webhook/../webhook"),
        ("a doubled slash is another path: 404", "//webhook"),
        ("an encoded slash is another path: 404", "/webhook%2f"),
        ("an encoded letter is another path: 404", "/%77ebhook"),
    ] {
        let request = signed_15(&format!("POST {target} HTTP/1.1"), "path-trick", &body, &[]);
        cases.push(case(rule, request, Expect::answered(404)));
    }
    let query_body = upload_body("93107");
    cases.push(case(
        "a query string does not change the path: the delivery is stored",
        signed_15("POST /webhook?x=1&../..=%00 HTTP/1.1", "with-query", &query_body, &[]),
        Expect::stored("with-query", &query_body, None),
    ));
    let absolute_body = upload_body("93108");
    cases.push(case(
        "an absolute-form request target reaches the webhook path",
        signed_15("POST http://receiver.example/webhook HTTP/1.1", "absolute-form", &absolute_body, &[]),
        Expect::stored("absolute-form", &absolute_body, None),
    ));
    cases.push(case(
        "an absolute-form target for another path is 404",
        signed_15("POST http://receiver.example/admin HTTP/1.1", "absolute-other", &body, &[]),
        Expect::answered(404),
    ));
    cases.push(case(
        "an asterisk-form target is 404",
        raw("OPTIONS * HTTP/1.1", &[h("Host", "r"), h("Connection", "close")], b""),
        Expect::answered(404),
    ));
    let http10_body = upload_body("93109");
    let mut headers = centrepoint("http-1-0", "15");
    headers.extend([h("X-ActiGraph-Signature", sign(PASSCODE_15, &http10_body))]);
    headers.push(h("Content-Length", http10_body.len().to_string()));
    cases.push(case(
        "an HTTP/1.0 delivery is stored",
        raw("POST /webhook HTTP/1.0", &headers, &http10_body),
        Expect::stored("http-1-0", &http10_body, None),
    ));
    let no_host_body = upload_body("93110");
    let mut headers = centrepoint("no-host", "15");
    headers.extend([h("X-ActiGraph-Signature", sign(PASSCODE_15, &no_host_body))]);
    headers.extend([h("Content-Length", no_host_body.len().to_string()), h("Connection", "close")]);
    cases.push(case(
        "an HTTP/1.1 delivery without Host is stored (tunnels rewrite Host anyway)",
        raw("POST /webhook HTTP/1.1", &headers, &no_host_body),
        Expect::stored("no-host", &no_host_body, None),
    ));
    cases.push(case(
        "an unknown HTTP version is 400",
        signed_15("POST /webhook HTTP/2.0", "http-2-0", &body, &[]),
        Expect::answered(400),
    ));
    cases.push(case(
        "an HTTP/2 preface on the HTTP/1 port is closed without an answer",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        Expect::closed(),
    ));
    cases.push(case(
        "a TLS handshake on the plain-HTTP port is 400",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".repeat(8),
        Expect::answered(400),
    ));
    cases.push(case(
        "a request target over 64 KiB is refused",
        signed_15(&format!("POST /webhook?{} HTTP/1.1", "a".repeat(70 * 1024)), "long-uri", &body, &[]),
        Expect::answered(414),
    ));

    // --- Header syntax ---------------------------------------------------------------
    let header_case = |rule: &'static str, id: &str, extra: Vec<u8>, expect: Expect| {
        let mut headers = vec![extra];
        headers.extend(centrepoint(id, "15"));
        headers.push(h("X-ActiGraph-Signature", &sig));
        headers.extend(framing(&body));
        case(rule, raw("POST /webhook HTTP/1.1", &headers, &body), expect)
    };
    cases.push(header_case(
        "a null byte in a header value is 400",
        "nul-value",
        b"X-Note: a\0b".to_vec(),
        Expect::answered(400),
    ));
    cases.push(header_case(
        "a null byte in a header name is 400",
        "nul-name",
        b"X-No\0te: a".to_vec(),
        Expect::answered(400),
    ));
    cases.push(header_case(
        "a bare CR in a header value (header injection) is 400",
        "bare-cr",
        b"X-Note: a\rX-ActiGraph-Webhook-Id: 16".to_vec(),
        Expect::answered(400),
    ));
    cases.push(header_case(
        "a folded (obs-fold) header line is 400",
        "obs-fold",
        b"X-Note: a\r\n continued".to_vec(),
        Expect::answered(400),
    ));
    cases.push(header_case(
        "whitespace between a header name and its colon is 400",
        "space-colon",
        b"X-ActiGraph-Event : validation".to_vec(),
        Expect::answered(400),
    ));
    cases.push(header_case(
        "a header name with a forbidden character is 400",
        "bad-name",
        b"X-ActiGraph(Event): upload".to_vec(),
        Expect::answered(400),
    ));
    // hyper's 64 KiB head limit is checked between reads, so a head a little over it can
    // still pass; one that keeps growing is cut off.
    cases.push(Case {
        rule: "a header that never ends is cut off with 431 once the head passes the limit",
        send: Send::Trickle {
            head: b"POST /webhook HTTP/1.1\r\nHost: r\r\nX-Note: ".to_vec(),
            piece: vec![b'n'; 4096],
            pause: Duration::from_millis(2),
        },
        expect: Expect::answered(431),
    });
    let many: Vec<Vec<u8>> = (0..150).map(|i| h(&format!("X-Note-{i}"), "x")).collect();
    let mut headers = many;
    headers.extend(centrepoint("many-headers", "15"));
    headers.push(h("X-ActiGraph-Signature", &sig));
    headers.extend(framing(&body));
    cases.push(case(
        "more than 100 headers is 431",
        raw("POST /webhook HTTP/1.1", &headers, &body),
        Expect::answered(431),
    ));
    for (rule, name, value, status) in [
        ("an event name that is not UTF-8 is 400", "X-ActiGraph-Event", b"upl\xf6ad".to_vec(), 400),
        ("a webhook id that is not UTF-8 is 400", "X-ActiGraph-Webhook-Id", b"1\xff5".to_vec(), 400),
        (
            "a signature that is not UTF-8 counts as missing: 401",
            "X-ActiGraph-Signature",
            b"\xc3\x28abc=".to_vec(),
            401,
        ),
        ("an empty delivery id is 400", "X-ActiGraph-Delivery", Vec::new(), 400),
        (
            "a delivery id over 200 characters is 400",
            "X-ActiGraph-Delivery",
            "d".repeat(201).into_bytes(),
            400,
        ),
        ("an event name with a space inside is 400", "X-ActiGraph-Event", b"up load".to_vec(), 400),
        ("an event name over 100 characters is 400", "X-ActiGraph-Event", "e".repeat(101).into_bytes(), 400),
    ] {
        let mut headers: Vec<Vec<u8>> = centrepoint("odd-header", "15")
            .into_iter()
            .filter(|line| !line.to_ascii_lowercase().starts_with(name.to_ascii_lowercase().as_bytes()))
            .collect();
        if name != "X-ActiGraph-Signature" {
            headers.push(h("X-ActiGraph-Signature", &sig));
        }
        headers.push(h(name, value));
        headers.extend(framing(&body));
        cases.push(case(rule, raw("POST /webhook HTTP/1.1", &headers, &body), Expect::refused(status)));
    }
    let sql_id = "x');DROP/**/TABLE/**/deliveries;--";
    let sql_body = upload_body("93111");
    cases.push(case(
        "an SQL-looking delivery id is stored verbatim (and nothing is dropped)",
        post_15(sql_id, &sql_body),
        Expect::stored(sql_id, &sql_body, None),
    ));
    let odd_event_body = br#"{"studyId":"903"}"#.to_vec();
    let mut headers = vec![
        h("X-ActiGraph-Event", "../../etc/passwd"),
        h("X-ActiGraph-Delivery", "path-event"),
        h("X-ActiGraph-Webhook-Id", "15"),
        h("X-ActiGraph-Signature", sign(PASSCODE_15, &odd_event_body)),
    ];
    headers.extend(framing(&odd_event_body));
    cases.push(case(
        "a path-like event name is an unknown event: stored whole and flagged",
        raw("POST /webhook HTTP/1.1", &headers, &odd_event_body),
        Expect::stored("path-event", &odd_event_body, Some("unknown_event")),
    ));
    // Duplicated CentrePoint headers: the first value is the one used, always.
    let dup_body = upload_body("93112");
    let dup_sig = sign(PASSCODE_15, &dup_body);
    let dup = |first: Vec<u8>, rest: Vec<Vec<u8>>| {
        let mut headers = vec![first];
        headers.extend(rest);
        headers.extend(framing(&dup_body));
        raw("POST /webhook HTTP/1.1", &headers, &dup_body)
    };
    let base = |id: &str| {
        vec![
            h("X-ActiGraph-Event", "upload"),
            h("X-ActiGraph-Delivery", id),
            h("X-ActiGraph-Webhook-Id", "15"),
            h("X-ActiGraph-Signature", &dup_sig),
        ]
    };
    cases.push(case(
        "with two X-ActiGraph-Delivery headers the first is the id",
        dup(h("X-ActiGraph-Delivery", "dup-delivery-first"), base("dup-delivery-second")),
        Expect::stored("dup-delivery-first", &dup_body, None),
    ));
    cases.push(case(
        "with two X-ActiGraph-Event headers the first is the event",
        dup(h("X-ActiGraph-Event", "upload"), {
            let mut rest = base("dup-event");
            rest[0] = h("X-ActiGraph-Event", "validation");
            rest
        }),
        Expect::stored("dup-event", &dup_body, None),
    ));
    cases.push(case(
        "with two webhook ids the first decides the passcode: 401",
        dup(h("X-ActiGraph-Webhook-Id", "16"), base("dup-webhook")),
        Expect::refused(401),
    ));
    cases.push(case(
        "with a wrong signature first and the right one second: 401",
        dup(h("X-ActiGraph-Signature", sign(PASSCODE_16, &dup_body)), base("dup-signature-wrong-first")),
        Expect::refused(401),
    ));
    let dup_body_2 = upload_body("93113");
    let mut headers = centrepoint("dup-signature-right-first", "15");
    headers.extend([
        h("X-ActiGraph-Signature", sign(PASSCODE_15, &dup_body_2)),
        h("X-ActiGraph-Signature", "bm9wZQ=="),
    ]);
    headers.extend(framing(&dup_body_2));
    cases.push(case(
        "with the right signature first and a wrong one second the delivery is stored",
        raw("POST /webhook HTTP/1.1", &headers, &dup_body_2),
        Expect::stored("dup-signature-right-first", &dup_body_2, None),
    ));

    // --- Signatures (webhook 15 has a passcode) --------------------------------------
    let digest = BASE64.decode(&sig).expect("a base64 signature");
    let sha256_hex =
        signature::sign(Scheme::Sha256Hex, PASSCODE_15.as_bytes(), &body).expect("hex signs any body");
    for (rule, value) in [
        ("a wrong signature is 401", BASE64.encode([0u8; 32])),
        ("a truncated signature is 401", sig[..sig.len() - 2].to_string()),
        ("an empty signature is 401", String::new()),
        ("a signature one bit off is 401", {
            let mut flipped = digest.clone();
            flipped[31] ^= 1;
            BASE64.encode(flipped)
        }),
        ("a sha256= prefix with no digest is 401", "sha256=".into()),
        (
            "a 128-hex-digit sha1= value (the 2015 form) that does not match is 401",
            format!("sha1={}", "AB".repeat(64)),
        ),
        ("a hex digest without its prefix is 401", sha256_hex["sha256=".len()..].to_string()),
        ("the digest twice is 401", format!("{sig}{sig}")),
        ("a signature over another body is 401", sign(PASSCODE_15, &upload_body("93199"))),
        ("a signature made with the passcode as the body is 401", sign(PASSCODE_15, PASSCODE_15.as_bytes())),
    ] {
        let mut headers = centrepoint("bad-signature", "15");
        headers.push(h("X-ActiGraph-Signature", value));
        headers.extend(framing(&body));
        cases.push(case(rule, raw("POST /webhook HTTP/1.1", &headers, &body), Expect::refused(401)));
    }
    for (rule, webhook) in [
        ("the right signature under another webhook id is 401", "16"),
        ("a webhook id nobody configured is 401 (no default)", "99"),
    ] {
        let mut headers = centrepoint("wrong-webhook", webhook);
        headers.push(h("X-ActiGraph-Signature", &sig));
        headers.extend(framing(&body));
        cases.push(case(rule, raw("POST /webhook HTTP/1.1", &headers, &body), Expect::refused(401)));
    }
    let mut headers = vec![h("X-ActiGraph-Event", "upload"), h("X-ActiGraph-Delivery", "no-webhook-id")];
    headers.push(h("X-ActiGraph-Signature", &sig));
    headers.extend(framing(&body));
    cases.push(case(
        "a delivery without a webhook id is 401 when there is no default",
        raw("POST /webhook HTTP/1.1", &headers, &body),
        Expect::refused(401),
    ));
    let upper_body = upload_body("93114");
    let upper = signature::sign(Scheme::Sha256Hex, PASSCODE_15.as_bytes(), &upper_body)
        .expect("hex signs any body")
        .to_ascii_uppercase();
    cases.push(case(
        "an upper-case SHA256= prefix and hex digest are accepted",
        with_credentials(
            "upper-hex",
            "15",
            vec![h("X-ActiGraph-Signature", format!("  {upper}  "))],
            &upper_body,
        ),
        Expect::stored("upper-hex", &upper_body, None),
    ));
    let legacy_body = upload_body("93140");
    let legacy = signature::sign(Scheme::Sha512Utf16Hex, PASSCODE_15.as_bytes(), &legacy_body)
        .expect("an upload body is text");
    cases.push(case(
        "the 2015 sha1=<128 hex> HMAC-SHA512 over UTF-16 form is accepted",
        with_credentials("legacy-sha512", "15", vec![h("X-ActiGraph-Signature", legacy)], &legacy_body),
        Expect::stored("legacy-sha512", &legacy_body, None),
    ));
    // That form signs text, so a body that is not UTF-8 cannot carry it, whatever the digest.
    let mut legacy_bytes = upload_body("93141");
    legacy_bytes[12] = 0xff;
    cases.push(case(
        "the 2015 form over a body that is not UTF-8 is 401",
        with_credentials(
            "legacy-sha512-not-utf8",
            "15",
            vec![h("X-ActiGraph-Signature", format!("sha1={}", "AB".repeat(64)))],
            &legacy_bytes,
        ),
        Expect::refused(401),
    ));

    // --- Basic (webhook 20) and bearer (webhook 21) ----------------------------------
    let right = format!("{BASIC_USER}:{BASIC_PASSWORD}");
    let token = BASE64.encode(&right);
    for (rule, value) in [
        ("Basic credentials without a colon are 401", basic(BASIC_USER.as_bytes())),
        ("Basic credentials with an empty password are 401", basic(format!("{BASIC_USER}:").as_bytes())),
        ("Basic credentials with an empty user are 401", basic(format!(":{BASIC_PASSWORD}").as_bytes())),
        (
            "Basic credentials with the user in another case are 401",
            basic(format!("CentrePoint:{BASIC_PASSWORD}").as_bytes()),
        ),
        ("Basic credentials with a NUL after the password are 401", basic(format!("{right}\0").as_bytes())),
        ("Basic credentials that are not base64 are 401", "Basic !!!!".into()),
        ("Basic with a tab instead of a space is 401", format!("Basic\t{token}")),
        ("Basic with no credentials is 401", "Basic".into()),
        ("Basic credentials followed by junk are 401", format!("Basic {token} junk")),
        ("the Basic token under the Bearer scheme is 401", format!("Bearer {token}")),
    ] {
        let request = with_credentials("basic-trick", "20", vec![h("Authorization", value)], &body);
        cases.push(case(rule, request, Expect::refused(401)));
    }
    for (rule, id, value) in [
        ("the Basic scheme name is case-insensitive", "basic-lower", format!("basic {token}")),
        ("extra spaces after the Basic scheme are tolerated", "basic-spaces", format!("BASIC    {token}")),
    ] {
        let accepted = upload_body(if id == "basic-lower" { "93115" } else { "93116" });
        cases.push(case(
            rule,
            with_credentials(id, "20", vec![h("Authorization", value)], &accepted),
            Expect::stored(id, &accepted, None),
        ));
    }
    for (rule, value) in [
        ("a bearer scheme with an empty token is 401", "Bearer ".to_string()),
        ("a bearer scheme with no token is 401", "Bearer".into()),
        ("a prefix of the bearer token is 401", format!("Bearer {}", &BEARER[..BEARER.len() - 1])),
        ("the bearer token followed by junk is 401", format!("Bearer {BEARER} junk")),
        ("the bearer token under another scheme is 401", format!("Token {BEARER}")),
        ("Basic credentials for a bearer webhook are 401", basic(right.as_bytes())),
    ] {
        let request = with_credentials("bearer-trick", "21", vec![h("Authorization", value)], &body);
        cases.push(case(rule, request, Expect::refused(401)));
    }
    cases.push(case(
        "an Authorization header that is not UTF-8 counts as missing: 401",
        with_credentials("bearer-not-utf8", "21", vec![h("Authorization", b"Bearer tok-\xff")], &body),
        Expect::refused(401),
    ));
    let bearer_body = upload_body("93117");
    cases.push(case(
        "the bearer scheme name is case-insensitive",
        with_credentials(
            "bearer-lower",
            "21",
            vec![h("Authorization", format!("bearer {BEARER}"))],
            &bearer_body,
        ),
        Expect::stored("bearer-lower", &bearer_body, None),
    ));

    // --- Bodies (signed, so CentrePoint vouched for them: stored and flagged) --------
    let nested_arrays = "[".repeat(100_000).into_bytes();
    let nested_objects = r#"{"a":"#.repeat(30_000).into_bytes();
    let nested_field = format!(
        r#"{{"status":"error","uploadId":"93118","studyId":"903","message":{}1{}}}"#,
        "[".repeat(120),
        "]".repeat(120)
    )
    .into_bytes();
    let number = |upload: &str| {
        format!(r#"{{"status":"started","uploadId":{upload},"subjectId":"44732","studyId":"903"}}"#)
            .into_bytes()
    };
    let mut not_utf8 = upload_body("93119");
    not_utf8[12] = 0xff;
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend(upload_body("93120"));
    let mut raw_nul = upload_body("93121");
    raw_nul.insert(13, 0);
    let mut trailing = upload_body("93122");
    trailing.extend_from_slice(b"}{\"status\":\"completed\"}");
    for (rule, id, body, flag) in [
        (
            "100 000 nested arrays are stored and flagged invalid_json",
            "nested-arrays",
            nested_arrays,
            Some("invalid_json"),
        ),
        (
            "30 000 nested objects are stored and flagged invalid_json",
            "nested-objects",
            nested_objects,
            Some("invalid_json"),
        ),
        (
            "a nested array where a message belongs is flagged invalid_payload",
            "nested-field",
            nested_field,
            Some("invalid_payload"),
        ),
        ("an id of 1e400 is flagged invalid_json", "id-1e400", number("1e400"), Some("invalid_json")),
        (
            "an id of 2^64 is flagged invalid_payload",
            "id-2-64",
            number("18446744073709551616"),
            Some("invalid_payload"),
        ),
        ("an id of 2^64 - 1 is stored as that integer", "id-u64-max", number("18446744073709551615"), None),
        ("a fractional id is flagged invalid_payload", "id-fraction", number("1.5"), Some("invalid_payload")),
        (
            "an id with 10 000 digits is flagged invalid_json",
            "id-10k-digits",
            number(&"9".repeat(10_000)),
            Some("invalid_json"),
        ),
        (
            "an id of 129 characters is flagged invalid_payload",
            "id-129",
            number(&format!("\"{}\"", "7".repeat(129))),
            Some("invalid_payload"),
        ),
        (
            "an id holding an escaped NUL is flagged invalid_payload",
            "id-nul",
            number(r#""93123\u0000""#),
            Some("invalid_payload"),
        ),
        (
            "a status holding an escaped NUL is flagged invalid_payload",
            "status-nul",
            br#"{"status":"started\u0000","uploadId":"93124","studyId":"903"}"#.to_vec(),
            Some("invalid_payload"),
        ),
        ("a body that is not UTF-8 is flagged invalid_json", "body-not-utf8", not_utf8, Some("invalid_json")),
        ("a body with a byte-order mark is flagged invalid_json", "body-bom", bom, Some("invalid_json")),
        ("a raw NUL byte in the body is flagged invalid_json", "body-raw-nul", raw_nul, Some("invalid_json")),
        (
            "trailing bytes after the JSON object are flagged invalid_json",
            "body-trailing",
            trailing,
            Some("invalid_json"),
        ),
        (
            "a gzip body is stored as sent, never inflated",
            "body-gzip",
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\xae\x05\x00\x43\xbf\xa6\xa3\x02\x00\x00\x00"
                .to_vec(),
            Some("invalid_json"),
        ),
    ] {
        let extra = if id == "body-gzip" { vec![h("Content-Encoding", "gzip")] } else { Vec::new() };
        let request = signed_15("POST /webhook HTTP/1.1", id, &body, &extra);
        cases.push(case(rule, request, Expect::stored(id, &body, flag)));
    }
    let dup_keys = br#"{"status":"started","status":"completed","uploadId":"93125","upload_id":"93126","studyId":"903"}"#;
    cases.push(case(
        "duplicate JSON keys are stored; the upload follows what the parser read",
        post_15("duplicate-keys", dup_keys),
        Expect::stored("duplicate-keys", dup_keys, None),
    ));
    let large = format!(
        r#"{{"status":"started","uploadId":"93127","studyId":"903","note":"{}"}}"#,
        "n".repeat(200_000)
    );
    cases.push(case(
        "a 200 KB body under the limit is stored whole",
        post_15("large-body", large.as_bytes()),
        Expect::stored("large-body", large.as_bytes(), None),
    ));

    // --- The validation handshake ----------------------------------------------------
    let splitting = br#"{"WebhookId":"15","ValidationCode":"abc\r\nSet-Cookie: session=evil"}"#;
    let mut headers =
        vec![h("X-ActiGraph-Event", "validation"), h("X-ActiGraph-Delivery", "validation-split")];
    headers.extend([
        h("X-ActiGraph-Webhook-Id", "15"),
        h("X-ActiGraph-Signature", sign(PASSCODE_15, splitting)),
    ]);
    headers.extend(framing(splitting));
    cases.push(case(
        "a validation code carrying CRLF (response splitting) is 400 and not echoed",
        raw("POST /webhook HTTP/1.1", &headers, splitting),
        Expect::refused(400).without("set-cookie"),
    ));
    let long_code = format!(r#"{{"WebhookId":"15","ValidationCode":"{}"}}"#, "c".repeat(10_000)).into_bytes();
    let mut headers =
        vec![h("X-ActiGraph-Event", "validation"), h("X-ActiGraph-Delivery", "validation-long")];
    headers.extend([
        h("X-ActiGraph-Webhook-Id", "15"),
        h("X-ActiGraph-Signature", sign(PASSCODE_15, &long_code)),
    ]);
    headers.extend(framing(&long_code));
    cases.push(case(
        "a 10 000-character validation code is 400",
        raw("POST /webhook HTTP/1.1", &headers, &long_code),
        Expect::refused(400),
    ));
    let code = "4d2f0c1e-0000-4000-8000-hostile00001";
    let validation = format!(r#"{{"WebhookId":"15","ValidationCode":"{code}"}}"#).into_bytes();
    let mut headers =
        vec![h("X-ActiGraph-Event", "validation"), h("X-ActiGraph-Delivery", "validation-unsigned")];
    headers.extend([h("X-ActiGraph-Webhook-Id", "15"), h("X-ActiGraph-Hook-Secret", code)]);
    headers.extend(framing(&validation));
    cases.push(case(
        "an unsigned validation is answered with its code but never stored",
        raw("POST /webhook HTTP/1.1", &headers, &validation),
        Expect {
            statuses: vec![200],
            stored: Vec::new(),
            logged: vec![200],
            absent: None,
            present: Some(format!("x-actigraph-hook-secret: {code}")),
        },
    ));
    cases
}

/// The process's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read the receiver's status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

#[test]
fn hostile_requests_get_their_expected_status_and_leave_exactly_the_expected_trace() {
    let data = DataDir::with_config(CONFIG);
    configure(&data);
    let server = data.serve();
    let mut trace = Trace { data: &data, server: &server, logged: 0, stored: 0, sentinels: 0 };
    let cases = cases();
    let rows = cases.len();
    assert!(rows >= 40, "the table has at least 40 hostile requests ({rows})");
    for case in cases {
        trace.run(case);
    }
    assert_eq!(
        data.count("SELECT count(*) FROM sqlite_master WHERE name = 'deliveries'"),
        1,
        "the deliveries table is still there"
    );

    // Slowloris: one client trickling its header is cut off by the header timeout.
    let head = b"POST /webhook HTTP/1.1\r\nHost: r\r\nX-ActiGraph-Event: upload\r\nX-Note: ";
    let slow = trickle(server.addr, head, b"s", Duration::from_millis(50), Duration::from_secs(20));
    assert!(
        slow.closed_by_server,
        "a trickled header is cut off by the header timeout ({} bytes sent)",
        slow.sent
    );
    assert!(statuses(&slow.text).is_empty(), "a trickled header gets no answer: {}", slow.text);
    trace.sentinel("slowloris");

    // A crowd of them holding every connection slot (max_connections = 32) delays a real
    // delivery by about the header timeout; it is never dropped.
    let crowd: Vec<_> = (0..40)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || {
                trickle(addr, head, b"s", Duration::from_millis(50), Duration::from_secs(30))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let crowd_body = upload_body("93130");
    let reply = raw_exchange(server.addr, &post_15("after-the-crowd", &crowd_body));
    assert_eq!(
        reply.status,
        Some(200),
        "a delivery gets through a crowd of slowloris clients: {}",
        reply.text
    );
    for slow in crowd {
        let slow = slow.join().expect("a slowloris client");
        assert!(slow.closed_by_server, "every slowloris connection of the crowd is cut off");
        assert!(statuses(&slow.text).is_empty(), "no slowloris client gets an answer: {}", slow.text);
    }
    trace.stored += 1;
    trace.sentinel("slowloris crowd");

    // Still healthy: /healthz, and a valid delivery stored.
    let health = raw_exchange(server.addr, b"GET /healthz HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n");
    assert_eq!(health.status, Some(200), "/healthz answers 200 after the hostile table: {}", health.text);
    let last_body = upload_body("93131");
    let reply = raw_exchange(server.addr, &post_15("still-healthy", &last_body));
    assert_eq!(reply.status, Some(200), "a valid delivery is stored after the hostile table: {}", reply.text);
    assert_eq!(
        data.deliveries("still-healthy").len(),
        1,
        "a valid delivery is stored after the hostile table"
    );
    data.assert_uploads_match_replay();
    assert!(!server.log().contains("panicked"), "no panic in the receiver's log:\n{}", server.log());
    eprintln!(
        "{rows} hostile requests checked; {} stored, {} refused-log rows",
        trace.stored + 1,
        trace.logged
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_refused_requests_bounds_the_refused_log_and_memory() {
    const KEEP: usize = 50;
    const FLOOD: usize = 12_000;
    const SENDERS: usize = 12;
    let data = DataDir::with_config(&format!("refused_log_size = {KEEP}\n"));
    configure(&data);
    let server = data.serve();
    let pid = server.pid();
    let client = reqwest::Client::builder().no_proxy().timeout(WAIT_DEADLINE).build().expect("client");
    let url = server.url.clone();

    // Each refused request carries a 4 KiB body (the log keeps 2 KiB of it) and varies
    // its reason: unsigned, wrongly signed, unknown webhook, malformed headers.
    let flood = |count: usize, offset: usize| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let mut statuses = std::collections::BTreeMap::new();
            for n in offset..offset + count {
                let id = format!("flood-{n}");
                let body = vec![b'f'; 4096];
                let mut request = client.post(&url).body(body).header("X-ActiGraph-Event", "upload");
                request = match n % 4 {
                    0 => request.header("X-ActiGraph-Delivery", &id).header("X-ActiGraph-Webhook-Id", "15"),
                    1 => request
                        .header("X-ActiGraph-Delivery", &id)
                        .header("X-ActiGraph-Webhook-Id", "15")
                        .header("X-ActiGraph-Signature", BASE64.encode([7u8; 32])),
                    2 => request.header("X-ActiGraph-Delivery", &id).header("X-ActiGraph-Webhook-Id", "4242"),
                    _ => request.header("X-ActiGraph-Delivery", "has space"),
                };
                let status = request.send().await.map_or(0, |r| r.status().as_u16());
                *statuses.entry(status).or_insert(0usize) += 1;
            }
            statuses
        }
    };
    let run = |total: usize, offset: usize| {
        let tasks: Vec<_> = (0..SENDERS)
            .map(|i| tokio::spawn(flood(total / SENDERS, offset + i * (total / SENDERS))))
            .collect();
        async move {
            let mut all = std::collections::BTreeMap::new();
            for task in tasks {
                for (status, n) in task.await.expect("a flood sender") {
                    *all.entry(status).or_insert(0usize) += n;
                }
            }
            all
        }
    };
    // Warm up first, so that the measure compares a receiver at its working size.
    let warm = run(1200, 0).await;
    assert_eq!(warm.keys().copied().collect::<Vec<_>>(), vec![400, 401], "the warm-up is refused: {warm:?}");
    let before = rss_kib(pid);

    // Real deliveries keep arriving during the flood and must all be stored.
    let real = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let mut stored = Vec::new();
            for n in 0..20 {
                let id = format!("real-during-flood-{n}");
                let body = upload_body(&format!("9320{n:02}"));
                let reply = harness::Delivery::new("upload", &id, body.clone())
                    .with_header("X-ActiGraph-Signature", &sign(PASSCODE_15, &body))
                    .post(&client, &url)
                    .await;
                assert_eq!(reply.status, 200, "a real delivery is stored during a flood: {reply:?}");
                stored.push(id);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            stored
        })
    };
    let flooded = run(FLOOD, 1200).await;
    let stored = real.await.expect("the real sender");
    let after = rss_kib(pid);
    assert_eq!(
        flooded.keys().copied().collect::<Vec<_>>(),
        vec![400, 401],
        "every flood request is refused (none accepted, none failed): {flooded:?}"
    );

    // Let the writer finish what is queued: once a refusal sent now is in the log,
    // everything before it is.
    let marker = "flood-marker";
    let marker_body = upload_body("1");
    let mut headers = centrepoint(marker, "15");
    headers.extend(framing(&marker_body));
    assert_eq!(
        raw_exchange(server.addr, &raw("POST /webhook HTTP/1.1", &headers, &marker_body)).status,
        Some(401)
    );
    harness::wait_until("the marker refusal is logged", || {
        data.refused().last().and_then(|r| r.delivery_id.clone()).as_deref() == Some(marker)
    });
    let rows = data.refused().len();
    assert!(
        rows <= KEEP,
        "the refused log keeps at most refused_log_size = {KEEP} rows after {FLOOD} refusals: {rows}"
    );
    for id in &stored {
        assert_eq!(data.deliveries(id).len(), 1, "{id}, sent during the flood, is stored");
    }
    assert_eq!(
        data.count("SELECT count(*) FROM deliveries"),
        stored.len() as i64,
        "no flood request is stored"
    );
    let files: u64 = ["cpwatch.sqlite3", "cpwatch.sqlite3-wal"]
        .iter()
        .filter_map(|name| std::fs::metadata(data.dir.join(name)).ok())
        .map(|m| m.len())
        .sum();
    let growth_mib = after.saturating_sub(before) / 1024;
    eprintln!(
        "flood of {FLOOD} refused requests: VmRSS {before} KiB -> {after} KiB; refused log {rows} rows; \
         database and WAL {} KiB; statuses {flooded:?}",
        files / 1024
    );
    // Generous bounds: memory and file sizes on a shared machine are noisy; an unbounded
    // log or queue would grow by far more than this (the flood carries ~47 MiB of bodies).
    assert!(
        growth_mib < 200,
        "the flood grows the receiver's memory by less than 200 MiB ({growth_mib} MiB)"
    );
    assert!(files < 64 << 20, "the flood grows the database and its WAL by less than 64 MiB ({files} bytes)");
    let health = raw_exchange(server.addr, b"GET /healthz HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n");
    assert_eq!(health.status, Some(200), "/healthz answers 200 after the flood: {}", health.text);
    server.stop();
}
