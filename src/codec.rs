//! Primitive encodings shared by every on-disk structure: little-endian
//! fixed-width integers, LEB128 varints, zigzag, length-prefixed bytes.
//!
//! Decoding never trusts a declared length: every read is checked against the
//! bytes that remain, and a failure says at which offset and what was wanted.

use byteorder::{ByteOrder, LittleEndian as LE};

/// A decoding failure inside one buffer; the caller adds the file and the
/// buffer's own offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset inside the buffer being decoded.
    pub offset: usize,
    pub detail: String,
}

pub type DecodeResult<T> = std::result::Result<T, DecodeError>;

#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A bounds-checked reader over a byte slice.
#[derive(Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn err<T>(&self, detail: impl Into<String>) -> DecodeResult<T> {
        Err(DecodeError {
            offset: self.pos,
            detail: detail.into(),
        })
    }

    #[inline]
    pub fn take(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        if n > self.remaining() {
            return self.err(format!("need {n} bytes, only {} remain", self.remaining()));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next byte, without consuming it.
    #[inline]
    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline]
    pub fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> DecodeResult<u32> {
        Ok(LE::read_u32(self.take(4)?))
    }

    pub fn u64(&mut self) -> DecodeResult<u64> {
        Ok(LE::read_u64(self.take(8)?))
    }

    pub fn array<const N: usize>(&mut self) -> DecodeResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    #[inline]
    pub fn varint(&mut self) -> DecodeResult<u64> {
        // Most varints of a block are one byte: ids, counts, small deltas.
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.long_varint(),
        }
    }

    fn long_varint(&mut self) -> DecodeResult<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return self.err("varint overflows 64 bits");
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.err("varint longer than 10 bytes")
    }

    pub fn varint_u32(&mut self) -> DecodeResult<u32> {
        let v = self.varint()?;
        u32::try_from(v).or_else(|_| self.err(format!("value {v} exceeds 32 bits")))
    }

    /// A varint used as a count of items that each take at least
    /// `min_item_bytes` bytes: refused if the rest of the buffer cannot hold
    /// them, so a corrupt count never drives a huge allocation.
    pub fn count(&mut self, min_item_bytes: usize) -> DecodeResult<usize> {
        let n = self.varint()?;
        let max = self.remaining() / min_item_bytes.max(1);
        if n > max as u64 {
            return self.err(format!(
                "count {n} exceeds what {} bytes can hold",
                self.remaining()
            ));
        }
        Ok(n as usize)
    }

    pub fn bytes(&mut self) -> DecodeResult<&'a [u8]> {
        let n = self.varint()?;
        if n > self.remaining() as u64 {
            return self.err(format!(
                "length {n} exceeds the {} bytes left",
                self.remaining()
            ));
        }
        self.take(n as usize)
    }

    pub fn str(&mut self) -> DecodeResult<&'a str> {
        let start = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|e| DecodeError {
            offset: start,
            detail: format!("string is not UTF-8: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_round_trips(v: u64) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut c = Cursor::new(&out);
            prop_assert_eq!(c.varint().unwrap(), v);
            prop_assert!(c.is_empty());
        }

        #[test]
        fn zigzag_round_trips(v: i64) {
            prop_assert_eq!(unzigzag(zigzag(v)), v);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            let mut c = Cursor::new(&bytes);
            let _ = c.varint();
            let _ = c.bytes();
            let _ = c.count(8);
            let _ = c.str();
        }
    }

    #[test]
    fn truncated_and_overlong_varints_are_errors() {
        assert!(Cursor::new(&[0x80]).varint().is_err());
        assert!(Cursor::new(&[0xff; 11]).varint().is_err());
        assert!(
            Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])
                .varint()
                .is_err()
        );
        let mut c = Cursor::new(&[5, 1, 2]);
        assert!(c.bytes().is_err());
    }
}
