//! Vector allocation: one vector per device, never reused while its old owner may still hold it.
//!
//! The I/O APIC's EOI matches pins by vector only, so two level pins sharing a vector would
//! clear each other's remote IRR; mint therefore gives *every* device (edge, level or MSI) a
//! vector of its own, system-wide. After a hand-over the old vector is *draining*: it is
//! handed out again only once the old owner has acknowledged a notice about the device
//! (normally "detached"), which it does after checking that its local APIC's IRR and ISR show
//! nothing pending for that vector (Linux's `vector.c` rule), or once that node crashed (its local APIC is dead, and
//! reset when it restarts).

use mint_abi::{NodeId, Vector};

use crate::DeviceId;

/// What a vector of the layer's range is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorUse {
    /// Outside the layer's range (CPU exceptions, the timer, the mailbox IPI...).
    NotManaged,
    Free,
    /// Set aside for `device`'s hand-over; not yet in any entry.
    Reserved(DeviceId),
    /// In `device`'s redirection entry or MSI data.
    Active(DeviceId),
    /// `device`'s previous vector, until `old_owner` confirms nothing is pending on it.
    Draining {
        device: DeviceId,
        old_owner: NodeId,
    },
}

/// The layer's vectors: an inclusive range, allocated next-fit so a freed vector is the last
/// to come back.
#[derive(Clone, Debug)]
pub struct VectorPool {
    uses: [VectorUse; 256],
    first: u8,
    last: u8,
    next: u8,
}

impl VectorPool {
    /// A pool of `first..=last`, all free. `first > last` gives an empty pool.
    pub fn new(first: Vector, last: Vector) -> VectorPool {
        let mut uses = [VectorUse::NotManaged; 256];
        if first.0 <= last.0 {
            for u in &mut uses[usize::from(first.0)..=usize::from(last.0)] {
                *u = VectorUse::Free;
            }
        }
        VectorPool {
            uses,
            first: first.0,
            last: last.0,
            next: first.0,
        }
    }

    /// What `vector` is used for.
    pub fn usage(&self, vector: Vector) -> VectorUse {
        self.uses[usize::from(vector.0)]
    }

    /// Takes a free vector for `device` in state `Reserved` (call [`VectorPool::activate`] once
    /// it is programmed) or `None` when every vector is taken or draining.
    pub fn reserve(&mut self, device: DeviceId) -> Option<Vector> {
        if self.first > self.last {
            return None;
        }
        let span = u16::from(self.last - self.first) + 1;
        for i in 0..span {
            let offset = (u16::from(self.next - self.first) + i) % span;
            let v = self.first + offset as u8;
            if self.uses[usize::from(v)] == VectorUse::Free {
                self.uses[usize::from(v)] = VectorUse::Reserved(device);
                self.next = if v == self.last { self.first } else { v + 1 };
                return Some(Vector(v));
            }
        }
        None
    }

    /// Marks a reserved vector active.
    pub fn activate(&mut self, vector: Vector) {
        if let VectorUse::Reserved(d) = self.usage(vector) {
            self.uses[usize::from(vector.0)] = VectorUse::Active(d);
        }
    }

    /// Moves an active vector to draining, waiting for `old_owner`.
    pub fn retire(&mut self, vector: Vector, old_owner: NodeId) {
        if let VectorUse::Active(device) = self.usage(vector) {
            self.uses[usize::from(vector.0)] = VectorUse::Draining { device, old_owner };
        }
    }

    /// Frees `vector` whatever its state (a reservation given up, or a vector whose owner is
    /// known dead). Unmanaged vectors stay unmanaged.
    pub fn release(&mut self, vector: Vector) {
        if self.usage(vector) != VectorUse::NotManaged {
            self.uses[usize::from(vector.0)] = VectorUse::Free;
        }
    }

    /// Frees every vector draining for `node` and `device` (its "detached" acknowledgement).
    pub fn drained(&mut self, device: DeviceId, node: NodeId) -> usize {
        self.release_where(|u| {
            u == VectorUse::Draining {
                device,
                old_owner: node,
            }
        })
    }

    /// Frees every vector draining for `node` (it crashed).
    pub fn owner_gone(&mut self, node: NodeId) -> usize {
        self.release_where(
            |u| matches!(u, VectorUse::Draining { old_owner, .. } if old_owner == node),
        )
    }

    fn release_where(&mut self, f: impl Fn(VectorUse) -> bool) -> usize {
        let mut n = 0;
        for u in self.uses.iter_mut() {
            if f(*u) {
                *u = VectorUse::Free;
                n += 1;
            }
        }
        n
    }

    /// Number of free vectors.
    pub fn free(&self) -> usize {
        self.uses.iter().filter(|u| **u == VectorUse::Free).count()
    }
}
