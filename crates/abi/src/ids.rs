//! Typed identifiers used across mint: no bare integers for nodes, CPUs,
//! interrupt lines, vectors or physical addresses.

use core::fmt;

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident($inner:ty), $fmt:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, $fmt, self.0)
            }
        }
    };
}

id_type!(
    /// An OS node: one independent kernel instance (node 0 boots first).
    NodeId(u8), "node{}"
);
id_type!(
    /// A logical CPU as QEMU numbers them (`-smp`), i.e. the index of the
    /// CPU in the ACPI MADT's order of enabled processors.
    CoreIndex(u8), "cpu{}"
);
id_type!(
    /// A local APIC ID as found in the MADT (x2APIC IDs are 32-bit).
    ApicId(u32), "apic{}"
);
id_type!(
    /// A global system interrupt number (I/O APIC input).
    Gsi(u32), "gsi{}"
);
id_type!(
    /// An interrupt vector in a CPU's IDT.
    Vector(u8), "vector {:#x}"
);
id_type!(
    /// A physical address.
    PhysAddr(u64), "{:#x}"
);

impl NodeId {
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl PhysAddr {
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    pub const fn add(self, off: u64) -> PhysAddr {
        PhysAddr(self.0 + off)
    }
}
