//! Bounds enforced on every received message before anything is allocated for it.
//!
//! Every byte a process receives is untrusted: the protocol has no authentication and its peers
//! are written in four languages. The scanner here walks a msgpack value iteratively (no
//! recursion, so no stack overflow whatever the nesting) and checks each announced length against
//! the bytes actually present and against [`Limits`] before any decoder allocates.

use std::fmt;

/// Size limits applied to received messages.
///
/// The defaults match what the Python implementation enforces (10 MiB per str or bin, 100,000
/// items per array or map), plus a nesting bound that every implementation can answer (Python
/// fails to reply to values nested deeper than about 490 levels) and an overall message bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest str or bin, in bytes.
    pub max_str_bin_len: usize,
    /// Most items in one array, or entries in one map.
    pub max_items: usize,
    /// Deepest nesting of arrays and maps; the message's own map is level 1.
    pub max_depth: usize,
    /// Largest whole message, in bytes.
    pub max_message_len: usize,
}

impl Limits {
    /// 10 MiB per str or bin, as in the Python implementation.
    pub const DEFAULT_MAX_STR_BIN_LEN: usize = 10 * 1024 * 1024;
    /// 100,000 items per array or map, as in the Python implementation.
    pub const DEFAULT_MAX_ITEMS: usize = 100_000;
    /// 256 levels: deeper than any real payload, shallower than where Python stops answering.
    pub const DEFAULT_MAX_DEPTH: usize = 256;
    /// 64 MiB per message.
    pub const DEFAULT_MAX_MESSAGE_LEN: usize = 64 * 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_str_bin_len: Self::DEFAULT_MAX_STR_BIN_LEN,
            max_items: Self::DEFAULT_MAX_ITEMS,
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_message_len: Self::DEFAULT_MAX_MESSAGE_LEN,
        }
    }
}

/// Why a received msgpack value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before the value does.
    Truncated,
    /// A marker byte that msgpack never uses (0xc1).
    ReservedMarker,
    /// A str or bin longer than [`Limits::max_str_bin_len`].
    StrBinTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// An array or map with more than [`Limits::max_items`] entries.
    TooManyItems {
        /// How many it has.
        len: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// Nesting deeper than [`Limits::max_depth`].
    TooDeep {
        /// The limit it broke.
        limit: usize,
    },
    /// A message larger than [`Limits::max_message_len`].
    MessageTooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// Bytes left over after the value.
    TrailingBytes,
    /// The value is well formed but not what the protocol expects here.
    Unexpected(String),
}

impl DecodeError {
    /// True for the limit violations, after which the message's fields are still readable (so a
    /// child can still answer the call with an error naming the limit). After `TooDeep` only the
    /// fields before the value that nests too deep are: the scanner stops there.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            DecodeError::StrBinTooLong { .. }
                | DecodeError::TooManyItems { .. }
                | DecodeError::TooDeep { .. }
                | DecodeError::MessageTooLarge { .. }
        )
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated msgpack data"),
            DecodeError::ReservedMarker => f.write_str("invalid msgpack marker 0xc1"),
            DecodeError::StrBinTooLong { len, limit } => write!(
                f,
                "str or bin of {len} bytes exceeds the limit of {limit} bytes"
            ),
            DecodeError::TooManyItems { len, limit } => write!(
                f,
                "array or map of {len} items exceeds the limit of {limit} items"
            ),
            DecodeError::TooDeep { limit } => {
                write!(f, "nesting exceeds the depth limit of {limit} levels")
            }
            DecodeError::MessageTooLarge { len, limit } => write!(
                f,
                "message of {len} bytes exceeds the limit of {limit} bytes"
            ),
            DecodeError::TrailingBytes => f.write_str("trailing bytes after the msgpack value"),
            DecodeError::Unexpected(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for DecodeError {}

/// What one msgpack header announces.
pub(crate) enum Header {
    /// A scalar, str, bin or ext: `skip` payload bytes follow the header.
    Leaf { skip: usize },
    /// An array or map with this many child values (a map's entries count twice).
    Container { children: usize, items: usize },
}

/// Reads the header at `buf[*pos]`, advancing `pos` past it (not past the payload).
#[inline]
pub(crate) fn read_header(buf: &[u8], pos: &mut usize) -> Result<Header, DecodeError> {
    let marker = *buf.get(*pos).ok_or(DecodeError::Truncated)?;
    *pos += 1;
    let mut be = |n: usize| -> Result<usize, DecodeError> {
        let bytes = buf.get(*pos..*pos + n).ok_or(DecodeError::Truncated)?;
        *pos += n;
        Ok(bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize))
    };
    let header = match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Header::Leaf { skip: 0 },
        0x80..=0x8f => container((marker & 0x0f) as usize, true),
        0x90..=0x9f => container((marker & 0x0f) as usize, false),
        0xa0..=0xbf => Header::Leaf {
            skip: (marker & 0x1f) as usize,
        },
        0xc1 => return Err(DecodeError::ReservedMarker),
        0xc4 | 0xd9 => Header::Leaf { skip: be(1)? },
        0xc5 | 0xda => Header::Leaf { skip: be(2)? },
        0xc6 | 0xdb => Header::Leaf { skip: be(4)? },
        0xc7 => Header::Leaf { skip: be(1)? + 1 },
        0xc8 => Header::Leaf { skip: be(2)? + 1 },
        0xc9 => Header::Leaf { skip: be(4)? + 1 },
        0xca => Header::Leaf { skip: 4 },
        0xcb => Header::Leaf { skip: 8 },
        0xcc | 0xd0 => Header::Leaf { skip: 1 },
        0xcd | 0xd1 => Header::Leaf { skip: 2 },
        0xce | 0xd2 => Header::Leaf { skip: 4 },
        0xcf | 0xd3 => Header::Leaf { skip: 8 },
        0xd4 => Header::Leaf { skip: 2 },
        0xd5 => Header::Leaf { skip: 3 },
        0xd6 => Header::Leaf { skip: 5 },
        0xd7 => Header::Leaf { skip: 9 },
        0xd8 => Header::Leaf { skip: 17 },
        0xdc => container(be(2)?, false),
        0xdd => container(be(4)?, false),
        0xde => container(be(2)?, true),
        0xdf => container(be(4)?, true),
    };
    Ok(header)
}

fn container(items: usize, is_map: bool) -> Header {
    Header::Container {
        children: if is_map { items * 2 } else { items },
        items,
    }
}

/// True for the markers of str and bin, whose length is checked against the str/bin limit.
fn is_str_or_bin(marker: u8) -> bool {
    matches!(marker, 0xa0..=0xbf | 0xc4..=0xc6 | 0xd9..=0xdb)
}

fn is_str(marker: u8) -> bool {
    matches!(marker, 0xa0..=0xbf | 0xd9..=0xdb)
}

fn is_map(marker: u8) -> bool {
    matches!(marker, 0x80..=0x8f | 0xde | 0xdf)
}

/// What one scan learnt about a value: the sizes that [`Limits`] bound, and the traits that the
/// portable value contract (PROTOCOL.md section 3) refuses or rewrites. The scan that validates
/// a value fills it at no extra pass, so a sender checks a value against any position in a
/// message without walking it again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Deepest nesting of arrays and maps inside the value: 0 for a scalar, 1 for `[1]`.
    pub depth: u32,
    /// Most items in one of its arrays, or entries in one of its maps.
    pub items: u32,
    /// Longest str or bin in it, in bytes.
    pub str_bin_len: u32,
    /// It holds an integer above i64::MAX (msgpack uint64), which only a Rust peer takes.
    pub wide_integer: bool,
    /// It holds a map key that is not a str.
    pub non_string_key: bool,
    /// It holds a NaN or an infinity.
    pub non_finite: bool,
}

impl Summary {
    /// The first limit the value breaks when it sits `level` levels deep in a message (0 for a
    /// value on its own, 1 for `args` or `result`, whose container is the message's map).
    pub fn check(&self, limits: &Limits, level: usize) -> Result<(), DecodeError> {
        if self.str_bin_len as usize > limits.max_str_bin_len {
            return Err(DecodeError::StrBinTooLong {
                len: self.str_bin_len as usize,
                limit: limits.max_str_bin_len,
            });
        }
        if self.items as usize > limits.max_items {
            return Err(DecodeError::TooManyItems {
                len: self.items as usize,
                limit: limits.max_items,
            });
        }
        if level + self.depth as usize > limits.max_depth {
            return Err(DecodeError::TooDeep {
                limit: limits.max_depth,
            });
        }
        Ok(())
    }
}

/// The containers a walk is inside: the first few on the stack frame (a call's metadata and
/// most values nest no deeper), the rest on the heap.
#[derive(Default)]
struct OpenStack {
    near: [(usize, bool); 8],
    len: usize,
    far: Vec<(usize, bool)>,
}

impl OpenStack {
    fn push(&mut self, entry: (usize, bool)) {
        match self.near.get_mut(self.len) {
            Some(slot) => *slot = entry,
            None => self.far.push(entry),
        }
        self.len += 1;
    }

    fn pop(&mut self) -> Option<(usize, bool)> {
        self.len = self.len.checked_sub(1)?;
        match self.near.get(self.len) {
            Some(entry) => Some(*entry),
            None => self.far.pop(),
        }
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// The end of the value at `pos` when it is one of the leaves every message is mostly made of
/// (a fixstr or str8, a float64, a fixint, nil or a bool) and is all there, checked as
/// [`skip_value`] checks it; `None` for anything else, which the general walk then reads.
#[inline(always)]
fn skip_common(
    buf: &[u8],
    pos: usize,
    limits: &Limits,
    violation: &mut Option<DecodeError>,
    summary: &mut Summary,
) -> Option<usize> {
    let (len, start) = match *buf.get(pos)? {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => return Some(pos + 1),
        0xcb => {
            note_f64(buf.get(pos + 1..pos + 9)?, summary);
            return Some(pos + 9);
        }
        marker @ 0xa0..=0xbf => ((marker & 0x1f) as usize, pos + 1),
        0xd9 => (*buf.get(pos + 1)? as usize, pos + 2),
        _ => return None,
    };
    if start + len > buf.len() {
        return None; // Truncated: the general walk says so.
    }
    note_str_bin(len, limits, violation, summary);
    Some(start + len)
}

/// The end of the fixarray or fixmap at `pos` if each of its items (each key and value) is one
/// of [`skip_common`]'s leaves and every key a str, with what it tells merged into `summary`
/// as the general walk would; `None`, with nothing noted, for any other value.
#[inline]
fn skip_flat_container(
    buf: &[u8],
    pos: usize,
    depth: usize,
    limits: &Limits,
    violation: &mut Option<DecodeError>,
    summary: &mut Summary,
) -> Option<usize> {
    let marker = *buf.get(pos)?;
    let items = (marker & 0x0f) as usize;
    let is_map = match marker {
        0x80..=0x8f => true,
        0x90..=0x9f => false,
        _ => return None,
    };
    if items > limits.max_items || depth + 1 > limits.max_depth {
        return None;
    }
    let mut noted = *summary;
    let mut first_violation = None;
    let mut end = pos + 1;
    for _ in 0..items {
        if is_map {
            // A key other than a fixstr or str8 is for the general walk to note.
            if !matches!(buf.get(end)?, 0xa0..=0xbf | 0xd9) {
                return None;
            }
            end = skip_common(buf, end, limits, &mut first_violation, &mut noted)?;
        }
        end = skip_common(buf, end, limits, &mut first_violation, &mut noted)?;
    }
    noted.items = noted.items.max(items as u32);
    noted.depth = noted.depth.max(1);
    *summary = noted;
    if let Some(found) = first_violation {
        violation.get_or_insert(found);
    }
    Some(end)
}

/// Records a str or bin of `len` bytes: in the summary, and as a violation when over the limit.
#[inline(always)]
fn note_str_bin(
    len: usize,
    limits: &Limits,
    violation: &mut Option<DecodeError>,
    summary: &mut Summary,
) {
    summary.str_bin_len = summary.str_bin_len.max(len as u32);
    if len > limits.max_str_bin_len {
        violation.get_or_insert(DecodeError::StrBinTooLong {
            len,
            limit: limits.max_str_bin_len,
        });
    }
}

/// Records in the summary whether the float64 payload `bits` (8 bytes) is a NaN or infinite.
#[inline(always)]
fn note_f64(bits: &[u8], summary: &mut Summary) {
    let bits: [u8; 8] = bits.try_into().expect("a float64 has 8 bytes");
    summary.non_finite |= !f64::from_bits(u64::from_be_bytes(bits)).is_finite();
}

/// The end of the value at `pos` when it is a leaf (not an array or map), checked as
/// [`skip_value`] checks it; `None` for a container.
#[inline]
fn skip_leaf(
    buf: &[u8],
    pos: usize,
    limits: &Limits,
    violation: &mut Option<DecodeError>,
    summary: &mut Summary,
) -> Result<Option<usize>, DecodeError> {
    let marker = *buf.get(pos).ok_or(DecodeError::Truncated)?;
    let mut after_header = pos;
    match read_header(buf, &mut after_header)? {
        Header::Leaf { skip } => {
            leaf_end(buf, marker, after_header, skip, limits, violation, summary).map(Some)
        }
        Header::Container { .. } => Ok(None),
    }
}

/// The end of a leaf whose header (`marker`, announcing `skip` payload bytes) ends at `pos`,
/// with what it tells about the value merged into `summary`.
#[inline]
fn leaf_end(
    buf: &[u8],
    marker: u8,
    pos: usize,
    skip: usize,
    limits: &Limits,
    violation: &mut Option<DecodeError>,
    summary: &mut Summary,
) -> Result<usize, DecodeError> {
    if is_str_or_bin(marker) {
        note_str_bin(skip, limits, violation, summary);
    }
    if buf.len() - pos < skip {
        return Err(DecodeError::Truncated);
    }
    match marker {
        // uint64 with its top bit set: above i64::MAX.
        0xcf if buf[pos] & 0x80 != 0 => summary.wide_integer = true,
        0xca => {
            let bits = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]);
            summary.non_finite |= !f32::from_bits(bits).is_finite();
        }
        0xcb => note_f64(&buf[pos..pos + 8], summary),
        _ => {}
    }
    Ok(pos + skip)
}

/// Walks one complete value starting at `*pos` and returns the position just past it.
///
/// `depth` is the nesting level of the value's container (0 for a top-level value). Structure
/// errors (truncation, reserved markers) end the walk at once; so does nesting deeper than the
/// limit ([`DecodeError::TooDeep`]), which keeps the walk's memory bounded by `max_depth`. The
/// other limit violations are recorded in `violation` (the first one wins) and the walk goes on,
/// so that the caller can still read the rest of the message, such as the call id to answer.
/// What the walk learns about the value is merged into `summary`.
#[inline]
pub(crate) fn skip_value(
    buf: &[u8],
    pos: usize,
    depth: usize,
    limits: &Limits,
    violation: &mut Option<DecodeError>,
    summary: &mut Summary,
) -> Result<usize, DecodeError> {
    // Most values are scalars or strs (a message's every field but `args`, `result` and
    // `metadata`): the commonest of them are read here, without a call or a header read.
    match skip_common(buf, pos, limits, violation, summary) {
        Some(end) => Ok(end),
        None => walk_value(buf, pos, depth, limits, violation, summary),
    }
}

/// [`skip_value`] for any value.
#[inline(never)]
fn walk_value(
    buf: &[u8],
    mut pos: usize,
    depth: usize,
    limits: &Limits,
    violation: &mut Option<DecodeError>,
    summary: &mut Summary,
) -> Result<usize, DecodeError> {
    // The other leaves need no stack of open containers either, nor a short array or map of
    // the commonest leaves (a call's usual `args` and `metadata`).
    if let Some(end) = skip_leaf(buf, pos, limits, violation, summary)? {
        return Ok(end);
    }
    if let Some(end) = skip_flat_container(buf, pos, depth, limits, violation, summary) {
        return Ok(end);
    }
    // Per open container: the child values it has left and whether it is a map. A heap stack,
    // never the call stack.
    let mut open = OpenStack::default();
    let mut remaining = 1usize;
    let mut in_map = false;
    loop {
        while remaining == 0 {
            match open.pop() {
                Some(parent) => (remaining, in_map) = parent,
                None => return Ok(pos),
            }
        }
        // A map's children alternate key, value, starting with a key at an even count.
        let is_key = in_map && remaining.is_multiple_of(2);
        remaining -= 1;
        let marker = *buf.get(pos).ok_or(DecodeError::Truncated)?;
        if is_key && !is_str(marker) {
            summary.non_string_key = true;
        }
        match read_header(buf, &mut pos)? {
            Header::Leaf { skip } => {
                pos = leaf_end(buf, marker, pos, skip, limits, violation, summary)?;
            }
            Header::Container { children, items } => {
                summary.items = summary.items.max(items as u32);
                if items > limits.max_items {
                    violation.get_or_insert(DecodeError::TooManyItems {
                        len: items,
                        limit: limits.max_items,
                    });
                }
                // Every child takes at least one byte: a larger count is a lie.
                if children > buf.len() - pos {
                    return Err(DecodeError::Truncated);
                }
                if depth + open.len() + 1 > limits.max_depth {
                    // Stop here rather than walk on: every further level would cost a stack
                    // entry, 8 bytes of memory per byte of input (a 64 MiB frame of nested
                    // arrays took 577 MiB). The stack never holds more than `max_depth` entries.
                    return Err(DecodeError::TooDeep {
                        limit: limits.max_depth,
                    });
                }
                open.push((remaining, in_map));
                summary.depth = summary.depth.max(open.len() as u32);
                remaining = children;
                in_map = is_map(marker);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(bytes: &[u8], limits: Limits) -> (Result<usize, DecodeError>, Option<DecodeError>) {
        let mut violation = None;
        let end = skip_value(
            bytes,
            0,
            0,
            &limits,
            &mut violation,
            &mut Summary::default(),
        );
        (end, violation)
    }

    /// Walks `bytes` as a whole value: its end, summary and first violation.
    fn walked(
        bytes: &[u8],
        limits: &Limits,
    ) -> (Result<usize, DecodeError>, Summary, Option<DecodeError>) {
        let mut violation = None;
        let mut summary = Summary::default();
        let end = skip_value(bytes, 0, 0, limits, &mut violation, &mut summary);
        (end, summary, violation)
    }

    #[test]
    fn a_short_map_of_common_leaves_is_summed_up_as_the_general_walk_does() {
        let limits = Limits {
            max_str_bin_len: 10,
            ..Limits::default()
        };
        let mut long_str = vec![0xd9, 40];
        long_str.extend([b'x'; 40]);
        let inf = [0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0];
        let entry_lists: [Vec<(&[u8], &[u8])>; 5] = [
            vec![(&[0xa1, b'a'], &[0x01]), (&[0xd9, 1, b'b'], &inf)],
            vec![(&[0xa1, b'k'], &long_str), (&long_str, &[0xc2])],
            vec![],
            // A key that is not a str, and a value that is not common: the general walk.
            vec![(&[0x01], &[0x02])],
            vec![(&[0xa1, b'a'], &[0x91, 0x01])],
        ];
        for entries in entry_lists {
            let body: Vec<u8> = entries
                .iter()
                .flat_map(|(k, v)| [*k, *v].concat())
                .collect();
            let fixmap = [&[0x80 | entries.len() as u8][..], &body].concat();
            // The same entries in a map16, which the general walk reads.
            let map16 = [&[0xde, 0, entries.len() as u8][..], &body].concat();
            let (end, summary, violation) = walked(&fixmap, &limits);
            let (end16, summary16, violation16) = walked(&map16, &limits);
            assert_eq!(end, Ok(fixmap.len()));
            assert_eq!(end16, Ok(map16.len()));
            assert_eq!(summary, summary16, "{entries:?}");
            assert_eq!(violation, violation16, "{entries:?}");
        }
        assert_eq!(
            walked(&[0x81, 0xa1, b'a'], &limits).0,
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn a_short_array_of_common_leaves_is_summed_up_as_the_general_walk_does() {
        let limits = Limits {
            max_str_bin_len: 10,
            ..Limits::default()
        };
        let nan = [0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0];
        let mut long_str = vec![0xd9, 40];
        long_str.extend([b'x'; 40]);
        let item_lists: [Vec<&[u8]>; 5] = [
            vec![&[0x01], &[0xa3, b'a', b'b', b'c']],
            vec![&[0xe0], &nan, &long_str, &[0xc0], &[0xc3]],
            vec![],
            // Not all common: an int64 and a nested array take the general walk.
            vec![&[0x01], &[0xd3, 0, 0, 0, 0, 0, 0, 0, 1]],
            vec![&[0x91, 0x01], &[0xa1, b'z']],
        ];
        for items in item_lists {
            let body: Vec<u8> = items.concat();
            let fixarray = [&[0x90 | items.len() as u8][..], &body].concat();
            // The same items in an array16, which the general walk reads.
            let array16 = [&[0xdc, 0, items.len() as u8][..], &body].concat();
            let (end, summary, violation) = walked(&fixarray, &limits);
            let (end16, summary16, violation16) = walked(&array16, &limits);
            assert_eq!(end, Ok(fixarray.len()));
            assert_eq!(end16, Ok(array16.len()));
            assert_eq!(summary, summary16, "{items:?}");
            assert_eq!(violation, violation16, "{items:?}");
        }
        // Truncated inside: the general walk says so.
        assert_eq!(
            walked(&[0x92, 0x01], &limits).0,
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            walked(&[0x92, 0x01, 0xa3, b'a'], &limits).0,
            Err(DecodeError::Truncated)
        );
        // Deeper than the limit, even one level.
        let shallow = Limits {
            max_depth: 0,
            ..Limits::default()
        };
        assert_eq!(
            walked(&[0x91, 0x01], &shallow).0,
            Err(DecodeError::TooDeep { limit: 0 })
        );
    }

    #[test]
    fn nested_arrays_beyond_the_depth_limit_are_refused_without_recursion() {
        // One million nested arrays would overflow any recursive decoder's stack.
        let mut bytes = vec![0x91u8; 1_000_000];
        bytes.push(0xc0);
        let (end, _) = scan(&bytes, Limits::default());
        assert_eq!(end, Err(DecodeError::TooDeep { limit: 256 }));
        // Exactly at the limit is fine.
        let mut bytes = vec![0x91u8; 256];
        bytes.push(0xc0);
        assert_eq!(scan(&bytes, Limits::default()), (Ok(257), None));
    }

    #[test]
    fn the_walk_stops_at_the_depth_limit_so_its_stack_stays_bounded() {
        // Regression: the walk used to go on past the limit with one stack entry per level, so
        // a 64 MiB frame of nested arrays cost 577 MiB and 1.8 s to scan (tests/tests/hostile_fuzz_replay.rs
        // measures the allocation). Each level here also leaves one more item to come.
        let mut bytes = vec![0x92u8; 4_000_000];
        bytes.extend(std::iter::repeat_n(0xc0, 4_000_001));
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        // The old walk went through all 4 million levels and returned Ok with a violation.
        let end = scan(&bytes, limits).0;
        assert_eq!(end, Err(DecodeError::TooDeep { limit: 3 }));
    }

    #[test]
    fn an_array_announcing_more_items_than_bytes_is_truncated() {
        let (end, _) = scan(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01], Limits::default());
        assert_eq!(end, Err(DecodeError::Truncated));
    }

    #[test]
    fn oversized_bin_is_a_violation_but_still_skippable() {
        let limits = Limits {
            max_str_bin_len: 3,
            ..Limits::default()
        };
        let (end, violation) = scan(&[0xc4, 4, 1, 2, 3, 4], limits);
        assert_eq!(end, Ok(6));
        assert_eq!(
            violation,
            Some(DecodeError::StrBinTooLong { len: 4, limit: 3 })
        );
    }

    #[test]
    fn reserved_marker_is_rejected() {
        assert_eq!(
            scan(&[0xc1], Limits::default()).0,
            Err(DecodeError::ReservedMarker)
        );
    }
}
