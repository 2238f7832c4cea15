//! AF_XDP sockets and UMEM (owned by the AF_XDP I/O edge).
