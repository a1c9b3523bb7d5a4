//! The binary encoding of the store's records (object metadata, PG info, log entries, the
//! superblock): fixed-width big-endian integers and length-prefixed byte strings, each
//! record opened by a one-byte record version so a later format can read older records.
//!
//! Hand-written rather than serde-derived: the layout is part of the on-disk format and
//! must not change when a Rust type gains a field or a dependency changes its encoding.

/// Appends fields to a record.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    bytes: Vec<u8>,
}

impl Encoder {
    /// A record that starts with its record version.
    pub fn new(record_version: u8) -> Self {
        let mut encoder = Self {
            bytes: Vec::with_capacity(64),
        };
        encoder.u8(record_version);
        encoder
    }

    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.bytes.push(value);
        self
    }

    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn i32(&mut self, value: i32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// A byte string prefixed with its length as a u32.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        // Every string the store encodes is bounded by validated limits far below 4 GiB.
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.bytes.extend_from_slice(value);
        self
    }

    pub fn raw(&mut self, value: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(value);
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Why a record could not be decoded.
pub(crate) type DecodeResult<T> = Result<T, &'static str>;

/// Reads fields from a record, failing (never panicking) on short or malformed input.
#[derive(Debug)]
pub(crate) struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Starts reading a record and checks its record version.
    pub fn new(bytes: &'a [u8], record_version: u8) -> DecodeResult<Self> {
        Self::any_of(bytes, record_version..=record_version).map(|(decoder, _)| decoder)
    }

    /// Starts reading a record written in one of `record_versions`, and says which.
    pub fn any_of(
        bytes: &'a [u8],
        record_versions: std::ops::RangeInclusive<u8>,
    ) -> DecodeResult<(Self, u8)> {
        let mut decoder = Self { rest: bytes };
        match decoder.u8()? {
            version if record_versions.contains(&version) => Ok((decoder, version)),
            _ => Err("unknown record version"),
        }
    }

    fn take(&mut self, len: usize) -> DecodeResult<&'a [u8]> {
        if self.rest.len() < len {
            return Err("record is truncated");
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> DecodeResult<[u8; N]> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    pub fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> DecodeResult<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> DecodeResult<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> DecodeResult<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> DecodeResult<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub fn bytes(&mut self) -> DecodeResult<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub fn string(&mut self) -> DecodeResult<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "string is not UTF-8")
    }

    pub fn raw<const N: usize>(&mut self) -> DecodeResult<[u8; N]> {
        self.array()
    }

    /// Succeeds only when the whole record was consumed.
    pub fn finish(self) -> DecodeResult<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err("trailing bytes after the record")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_short_input_fails() {
        let mut encoder = Encoder::new(7);
        encoder.u32(5).u64(u64::MAX).i64(-3).bytes(b"abc").u8(9);
        let bytes = encoder.finish();
        let mut decoder = Decoder::new(&bytes, 7).unwrap();
        assert_eq!(decoder.u32().unwrap(), 5);
        assert_eq!(decoder.u64().unwrap(), u64::MAX);
        assert_eq!(decoder.i64().unwrap(), -3);
        assert_eq!(decoder.bytes().unwrap(), b"abc");
        assert_eq!(decoder.u8().unwrap(), 9);
        decoder.finish().unwrap();

        assert!(Decoder::new(&bytes, 8).is_err());
        for cut in 1..bytes.len() {
            let mut decoder = Decoder::new(&bytes[..cut], 7).unwrap();
            let all = (|| -> DecodeResult<()> {
                decoder.u32()?;
                decoder.u64()?;
                decoder.i64()?;
                decoder.bytes()?;
                decoder.u8()?;
                Ok(())
            })();
            assert!(all.is_err(), "cut at {cut} must fail");
        }
    }
}
