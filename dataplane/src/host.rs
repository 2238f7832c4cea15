//! The facts of the running host that a config is checked against: `gwconf::HostFacts` with
//! the interface names read from the kernel through rtnetlink (in the caller's network
//! namespace, as the gateway will see them).

use gwconf::HostFacts;

use crate::route::Rtnl;

/// Reads the host's facts; an interface list that cannot be read skips the interface checks.
pub fn facts() -> HostFacts {
    let interfaces = Rtnl::open()
        .and_then(|mut nl| nl.links())
        .ok()
        .map(|links| links.into_iter().map(|l| l.name).collect());
    HostFacts::read(interfaces)
}
