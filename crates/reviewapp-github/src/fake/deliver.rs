//! Webhook deliveries as GitHub sends them, over plain HTTP/1.1.

use std::net::SocketAddr;

/// Posts a webhook delivery to `addr` as GitHub would (`X-GitHub-Event`, `X-GitHub-Delivery`,
/// `X-Hub-Signature-256` when `signature` is given) over plain HTTP/1.1, and returns the status
/// code and body of the answer.
pub async fn deliver(
    addr: SocketAddr,
    event: &str,
    body: &[u8],
    signature: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: GitHub-Hookshot/fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-GitHub-Event: {event}\r\nX-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958\r\nConnection: close\r\n",
        crate::webhook::WEBHOOK_PATH,
        body.len()
    );
    if let Some(signature) = signature {
        head.push_str(&format!("X-Hub-Signature-256: {signature}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    exchange(addr, &request).await
}

/// Sends raw bytes to `addr` and reads the HTTP answer until the server closes the connection.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // The server may close without reading a body it refused.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !answer.is_empty() => {
                break;
            }
            Err(e) => return Err(e),
        }
        if let Some(done) = complete(&answer) {
            answer.truncate(done);
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The length of a complete answer with a `content-length` header, if `bytes` holds one.
fn complete(bytes: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(bytes);
    let (head, _) = text.split_once("\r\n\r\n")?;
    let length: usize = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    })?;
    let total = head.len() + 4 + length;
    (bytes.len() >= total).then_some(total)
}
