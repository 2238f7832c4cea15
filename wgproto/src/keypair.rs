//! One session's transport keys and the data-path operations on them: sealing and opening
//! transport messages in place (whitepaper §5.4.6).
//!
//! A [`Keypair`] is created by the slow path when a handshake completes and published, behind an
//! `Arc`, to the fast-path workers; it is `Send + Sync` and every method takes `&self`. The send
//! counter is an atomic; the receive replay window is guarded by a receive lock that a worker
//! takes once per batch and holds until the batch ends ([`ReceiveHolder`]), not once per
//! packet. Nothing here allocates. The keypair enforces its own limits (REJECT_AFTER_MESSAGES,
//! REJECT_AFTER_TIME, §6.1/§6.2) and tells the caller, in every result, when the rules of §6.2
//! ask for a new handshake; it never starts one itself. The keypair keeps the two 32-byte keys
//! and nothing derived from them; they are zeroed when the last `Arc` is dropped. The cipher
//! (`ring`) gets its copy of a key per call, on the stack (see `SECURITY.md`, "Keys in memory").

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::constants::{
    AEAD_TAG_LEN, KEY_LEN, PADDING_MULTIPLE, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, REKEY_ON_RECEIVE_AFTER_TIME, TRANSPORT_HEADER_LEN,
};
use crate::crypto;
use crate::noise::SessionKeys;
use crate::peer::PeerId;
use crate::replay::{ReplayError, ReplayWindow};
use crate::time::Timestamp;
use wire::wireguard::TransportPacket;
use wire::Error as WireError;

/// A sealed transport message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// Bytes of the message at the start of the buffer: header, padded ciphertext, tag.
    pub len: usize,
    /// The counter (nonce) this message used.
    pub counter: u64,
    /// §6.2: this keypair is due for replacement (REKEY_AFTER_MESSAGES, or REKEY_AFTER_TIME on
    /// the initiator); the worker should ask the slow path for a handshake.
    pub rekey: bool,
}

/// An opened transport message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Where the plaintext (inner IP packet plus padding) is in the buffer; empty for a
    /// keepalive.
    pub plaintext: Range<usize>,
    pub counter: u64,
    /// True until the device has been told of a packet received on this keypair
    /// ([`Keypair::note_receipt`], called from `Device::note_data_received`): the key
    /// confirmation a responder waits for before it may send with the keypair (§5.4.5). It
    /// stays true for every packet until the report got through, not only for the first: a
    /// report lost on a full queue would otherwise leave the keypair unconfirmed until it
    /// expires.
    pub unreported: bool,
    /// §6.2: an initiator receiving on a keypair older than REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT
    /// - REKEY_TIMEOUT should start a handshake before the keypair dies.
    pub rekey: bool,
}

/// Why a message could not be sealed. The packet is dropped; nothing was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealError {
    /// The keypair is older than REJECT_AFTER_TIME, or was retired by the slow path.
    Expired,
    /// REJECT_AFTER_MESSAGES messages were sent with this key.
    CounterExhausted,
    /// The buffer cannot hold header + padded plaintext + tag.
    BufferTooSmall { needed: usize, available: usize },
}

/// Why a received transport message was dropped. Each is a drop counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than header + tag.
    TooShort,
    /// Not a transport message (type byte or reserved bytes).
    NotTransport,
    /// The receiver index is not this keypair's.
    WrongReceiver,
    /// The keypair is older than REJECT_AFTER_TIME, or was retired by the slow path.
    Expired,
    /// The tag did not verify.
    AuthFailed,
    /// The counter was seen before, is behind the window, or is past REJECT_AFTER_MESSAGES.
    Replay(ReplayError),
    /// Authenticated, but another worker held the keypair's replay window for longer than a
    /// receiver waits ([`RECEIVE_LOCK_SPINS`]): the packet is dropped, not let through
    /// unchecked.
    ReplayWindowBusy,
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealError::Expired => f.write_str("sending keypair expired"),
            SealError::CounterExhausted => f.write_str("sending counter exhausted"),
            SealError::BufferTooSmall { needed, available } => {
                write!(f, "buffer of {available} bytes cannot hold {needed}")
            }
        }
    }
}

impl std::error::Error for SealError {}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::TooShort => f.write_str("transport message shorter than 32 bytes"),
            OpenError::NotTransport => f.write_str("not a transport message"),
            OpenError::WrongReceiver => f.write_str("receiver index belongs to another keypair"),
            OpenError::Expired => f.write_str("receiving keypair expired"),
            OpenError::AuthFailed => f.write_str("transport message failed authentication"),
            OpenError::Replay(r) => write!(f, "replayed or stale counter ({r:?})"),
            OpenError::ReplayWindowBusy => f.write_str("replay window held by another worker"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Bytes of plaintext padding for a packet of `len` bytes: up to a multiple of 16, never past
/// `mtu` (the kernel's rule; for a packet above the MTU, as with segmentation offload, the last
/// segment is what gets padded). `mtu == 0` means no cap.
pub fn padding_len(len: usize, mtu: usize) -> usize {
    let round = |n: usize| n.div_ceil(PADDING_MULTIPLE) * PADDING_MULTIPLE;
    if mtu == 0 {
        return round(len) - len;
    }
    let last = if len > mtu { len % mtu } else { len };
    round(last).min(mtu).saturating_sub(last)
}

/// Total length of a transport message carrying `plaintext_len` bytes under `mtu`.
pub fn sealed_len(plaintext_len: usize, mtu: usize) -> usize {
    TRANSPORT_HEADER_LEN + plaintext_len + padding_len(plaintext_len, mtu) + AEAD_TAG_LEN
}

/// How many times a receiver retries a receive lock another holder has before it gives up
/// on the packet ([`OpenError::ReplayWindowBusy`]): a few hundred microseconds, longer than a
/// worker's batch, bounded so that two workers each waiting for a window the other holds
/// cannot wait for ever.
pub const RECEIVE_LOCK_SPINS: u32 = 20_000;

/// Receive-lock states: free, held for one [`Keypair::open_in_place`] call, or held by the
/// [`ReceiveHolder`] with that id (2 and up).
const LOCK_FREE: u32 = 0;
const LOCK_ONE_CALL: u32 = 1;

/// Ids of receive holders, never reused.
static NEXT_HOLDER_ID: AtomicU32 = AtomicU32::new(2);

/// Most keypairs a holder keeps locked at once; past that it locks per packet.
const HOLD_MAX: usize = 64;

/// A worker's hold on the replay windows of the keypairs it received on in the current batch.
///
/// Why: the replay window is updated by every packet (RFC 6479) and the keypair is shared by
/// every worker, so it needs a lock, and a lock per packet costs two locked instructions
/// (~14 ns on the machines measured). RSS sends one endpoint to one queue, so a keypair's
/// packets normally all reach one worker: that worker takes the lock at the first packet of a
/// batch ([`Keypair::open_held`]), keeps it for the rest of the batch (a load and a compare
/// per packet) and gives every lock back in [`ReceiveHolder::release_all`] when the batch
/// ends. When the keypair's packets reach two workers (an endpoint that roamed to another
/// queue, or replayed copies from another source port), the second waits until the first
/// ends its batch: the window stays one, and correct, for any number of workers.
#[derive(Debug)]
pub struct ReceiveHolder {
    id: u32,
    held: Vec<Arc<Keypair>>,
}

impl Default for ReceiveHolder {
    fn default() -> Self {
        Self::new()
    }
}

impl ReceiveHolder {
    pub fn new() -> Self {
        ReceiveHolder {
            id: NEXT_HOLDER_ID.fetch_add(1, Ordering::Relaxed),
            held: Vec::with_capacity(HOLD_MAX),
        }
    }

    /// Gives back every lock taken since the last call (the end of a batch). A holder that is
    /// dropped gives them back too.
    pub fn release_all(&mut self) {
        for k in self.held.drain(..) {
            k.receive.0.lock.store(LOCK_FREE, Ordering::Release);
        }
    }

    /// Keypairs locked now.
    pub fn holding(&self) -> usize {
        self.held.len()
    }
}

impl Drop for ReceiveHolder {
    fn drop(&mut self) {
        self.release_all();
    }
}

/// Sending counters a worker takes from one keypair at a time, with one atomic add.
pub const SEND_BLOCK: u64 = 16;

/// Most keypairs a worker holds counter blocks of; past that the oldest block is given up.
const SEND_BLOCKS_MAX: usize = 8;

/// A worker's blocks of sending counters for the current batch.
///
/// Why: the sending counter is shared by every worker that seals for the peer, and an atomic
/// add per packet is a locked instruction on a line those workers all write. A worker takes
/// [`SEND_BLOCK`] counters at once and uses them in order; at the end of the batch
/// ([`SendBlocks::release_all`]) what is left of each block is skipped, never used. Each
/// counter still goes to one message only (no nonce is ever reused); the peer sees gaps in the
/// counters, which its replay window accepts like loss, and, with several workers sealing for
/// one peer, counters out of order by less than `SEND_BLOCK` x workers, far inside the
/// 8128-message window.
#[derive(Debug, Default)]
pub struct SendBlocks {
    /// Keypair, next counter, end of its block. The `Arc` keeps the keypair (and so the
    /// meaning of the block) alive until the blocks are released.
    blocks: Vec<(Arc<Keypair>, u64, u64)>,
}

impl SendBlocks {
    pub fn new() -> Self {
        SendBlocks {
            blocks: Vec::with_capacity(SEND_BLOCKS_MAX),
        }
    }

    /// The next counter of `k`'s block, taking a new block when there is none or it is used up.
    #[inline]
    fn next(&mut self, k: &Arc<Keypair>) -> Result<u64, SealError> {
        let i = match self.blocks.iter().position(|(b, _, _)| Arc::ptr_eq(b, k)) {
            Some(i) => i,
            None => {
                if self.blocks.len() == SEND_BLOCKS_MAX {
                    self.blocks.remove(0);
                }
                self.blocks.push((k.clone(), 0, 0));
                self.blocks.len() - 1
            }
        };
        let (_, next, end) = &mut self.blocks[i];
        if *next == *end {
            let r = k.reserve_counters(SEND_BLOCK)?;
            (*next, *end) = (r.start, r.end);
        }
        *next += 1;
        Ok(*next - 1)
    }

    /// Gives up the rest of every block (the end of a batch).
    pub fn release_all(&mut self) {
        self.blocks.clear();
    }
}

/// The replay window and the lock that gives one updater at a time.
struct ReceiveState {
    /// [`LOCK_FREE`], [`LOCK_ONE_CALL`] or a holder's id. Acquired with a compare-exchange
    /// (Acquire), given back with a store (Release): the window's relaxed updates happen
    /// inside.
    lock: AtomicU32,
    window: ReplayWindow,
}

impl ReceiveState {
    /// Takes the lock for `who`, retrying up to [`RECEIVE_LOCK_SPINS`] times.
    fn acquire(&self, who: u32) -> Result<(), OpenError> {
        for _ in 0..RECEIVE_LOCK_SPINS {
            if self
                .lock
                .compare_exchange_weak(LOCK_FREE, who, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(());
            }
            std::hint::spin_loop();
        }
        Err(OpenError::ReplayWindowBusy)
    }
}

/// Keeps a hot shared field on its own cache line: the send counter is written by every
/// worker that encrypts for this peer and the replay window by every worker that decrypts, so
/// they must not share a line with each other or with the read-only fields.
#[repr(align(64))]
struct CacheLine<T>(T);

/// The transport keys of one session, shared by the slow path and the workers.
pub struct Keypair {
    peer: PeerId,
    local_index: u32,
    remote_index: u32,
    is_initiator: bool,
    created: Timestamp,
    sending_key: Zeroizing<[u8; KEY_LEN]>,
    receiving_key: Zeroizing<[u8; KEY_LEN]>,
    next_send_counter: CacheLine<AtomicU64>,
    receive: CacheLine<ReceiveState>,
    /// Set once by the slow path, read by the workers on every open: it shares the line of the
    /// read-only fields, which is fine for a flag written once (a per-packet write there would
    /// not be).
    receipt_noted: AtomicBool,
    retired: AtomicBool,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keypair")
            .field("peer", &self.peer)
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("is_initiator", &self.is_initiator)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl Keypair {
    /// The keypair of a session that completed at `now`.
    pub fn new(peer: PeerId, keys: &SessionKeys, now: Timestamp) -> Self {
        Keypair {
            peer,
            local_index: keys.local_index,
            remote_index: keys.remote_index,
            is_initiator: keys.is_initiator,
            created: now,
            sending_key: Zeroizing::new(keys.sending_key),
            receiving_key: Zeroizing::new(keys.receiving_key),
            next_send_counter: CacheLine(AtomicU64::new(0)),
            receive: CacheLine(ReceiveState {
                lock: AtomicU32::new(LOCK_FREE),
                window: ReplayWindow::new(),
            }),
            receipt_noted: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        }
    }

    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// Our index: transport messages to us carry it as receiver index.
    pub fn local_index(&self) -> u32 {
        self.local_index
    }

    /// The peer's index, written into the messages we send.
    pub fn remote_index(&self) -> u32 {
        self.remote_index
    }

    pub fn is_initiator(&self) -> bool {
        self.is_initiator
    }

    pub fn created(&self) -> Timestamp {
        self.created
    }

    /// Messages sealed so far (the next sending counter).
    pub fn messages_sent(&self) -> u64 {
        self.next_send_counter.0.load(Ordering::Relaxed)
    }

    /// Whether the device was told of a message accepted on this keypair (key confirmation
    /// happened).
    pub fn has_received(&self) -> bool {
        self.receipt_noted.load(Ordering::Relaxed)
    }

    /// The device learned that a message was accepted on this keypair: workers stop reporting
    /// its packets as [`Opened::unreported`].
    pub fn note_receipt(&self) {
        if !self.receipt_noted.load(Ordering::Relaxed) {
            self.receipt_noted.store(true, Ordering::Relaxed);
        }
    }

    /// Marks the keypair dead: workers still holding an `Arc` to it refuse to use it. The slow
    /// path calls this when the keypair leaves its slots, so a stale table entry is harmless.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Past REJECT_AFTER_TIME or retired: no message may be sealed or opened with it.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.is_retired() || now.since(self.created) >= REJECT_AFTER_TIME
    }

    /// Encrypts in place. On entry `buf[16..16 + plaintext_len]` holds the plaintext (the first
    /// 16 bytes are headroom for the header); `buf` must have room for the padding and the tag
    /// ([`sealed_len`]). On success `buf[..len]` is the transport message.
    pub fn seal_in_place(
        &self,
        now: Timestamp,
        buf: &mut [u8],
        plaintext_len: usize,
        mtu: usize,
    ) -> Result<Sealed, SealError> {
        let needed = self.check_seal(now, buf, plaintext_len, mtu)?;
        let counter = self.reserve_counters(1)?.start;
        Ok(self.seal_with(counter, now, buf, plaintext_len, needed))
    }

    /// [`Keypair::seal_in_place`] for a worker: the nonce comes from a block of
    /// [`SEND_BLOCK`] counters `blocks` took from this keypair with one atomic add and keeps
    /// until its [`SendBlocks::release_all`] (the end of the batch).
    pub fn seal_held(
        self: &Arc<Self>,
        now: Timestamp,
        buf: &mut [u8],
        plaintext_len: usize,
        mtu: usize,
        blocks: &mut SendBlocks,
    ) -> Result<Sealed, SealError> {
        let needed = self.check_seal(now, buf, plaintext_len, mtu)?;
        let counter = blocks.next(self)?;
        Ok(self.seal_with(counter, now, buf, plaintext_len, needed))
    }

    /// Expiry and room: the sealed length, or why not.
    #[inline]
    fn check_seal(
        &self,
        now: Timestamp,
        buf: &[u8],
        plaintext_len: usize,
        mtu: usize,
    ) -> Result<usize, SealError> {
        if self.is_expired(now) {
            return Err(SealError::Expired);
        }
        let needed = sealed_len(plaintext_len, mtu);
        if buf.len() < needed {
            return Err(SealError::BufferTooSmall {
                needed,
                available: buf.len(),
            });
        }
        Ok(needed)
    }

    /// Takes the next `n` sending counters (fewer if REJECT_AFTER_MESSAGES comes first). Every
    /// counter is handed out once: no two messages under this key share a nonce.
    fn reserve_counters(&self, n: u64) -> Result<Range<u64>, SealError> {
        let first = self.next_send_counter.0.fetch_add(n, Ordering::Relaxed);
        if first >= REJECT_AFTER_MESSAGES {
            // Keep the counter pinned so it can never wrap back to a used nonce.
            self.next_send_counter
                .0
                .store(REJECT_AFTER_MESSAGES, Ordering::Relaxed);
            return Err(SealError::CounterExhausted);
        }
        Ok(first..first.saturating_add(n).min(REJECT_AFTER_MESSAGES))
    }

    /// Seals with `counter` (checked by [`Keypair::check_seal`], reserved for this message).
    #[inline]
    fn seal_with(
        &self,
        counter: u64,
        now: Timestamp,
        buf: &mut [u8],
        plaintext_len: usize,
        needed: usize,
    ) -> Sealed {
        let padded = needed - TRANSPORT_HEADER_LEN - AEAD_TAG_LEN;
        let (header, rest) = buf.split_at_mut(TRANSPORT_HEADER_LEN);
        TransportPacket::new_unchecked(header).fill_header(self.remote_index, counter);
        rest[plaintext_len..padded].fill(0);
        let (body, tail) = rest.split_at_mut(padded);
        let tag = crypto::aead_seal_in_place(&self.sending_key, counter, &[], body);
        tail[..AEAD_TAG_LEN].copy_from_slice(&tag);
        let rekey = counter >= REKEY_AFTER_MESSAGES
            || (self.is_initiator && now.since(self.created) >= REKEY_AFTER_TIME);
        Sealed {
            len: needed,
            counter,
            rekey,
        }
    }

    /// Authenticates and decrypts the transport message `buf` in place, then (only if the tag
    /// verified) checks and records its counter in the replay window (§5.4.6, RFC 6479). When
    /// the tag does not verify, the bytes after the header (ciphertext and tag) are zeroed: no
    /// unauthenticated plaintext is left in the buffer. Takes the receive lock for this call only; a worker
    /// uses [`Keypair::open_held`].
    pub fn open_in_place(&self, now: Timestamp, buf: &mut [u8]) -> Result<Opened, OpenError> {
        let msg = 0..buf.len();
        let (counter, plaintext) = self.authenticate(now, buf, msg, TRANSPORT_HEADER_LEN)?;
        let rx = &self.receive.0;
        rx.acquire(LOCK_ONE_CALL)?;
        let marked = rx.window.mark_exclusive(counter);
        rx.lock.store(LOCK_FREE, Ordering::Release);
        marked.map_err(OpenError::Replay)?;
        Ok(self.opened(now, counter, plaintext))
    }

    /// [`Keypair::open_in_place`] for a worker: the receive lock is taken once and kept by
    /// `holder` until its [`ReceiveHolder::release_all`] (the end of the batch).
    pub fn open_held(
        self: &Arc<Self>,
        now: Timestamp,
        buf: &mut [u8],
        holder: &mut ReceiveHolder,
    ) -> Result<Opened, OpenError> {
        let msg = 0..buf.len();
        self.open_held_at(now, buf, msg, TRANSPORT_HEADER_LEN, holder)
    }

    /// [`Keypair::open_held`] for the transport message at `buf[msg]`, with the plaintext
    /// written to `buf[to..]` in the same pass as it is decrypted (`to` at or before the
    /// ciphertext's start, `msg.start + 16`; a later `to` is taken as that start, in place).
    /// Why: the worker decrypts a forwarded packet straight to the place it is transmitted
    /// from, instead of moving it there afterwards. [`Opened::plaintext`] is a range of `buf`.
    /// When the tag does not verify, `buf[to..msg.end]` is zeroed (the header bytes the
    /// plaintext overwrote included); a `msg` outside `buf` is [`OpenError::TooShort`].
    pub fn open_held_at(
        self: &Arc<Self>,
        now: Timestamp,
        buf: &mut [u8],
        msg: Range<usize>,
        to: usize,
        holder: &mut ReceiveHolder,
    ) -> Result<Opened, OpenError> {
        let (counter, plaintext) = self.authenticate(now, buf, msg, to)?;
        let rx = &self.receive.0;
        let marked = if rx.lock.load(Ordering::Relaxed) == holder.id {
            // Ours since an earlier packet of this batch (the load sees our own store).
            rx.window.mark_exclusive(counter)
        } else {
            rx.acquire(holder.id)?;
            let marked = rx.window.mark_exclusive(counter);
            if holder.held.len() < HOLD_MAX {
                holder.held.push(self.clone());
            } else {
                rx.lock.store(LOCK_FREE, Ordering::Release);
            }
            marked
        };
        marked.map_err(OpenError::Replay)?;
        Ok(self.opened(now, counter, plaintext))
    }

    /// Header checks, limits and the AEAD on the message at `buf[msg]`, decrypting to
    /// `buf[to..]` (see [`Keypair::open_held_at`]): the counter and where the plaintext is,
    /// once the tag verified.
    #[inline]
    fn authenticate(
        &self,
        now: Timestamp,
        buf: &mut [u8],
        msg: Range<usize>,
        to: usize,
    ) -> Result<(u64, Range<usize>), OpenError> {
        let Some(message) = buf.get(msg.clone()) else {
            return Err(OpenError::TooShort);
        };
        let header = match TransportPacket::new_checked(message) {
            Ok(h) => h,
            Err(WireError::Truncated) => return Err(OpenError::TooShort),
            Err(_) => return Err(OpenError::NotTransport),
        };
        if header.receiver_index() != self.local_index {
            return Err(OpenError::WrongReceiver);
        }
        if self.is_expired(now) {
            return Err(OpenError::Expired);
        }
        let counter = header.counter();
        if counter >= REJECT_AFTER_MESSAGES {
            return Err(OpenError::Replay(ReplayError::Exhausted));
        }
        // The header is read: from here the plaintext may overwrite it.
        let ciphertext = msg.start + TRANSPORT_HEADER_LEN;
        let to = to.min(ciphertext);
        let len = crypto::aead_open_within(
            &self.receiving_key,
            counter,
            &[],
            &mut buf[to..msg.end],
            ciphertext - to,
        )
        .map_err(|_| OpenError::AuthFailed)?;
        Ok((counter, to..to + len))
    }

    #[inline]
    fn opened(&self, now: Timestamp, counter: u64, plaintext: Range<usize>) -> Opened {
        // A load, not a swap: no write to a line every worker reads, per packet.
        let unreported = !self.receipt_noted.load(Ordering::Relaxed);
        let rekey = self.is_initiator && now.since(self.created) >= REKEY_ON_RECEIVE_AFTER_TIME;
        Opened {
            plaintext,
            counter,
            unreported,
            rekey,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::{KEEPALIVE_TIMEOUT, REKEY_TIMEOUT};
    use std::time::Duration;

    /// Two ends of one session with fixed keys.
    pub(crate) fn pair(now: Timestamp) -> (Keypair, Keypair) {
        let a = SessionKeys {
            local_index: 1,
            remote_index: 2,
            sending_key: [7; 32],
            receiving_key: [9; 32],
            is_initiator: true,
        };
        let b = SessionKeys {
            local_index: 2,
            remote_index: 1,
            sending_key: [9; 32],
            receiving_key: [7; 32],
            is_initiator: false,
        };
        (
            Keypair::new(PeerId::new(10), &a, now),
            Keypair::new(PeerId::new(20), &b, now),
        )
    }

    fn seal(k: &Keypair, now: Timestamp, payload: &[u8], mtu: usize) -> Result<Vec<u8>, SealError> {
        let mut buf = vec![0xAAu8; 16 + payload.len() + 64];
        buf[16..16 + payload.len()].copy_from_slice(payload);
        let s = k.seal_in_place(now, &mut buf, payload.len(), mtu)?;
        buf.truncate(s.len);
        Ok(buf)
    }

    #[test]
    fn round_trip_with_padding_and_header() {
        let t0 = Timestamp::from_nanos(1);
        let (a, b) = pair(t0);
        for (len, padded) in [
            (0usize, 0usize),
            (1, 16),
            (16, 16),
            (17, 32),
            (1419, 1420),
            (1420, 1420),
        ] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut msg = seal(&a, t0, &payload, 1420).unwrap();
            assert_eq!(msg.len(), 16 + padded + 16, "len {len}");
            assert_eq!(msg[..4], [4, 0, 0, 0]);
            assert_eq!(msg[4..8], 2u32.to_le_bytes());
            let opened = b.open_in_place(t0, &mut msg).unwrap();
            assert_eq!(opened.plaintext.len(), padded);
            assert_eq!(&msg[opened.plaintext.start..][..len], &payload[..]);
            assert!(msg[opened.plaintext.start + len..opened.plaintext.end]
                .iter()
                .all(|&x| x == 0));
        }
    }

    #[test]
    fn padding_rule() {
        assert_eq!(padding_len(0, 1420), 0);
        assert_eq!(padding_len(1, 1420), 15);
        assert_eq!(padding_len(1415, 1420), 5); // capped at the MTU, not rounded to 1424
        assert_eq!(padding_len(1500, 1420), 0); // 80 % 16 == 0
        assert_eq!(padding_len(1501, 1420), 15);
        assert_eq!(padding_len(5, 0), 11);
    }

    #[test]
    fn counters_increase_and_replays_are_refused_after_auth() {
        let t0 = Timestamp::from_nanos(1);
        let (a, b) = pair(t0);
        let m0 = seal(&a, t0, b"zero", 1420).unwrap();
        let m1 = seal(&a, t0, b"one", 1420).unwrap();
        assert_eq!(m0[8..16], 0u64.to_le_bytes());
        assert_eq!(m1[8..16], 1u64.to_le_bytes());
        let first = b.open_in_place(t0, &mut m1.clone()).unwrap();
        assert!(first.unreported);
        // Until the device notes the receipt, every packet says so (a lost report is retried).
        let mut m0b = m0.clone();
        assert!(b.open_in_place(t0, &mut m0b).unwrap().unreported);
        b.note_receipt();
        assert!(b.has_received());
        let m3 = seal(&a, t0, b"three", 1420).unwrap();
        assert!(!b.open_in_place(t0, &mut m3.clone()).unwrap().unreported);
        assert_eq!(
            b.open_in_place(t0, &mut m0.clone()),
            Err(OpenError::Replay(ReplayError::Duplicate))
        );
        assert_eq!(
            b.open_in_place(t0, &mut m1.clone()),
            Err(OpenError::Replay(ReplayError::Duplicate))
        );
        // A forged counter with a bad tag must not mark the window: the real packet with that
        // counter still gets through afterwards.
        let m2 = seal(&a, t0, b"two", 1420).unwrap();
        let mut forged = m2.clone();
        forged[20] ^= 1;
        assert_eq!(b.open_in_place(t0, &mut forged), Err(OpenError::AuthFailed));
        assert!(b.open_in_place(t0, &mut m2.clone()).is_ok());
    }

    #[test]
    fn failed_open_leaves_no_plaintext() {
        let t0 = Timestamp::from_nanos(1);
        let (a, b) = pair(t0);
        let payload = [0x42u8; 48];
        let msg = seal(&a, t0, &payload, 1420).unwrap();
        // A flipped tag bit: the ciphertext is intact, so a decrypt-then-verify cipher would
        // have produced the whole real plaintext before refusing.
        let mut forged = msg.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(b.open_in_place(t0, &mut forged), Err(OpenError::AuthFailed));
        let body = &forged[16..forged.len() - 16];
        assert!(
            body.iter().all(|&x| x == 0),
            "body after failed open: {body:?}"
        );
        // Header and tag are not secret and stay; the real packet still opens.
        assert_eq!(forged[..16], msg[..16]);
        assert_eq!(b.open_in_place(t0, &mut msg.clone()).unwrap().counter, 0);
    }

    /// `msg` at `at` in a frame-sized buffer whose other bytes are `fill`.
    fn in_frame(msg: &[u8], at: usize, fill: u8) -> Vec<u8> {
        let mut frame = vec![fill; at + msg.len() + 40];
        frame[at..at + msg.len()].copy_from_slice(msg);
        frame
    }

    #[test]
    fn open_at_writes_the_plaintext_where_asked() {
        let t0 = Timestamp::from_nanos(1);
        let (a, b) = pair(t0);
        let b = Arc::new(b);
        let mut holder = ReceiveHolder::new();
        let payload: Vec<u8> = (0..100u8).collect();
        // Before the message, at its start, inside its header, at the ciphertext (in place).
        for (n, to) in [(0u64, 300usize), (1, 350), (2, 358), (3, 366)] {
            let msg = seal(&a, t0, &payload, 1420).unwrap();
            assert_eq!(
                u64::from_le_bytes(msg[8..16].try_into().unwrap()),
                n,
                "one counter per message"
            );
            let mut frame = in_frame(&msg, 350, 0xEE);
            let range = 350..350 + msg.len();
            let opened = b
                .open_held_at(t0, &mut frame, range.clone(), to, &mut holder)
                .unwrap();
            assert_eq!(opened.counter, n);
            assert_eq!(opened.plaintext, to..to + msg.len() - 32);
            assert_eq!(frame[to..to + payload.len()], payload[..]);
            // Padding zeroed as sealed; nothing before `to` touched.
            assert!(frame[to + payload.len()..opened.plaintext.end]
                .iter()
                .all(|&x| x == 0));
            let before = to.min(350);
            assert!(frame[..before].iter().all(|&x| x == 0xEE));
            assert_eq!(frame[before..to], msg[..to - before], "header bytes kept");
            holder.release_all();
        }
        // Past the ciphertext's start is taken as in place; a message outside the buffer is
        // refused, not a panic.
        let msg = seal(&a, t0, &payload, 1420).unwrap();
        let mut frame = in_frame(&msg, 50, 0);
        let opened = b
            .open_held_at(t0, &mut frame, 50..50 + msg.len(), 4000, &mut holder)
            .unwrap();
        assert_eq!(opened.plaintext.start, 66);
        assert_eq!(frame[66..166], payload[..]);
        let mut short = vec![0u8; 40];
        assert_eq!(
            b.open_held_at(t0, &mut short, 10..60, 0, &mut holder),
            Err(OpenError::TooShort)
        );
        holder.release_all();
    }

    #[test]
    fn open_at_checks_replay_after_authentication_and_clears_failures() {
        let t0 = Timestamp::from_nanos(1);
        let (a, b) = pair(t0);
        let b = Arc::new(b);
        let mut holder = ReceiveHolder::new();
        let msg = seal(&a, t0, &[0x42u8; 80], 1420).unwrap();
        let range = 300..300 + msg.len();
        // A forged copy first: refused, and it must not burn the counter.
        let mut forged = in_frame(&msg, 300, 0xEE);
        forged[range.end - 1] ^= 1;
        assert_eq!(
            b.open_held_at(t0, &mut forged, range.clone(), 270, &mut holder),
            Err(OpenError::AuthFailed)
        );
        // Everything from `to` to the message's end is cleared (plaintext, the header it
        // overwrote, the ciphertext's shifted tail, the tag); what is before `to` is as it was.
        assert!(forged[270..range.end].iter().all(|&x| x == 0));
        assert!(forged[..270].iter().all(|&x| x == 0xEE));
        let mut frame = in_frame(&msg, 300, 0xEE);
        assert!(b
            .open_held_at(t0, &mut frame, range.clone(), 270, &mut holder)
            .is_ok());
        let mut again = in_frame(&msg, 300, 0xEE);
        assert_eq!(
            b.open_held_at(t0, &mut again, range, 270, &mut holder),
            Err(OpenError::Replay(ReplayError::Duplicate))
        );
        holder.release_all();
    }

    #[test]
    fn malformed_messages_are_errors() {
        let t0 = Timestamp::from_nanos(1);
        let (a, b) = pair(t0);
        let msg = seal(&a, t0, b"x", 1420).unwrap();
        assert_eq!(
            b.open_in_place(t0, &mut msg.clone()[..31]),
            Err(OpenError::TooShort)
        );
        let mut wrong_type = msg.clone();
        wrong_type[0] = 1;
        assert_eq!(
            b.open_in_place(t0, &mut wrong_type),
            Err(OpenError::NotTransport)
        );
        let mut reserved = msg.clone();
        reserved[3] = 1;
        assert_eq!(
            b.open_in_place(t0, &mut reserved),
            Err(OpenError::NotTransport)
        );
        assert_eq!(
            a.open_in_place(t0, &mut msg.clone()),
            Err(OpenError::WrongReceiver)
        );
        let mut truncated = msg.clone();
        truncated.truncate(40);
        assert_eq!(
            b.open_in_place(t0, &mut truncated),
            Err(OpenError::AuthFailed)
        );
        let mut big = vec![0u8; 20];
        assert!(matches!(
            a.seal_in_place(t0, &mut big, 4, 1420),
            Err(SealError::BufferTooSmall {
                needed: 48,
                available: 20
            })
        ));
        // A refused seal does not consume a counter.
        assert_eq!(a.messages_sent(), 1);
    }

    #[test]
    fn time_limits_and_rekey_flags() {
        let t0 = Timestamp::from_nanos(1);
        let (a, b) = pair(t0);
        let just_before = t0 + REKEY_AFTER_TIME - Duration::from_nanos(1);
        let mut buf = [0u8; 64];
        assert!(
            !a.seal_in_place(just_before, &mut buf, 0, 1420)
                .unwrap()
                .rekey
        );
        // The initiator wants a rekey at REKEY_AFTER_TIME when sending; the responder never does.
        let at_rekey = t0 + REKEY_AFTER_TIME;
        let mut m = [0u8; 64];
        assert!(a.seal_in_place(at_rekey, &mut m, 0, 1420).unwrap().rekey);
        assert!(!b.seal_in_place(at_rekey, &mut buf, 0, 1420).unwrap().rekey);
        // Receiving: the responder's open never asks; the initiator's asks after 165 s.
        let last_minute = t0 + (REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT);
        assert!(
            !b.open_in_place(last_minute, &mut m[..32].to_vec())
                .unwrap()
                .rekey
        );
        let mut from_b = [0u8; 64];
        b.seal_in_place(t0, &mut from_b, 0, 1420).unwrap();
        assert!(
            !a.open_in_place(
                last_minute - Duration::from_nanos(1),
                &mut from_b[..32].to_vec()
            )
            .unwrap()
            .rekey
        );
        b.seal_in_place(t0, &mut from_b, 0, 1420).unwrap();
        assert!(
            a.open_in_place(last_minute, &mut from_b[..32].to_vec())
                .unwrap()
                .rekey
        );
        // At REJECT_AFTER_TIME both directions refuse.
        let dead = t0 + REJECT_AFTER_TIME;
        assert_eq!(
            a.seal_in_place(dead, &mut buf, 0, 1420),
            Err(SealError::Expired)
        );
        b.seal_in_place(t0, &mut from_b, 0, 1420).unwrap();
        assert_eq!(
            a.open_in_place(dead, &mut from_b[..32]),
            Err(OpenError::Expired)
        );
    }

    #[test]
    fn message_limits() {
        let t0 = Timestamp::from_nanos(1);
        let (a, b) = pair(t0);
        let mut buf = [0u8; 64];
        a.next_send_counter
            .0
            .store(REKEY_AFTER_MESSAGES, Ordering::Relaxed);
        let s = b.seal_in_place(t0, &mut buf, 0, 1420).unwrap();
        assert!(!s.rekey);
        assert!(a.seal_in_place(t0, &mut buf, 0, 1420).unwrap().rekey);
        a.next_send_counter
            .0
            .store(REJECT_AFTER_MESSAGES - 1, Ordering::Relaxed);
        let last = a.seal_in_place(t0, &mut buf, 0, 1420).unwrap();
        assert_eq!(last.counter, REJECT_AFTER_MESSAGES - 1);
        assert_eq!(
            b.open_in_place(t0, &mut buf[..32]).map(|o| o.counter),
            Ok(REJECT_AFTER_MESSAGES - 1)
        );
        assert_eq!(
            a.seal_in_place(t0, &mut buf, 0, 1420),
            Err(SealError::CounterExhausted)
        );
        assert_eq!(
            a.seal_in_place(t0, &mut buf, 0, 1420),
            Err(SealError::CounterExhausted)
        );
        // A received counter at the limit is refused before any decryption.
        buf[8..16].copy_from_slice(&REJECT_AFTER_MESSAGES.to_le_bytes());
        assert_eq!(
            b.open_in_place(t0, &mut buf[..32]),
            Err(OpenError::Replay(ReplayError::Exhausted))
        );
    }

    #[test]
    fn retired_keypairs_refuse_work() {
        let t0 = Timestamp::from_nanos(1);
        let (a, b) = pair(t0);
        let mut m = [0u8; 64];
        a.seal_in_place(t0, &mut m, 0, 1420).unwrap();
        b.retire();
        assert_eq!(b.open_in_place(t0, &mut m[..32]), Err(OpenError::Expired));
        a.retire();
        assert_eq!(
            a.seal_in_place(t0, &mut m, 0, 1420),
            Err(SealError::Expired)
        );
    }

    proptest::proptest! {
        /// Arbitrary datagrams (biased to look like transport messages for this keypair) are
        /// errors, never panics, and never mark the replay window.
        #[test]
        fn open_rejects_arbitrary_bytes(mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
                                        header in proptest::prelude::any::<bool>()) {
            let t0 = Timestamp::from_nanos(1);
            let (a, b) = pair(t0);
            if header && bytes.len() >= 16 {
                bytes[..8].copy_from_slice(&[4, 0, 0, 0, 2, 0, 0, 0]);
                bytes[8..16].copy_from_slice(&0u64.to_le_bytes());
            }
            proptest::prop_assert!(b.open_in_place(t0, &mut bytes).is_err());
            // Counter 0 is still fresh afterwards.
            let msg = seal(&a, t0, b"ok", 1420).unwrap();
            proptest::prop_assert!(b.open_in_place(t0, &mut msg.clone()).is_ok());
        }
    }

    /// Two workers (two holders) receiving on one keypair share its one window: what one
    /// accepted is a replay for the other, and while one holds the window the other waits and
    /// then gives up on the packet instead of checking it against nothing.
    #[test]
    fn holders_share_one_window() {
        let t0 = Timestamp::from_nanos(1);
        let (a, b) = pair(t0);
        let b = Arc::new(b);
        let (mut w1, mut w2) = (ReceiveHolder::new(), ReceiveHolder::new());
        let m0 = seal(&a, t0, b"zero", 1420).unwrap();
        let m1 = seal(&a, t0, b"one", 1420).unwrap();
        assert_eq!(
            b.open_held(t0, &mut m0.clone(), &mut w1).unwrap().counter,
            0
        );
        assert_eq!(w1.holding(), 1);
        // Held through the batch: a second packet does not take the lock again.
        assert_eq!(
            b.open_held(t0, &mut m1.clone(), &mut w1).unwrap().counter,
            1
        );
        assert_eq!(w1.holding(), 1);
        assert_eq!(
            b.open_held(t0, &mut m0.clone(), &mut w1),
            Err(OpenError::Replay(ReplayError::Duplicate))
        );
        // Worker 1's batch is not over: worker 2 and a one-off call cannot check the counter.
        assert_eq!(
            b.open_held(t0, &mut m1.clone(), &mut w2),
            Err(OpenError::ReplayWindowBusy)
        );
        assert_eq!(
            b.open_in_place(t0, &mut m1.clone()),
            Err(OpenError::ReplayWindowBusy)
        );
        w1.release_all();
        assert_eq!(w1.holding(), 0);
        // The same window for worker 2: worker 1's packets are replays there too.
        assert_eq!(
            b.open_held(t0, &mut m1.clone(), &mut w2),
            Err(OpenError::Replay(ReplayError::Duplicate))
        );
        let m2 = seal(&a, t0, b"two", 1420).unwrap();
        assert_eq!(
            b.open_held(t0, &mut m2.clone(), &mut w2).unwrap().counter,
            2
        );
        drop(w2); // gives the lock back
        assert_eq!(
            b.open_in_place(t0, &mut m2.clone()),
            Err(OpenError::Replay(ReplayError::Duplicate))
        );
        assert_eq!(b.open_in_place(t0, &mut m1.clone()).ok(), None);
    }

    /// Every message delivered to two concurrent workers (a replay of each on another queue):
    /// each counter is accepted at most once in all, whatever the interleaving.
    #[test]
    fn concurrent_holders_accept_each_counter_once() {
        let t0 = Timestamp::from_nanos(1);
        let (a, b) = pair(t0);
        let b = Arc::new(b);
        let msgs: Arc<Vec<Vec<u8>>> = Arc::new(
            (0..2000)
                .map(|_| seal(&a, t0, b"x", 1420).unwrap())
                .collect(),
        );
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (b, msgs) = (b.clone(), msgs.clone());
                std::thread::spawn(move || {
                    let mut holder = ReceiveHolder::new();
                    let mut accepted = Vec::new();
                    for batch in msgs.chunks(16) {
                        for m in batch {
                            if let Ok(o) = b.open_held(t0, &mut m.clone(), &mut holder) {
                                accepted.push(o.counter);
                            }
                        }
                        holder.release_all();
                    }
                    accepted
                })
            })
            .collect();
        let mut all: Vec<u64> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a counter was accepted twice");
        assert!(n > 0);
    }

    /// Blocks of counters: in order within a batch, a gap after it, never a counter twice
    /// (with a one-off seal and a second worker in between), and the limit still holds.
    #[test]
    fn send_blocks_never_repeat_a_counter() {
        let t0 = Timestamp::from_nanos(1);
        let (a, b) = pair(t0);
        let a = Arc::new(a);
        let (mut w1, mut w2) = (SendBlocks::new(), SendBlocks::new());
        let seal_held = |blocks: &mut SendBlocks| {
            let mut buf = [0u8; 64];
            let s = a.seal_held(t0, &mut buf, 0, 1420, blocks).unwrap();
            (s.counter, buf)
        };
        let mut counters = Vec::new();
        for _ in 0..3 {
            counters.push(seal_held(&mut w1).0);
        }
        assert_eq!(counters, [0, 1, 2]);
        counters.push(seal_held(&mut w2).0); // another worker: the next block
        let mut one_off = [0u8; 64];
        counters.push(a.seal_in_place(t0, &mut one_off, 0, 1420).unwrap().counter);
        counters.push(seal_held(&mut w1).0);
        w1.release_all(); // the rest of 0..16 is never used
        let (c, mut msg) = seal_held(&mut w1);
        counters.push(c);
        assert_eq!(counters, [0, 1, 2, 16, 32, 3, 33]);
        assert_eq!(b.open_in_place(t0, &mut msg[..32]).unwrap().counter, 33);
        let (c, mut msg) = seal_held(&mut w2);
        assert_eq!(c, 17);
        assert!(
            b.open_in_place(t0, &mut msg[..32]).is_ok(),
            "behind, inside the window"
        );

        a.next_send_counter
            .0
            .store(REJECT_AFTER_MESSAGES - 2, Ordering::Relaxed);
        let mut w3 = SendBlocks::new();
        let mut buf = [0u8; 64];
        let last: Vec<u64> = (0..2)
            .map(|_| a.seal_held(t0, &mut buf, 0, 1420, &mut w3).unwrap().counter)
            .collect();
        assert_eq!(last, [REJECT_AFTER_MESSAGES - 2, REJECT_AFTER_MESSAGES - 1]);
        assert_eq!(
            a.seal_held(t0, &mut buf, 0, 1420, &mut w3),
            Err(SealError::CounterExhausted)
        );
        assert_eq!(
            a.seal_held(t0, &mut buf, 0, 1420, &mut SendBlocks::new()),
            Err(SealError::CounterExhausted)
        );
    }

    /// Two workers sealing at once with blocks: every counter used once.
    #[test]
    fn concurrent_send_blocks_share_no_counter() {
        let t0 = Timestamp::from_nanos(1);
        let a = Arc::new(pair(t0).0);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || {
                    let mut blocks = SendBlocks::new();
                    let mut buf = [0u8; 64];
                    let mut used = Vec::new();
                    for batch in 0..200 {
                        for _ in 0..(batch % 40) {
                            let s = a.seal_held(t0, &mut buf, 0, 1420, &mut blocks).unwrap();
                            used.push(s.counter);
                        }
                        blocks.release_all();
                    }
                    used
                })
            })
            .collect();
        let mut all: Vec<u64> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a counter was used twice");
    }

    #[test]
    fn keypair_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Keypair>();
    }
}
