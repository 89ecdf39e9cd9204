//! Hardware access of the node kernel: every `unsafe` touching the CPU,
//! ports, MMIO and page tables lives under this module.

pub mod apic;
pub mod boot;
pub mod cpu;
pub mod firmware;
pub mod gdt;
pub mod interrupts;
pub mod ioapic;
pub mod paging;
pub mod partition;
pub mod pci;
pub mod pit;
pub mod serial;
pub mod stacks;
