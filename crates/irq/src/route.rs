//! The routing table: GSI -> I/O APIC pin or MSI address/data, swapped whole for readers.
//!
//! Modelled on KVM's `kvm_irq_routing_table` (`virt/kvm/irqchip.c`): every route has a GSI
//! (MSI routes get GSIs above the I/O APIC's last pin, as KVM's user space picks them), a
//! change builds a whole new table, validates it (`setup_routing_entry` refuses a GSI routed
//! twice; mint also refuses a pin or a vector used twice) and swaps it in.
//!
//! # Readers: the generation counter
//!
//! `generation` is even while the table is stable and advances by 2 per swap. In this crate a
//! swap happens under `&mut`, so no reader can see it half done. Placed in the shared region,
//! the same counter is a sequence lock: the writer stores `generation + 1` (odd), rewrites the
//! entries, then stores `generation + 2`; a reader loads the generation (Acquire), retries while
//! it is odd, copies the entries it needs, loads the generation again and retries if it
//! changed. [`read_consistent`] is that reader loop; a reader therefore uses the old table or
//! the new one, never half of each, and the generation it returns names which.

use core::fmt;

use mint_abi::{ApicId, Gsi, Vector};

use crate::DeviceId;
use crate::ioapic::Pin;
use crate::msi::MsiMessage;

/// Most routes the table holds (one per device).
pub const MAX_ROUTES: usize = crate::MAX_DEVICES;

/// Where a GSI's interrupt goes in hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    /// An I/O APIC input pin; destination and vector are in its redirection entry.
    Pin(Pin),
    /// A message the device writes.
    Msi(MsiMessage),
}

/// One route: a GSI, the device behind it, where it goes and as what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    pub gsi: Gsi,
    pub device: DeviceId,
    pub target: RouteTarget,
    /// The owner's local APIC.
    pub destination: ApicId,
    pub vector: Vector,
}

/// A table change that was refused; the table is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// The GSI is already routed (for another device).
    GsiTaken { gsi: Gsi, device: DeviceId },
    /// The pin is already the target of another GSI.
    PinTaken { pin: Pin, gsi: Gsi },
    /// The vector is already used by another route.
    VectorTaken { vector: Vector, gsi: Gsi },
    /// No room for another route.
    Full,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::GsiTaken { gsi, device } => {
                write!(f, "{gsi} is already routed for {device}")
            }
            RouteError::PinTaken { pin, gsi } => write!(f, "{pin} is already the target of {gsi}"),
            RouteError::VectorTaken { vector, gsi } => {
                write!(f, "{vector} is already used by {gsi}")
            }
            RouteError::Full => f.write_str("routing table full"),
        }
    }
}

/// The routing table.
#[derive(Clone, Debug)]
pub struct RoutingTable {
    entries: [Option<RouteEntry>; MAX_ROUTES],
    generation: u64,
}

impl Default for RoutingTable {
    fn default() -> Self {
        Self::new()
    }
}

impl RoutingTable {
    /// An empty table, generation 0.
    pub const fn new() -> RoutingTable {
        RoutingTable {
            entries: [None; MAX_ROUTES],
            generation: 0,
        }
    }

    /// The current generation (even; +2 per swap).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The route of `gsi`, if any.
    pub fn lookup(&self, gsi: Gsi) -> Option<RouteEntry> {
        self.entries
            .iter()
            .flatten()
            .find(|e| e.gsi == gsi)
            .copied()
    }

    /// The route of `device`, if any.
    pub fn of_device(&self, device: DeviceId) -> Option<RouteEntry> {
        self.entries
            .iter()
            .flatten()
            .find(|e| e.device == device)
            .copied()
    }

    /// Every route, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &RouteEntry> {
        self.entries.iter().flatten()
    }

    /// Inserts or replaces the route of `entry.gsi` (same device) as one swap; returns the new
    /// generation. Refused changes leave table and generation unchanged.
    pub fn set(&mut self, entry: RouteEntry) -> Result<u64, RouteError> {
        let mut next = self.entries;
        match next
            .iter_mut()
            .find(|e| matches!(e, Some(old) if old.gsi == entry.gsi))
        {
            Some(slot) => {
                let old = slot.expect("matched Some");
                if old.device != entry.device {
                    return Err(RouteError::GsiTaken {
                        gsi: entry.gsi,
                        device: old.device,
                    });
                }
                *slot = Some(entry);
            }
            None => match next.iter_mut().find(|e| e.is_none()) {
                Some(slot) => *slot = Some(entry),
                None => return Err(RouteError::Full),
            },
        }
        Self::validate(&next)?;
        Ok(self.swap(next))
    }

    /// Removes the route of `gsi` (if any) as one swap; returns the new generation.
    pub fn remove(&mut self, gsi: Gsi) -> u64 {
        let mut next = self.entries;
        for e in next.iter_mut() {
            if matches!(e, Some(r) if r.gsi == gsi) {
                *e = None;
            }
        }
        self.swap(next)
    }

    fn swap(&mut self, next: [Option<RouteEntry>; MAX_ROUTES]) -> u64 {
        self.entries = next;
        self.generation += 2;
        self.generation
    }

    /// No GSI, pin or vector twice.
    fn validate(entries: &[Option<RouteEntry>; MAX_ROUTES]) -> Result<(), RouteError> {
        for (i, a) in entries.iter().enumerate() {
            let Some(a) = a else { continue };
            for b in entries[i + 1..].iter().flatten() {
                if a.gsi == b.gsi {
                    return Err(RouteError::GsiTaken {
                        gsi: b.gsi,
                        device: a.device,
                    });
                }
                if let (RouteTarget::Pin(pa), RouteTarget::Pin(pb)) = (a.target, b.target)
                    && pa == pb
                {
                    return Err(RouteError::PinTaken {
                        pin: pa,
                        gsi: a.gsi,
                    });
                }
                if a.vector == b.vector {
                    return Err(RouteError::VectorTaken {
                        vector: a.vector,
                        gsi: a.gsi,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The sequence-lock reader loop for a table published with a generation counter (see the
/// module docs): calls `read` between two loads of the generation until both loads agree and
/// are even, at most `tries` times. Returns the generation read and the value, or `None` when
/// every try raced a writer (the caller decides whether to wait or report).
pub fn read_consistent<T>(
    mut generation: impl FnMut() -> u64,
    mut read: impl FnMut() -> T,
    tries: u32,
) -> Option<(u64, T)> {
    for _ in 0..tries {
        let before = generation();
        if before % 2 == 1 {
            continue;
        }
        let value = read();
        if generation() == before {
            return Some((before, value));
        }
    }
    None
}
