//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes of JSON.
//!
//! The decoder is defensive by construction: it never allocates more than
//! `max_len` plus one read's worth of bytes, and any byte stream yields either frames
//! or an error, never a panic.

use serde::de::DeserializeOwned;
use serde::Serialize;

pub const FRAME_HEADER_LEN: usize = 4;
/// Upper bound on one frame. Worker reports carry at most two capped outputs and a
/// capped result, so anything larger is a protocol violation.
pub const MAX_FRAME_LEN: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("frame is not a valid message: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("message could not be encoded: {0}")]
    Encode(#[source] serde_json::Error),
}

/// Encode one message as a frame.
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(message).map_err(FrameError::Encode)?;
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max: MAX_FRAME_LEN,
        });
    }
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Incremental decoder: feed it bytes as they arrive, take whole frames out.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    pub fn new(max_len: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            max_len,
        }
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// How many more bytes the decoder needs before it can return the next frame
    /// (a hint for readers; never more than `max_len + FRAME_HEADER_LEN`).
    pub fn wanted(&self) -> usize {
        if self.buf.len() < FRAME_HEADER_LEN {
            return FRAME_HEADER_LEN - self.buf.len();
        }
        let len = self.declared_len();
        (FRAME_HEADER_LEN + len.min(self.max_len)).saturating_sub(self.buf.len())
    }

    fn declared_len(&self) -> usize {
        u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize
    }

    /// Append received bytes. Fails as soon as a header declares an oversized frame,
    /// so a hostile peer cannot make the host buffer it.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        self.buf.extend_from_slice(bytes);
        self.check_header()
    }

    fn check_header(&self) -> Result<(), FrameError> {
        if self.buf.len() >= FRAME_HEADER_LEN {
            let len = self.declared_len();
            if len > self.max_len {
                return Err(FrameError::TooLarge {
                    len,
                    max: self.max_len,
                });
            }
        }
        Ok(())
    }

    /// Take the next complete frame body, if one has fully arrived.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        self.check_header()?;
        if self.buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let len = self.declared_len();
        if self.buf.len() < FRAME_HEADER_LEN + len {
            return Ok(None);
        }
        let body = self.buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len].to_vec();
        self.buf.drain(..FRAME_HEADER_LEN + len);
        self.check_header()?;
        Ok(Some(body))
    }

    /// Take and decode the next complete frame as a message.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        match self.next_frame()? {
            None => Ok(None),
            Some(body) => serde_json::from_slice(&body)
                .map(Some)
                .map_err(FrameError::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HostMessage, WorkerMessage};

    #[test]
    fn a_frame_round_trips_when_fed_one_byte_at_a_time() {
        let frame = encode_frame(&HostMessage::Shutdown).unwrap();
        let mut dec = FrameDecoder::default();
        for (i, b) in frame.iter().enumerate() {
            dec.push(&[*b]).unwrap();
            let got: Option<HostMessage> = dec.next_message().unwrap();
            assert_eq!(got.is_some(), i == frame.len() - 1);
        }
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn an_oversized_header_is_refused_before_the_body_arrives() {
        let mut dec = FrameDecoder::new(16);
        let err = dec.push(&[0, 0, 1, 0]).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 256, max: 16 }));
    }

    #[test]
    fn garbage_bodies_are_errors_not_panics() {
        let mut dec = FrameDecoder::default();
        dec.push(&[0, 0, 0, 3, b'{', b'x', b'}']).unwrap();
        assert!(dec.next_message::<WorkerMessage>().is_err());
    }

    /// Property: whatever bytes arrive, in whatever chunks, the decoder returns frames or
    /// errors, never panics, and never holds more than the limit plus one chunk.
    #[test]
    fn arbitrary_byte_streams_never_panic_or_grow_without_bound() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let max = 1024;
        for _case in 0..2000 {
            let mut dec = FrameDecoder::new(max);
            let chunks = rng.below(20) + 1;
            for _ in 0..chunks {
                let n = rng.below(300);
                let mut chunk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                // Bias towards plausible headers so bodies get decoded too.
                if rng.below(3) == 0 && chunk.len() >= 4 {
                    let len = rng.below(64) as u32;
                    chunk[..4].copy_from_slice(&len.to_be_bytes());
                }
                if dec.push(&chunk).is_err() {
                    break;
                }
                assert!(dec.buffered() <= max + FRAME_HEADER_LEN + 300);
                while let Ok(Some(_)) | Err(FrameError::Malformed(_)) =
                    dec.next_message::<WorkerMessage>()
                {}
            }
        }
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }
}
