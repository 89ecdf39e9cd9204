//! The zero page (`struct boot_params`, arch/x86/include/uapi/asm/bootparam.h)
//! node 0 writes for a Linux node, and its e820 memory map.

use alloc::vec::Vec;
use core::fmt;

use mint_abi::PhysAddr;

use crate::bytes::{put, put_u32, put_u64};
use crate::bzimage::BzImage;

/// Size of the zero page.
pub const ZERO_PAGE_LEN: usize = 4096;
/// Entries the zero page's e820 table holds.
pub const E820_MAX: usize = 128;

mod field {
    pub const ACPI_RSDP_ADDR: usize = 0x070;
    pub const EXT_RAMDISK_IMAGE: usize = 0x0c0;
    pub const EXT_RAMDISK_SIZE: usize = 0x0c4;
    pub const EXT_CMD_LINE_PTR: usize = 0x0c8;
    pub const E820_ENTRIES: usize = 0x1e8;
    pub const HEADER: usize = 0x1f1;
    pub const TYPE_OF_LOADER: usize = 0x210;
    pub const LOADFLAGS: usize = 0x211;
    pub const RAMDISK_IMAGE: usize = 0x218;
    pub const RAMDISK_SIZE: usize = 0x21c;
    pub const CMD_LINE_PTR: usize = 0x228;
    pub const E820_TABLE: usize = 0x2d0;
    pub const E820_ENTRY_LEN: usize = 20;
}

/// `type_of_loader` 0xff: a loader with no assigned id.
const LOADER_UNDEFINED: u8 = 0xff;
/// `loadflags` bit 0: the protected-mode part is loaded at or above 1 MiB.
const LOADED_HIGH: u8 = 1 << 0;

/// What an e820 range is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum E820Kind {
    Ram = 1,
    Reserved = 2,
}

/// One e820 range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub base: PhysAddr,
    pub size: u64,
    pub kind: E820Kind,
}

/// What the zero page tells the kernel besides its own header.
#[derive(Clone, Debug)]
pub struct BootSpec {
    /// The memory map: the node's own memory only.
    pub e820: Vec<E820Entry>,
    /// The NUL-terminated command line.
    pub cmdline: PhysAddr,
    /// The initrd `(base, size)`, if any.
    pub initrd: Option<(PhysAddr, u64)>,
    /// The per-node RSDP.
    pub rsdp: PhysAddr,
}

/// Why the zero page cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamsError {
    TooManyE820Entries { count: usize },
    InitrdTooLarge { size: u64 },
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamsError::TooManyE820Entries { count } => {
                write!(f, "{count} e820 entries; the zero page holds {E820_MAX}")
            }
            ParamsError::InitrdTooLarge { size } => {
                write!(
                    f,
                    "an initrd of {size} bytes does not fit the 32-bit size field"
                )
            }
        }
    }
}

/// The zero page for `image` as `spec` says (boot protocol, "64-bit boot
/// protocol"): the setup header copied, loader type 0xff, LOADED_HIGH,
/// the initrd, the command line, the e820 map and the RSDP.
pub fn zero_page(image: &BzImage<'_>, spec: &BootSpec) -> Result<[u8; ZERO_PAGE_LEN], ParamsError> {
    let mut page = [0u8; ZERO_PAGE_LEN];
    if spec.e820.len() > E820_MAX {
        return Err(ParamsError::TooManyE820Entries {
            count: spec.e820.len(),
        });
    }
    put(&mut page, field::HEADER, image.header());
    page[field::TYPE_OF_LOADER] = LOADER_UNDEFINED;
    page[field::LOADFLAGS] |= LOADED_HIGH;
    let (lo, hi) = split(spec.cmdline.as_u64());
    put_u32(&mut page, field::CMD_LINE_PTR, lo);
    put_u32(&mut page, field::EXT_CMD_LINE_PTR, hi);
    if let Some((base, size)) = spec.initrd {
        let size = u32::try_from(size).map_err(|_| ParamsError::InitrdTooLarge { size })?;
        let (lo, hi) = split(base.as_u64());
        put_u32(&mut page, field::RAMDISK_IMAGE, lo);
        put_u32(&mut page, field::EXT_RAMDISK_IMAGE, hi);
        put_u32(&mut page, field::RAMDISK_SIZE, size);
        put_u32(&mut page, field::EXT_RAMDISK_SIZE, 0);
    }
    put_u64(&mut page, field::ACPI_RSDP_ADDR, spec.rsdp.as_u64());
    page[field::E820_ENTRIES] = spec.e820.len() as u8;
    for (i, e) in spec.e820.iter().enumerate() {
        let off = field::E820_TABLE + i * field::E820_ENTRY_LEN;
        put_u64(&mut page, off, e.base.as_u64());
        put_u64(&mut page, off + 8, e.size);
        put_u32(&mut page, off + 16, e.kind as u32);
    }
    Ok(page)
}

/// A 64-bit address as its low and high 32 bits.
fn split(v: u64) -> (u32, u32) {
    (v as u32, (v >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::{get_u32, get_u64};
    use alloc::vec;

    #[test]
    fn writes_the_fields_linux_reads() {
        let bytes = crate::bzimage::tests::image();
        let image = BzImage::parse(&bytes).expect("valid");
        let spec = BootSpec {
            e820: vec![
                E820Entry {
                    base: PhysAddr(0x8_0000),
                    size: 0x1_f000,
                    kind: E820Kind::Ram,
                },
                E820Entry {
                    base: PhysAddr(0x440_0000),
                    size: 254 << 20,
                    kind: E820Kind::Ram,
                },
            ],
            cmdline: PhysAddr(0x420_1000),
            initrd: Some((PhysAddr(0x13f0_0000), 0x1234)),
            rsdp: PhysAddr(0x10_1000),
        };
        let page = zero_page(&image, &spec).expect("fits");
        assert_eq!(&page[0x202..0x206], b"HdrS");
        assert_eq!(page[0x210], 0xff);
        assert_eq!(page[0x211] & 1, 1);
        assert_eq!(get_u32(&page, 0x228), Some(0x420_1000));
        assert_eq!(get_u32(&page, 0x218), Some(0x13f0_0000));
        assert_eq!(get_u32(&page, 0x21c), Some(0x1234));
        assert_eq!(get_u64(&page, 0x070), Some(0x10_1000));
        assert_eq!(page[0x1e8], 2);
        assert_eq!(get_u64(&page, 0x2d0 + 20), Some(0x440_0000));
        assert_eq!(get_u32(&page, 0x2d0 + 20 + 16), Some(1));
        // The sentinel at 0x1ef stays 0 (else Linux clears fields).
        assert_eq!(page[0x1ef], 0);
    }
}
