//! What node 0 learns from firmware: the PVH start info (command line, boot
//! memory map, RSDP) and the ACPI MADT (CPUs and their APIC IDs). Runs only
//! under node 0's boot page tables, which identity-map the first 4 GiB.

use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;

use acpi::madt::Madt;
use acpi::platform::ProcessorState;
use acpi::sdt::Signature;
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use mint_abi::{ApicId, PhysAddr};

const PVH_MAGIC: u32 = 0x336e_c578;
const E820_RAM: u32 = 1;

/// `struct hvm_start_info` (Xen PVH ABI), version 1.
#[repr(C)]
#[derive(Clone, Copy)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// `struct hvm_modlist_entry`: one module the loader placed in memory
/// (QEMU passes `-initrd` as the one module).
#[repr(C)]
#[derive(Clone, Copy)]
struct HvmModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct HvmMemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

pub struct BootFacts {
    pub cmdline: String,
    pub rsdp: u64,
    /// Usable RAM ranges of the boot memory map.
    pub ram: Vec<(PhysAddr, u64)>,
    /// The modules the loader placed, `(base, size)` (at most 8 read).
    pub modules: Vec<(PhysAddr, u64)>,
}

/// Reads the PVH start info at `phys`.
pub fn read_start_info(phys: u64) -> Result<BootFacts, &'static str> {
    // SAFETY: the PVH loader passes the physical address of a start-info
    // structure; the first 4 GiB are identity mapped now. Copied out by value.
    let info = unsafe { core::ptr::read_unaligned(phys as *const HvmStartInfo) };
    if info.magic != PVH_MAGIC {
        return Err("PVH start info has a bad magic");
    }
    let mut cmdline = String::new();
    if info.cmdline_paddr != 0 {
        for i in 0..4096u64 {
            // SAFETY: a NUL-terminated string in low memory, read byte-wise
            // and bounded to 4 KiB.
            let b = unsafe { core::ptr::read_volatile((info.cmdline_paddr + i) as *const u8) };
            if b == 0 {
                break;
            }
            cmdline.push(b as char);
        }
    }
    if info.version < 1 || info.memmap_paddr == 0 {
        return Err("PVH start info has no memory map (version < 1)");
    }
    let mut ram = Vec::new();
    for i in 0..u64::from(info.memmap_entries.min(128)) {
        // SAFETY: the memory map array the loader provides, bounded above.
        let e = unsafe {
            core::ptr::read_unaligned((info.memmap_paddr + i * 24) as *const HvmMemmapEntry)
        };
        if e.kind == E820_RAM {
            ram.push((PhysAddr(e.addr), e.size));
        }
    }
    let mut modules = Vec::new();
    if info.modlist_paddr != 0 {
        for i in 0..u64::from(info.nr_modules.min(8)) {
            // SAFETY: the module list the loader provides (`nr_modules`
            // entries of 32 bytes), bounded above; identity mapped now.
            let m = unsafe {
                core::ptr::read_unaligned((info.modlist_paddr + i * 32) as *const HvmModlistEntry)
            };
            modules.push((PhysAddr(m.paddr), m.size));
        }
    }
    Ok(BootFacts {
        cmdline,
        rsdp: info.rsdp_paddr,
        ram,
        modules,
    })
}

#[derive(Clone, Copy)]
struct IdentityMapped;

impl AcpiHandler for IdentityMapped {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        // SAFETY: ACPI tables lie below 4 GiB, identity mapped during node 0's
        // boot; the acpi crate only reads through the mapping.
        unsafe {
            PhysicalMapping::new(
                phys,
                NonNull::new(phys as *mut T).expect("ACPI table at address 0"),
                size,
                size,
                *self,
            )
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// The MADT's interrupt model and processors, from the tables at `rsdp`.
fn madt_interrupt_model(
    rsdp: u64,
) -> Result<(acpi::InterruptModel, Option<acpi::platform::ProcessorInfo>), String> {
    if rsdp == 0 {
        return Err(String::from("no RSDP from the loader"));
    }
    // SAFETY: `rsdp` is the RSDP address the PVH loader found; tables are
    // identity mapped (see `IdentityMapped`).
    let tables = unsafe { AcpiTables::from_rsdp(IdentityMapped, rsdp as usize) }
        .map_err(|e| alloc::format!("ACPI: {e:?}"))?;
    // SAFETY: `Madt` is the crate's own description of the MADT layout.
    let madt = unsafe { tables.get_sdt::<Madt>(Signature::MADT) }
        .map_err(|e| alloc::format!("ACPI MADT: {e:?}"))?
        .ok_or_else(|| String::from("ACPI: no MADT"))?;
    madt.parse_interrupt_model()
        .map_err(|e| alloc::format!("ACPI MADT: {e:?}"))
}

/// Usable processors' local APIC IDs: the boot processor first, then the
/// others in MADT order (index = core index, as QEMU's `-smp` numbers them).
pub fn madt_cpus(rsdp: u64) -> Result<Vec<ApicId>, String> {
    let (_, processors) = madt_interrupt_model(rsdp)?;
    let info = processors.ok_or_else(|| String::from("ACPI MADT lists no processors"))?;
    Ok(core::iter::once(&info.boot_processor)
        .chain(&info.application_processors)
        .filter(|p| p.state != ProcessorState::Disabled)
        .map(|p| ApicId(p.local_apic_id))
        .collect())
}

/// An ISA interrupt the MADT remaps (interrupt source override): the GSI
/// it arrives on and, when the firmware says, its trigger and polarity.
#[derive(Clone, Copy, Debug)]
pub struct IrqOverride {
    pub isa: u8,
    pub gsi: u32,
    /// `Some(true)` level, `Some(false)` edge, `None` as the bus says.
    pub level: Option<bool>,
    /// `Some(true)` active low, `Some(false)` active high, `None` as the bus says.
    pub active_low: Option<bool>,
}

/// What the MADT says about the I/O APIC(s) and interrupt routing.
#[derive(Clone, Debug, Default)]
pub struct IrqFacts {
    /// (physical base, first GSI) of each I/O APIC.
    pub io_apics: Vec<(u64, u32)>,
    pub overrides: Vec<IrqOverride>,
}

/// The MADT's I/O APICs and interrupt source overrides.
pub fn madt_irq_facts(rsdp: u64) -> Result<IrqFacts, String> {
    use acpi::InterruptModel;
    use acpi::platform::interrupt::{Polarity, TriggerMode};
    let (model, _) = madt_interrupt_model(rsdp)?;
    let InterruptModel::Apic(apic) = model else {
        return Err(String::from("ACPI MADT: no APIC interrupt model"));
    };
    Ok(IrqFacts {
        io_apics: apic
            .io_apics
            .iter()
            .map(|io| (u64::from(io.address), io.global_system_interrupt_base))
            .collect(),
        overrides: apic
            .interrupt_source_overrides
            .iter()
            .map(|o| IrqOverride {
                isa: o.isa_source,
                gsi: o.global_system_interrupt,
                level: match o.trigger_mode {
                    TriggerMode::Level => Some(true),
                    TriggerMode::Edge => Some(false),
                    TriggerMode::SameAsBus => None,
                },
                active_low: match o.polarity {
                    Polarity::ActiveLow => Some(true),
                    Polarity::ActiveHigh => Some(false),
                    Polarity::SameAsBus => None,
                },
            })
            .collect(),
    })
}
