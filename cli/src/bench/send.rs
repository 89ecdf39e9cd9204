//! Send processing time natively: the kernel's per-frame function
//! (`mint_support::Sender::send`, which `kernel/src/nic/support.rs` runs
//! on node 0) on the support CPU, into the ring the kernel's driver code
//! (`mint_target::RxPath`, which `kernel/src/nic/driver.rs` runs in its
//! handler) keeps clean on the target CPU: a whole run of [`super::target`]
//! on the driver-only path, frames [`INTERVAL_NS`] apart (absolute
//! deadlines), so the target has long cleaned each one before the next:
//! the figures are sends into a free ring, as the paper's.

use anyhow::Result;
use mint_abi::debug_nic::DropReason;
use mint_traffic::Moderation;

use super::native::Pair;
use super::target::{self, Pace, Path, Spec};

/// Time between two sends' deadlines.
pub const INTERVAL_NS: u64 = 10_000;

/// What the sends of one size gave.
pub struct SendRun {
    /// Ticks of each send, in order.
    pub ticks: Vec<u64>,
    /// Ticks of each send's signal (0 where none was raised).
    pub signal_ticks: Vec<u64>,
    /// Frames the ring had no room for (0 when the target kept up).
    pub ring_full: u64,
    /// Frames the target cleaned.
    pub cleaned: u64,
    /// The device's read-aheads: in the waits between sends (frames
    /// [`INTERVAL_NS`] apart leave it idle time), and in sends that came
    /// late (a busy host) with no wait before them.
    pub read_aheads: mint_support::ReadAheads,
}

/// `sends` frames of `size` bytes (UDP, the generator's format) sent by
/// the kernel's per-frame function, [`INTERVAL_NS`] apart.
pub fn send_time(pair: Pair, tsc_hz: u64, size: usize, sends: usize) -> Result<SendRun> {
    let spec = Spec {
        path: Path::Driver,
        size,
        count: sends as u32,
        pace: Pace::Interval(INTERVAL_NS),
        moderation: Moderation::None,
    };
    let out = target::run(pair, tsc_hz, spec, 1)?;
    let refused = out.drops[DropReason::DeviceRefused as usize];
    if refused > 0 {
        anyhow::bail!("the device model refused {refused} frames of {size} bytes");
    }
    Ok(SendRun {
        ticks: out.send_ticks,
        signal_ticks: out.send_signal_ticks,
        ring_full: out.drops[DropReason::RingFull as usize],
        cleaned: out.delivered,
        read_aheads: out.read_aheads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_send_is_timed_and_every_frame_cleaned() {
        let Ok(cpus) = crate::os::allowed_cpus() else {
            return;
        };
        let pair = match cpus[..] {
            [a, b, ..] => Pair {
                support: a,
                target: b,
            },
            _ => return,
        };
        let run = send_time(pair, 3_000_000_000, 1514, 300).expect("sends");
        assert_eq!(run.ticks.len(), 300);
        assert_eq!(run.signal_ticks.len(), 300);
        assert_eq!(run.cleaned + run.ring_full, 300, "every frame has a place");
        // At most one read-ahead per frame placed, in a wait or in the
        // next send (which of the two depends on the host's timing); the
        // waits' ones timed.
        let ra = run.read_aheads;
        assert!(ra.idle + ra.in_sends <= run.cleaned, "{ra:?}");
        assert!(ra.idle + ra.in_sends > 0, "{ra:?}");
        assert_eq!(ra.idle_ticks > 0, ra.idle > 0, "{ra:?}");
    }
}
