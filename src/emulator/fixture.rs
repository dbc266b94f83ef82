//! Reads a delivery written as an HTTP request (`*.http`): the request line, headers,
//! a blank line, then the body bytes exactly. `cpwatch send --fixture` replays one.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFixture {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0} has no blank line between its headers and its body")]
    NoBlankLine(String),
    #[error("{0} does not start with a request line such as `POST /webhook HTTP/1.1`")]
    NoRequestLine(String),
    #[error("{path}: header line {line:?} has no colon")]
    BadHeader { path: String, line: String },
}

impl HttpFixture {
    pub fn read(path: &Path) -> Result<Self, FixtureError> {
        let name = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|source| FixtureError::Read { path: name.clone(), source })?;
        Self::parse(&bytes, &name)
    }

    pub fn parse(bytes: &[u8], name: &str) -> Result<Self, FixtureError> {
        let (head, body) = split_head(bytes).ok_or_else(|| FixtureError::NoBlankLine(name.into()))?;
        let head = String::from_utf8_lossy(head);
        let mut lines = head.lines();
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split_whitespace();
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            return Err(FixtureError::NoRequestLine(name.into()));
        };
        let headers = lines
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                line.split_once(':')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .ok_or_else(|| FixtureError::BadHeader { path: name.into(), line: line.into() })
            })
            .collect::<Result<_, _>>()?;
        Ok(HttpFixture { method: method.into(), path: path.into(), headers, body: body.to_vec() })
    }

    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn split_head(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let (at, len) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            if a.0 < b.0 {
                a
            } else {
                b
            }
        }
        (a, b) => a.or(b)?,
    };
    Some((&bytes[..at], &bytes[at + len..]))
}
