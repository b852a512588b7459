//! Output stage, the protobuf wire format as far as a Perfetto trace needs it (input: field
//! numbers and values; output: bytes): varints, length-delimited fields and nested messages.
//! Field numbers live with the messages that use them, in `trace.rs`.

/// One message being built; nested messages are built separately and added as bytes.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Msg(pub Vec<u8>);

const VARINT: u64 = 0;
const LEN: u64 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Msg {
    fn key(&mut self, field: u32, wire: u64) {
        varint(&mut self.0, (u64::from(field) << 3) | wire);
    }

    /// uint32, uint64, enum, bool, and non-negative int32/int64.
    pub fn uint(&mut self, field: u32, v: u64) -> &mut Msg {
        self.key(field, VARINT);
        varint(&mut self.0, v);
        self
    }

    /// int32/int64 (two's complement, ten bytes when negative, as protobuf says).
    pub fn int(&mut self, field: u32, v: i64) -> &mut Msg {
        self.uint(field, v as u64)
    }

    pub fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Msg {
        self.key(field, LEN);
        varint(&mut self.0, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    pub fn str(&mut self, field: u32, s: &str) -> &mut Msg {
        self.bytes(field, s.as_bytes())
    }

    pub fn msg(&mut self, field: u32, m: &Msg) -> &mut Msg {
        self.bytes(field, &m.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes() {
        // The protobuf encoding guide's examples: field 1 = 150; field 2 = "testing".
        assert_eq!(Msg::default().uint(1, 150).0.clone(), [0x08, 0x96, 0x01]);
        assert_eq!(
            Msg::default().str(2, "testing").0.clone(),
            [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']
        );
        let neg = Msg::default().int(1, -2).0.clone();
        assert_eq!(neg.len(), 11);
        assert_eq!(*neg.last().unwrap(), 0x01);
        let mut inner = Msg::default();
        inner.uint(1, 1);
        assert_eq!(
            Msg::default().msg(3, &inner).0.clone(),
            [0x1a, 0x02, 0x08, 0x01]
        );
    }
}
