// SPDX-License-Identifier: MIT OR GPL-2.0-only
// (dual-licensed so that the kernel sees a GPL-compatible program; the Rust crate is MIT OR Apache-2.0)
//
// The load rig's XDP program, on a veth in the bench lab. On the client's (the generator's):
// WireGuard transport messages (type 4) to the generator's UDP port go to the AF_XDP socket of
// the frame's rx queue. On the server's (the sink's): every unfragmented IPv4/UDP datagram to the
// sink's port does. Everything else (ARP, the handshake messages the generator's kernel UDP
// socket answers, the lab's wireguard-go client, ping, iperf3) goes to the kernel. It never
// modifies or drops a frame.
//
// Built by build.rs with `clang -target bpf -O2 -g`; only <linux/bpf.h> is needed.

#include <linux/bpf.h>
#include <linux/types.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define ETH_HLEN 14
#define IPV4_HLEN 20           /* the gateway sends no IP options; a frame with options passes */
#define UDP_HLEN 8
#define ETH_P_IP_BE 0x0008     /* htons(0x0800) */
#define IP_MF_OFFSET_BE 0xFF3F /* htons(0x3FFF): more-fragments flag and fragment offset */
#define PROTO_UDP 17
#define WG_TRANSPORT_DATA 4    /* WireGuard message type of transport data (whitepaper 5.4.6) */

// One AF_XDP socket per rx queue, inserted by the Rust side (xsk_port.rs).
struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");

// [0]: the UDP port, host byte order; 0 (before the Rust side writes it) takes nothing.
// [1]: 0 takes only WireGuard transport messages to that port (generator), 1 any payload (sink).
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u32);
} port_map SEC(".maps");

SEC("xdp")
int bench_gen_redirect(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    unsigned char *end = (void *)(long)ctx->data_end;
    if (data + ETH_HLEN + IPV4_HLEN + UDP_HLEN + 1 > end)
        return XDP_PASS;
    if (*(__u16 *)(data + 12) != ETH_P_IP_BE)
        return XDP_PASS;
    unsigned char *ip = data + ETH_HLEN;
    if (ip[0] != 0x45 || ip[9] != PROTO_UDP || (*(__u16 *)(ip + 6) & IP_MF_OFFSET_BE))
        return XDP_PASS;
    unsigned char *udp = ip + IPV4_HLEN;
    __u32 zero = 0;
    __u32 *port = bpf_map_lookup_elem(&port_map, &zero);
    if (!port || *port == 0)
        return XDP_PASS;
    __u32 dport = ((__u32)udp[2] << 8) | udp[3];
    if (dport != *port)
        return XDP_PASS;
    __u32 one = 1;
    __u32 *any_payload = bpf_map_lookup_elem(&port_map, &one);
    if (!(any_payload && *any_payload) && udp[UDP_HLEN] != WG_TRANSPORT_DATA)
        return XDP_PASS;
    return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}
