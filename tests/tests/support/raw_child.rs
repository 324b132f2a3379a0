//! A hand_worker child in spawn mode behind a raw ZeroMQ DEALER (not multifrost's parent), for
//! the tests that send it what no parent would.

use std::time::{Duration, Instant};

use bytes::Bytes;
use multifrost::protocol::{encode_heartbeat, new_id, unix_now, MessageKind, RawMessage};
use multifrost::Limits;
use multifrost_fuzz_harness::payloads::{self as fuzzing, enc};
use tokio::sync::mpsc;
use zeromq::{DealerSendHalf, DealerSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::support;

/// A hand_worker child in spawn mode, connected to a raw DEALER this test bound.
pub struct RawChild {
    pub sender: DealerSendHalf,
    pub replies: mpsc::UnboundedReceiver<Bytes>,
    pub receiving: tokio::task::JoinHandle<()>,
    pub process: tokio::process::Child,
    pub pid: u32,
}

impl RawChild {
    pub async fn start() -> RawChild {
        let mut dealer = DealerSocket::new();
        let endpoint = dealer
            .bind("tcp://127.0.0.1:0")
            .await
            .expect("bind a DEALER");
        let zeromq::Endpoint::Tcp(_, port) = endpoint else {
            panic!("not a tcp endpoint: {endpoint}")
        };
        let process = tokio::process::Command::new(support::hand_worker())
            .env("COMLINK_ZMQ_PORT", port.to_string())
            // glibc raises its mmap threshold after a large free (up to 32 MiB), so the buffers
            // of frames over 10 MiB would come from the heap and stay resident after being
            // freed. A fixed threshold makes RSS show what the child holds, not what the
            // allocator keeps for later.
            .env("MALLOC_MMAP_THRESHOLD_", "131072")
            .kill_on_drop(true)
            .spawn()
            .expect("spawning hand_worker");
        let pid = process.id().expect("a pid");
        let (sender, mut receiver) = dealer.split();
        let (tx, replies) = mpsc::unbounded_channel();
        let receiving = tokio::spawn(async move {
            while let Ok(message) = receiver.recv().await {
                let payload = message.into_vec().pop().unwrap_or_default();
                if tx.send(payload).is_err() {
                    return;
                }
            }
        });
        let mut child = RawChild {
            sender,
            replies,
            receiving,
            process,
            pid,
        };
        // Ready once a heartbeat comes back; until the child connects, sends are refused.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                Instant::now() < deadline,
                "the child never answered a heartbeat"
            );
            let id = new_id();
            if child
                .send_payload(encode_heartbeat(&id, unix_now()))
                .await
                .is_ok()
            {
                if let Ok(Some(reply)) =
                    tokio::time::timeout(Duration::from_millis(500), child.replies.recv()).await
                {
                    let reply =
                        RawMessage::parse(reply, &Limits::default()).expect("a heartbeat reply");
                    assert_eq!(reply.id(), Some(id.as_str()));
                    return child;
                }
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    pub async fn send_frames(&mut self, frames: Vec<Bytes>) -> zeromq::ZmqResult<()> {
        let message = ZmqMessage::try_from(frames).expect("at least one frame");
        self.sender.send(message).await
    }

    pub async fn send_payload(&mut self, payload: Vec<u8>) -> zeromq::ZmqResult<()> {
        self.send_frames(vec![Bytes::new(), Bytes::from(payload)])
            .await
    }

    /// Waits for the reply with this id, skipping others (output, replies to junk).
    pub async fn reply_to(&mut self, id: &str, within: Duration) -> RawMessage {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let payload = tokio::time::timeout(left, self.replies.recv())
                .await
                .unwrap_or_else(|_| panic!("no reply to {id} within {within:?}"))
                .expect("the DEALER's receive task ended");
            let limits = Limits {
                max_message_len: usize::MAX,
                ..Limits::default()
            };
            if let Ok(reply) = RawMessage::parse(payload, &limits) {
                if reply.id() == Some(id) {
                    return reply;
                }
            }
        }
    }

    /// Calls `function` with encoded arguments and returns its reply.
    pub async fn call(&mut self, function: &str, args: &[&[u8]]) -> RawMessage {
        let id = new_id();
        self.send_payload(fuzzing::call_with(&id, function, args))
            .await
            .expect("send");
        self.reply_to(&id, Duration::from_secs(60)).await
    }

    pub async fn add(&mut self, a: i64, b: i64) -> i64 {
        let reply = self.call("add", &[&enc(&a), &enc(&b)]).await;
        assert_eq!(
            reply.kind,
            MessageKind::Response,
            "add failed: {:?}",
            reply.error()
        );
        reply.result().decode().expect("an integer sum")
    }

    /// Closes the DEALER; the child sees its parent leave and must exit cleanly.
    pub async fn finish(mut self) {
        // The socket closes once both halves are gone.
        self.receiving.abort();
        let _ = (&mut self.receiving).await;
        drop(self.sender);
        let status = tokio::time::timeout(Duration::from_secs(20), self.process.wait())
            .await
            .expect("the child exits once its parent is gone")
            .expect("wait");
        assert!(
            status.success(),
            "the child did not exit cleanly: {status:?}"
        );
    }
}
