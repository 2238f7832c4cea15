//! The XDP program: loading, attaching, its maps.
