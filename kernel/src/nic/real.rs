//! A real Intel 8254x (QEMU's `-device e1000`, 82540EM) attached through its
//! memory BAR: reset, link up, MAC from the receive-address registers, and
//! the same `RxRing` code as the debug NIC programs its RX ring, here in
//! the shared region's NIC area (`area`: DMA by physical address), which
//! every node that may own the NIC reaches. The NIC's interrupts stay
//! masked at the device: its INTx is the I/O APIC's, which the interrupt
//! layer routes (`crate::irq`); the owner unmasks them once the layer gave
//! it a vector (`node::attach_real_nic`). A standby node ([`standby`])
//! only reads the MAC: it touches the device once a hand-over makes it the
//! owner.

use alloc::string::String;
use core::fmt::Write;

use mint_e1000::regs::RAH_AV;
use mint_e1000::{Contiguous, Ctrl, Register, RegisterAccess, RxRing, Status};

use super::area;
use super::mmio_backend::{LocalDma, MmioRegisters};
use super::shared_backend::AtomicRing;
use crate::arch::cpu;
use crate::arch::pci::PciAddress;
use crate::node;

use mint_abi::real_nic::{BUFFER_SIZE, RING_SLOTS};

/// A real NIC whose RX path is programmed, its causes masked.
pub struct Attached {
    pub summary: String,
    pub mac: [u8; 6],
    pub regs: MmioRegisters,
    pub ring: AtomicRing,
    pub rx: RxRing<Contiguous>,
    pub dma: LocalDma,
}

/// The registers of the NIC at `bar`.
fn registers(bar: u64) -> MmioRegisters {
    // SAFETY: node 0 found this memory BAR on the PCI bus, enabled it and
    // mapped its frame uncached at the same address into the nodes the
    // plan lets drive it (its owner and standby nodes); which of them may
    // write it is the interrupt layer's ownership (cooperative: see
    // docs/ARCHITECTURE.md, isolation).
    unsafe { MmioRegisters::new(bar) }
}

/// The MAC the receive-address registers hold.
fn mac_of(regs: &MmioRegisters) -> ([u8; 6], bool) {
    let (ral, rah) = (regs.read(Register::RAL0), regs.read(Register::RAH0));
    let mut mac = [0u8; 6];
    mac[..4].copy_from_slice(&ral.to_le_bytes());
    mac[4..].copy_from_slice(&rah.to_le_bytes()[..2]);
    (mac, rah & RAH_AV != 0)
}

/// The shared NIC area as DMA memory for the ring's buffers.
fn area_dma() -> Result<LocalDma, String> {
    area::bytes().ok_or_else(|| {
        String::from("e1000: the shared region has no room for the NIC area (its last 2 MiB)")
    })
}

/// A standby node's view of the NIC: its registers (not written here),
/// for the driver to adopt the ring when the NIC is handed over.
pub struct Standby {
    pub mac: [u8; 6],
    pub regs: MmioRegisters,
}

pub fn standby(bar: u64) -> Result<Standby, String> {
    let regs = registers(bar);
    let (mac, _) = mac_of(&regs);
    // The area must be there when the NIC is handed here.
    area_dma()?;
    Ok(Standby { mac, regs })
}

/// Resets the NIC at `bar` (mapped uncached) and programs its RX path;
/// returns it with a one-line description of what the device then
/// reports. The ring and buffers stay the NIC's for good (never freed).
pub fn attach(bar: u64, at: PciAddress, irq_line: u8) -> Result<Attached, String> {
    let regs = registers(bar);
    regs.write(Register::IMC, u32::MAX);
    regs.write(Register::CTRL, regs.read(Register::CTRL) | Ctrl::RST.bits());
    let deadline = cpu::rdtsc() + node::ms_to_ticks(50);
    while regs.read(Register::CTRL) & Ctrl::RST.bits() != 0 {
        if cpu::rdtsc() > deadline {
            return Err(String::from("e1000: reset did not complete within 50 ms"));
        }
        core::hint::spin_loop();
    }
    regs.write(Register::IMC, u32::MAX);
    regs.write(
        Register::CTRL,
        regs.read(Register::CTRL) | (Ctrl::SLU | Ctrl::ASDE).bits(),
    );

    let dma = area_dma()?;
    let (ring, ring_phys) =
        area::ring(&dma).map_err(|e| alloc::format!("e1000: RX ring in the NIC area: {e:?}"))?;
    let buffers: Contiguous = area::buffers(&dma);
    let rx = RxRing::init(&regs, &ring, ring_phys, buffers, BUFFER_SIZE)
        .map_err(|e| alloc::format!("e1000 init: {e:?}"))?;
    // Masked at the device until the interrupt layer routes the NIC's
    // INTx and its handler is bound.
    regs.write(Register::IMC, u32::MAX);

    // What the device itself now holds.
    let rdlen = regs.read(Register::RDLEN);
    let rdba =
        u64::from(regs.read(Register::RDBAL)) | (u64::from(regs.read(Register::RDBAH)) << 32);
    if rdlen != u32::from(RING_SLOTS) * 16 || rdba != ring_phys {
        return Err(alloc::format!(
            "e1000: the device holds RDBA {rdba:#x} RDLEN {rdlen}, not the ring at {ring_phys:#x}"
        ));
    }
    let (mac, valid) = mac_of(&regs);
    let mut s = String::new();
    let _ = write!(s, "e1000 at {at}: MAC ");
    for (i, b) in mac.iter().enumerate() {
        let _ = write!(s, "{}{b:02x}", if i > 0 { ":" } else { "" });
    }
    let _ = write!(
        s,
        "{}, link {}, INTx line {irq_line} (masked at the device until routed), RX ring of {RING_SLOTS} descriptors at {ring_phys:#x} (the shared region's NIC area) programmed (RDLEN {rdlen}, RCTL {:#x}, RDT {})",
        if valid { "" } else { " (not valid)" },
        if regs.read(Register::STATUS) & Status::LU.bits() != 0 {
            "up"
        } else {
            "down"
        },
        regs.read(Register::RCTL),
        regs.read(Register::RDT),
    );
    Ok(Attached {
        summary: s,
        mac,
        regs,
        ring,
        rx,
        dma,
    })
}
