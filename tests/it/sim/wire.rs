//! The one piece of HTTP/1.1 the test servers and proxies share: reading a whole message (a request,
//! or the answer to one) whose body has a Content-Length, from a connection that may carry several.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

pub struct Message {
    /// The start line and headers, `\r\n\r\n` included, as received.
    pub head: Vec<u8>,
    pub body: Vec<u8>,
}

impl Message {
    /// The start line's words: method and path of a request, or version and status of a response.
    pub fn start(&self) -> (String, String) {
        let text = String::from_utf8_lossy(&self.head);
        let mut words = text.split_whitespace();
        (
            words.next().unwrap_or("").to_owned(),
            words.next().unwrap_or("").to_owned(),
        )
    }

    /// A header's value (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<String> {
        String::from_utf8_lossy(&self.head)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    }
}

/// Reads the next message; `None` at the end of the connection. `bodiless` says the message has
/// no body whatever its Content-Length (the answer to a HEAD, a 204 or a 304).
pub async fn read_message(
    socket: &mut TcpStream,
    buf: &mut Vec<u8>,
    bodiless: impl Fn(&str) -> bool,
) -> Option<Message> {
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 16384];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut message = Message {
        head: buf[..header_end].to_vec(),
        body: Vec::new(),
    };
    let status = message.start().1;
    let length = if bodiless(&status) {
        0
    } else {
        message
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    while buf.len() < header_end + length {
        let mut chunk = vec![0u8; 1 << 20];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    message.body = buf[header_end..header_end + length].to_vec();
    buf.drain(..header_end + length);
    Some(message)
}

/// For requests: a request always has the body its Content-Length says.
pub fn request(_: &str) -> bool {
    false
}
