//! ZMTP 3.0 bytes written by hand, for the tests that speak to multifrost below its messages:
//! the greeting, commands, `READY` and message frames (ZeroMQ RFC 23). Kept apart from
//! `multifrost/src/transport/zmtp.rs` on purpose: these check what that code sends and reads.

pub const MORE: u8 = 0x01;
pub const LONG: u8 = 0x02;
pub const COMMAND: u8 = 0x04;

/// The 64-byte greeting: version 3.0, `mechanism`, `as_server`.
pub fn greeting(mechanism: &str, as_server: bool) -> [u8; 64] {
    let mut greeting = [0u8; 64];
    greeting[0] = 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    greeting[11] = 0;
    greeting[12..12 + mechanism.len()].copy_from_slice(mechanism.as_bytes());
    greeting[32] = as_server as u8;
    greeting
}

/// A short command frame.
pub fn command(name: &[u8], body: &[u8]) -> Vec<u8> {
    let len = 1 + name.len() + body.len();
    let mut frame = vec![
        COMMAND,
        u8::try_from(len).expect("a short command"),
        name.len() as u8,
    ];
    frame.extend_from_slice(name);
    frame.extend_from_slice(body);
    frame
}

/// A `READY` command announcing `socket_type`.
pub fn ready(socket_type: &str) -> Vec<u8> {
    let mut body = vec![11];
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    body.extend_from_slice(socket_type.as_bytes());
    command(b"READY", &body)
}

/// One message frame, short or long as its size needs.
pub fn frame(body: &[u8], more: bool) -> Vec<u8> {
    let more = if more { MORE } else { 0 };
    let mut frame = Vec::with_capacity(body.len() + 9);
    if body.len() > 255 {
        frame.push(LONG | more);
        frame.extend_from_slice(&(body.len() as u64).to_be_bytes());
    } else {
        frame.push(more);
        frame.push(body.len() as u8);
    }
    frame.extend_from_slice(body);
    frame
}
