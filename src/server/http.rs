//! The broker's HTTP endpoints on `metrics_listen`: `GET /metrics` (every metric, Prometheus
//! text format) and `GET /ready` (200 "ready" when the broker serves Kafka clients and its
//! object store answers; 503 with the reason otherwise). Minimal HTTP/1.1: one request per
//! connection, the request head read with a size and time bound, `Connection: close`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Largest request head read; a longer one is answered 431.
const MAX_HEAD: usize = 8 * 1024;
/// A client gets this long to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What `/ready` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// One line per part: `kafka: serving`, `tier: ok`, or why not.
    pub detail: String,
}

pub type ReadyCheck = Arc<dyn Fn() -> Readiness + Send + Sync>;

/// More metrics in Prometheus' text format, appended to the recorder's (client telemetry).
pub type MoreMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves until `cancel`; connection tasks are tracked by `tasks`.
pub async fn serve(
    listener: TcpListener,
    ready: ReadyCheck,
    more: MoreMetrics,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        let (ready, more) = (ready.clone(), more.clone());
        tasks.spawn(async move {
            if let Err(e) = answer(stream, peer, (&ready, &more)).await {
                tracing::debug!(%peer, error = %e, "metrics listener: connection failed");
            }
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    peer: SocketAddr,
    routes: (&ReadyCheck, &MoreMetrics),
) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(r) => r?,
        Err(_) => return Ok(()), // a client that sends nothing gets nothing
    };
    let (status, content_type, body) = match head {
        None => (431, "text/plain", "request header too large\n".to_string()),
        Some(head) => respond(&head, routes),
    };
    tracing::trace!(%peer, status, "metrics listener: request");
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// The request head up to its blank line, `None` when it exceeds [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Status, content type and body for a request head.
fn respond(head: &str, (ready, more): (&ReadyCheck, &MoreMetrics)) -> (u16, &'static str, String) {
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return (405, "text/plain", "only GET\n".into());
    }
    match path {
        "/metrics" => {
            let mut body = crate::metrics::render();
            body.push_str(&more());
            (200, "text/plain; version=0.0.4", body)
        }
        "/ready" => {
            let r = ready();
            let status = if r.ready { 200 } else { 503 };
            let first = if r.ready { "ready" } else { "not ready" };
            (status, "text/plain", format!("{first}\n{}", r.detail))
        }
        _ => (
            404,
            "text/plain",
            "not found: try /metrics or /ready\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_statuses() {
        let up: ReadyCheck = Arc::new(|| Readiness {
            ready: true,
            detail: "kafka: serving\ntier: ok\n".into(),
        });
        let down: ReadyCheck = Arc::new(|| Readiness {
            ready: false,
            detail: "tier: failing for 3 s: refused\n".into(),
        });
        let more: MoreMetrics = Arc::new(|| "tiercel_client_x{client_id=\"c\"} 1\n".into());
        let (up, down) = ((&up, &more), (&down, &more));
        let (s, _, body) = respond("GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", up);
        assert_eq!((s, body.starts_with("ready\n")), (200, true));
        let (s, _, body) = respond("GET /ready HTTP/1.1\r\n\r\n", down);
        assert_eq!(s, 503);
        assert!(body.contains("refused"), "{body}");
        let (s, _, body) = respond("GET /metrics?x=1 HTTP/1.1\r\n\r\n", up);
        assert_eq!(s, 200);
        assert!(
            body.ends_with("tiercel_client_x{client_id=\"c\"} 1\n"),
            "{body}"
        );
        assert_eq!(respond("GET /nope HTTP/1.1\r\n\r\n", up).0, 404);
        assert_eq!(respond("POST /ready HTTP/1.1\r\n\r\n", up).0, 405);
        assert_eq!(respond("", up).0, 405, "garbage is not a GET");
    }
}
