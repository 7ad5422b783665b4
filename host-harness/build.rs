//! Builds the SCIM component for `wasm32-wasip2` with a nested `cargo build`, so that a plain
//! `cargo build` or `cargo test` of the host embeds a component built from the same sources.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("the host lives inside the workspace");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    for watched in [
        "plugin/src",
        "plugin/discovery",
        "plugin/Cargo.toml",
        "wit",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    // A target directory of its own: the outer cargo holds the lock on its own, and the guest's
    // profile and target never mix with the host's artefacts.
    let target_dir = component_target_dir(&out_dir);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace)
        .args([
            "build",
            "--package",
            "scim-plugin",
            "--lib",
            "--target",
            "wasm32-wasip2",
        ])
        .args(["--profile", "guest", "--locked"])
        .arg("--target-dir")
        .arg(&target_dir)
        // The host's flags (coverage, sanitizers, clippy's wrapper) are not the guest's.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    let status = build.status().expect("cargo runs");
    assert!(
        status.success(),
        "building the SCIM component for wasm32-wasip2 failed"
    );

    let built = target_dir.join("wasm32-wasip2/guest/scim_plugin.wasm");
    let embedded = out_dir.join("scim_plugin.wasm");
    std::fs::copy(&built, &embedded).expect("the component was built");
    println!("cargo:rustc-env=SCIM_PLUGIN_WASM={}", embedded.display());
}

/// `<target>/component`, next to the host's own profiles, so that the debug and release hosts
/// share one build of the component.
fn component_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is <target>/<profile>/build/<package>-<hash>/out (with a target triple in between
    // when cross-compiling); the `build` directory's grandparent is the target directory.
    out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(|build| build.parent())
        .and_then(|profile| profile.parent())
        .map(|target| target.join("component"))
        .unwrap_or_else(|| out_dir.join("component"))
}
