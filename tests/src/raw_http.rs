//! Raw HTTP/1.1 over plain TCP sockets, for tests about connections rather
//! than requests: connecting from a chosen loopback source address (the whole
//! 127.0.0.0/8 is local on Linux, so 127.0.0.2 is "another client"), reading
//! a response until the server closes, and looking at a socket without
//! waiting on it.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `127.0.0.1:port` from `source` (port chosen by the kernel).
pub async fn connect_from(source: IpAddr, port: u16) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4().context("creating a socket")?;
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("binding the client socket to {source}"))?;
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .with_context(|| format!("connecting from {source} to port {port}"))
}

/// Reads until the server closes the connection (or resets it), failing
/// after `deadline`; returns what arrived.
pub async fn read_until_closed(
    stream: &mut TcpStream,
    deadline: Duration,
) -> anyhow::Result<String> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(deadline, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(err) if err.kind() == ErrorKind::ConnectionReset => break,
                Err(err) => return Err(err),
            }
        }
        Ok(())
    })
    .await
    .with_context(|| format!("the server did not close the connection within {deadline:?}"))?
    .context("reading the response")?;
    Ok(String::from_utf8_lossy(&received).into_owned())
}

/// Sends `GET path` with `Connection: close` and returns the whole answer
/// (the server closes after it), failing after `deadline`.
pub async fn get_and_close(
    stream: &mut TcpStream,
    path: &str,
    deadline: Duration,
) -> anyhow::Result<String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    read_until_closed(stream, deadline).await
}

/// What a socket holds right now, without waiting.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// Everything received so far.
    pub received: Vec<u8>,
    /// The server closed (or reset) the connection.
    pub closed: bool,
}

impl Observed {
    /// Reads whatever `stream` has ready into `self`, without blocking.
    pub fn take_ready(&mut self, stream: &TcpStream) {
        let mut buf = [0u8; 4096];
        while !self.closed {
            match stream.try_read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(_) => self.closed = true,
            }
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }
}

/// The status code of a raw response (`HTTP/1.1 503 ...` gives 503).
pub fn status_of(response: &str) -> Option<u16> {
    response.split_whitespace().nth(1)?.parse().ok()
}

/// Whether a raw response's head has `name: value` (case-insensitive).
pub fn has_header(response: &str, name: &str, value: &str) -> bool {
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().skip(1).any(|line| {
        line.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case(name) && v.trim().eq_ignore_ascii_case(value)
        })
    })
}

/// Whether a raw response's head has a header called `name`.
pub fn has_header_named(response: &str, name: &str) -> bool {
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().skip(1).any(|line| {
        line.split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
    })
}
