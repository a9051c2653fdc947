//! A check of a Parquet file's footer and of every page header before the
//! parquet crate reads them. Both are Thrift compact-protocol structs;
//! parquet 60.1 skips unknown fields without checking a list's declared
//! length against the bytes there are, so a 4.8 KB file declaring lists of
//! billions of elements in a page header kept its reader spinning 5.6 s, and
//! a 37-byte footer doing the same 14.6 s (timeouts the `parquet` fuzz target
//! found). Here a struct is walked with every length checked against the
//! bytes left (each element takes at least one byte), at most 64 levels deep,
//! and the pages of each column chunk are followed to its end.

/// Compact-protocol field and element types.
const STOP: u8 = 0;
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;

const MAX_DEPTH: u32 = 64;

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    /// What is walked ("page header", "footer"), for the messages.
    what: &'static str,
}

type R<T> = Result<T, String>;

impl Cursor<'_> {
    fn left(&self) -> usize {
        self.b.len() - self.pos
    }

    fn byte(&mut self) -> R<u8> {
        let v = *self.b.get(self.pos).ok_or_else(|| format!("the {} runs past its bytes", self.what))?;
        self.pos += 1;
        Ok(v)
    }

    fn varint(&mut self) -> R<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err("a varint longer than 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a varint longer than 64 bits".into())
    }

    fn skip_bytes(&mut self, n: u64) -> R<()> {
        let n = usize::try_from(n).ok().filter(|n| *n <= self.left()).ok_or("a length past the bytes there are")?;
        self.pos += n;
        Ok(())
    }

    /// A collection of `n` elements, each at least a byte (a boolean in a
    /// list is one byte, a struct its stop byte).
    fn count(&self, n: u64) -> R<u64> {
        if n > self.left() as u64 {
            return Err(format!("a collection of {n} elements in {} bytes", self.left()));
        }
        Ok(n)
    }

    fn skip(&mut self, t: u8, depth: u32) -> R<()> {
        if depth > MAX_DEPTH {
            return Err(format!("the {} is nested too deep", self.what));
        }
        match t {
            TRUE | FALSE => Ok(()),
            BYTE => self.byte().map(drop),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.skip_bytes(8),
            BINARY => {
                let n = self.varint()?;
                self.skip_bytes(n)
            }
            LIST | SET => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                let elem = h & 0x0f;
                for _ in 0..self.count(n)? {
                    // Booleans in a collection are a byte each.
                    if elem == TRUE || elem == FALSE {
                        self.byte()?;
                    } else {
                        self.skip(elem, depth + 1)?;
                    }
                }
                Ok(())
            }
            MAP => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                for _ in 0..self.count(n)? {
                    self.skip(kv >> 4, depth + 1)?;
                    self.skip(kv & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            STRUCT => self.walk_struct(depth + 1, |_, _, _| Ok(false)).map(drop),
            t => Err(format!("unknown Thrift type {t}")),
        }
    }

    /// Walks a struct; `field(cursor, id, type)` may read a field itself
    /// (returns true) or leave it to be skipped.
    fn walk_struct(&mut self, depth: u32, mut field: impl FnMut(&mut Self, i16, u8) -> R<bool>) -> R<()> {
        if depth > MAX_DEPTH {
            return Err(format!("the {} is nested too deep", self.what));
        }
        let mut last: i16 = 0;
        loop {
            let h = self.byte()?;
            let t = h & 0x0f;
            if t == STOP {
                return Ok(());
            }
            let id = match h >> 4 {
                0 => {
                    let z = self.varint()?;
                    ((z >> 1) as i64 ^ -((z & 1) as i64)) as i16
                }
                d => last.wrapping_add(i16::from(d)),
            };
            last = id;
            if !field(self, id, t)? {
                self.skip(t, depth)?;
            }
        }
    }
}

/// Checks the page headers of the column chunk `chunk` (its bytes): each a
/// well-formed struct, each page's `compressed_page_size` inside the chunk.
pub(crate) fn check_chunk(chunk: &[u8]) -> R<()> {
    let mut c = Cursor { b: chunk, pos: 0, what: "page header" };
    while c.left() > 0 {
        let mut size: Option<i64> = None;
        c.walk_struct(0, |c, id, t| {
            if id == 3 && t == I32 {
                let z = c.varint()?;
                size = Some((z >> 1) as i64 ^ -((z & 1) as i64));
                return Ok(true);
            }
            Ok(false)
        })?;
        let n = size.ok_or("a page header without its compressed size")?;
        let n = u64::try_from(n).map_err(|_| format!("a page of {n} bytes"))?;
        c.skip_bytes(n).map_err(|_| format!("a page of {n} bytes runs past its column chunk"))?;
    }
    Ok(())
}

/// Checks the footer of the whole file `data` (magic at both ends already
/// seen by the caller or not): its length inside the file and its
/// `FileMetaData` one well-formed struct.
pub(crate) fn check_footer(data: &[u8]) -> R<()> {
    let n = data.len();
    if n < 12 {
        return Err(format!("{n} bytes are too few for a Parquet file"));
    }
    let len = u32::from_le_bytes([data[n - 8], data[n - 7], data[n - 6], data[n - 5]]) as usize;
    if len > n - 12 {
        return Err(format!("a footer of {len} bytes in a {n}-byte file"));
    }
    let mut c = Cursor { b: &data[n - 8 - len..n - 8], pos: 0, what: "footer" };
    c.walk_struct(0, |_, _, _| Ok(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page header: type 0, sizes, a data page header with its values.
    fn page(payload: usize) -> Vec<u8> {
        let z = |v: i64| ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        let varint = |out: &mut Vec<u8>, mut v: u64| loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        };
        out.push(0x15); // field 1, i32
        varint(&mut out, z(0));
        out.push(0x15); // field 2, i32
        varint(&mut out, z(payload as i64));
        out.push(0x15); // field 3, i32
        varint(&mut out, z(payload as i64));
        out.push(0x2c); // field 5, struct
        out.push(0x15); // field 1: num_values
        varint(&mut out, z(3));
        out.push(0x00);
        out.push(0x00);
        out.extend(std::iter::repeat_n(7u8, payload));
        out
    }

    #[test]
    fn good_pages_pass_and_bad_ones_are_named() {
        let mut chunk = page(10);
        chunk.extend(page(4));
        assert_eq!(check_chunk(&chunk), Ok(()));
        // A page running past the chunk.
        let cut = &chunk[..chunk.len() - 1];
        assert!(check_chunk(cut).is_err());
        // A field holding a list of a billion strings, in a few bytes.
        let mut huge = vec![0x15, 0x00, 0x15, 0x00, 0x15, 0x00, 0x49, 0xf8];
        huge.extend([0x80, 0x94, 0xeb, 0xdc, 0x03]);
        huge.extend([0x00; 16]);
        let e = check_chunk(&huge).expect_err("refused");
        assert!(e.contains("1000000000 elements"), "{e}");
        // Nested lists past the depth limit.
        let mut deep = vec![0x19];
        deep.extend(std::iter::repeat_n(0x19, 100));
        assert!(check_chunk(&deep).is_err());
    }

    #[test]
    fn footers_are_walked_before_the_decoder_sees_them() {
        let good = include_bytes!("../../source/tests/fixtures/vpc-flow.parquet");
        assert_eq!(check_footer(good), Ok(()));
        // A footer of a list of a billion booleans, in 12 bytes.
        let meta = [0x19, 0xf1, 0x80, 0x94, 0xeb, 0xdc, 0x03, 0x01, 0x01, 0x01, 0x01, 0x00];
        let mut file = b"PAR1".to_vec();
        file.extend(meta);
        file.extend((meta.len() as u32).to_le_bytes());
        file.extend(b"PAR1");
        let e = check_footer(&file).expect_err("refused");
        assert!(e.contains("1000000000 elements"), "{e}");
        // A footer longer than the file.
        let mut long = file.clone();
        let n = long.len();
        long[n - 8..n - 4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(check_footer(&long).expect_err("refused").contains("footer of 1000 bytes"));
    }
}
