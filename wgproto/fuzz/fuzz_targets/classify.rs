//! Any datagram through the classifier and every accessor of the view it yields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgproto::messages::{classify, Message, TransportHeader};

fuzz_target!(|data: &[u8]| {
    match classify(data) {
        Ok(Message::Initiation(m)) => {
            let _ = (m.sender_index(), m.ephemeral(), m.encrypted_static());
            let _ = (m.encrypted_timestamp(), m.mac1(), m.mac2());
        }
        Ok(Message::Response(m)) => {
            let _ = (m.sender_index(), m.receiver_index(), m.ephemeral());
            let _ = (m.encrypted_nothing(), m.mac1(), m.mac2());
        }
        Ok(Message::CookieReply(m)) => {
            let _ = (m.receiver_index(), m.nonce(), m.encrypted_cookie());
        }
        Ok(Message::Transport(m)) => {
            let _ = (m.receiver_index(), m.counter(), m.payload());
        }
        Err(_) => {}
    }
    if let Ok(t) = TransportHeader::new_checked(data) {
        assert!(t.payload().len() >= 16);
    }
});
