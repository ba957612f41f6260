//! mimalloc's purge delay is set where an operator can change it: the image's environment
//! (`ENV MIMALLOC_PURGE_DELAY=0` in the Dockerfile's runtime stage), not a call in the code, and
//! the bench scripts read that one line.

use std::path::Path;

fn read(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_image_returns_freed_memory_at_once_and_the_benches_run_as_the_image() {
    let dockerfile = read("Dockerfile");
    let runtime = dockerfile
        .rsplit_once("\nFROM ")
        .map(|(_, stage)| stage)
        .expect("a runtime stage");
    assert!(
        runtime
            .lines()
            .any(|l| l.trim() == "ENV MIMALLOC_PURGE_DELAY=0"),
        "the runtime stage does not set MIMALLOC_PURGE_DELAY=0"
    );
    for script in ["scripts/bench-memory.sh", "scripts/bench-load.sh"] {
        assert!(
            read(script).contains("s/^ENV MIMALLOC_PURGE_DELAY=//p' Dockerfile"),
            "{script} does not run the services with the image's purge delay"
        );
    }
}
