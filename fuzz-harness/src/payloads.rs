//! Building hostile payloads: a fixed-seed generator, msgpack pieces the Rust encoder would
//! never produce (NaN, u64 above i64, ext types, integer keys, invalid UTF-8, deep nesting,
//! values over the limits), call messages around them, and byte-level mutations.
//!
//! Used by the hostile-input tests (`tests/tests/`) and by the `fuzz_seeds` binary
//! (`tests/src/bin/fuzz_seeds.rs`) that writes the seed corpus.

use multifrost::protocol::{MessageKind, MessageWriter};
use multifrost::EncodedValue;

/// xorshift64*: deterministic, fast, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next number. Not `Iterator::next`: the stream never ends, and the tests call it by
    /// this name.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// The msgpack encoding of a serializable value, as the Rust side writes it.
pub fn enc<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    EncodedValue::encode(value)
        .expect("encodable")
        .as_bytes()
        .to_vec()
}

/// A msgpack str header for `len` bytes.
pub fn str_header(len: usize) -> Vec<u8> {
    match len {
        0..=31 => vec![0xa0 | len as u8],
        32..=255 => vec![0xd9, len as u8],
        256..=65535 => vec![0xda, (len >> 8) as u8, len as u8],
        _ => {
            let mut h = vec![0xdb];
            h.extend_from_slice(&(len as u32).to_be_bytes());
            h
        }
    }
}

/// A msgpack bin header for `len` bytes.
pub fn bin_header(len: usize) -> Vec<u8> {
    let mut h = vec![0xc6];
    h.extend_from_slice(&(len as u32).to_be_bytes());
    h
}

/// An array header for `len` items.
pub fn array_header(len: usize) -> Vec<u8> {
    match len {
        0..=15 => vec![0x90 | len as u8],
        16..=65535 => vec![0xdc, (len >> 8) as u8, len as u8],
        _ => {
            let mut h = vec![0xdd];
            h.extend_from_slice(&(len as u32).to_be_bytes());
            h
        }
    }
}

/// A map header for `len` entries.
pub fn map_header(len: usize) -> Vec<u8> {
    match len {
        0..=15 => vec![0x80 | len as u8],
        16..=65535 => vec![0xde, (len >> 8) as u8, len as u8],
        _ => {
            let mut h = vec![0xdf];
            h.extend_from_slice(&(len as u32).to_be_bytes());
            h
        }
    }
}

/// A str of `len` bytes of `fill`.
pub fn big_str(len: usize) -> Vec<u8> {
    let mut v = str_header(len);
    v.resize(v.len() + len, b'x');
    v
}

/// A bin of `len` bytes.
pub fn big_bin(len: usize) -> Vec<u8> {
    let mut v = bin_header(len);
    v.resize(v.len() + len, 0xab);
    v
}

/// An array of `len` nils.
pub fn big_array(len: usize) -> Vec<u8> {
    let mut v = array_header(len);
    v.resize(v.len() + len, 0xc0);
    v
}

/// A map of `len` entries `int -> nil` (integer keys, which Python drops).
pub fn big_int_key_map(len: usize) -> Vec<u8> {
    let mut v = map_header(len);
    for i in 0..len {
        v.extend_from_slice(&enc(&(i as i64)));
        v.push(0xc0);
    }
    v
}

/// `depth` arrays nested in each other around a nil.
pub fn nested(depth: usize) -> Vec<u8> {
    let mut v = vec![0x91; depth];
    v.push(0xc0);
    v
}

/// `depth` single-entry maps `{"k": ...}` nested around a nil.
pub fn nested_maps(depth: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(depth * 3 + 1);
    for _ in 0..depth {
        v.extend_from_slice(&[0x81, 0xa1, b'k']);
    }
    v.push(0xc0);
    v
}

/// Values no Rust encoder would send, each with a short name.
pub fn odd_values() -> Vec<(&'static str, Vec<u8>)> {
    let f64v = |v: f64| {
        let mut b = vec![0xcb];
        b.extend_from_slice(&v.to_bits().to_be_bytes());
        b
    };
    let f32v = |v: f32| {
        let mut b = vec![0xca];
        b.extend_from_slice(&v.to_bits().to_be_bytes());
        b
    };
    vec![
        ("u64_max", {
            let mut b = vec![0xcf];
            b.extend_from_slice(&u64::MAX.to_be_bytes());
            b
        }),
        ("u64_above_i64", {
            let mut b = vec![0xcf];
            b.extend_from_slice(&(1u64 << 63).to_be_bytes());
            b
        }),
        ("i64_min", enc(&i64::MIN)),
        ("nan64", f64v(f64::NAN)),
        ("inf64", f64v(f64::INFINITY)),
        ("neginf64", f64v(f64::NEG_INFINITY)),
        ("nan32", f32v(f32::NAN)),
        ("inf32", f32v(f32::INFINITY)),
        ("float_int", f64v(3.0)),
        ("float_huge", f64v(1e300)),
        ("ext_fix1", vec![0xd4, 1, 0x42]),
        ("ext_fix16", {
            let mut b = vec![0xd8, 0x7f];
            b.extend_from_slice(&[7; 16]);
            b
        }),
        ("ext_timestamp", vec![0xd6, 0xff, 0, 0, 0, 1]),
        ("ext8_empty", vec![0xc7, 0, 5]),
        ("ext32", {
            let mut b = vec![0xc9, 0, 0, 0, 3, 0x80];
            b.extend_from_slice(&[1, 2, 3]);
            b
        }),
        (
            "int_key_map",
            vec![0x82, 0x01, 0xa1, b'a', 0xcc, 0xff, 0xc0],
        ),
        ("nil_key_map", vec![0x81, 0xc0, 0x01]),
        ("array_key_map", vec![0x81, 0x91, 0x01, 0x02]),
        ("bin_key_map", vec![0x81, 0xc4, 1, b'k', 0x02]),
        ("invalid_utf8_str", vec![0xa3, 0xff, 0xfe, 0x80]),
        ("surrogate_utf8_str", vec![0xa3, 0xed, 0xa0, 0x80]),
        ("overlong_utf8_str", vec![0xa2, 0xc0, 0xaf]),
        ("empty_str", vec![0xa0]),
        ("empty_bin", vec![0xc4, 0]),
        ("str8_short", vec![0xd9, 1, b'a']),
        ("bool_true", vec![0xc3]),
        ("neg_fixint", vec![0xe0]),
        ("nested_300", nested(300)),
        ("nested_maps_300", nested_maps(300)),
        ("nested_255", nested(255)),
        ("mixed", {
            let mut b = vec![0x94];
            b.extend_from_slice(&f64v(f64::NAN));
            b.extend_from_slice(&[0xd4, 1, 0x42]);
            b.extend_from_slice(&[0x81, 0x01, 0x02]);
            b.extend_from_slice(&[0xa2, 0xff, 0xff]);
            b
        }),
    ]
}

/// A call message with already-encoded arguments, shaped like the Rust parent's.
pub fn call_with(id: &str, function: &str, args: &[&[u8]]) -> Vec<u8> {
    let mut w = MessageWriter::new(MessageKind::Call, id, 4, 64);
    w.str_field("function", function);
    w.array_field("args", args.iter().copied());
    w.str_field("namespace", "default");
    let stamp = enc(&1_763_800_000.5f64);
    w.map_field("metadata", [("timestamp_sent", &stamp[..])].into_iter());
    w.finish()
}

/// A call whose `args` value is given as raw bytes (not necessarily an array).
pub fn call_with_raw_args(id: &str, function: &str, args: &[u8]) -> Vec<u8> {
    let mut w = MessageWriter::new(MessageKind::Call, id, 2, 64);
    w.str_field("function", function);
    w.raw_field("args", args);
    w.finish()
}

/// A message map from raw key/value pairs, in this order.
pub fn raw_map(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut v = map_header(entries.len());
    for (k, val) in entries {
        v.extend_from_slice(k);
        v.extend_from_slice(val);
    }
    v
}

/// A message map from owned raw key/value pairs, in this order.
pub fn map_of(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut v = map_header(entries.len());
    for (k, val) in entries {
        v.extend_from_slice(k);
        v.extend_from_slice(val);
    }
    v
}

/// Interesting bytes for overwrites: markers of every kind and length extremes.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc4, 0xc6, 0xc7, 0xc9,
    0xca, 0xcb, 0xcf, 0xd3, 0xd4, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff,
];

/// One random mutation (or a few) of `input`; `other` is spliced in sometimes.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = out.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next() as u8;
            }
            3 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let extra = rng.bytes(n);
                out.splice(i..i, extra);
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                out.drain(start..end);
            }
            5 if len > 0 => out.truncate(rng.below(len)),
            6 if len > 1 => {
                // Duplicate a slice in place (repeated keys, doubled headers).
                let start = rng.below(len);
                let end = (start + 1 + rng.below(32)).min(len);
                let piece = out[start..end].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, piece);
            }
            7 if !other.is_empty() => {
                // Splice a piece of another input.
                let start = rng.below(other.len());
                let end = (start + 1 + rng.below(64)).min(other.len());
                let at = rng.below(len + 1);
                let cut = (at + rng.below(32)).min(len);
                out.splice(at..cut, other[start..end].iter().copied());
            }
            8 if len > 4 => {
                // Big-endian length fields near a marker: make them huge or off by one.
                let i = rng.below(len - 4);
                let value: u32 = match rng.below(4) {
                    0 => u32::MAX,
                    1 => 0x8000_0000,
                    2 => 100_001,
                    _ => u32::from_be_bytes([out[i], out[i + 1], out[i + 2], out[i + 3]])
                        .wrapping_add(1),
                };
                out[i..i + 4].copy_from_slice(&value.to_be_bytes());
            }
            _ if len > 0 => {
                let i = rng.below(len);
                out[i] = out[i].wrapping_add(1 + rng.below(3) as u8);
            }
            _ => out.push(rng.next() as u8),
        }
    }
    out
}
