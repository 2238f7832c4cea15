//! The kernel routing and neighbour tables, read through netlink.
