//! A real Intel 8254x (QEMU's `-device e1000`, 82540EM) attached through its
//! memory BAR: reset, link up, MAC from the receive-address registers, and
//! the same `RxRing` code as the debug NIC programs its RX ring, here in
//! this node's own memory (DMA by physical address). The NIC's interrupts
//! stay masked: its INTx is the I/O APIC's, which the interrupt-management
//! layer will route.

use alloc::string::String;
use core::fmt::Write;

use mint_e1000::regs::RAH_AV;
use mint_e1000::{Contiguous, Ctrl, Register, RegisterAccess, RxRing, Status};

use super::mmio_backend::{self, MmioRegisters};
use crate::arch::cpu;
use crate::arch::pci::PciAddress;
use crate::node;

/// Descriptors and buffer size for the real NIC's RX ring.
const RING_SLOTS: u16 = 256;
const BUFFER_SIZE: usize = 2048;

/// Resets the NIC at `bar` (mapped uncached) and programs its RX path;
/// returns a one-line description of what the device then reports. The
/// ring and buffers stay the NIC's for good (never freed).
pub fn attach(bar: u64, at: PciAddress, irq_line: u8) -> Result<String, String> {
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
    let (_, buffers_phys) = mmio_backend::dma_alloc(usize::from(RING_SLOTS) * BUFFER_SIZE, 4096)
        .ok_or_else(|| String::from("e1000: no memory for the RX buffers"))?;
    let buffers = Contiguous {
        base: buffers_phys,
        stride: BUFFER_SIZE as u64,
    };
    RxRing::init(&regs, &ring, ring_phys, buffers, BUFFER_SIZE)
        .map_err(|e| alloc::format!("e1000 init: {e:?}"))?;
    // Masked until the interrupt-management layer routes the NIC's INTx;
    // until then this node does not receive on it.
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
    let mut s = String::new();
    let _ = write!(s, "e1000 at {at}: MAC ");
    for (i, b) in ral
        .to_le_bytes()
        .iter()
        .chain(&rah.to_le_bytes()[..2])
        .enumerate()
    {
        let _ = write!(s, "{}{b:02x}", if i > 0 { ":" } else { "" });
    }
    let _ = write!(
        s,
        "{}, link {}, INTx line {irq_line} (masked until routed), RX ring of {RING_SLOTS} descriptors at {ring_phys:#x} programmed (RDLEN {rdlen}, RCTL {:#x}, RDT {})",
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
    Ok(s)
}
