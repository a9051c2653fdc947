//! A compact binary encoding of the window state, for `watch` checkpoints:
//! little-endian numbers, lengths before sequences, a version and the window
//! settings up front so a checkpoint of other windows is refused rather than
//! misread. Hand-written rather than through a serde format: the state is
//! flat numbers (one host is ~1.6 KB of rings), and this adds no dependency.

/// Appends numbers to a buffer.
#[derive(Debug, Default)]
pub(crate) struct Enc(pub Vec<u8>);

impl Enc {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
}

/// Reads numbers back; every read checks the bytes are there.
#[derive(Debug)]
pub(crate) struct Dec<'a> {
    b: &'a [u8],
}

/// Why a checkpoint could not be read.
pub(crate) type DecResult<T> = Result<T, String>;

impl<'a> Dec<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Dec { b }
    }
    fn take<const N: usize>(&mut self) -> DecResult<[u8; N]> {
        let (head, rest) = self.b.split_first_chunk::<N>().ok_or("cut short")?;
        self.b = rest;
        Ok(*head)
    }
    pub fn u8(&mut self) -> DecResult<u8> {
        Ok(self.take::<1>()?[0])
    }
    pub fn u16(&mut self) -> DecResult<u16> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    pub fn u32(&mut self) -> DecResult<u32> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    pub fn u64(&mut self) -> DecResult<u64> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    pub fn i64(&mut self) -> DecResult<i64> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    /// A length, checked against the bytes left (each item at least
    /// `min_item` bytes): a corrupt length cannot ask for terabytes.
    pub fn len(&mut self, min_item: usize) -> DecResult<usize> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| "length out of range")?;
        if n.saturating_mul(min_item.max(1)) > self.b.len() {
            return Err(format!("a length of {n} exceeds the {} bytes left", self.b.len()));
        }
        Ok(n)
    }
    pub fn bytes<const N: usize>(&mut self) -> DecResult<[u8; N]> {
        self.take()
    }
    pub fn end(&self) -> DecResult<()> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(format!("{} bytes after the end", self.b.len()))
        }
    }
}
