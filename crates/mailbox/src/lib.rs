//! Mailboxes: single-producer single-consumer message queues in shared memory.
//!
//! One mailbox carries messages from one node to another. It lives in the
//! shared region (`mint-abi` places it), so both ends are peers that do not
//! trust each other: the consumer validates the producer's index before using
//! it, and a corrupt index is reported, never followed.
//!
//! Slots are arrays of `AtomicU64` rather than `UnsafeCell<Message>`, so the
//! queue needs no `unsafe`: a message is four words, written with relaxed
//! stores and published by a release store of the producer index.
//! Producer and consumer indices sit on separate cache lines so the two
//! cores do not bounce one line per message.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A fixed-size message: a kind, a sequence number and three arguments.
/// What the kinds mean is the ABI's business (`mint_abi::MessageKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Message {
    pub kind: u32,
    pub seq: u32,
    pub args: [u64; 3],
}

impl Message {
    pub const fn new(kind: u32, seq: u32, args: [u64; 3]) -> Self {
        Message { kind, seq, args }
    }

    fn to_words(self) -> [u64; 4] {
        [
            u64::from(self.kind) | (u64::from(self.seq) << 32),
            self.args[0],
            self.args[1],
            self.args[2],
        ]
    }

    fn from_words(w: [u64; 4]) -> Self {
        Message {
            kind: w[0] as u32,
            seq: (w[0] >> 32) as u32,
            args: [w[1], w[2], w[3]],
        }
    }
}

/// The queue had no free slot; the message was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// The peer's indices are inconsistent (more messages than slots): the
/// mailbox is corrupt and must not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt {
    pub head: u32,
    pub tail: u32,
    pub capacity: u32,
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mailbox full")
    }
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "corrupt mailbox: head {} tail {} exceed capacity {}",
            self.head, self.tail, self.capacity
        )
    }
}

#[repr(C, align(64))]
struct CacheLine<T>(T);

/// An SPSC queue of `N` messages (`N` a power of two). Indices run freely
/// and wrap at 2^32; the slot is `index % N`.
#[repr(C)]
pub struct Mailbox<const N: usize> {
    /// Next index the consumer reads (written by the consumer only).
    head: CacheLine<AtomicU32>,
    /// Next index the producer writes (written by the producer only).
    tail: CacheLine<AtomicU32>,
    slots: [[AtomicU64; 4]; N],
}

impl<const N: usize> Default for Mailbox<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Mailbox<N> {
    const CAPACITY_OK: () = assert!(N.is_power_of_two() && N <= (1 << 16));

    #[allow(clippy::declare_interior_mutable_const)]
    const ZERO_SLOT: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

    pub const fn new() -> Self {
        let () = Self::CAPACITY_OK;
        Mailbox {
            head: CacheLine(AtomicU32::new(0)),
            tail: CacheLine(AtomicU32::new(0)),
            slots: [Self::ZERO_SLOT; N],
        }
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    /// Producer side: enqueue `msg`, or `Full`.
    pub fn push(&self, msg: Message) -> Result<(), Full> {
        let tail = self.tail.0.load(Ordering::Relaxed);
        let head = self.head.0.load(Ordering::Acquire);
        if tail.wrapping_sub(head) as usize >= N {
            return Err(Full);
        }
        let slot = &self.slots[tail as usize % N];
        for (cell, word) in slot.iter().zip(msg.to_words()) {
            cell.store(word, Ordering::Relaxed);
        }
        self.tail.0.store(tail.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Consumer side: dequeue the oldest message, `Ok(None)` when empty.
    pub fn pop(&self) -> Result<Option<Message>, Corrupt> {
        let head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Acquire);
        let pending = tail.wrapping_sub(head);
        if pending == 0 {
            return Ok(None);
        }
        if pending as usize > N {
            return Err(Corrupt {
                head,
                tail,
                capacity: N as u32,
            });
        }
        let slot = &self.slots[head as usize % N];
        let mut words = [0u64; 4];
        for (word, cell) in words.iter_mut().zip(slot) {
            *word = cell.load(Ordering::Relaxed);
        }
        self.head.0.store(head.wrapping_add(1), Ordering::Release);
        Ok(Some(Message::from_words(words)))
    }

    /// Messages waiting, as the consumer would see them (0 if corrupt).
    pub fn len(&self) -> usize {
        let pending = self
            .tail
            .0
            .load(Ordering::Acquire)
            .wrapping_sub(self.head.0.load(Ordering::Acquire)) as usize;
        if pending > N { 0 } else { pending }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Test and fault-injection hook: overwrite the producer index as a
    /// misbehaving peer would.
    pub fn corrupt_tail_for_test(&self, value: u32) {
        self.tail.0.store(value, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(i: u32) -> Message {
        Message::new(i % 7, i, [u64::from(i), !u64::from(i), 42])
    }

    #[test]
    fn fifo_and_full() {
        let mb: Mailbox<4> = Mailbox::new();
        assert_eq!(mb.pop(), Ok(None));
        for i in 0..4 {
            mb.push(msg(i)).unwrap();
        }
        assert_eq!(mb.push(msg(99)), Err(Full));
        assert_eq!(mb.len(), 4);
        for i in 0..4 {
            assert_eq!(mb.pop(), Ok(Some(msg(i))));
        }
        assert_eq!(mb.pop(), Ok(None));
    }

    #[test]
    fn corrupt_tail_is_reported_not_followed() {
        let mb: Mailbox<8> = Mailbox::new();
        mb.push(msg(1)).unwrap();
        mb.corrupt_tail_for_test(1000);
        let err = mb.pop().unwrap_err();
        assert_eq!(err.capacity, 8);
        assert_eq!(err.tail, 1000);
        assert_eq!(mb.len(), 0);
    }

    #[test]
    fn indices_wrap_at_u32() {
        let mb: Mailbox<8> = Mailbox::new();
        mb.head.0.store(u32::MAX - 2, Ordering::Relaxed);
        mb.tail.0.store(u32::MAX - 2, Ordering::Relaxed);
        for i in 0..8 {
            mb.push(msg(i)).unwrap();
        }
        assert_eq!(mb.push(msg(9)), Err(Full));
        for i in 0..8 {
            assert_eq!(mb.pop(), Ok(Some(msg(i))));
        }
    }

    #[test]
    fn two_threads_deliver_everything_in_order() {
        let mb: Mailbox<16> = Mailbox::new();
        const COUNT: u32 = 50_000;
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..COUNT {
                    while mb.push(msg(i)).is_err() {
                        std::hint::spin_loop();
                    }
                }
            });
            let mut next = 0;
            while next < COUNT {
                if let Some(m) = mb.pop().unwrap() {
                    assert_eq!(m, msg(next));
                    next += 1;
                }
            }
        });
        assert!(mb.is_empty());
    }

    extern crate std;

    proptest! {
        /// Any interleaving of pushes and pops behaves like a bounded VecDeque.
        #[test]
        fn behaves_like_bounded_fifo(ops in proptest::collection::vec(any::<bool>(), 0..400),
                                     start in any::<u32>()) {
            let mb: Mailbox<8> = Mailbox::new();
            mb.head.0.store(start, Ordering::Relaxed);
            mb.tail.0.store(start, Ordering::Relaxed);
            let mut model = std::collections::VecDeque::new();
            let mut n = 0u32;
            for push in ops {
                if push {
                    let r = mb.push(msg(n));
                    if model.len() < 8 { prop_assert!(r.is_ok()); model.push_back(msg(n)); }
                    else { prop_assert_eq!(r, Err(Full)); }
                    n += 1;
                } else {
                    prop_assert_eq!(mb.pop().unwrap(), model.pop_front());
                }
                prop_assert_eq!(mb.len(), model.len());
            }
        }
    }
}
