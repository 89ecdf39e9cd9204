//! The smoltcp `Device` over the driver's socket buffers: each RX token is
//! the oldest socket buffer, consumed in place (no copy). Raw-Ethernet
//! frames are handed to the application here instead of the stack, as a
//! packet socket would take them. Transmit tokens discard: the debug NIC
//! has no TX path.

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use mint_abi::debug_nic::BUFFER_SIZE;
use mint_skb::{Consumer, Skb};

use crate::app::App;

/// Frames per `poll` call, so the UDP socket is drained between batches.
const RX_BUDGET: usize = 32;

/// What the stack was given and gave back, per run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames given to smoltcp.
    pub to_stack: u64,
    /// Datagrams the UDP socket returned.
    pub from_stack: u64,
    /// Frames smoltcp wanted to send (discarded).
    pub tx_discarded: u64,
}

impl Stats {
    /// Frames the stack took but did not hand to the socket.
    pub fn stack_drops(&self) -> u64 {
        self.to_stack.saturating_sub(self.from_stack)
    }
}

pub(crate) struct SkbDevice<'a, 'm> {
    skbs: &'a mut Consumer,
    app: &'a mut App<'m>,
    stats: &'a mut Stats,
    budget: usize,
    tx_scratch: [u8; 128],
}

impl<'a, 'm> SkbDevice<'a, 'm> {
    pub(crate) fn new(skbs: &'a mut Consumer, app: &'a mut App<'m>, stats: &'a mut Stats) -> Self {
        SkbDevice {
            skbs,
            app,
            stats,
            budget: RX_BUDGET,
            tx_scratch: [0; 128],
        }
    }
}

/// The oldest socket buffer, lent by the pool's consumer; consuming the
/// token releases it (dropping it unconsumed leaves it at the front).
pub(crate) struct RxToken<'a> {
    skb: Skb<'a>,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(self.skb.frame());
        self.skb.release();
        r
    }
}

pub(crate) struct TxToken<'a> {
    scratch: &'a mut [u8; 128],
    discarded: &'a mut u64,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        *self.discarded += 1;
        if len <= self.scratch.len() {
            f(&mut self.scratch[..len])
        } else {
            f(&mut alloc::vec![0u8; len])
        }
    }
}

impl phy::Device for SkbDevice<'_, '_> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        // Decide on the very frame the token will carry: raw frames never
        // reach the stack, the application takes them here.
        loop {
            if is_raw(self.skbs.peek()?) {
                if let Some(skb) = self.skbs.front() {
                    self.app.consume_raw(skb.frame());
                    skb.release();
                }
                continue;
            }
            if self.budget == 0 {
                return None;
            }
            let skb = self.skbs.front()?;
            self.budget -= 1;
            self.stats.to_stack += 1;
            return Some((
                RxToken { skb },
                TxToken {
                    scratch: &mut self.tx_scratch,
                    discarded: &mut self.stats.tx_discarded,
                },
            ));
        }
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        Some(TxToken {
            scratch: &mut self.tx_scratch,
            discarded: &mut self.stats.tx_discarded,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = BUFFER_SIZE;
        caps
    }
}

fn is_raw(frame: &[u8]) -> bool {
    frame.len() >= 14
        && u16::from_be_bytes([frame[12], frame[13]]) == mint_traffic::frame::RAW_ETHERTYPE
}
