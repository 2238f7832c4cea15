//! Built-in source NAT (conntrack), sans-IO.
