//! Records the release-profile overrides the build was given in the
//! environment (`CARGO_PROFILE_RELEASE_LTO=fat`, …), so that the report's
//! caption names the build it measured and its command reproduces it.

fn main() {
    let mut given = Vec::new();
    for key in [
        "CARGO_PROFILE_RELEASE_LTO",
        "CARGO_PROFILE_RELEASE_CODEGEN_UNITS",
        "CARGO_PROFILE_RELEASE_OPT_LEVEL",
        "RUSTFLAGS",
    ] {
        println!("cargo:rerun-if-env-changed={key}");
        if let Ok(value) = std::env::var(key)
            && !value.is_empty()
        {
            given.push(format!("{key}={value}"));
        }
    }
    println!("cargo:rustc-env=HTTP_BENCH_BUILD={}", given.join(" "));
}
