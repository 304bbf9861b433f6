//! The container recipe cannot be built here (no container engine); this checks what can be
//! checked: every path it copies exists and the binary it runs is the crate's.

#[test]
fn the_dockerfile_copies_existing_paths_and_runs_the_crates_binary() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dockerfile = std::fs::read_to_string(format!("{root}/docker/Dockerfile")).unwrap();
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(
                std::path::Path::new(&format!("{root}/{source}")).exists(),
                "{source} copied by the Dockerfile exists"
            );
        }
    }
    // The production image carries no emulator: the feature is off unless the build asks.
    assert_eq!(
        dockerfile.matches("--no-default-features").count(),
        2,
        "both builds turn the default (emulator) feature off"
    );
    let binary = env!("CARGO_BIN_EXE_syncjob-facade")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        dockerfile.contains(&format!("target/release/{binary} ")),
        "the Dockerfile copies the binary {binary}"
    );
}

use yaml_rust2::{Yaml, YamlLoader};

fn yaml(path: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path} parses: {e}"))
}

/// Every `SYNCJOB_<SECTION>__<KEY>` names a key of the configuration.
fn assert_config_variable(name: &str) {
    let path = name.strip_prefix("SYNCJOB_").unwrap().to_ascii_lowercase();
    let mut value = toml::Value::try_from(syncjob_facade::config::Config::default()).unwrap();
    for part in path.split("__") {
        value = value
            .get(part)
            .unwrap_or_else(|| panic!("{name} names no configuration key"))
            .clone();
    }
}

#[test]
fn the_compose_file_runs_the_emulator_redis_and_two_replicas_of_this_binary() {
    let docs = yaml("docker/compose.yaml");
    let services = &docs[0]["services"];
    for name in ["emulator", "redis", "facade-1", "facade-2"] {
        assert!(!services[name].is_badvalue(), "service {name}");
    }
    assert_eq!(
        services["emulator"]["command"][0].as_str(),
        Some("emulator")
    );
    // One image, built once, run by the emulator and both replicas; everything restarts.
    assert_eq!(
        services["emulator"]["build"]["dockerfile"].as_str(),
        Some("docker/Dockerfile")
    );
    assert_eq!(
        services["emulator"]["build"]["args"]["FEATURES"].as_str(),
        Some("emulator"),
        "the demo image is built with the emulator"
    );
    let image = services["emulator"]["image"].as_str().unwrap();
    for (name, service) in services.as_hash().unwrap() {
        assert_eq!(
            service["restart"].as_str(),
            Some("unless-stopped"),
            "{name:?} restarts"
        );
    }
    for replica in ["facade-1", "facade-2"] {
        let service = &services[replica];
        assert_eq!(service["image"].as_str(), Some(image));
        assert!(
            service["build"].is_badvalue(),
            "{replica} does not build again"
        );
        assert_eq!(service["pull_policy"].as_str(), Some("never"));
        assert_eq!(service["command"][0].as_str(), Some("serve"));
        let mount = service["volumes"][0].as_str().unwrap();
        let source = mount.split(':').next().unwrap();
        let config_text =
            std::fs::read_to_string(format!("{}/docker/{source}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        let config: syncjob_facade::config::Config =
            toml::from_str(&config_text).expect("compose.config.toml holds known keys");
        assert!(
            config
                .guard
                .store
                .redis_url()
                .is_some_and(|url| url.starts_with("redis://")),
            "replicas share Redis"
        );
        for (key, _) in service["environment"].as_hash().unwrap() {
            assert_config_variable(key.as_str().unwrap());
        }
    }
}

#[test]
fn the_kubernetes_manifests_parse_and_agree_with_the_binary() {
    let docs = yaml("docker/k8s/deployment.yaml");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Deployment",
        "ServiceAccount",
        "Service",
        "PodDisruptionBudget",
        "ConfigMap",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let deployment = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Deployment"))
        .unwrap();
    assert_eq!(deployment["spec"]["replicas"].as_i64(), Some(2));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let container = &pod["containers"][0];
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(container["args"][0].as_str(), Some("serve"));
    let image = container["image"].as_str().unwrap();
    let tag = image
        .rsplit_once(':')
        .map(|(_, tag)| tag)
        .unwrap_or("latest");
    assert_eq!(
        tag,
        env!("CARGO_PKG_VERSION"),
        "a pinned image tag, not {image}"
    );
    for variable in container["env"].as_vec().unwrap() {
        assert_config_variable(variable["name"].as_str().unwrap());
    }
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/Dockerfile")).unwrap();
    let port = container["ports"][0]["containerPort"].as_i64().unwrap();
    assert!(
        dockerfile.contains(&format!("EXPOSE {port}")),
        "the image exposes the container port"
    );
    let service_account = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("ServiceAccount"))
        .unwrap();
    assert!(
        !service_account["metadata"]["annotations"]["azure.workload.identity/client-id"]
            .is_badvalue()
    );
    let config_map = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("ConfigMap"))
        .unwrap();
    let config: syncjob_facade::config::Config =
        toml::from_str(config_map["data"]["config.toml"].as_str().unwrap())
            .expect("the ConfigMap holds known keys");
    assert_eq!(
        config.graph.credential.kind,
        syncjob_facade::config::CredentialKind::WorkloadIdentity
    );
}

#[test]
fn the_build_context_holds_only_what_the_image_builds_from_and_the_binary_is_stripped() {
    let root = env!("CARGO_MANIFEST_DIR");
    let ignore = std::fs::read_to_string(format!("{root}/.dockerignore")).unwrap();
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        rules[0], "*",
        "everything is excluded first, target/ included"
    );
    let dockerfile = std::fs::read_to_string(format!("{root}/docker/Dockerfile")).unwrap();
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            let kept = rules.iter().any(|r| {
                let rule = r.trim_start_matches('!').trim_end_matches('/');
                *source == rule || source.starts_with(&format!("{rule}/"))
            });
            assert!(kept, "{source} is in the build context");
        }
    }
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap()).unwrap();
    assert_eq!(
        manifest["profile"]["release"]["strip"].as_str(),
        Some("symbols")
    );
}
