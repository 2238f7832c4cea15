//! The operator's side of packet capture: the control socket's [`session`] that drains the
//! workers' capture rings (`fastpath::capture`) into a pcap stream, and the client's
//! [`splitter`] that cuts that stream into whole records.

pub mod session;
pub mod splitter;

pub use session::{CaptureAccepted, CaptureRequest, CaptureSession};
