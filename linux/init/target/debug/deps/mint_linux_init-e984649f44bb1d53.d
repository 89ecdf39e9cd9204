/work/main/.wt/linux/linux/init/target/debug/deps/mint_linux_init-e984649f44bb1d53.d: src/main.rs Cargo.toml

/work/main/.wt/linux/linux/init/target/debug/deps/libmint_linux_init-e984649f44bb1d53.rmeta: src/main.rs Cargo.toml

src/main.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
