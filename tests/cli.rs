//! The command line as users run it: `check-config`, environment overrides, `openapi`.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_syncjob-facade");

const VALID: &str = r#"
[server]
listen = "127.0.0.1:18080"

[auth]
issuers = ["https://login.microsoftonline.com/8a3c9c1e-6f0b-4b7e-9d55-2f1e7c0a4b13/v2.0"]
audiences = ["api://syncjob-facade"]

[graph.credential]
kind = "client_secret"
tenant_id = "8a3c9c1e-6f0b-4b7e-9d55-2f1e7c0a4b13"
client_id = "5d1c6b8a-3f2e-4c7d-9a10-7e6f5d4c3b2a"
client_secret = "very-secret-value"
"#;

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("syncjob-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn check_config(path: &std::path::Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(BIN);
    command
        .arg("check-config")
        .arg("--config")
        .arg(path)
        .env_remove("SYNCJOB_CONFIG");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let path = write_config("valid", VALID);
    let (ok, stdout, stderr) = check_config(&path, &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("listen = \"127.0.0.1:18080\""), "{stdout}");
    assert!(stdout.contains("[redacted]"), "{stdout}");
    assert!(!stdout.contains("very-secret-value") && !stderr.contains("very-secret-value"));
}

#[test]
fn a_secret_file_is_read_and_redacted_too() {
    let secret = write_config("secretfile", "from-a-file-secret\n").with_file_name("secret");
    std::fs::write(&secret, "from-a-file-secret\n").unwrap();
    let text = VALID.replace(
        "client_secret = \"very-secret-value\"",
        &format!("client_secret_file = {:?}", secret.display().to_string()),
    );
    let path = write_config("secretfile", &text);
    let (ok, stdout, stderr) = check_config(&path, &[]);
    assert!(ok, "{stderr}");
    assert!(!stdout.contains("from-a-file-secret"));
    assert!(
        stdout.contains("client_secret = \"[redacted]\""),
        "a file-sourced secret shows as redacted: {stdout}"
    );
}

#[test]
fn environment_variables_override_keys() {
    let path = write_config("env", VALID);
    let (ok, stdout, stderr) = check_config(
        &path,
        &[
            ("SYNCJOB_SERVER__LISTEN", "127.0.0.1:19999"),
            ("SYNCJOB_GUARD__COOLDOWN_SECS", "42"),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("listen = \"127.0.0.1:19999\""), "{stdout}");
    assert!(stdout.contains("cooldown_secs = 42"), "{stdout}");
}

#[test]
fn invalid_configuration_stops_with_a_message_naming_the_key() {
    let cases = [
        (
            VALID.replace("issuers = [", "issuers = [] #"),
            "auth.issuers",
        ),
        (
            VALID.replace("[auth]", "[auth]\nalgorithms = [\"HS256\"]"),
            "auth.algorithms",
        ),
        (
            VALID.replace(
                "[server]",
                "[graph]\nbase_url = \"http://graph.example.com\"\n[server]",
            ),
            "graph.base_url",
        ),
        (
            VALID.replace("listen = \"127.0.0.1:18080\"", "listen = \"nowhere\""),
            "server.listen",
        ),
        (
            VALID.replace("[server]", "[server]\nlisten_port = 1"),
            "listen_port",
        ),
        (
            VALID.replace("client_secret = \"very-secret-value\"", ""),
            "graph.credential.client_secret",
        ),
        (
            VALID.replace(
                "[server]",
                "[graph]\nforward_headers = [\"Authorization\"]\n[server]",
            ),
            "graph.forward_headers[0]",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = write_config(&format!("invalid{i}"), text);
        let (ok, _, stderr) = check_config(&path, &[]);
        assert!(!ok, "case {i} should fail");
        assert!(stderr.contains(key), "case {i}: {stderr} should name {key}");
        assert!(!stderr.contains("very-secret-value"));
    }
}

#[test]
fn openapi_prints_the_committed_document() {
    let output = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(printed, committed);
}

/// The binary allocates with mimalloc, built to commit its arenas on use (`.cargo/config.toml`):
/// otherwise the first arena is committed at start, for more idle memory and no speed.
#[test]
fn the_allocator_is_mimalloc_committing_its_arenas_on_use() {
    let output = Command::new(BIN)
        .arg("openapi")
        .env("MIMALLOC_VERBOSE", "1")
        .env_remove("MIMALLOC_ARENA_EAGER_COMMIT")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("option 'arena_eager_commit': 0"),
        "{stderr}"
    );
}

/// A child process that is killed when the test ends, pass or fail.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Runs the binary and collects its stdout until a line contains `until`.
async fn spawn_until(args: &[&str], until: &str) -> (Child, Vec<String>) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains(until);
            seen.push(line);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), read)
        .await
        .expect("the banner is printed");
    (Child(child), seen)
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .map(|i| i + start.len())
        .unwrap_or_else(|| panic!("{start} in {text}"));
    let to = text[from..]
        .find(end)
        .map(|i| from + i)
        .unwrap_or(text.len());
    &text[from..to]
}

#[tokio::test]
async fn dev_prints_tokens_and_curl_lines_that_work_as_printed() {
    let (_child, lines) = spawn_until(&["dev", "--port", "0"], "API documentation").await;
    let text = lines.join("\n");
    let token = |name: &str| between(&text, &format!("export {name}='"), "'").to_owned();
    let curls: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert_eq!(curls.len(), 5, "{text}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // Each line: `curl ... -H "Authorization: Bearer $NAME" URL [-d BODY]`, run with reqwest.
    let mut statuses = Vec::new();
    for curl in &curls {
        let name = between(curl, "Bearer $", "\"");
        let url = curl
            .split_whitespace()
            .find(|w| w.trim_matches('\'').starts_with("http://"))
            .unwrap()
            .trim_matches('\'');
        let mut request = if curl.contains("-X POST") {
            http.post(url)
        } else {
            http.get(url)
        }
        .bearer_auth(token(name));
        if curl.contains(" -d '") {
            request = request
                .header("content-type", "application/json")
                .body(between(curl, " -d '", "'").to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        statuses.push(status);
        if curl.contains("whatIf=true") {
            let report: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(report["wouldStart"], true, "{body}");
        }
    }
    assert_eq!(
        statuses,
        [204, 403, 200, 200, 200],
        "start, 403, whatIf, passThru, read"
    );
}

#[tokio::test]
async fn the_emulator_alone_prints_credentials_tokens_and_curl_lines_that_work_as_printed() {
    let (_child, lines) = spawn_until(&["emulator", "--port", "0"], "client_secret = ").await;
    let text = lines.join("\n");
    let field = |name: &str| between(&text, name, "\n").trim().to_owned();
    let token = |name: &str| between(&text, &format!("export {name}='"), "'").to_owned();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // Discovery names the printed issuer.
    let discovery = field("discovery     ");
    let config: serde_json::Value = http
        .get(&discovery)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        format!(
            "{}/.well-known/openid-configuration",
            config["issuer"].as_str().unwrap()
        ),
        discovery
    );

    // The caller tokens work against a facade configured as the banner says.
    let base = between(&text, "Graph + Entra emulator on ", "\n")
        .trim()
        .to_owned();
    let printed = text
        .split_once("A facade pointed here (its configuration file):\n")
        .unwrap()
        .1;
    let mut facade = syncjob_facade::config::Config::from_toml(printed).unwrap();
    facade.server.listen = "127.0.0.1:0".parse().unwrap();
    let valid = facade
        .validate()
        .expect("the printed settings make a valid configuration");
    let server = syncjob_facade::server::Server::bind(valid).await.unwrap();
    let facade_url = format!("http://{}", server.local_addr());
    tokio::spawn(server.run(std::future::pending()));
    let curls: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert_eq!(curls.len(), 3, "{text}");
    let graph_start = curls[2].split_whitespace().last().unwrap();
    let through_facade = graph_start.replace(&base, &facade_url);
    for name in ["ADMIN_TOKEN", "APP_TOKEN"] {
        let response = http
            .post(format!("{through_facade}?whatIf=true"))
            .bearer_auth(token(name))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "{name}: {}",
            response.text().await.unwrap()
        );
    }

    // The client-credentials line, as printed.
    let form: Vec<(String, String)> = curls[0]
        .split(" -d ")
        .skip(1)
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let token_url = curls[0].split_whitespace().nth(2).unwrap();
    let issued: serde_json::Value = http
        .post(token_url)
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(issued["access_token"].is_string(), "{issued}");

    // The Graph lines with the printed Graph token: the job, then its start.
    let graph_token = token("GRAPH_TOKEN");
    let job_url = curls[1].split_whitespace().last().unwrap();
    let job: serde_json::Value = http
        .get(job_url)
        .bearer_auth(&graph_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(job["status"]["code"].is_string(), "{job}");
    let started = http
        .post(graph_start)
        .bearer_auth(&graph_token)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 204);
}

#[test]
fn a_webhook_secret_not_in_whsec_form_stops_start_up_naming_the_key() {
    let text = format!(
        "{VALID}\n[[webhooks]]\nname = \"alert\"\nsecrets = [\"plain-secret\"]\ntargets = [{{ service_principal_id = \"2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d\", synchronization_job_id = \"job.1\" }}]\n"
    );
    let path = write_config("whsec", &text);
    let (ok, _, stderr) = check_config(&path, &[]);
    assert!(!ok);
    assert!(stderr.contains("webhooks[0].secrets[0]"), "{stderr}");
    assert!(!stderr.contains("plain-secret"), "the secret is not echoed");
}

/// The start of the seed's paused job and an admin token for it.
fn paused_start(emulator: &syncjob_emulator::Emulator, base: &str) -> (String, String) {
    let sp = &emulator.seed().service_principals[0];
    let url = format!(
        "{base}/v1.0/servicePrincipals/{}/synchronization/jobs/{}/start",
        sp.id, sp.jobs[0].id
    );
    (
        url,
        emulator.mint(&emulator.delegated_claims(&emulator.seed().users[0].object_id)),
    )
}

/// The `audit` lines of a JSON log.
fn audit_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "audit")
        .collect()
}

/// A facade binary serving against an in-process emulator.
async fn serve_binary(
    emulator: &syncjob_emulator::Emulator,
    extra: &str,
) -> (tokio::process::Child, String) {
    serve_binary_logging_to(emulator, extra, std::process::Stdio::null()).await
}

async fn serve_binary_logging_to(
    emulator: &syncjob_emulator::Emulator,
    extra: &str,
    stderr: std::process::Stdio,
) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let facade = &emulator.seed().applications[0];
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
{extra}
[auth]
issuers = ["{issuer}"]
openid_config_url = "{discovery}"

[graph]
base_url = "{base}"

[graph.credential]
kind = "client_secret"
authority = "{base}"
tenant_id = "{tenant}"
client_id = "{client_id}"
client_secret = "{secret}"
"#,
        issuer = emulator.issuer(),
        discovery = emulator.openid_config_url(),
        base = emulator.base_url(),
        tenant = emulator.tenant_id(),
        client_id = facade.client_id,
        secret = facade.client_secret,
    );
    let path = write_config(&format!("serve-{port}"), &text);
    let child = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("SYNCJOB_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..100 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return (child, base);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the facade did not become ready");
}

#[tokio::test]
async fn sigterm_turns_readyz_unready_lets_the_start_in_flight_finish_and_exits_0() {
    use syncjob_emulator::{Emulator, Fault, Operation, Seed};
    let emulator = Emulator::spawn(Seed::default_seed(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (mut child, base) = serve_binary(
        &emulator,
        "shutdown_delay_secs = 1\nshutdown_grace_secs = 10",
    )
    .await;
    emulator.inject(Fault {
        operation: Some(Operation::Start),
        delay_ms: Some(1500),
        ..Fault::default()
    });
    let (url, token) = paused_start(&emulator, &base);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let in_flight = tokio::spawn(http.post(url).bearer_auth(token).send());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "unready first, while still serving");
    assert_eq!(
        in_flight.await.unwrap().unwrap().status(),
        204,
        "the start in flight completes"
    );
    let exit = tokio::time::timeout(std::time::Duration::from_secs(15), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert_eq!(emulator.count(Operation::Start), 1);
}

#[test]
fn unrelated_syncjob_variables_are_not_configuration() {
    let path = write_config("unrelated-env", VALID);
    let (ok, stdout, stderr) = check_config(
        &path,
        &[
            ("SYNCJOB_PORT", "tcp://10.0.0.1:80"),
            ("SYNCJOB_REQUIRE_REDIS", "1"),
            ("SYNCJOB_GUARD__PREFLIGHT", "false"),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("preflight = false"), "{stdout}");
}

#[test]
fn a_redis_password_in_the_guard_store_url_is_redacted() {
    let text = format!("{VALID}\n[guard]\nstore = \"redis://:hunter2@127.0.0.1:6379\"\n");
    let path = write_config("redis-password", &text);
    let (ok, stdout, stderr) = check_config(&path, &[]);
    assert!(ok, "{stderr}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(
        stdout.contains("redis://:%5Bredacted%5D@127.0.0.1:6379") || stdout.contains("[redacted]"),
        "{stdout}"
    );
}

#[tokio::test]
async fn serve_writes_one_json_audit_line_per_decision_and_never_a_token() {
    use syncjob_emulator::{Emulator, Seed};
    let emulator = Emulator::spawn(Seed::default_seed(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let log_path = std::env::temp_dir().join(format!("syncjob-audit-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let (mut child, base) = serve_binary_logging_to(&emulator, "", log.into()).await;
    let sp = &emulator.seed().service_principals[0];
    let (url, token) = paused_start(&emulator, &base);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    assert_eq!(
        http.post(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let _ = child.start_kill();
    let _ = child.wait().await;
    let text = std::fs::read_to_string(&log_path).unwrap();
    let audit = audit_lines(&text);
    assert_eq!(audit.len(), 1, "one decision, one audit line: {text}");
    assert_eq!(audit[0]["decision"], "forwarded");
    assert_eq!(audit[0]["target.job_id"], sp.jobs[0].id.as_str());
    assert_eq!(
        audit[0]["caller.object_id"],
        emulator.seed().users[0].object_id.as_str()
    );
    assert!(
        audit[0]["upstream.request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !text.contains(&token) && !text.contains(signature),
        "no token or signature in the logs"
    );
    assert!(
        !text.contains(&emulator.seed().applications[0].client_secret),
        "no secret in the logs"
    );
}

/// With the `otel` feature, spans reach an OTLP/HTTP collector named by the standard variable.
#[cfg(feature = "otel")]
#[tokio::test]
async fn with_the_otel_feature_spans_are_exported_to_the_otlp_endpoint() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", collector.local_addr().unwrap());
    let received = tokio::spawn(async move {
        let (mut stream, _) = collector.accept().await.unwrap();
        let mut head = vec![0; 4096];
        let n = stream.read(&mut head).await.unwrap();
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await;
        String::from_utf8_lossy(&head[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    });
    let mut child = tokio::process::Command::new(BIN)
        .args(["dev", "--port", "0"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut base = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(rest) = line.split("(dev) on ").nth(1) {
            base = rest.split(',').next().unwrap().to_owned();
            break;
        }
    }
    // A request makes a span.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), received)
        .await
        .expect("a span batch arrives")
        .unwrap();
    let _ = child.start_kill();
    assert!(line.starts_with("POST /v1/traces"), "{line}");
}

#[tokio::test]
async fn sigterm_waits_for_a_start_whose_caller_has_gone_and_audits_it() {
    use syncjob_emulator::{Emulator, Fault, Operation, Seed};
    let emulator = Emulator::spawn(Seed::default_seed(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let log_path = std::env::temp_dir().join(format!("syncjob-gone-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let (mut child, base) =
        serve_binary_logging_to(&emulator, "shutdown_grace_secs = 10", log.into()).await;
    emulator.inject(Fault {
        operation: Some(Operation::Start),
        delay_ms: Some(1500),
        ..Fault::default()
    });
    let sp = &emulator.seed().service_principals[0];
    let (url, token) = paused_start(&emulator, &base);
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_millis(400))
        .build()
        .unwrap();
    assert!(
        impatient
            .post(&url)
            .bearer_auth(&token)
            .send()
            .await
            .is_err(),
        "the caller gives up"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(std::time::Duration::from_secs(15), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let text = std::fs::read_to_string(&log_path).unwrap();
    let forwarded = audit_lines(&text)
        .into_iter()
        .filter(|line| line["decision"] == "forwarded")
        .count();
    assert_eq!(
        forwarded, 1,
        "the start finished and was audited before the exit: {text}"
    );
    assert_eq!(
        emulator.job_status(&sp.id, &sp.jobs[0].id).as_deref(),
        Some("Active")
    );
}

#[test]
fn webhook_secrets_can_come_from_a_file() {
    let secret_file = write_config("hook-secrets", "").with_file_name("hook-secrets");
    std::fs::write(&secret_file, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n\n").unwrap();
    let text = format!(
        "{VALID}\n[[webhooks]]\nname = \"alert\"\nsecrets_file = {:?}\ntargets = [{{ service_principal_id = \"2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d\", synchronization_job_id = \"job.1\" }}]\n",
        secret_file.display().to_string()
    );
    let path = write_config("hook-secrets", &text);
    let (ok, stdout, stderr) = check_config(&path, &[]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("[redacted]") && !stdout.contains("MfKQ9r8G"),
        "{stdout}"
    );
    std::fs::write(&secret_file, "not-whsec\n").unwrap();
    let (ok, _, stderr) = check_config(&path, &[]);
    assert!(!ok && stderr.contains("webhooks[0].secrets[0]"), "{stderr}");
}

#[test]
fn the_documented_sample_with_its_placeholders_filled_in_is_accepted() {
    // The documented sample configuration, with its optional sections present but commented out.
    let text = format!(
        "{VALID}\n[graph.proxy]                 # optional; without it the standard *_PROXY variables apply\n# url = \"http://proxy.corp:3128\"\n\n[guard]\nstore = \"memory\"\ncooldown_secs = 300\npreflight = true\n"
    );
    let path = write_config("design-sample", &text);
    let (ok, stdout, stderr) = check_config(&path, &[]);
    assert!(ok, "{stderr}");
    assert!(
        !stdout.contains("[graph.proxy]"),
        "an empty proxy section is no proxy: {stdout}"
    );
    let half = format!("{VALID}\n[graph.proxy]\nusername = \"svc\"\npassword = \"p\"\n");
    let (ok, _, stderr) = check_config(&write_config("half-proxy", &half), &[]);
    assert!(!ok && stderr.contains("graph.proxy.url"), "{stderr}");
}

#[test]
fn a_managed_identity_on_app_service_takes_identity_endpoint_and_header_from_the_environment() {
    let text = VALID.replace(
        "kind = \"client_secret\"",
        "kind = \"managed_identity\"\n# client_secret below is ignored by this kind",
    );
    let path = write_config("app-service", &text);
    let (ok, stdout, stderr) = check_config(
        &path,
        &[
            ("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token"),
            ("IDENTITY_HEADER", "platform-identity-secret"),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("endpoint = \"http://localhost:42356/msi/token\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("identity_header = \"[redacted]\""),
        "{stdout}"
    );
    assert!(!stdout.contains("platform-identity-secret"), "{stdout}");
    // Without those variables: IMDS, as on a VM.
    let (ok, stdout, stderr) = check_config(&path, &[]);
    assert!(ok, "{stderr}");
    assert!(!stdout.contains("identity_header"), "{stdout}");
}

#[test]
fn check_config_warns_when_a_v2_issuer_meets_only_an_app_id_uri_audience() {
    // VALID: a v2.0 issuer with audiences = ["api://syncjob-facade"] only.
    let path = write_config("v2-audience", VALID);
    let (ok, _, stderr) = check_config(&path, &[]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: auth.audiences holds no client id"),
        "{stderr}"
    );
    let with_client_id = VALID.replace(
        "audiences = [\"api://syncjob-facade\"]",
        "audiences = [\"api://syncjob-facade\", \"5d1c6b8a-3f2e-4c7d-9a10-7e6f5d4c3b2a\"]",
    );
    let (ok, _, stderr) = check_config(&write_config("v2-client-id", &with_client_id), &[]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let v1 = VALID.replace(
        "https://login.microsoftonline.com/8a3c9c1e-6f0b-4b7e-9d55-2f1e7c0a4b13/v2.0",
        "https://sts.windows.net/8a3c9c1e-6f0b-4b7e-9d55-2f1e7c0a4b13/",
    );
    let (ok, _, stderr) = check_config(&write_config("v1-issuer", &v1), &[]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn every_invalid_key_is_reported_at_once() {
    let text = VALID
        .replace(
            "[server]",
            "[server]\nrequest_timeout_secs = 0\nmax_header_bytes = 10",
        )
        .replace("client_secret = \"very-secret-value\"", "")
        .replace("[auth]", "[auth]\nleeway_secs = 9999");
    let (ok, _, stderr) = check_config(&write_config("many", &text), &[]);
    assert!(!ok);
    for key in [
        "server.request_timeout_secs",
        "server.max_header_bytes",
        "auth.leeway_secs",
        "graph.credential.client_secret",
    ] {
        assert!(stderr.contains(key), "{key} in {stderr}");
    }
}
