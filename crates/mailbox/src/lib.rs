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
//!
//! What each end writes can live apart: [`Outbox`] is the producer's half
//! (its index and the slots), [`ConsumerIndex`] the consumer's, and a
//! [`Queue`] joins one of each by reference. The shared region puts the
//! two halves on pages only their writer may write, so a third node cannot
//! inject messages into a queue it does not produce. [`Mailbox`] holds
//! both halves together (tests, and a queue that needs no such split).
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

/// The producer's half of a queue of `N` messages (`N` a power of two):
/// the next index it writes, and the slots. Written by the producer only.
#[repr(C)]
pub struct Outbox<const N: usize> {
    tail: CacheLine<AtomicU32>,
    slots: [[AtomicU64; 4]; N],
}

/// The consumer's half: the next index it reads, on a cache line of its
/// own. Written by the consumer only.
#[repr(C)]
pub struct ConsumerIndex(CacheLine<AtomicU32>);

impl Default for ConsumerIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsumerIndex {
    pub const fn new() -> Self {
        ConsumerIndex(CacheLine(AtomicU32::new(0)))
    }
}

impl<const N: usize> Default for Outbox<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Outbox<N> {
    const CAPACITY_OK: () = assert!(N.is_power_of_two() && N <= (1 << 16));

    #[allow(clippy::declare_interior_mutable_const)]
    const ZERO_SLOT: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

    pub const fn new() -> Self {
        let () = Self::CAPACITY_OK;
        Outbox {
            tail: CacheLine(AtomicU32::new(0)),
            slots: [Self::ZERO_SLOT; N],
        }
    }
}

/// Byte offsets of the queue's parts, for an end not written in Rust (mint's
/// Linux module reads and writes the same words: `linux/module`).
pub mod layout {
    use super::{ConsumerIndex, Outbox};
    /// The producer index (u32) within an [`Outbox`].
    pub const OUTBOX_TAIL: usize = core::mem::offset_of!(Outbox<1>, tail);
    /// The first message within an [`Outbox`]; message `i % N` follows at
    /// `i % N * MESSAGE_SIZE`: word 0 = kind | seq << 32, words 1-3 = args.
    pub const OUTBOX_SLOTS: usize = core::mem::offset_of!(Outbox<1>, slots);
    /// Bytes of one message.
    pub const MESSAGE_SIZE: usize = 32;
    /// Bytes of a [`ConsumerIndex`] (its u32 is at offset 0).
    pub const CONSUMER_INDEX_SIZE: usize = core::mem::size_of::<ConsumerIndex>();
    const _: () =
        assert!(core::mem::size_of::<[core::sync::atomic::AtomicU64; 4]>() == MESSAGE_SIZE);
}

/// An SPSC queue of `N` messages: a consumer index and an outbox, which
/// may live in different places. Indices run freely and wrap at 2^32; the
/// slot is `index % N`.
#[derive(Clone, Copy)]
pub struct Queue<'a, const N: usize> {
    /// Next index the consumer reads (written by the consumer only).
    head: &'a AtomicU32,
    /// Next index the producer writes, and the slots (producer only).
    out: &'a Outbox<N>,
}

impl<'a, const N: usize> Queue<'a, N> {
    /// The queue made of `head` and `out`.
    pub fn new(head: &'a ConsumerIndex, out: &'a Outbox<N>) -> Self {
        Queue {
            head: &head.0.0,
            out,
        }
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    /// Producer side: enqueue `msg`, or `Full`.
    pub fn push(&self, msg: Message) -> Result<(), Full> {
        let tail = self.out.tail.0.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        if tail.wrapping_sub(head) as usize >= N {
            return Err(Full);
        }
        let slot = &self.out.slots[tail as usize % N];
        for (cell, word) in slot.iter().zip(msg.to_words()) {
            cell.store(word, Ordering::Relaxed);
        }
        self.out
            .tail
            .0
            .store(tail.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Consumer side: dequeue the oldest message, `Ok(None)` when empty.
    pub fn pop(&self) -> Result<Option<Message>, Corrupt> {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.out.tail.0.load(Ordering::Acquire);
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
        let slot = &self.out.slots[head as usize % N];
        let mut words = [0u64; 4];
        for (word, cell) in words.iter_mut().zip(slot) {
            *word = cell.load(Ordering::Relaxed);
        }
        self.head.store(head.wrapping_add(1), Ordering::Release);
        Ok(Some(Message::from_words(words)))
    }

    /// Consumer side: hands every waiting message to `handle`, but at most
    /// one capacity's worth (`N`), so a producer that keeps producing
    /// while this runs cannot keep the consumer here. On a corrupt index it
    /// stops and reports it (after the messages handled before).
    pub fn drain(&self, mut handle: impl FnMut(Message)) -> Result<Drained, Corrupt> {
        let mut taken = 0;
        while taken < N {
            match self.pop()? {
                Some(msg) => {
                    taken += 1;
                    handle(msg);
                }
                None => {
                    return Ok(Drained {
                        taken,
                        more_waiting: false,
                    });
                }
            }
        }
        Ok(Drained {
            taken,
            more_waiting: !self.is_empty(),
        })
    }

    /// Messages waiting, as the consumer would see them (0 if corrupt).
    pub fn len(&self) -> usize {
        let pending = self
            .out
            .tail
            .0
            .load(Ordering::Acquire)
            .wrapping_sub(self.head.load(Ordering::Acquire)) as usize;
        if pending > N { 0 } else { pending }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Test and fault-injection hook: overwrite the producer index as a
    /// misbehaving peer would.
    pub fn corrupt_tail_for_test(&self, value: u32) {
        self.out.tail.0.store(value, Ordering::Release);
    }
}

/// What one [`Queue::drain`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    /// Messages handed to the handler.
    pub taken: usize,
    /// The drain stopped at its bound with messages still waiting.
    pub more_waiting: bool,
}

/// Both halves of a queue in one place.
#[repr(C)]
pub struct Mailbox<const N: usize> {
    head: ConsumerIndex,
    out: Outbox<N>,
}

impl<const N: usize> Default for Mailbox<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Mailbox<N> {
    pub const fn new() -> Self {
        Mailbox {
            head: ConsumerIndex::new(),
            out: Outbox::new(),
        }
    }

    /// The queue over both halves.
    pub fn queue(&self) -> Queue<'_, N> {
        Queue::new(&self.head, &self.out)
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    pub fn push(&self, msg: Message) -> Result<(), Full> {
        self.queue().push(msg)
    }

    pub fn pop(&self) -> Result<Option<Message>, Corrupt> {
        self.queue().pop()
    }

    pub fn len(&self) -> usize {
        self.queue().len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue().is_empty()
    }

    pub fn corrupt_tail_for_test(&self, value: u32) {
        self.queue().corrupt_tail_for_test(value)
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
        mb.head.0.0.store(u32::MAX - 2, Ordering::Relaxed);
        mb.out.tail.0.store(u32::MAX - 2, Ordering::Relaxed);
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

    #[test]
    fn drain_is_bounded_by_the_capacity_against_a_producer_that_never_stops() {
        let mb: Mailbox<8> = Mailbox::new();
        let q = mb.queue();
        for i in 0..8 {
            q.push(msg(i)).unwrap();
        }
        // Every message handled makes the "peer" produce another one.
        let mut next = 8;
        let mut seen = std::vec::Vec::new();
        let drained = q
            .drain(|m| {
                seen.push(m.seq);
                q.push(msg(next)).unwrap();
                next += 1;
            })
            .unwrap();
        assert_eq!(
            drained,
            Drained {
                taken: 8,
                more_waiting: true
            }
        );
        assert_eq!(seen, (0..8).collect::<std::vec::Vec<_>>());
        assert_eq!(q.len(), 8, "the rest waits for the next drain");
    }

    #[test]
    fn drain_takes_what_is_there_and_stops_at_corruption() {
        let mb: Mailbox<8> = Mailbox::new();
        let q = mb.queue();
        assert_eq!(
            q.drain(|_| panic!("nothing to handle")),
            Ok(Drained {
                taken: 0,
                more_waiting: false
            })
        );
        q.push(msg(1)).unwrap();
        q.push(msg(2)).unwrap();
        let mut n = 0;
        assert_eq!(
            q.drain(|_| n += 1),
            Ok(Drained {
                taken: 2,
                more_waiting: false
            })
        );
        assert_eq!(n, 2);
        q.corrupt_tail_for_test(1000);
        assert!(q.drain(|_| panic!("corrupt: nothing handled")).is_err());
    }

    #[test]
    fn split_halves_make_one_queue() {
        let head = ConsumerIndex::new();
        let out: Outbox<4> = Outbox::new();
        let q = Queue::new(&head, &out);
        q.push(msg(1)).unwrap();
        q.push(msg(2)).unwrap();
        // Another view of the same halves sees the same queue.
        let again = Queue::new(&head, &out);
        assert_eq!(again.len(), 2);
        assert_eq!(again.pop(), Ok(Some(msg(1))));
        assert_eq!(q.pop(), Ok(Some(msg(2))));
        assert!(q.is_empty());
    }

    extern crate std;

    proptest! {
        /// Any interleaving of pushes and pops behaves like a bounded VecDeque.
        #[test]
        fn behaves_like_bounded_fifo(ops in proptest::collection::vec(any::<bool>(), 0..400),
                                     start in any::<u32>()) {
            let mb: Mailbox<8> = Mailbox::new();
            mb.head.0.0.store(start, Ordering::Relaxed);
            mb.out.tail.0.store(start, Ordering::Relaxed);
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
