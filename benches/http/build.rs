//! Records how the binary was built — the release-profile overrides given in
//! the environment (`CARGO_PROFILE_RELEASE_LTO=fat`, …), the compiler flags,
//! and whether it is a release build at all — so that the report's caption
//! names the build it measured and its command rebuilds it.

/// Separates the recorded `KEY=value` pairs (a value may hold spaces).
const SEP: char = '\u{1f}';

fn main() {
    let mut given = Vec::new();
    for key in [
        "CARGO_PROFILE_RELEASE_LTO",
        "CARGO_PROFILE_RELEASE_CODEGEN_UNITS",
        "CARGO_PROFILE_RELEASE_OPT_LEVEL",
    ] {
        println!("cargo:rerun-if-env-changed={key}");
        if let Ok(value) = std::env::var(key)
            && !value.is_empty()
        {
            given.push(format!("{key}={value}"));
        }
    }
    // Cargo hands a build script the flags it compiles with (from
    // `RUSTFLAGS` or `build.rustflags`) only as `CARGO_ENCODED_RUSTFLAGS`,
    // separated by 0x1f; `RUSTFLAGS` itself is removed.
    println!("cargo:rerun-if-env-changed=RUSTFLAGS");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    if let Ok(flags) = std::env::var("CARGO_ENCODED_RUSTFLAGS")
        && !flags.is_empty()
    {
        given.push(format!("RUSTFLAGS={}", flags.replace(SEP, " ")));
    }
    let joined = given.join(&SEP.to_string());
    println!("cargo:rustc-env=HTTP_BENCH_BUILD={joined}");
    // `release` or `debug`: a debug build's figures say nothing about obs.
    let profile = std::env::var("PROFILE").unwrap_or_default();
    println!("cargo:rustc-env=HTTP_BENCH_PROFILE={profile}");
}
