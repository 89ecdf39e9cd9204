//! A bzImage's setup header (Documentation/arch/x86/boot.rst), read-only.

use core::fmt;

use crate::bytes::{get_u16, get_u32};

/// Header field offsets from the start of the image.
mod field {
    pub const SETUP_SECTS: usize = 0x1f1;
    pub const BOOT_FLAG: usize = 0x1fe;
    pub const JUMP: usize = 0x200;
    pub const HEADER: usize = 0x202;
    pub const VERSION: usize = 0x206;
    /// Where the kernel's version string is, less 0x200 (0 = none).
    pub const KERNEL_VERSION: usize = 0x20e;
    pub const INITRD_ADDR_MAX: usize = 0x22c;
    pub const KERNEL_ALIGNMENT: usize = 0x230;
    pub const RELOCATABLE: usize = 0x234;
    pub const XLOADFLAGS: usize = 0x236;
    pub const CMDLINE_SIZE: usize = 0x238;
    pub const INIT_SIZE: usize = 0x260;
    /// The header ends by here in every protocol up to 2.15
    /// (`kernel_info_offset`, 0x268..0x26c).
    pub const END: usize = 0x26c;
}

/// `xloadflags` bit 0: the kernel has the 64-bit entry at load + 0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// `xloadflags` bit 1: it may be loaded, and its initrd placed, above 4 GiB.
pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
/// The 64-bit entry point, from the start of the protected-mode part.
pub const ENTRY_64_OFFSET: u64 = 0x200;
/// The oldest boot protocol with `xloadflags` (2.12).
pub const MIN_PROTOCOL: u16 = 0x020c;

/// Why a file is not a kernel mint can boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BzImageError {
    /// Shorter than the setup header.
    TooShort { len: usize },
    /// No 0xAA55 boot flag or no "HdrS" magic: not a bzImage.
    NotABzImage,
    /// A protocol older than 2.12 (no `xloadflags`).
    OldProtocol { version: u16 },
    /// `xloadflags` bit 0 clear: no 64-bit entry.
    No64BitEntry { xloadflags: u16 },
    /// The kernel cannot be loaded at another address than it was built for.
    NotRelocatable,
    /// The setup sectors run past the end of the file.
    Truncated { setup_len: usize, len: usize },
    /// `kernel_alignment` is not a power of two.
    BadAlignment { alignment: u32 },
}

impl fmt::Display for BzImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BzImageError::TooShort { len } => write!(
                f,
                "{len} bytes: too short for a bzImage's setup header (not a Linux kernel)"
            ),
            BzImageError::NotABzImage => f.write_str(
                "not a bzImage (no 0xAA55 boot flag and \"HdrS\" setup header): not a Linux x86 kernel",
            ),
            BzImageError::OldProtocol { version } => write!(
                f,
                "boot protocol {}.{:02}: older than 2.12, which says whether there is a 64-bit entry",
                version >> 8,
                version & 0xff
            ),
            BzImageError::No64BitEntry { xloadflags } => write!(
                f,
                "the kernel has no 64-bit entry (xloadflags {xloadflags:#x}, bit 0 clear): mint starts Linux in long mode"
            ),
            BzImageError::NotRelocatable => f.write_str(
                "the kernel is not relocatable (CONFIG_RELOCATABLE): it cannot run inside a partition",
            ),
            BzImageError::Truncated { setup_len, len } => write!(
                f,
                "the setup part claims {setup_len} bytes of a {len}-byte file: truncated"
            ),
            BzImageError::BadAlignment { alignment } => {
                write!(f, "kernel_alignment {alignment:#x} is not a power of two")
            }
        }
    }
}

/// A checked bzImage: every accessor stays inside the bytes.
#[derive(Clone, Copy)]
pub struct BzImage<'a> {
    bytes: &'a [u8],
}

impl<'a> BzImage<'a> {
    /// Checks the header (see [`BzImageError`] for what is refused).
    pub fn parse(bytes: &'a [u8]) -> Result<BzImage<'a>, BzImageError> {
        let len = bytes.len();
        if len < field::END {
            return Err(BzImageError::TooShort { len });
        }
        let image = BzImage { bytes };
        if image.u16(field::BOOT_FLAG) != 0xAA55
            || &bytes[field::HEADER..field::HEADER + 4] != b"HdrS"
        {
            return Err(BzImageError::NotABzImage);
        }
        let version = image.version();
        if version < MIN_PROTOCOL {
            return Err(BzImageError::OldProtocol { version });
        }
        let xloadflags = image.xloadflags();
        if xloadflags & XLF_KERNEL_64 == 0 {
            return Err(BzImageError::No64BitEntry { xloadflags });
        }
        if bytes[field::RELOCATABLE] == 0 {
            return Err(BzImageError::NotRelocatable);
        }
        let alignment = image.u32(field::KERNEL_ALIGNMENT);
        if !alignment.is_power_of_two() {
            return Err(BzImageError::BadAlignment { alignment });
        }
        let setup_len = image.setup_len();
        if setup_len >= len {
            return Err(BzImageError::Truncated { setup_len, len });
        }
        Ok(image)
    }

    fn u16(&self, off: usize) -> u16 {
        get_u16(self.bytes, off).unwrap_or(0)
    }

    fn u32(&self, off: usize) -> u32 {
        get_u32(self.bytes, off).unwrap_or(0)
    }

    /// The boot protocol version (0x020f is 2.15).
    pub fn version(&self) -> u16 {
        self.u16(field::VERSION)
    }

    pub fn xloadflags(&self) -> u16 {
        self.u16(field::XLOADFLAGS)
    }

    /// Bytes of the real-mode setup part (boot sector included).
    pub fn setup_len(&self) -> usize {
        let sects = match self.bytes[field::SETUP_SECTS] {
            0 => 4,
            n => usize::from(n),
        };
        (sects + 1) * 512
    }

    /// The protected-mode part: what is placed at the load address.
    pub fn protected_mode(&self) -> &'a [u8] {
        &self.bytes[self.setup_len()..]
    }

    /// Bytes the kernel needs from its load address on to decompress and
    /// start (`init_size`).
    pub fn init_size(&self) -> u64 {
        u64::from(self.u32(field::INIT_SIZE))
    }

    /// The load address must be a multiple of this.
    pub fn kernel_alignment(&self) -> u64 {
        u64::from(self.u32(field::KERNEL_ALIGNMENT))
    }

    /// The longest command line the kernel takes, without its NUL.
    pub fn cmdline_size(&self) -> u32 {
        self.u32(field::CMDLINE_SIZE)
    }

    /// The highest address the initrd's last byte may have.
    pub fn initrd_addr_max(&self) -> u64 {
        if self.xloadflags() & XLF_CAN_BE_LOADED_ABOVE_4G != 0 {
            u64::MAX
        } else {
            u64::from(self.u32(field::INITRD_ADDR_MAX))
        }
    }

    /// The kernel's release (the first word of its version string, e.g.
    /// `6.1.0-57-amd64`), when the header points at a printable one inside
    /// the setup part.
    pub fn release(&self) -> Option<&'a str> {
        let at = usize::from(self.u16(field::KERNEL_VERSION));
        if at == 0 {
            return None;
        }
        let start = at + 0x200;
        let text = self
            .bytes
            .get(start..self.setup_len().min(self.bytes.len()))?;
        let end = text.iter().position(|&b| b == 0 || b == b' ')?;
        let word = core::str::from_utf8(&text[..end]).ok()?;
        (!word.is_empty() && word.bytes().all(|b| b.is_ascii_graphic())).then_some(word)
    }

    /// The setup header as the boot loader copies it into the zero page:
    /// from 0x1f1 to the end the jump at 0x200 names (0x202 + its byte).
    pub fn header(&self) -> &'a [u8] {
        let end = (field::HEADER + usize::from(self.bytes[field::JUMP + 1])).min(field::END);
        &self.bytes[field::SETUP_SECTS..end]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A minimal image with the header fields of Debian's 6.1 kernel.
    pub fn image() -> Vec<u8> {
        let mut b = vec![0u8; 5 * 512 + 4096];
        b[field::SETUP_SECTS] = 4;
        b[field::BOOT_FLAG..field::BOOT_FLAG + 2].copy_from_slice(&0xAA55u16.to_le_bytes());
        b[field::JUMP] = 0xeb;
        b[field::JUMP + 1] = 0x6a; // 0x202 + 0x6a = 0x26c, as in Debian's 6.1
        b[field::HEADER..field::HEADER + 4].copy_from_slice(b"HdrS");
        b[field::VERSION..field::VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
        b[field::KERNEL_ALIGNMENT..field::KERNEL_ALIGNMENT + 4]
            .copy_from_slice(&0x20_0000u32.to_le_bytes());
        b[field::RELOCATABLE] = 1;
        b[field::XLOADFLAGS..field::XLOADFLAGS + 2].copy_from_slice(&0x7fu16.to_le_bytes());
        b[field::INIT_SIZE..field::INIT_SIZE + 4].copy_from_slice(&0x400_0000u32.to_le_bytes());
        b[field::CMDLINE_SIZE..field::CMDLINE_SIZE + 4].copy_from_slice(&2047u32.to_le_bytes());
        b[5 * 512] = 0xcc;
        b
    }

    #[test]
    fn the_release_is_the_version_strings_first_word() {
        let mut b = image();
        assert_eq!(BzImage::parse(&b).expect("valid").release(), None);
        let text = b"6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        b[0x800..0x800 + text.len()].copy_from_slice(text);
        b[field::KERNEL_VERSION..field::KERNEL_VERSION + 2]
            .copy_from_slice(&(0x800u16 - 0x200).to_le_bytes());
        let k = BzImage::parse(&b).expect("valid");
        assert_eq!(k.release(), Some("6.1.0-57-amd64"));
        // Pointing past the setup part, or at no terminator: none.
        b[field::KERNEL_VERSION..field::KERNEL_VERSION + 2]
            .copy_from_slice(&0x2000u16.to_le_bytes());
        assert_eq!(BzImage::parse(&b).expect("valid").release(), None);
    }

    #[test]
    fn parses_a_64_bit_relocatable_image() {
        let b = image();
        let k = BzImage::parse(&b).expect("valid");
        assert_eq!(k.version(), 0x020f);
        assert_eq!(k.setup_len(), 5 * 512);
        assert_eq!(k.protected_mode()[0], 0xcc);
        assert_eq!(k.init_size(), 64 << 20);
        assert_eq!(k.kernel_alignment(), 2 << 20);
        assert_eq!(k.initrd_addr_max(), u64::MAX);
        assert_eq!(k.header().len(), field::END - field::SETUP_SECTS);
    }

    #[test]
    fn refuses_what_is_not_a_bootable_64_bit_kernel() {
        assert_eq!(
            BzImage::parse(b"#!/bin/sh\n").err(),
            Some(BzImageError::TooShort { len: 10 })
        );
        let mut b = image();
        b[field::HEADER] = b'X';
        assert_eq!(BzImage::parse(&b).err(), Some(BzImageError::NotABzImage));
        let mut b = image();
        b[field::XLOADFLAGS] = 0x7e;
        assert_eq!(
            BzImage::parse(&b).err(),
            Some(BzImageError::No64BitEntry { xloadflags: 0x7e })
        );
        let mut b = image();
        b[field::VERSION] = 0x0b;
        assert_eq!(
            BzImage::parse(&b).err(),
            Some(BzImageError::OldProtocol { version: 0x020b })
        );
        let mut b = image();
        b[field::RELOCATABLE] = 0;
        assert_eq!(BzImage::parse(&b).err(), Some(BzImageError::NotRelocatable));
        let mut b = image();
        b.truncate(5 * 512);
        assert!(matches!(
            BzImage::parse(&b),
            Err(BzImageError::Truncated { .. })
        ));
    }
}
