//! A small loopback forward proxy with Basic credentials, for the outbound proxy settings.

use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub struct ForwardProxy {
    pub url: String,
    /// Request lines of the requests it forwarded.
    pub forwarded: Arc<Mutex<Vec<String>>>,
    /// Requests refused for missing or wrong credentials.
    pub refused: Arc<Mutex<usize>>,
}

impl ForwardProxy {
    pub async fn spawn(username: &str, password: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
        );
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(0));
        let (seen, denied) = (forwarded.clone(), refused.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (expected, seen, denied) = (expected.clone(), seen.clone(), denied.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &expected, &seen, &denied).await;
                });
            }
        });
        Self {
            url,
            forwarded,
            refused,
        }
    }

    pub fn forwarded(&self) -> Vec<String> {
        self.forwarded.lock().unwrap().clone()
    }
}

/// One request per connection: check the credentials, rewrite the absolute URI to origin form,
/// send it to the target with `Connection: close`, and copy the answer back.
async fn serve(
    client: TcpStream,
    expected: &str,
    seen: &Mutex<Vec<String>>,
    denied: &Mutex<usize>,
) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    let mut request_line = String::new();
    client.read_line(&mut request_line).await?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        client.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        headers.push(line);
    }
    let header = |name: &str| {
        headers.iter().find_map(|h| {
            h.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        })
    };
    if header("proxy-authorization").as_deref() != Some(expected) {
        *denied.lock().unwrap() += 1;
        client.get_mut().write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
        return Ok(());
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let url =
        reqwest::Url::parse(target).map_err(|_| std::io::Error::other("not an absolute URI"))?;
    seen.lock()
        .unwrap()
        .push(format!("{method} {}", url.path()));
    let mut upstream =
        TcpStream::connect((url.host_str().unwrap_or_default(), url.port().unwrap_or(80))).await?;
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for line in &headers {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "proxy-authorization" | "proxy-connection" | "connection"
        ) {
            head.push_str(line);
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    upstream.write_all(head.as_bytes()).await?;
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    client.read_exact(&mut body).await?;
    upstream.write_all(&body).await?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer).await?;
    client.get_mut().write_all(&answer).await?;
    client.get_mut().shutdown().await
}
