//! The pack: one file holding every Linux node's kernel, initrd and
//! command line, which the CLI hands node 0 as its one PVH module
//! (QEMU's `-initrd`).
//!
//! ```text
//! 0   magic "MINTPACK"   8   version u32   12  count u32
//! 16  entries, 24 bytes each: node u8, kind u8, 6 zero bytes, offset u64, len u64
//!     then the files, each 4 KiB aligned (offsets from the pack's start)
//! ```
//!
//! Node 0 reads a pack the CLI wrote, but checks every offset and length
//! before it slices anything.

use alloc::vec::Vec;
use core::fmt;

use mint_abi::NodeId;

use crate::bytes::{get_u32, get_u64, put, put_u32, put_u64};

pub const MAGIC: &[u8; 8] = b"MINTPACK";
pub const VERSION: u32 = 1;
const HEADER_LEN: usize = 16;
const ENTRY_LEN: usize = 24;
/// At most this many files (four nodes, three files each, and room).
pub const MAX_ENTRIES: usize = 16;
const ALIGN: usize = 4096;

/// What a file in the pack is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The bzImage, whole.
    Kernel = 1,
    /// The initramfs.
    Initrd = 2,
    /// Words for the kernel command line (ASCII).
    Cmdline = 3,
    /// Empty: the initrd is mint's own, whose `/init` reports to node 0
    /// (node 0 waits for that report only where this is present).
    MintInit = 4,
}

impl Kind {
    fn from_raw(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Kernel,
            2 => Kind::Initrd,
            3 => Kind::Cmdline,
            4 => Kind::MintInit,
            _ => return None,
        })
    }
}

/// Why a pack is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackError {
    BadMagic,
    UnsupportedVersion {
        found: u32,
    },
    TooManyEntries {
        count: u32,
    },
    /// Entry `index` names bytes outside the pack or an unknown kind.
    BadEntry {
        index: usize,
    },
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackError::BadMagic => f.write_str("the module is not a mint pack (bad magic)"),
            PackError::UnsupportedVersion { found } => {
                write!(f, "mint pack version {found}; this build reads {VERSION}")
            }
            PackError::TooManyEntries { count } => {
                write!(f, "mint pack with {count} entries (at most {MAX_ENTRIES})")
            }
            PackError::BadEntry { index } => {
                write!(
                    f,
                    "mint pack entry {index} lies outside the pack or has an unknown kind"
                )
            }
        }
    }
}

/// Writes a pack of `files`.
pub fn write(files: &[(NodeId, Kind, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(files.len() as u32).to_le_bytes());
    out.resize(HEADER_LEN + files.len() * ENTRY_LEN, 0);
    for (i, (node, kind, bytes)) in files.iter().enumerate() {
        out.resize(out.len().next_multiple_of(ALIGN), 0);
        let offset = out.len() as u64;
        out.extend_from_slice(bytes);
        let e = HEADER_LEN + i * ENTRY_LEN;
        out[e] = node.0;
        out[e + 1] = *kind as u8;
        put_u64(&mut out, e + 8, offset);
        put_u64(&mut out, e + 16, bytes.len() as u64);
    }
    put(&mut out, 0, MAGIC);
    put_u32(&mut out, 8, VERSION);
    out
}

/// A checked pack: [`Pack::find`] never slices out of bounds.
#[derive(Clone, Copy)]
pub struct Pack<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> Pack<'a> {
    /// Checks the header and every entry.
    pub fn parse(bytes: &'a [u8]) -> Result<Pack<'a>, PackError> {
        if bytes.get(..8) != Some(MAGIC.as_slice()) {
            return Err(PackError::BadMagic);
        }
        let version = get_u32(bytes, 8).ok_or(PackError::BadMagic)?;
        if version != VERSION {
            return Err(PackError::UnsupportedVersion { found: version });
        }
        let count = get_u32(bytes, 12).ok_or(PackError::BadMagic)?;
        if count as usize > MAX_ENTRIES {
            return Err(PackError::TooManyEntries { count });
        }
        let pack = Pack {
            bytes,
            count: count as usize,
        };
        for index in 0..pack.count {
            pack.entry(index).ok_or(PackError::BadEntry { index })?;
        }
        Ok(pack)
    }

    fn entry(&self, index: usize) -> Option<(NodeId, Kind, &'a [u8])> {
        let e = HEADER_LEN + index * ENTRY_LEN;
        let node = *self.bytes.get(e)?;
        let kind = Kind::from_raw(*self.bytes.get(e + 1)?)?;
        let offset = usize::try_from(get_u64(self.bytes, e + 8)?).ok()?;
        let len = usize::try_from(get_u64(self.bytes, e + 16)?).ok()?;
        let data = self.bytes.get(offset..offset.checked_add(len)?)?;
        Some((NodeId(node), kind, data))
    }

    /// The file of `kind` for `node`, if the pack has one.
    pub fn find(&self, node: NodeId, kind: Kind) -> Option<&'a [u8]> {
        (0..self.count)
            .filter_map(|i| self.entry(i))
            .find(|&(n, k, _)| n == node && k == kind)
            .map(|(_, _, data)| data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pack = write(&[
            (NodeId(1), Kind::Kernel, b"kernel bytes"),
            (NodeId(1), Kind::Cmdline, b"quiet"),
            (NodeId(2), Kind::Initrd, b""),
            (NodeId(2), Kind::MintInit, b""),
        ]);
        let p = Pack::parse(&pack).expect("valid");
        assert_eq!(p.find(NodeId(1), Kind::Kernel), Some(&b"kernel bytes"[..]));
        assert_eq!(p.find(NodeId(1), Kind::Cmdline), Some(&b"quiet"[..]));
        assert_eq!(p.find(NodeId(2), Kind::Initrd), Some(&b""[..]));
        assert_eq!(p.find(NodeId(1), Kind::Initrd), None);
        assert_eq!(p.find(NodeId(2), Kind::MintInit), Some(&b""[..]));
        assert_eq!(p.find(NodeId(1), Kind::MintInit), None);
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(Pack::parse(b"MINTPAC").err(), Some(PackError::BadMagic));
        let mut pack = write(&[(NodeId(1), Kind::Kernel, b"k")]);
        pack[8] = 9;
        assert_eq!(
            Pack::parse(&pack).err(),
            Some(PackError::UnsupportedVersion { found: 9 })
        );
        let mut pack = write(&[(NodeId(1), Kind::Kernel, b"k")]);
        pack[HEADER_LEN + 16] = 0xff; // len past the end
        assert_eq!(
            Pack::parse(&pack).err(),
            Some(PackError::BadEntry { index: 0 })
        );
        let mut pack = write(&[(NodeId(1), Kind::Kernel, b"k")]);
        pack[HEADER_LEN + 1] = 7;
        assert_eq!(
            Pack::parse(&pack).err(),
            Some(PackError::BadEntry { index: 0 })
        );
        let mut pack = write(&[]);
        pack[12] = 200;
        assert_eq!(
            Pack::parse(&pack).err(),
            Some(PackError::TooManyEntries { count: 200 })
        );
    }
}
