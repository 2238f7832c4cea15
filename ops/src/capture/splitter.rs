//! [`PcapSplitter`]: the client's view of the gateway's pcap stream. Bytes arrive in pieces of
//! any size; the splitter hands them back as the global header and then whole records, so that
//! the client writes only complete records and a capture stopped at any moment (Ctrl-C, the
//! gateway stopping mid-record) leaves a file tshark reads to its end.
//!
//! The records are passed on byte for byte, not re-encoded. Each record's length is checked
//! against the header's snap length before it is waited for, so a corrupt stream is an error,
//! not an unbounded buffer. (pcap-file's reader cannot be used here: it blocks inside a record,
//! and it refuses records whose original length exceeds the snap length, which is exactly what
//! a capture with `--snaplen` writes.)

use pcap_file::pcap::PcapHeader;
use pcap_file::{Endianness, PcapError};

/// Bytes of the pcap global header.
pub const HEADER_LEN: usize = 24;
/// Bytes of a record header (seconds, fraction, captured length, original length).
pub const RECORD_HEADER_LEN: usize = 16;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct PcapSplitter {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    taken: usize,
    header: Option<PcapHeader>,
    records: u64,
}

impl PcapSplitter {
    pub fn new() -> PcapSplitter {
        PcapSplitter::default()
    }

    /// Appends bytes received from the stream.
    pub fn extend(&mut self, data: &[u8]) {
        if self.taken > 0 {
            self.buf.drain(..self.taken);
            self.taken = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete piece, as the bytes to write: the global header first, then one whole
    /// record per call; `Ok(None)` until more bytes arrive. An error means the stream is not a
    /// pcap stream (bad magic) or a record is longer than the snap length.
    pub fn next_piece(&mut self) -> Result<Option<&[u8]>, String> {
        let rest = &self.buf[self.taken..];
        let len = match &self.header {
            None => {
                if rest.len() < HEADER_LEN {
                    return Ok(None);
                }
                let (_, header) = PcapHeader::from_slice(rest)
                    .map_err(|e| format!("not a pcap stream: {}", describe(e)))?;
                self.header = Some(header);
                HEADER_LEN
            }
            Some(h) => {
                let Some(len_field) = rest.get(8..12) else {
                    return Ok(None);
                };
                let bytes = [len_field[0], len_field[1], len_field[2], len_field[3]];
                let incl = match h.endianness {
                    Endianness::Big => u32::from_be_bytes(bytes),
                    Endianness::Little => u32::from_le_bytes(bytes),
                };
                if incl > h.snaplen {
                    return Err(format!(
                        "corrupt pcap stream: a record of {incl} bytes, snap length {}",
                        h.snaplen
                    ));
                }
                let len = RECORD_HEADER_LEN + incl as usize;
                if rest.len() < len {
                    return Ok(None);
                }
                self.records += 1;
                len
            }
        };
        let start = self.taken;
        self.taken += len;
        Ok(Some(&self.buf[start..start + len]))
    }

    /// The global header, once it has arrived.
    pub fn header(&self) -> Option<&PcapHeader> {
        self.header.as_ref()
    }

    /// Whole records handed out so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes received but not handed out: the start of a record (or header) still incomplete.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.taken
    }
}

fn describe(e: PcapError) -> String {
    match e {
        PcapError::IoError(e) => e.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
    use pcap_file::{DataLink, TsResolution};
    use std::time::Duration;

    /// A stream as the gateway writes it: nanosecond stamps, snap length 64, packets of
    /// 10, 0, 64 and (truncated) 1500 bytes.
    fn stream(endianness: Endianness) -> Vec<u8> {
        let header = PcapHeader {
            snaplen: 64,
            datalink: DataLink::RAW,
            ts_resolution: TsResolution::NanoSecond,
            endianness,
            ..PcapHeader::default()
        };
        let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
        let big = [0xab; 64];
        for (i, (orig, data)) in [
            (10u32, &big[..10]),
            (0, &[][..]),
            (64, &big[..]),
            (1500, &big[..]),
        ]
        .into_iter()
        .enumerate()
        {
            let ts = Duration::new(1_700_000_000 + i as u64, 123);
            w.write_packet(&PcapPacket::new(ts, orig, data)).unwrap();
        }
        w.into_writer()
    }

    /// Feeds `bytes` in pieces of `step` and collects what comes out.
    fn split(bytes: &[u8], step: usize) -> (Vec<u8>, Vec<usize>, PcapSplitter) {
        let mut s = PcapSplitter::new();
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        for chunk in bytes.chunks(step) {
            s.extend(chunk);
            while let Some(p) = s.next_piece().unwrap() {
                sizes.push(p.len());
                out.extend_from_slice(p);
            }
        }
        (out, sizes, s)
    }

    #[test]
    fn pieces_of_any_size_come_back_as_header_and_whole_records() {
        for endianness in [Endianness::Little, Endianness::Big] {
            let bytes = stream(endianness);
            for step in [1, 3, 16, 17, 24, 100, bytes.len()] {
                let (out, sizes, s) = split(&bytes, step);
                assert_eq!(out, bytes, "step {step}");
                assert_eq!(sizes, vec![24, 26, 16, 80, 80], "step {step}");
                assert_eq!((s.records(), s.pending()), (4, 0));
                assert_eq!(s.header().unwrap().snaplen, 64);
            }
        }
    }

    #[test]
    fn a_stream_cut_mid_record_leaves_a_file_that_reads_to_its_end() {
        let bytes = stream(Endianness::Little);
        // Cut inside the third record's data.
        let cut = 24 + 26 + 16 + 30;
        let (out, _, s) = split(&bytes[..cut], 7);
        assert_eq!(s.records(), 2);
        assert_eq!(s.pending(), 30);
        let mut r = PcapReader::new(&out[..]).unwrap();
        let mut n = 0;
        while let Some(p) = r.next_packet() {
            p.expect("every record written is whole");
            n += 1;
        }
        assert_eq!(n, 2);
    }

    #[test]
    fn garbage_and_oversized_records_are_errors_not_buffers() {
        let mut s = PcapSplitter::new();
        s.extend(&[0x42; 24]);
        assert!(s.next_piece().unwrap_err().contains("not a pcap stream"));

        let mut bytes = stream(Endianness::Little);
        // The first record claims 65 bytes, one over the snap length of 64.
        bytes[24 + 8..24 + 12].copy_from_slice(&65u32.to_le_bytes());
        let mut s = PcapSplitter::new();
        s.extend(&bytes[..24 + 16]);
        assert_eq!(s.next_piece().unwrap().map(<[u8]>::len), Some(24));
        let e = s.next_piece().unwrap_err();
        assert!(e.contains("65 bytes, snap length 64"), "{e}");
    }
}
