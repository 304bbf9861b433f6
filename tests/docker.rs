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
