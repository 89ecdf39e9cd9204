//! Layer operations asked for over the mailbox, and where a PCI INTx line arrives.
//!
//! In this slice the layer runs on node 0 (the only node whose tables map the I/O APIC, see
//! `docs/INTERRUPTS.md`); another node asks for an operation on a device's interrupt with a
//! `MessageKind::IrqRequest` message and gets a `MessageKind::IrqReply` with the same sequence
//! number. This module is the two messages' encoding ([`Request`], [`Reply`]), checked on
//! decode (a peer's garbage is refused, never acted on), and [`intx_source`]: the GSI, trigger
//! and polarity of a PCI device's legacy interrupt line after the MADT's interrupt source
//! overrides.

use mint_abi::{Gsi, Vector};

use crate::DeviceId;
use crate::ioapic::{Polarity, RedirectionEntry, TriggerMode};
use crate::layer::IrqSource;

/// What a node asks the layer to do with a device's interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Register the device's INTx (`IrqLayer::register`): gets a vector, pin left masked.
    Register(IrqSource),
    Unmask,
    Mask,
    /// Route the interrupt to this local APIC (`IrqLayer::route`).
    Route(u32),
}

impl Op {
    const REGISTER: u8 = 1;
    const UNMASK: u8 = 2;
    const MASK: u8 = 3;
    const ROUTE: u8 = 4;

    fn code(self) -> u8 {
        match self {
            Op::Register(_) => Self::REGISTER,
            Op::Unmask => Self::UNMASK,
            Op::Mask => Self::MASK,
            Op::Route(_) => Self::ROUTE,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Register(_) => "register",
            Op::Unmask => "unmask",
            Op::Mask => "mask",
            Op::Route(_) => "route",
        }
    }
}

/// An `IrqRequest` message's arguments, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub device: DeviceId,
    pub op: Op,
}

/// Why a request message was refused before reaching the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    UnknownOp(u8),
    /// Bits set that no field uses.
    Reserved,
    /// A register request whose source is neither a valid GSI line nor MSI.
    BadSource,
}

const LEVEL: u64 = 1 << 32;
const ACTIVE_LOW: u64 = 1 << 33;
const MSI: u64 = 1 << 34;

impl Request {
    /// `[op | device << 8, argument, 0]`.
    pub fn encode(self) -> [u64; 3] {
        let arg = match self.op {
            Op::Register(IrqSource::Gsi {
                gsi,
                trigger,
                polarity,
            }) => {
                u64::from(gsi.0)
                    | if trigger == TriggerMode::Level {
                        LEVEL
                    } else {
                        0
                    }
                    | if polarity == Polarity::ActiveLow {
                        ACTIVE_LOW
                    } else {
                        0
                    }
            }
            Op::Register(IrqSource::Msi) => MSI,
            Op::Route(apic) => u64::from(apic),
            Op::Unmask | Op::Mask => 0,
        };
        [
            u64::from(self.op.code()) | u64::from(self.device.0) << 8,
            arg,
            0,
        ]
    }

    /// Decodes a peer's message arguments; anything malformed is refused.
    pub fn decode(args: [u64; 3]) -> Result<Request, DecodeError> {
        let [head, arg, rest] = args;
        if head >> 24 != 0 || rest != 0 {
            return Err(DecodeError::Reserved);
        }
        let device = DeviceId((head >> 8) as u16);
        let op = match head as u8 {
            Op::REGISTER => {
                if arg == MSI {
                    Op::Register(IrqSource::Msi)
                } else if arg & !(LEVEL | ACTIVE_LOW | u64::from(u32::MAX)) != 0 {
                    return Err(DecodeError::BadSource);
                } else {
                    Op::Register(IrqSource::Gsi {
                        gsi: Gsi(arg as u32),
                        trigger: if arg & LEVEL != 0 {
                            TriggerMode::Level
                        } else {
                            TriggerMode::Edge
                        },
                        polarity: if arg & ACTIVE_LOW != 0 {
                            Polarity::ActiveLow
                        } else {
                            Polarity::ActiveHigh
                        },
                    })
                }
            }
            Op::UNMASK | Op::MASK if arg != 0 => return Err(DecodeError::Reserved),
            Op::UNMASK => Op::Unmask,
            Op::MASK => Op::Mask,
            Op::ROUTE if arg >> 32 != 0 => return Err(DecodeError::Reserved),
            Op::ROUTE => Op::Route(arg as u32),
            other => return Err(DecodeError::UnknownOp(other)),
        };
        Ok(Request { device, op })
    }
}

/// How the layer answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Ok = 0,
    /// The asking node does not own the device: refused, counted, entry unchanged.
    NotOwner = 1,
    /// Refused for another reason (unknown device, not registered, hardware...).
    Refused = 2,
    /// The message itself was malformed.
    Malformed = 3,
}

impl Status {
    pub fn from_raw(v: u8) -> Option<Status> {
        Some(match v {
            0 => Status::Ok,
            1 => Status::NotOwner,
            2 => Status::Refused,
            3 => Status::Malformed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::NotOwner => "not_owner",
            Status::Refused => "refused",
            Status::Malformed => "malformed",
        }
    }
}

/// An `IrqReply` message's arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: Status,
    /// The device's vector and GSI after the operation, when it has them.
    pub vector: Option<Vector>,
    pub gsi: Option<Gsi>,
    /// The device's redirection entry read before and after the operation (raw; 0 when the
    /// device has no pin).
    pub before: u64,
    pub after: u64,
}

impl Reply {
    const HAS_VECTOR: u64 = 1 << 24;
    const HAS_GSI: u64 = 1 << 25;

    pub fn entry_before(&self) -> Option<RedirectionEntry> {
        RedirectionEntry::from_raw(self.before).ok()
    }

    pub fn entry_after(&self) -> Option<RedirectionEntry> {
        RedirectionEntry::from_raw(self.after).ok()
    }

    /// `[status << 8 | vector << 16 | flags | gsi << 32, before, after]` (the low byte is free
    /// for the operation's code, which the caller matches by sequence number anyway).
    pub fn encode(self) -> [u64; 3] {
        let mut head = u64::from(self.status as u8) << 8;
        if let Some(v) = self.vector {
            head |= u64::from(v.0) << 16 | Self::HAS_VECTOR;
        }
        if let Some(g) = self.gsi {
            head |= u64::from(g.0) << 32 | Self::HAS_GSI;
        }
        [head, self.before, self.after]
    }

    /// Decodes node 0's reply; a status it does not know is refused.
    pub fn decode(args: [u64; 3]) -> Option<Reply> {
        let [head, before, after] = args;
        Some(Reply {
            status: Status::from_raw((head >> 8) as u8)?,
            vector: (head & Self::HAS_VECTOR != 0).then_some(Vector((head >> 16) as u8)),
            gsi: (head & Self::HAS_GSI != 0).then_some(Gsi((head >> 32) as u32)),
            before,
            after,
        })
    }
}

/// One MADT interrupt source override: ISA line `isa` arrives on `gsi`; `level` and
/// `active_low` are `None` where the firmware says "as the bus".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceOverride {
    pub isa: u8,
    pub gsi: u32,
    pub level: Option<bool>,
    pub active_low: Option<bool>,
}

/// Where a PCI function's INTx arrives, from its interrupt-line register (the legacy IRQ the
/// firmware routed it to) and the MADT's overrides: an override of that IRQ gives the GSI and
/// whatever trigger and polarity it states; the rest is PCI's own: level, active low. Without
/// an override the line is the GSI (an I/O APIC pin at GSI base 0 on a PC). QEMU's `pc` machine
/// overrides its PCI IRQs (5, 9, 10, 11) as level, active high: the PIIX's link routing hands
/// the I/O APIC an inverted, active-high line.
pub fn intx_source(line: u8, overrides: &[SourceOverride]) -> IrqSource {
    let o = overrides.iter().find(|o| o.isa == line);
    let level = o.and_then(|o| o.level).unwrap_or(true);
    let active_low = o.and_then(|o| o.active_low).unwrap_or(true);
    IrqSource::Gsi {
        gsi: Gsi(o.map_or(u32::from(line), |o| o.gsi)),
        trigger: if level {
            TriggerMode::Level
        } else {
            TriggerMode::Edge
        },
        polarity: if active_low {
            Polarity::ActiveLow
        } else {
            Polarity::ActiveHigh
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for op in [
            Op::Register(IrqSource::pci_intx(Gsi(11))),
            Op::Register(IrqSource::isa_edge(Gsi(4))),
            Op::Register(IrqSource::Gsi {
                gsi: Gsi(23),
                trigger: TriggerMode::Level,
                polarity: Polarity::ActiveHigh,
            }),
            Op::Register(IrqSource::Msi),
            Op::Unmask,
            Op::Mask,
            Op::Route(7),
        ] {
            let r = Request {
                device: DeviceId(3),
                op,
            };
            assert_eq!(Request::decode(r.encode()), Ok(r), "{op:?}");
        }
    }

    #[test]
    fn known_encoding() {
        let r = Request {
            device: DeviceId(0),
            op: Op::Register(IrqSource::pci_intx(Gsi(11))),
        };
        assert_eq!(r.encode(), [1, 11 | 1 << 32 | 1 << 33, 0]);
        let u = Request {
            device: DeviceId(2),
            op: Op::Unmask,
        };
        assert_eq!(u.encode(), [2 | 2 << 8, 0, 0]);
    }

    #[test]
    fn garbage_requests_are_refused() {
        assert_eq!(Request::decode([9, 0, 0]), Err(DecodeError::UnknownOp(9)));
        assert_eq!(Request::decode([0, 0, 0]), Err(DecodeError::UnknownOp(0)));
        assert_eq!(Request::decode([2, 0, 1]), Err(DecodeError::Reserved));
        assert_eq!(
            Request::decode([2 | 1 << 40, 0, 0]),
            Err(DecodeError::Reserved)
        );
        assert_eq!(Request::decode([2, 5, 0]), Err(DecodeError::Reserved));
        assert_eq!(Request::decode([4, 1 << 32, 0]), Err(DecodeError::Reserved));
        assert_eq!(
            Request::decode([1, 1 << 40, 0]),
            Err(DecodeError::BadSource)
        );
    }

    #[test]
    fn replies_round_trip() {
        let e = RedirectionEntry::fixed(
            Vector(0x30),
            1,
            TriggerMode::Level,
            Polarity::ActiveLow,
            true,
        );
        for r in [
            Reply {
                status: Status::Ok,
                vector: Some(Vector(0x30)),
                gsi: Some(Gsi(11)),
                before: RedirectionEntry::MASKED.to_raw(),
                after: e.to_raw(),
            },
            Reply {
                status: Status::NotOwner,
                vector: None,
                gsi: None,
                before: e.to_raw(),
                after: e.to_raw(),
            },
            Reply {
                status: Status::Malformed,
                vector: Some(Vector(0)),
                gsi: Some(Gsi(0)),
                before: 0,
                after: 0,
            },
        ] {
            assert_eq!(Reply::decode(r.encode()), Some(r));
        }
        assert_eq!(Reply::decode([9 << 8, 0, 0]), None);
        let r = Reply::decode([1 << 8, e.to_raw(), e.to_raw()]).expect("valid");
        assert_eq!(r.entry_after(), Some(e));
    }

    #[test]
    fn intx_follows_the_madt() {
        // QEMU pc: IRQ 0 -> GSI 2 (edge), PCI IRQs 5, 9, 10, 11 level active high.
        let qemu = [
            SourceOverride {
                isa: 0,
                gsi: 2,
                level: None,
                active_low: None,
            },
            SourceOverride {
                isa: 11,
                gsi: 11,
                level: Some(true),
                active_low: Some(false),
            },
        ];
        assert_eq!(
            intx_source(11, &qemu),
            IrqSource::Gsi {
                gsi: Gsi(11),
                trigger: TriggerMode::Level,
                polarity: Polarity::ActiveHigh
            }
        );
        // No override: PCI's own level, active low, the line as GSI.
        assert_eq!(intx_source(10, &qemu), IrqSource::pci_intx(Gsi(10)));
        // An override that states nothing keeps PCI's trigger and polarity.
        assert_eq!(intx_source(0, &qemu), IrqSource::pci_intx(Gsi(2)));
        assert_eq!(intx_source(5, &[]), IrqSource::pci_intx(Gsi(5)));
    }
}
