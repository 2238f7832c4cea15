// SPDX-License-Identifier: MIT OR GPL-2.0-only
// (dual-licensed so that the kernel sees a GPL-compatible program; the Rust crate is MIT OR Apache-2.0)
//
// The gateway's XDP program: decides, per received frame, whether the AF_XDP socket of the
// frame's rx queue takes it (WireGuard UDP for the listen port, and NAT return traffic) or the
// kernel does (ARP, SSH to the gateway, the host's own traffic, anything not understood).
//
// It never modifies a frame and drops only frames longer than the MTU (which nobody can take,
// see to_socket): a frame it cannot parse goes to the kernel, which is the fallback for
// everything (DESIGN.md, "The kernel is the fallback, not the path").
//
// Layouts shared with Rust (struct dp_config, enum dp_counter) are mirrored in
// src/xdp/maps.rs; the loader checks the map sizes against the Rust types at load time.
//
// Built by build.rs with `clang -target bpf -O2 -g`; only <linux/bpf.h> is needed (the few
// libbpf conventions used are declared below so that no libbpf-dev headers are required).

#include <linux/bpf.h>
#include <linux/types.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define INLINE static __attribute__((always_inline)) inline

// BPF helper calls by number (include/uapi/linux/bpf.h, enum bpf_func_id).
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;
static __u64 (*bpf_xdp_get_buff_len)(struct xdp_md *ctx) = (void *)BPF_FUNC_xdp_get_buff_len;
static long (*bpf_xdp_load_bytes)(struct xdp_md *ctx, __u32 offset, void *buf, __u32 len) =
    (void *)BPF_FUNC_xdp_load_bytes;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) =
    (void *)BPF_FUNC_map_update_elem;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;

char LICENSE[] SEC("license") = "Dual MIT/GPL";

// Wire constants, network byte order where compared against packet fields. The program is only
// built for little-endian BPF (the host's byte order on x86-64 and arm64).
#define ETH_HLEN 14
#define ETH_P_IP_BE 0x0008     /* htons(0x0800) */
#define ETH_P_IPV6_BE 0xDD86   /* htons(0x86DD) */
#define ETH_P_8021Q_BE 0x0081  /* htons(0x8100) */
#define ETH_P_8021AD_BE 0xA888 /* htons(0x88A8) */
#define IP_MF_OFFSET_BE 0xFF3F /* htons(0x3FFF): more-fragments flag and fragment offset */
#define IP_OFFSET_BE 0xFF1F    /* htons(0x1FFF): fragment offset */
#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58
#define BSWAP16(x) ((__u16)((((x) & 0xff) << 8) | (((x) >> 8) & 0xff)))

// Mirrors `RedirectConfig` in src/xdp/maps.rs (repr(C)). Ports are in host byte order,
// addresses in network byte order.
struct dp_config {
    __u16 listen_port;    // WireGuard UDP port; 0 = no WireGuard redirect
    __u16 nat_port_low;   // NAT port / ICMP id range, inclusive
    __u16 nat_port_high;  // low > high = no NAT redirect
    __u8 nat_v4_enabled;  // nat_v4_addr is set
    __u8 nat_v6_enabled;  // nat_v6_addr is set
    __u8 listen_addr_filter; // 1 = WireGuard only to addresses in `listen_addrs`
    __u8 mac_filter;      // 1 = only frames to `local_mac` go to the sockets
    __u16 max_frame_len;  // longest frame the workers take (MTU + Ethernet header); 0 = any
    __u32 nat_v4_addr;
    __u8 nat_v6_addr[16];
    __u8 local_mac[6];    // the interface's own address
    __u8 pad[2];
};

// Why a frame went where it went. Mirrors `XdpCounter` in src/xdp/maps.rs.
enum dp_counter {
    DP_REDIRECT_WIREGUARD = 0,
    DP_REDIRECT_NAT_RETURN = 1,
    DP_PASS_NO_SOCKET = 2,   // matched, but no AF_XDP socket on this queue
    DP_PASS_NOT_IP = 3,      // ARP, LLDP, ...
    DP_PASS_TRUNCATED = 4,   // headers shorter than they claim
    DP_PASS_FRAGMENT = 5,    // fragments not of NAT return traffic / IPv6 extension headers
    DP_PASS_NOT_OURS = 6,    // well-formed IP that is not ours to take (host traffic)
    DP_PASS_VLAN = 7,        // 802.1Q/802.1ad tagged: the pipeline does not parse tags
    DP_DROP_OVERSIZED = 8,   // ours, but longer than the MTU: merged by GRO/LRO/GSO
    DP_PASS_NAT_UNMAPPED = 9, // to a NAT port / echo id no mapping holds: the host's own traffic
    DP_REDIRECT_NAT_FRAGMENT = 10, // a later fragment of a datagram whose first was taken
    DP_PASS_OTHER_HOST = 11, // ours by address and port, but the frame is for another MAC
    DP_NR_COUNTERS = 12,
};

// One AF_XDP socket per rx queue, inserted by the Rust side (AF_XDP sockets are looked up by
// ctx->rx_queue_index, Documentation/networking/af_xdp.rst "XSKMAP / BPF_MAP_TYPE_XSKMAP").
struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 256);
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct dp_config);
} config_map SEC(".maps");

// The NAT's live mappings, one bit per (protocol, external port or echo id): bit `port % 64`
// of word `proto * 1024 + port / 64`, protocol 0 = TCP, 1 = UDP, 2 = ICMP of the IPv4 NAT,
// 3 = TCP, 4 = UDP, 5 = ICMPv6 of the IPv6 NAT (the two NATs hold ports independently). The
// workers set a bit when they create a mapping and clear it when they remove it, through a
// shared mmap of this map (src/xdp/live_ports.rs); traffic to a port in the NAT range that no
// mapping holds is the host's own (its pings, a service listening there) and goes to the kernel.
#define LIVE_PORT_WORDS (6 * 65536 / 64)
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, LIVE_PORT_WORDS);
    __type(key, __u32);
    __type(value, __u64);
} live_ports SEC(".maps");

// Datagrams of NAT return traffic that arrive in fragments, by what names a datagram (RFC 791:
// source, destination, protocol, identification). The first fragment alone carries the port or
// echo id; when it goes to a worker, its datagram is recorded here so that the later fragments
// follow it (the NAT translates them by the chain it remembers, nat/src/fragments.rs). The value
// is when the first fragment was seen: a record older than Linux's ipfrag_time no longer takes
// fragments, so an IP ID that comes round again is the host's. Least recently used records are
// evicted when the map is full: memory is fixed at load, and a datagram whose record was evicted
// loses its later fragments to the kernel, which cannot reassemble them without the first.
#define FRAGMENT_CHAINS 4096
#define FRAGMENT_TIMEOUT_NS (30ULL * 1000 * 1000 * 1000)
struct frag_key {
    __u32 saddr;
    __u32 daddr;
    __u16 id;
    __u8 protocol;
    __u8 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, FRAGMENT_CHAINS);
    __type(key, struct frag_key);
    __type(value, __u64);
} nat_fragments SEC(".maps");

// Gateway addresses WireGuard listens on, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d).
struct addr_key {
    __u8 addr[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, struct addr_key);
    __type(value, __u8);
} listen_addrs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, DP_NR_COUNTERS);
    __type(key, __u32);
    __type(value, __u64);
} counters_map SEC(".maps");

INLINE void count(__u32 reason)
{
    __u64 *c = bpf_map_lookup_elem(&counters_map, &reason);
    if (c)
        *c += 1; // per-CPU slot: no atomics needed
}

INLINE int pass(__u32 reason)
{
    count(reason);
    return XDP_PASS;
}

// Whether the frame is addressed to the interface's own MAC. WireGuard and NAT return
// traffic are unicast to the gateway: a frame to another MAC (seen because the NIC is
// promiscuous: tcpdump, a bridge port) is another host's, which the kernel would discard as
// PACKET_OTHERHOST. It goes to the kernel, which decides; taking it would let a host on the
// segment make the gateway decrypt and answer traffic that was never sent to it.
INLINE int to_local_mac(const struct dp_config *cfg, const __u8 *dst)
{
    if (!cfg->mac_filter)
        return 1;
    const __u8 *mac = cfg->local_mac;
    return dst[0] == mac[0] && dst[1] == mac[1] && dst[2] == mac[2] && dst[3] == mac[3] &&
           dst[4] == mac[4] && dst[5] == mac[5];
}

INLINE int to_socket(struct xdp_md *ctx, const struct dp_config *cfg, __u32 reason)
{
    // Every redirect passes here: only frames that would be taken pay for the MAC compare.
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    if (data + ETH_HLEN > end)
        return pass(DP_PASS_TRUNCATED);
    if (!to_local_mac(cfg, data))
        return pass(DP_PASS_OTHER_HOST);
    // A frame longer than the MTU was merged before XDP saw it (GRO in generic mode, GSO
    // from a veth peer in generic mode, LRO): a worker can neither fit it in a UMEM frame nor
    // re-segment it, and the kernel has no socket for it. Dropped here and counted by name,
    // so the operator learns which offload to turn off (runtime.rs logs it once).
    // The length through the helper: subtracting the packet pointers would need
    // CAP_PERFMON (pointer arithmetic), which the service does not have.
    if (cfg->max_frame_len && bpf_xdp_get_buff_len(ctx) > cfg->max_frame_len) {
        count(DP_DROP_OVERSIZED);
        return XDP_DROP;
    }
    // Low bits of flags = action when the queue has no socket: the kernel then sees the frame.
    long action = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
    count(action == XDP_REDIRECT ? reason : DP_PASS_NO_SOCKET);
    return action;
}

INLINE int in_nat_range(const struct dp_config *cfg, __u16 port_be)
{
    __u16 port = BSWAP16(port_be);
    return port >= cfg->nat_port_low && port <= cfg->nat_port_high;
}

// Index of a protocol in `live_ports`; -1 for protocols the NAT does not map.
INLINE int live_proto(__u8 protocol)
{
    return protocol == PROTO_TCP ? 0 : protocol == PROTO_UDP ? 1 : protocol == PROTO_ICMP ? 2 : -1;
}

// Index of an IPv6 next header in `live_ports`; -1 for what the NAT does not map.
INLINE int live_proto6(__u8 nexthdr)
{
    return nexthdr == PROTO_TCP ? 3 : nexthdr == PROTO_UDP ? 4 : nexthdr == PROTO_ICMPV6 ? 5 : -1;
}

// In the NAT range and held by a live mapping of `live_ports` protocol index `p`. Counts the
// host's own traffic in the range.
INLINE int nat_port_live_at(const struct dp_config *cfg, int p, __u16 port_be)
{
    if (!in_nat_range(cfg, port_be))
        return 0;
    if (p < 0)
        return 0;
    __u16 port = BSWAP16(port_be);
    __u32 word = (__u32)p * 1024 + port / 64;
    __u64 *bits = bpf_map_lookup_elem(&live_ports, &word);
    if (bits && (*bits >> (port % 64)) & 1)
        return 1;
    count(DP_PASS_NAT_UNMAPPED);
    return 0;
}

INLINE int nat_port_live(const struct dp_config *cfg, __u8 protocol, __u16 port_be)
{
    return nat_port_live_at(cfg, live_proto(protocol), port_be);
}

INLINE int nat6_port_live(const struct dp_config *cfg, __u8 nexthdr, __u16 port_be)
{
    return nat_port_live_at(cfg, live_proto6(nexthdr), port_be);
}

INLINE int listen_addr_ok(const struct dp_config *cfg, struct addr_key *key)
{
    if (!cfg->listen_addr_filter)
        return 1;
    return bpf_map_lookup_elem(&listen_addrs, key) != 0;
}

// Minimal header views: only the fields read here.
struct udp_ports {
    __u16 source;
    __u16 dest;
};

struct icmp_head {
    __u8 type;
    __u8 code;
    __u16 checksum;
    __u16 id; // echo identifier; for errors, unused/MTU bytes (RFC 792, RFC 4443)
    __u16 seq;
};

struct ipv4_head {
    __u8 ver_ihl;
    __u8 tos;
    __u16 tot_len;
    __u16 id;
    __u16 frag_off;
    __u8 ttl;
    __u8 protocol;
    __u16 check;
    __u32 saddr;
    __u32 daddr;
};

struct ipv6_head {
    __u32 ver_tc_flow;
    __u16 payload_len;
    __u8 nexthdr;
    __u8 hop_limit;
    __u8 saddr[16];
    __u8 daddr[16];
};

// Headers behind an IPv4 header sit at a variable offset (IHL: options). They are copied out
// with bpf_xdp_load_bytes at a scalar offset instead of read through `l3 + ihl`: adding a
// variable to a packet pointer is rejected by the verifier without CAP_PERFMON (Spectre v1
// sanitation), and the gateway is meant to run with CAP_BPF and CAP_NET_ADMIN only
// (SECURITY.md). Fails (non-zero) when the frame is shorter than `off + len`.
INLINE int load_at(struct xdp_md *ctx, __u32 off, void *to, __u32 len)
{
    return bpf_xdp_load_bytes(ctx, off, to, len) != 0;
}

// ICMP error about a packet the NAT sent: RFC 5508 section 7 says the embedded packet is ours
// (its source is the egress address and its source port / echo id one of the NAT's). `off` is
// the embedded IPv4 header's offset in the frame.
INLINE int icmp4_error_is_ours(struct xdp_md *ctx, const struct dp_config *cfg, __u32 off)
{
    struct ipv4_head ip;
    if (load_at(ctx, off, &ip, sizeof(ip)))
        return 0;
    if (ip.saddr != cfg->nat_v4_addr)
        return 0;
    __u32 ihl = (ip.ver_ihl & 0x0f) * 4;
    if (ihl < sizeof(ip))
        return 0;
    off += ihl;
    if (ip.protocol == PROTO_TCP || ip.protocol == PROTO_UDP) {
        struct udp_ports p;
        if (load_at(ctx, off, &p, sizeof(p)))
            return 0;
        return nat_port_live(cfg, ip.protocol, p.source);
    }
    if (ip.protocol == PROTO_ICMP) {
        struct icmp_head ic;
        if (load_at(ctx, off, &ic, sizeof(ic)))
            return 0;
        // The queries the NAT maps (wire::icmp::is_query_request): echo and timestamp.
        return (ic.type == 8 || ic.type == 13) && nat_port_live(cfg, PROTO_ICMP, ic.id);
    }
    return 0;
}

INLINE int addr16_eq(const __u8 *a, const __u8 *b)
{
    const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
    return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

INLINE int icmp6_error_is_ours(const struct dp_config *cfg, void *inner, void *end)
{
    struct ipv6_head *ip = inner;
    if ((void *)(ip + 1) > end)
        return 0;
    if (!addr16_eq(ip->saddr, cfg->nat_v6_addr))
        return 0;
    void *l4 = (void *)(ip + 1);
    if (ip->nexthdr == PROTO_TCP || ip->nexthdr == PROTO_UDP) {
        struct udp_ports *p = l4;
        if ((void *)(p + 1) > end)
            return 0;
        return nat6_port_live(cfg, ip->nexthdr, p->source);
    }
    if (ip->nexthdr == PROTO_ICMPV6) {
        struct icmp_head *ic = l4;
        if ((void *)(ic + 1) > end)
            return 0;
        return ic->type == 128 /* echo request */ && nat6_port_live(cfg, PROTO_ICMPV6, ic->id);
    }
    return 0;
}

// Whether an IPv4 packet to the NAT address (its L4 header at offset `l4`) is return traffic of
// a live mapping: 1 yes, 0 no, -1 the L4 header is cut short. ICMP errors only with `errors`
// (the NAT does not translate fragmented ones).
INLINE int nat_return4(struct xdp_md *ctx, const struct dp_config *cfg, __u8 protocol, __u32 l4,
                       int errors)
{
    if (protocol == PROTO_TCP || protocol == PROTO_UDP) {
        struct udp_ports p;
        if (load_at(ctx, l4, &p, sizeof(p)))
            return -1;
        return nat_port_live(cfg, protocol, p.dest);
    }
    if (protocol == PROTO_ICMP) {
        struct icmp_head ic;
        if (load_at(ctx, l4, &ic, sizeof(ic)))
            return -1;
        // What the NAT translates, one rule with nat/src/view.rs and wire::icmp: query
        // replies (echo 0, timestamp 14) by id, errors (destination unreachable 3, time
        // exceeded 11, parameter problem 12) by the quoted packet; other types are the host's.
        if (ic.type == 0 || ic.type == 14)
            return nat_port_live(cfg, PROTO_ICMP, ic.id);
        if (errors && (ic.type == 3 || ic.type == 11 || ic.type == 12))
            return icmp4_error_is_ours(ctx, cfg, l4 + sizeof(ic));
    }
    return 0;
}

// An IPv4 fragment (RFC 791). Only NAT return traffic is taken: a first fragment to a live
// mapping (the one fragment with the port or echo id), then the later fragments of the datagram
// it recorded in `nat_fragments`. Everything else goes to the kernel as before: the host's own
// fragments, WireGuard datagrams fragmented on the path (the kernel reassembles them for the
// listen socket, src/outer_datagrams.rs), and a later fragment that overtook its first, which
// the kernel holds until ipfrag_time and discards (that datagram is lost; `pass_fragment`).
INLINE int handle_ipv4_fragment(struct xdp_md *ctx, const struct dp_config *cfg,
                                const struct ipv4_head *ip, __u32 l4)
{
    if (!cfg->nat_v4_enabled || ip->daddr != cfg->nat_v4_addr)
        return pass(DP_PASS_FRAGMENT);
    struct frag_key key = {};
    key.saddr = ip->saddr;
    key.daddr = ip->daddr;
    key.id = ip->id;
    key.protocol = ip->protocol;
    __u64 now = bpf_ktime_get_ns();
    if (ip->frag_off & IP_OFFSET_BE) {
        __u64 *first = bpf_map_lookup_elem(&nat_fragments, &key);
        if (first && now - *first < FRAGMENT_TIMEOUT_NS)
            return to_socket(ctx, cfg, DP_REDIRECT_NAT_FRAGMENT);
        return pass(DP_PASS_FRAGMENT);
    }
    if (nat_return4(ctx, cfg, ip->protocol, l4, 0) <= 0)
        return pass(DP_PASS_FRAGMENT);
    int action = to_socket(ctx, cfg, DP_REDIRECT_NAT_RETURN);
    if (action == XDP_REDIRECT)
        bpf_map_update_elem(&nat_fragments, &key, &now, BPF_ANY);
    return action;
}

// `l3` points at the IPv4 header, `l3_off` is its offset in the frame.
INLINE int handle_ipv4(struct xdp_md *ctx, const struct dp_config *cfg, void *l3, __u32 l3_off,
                       void *end)
{
    struct ipv4_head *ip = l3;
    if ((void *)(ip + 1) > end)
        return pass(DP_PASS_TRUNCATED);
    __u32 ihl = (ip->ver_ihl & 0x0f) * 4;
    if ((ip->ver_ihl >> 4) != 4 || ihl < sizeof(*ip))
        return pass(DP_PASS_TRUNCATED);
    // The L4 header's offset (see load_at); a frame shorter than its IHL claims fails there.
    __u32 l4 = l3_off + ihl;
    // The one branch whole packets pay for fragment handling.
    if (ip->frag_off & IP_MF_OFFSET_BE)
        return handle_ipv4_fragment(ctx, cfg, ip, l4);

    if (ip->protocol == PROTO_UDP && cfg->listen_port) {
        struct udp_ports p;
        if (load_at(ctx, l4, &p, sizeof(p)))
            return pass(DP_PASS_TRUNCATED);
        if (BSWAP16(p.dest) == cfg->listen_port) {
            struct addr_key key = {};
            key.addr[10] = 0xff;
            key.addr[11] = 0xff;
            __builtin_memcpy(&key.addr[12], &ip->daddr, 4);
            if (listen_addr_ok(cfg, &key))
                return to_socket(ctx, cfg, DP_REDIRECT_WIREGUARD);
        }
    }

    if (!cfg->nat_v4_enabled || ip->daddr != cfg->nat_v4_addr)
        return pass(DP_PASS_NOT_OURS);
    int ours = nat_return4(ctx, cfg, ip->protocol, l4, 1);
    if (ours < 0)
        return pass(DP_PASS_TRUNCATED);
    if (ours)
        return to_socket(ctx, cfg, DP_REDIRECT_NAT_RETURN);
    return pass(DP_PASS_NOT_OURS);
}

INLINE int handle_ipv6(struct xdp_md *ctx, const struct dp_config *cfg, void *l3, void *end)
{
    struct ipv6_head *ip = l3;
    if ((void *)(ip + 1) > end)
        return pass(DP_PASS_TRUNCATED);
    void *l4 = (void *)(ip + 1);
    __u8 next = ip->nexthdr;
    if (next != PROTO_UDP && next != PROTO_TCP && next != PROTO_ICMPV6)
        return pass(DP_PASS_FRAGMENT); // extension headers (fragments among them): the kernel

    if (next == PROTO_UDP && cfg->listen_port) {
        struct udp_ports *p = l4;
        if ((void *)(p + 1) > end)
            return pass(DP_PASS_TRUNCATED);
        if (BSWAP16(p->dest) == cfg->listen_port) {
            struct addr_key key;
            __builtin_memcpy(key.addr, ip->daddr, 16);
            if (listen_addr_ok(cfg, &key))
                return to_socket(ctx, cfg, DP_REDIRECT_WIREGUARD);
        }
    }

    if (!cfg->nat_v6_enabled || !addr16_eq(ip->daddr, cfg->nat_v6_addr))
        return pass(DP_PASS_NOT_OURS);

    if (next == PROTO_TCP || next == PROTO_UDP) {
        struct udp_ports *p = l4;
        if ((void *)(p + 1) > end)
            return pass(DP_PASS_TRUNCATED);
        if (nat6_port_live(cfg, next, p->dest))
            return to_socket(ctx, cfg, DP_REDIRECT_NAT_RETURN);
    } else {
        struct icmp_head *ic = l4;
        if ((void *)(ic + 1) > end)
            return pass(DP_PASS_TRUNCATED);
        // What the IPv6 NAT translates, one rule with nat/src/view6.rs: echo reply by id,
        // errors (destination unreachable 1, packet too big 2, time exceeded 3, parameter
        // problem 4) by the quoted packet; the rest (neighbour discovery...) is the host's.
        if (ic->type == 129 /* echo reply */ && nat6_port_live(cfg, PROTO_ICMPV6, ic->id))
            return to_socket(ctx, cfg, DP_REDIRECT_NAT_RETURN);
        if (ic->type >= 1 && ic->type <= 4 &&
            icmp6_error_is_ours(cfg, (void *)(ic + 1), end))
            return to_socket(ctx, cfg, DP_REDIRECT_NAT_RETURN);
    }
    return pass(DP_PASS_NOT_OURS);
}

// The program name is how a restarted gateway recognises a stale copy of itself
// (src/xdp/program.rs, PROGRAM_NAME): keep them equal, at most 15 characters.
SEC("xdp")
int dp_xsk_redirect(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;

    __u32 zero = 0;
    const struct dp_config *cfg = bpf_map_lookup_elem(&config_map, &zero);
    if (!cfg)
        return XDP_PASS;

    if (data + ETH_HLEN > end)
        return pass(DP_PASS_TRUNCATED);
    __u16 proto = *(__u16 *)(data + 12);
    void *l3 = data + ETH_HLEN;
    __u32 l3_off = ETH_HLEN;
    // Tagged frames go to the kernel: the pipeline parses untagged Ethernet only, so taking
    // them would only drop them there. A VLAN sub-interface (eth0.100) hands the gateway
    // untagged frames, and that is the supported way to serve a VLAN.
    if (proto == ETH_P_8021Q_BE || proto == ETH_P_8021AD_BE)
        return pass(DP_PASS_VLAN);

    if (proto == ETH_P_IP_BE)
        return handle_ipv4(ctx, cfg, l3, l3_off, end);
    if (proto == ETH_P_IPV6_BE)
        return handle_ipv6(ctx, cfg, l3, end);
    return pass(DP_PASS_NOT_IP);
}
