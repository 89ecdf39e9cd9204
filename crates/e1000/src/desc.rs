//! The legacy RX descriptor: a typed value, its two-word form, and a typed view over raw bytes.
//!
//! In memory a legacy receive descriptor is 16 little-endian bytes:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..8 | buffer address |
//! | 8..10 | length |
//! | 10..12 | packet checksum |
//! | 12 | status |
//! | 13 | errors |
//! | 14..16 | special (VLAN tag) |
//!
//! Read as two little-endian `u64`s, that is word0 = buffer address and word1 = `length |
//! checksum << 16 | status << 32 | errors << 40 | special << 48`. The split matters: the driver
//! owns word0 (it places buffers) and the device owns word1 (it writes back completions), so a
//! shared-memory ring can hold each descriptor as two `AtomicU64`s and the device can publish a
//! whole write-back — status with DD included — in one Release store after copying the frame.

flags! {
    /// Descriptor status bits (byte 12).
    pub struct RxStatus: u8 {
        /// Descriptor done: the device has written this descriptor back.
        const DD = 0x01;
        /// End of packet: this descriptor holds the last buffer of a frame.
        const EOP = 0x02;
        /// Ignore checksum indication.
        const IXSM = 0x04;
        /// Packet is 802.1Q tagged (special holds the tag).
        const VP = 0x08;
        /// TCP checksum calculated.
        const TCPCS = 0x20;
        /// IP checksum calculated.
        const IPCS = 0x40;
        /// Passed in-exact filter.
        const PIF = 0x80;
    }
}

flags! {
    /// Descriptor error bits (byte 13); valid only with EOP.
    pub struct RxErrors: u8 {
        /// CRC or alignment error.
        const CE = 0x01;
        /// Symbol error.
        const SE = 0x02;
        /// Sequence error.
        const SEQ = 0x04;
        /// Carrier extension error.
        const CXE = 0x10;
        /// TCP/UDP checksum error.
        const TCPE = 0x20;
        /// IP checksum error.
        const IPE = 0x40;
        /// RX data error.
        const RXE = 0x80;
    }
}

/// A legacy receive descriptor as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxDescriptor {
    /// Physical address of the receive buffer (written by the driver).
    pub buffer_addr: u64,
    /// Bytes DMA'd into the buffer (written back by the device).
    pub length: u16,
    /// Packet checksum (written back by the device).
    pub checksum: u16,
    /// Status bits (written back by the device).
    pub status: RxStatus,
    /// Error bits (written back by the device).
    pub errors: RxErrors,
    /// VLAN tag when [`RxStatus::VP`] is set.
    pub special: u16,
}

impl RxDescriptor {
    /// Size of one descriptor in bytes.
    pub const SIZE: usize = 16;

    /// A descriptor as the driver hands it to the device: a buffer and nothing written back.
    pub const fn with_buffer(buffer_addr: u64) -> Self {
        Self {
            buffer_addr,
            length: 0,
            checksum: 0,
            status: RxStatus::empty(),
            errors: RxErrors::empty(),
            special: 0,
        }
    }

    /// The write-back half (word1): length, checksum, status, errors, special.
    pub const fn writeback_word(&self) -> u64 {
        (self.length as u64)
            | ((self.checksum as u64) << 16)
            | ((self.status.bits() as u64) << 32)
            | ((self.errors.bits() as u64) << 40)
            | ((self.special as u64) << 48)
    }

    /// `[word0, word1]`: buffer address, then the write-back word.
    pub const fn to_words(&self) -> [u64; 2] {
        [self.buffer_addr, self.writeback_word()]
    }

    /// The descriptor held in `[word0, word1]`. Every bit pattern is a valid descriptor.
    pub const fn from_words(words: [u64; 2]) -> Self {
        let w1 = words[1];
        Self {
            buffer_addr: words[0],
            length: w1 as u16,
            checksum: (w1 >> 16) as u16,
            status: RxStatus::from_bits_retain((w1 >> 32) as u8),
            errors: RxErrors::from_bits_retain((w1 >> 40) as u8),
            special: (w1 >> 48) as u16,
        }
    }

    /// The 16 bytes the hardware reads and writes.
    pub fn to_bytes(&self) -> [u8; 16] {
        let [w0, w1] = self.to_words();
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&w0.to_le_bytes());
        out[8..].copy_from_slice(&w1.to_le_bytes());
        out
    }

    /// The descriptor held in 16 hardware-layout bytes.
    pub fn from_bytes(bytes: &[u8; 16]) -> Self {
        let mut w0 = [0u8; 8];
        let mut w1 = [0u8; 8];
        w0.copy_from_slice(&bytes[..8]);
        w1.copy_from_slice(&bytes[8..]);
        Self::from_words([u64::from_le_bytes(w0), u64::from_le_bytes(w1)])
    }
}

/// A buffer too short to hold a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewError {
    /// Length of the buffer offered.
    pub len: usize,
}

impl core::fmt::Display for ViewError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} bytes cannot hold a {}-byte RX descriptor",
            self.len,
            RxDescriptor::SIZE
        )
    }
}

impl core::error::Error for ViewError {}

mod field {
    use core::ops::Range;
    pub const BUFFER_ADDR: Range<usize> = 0..8;
    pub const LENGTH: Range<usize> = 8..10;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const STATUS: usize = 12;
    pub const ERRORS: usize = 13;
    pub const SPECIAL: Range<usize> = 14..16;
}

/// A typed view over the 16 raw bytes of a descriptor (smoltcp style), for rings that live in
/// ordinary DMA memory, as with a real NIC.
///
/// Construct with [`new_checked`](Self::new_checked); the getters and setters then cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxDescriptorView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RxDescriptorView<T> {
    /// Wraps `buffer` without checking its length; accessors panic if it is shorter than 16.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking it holds a whole descriptor.
    pub fn new_checked(buffer: T) -> Result<Self, ViewError> {
        let view = Self::new_unchecked(buffer);
        view.check_len()?;
        Ok(view)
    }

    /// Checks the buffer holds a whole descriptor.
    pub fn check_len(&self) -> Result<(), ViewError> {
        let len = self.buffer.as_ref().len();
        if len < RxDescriptor::SIZE {
            Err(ViewError { len })
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes<const N: usize>(&self, at: core::ops::Range<usize>) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buffer.as_ref()[at]);
        out
    }

    /// Buffer address (bytes 0..8).
    pub fn buffer_addr(&self) -> u64 {
        u64::from_le_bytes(self.bytes(field::BUFFER_ADDR))
    }

    /// Length (bytes 8..10).
    pub fn length(&self) -> u16 {
        u16::from_le_bytes(self.bytes(field::LENGTH))
    }

    /// Packet checksum (bytes 10..12).
    pub fn checksum(&self) -> u16 {
        u16::from_le_bytes(self.bytes(field::CHECKSUM))
    }

    /// Status (byte 12).
    pub fn status(&self) -> RxStatus {
        RxStatus::from_bits_retain(self.buffer.as_ref()[field::STATUS])
    }

    /// Errors (byte 13).
    pub fn errors(&self) -> RxErrors {
        RxErrors::from_bits_retain(self.buffer.as_ref()[field::ERRORS])
    }

    /// Special / VLAN tag (bytes 14..16).
    pub fn special(&self) -> u16 {
        u16::from_le_bytes(self.bytes(field::SPECIAL))
    }

    /// The whole descriptor as a value.
    pub fn descriptor(&self) -> RxDescriptor {
        RxDescriptor {
            buffer_addr: self.buffer_addr(),
            length: self.length(),
            checksum: self.checksum(),
            status: self.status(),
            errors: self.errors(),
            special: self.special(),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RxDescriptorView<T> {
    /// Sets the buffer address.
    pub fn set_buffer_addr(&mut self, value: u64) {
        self.buffer.as_mut()[field::BUFFER_ADDR].copy_from_slice(&value.to_le_bytes());
    }

    /// Sets the length.
    pub fn set_length(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_le_bytes());
    }

    /// Sets the packet checksum.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_le_bytes());
    }

    /// Sets the status bits.
    pub fn set_status(&mut self, value: RxStatus) {
        self.buffer.as_mut()[field::STATUS] = value.bits();
    }

    /// Sets the error bits.
    pub fn set_errors(&mut self, value: RxErrors) {
        self.buffer.as_mut()[field::ERRORS] = value.bits();
    }

    /// Sets the special / VLAN tag field.
    pub fn set_special(&mut self, value: u16) {
        self.buffer.as_mut()[field::SPECIAL].copy_from_slice(&value.to_le_bytes());
    }

    /// Writes every field of `d`.
    pub fn set_descriptor(&mut self, d: &RxDescriptor) {
        self.set_buffer_addr(d.buffer_addr);
        self.set_writeback(d);
    }

    /// Writes the write-back fields of `d` (everything but the buffer address).
    pub fn set_writeback(&mut self, d: &RxDescriptor) {
        self.set_length(d.length);
        self.set_checksum(d.checksum);
        self.set_status(d.status);
        self.set_errors(d.errors);
        self.set_special(d.special);
    }
}
