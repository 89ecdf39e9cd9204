//! Links the node kernel as a freestanding static ELF at 2 MiB, and generates
//! the 256 interrupt entry stubs (see src/arch/interrupts.rs).

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let script = dir.join("linker.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,-z,max-page-size=4096",
        "-Wl,--gc-sections",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());

    // Vectors whose exceptions push an error code themselves.
    const WITH_ERROR_CODE: [u32; 10] = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];
    let mut s = String::new();
    s.push_str(".section .text.isr, \"ax\"\n.code64\n");
    for v in 0..256u32 {
        writeln!(s, "isr_{v}:").unwrap();
        if !WITH_ERROR_CODE.contains(&v) {
            s.push_str("    push 0\n");
        }
        writeln!(s, "    push {v}\n    jmp isr_common").unwrap();
    }
    s.push_str(".section .rodata.isr_table, \"a\"\n.balign 8\n.global isr_table\nisr_table:\n");
    for v in 0..256u32 {
        writeln!(s, "    .quad isr_{v}").unwrap();
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("isr_stubs.s");
    std::fs::write(out, s).unwrap();
}
