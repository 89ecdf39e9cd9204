//! A real Intel 8254x (QEMU's `-device e1000`, 82540EM) attached through its
//! memory BAR: reset, link up, MAC from the receive-address registers, and
//! the same `RxRing` code as the debug NIC programs its RX ring, here in
//! this node's own memory (DMA by physical address). The NIC's interrupts
//! stay masked at the device: its INTx is the I/O APIC's, which the
//! interrupt layer routes (`crate::irq`); the owner unmasks them once the
//! layer gave it a vector (`node::attach_real_nic`).

use alloc::string::String;
use core::fmt::Write;

use mint_e1000::regs::RAH_AV;
use mint_e1000::{Contiguous, Ctrl, Register, RegisterAccess, RxRing, Status};

use super::mmio_backend::{self, LocalDma, MmioRegisters};
use super::shared_backend::AtomicRing;
use crate::arch::cpu;
use crate::arch::pci::PciAddress;
use crate::node;

/// Descriptors and buffer size for the real NIC's RX ring.
const RING_SLOTS: u16 = 256;
const BUFFER_SIZE: usize = 2048;

/// A real NIC whose RX path is programmed, its causes masked.
pub struct Attached {
    pub summary: String,
    pub mac: [u8; 6],
    pub regs: MmioRegisters,
    pub ring: AtomicRing,
    pub rx: RxRing<Contiguous>,
    pub dma: LocalDma,
}

/// Resets the NIC at `bar` (mapped uncached) and programs its RX path;
/// returns it with a one-line description of what the device then
/// reports. The ring and buffers stay the NIC's for good (never freed).
pub fn attach(bar: u64, at: PciAddress, irq_line: u8) -> Result<Attached, String> {
    // SAFETY: node 0 found this memory BAR on the PCI bus, enabled it and
    // mapped its frame uncached at the same address into this node only
    // (the plan gives the e1000 to exactly one node).
    let regs = unsafe { MmioRegisters::new(bar) };
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

    let (ring, ring_phys) = mmio_backend::local_ring(RING_SLOTS)
        .ok_or_else(|| String::from("e1000: no memory for the RX ring"))?;
    let buffers_len = usize::from(RING_SLOTS) * BUFFER_SIZE;
    let (buffers_virt, buffers_phys) = mmio_backend::dma_alloc(buffers_len, 4096)
        .ok_or_else(|| String::from("e1000: no memory for the RX buffers"))?;
    let buffers = Contiguous {
        base: buffers_phys,
        stride: BUFFER_SIZE as u64,
    };
    let rx = RxRing::init(&regs, &ring, ring_phys, buffers, BUFFER_SIZE)
        .map_err(|e| alloc::format!("e1000 init: {e:?}"))?;
    // Masked at the device until the interrupt layer routes the NIC's
    // INTx and its handler is bound.
    regs.write(Register::IMC, u32::MAX);

    // What the device itself now holds.
    let (ral, rah) = (regs.read(Register::RAL0), regs.read(Register::RAH0));
    let rdlen = regs.read(Register::RDLEN);
    let rdba =
        u64::from(regs.read(Register::RDBAL)) | (u64::from(regs.read(Register::RDBAH)) << 32);
    if rdlen != u32::from(RING_SLOTS) * 16 || rdba != ring_phys {
        return Err(alloc::format!(
            "e1000: the device holds RDBA {rdba:#x} RDLEN {rdlen}, not the ring at {ring_phys:#x}"
        ));
    }
    let mut mac = [0u8; 6];
    mac[..4].copy_from_slice(&ral.to_le_bytes());
    mac[4..].copy_from_slice(&rah.to_le_bytes()[..2]);
    let mut s = String::new();
    let _ = write!(s, "e1000 at {at}: MAC ");
    for (i, b) in mac.iter().enumerate() {
        let _ = write!(s, "{}{b:02x}", if i > 0 { ":" } else { "" });
    }
    let _ = write!(
        s,
        "{}, link {}, INTx line {irq_line} (masked at the device until routed), RX ring of {RING_SLOTS} descriptors at {ring_phys:#x} programmed (RDLEN {rdlen}, RCTL {:#x}, RDT {})",
        if rah & RAH_AV != 0 {
            ""
        } else {
            " (not valid)"
        },
        if regs.read(Register::STATUS) & Status::LU.bits() != 0 {
            "up"
        } else {
            "down"
        },
        regs.read(Register::RCTL),
        regs.read(Register::RDT),
    );
    // SAFETY: `buffers_len` bytes from `dma_alloc` at `buffers_virt`
    // (physical `buffers_phys`), never freed and reached from here on only
    // through this value and the NIC's DMA.
    let dma = unsafe { LocalDma::new(buffers_virt, buffers_phys, buffers_len as u64) };
    Ok(Attached {
        summary: s,
        mac,
        regs,
        ring,
        rx,
        dma,
    })
}
