//! One record batch as an Arrow IPC stream message, written straight from the filled columns'
//! buffers ([`super::arrow`]).
//!
//! Why not arrow-ipc's writer: it takes Arrow arrays, and making some 60 of them per append, then
//! its `ArrayData` copies of them, cost about 47 µs a batch whatever its rows, more than the
//! rows themselves at the ~22 rows an append carries at 64 connections (BENCHMARKS.md,
//! "Arrow batches"). The message is the format's own, and small: a flatbuffer header (arrow-ipc's
//! generated `Message`/`RecordBatch` types, so the layout is theirs), then the body, each buffer
//! padded to [`ALIGNMENT`]. arrow-ipc's reader reads every message back in the tests, strictly
//! aligned, and `shared/tests/rows.rs` holds what it reads equal to arrow-json's batch of the
//! same rows' JSON.
//!
//! Layout, from the format's specification ("Serialization and Interprocess Communication"):
//! the columns depth first, each one field node (its length and null count) and its buffers:
//! validity then offsets then data for strings, validity then values for int64, timestamp and
//! boolean, validity for a struct (its children follow), validity then offsets for a list (its
//! items follow). A column without nulls sends an empty validity buffer, as the format allows
//! (null count 0), instead of a bitmap of ones.

use arrow_ipc::{
    Buffer as BufferSpan, FieldNode, MessageBuilder, MessageHeader, MetadataVersion,
    RecordBatchBuilder,
};
use flatbuffers::FlatBufferBuilder;

/// Every buffer of the body starts at a multiple of this many bytes: the format's minimum
/// (8; arrow-rs pads to 64 by default, which costs an append of ~22 rows some 200 bytes a row).
pub const ALIGNMENT: usize = 8;

/// A stream message starts with this (then the header's length).
const CONTINUATION: [u8; 4] = [0xff; 4];

/// The columns of one batch, laid out: their field nodes and their buffers, in the body's order.
#[derive(Default)]
pub struct Body<'c> {
    nodes: Vec<FieldNode>,
    buffers: Vec<&'c [u8]>,
}

impl<'c> Body<'c> {
    /// The next column: `len` values, `nulls` of them null.
    pub fn node(&mut self, len: usize, nulls: usize) {
        // usize → i64 cannot overflow on the 64-bit targets the services build for.
        self.nodes.push(FieldNode::new(len as i64, nulls as i64));
    }

    /// The next buffer of the column.
    pub fn buffer(&mut self, bytes: &'c [u8]) {
        self.buffers.push(bytes);
    }

    /// The record batch message of `rows` rows: header and body, in one buffer of its exact size.
    pub fn message(self, rows: usize) -> Result<Vec<u8>, String> {
        let mut spans = Vec::with_capacity(self.buffers.len());
        let mut body_len = 0;
        for buffer in &self.buffers {
            spans.push(BufferSpan::new(body_len as i64, buffer.len() as i64));
            body_len += padded(buffer.len());
        }
        let mut fbb = FlatBufferBuilder::with_capacity(256 + 32 * spans.len());
        let nodes = fbb.create_vector(&self.nodes);
        let buffers = fbb.create_vector(&spans);
        let mut batch = RecordBatchBuilder::new(&mut fbb);
        batch.add_length(rows as i64);
        batch.add_nodes(nodes);
        batch.add_buffers(buffers);
        let batch = batch.finish();
        let mut message = MessageBuilder::new(&mut fbb);
        message.add_version(MetadataVersion::V5);
        message.add_header_type(MessageHeader::RecordBatch);
        message.add_bodyLength(body_len as i64);
        message.add_header(batch.as_union_value());
        let message = message.finish();
        fbb.finish(message, None);
        let header = fbb.finished_data();

        // The prefix (continuation, length) and the header end on the alignment: so does every
        // buffer of the body after it.
        let header_len = padded(8 + header.len()) - 8;
        let length = i32::try_from(header_len)
            .map_err(|_| "the Arrow batch's header is over 2 GiB".to_string())?;
        let mut out = Vec::with_capacity(8 + header_len + body_len);
        out.extend_from_slice(&CONTINUATION);
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(header);
        out.resize(8 + header_len, 0);
        for buffer in self.buffers {
            out.extend_from_slice(buffer);
            out.resize(padded(out.len()), 0);
        }
        debug_assert_eq!(out.len(), 8 + header_len + body_len);
        Ok(out)
    }
}

/// `len` rounded up to the alignment.
fn padded(len: usize) -> usize {
    len.next_multiple_of(ALIGNMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_start_on_the_alignment_and_the_header_says_where() {
        let mut body = Body::default();
        body.node(3, 0);
        body.buffer(&[]);
        body.buffer(&[1, 2, 3]);
        body.buffer(&[4; 9]);
        let message = body.message(3).unwrap();
        assert_eq!(message[..4], CONTINUATION);
        let header_len = i32::from_le_bytes(message[4..8].try_into().unwrap()) as usize;
        assert_eq!((8 + header_len) % ALIGNMENT, 0);
        let header = arrow_ipc::root_as_message(&message[8..8 + header_len]).unwrap();
        assert_eq!(header.bodyLength(), 8 + 16);
        let batch = header.header_as_record_batch().unwrap();
        assert_eq!(batch.length(), 3);
        let spans: Vec<(i64, i64)> = batch
            .buffers()
            .unwrap()
            .iter()
            .map(|b| (b.offset(), b.length()))
            .collect();
        assert_eq!(spans, [(0, 0), (0, 3), (8, 9)]);
        let body = &message[8 + header_len..];
        assert_eq!(body.len(), 24);
        assert_eq!(&body[..8], &[1, 2, 3, 0, 0, 0, 0, 0]);
        assert_eq!(&body[8..17], &[4; 9]);
    }
}
