//! A model of the I/O APIC, devices' MSI and the local APICs, for tests of the layer.
//!
//! Enabled by the `testing` feature (and in this crate's own tests); the kernel never enables
//! it. It follows QEMU's `hw/intc/ioapic.c` (what mint's tests run on) and KVM's
//! `arch/x86/kvm/ioapic.c`:
//!
//! - per pin: the entry, the input line (logical: asserted or not; polarity is stored but, as in
//!   QEMU, not applied), remote IRR;
//! - an edge raised on a masked pin is dropped (counted in [`Machine::dropped_edges`]), as the
//!   82093AA datasheet and QEMU say;
//! - a level pin delivers when its line is asserted, it is unmasked and remote IRR is clear,
//!   and sets remote IRR; while remote IRR is set, assertions coalesce;
//! - every entry write keeps remote IRR and delivery status (read-only), clears remote IRR when
//!   the pin becomes edge, and re-services the pin: unmasking a still-asserted level line
//!   delivers at once;
//! - EOI ([`IoApic::eoi`]) matches pins by vector only, clears remote IRR and re-services a
//!   still-asserted, unmasked line (so two level pins sharing a vector clear each other);
//! - MSI: a message raised while masked sets a pending bit and is sent once on unmask (MSI-X);
//!   raised with no message programmed, it is dropped;
//! - local APICs record every delivered `(apic, vector)` in order ([`Machine::deliveries`]).
//!
//! Not modelled: QEMU's 10 ms pause after 10000 EOIs in a row (the layer's own storm control
//! acts far earlier), logical destinations, delivery modes other than fixed.

use alloc::vec;
use alloc::vec::Vec;

use mint_abi::{ApicId, Vector};

use crate::DeviceId;
use crate::ioapic::{IoApic, Lapic, Pin, RedirectionEntry, TriggerMode, Version};
use crate::msi::{Msi, MsiMessage};

/// Where a delivered interrupt came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Pin(Pin),
    Msi(DeviceId),
    /// Sent through [`Lapic::inject`].
    Injected,
}

/// One interrupt accepted by a local APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub apic: ApicId,
    pub vector: Vector,
    pub source: Source,
}

#[derive(Clone, Copy, Debug)]
struct PinModel {
    entry: RedirectionEntry,
    line: bool,
    dropped_edges: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct MsiModel {
    message: Option<MsiMessage>,
    masked: bool,
    pending: bool,
    dropped: u64,
}

/// The modelled machine: one I/O APIC, devices' MSI state, and the local APICs' record.
#[derive(Clone, Debug)]
pub struct Machine {
    pins: Vec<PinModel>,
    msi: Vec<MsiModel>,
    version: Version,
    deliveries: Vec<Delivery>,
    entry_writes: u64,
    eois: u64,
}

impl Machine {
    /// An I/O APIC of `pins` pins (QEMU: 24), version 0x20, every pin masked, lines low.
    pub fn new(pins: u8) -> Machine {
        Machine {
            pins: vec![
                PinModel {
                    entry: RedirectionEntry::MASKED,
                    line: false,
                    dropped_edges: 0,
                };
                usize::from(pins)
            ],
            msi: Vec::new(),
            version: Version {
                version: 0x20,
                max_redirection_entry: pins.saturating_sub(1),
            },
            deliveries: Vec::new(),
            entry_writes: 0,
            eois: 0,
        }
    }

    /// The IOAPICVER value.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Drives `pin`'s input: `asserted` is the logical level (after polarity).
    pub fn set_line(&mut self, pin: Pin, asserted: bool) {
        let p = &mut self.pins[usize::from(pin.0)];
        let rising = asserted && !p.line;
        p.line = asserted;
        match p.entry.trigger {
            TriggerMode::Edge => {
                if rising {
                    if p.entry.masked {
                        p.dropped_edges += 1;
                    } else {
                        let entry = p.entry;
                        self.deliver(entry, Source::Pin(pin));
                    }
                }
            }
            TriggerMode::Level => {
                if asserted {
                    self.service(pin);
                }
            }
        }
    }

    /// One edge: the line rises then falls.
    pub fn pulse(&mut self, pin: Pin) {
        self.set_line(pin, true);
        self.set_line(pin, false);
    }

    /// The device behind `device` sends its MSI.
    pub fn fire_msi(&mut self, device: DeviceId) {
        let m = self.msi_mut(device);
        match m.message {
            None => m.dropped += 1,
            Some(_) if m.masked => m.pending = true,
            Some(msg) => self.deliver_msi(device, msg),
        }
    }

    /// The device withdrew its interrupt condition: a pending (latched) message is cleared, as
    /// PCIe requires of a function whose masked vector's events were satisfied.
    pub fn withdraw_msi(&mut self, device: DeviceId) {
        self.msi_mut(device).pending = false;
    }

    pub fn line(&self, pin: Pin) -> bool {
        self.pins[usize::from(pin.0)].line
    }

    pub fn entry(&self, pin: Pin) -> RedirectionEntry {
        self.pins[usize::from(pin.0)].entry
    }

    pub fn remote_irr(&self, pin: Pin) -> bool {
        self.pins[usize::from(pin.0)].entry.remote_irr
    }

    pub fn dropped_edges(&self, pin: Pin) -> u64 {
        self.pins[usize::from(pin.0)].dropped_edges
    }

    pub fn msi_pending(&self, device: DeviceId) -> bool {
        self.msi
            .get(usize::from(device.0))
            .is_some_and(|m| m.pending)
    }

    /// Every delivery so far, in order.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    /// Removes and returns the deliveries so far.
    pub fn take_deliveries(&mut self) -> Vec<Delivery> {
        core::mem::take(&mut self.deliveries)
    }

    /// Redirection-entry writes so far.
    pub fn entry_writes(&self) -> u64 {
        self.entry_writes
    }

    /// EOI-register writes so far.
    pub fn eois(&self) -> u64 {
        self.eois
    }

    /// Delivers a level pin if its line is asserted, it is unmasked and remote IRR is clear.
    fn service(&mut self, pin: Pin) {
        let p = &mut self.pins[usize::from(pin.0)];
        if p.entry.trigger != TriggerMode::Level || !p.line || p.entry.masked || p.entry.remote_irr
        {
            return;
        }
        p.entry.remote_irr = true;
        let entry = p.entry;
        self.deliver(entry, Source::Pin(pin));
    }

    fn deliver(&mut self, entry: RedirectionEntry, source: Source) {
        self.deliveries.push(Delivery {
            apic: entry.destination_apic(),
            vector: entry.vector,
            source,
        });
    }

    fn deliver_msi(&mut self, device: DeviceId, msg: MsiMessage) {
        self.deliveries.push(Delivery {
            apic: msg.address.destination_apic(),
            vector: msg.data.vector,
            source: Source::Msi(device),
        });
    }

    fn msi_mut(&mut self, device: DeviceId) -> &mut MsiModel {
        let i = usize::from(device.0);
        if self.msi.len() <= i {
            self.msi.resize(i + 1, MsiModel::default());
        }
        &mut self.msi[i]
    }
}

impl IoApic for Machine {
    fn pins(&self) -> u8 {
        self.pins.len() as u8
    }

    fn read_entry(&self, pin: Pin) -> RedirectionEntry {
        self.entry(pin)
    }

    fn write_entry(&mut self, pin: Pin, entry: RedirectionEntry) {
        self.entry_writes += 1;
        let p = &mut self.pins[usize::from(pin.0)];
        let old = p.entry;
        let mut new = entry;
        new.send_pending = old.send_pending;
        new.remote_irr = old.remote_irr && entry.trigger == TriggerMode::Level;
        p.entry = new;
        self.service(pin);
    }

    fn eoi(&mut self, vector: Vector) {
        self.eois += 1;
        for i in 0..self.pins.len() {
            let p = &mut self.pins[i];
            if p.entry.vector != vector
                || p.entry.trigger != TriggerMode::Level
                || !p.entry.remote_irr
            {
                continue;
            }
            p.entry.remote_irr = false;
            self.service(Pin(i as u8));
        }
    }
}

impl Msi for Machine {
    fn write_message(&mut self, device: DeviceId, message: MsiMessage) {
        self.msi_mut(device).message = Some(message);
    }

    fn read_message(&self, device: DeviceId) -> Option<MsiMessage> {
        self.msi.get(usize::from(device.0)).and_then(|m| m.message)
    }

    fn set_masked(&mut self, device: DeviceId, masked: bool) {
        let m = self.msi_mut(device);
        m.masked = masked;
        if !masked
            && m.pending
            && let Some(msg) = m.message
        {
            m.pending = false;
            self.deliver_msi(device, msg);
        }
    }

    fn is_masked(&self, device: DeviceId) -> bool {
        self.msi
            .get(usize::from(device.0))
            .is_some_and(|m| m.masked)
    }
}

impl Lapic for Machine {
    fn inject(&mut self, apic: ApicId, vector: Vector) {
        self.deliveries.push(Delivery {
            apic,
            vector,
            source: Source::Injected,
        });
    }
}
