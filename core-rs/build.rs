//! Captures what `flowhost_core::build_info` reports: the compiler, target and profile of this build.

use std::env;
use std::process::Command;

fn main() {
    // Cargo reruns the script when the compiler, the target or the profile changes anyway (they are
    // part of every fingerprint); without this line it would rerun on every source edit.
    println!("cargo::rerun-if-changed=build.rs");

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map_or_else(|| "unknown".to_owned(), |version| version.trim().to_owned());

    println!("cargo::rustc-env=FLOWHOST_BUILD_RUSTC={rustc_version}");
    println!(
        "cargo::rustc-env=FLOWHOST_BUILD_TARGET={}",
        cargo_env("TARGET")
    );
    // "release" for `release` and the profiles that inherit it (`profiling`), "debug" otherwise.
    println!(
        "cargo::rustc-env=FLOWHOST_BUILD_PROFILE={}",
        cargo_env("PROFILE")
    );
}

fn cargo_env(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}
