//! The zip container of `torch.save` files, read without a zip library: PyTorch's writer
//! (`caffe2/serialize/inline_container.cc`, miniz) stores every entry uncompressed, so only the
//! central directory, local headers and CRC-32 are needed. Zip64 records are honoured; compressed
//! entries are refused.

/// One stored entry: its name and its bytes' place in the archive.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    start: usize,
    size: usize,
    crc: u32,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

const EOCD: u32 = 0x0605_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_EOCD: u32 = 0x0606_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;

/// `(entry count, central directory offset)`.
fn central_directory(bytes: &[u8]) -> Result<(usize, usize), String> {
    // The end record is 22 bytes plus a comment of at most 65535.
    let lowest = bytes.len().saturating_sub(22 + 65_535);
    let eocd = (lowest..=bytes.len().saturating_sub(22))
        .rev()
        .find(|&at| u32_at(bytes, at) == Some(EOCD))
        .ok_or("not a zip archive (no end-of-central-directory record)")?;
    let short = || "truncated end-of-central-directory record".to_string();
    let count = u16_at(bytes, eocd + 10).ok_or_else(short)?;
    let offset = u32_at(bytes, eocd + 16).ok_or_else(short)?;
    if count != u16::MAX && offset != u32::MAX {
        return Ok((usize::from(count), offset as usize));
    }
    // Zip64: the locator sits right before the end record and points at the zip64 end record.
    let locator = eocd.checked_sub(20).ok_or("missing zip64 locator")?;
    if u32_at(bytes, locator) != Some(ZIP64_LOCATOR) {
        return Err("missing zip64 locator".into());
    }
    let record = u64_at(bytes, locator + 8).ok_or("truncated zip64 locator")? as usize;
    if u32_at(bytes, record) != Some(ZIP64_EOCD) {
        return Err("bad zip64 end-of-central-directory record".into());
    }
    let count = u64_at(bytes, record + 32).ok_or("truncated zip64 record")?;
    let offset = u64_at(bytes, record + 48).ok_or("truncated zip64 record")?;
    Ok((count as usize, offset as usize))
}

/// The 64-bit sizes / offset that replace `0xFFFFFFFF` fields, from a zip64 extra field.
fn zip64_extra(extra: &[u8], fields: &mut [&mut u64]) {
    let mut at = 0;
    while let (Some(id), Some(len)) = (u16_at(extra, at), u16_at(extra, at + 2)) {
        let body = at + 4;
        if id == 1 {
            let mut pos = body;
            for field in fields.iter_mut().filter(|f| ***f == u64::from(u32::MAX)) {
                if let Some(value) = u64_at(extra, pos) {
                    **field = value;
                    pos += 8;
                }
            }
            return;
        }
        at = body + usize::from(len);
    }
}

/// Lists the entries of a stored (uncompressed) zip archive.
pub(crate) fn entries(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let (count, mut at) = central_directory(bytes)?;
    let mut entries = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let short = || "truncated central directory".to_string();
        if u32_at(bytes, at) != Some(CENTRAL) {
            return Err("corrupt central directory".into());
        }
        let method = u16_at(bytes, at + 10).ok_or_else(short)?;
        let crc = u32_at(bytes, at + 16).ok_or_else(short)?;
        let mut compressed = u64::from(u32_at(bytes, at + 20).ok_or_else(short)?);
        let mut size = u64::from(u32_at(bytes, at + 24).ok_or_else(short)?);
        let name_len = usize::from(u16_at(bytes, at + 28).ok_or_else(short)?);
        let extra_len = usize::from(u16_at(bytes, at + 30).ok_or_else(short)?);
        let comment_len = usize::from(u16_at(bytes, at + 32).ok_or_else(short)?);
        let mut local = u64::from(u32_at(bytes, at + 42).ok_or_else(short)?);
        let name = bytes.get(at + 46..at + 46 + name_len).ok_or_else(short)?;
        let name = String::from_utf8_lossy(name).into_owned();
        let extra = bytes
            .get(at + 46 + name_len..at + 46 + name_len + extra_len)
            .ok_or_else(short)?;
        zip64_extra(extra, &mut [&mut size, &mut compressed, &mut local]);
        if method != 0 || compressed != size {
            return Err(format!(
                "entry {name} is compressed (method {method}); torch.save writes stored entries"
            ));
        }
        let local = local as usize;
        if u32_at(bytes, local) != Some(LOCAL) {
            return Err(format!("entry {name}: bad local header"));
        }
        let local_name = usize::from(u16_at(bytes, local + 26).ok_or_else(short)?);
        let local_extra = usize::from(u16_at(bytes, local + 28).ok_or_else(short)?);
        let start = local + 30 + local_name + local_extra;
        let size = usize::try_from(size).map_err(|_| format!("entry {name} is too large"))?;
        if start.checked_add(size).is_none_or(|end| end > bytes.len()) {
            return Err(format!("entry {name} lies outside the file (truncated?)"));
        }
        entries.push(Entry {
            name,
            start,
            size,
            crc,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(entries)
}

/// CRC-32 (IEEE, reflected), as zip uses.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

impl Entry {
    /// The entry's bytes, after checking their CRC.
    pub(crate) fn data<'a>(&self, archive: &'a [u8]) -> Result<&'a [u8], String> {
        let data = archive
            .get(self.start..self.start + self.size)
            .ok_or_else(|| format!("entry {} lies outside the file", self.name))?;
        if crc32(data) != self.crc {
            return Err(format!("entry {}: CRC mismatch (corrupt file)", self.name));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn garbage_is_not_a_zip() {
        assert!(entries(b"definitely not a zip archive at all").is_err());
        assert!(entries(b"").is_err());
    }
}
