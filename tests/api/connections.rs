//! Connection bounds: slow request heads, idle keep-alive connections, the connection limit and
//! the head size, over HTTP/1.1 and HTTP/2 (h2c).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Reads until the peer closes the connection (EOF or reset); the bytes read on the way.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn healthz_request(addr: &str) -> String {
    format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n")
}

/// Reads one response with a Content-Length body from a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "connection closed before the answer");
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn two_hundred_half_sent_requests_are_dropped_after_the_header_timeout_while_a_normal_request_is_answered()
 {
    let app = spawn_app_with(|c, _| c.server.header_read_timeout_secs = 2).await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = connect(&app).await;
        stream
            .write_all(b"POST /start HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaa")
            .await
            .unwrap();
        slow.push(stream);
    }
    let answered = tokio::time::timeout(
        Duration::from_secs(1),
        app.http.get(format!("{}/healthz", app.base)).send(),
    )
    .await
    .expect("a normal request is answered while 200 heads are pending")
    .unwrap();
    assert_eq!(answered.status(), 200);
    let closed = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::future::join_all(slow.iter_mut().map(read_until_closed)),
    )
    .await
    .expect("every half-sent request is dropped");
    assert_eq!(closed.len(), 200);
    assert_eq!(
        app.http
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let app = spawn_app_with(|c, _| c.server.header_read_timeout_secs = 1).await;
    let mut stream = connect(&app).await;
    tokio::time::timeout(Duration::from_secs(8), read_until_closed(&mut stream))
        .await
        .expect("closed");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout_and_closes_after_the_idle_timeout()
 {
    let app = spawn_app_with(|c, _| {
        c.server.header_read_timeout_secs = 1;
        c.server.idle_timeout_secs = 4;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = connect(&app).await;
    stream
        .write_all(healthz_request(&addr).as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Idle for longer than the header timeout: the connection is kept (idle, not slow).
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stream
        .write_all(healthz_request(&addr).as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    let rest = tokio::time::timeout(Duration::from_secs(10), read_until_closed(&mut stream))
        .await
        .expect("closed after the idle timeout");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

#[tokio::test]
async fn beyond_max_connections_a_new_connection_waits_until_a_place_frees() {
    let app = spawn_app_with(|c, _| {
        c.server.max_connections = 2;
        c.server.header_read_timeout_secs = 60;
    })
    .await;
    let first = connect(&app).await;
    let _second = connect(&app).await;
    let url = format!("{}/healthz", app.base);
    let mut waiting = Box::pin(app.http.get(&url).send());
    assert!(
        tokio::time::timeout(Duration::from_millis(700), &mut waiting)
            .await
            .is_err(),
        "a third connection is not served while two are open"
    );
    drop(first);
    let response = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a place is free")
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_refused() {
    let app = spawn_app_with(|c, _| c.server.max_header_bytes = 16 * 1024).await;
    let mut stream = connect(&app).await;
    let big = "a".repeat(20 * 1024);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\n\r\n");
    // The server may close before reading everything; a failed write is a refusal too.
    let _ = stream.write_all(request.as_bytes()).await;
    let answer = tokio::time::timeout(Duration::from_secs(5), read_until_closed(&mut stream))
        .await
        .expect("closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text}"
    );
    assert!(!text.contains("\"ok\""), "{text}");
}

#[tokio::test]
async fn http2_connections_obey_the_header_and_idle_timeouts() {
    let app = spawn_app_with(|c, _| {
        c.server.header_read_timeout_secs = 1;
        c.server.idle_timeout_secs = 3;
    })
    .await;
    // A client that opens HTTP/2 and never sends a request is dropped after the header timeout.
    let mut silent = connect(&app).await;
    silent
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(8), read_until_closed(&mut silent))
        .await
        .expect("a silent HTTP/2 connection is closed");

    // One request, then idle: kept past the header timeout, closed (GOAWAY) after the idle one.
    let (mut client, connection) = h2::client::handshake(connect(&app).await).await.unwrap();
    let mut connection = tokio::spawn(connection);
    let request = axum::http::Request::get(format!("{}/healthz", app.base))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    assert!(
        tokio::time::timeout(Duration::from_millis(1800), &mut connection)
            .await
            .is_err(),
        "an idle HTTP/2 connection is not closed by the header timeout"
    );
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("an idle HTTP/2 connection is closed after the idle timeout")
        .unwrap()
        .ok();
}
