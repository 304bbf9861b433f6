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
