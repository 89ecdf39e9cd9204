//! The smoltcp `Device` over the driver's socket buffers: each RX token is
//! the oldest socket buffer, consumed in place (no copy). Raw-Ethernet
//! frames are handed to the application here instead of the stack.
//! Transmit tokens discard: the debug NIC has no TX path.

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use super::app::App;
use crate::nic::driver::{BUFFER_SIZE, SkbPool};

/// Frames per `poll` call, so the UDP socket is drained between batches.
const RX_BUDGET: usize = 32;

#[derive(Default)]
pub struct Stats {
    /// Frames given to smoltcp.
    pub to_stack: u64,
    /// Datagrams the UDP socket returned.
    pub from_stack: u64,
    /// Frames smoltcp wanted to send (discarded).
    pub tx_discarded: u64,
}

pub struct SkbDevice<'a> {
    pool: &'static SkbPool,
    app: &'a mut App,
    stats: &'a mut Stats,
    budget: usize,
    tx_scratch: [u8; 128],
}

impl<'a> SkbDevice<'a> {
    pub fn new(pool: &'static SkbPool, app: &'a mut App, stats: &'a mut Stats) -> Self {
        SkbDevice {
            pool,
            app,
            stats,
            budget: RX_BUDGET,
            tx_scratch: [0; 128],
        }
    }
}

pub struct RxToken {
    pool: &'static SkbPool,
}

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(self.pool.front().unwrap_or(&mut []));
        self.pool.release_front();
        r
    }
}

pub struct TxToken<'a> {
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

impl phy::Device for SkbDevice<'_> {
    type RxToken<'a>
        = RxToken
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
            let frame = self.pool.front()?;
            if is_raw(frame) {
                self.app.consume_raw(frame);
                self.pool.release_front();
                continue;
            }
            if self.budget == 0 {
                return None;
            }
            self.budget -= 1;
            self.stats.to_stack += 1;
            return Some((
                RxToken { pool: self.pool },
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
