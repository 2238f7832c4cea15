//! The gw.toml loader: walks the parsed document (toml_edit keeps byte spans, so every error
//! gets its line), checks each key against [`super::schema`] and builds a [`GatewayConfig`].
//! Checks across fields (duplicates, overlaps, port collisions) are in [`super::validate`].

use super::error::{ErrorSink, Locations};
use super::keys::{PresharedKey, PrivateKey, PublicKey};
use super::schema::{self, defaults, Section};
use super::types::*;
use super::values;
use super::Loaded;
use ipnet::IpNet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml_edit::{Item, TableLike, Value};
use zeroize::Zeroizing;

/// Parses gw.toml text. `file` is how errors name the file; `base_dir` resolves a relative
/// `private_key_file`.
pub fn parse(
    text: &str,
    file: &str,
    base_dir: &Path,
) -> Result<(Loaded, Locations), super::ConfigErrors> {
    let mut r = Reader {
        lines: LineIndex::new(text),
        sink: ErrorSink::new(file),
        loc: Locations::default(),
        notes: Vec::new(),
        base_dir: base_dir.to_path_buf(),
    };
    let doc = match toml_edit::Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let line = r.line(e.span());
            let msg = e.message().trim().to_string();
            let at = line.and_then(|l| text.lines().nth(l.saturating_sub(1)));
            let hint = syntax_hint(&msg, at.unwrap_or(""));
            r.sink
                .push(line, "", format!("not valid TOML: {msg}{hint}"));
            return r.sink.into_result(unreachable_config()).map(|c| (c, r.loc));
        }
    };
    let root = doc.as_table();
    for (key, item) in root.iter() {
        let known = schema::SECTIONS.iter().find(|s| s.name == key);
        let line = r.key_line(root, key);
        match known {
            None => r.sink.push(
                line,
                key,
                format!(
                    "unknown section; known sections are {}",
                    schema::known_sections()
                ),
            ),
            Some(s) if s.repeated && !item.is_array_of_tables() => r.sink.push(
                line,
                key,
                format!(
                    "must be written as [[{}]] sections, one per {}",
                    s.name, s.name
                ),
            ),
            Some(s) if !s.repeated && !item.is_table_like() => r.sink.push(
                line,
                key,
                format!("must be a [{}] section, found {}", s.name, item.type_name()),
            ),
            Some(_) => {}
        }
    }

    let interface = r.interface(root.get("interface"));
    let peers = r.peers(root.get("peer"));
    let dataplane = r.dataplane(root.get("dataplane"));
    let nat = r.nat(root.get("nat"));
    let metrics = r.metrics(root.get("metrics"));
    let control = r.control(root.get("control"), &interface.name);

    let config = GatewayConfig {
        interface,
        peers,
        dataplane,
        nat,
        metrics,
        control,
    };
    let Reader {
        sink, loc, notes, ..
    } = r;
    sink.into_result(Loaded {
        config,
        notes,
        warnings: Vec::new(),
    })
    .map(|l| (l, loc))
}

/// Placeholder value returned together with errors (never handed out: `into_result` returns
/// `Err` whenever errors were recorded).
fn unreachable_config() -> Loaded {
    Loaded {
        config: GatewayConfig {
            interface: InterfaceConfig {
                name: defaults::DEVICE_NAME.to_string(),
                private_key: PrivateKey::from_bytes([0; 32]),
                private_key_file: None,
                listen_port: 0,
                address: Vec::new(),
                mtu: defaults::MTU,
            },
            peers: Vec::new(),
            dataplane: default_dataplane(),
            nat: default_nat(),
            metrics: MetricsConfig::default(),
            control: default_control(defaults::DEVICE_NAME),
        },
        notes: Vec::new(),
        warnings: Vec::new(),
    }
}

pub(crate) fn default_dataplane() -> DataplaneConfig {
    DataplaneConfig {
        interfaces: Interfaces::OneArmed {
            interface: defaults::WG_QUICK_INTERFACE.to_string(),
        },
        mode: XdpMode::Auto,
        queues: None,
        cpus: None,
        batch_size: defaults::BATCH_SIZE,
    }
}

pub(crate) fn default_nat() -> NatConfig {
    NatConfig {
        masquerade: true,
        address: None,
        masquerade_ipv6: false,
        address_ipv6: None,
        port_range: PortRange {
            lo: defaults::NAT_PORT_LO,
            hi: defaults::NAT_PORT_HI,
        },
        capacity: defaults::NAT_CAPACITY,
        timeouts: NatTimeouts {
            udp: Duration::from_secs(defaults::UDP_TIMEOUT_S),
            tcp_established: Duration::from_secs(defaults::TCP_ESTABLISHED_TIMEOUT_S),
            tcp_transitory: Duration::from_secs(defaults::TCP_TRANSITORY_TIMEOUT_S),
            icmp: Duration::from_secs(defaults::ICMP_TIMEOUT_S),
        },
    }
}

/// The most a private key file may hold: one base64 key is 44 characters; the slack allows
/// a trailing newline or CRLF. Reading is capped so that a wrong path (a log, `/dev/zero`)
/// fails fast with a clear error instead of filling memory.
const KEY_FILE_MAX: u64 = 256;

fn read_key_file(path: &Path) -> std::io::Result<Zeroizing<String>> {
    use std::io::Read;
    let mut text = Zeroizing::new(String::new());
    std::fs::File::open(path)?
        .take(KEY_FILE_MAX + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > KEY_FILE_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "more than {KEY_FILE_MAX} bytes; a private key file holds one base64 key \
                 (44 characters, as `wg genkey` writes it)"
            ),
        ));
    }
    Ok(text)
}

/// `[control]` when the file leaves it out: the socket is named for the tunnel `device`.
pub(crate) fn default_control(device: &str) -> ControlConfig {
    ControlConfig {
        socket: defaults::control_socket(device),
    }
}

/// Byte offsets where each line starts, so a span's line is a binary search: counting
/// newlines from the start of the file for every field made `check` quadratic (a 10k-peer
/// file has ~50k fields).
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    /// 1-based line of byte offset `at`.
    fn line_of(&self, at: usize) -> usize {
        self.starts.partition_point(|&s| s <= at)
    }
}

struct Reader {
    lines: LineIndex,
    sink: ErrorSink,
    loc: Locations,
    notes: Vec<String>,
    base_dir: PathBuf,
}

impl Reader {
    fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        Some(self.lines.line_of(span?.start))
    }

    fn key_line(&self, t: &dyn TableLike, key: &str) -> Option<usize> {
        let key_span = t.key(key).and_then(|k| k.span());
        let item_span = t.get(key).and_then(|i| i.span());
        self.line(key_span.or(item_span))
    }

    fn table_line(&self, item: &Item) -> Option<usize> {
        let span = match item {
            Item::Table(t) => t.span(),
            Item::Value(Value::InlineTable(t)) => t.span(),
            other => other.span(),
        };
        self.line(span)
    }

    /// Reports unknown keys (with the list of known ones) and missing required keys.
    fn check_keys(
        &mut self,
        t: &dyn TableLike,
        section: &Section,
        path: &str,
        section_line: Option<usize>,
    ) {
        for (key, _) in t.iter() {
            let line = self.key_line(t, key);
            self.loc.set(format!("{path}.{key}"), line.unwrap_or(0));
            if !section.fields.iter().any(|f| f.name == key) {
                self.sink.push(
                    line,
                    format!("{path}.{key}"),
                    format!(
                        "unknown key; [{}] accepts {}",
                        section.name,
                        section.known_keys()
                    ),
                );
            }
        }
        for f in section.fields.iter().filter(|f| f.required) {
            if !t.contains_key(f.name) {
                self.sink.push(
                    section_line,
                    format!("{path}.{}", f.name),
                    format!("missing; {}", f.expect),
                );
            }
        }
    }

    fn wrong_type(&mut self, line: Option<usize>, path: &str, found: &str, expect: &str) {
        self.sink
            .push(line, path.to_string(), format!("found {found}; {expect}"));
    }

    fn get_str(
        &mut self,
        t: &dyn TableLike,
        section: &Section,
        key: &str,
        path: &str,
    ) -> Option<(String, Option<usize>)> {
        let item = t.get(key)?;
        let line = self.key_line(t, key);
        match item.as_str() {
            Some(s) => Some((s.to_string(), line)),
            None => {
                self.wrong_type(
                    line,
                    &format!("{path}.{key}"),
                    item.type_name(),
                    section.field(key).expect,
                );
                None
            }
        }
    }

    fn get_bool(
        &mut self,
        t: &dyn TableLike,
        section: &Section,
        key: &str,
        path: &str,
    ) -> Option<bool> {
        let item = t.get(key)?;
        let line = self.key_line(t, key);
        match item.as_bool() {
            Some(b) => Some(b),
            None => {
                self.wrong_type(
                    line,
                    &format!("{path}.{key}"),
                    item.type_name(),
                    section.field(key).expect,
                );
                None
            }
        }
    }

    /// An integer in `min..=max`; out of range or wrong type is reported with the schema text.
    fn get_int(
        &mut self,
        t: &dyn TableLike,
        section: &Section,
        key: &str,
        path: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let item = t.get(key)?;
        let line = self.key_line(t, key);
        let expect = section.field(key).expect;
        match item.as_integer() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.sink.push(
                    line,
                    format!("{path}.{key}"),
                    format!("{n} is out of range; {expect}"),
                );
                None
            }
            None => {
                self.wrong_type(line, &format!("{path}.{key}"), item.type_name(), expect);
                None
            }
        }
    }

    /// An array; each element with its own line.
    fn get_array<'t>(
        &mut self,
        t: &'t dyn TableLike,
        section: &Section,
        key: &str,
        path: &str,
    ) -> Option<Vec<(&'t Value, Option<usize>)>> {
        let item = t.get(key)?;
        let line = self.key_line(t, key);
        match item.as_array() {
            Some(a) => Some(
                a.iter()
                    .map(|v| (v, self.line(v.span()).or(line)))
                    .collect(),
            ),
            None => {
                self.wrong_type(
                    line,
                    &format!("{path}.{key}"),
                    item.type_name(),
                    section.field(key).expect,
                );
                None
            }
        }
    }

    fn get_str_array(
        &mut self,
        t: &dyn TableLike,
        section: &Section,
        key: &str,
        path: &str,
    ) -> Option<Vec<(String, Option<usize>)>> {
        let elems = self.get_array(t, section, key, path)?;
        let mut out = Vec::with_capacity(elems.len());
        for (i, (v, line)) in elems.into_iter().enumerate() {
            let p = format!("{path}.{key}[{i}]");
            self.loc.set(p.clone(), line.unwrap_or(0));
            match v.as_str() {
                Some(s) => out.push((s.to_string(), line)),
                None => self.wrong_type(line, &p, v.type_name(), section.field(key).expect),
            }
        }
        Some(out)
    }

    fn get_int_array(
        &mut self,
        t: &dyn TableLike,
        section: &Section,
        key: &str,
        path: &str,
        max: i64,
    ) -> Option<Vec<i64>> {
        let elems = self.get_array(t, section, key, path)?;
        let mut out = Vec::with_capacity(elems.len());
        let expect = section.field(key).expect;
        for (i, (v, line)) in elems.into_iter().enumerate() {
            let p = format!("{path}.{key}[{i}]");
            match v.as_integer() {
                Some(n) if (0..=max).contains(&n) => {
                    if out.contains(&n) {
                        self.sink
                            .push(line, p, format!("{n} is listed twice; {expect}"));
                    } else {
                        out.push(n);
                    }
                }
                Some(n) => self
                    .sink
                    .push(line, p, format!("{n} is out of range; {expect}")),
                None => self.wrong_type(line, &p, v.type_name(), expect),
            }
        }
        Some(out)
    }

    /// A required section: reports it when missing.
    fn section<'i>(
        &mut self,
        item: Option<&'i Item>,
        section: &Section,
    ) -> Option<(&'i dyn TableLike, Option<usize>)> {
        match item {
            None => {
                if section.required {
                    let fields: Vec<&str> = section
                        .fields
                        .iter()
                        .filter(|f| f.required)
                        .map(|f| f.name)
                        .collect();
                    self.sink.push(
                        None,
                        section.name,
                        format!(
                            "missing [{}] section; it needs at least {}",
                            section.name,
                            if fields.is_empty() {
                                "one of its keys".to_string()
                            } else {
                                fields.join(", ")
                            }
                        ),
                    );
                }
                None
            }
            Some(item) => {
                let line = self.table_line(item);
                self.loc.set(section.name, line.unwrap_or(0));
                let t = item.as_table_like()?;
                self.check_keys(t, section, section.name, line);
                Some((t, line))
            }
        }
    }

    fn interface(&mut self, item: Option<&Item>) -> InterfaceConfig {
        let s = &schema::INTERFACE;
        let p = "interface";
        let mut out = unreachable_config().config.interface;
        let Some((t, line)) = self.section(item, s) else {
            return out;
        };
        if let Some((text, l)) = self.get_str(t, s, "name", p) {
            match values::device_name(&text) {
                Ok(name) => out.name = name,
                Err(e) => self.sink.push(l, "interface.name", e),
            }
        }
        let inline = self.get_str(t, s, "private_key", p);
        let file = self.get_str(t, s, "private_key_file", p);
        match (inline, file) {
            (Some(_), Some((_, fline))) => self.sink.push(
                fline,
                "interface.private_key_file",
                "both private_key and private_key_file are set; keep one",
            ),
            (None, None) => self.sink.push(
                line,
                "interface.private_key",
                format!(
                    "missing; set private_key or private_key_file ({})",
                    s.field("private_key").expect
                ),
            ),
            (Some((text, kline)), None) => match PrivateKey::from_base64(&Zeroizing::new(text)) {
                Ok(k) => out.private_key = k,
                Err(e) => self.sink.push(kline, "interface.private_key", e),
            },
            (None, Some((path, fline))) => {
                let path = PathBuf::from(path);
                let full = if path.is_absolute() {
                    path.clone()
                } else {
                    self.base_dir.join(&path)
                };
                match read_key_file(&full) {
                    Ok(text) => match PrivateKey::from_base64(&text) {
                        Ok(k) => {
                            out.private_key = k;
                            out.private_key_file = Some(path);
                        }
                        Err(e) => self.sink.push(
                            fline,
                            "interface.private_key_file",
                            format!("{}: the content {e}", full.display()),
                        ),
                    },
                    Err(e) => self.sink.push(
                        fline,
                        "interface.private_key_file",
                        format!("cannot read {}: {e}", full.display()),
                    ),
                }
            }
        }
        if let Some(port) = self.get_int(t, s, "listen_port", p, 1, 65535) {
            out.listen_port = port as u16;
        }
        if let Some(list) = self.get_str_array(t, s, "address", p) {
            if list.is_empty() {
                let l = self.key_line(t, "address");
                self.sink.push(
                    l,
                    "interface.address",
                    format!("is empty; {}", s.field("address").expect),
                );
            }
            for (i, (text, line)) in list.iter().enumerate() {
                match values::interface_address(text) {
                    Ok(net) => out.address.push(net),
                    Err(e) => self.sink.push(*line, format!("interface.address[{i}]"), e),
                }
            }
        }
        if let Some(mtu) = self.get_int(
            t,
            s,
            "mtu",
            p,
            defaults::MTU_MIN.into(),
            defaults::MTU_MAX.into(),
        ) {
            out.mtu = mtu as u16;
        }
        out
    }

    fn peers(&mut self, item: Option<&Item>) -> Vec<PeerConfig> {
        let Some(array) = item.and_then(|i| i.as_array_of_tables()) else {
            return Vec::new();
        };
        let s = &schema::PEER;
        let mut peers = Vec::new();
        for (i, table) in array.iter().enumerate() {
            let p = format!("peer[{i}]");
            let line = self.line(table.span());
            self.loc.set(p.clone(), line.unwrap_or(0));
            self.check_keys(table, s, &p, line);
            let name = self.get_str(table, s, "name", &p).map(|(n, _)| n);
            let public_key = self
                .get_str(table, s, "public_key", &p)
                .and_then(|(text, l)| {
                    PublicKey::from_base64(&text)
                        .map_err(|e| self.sink.push(l, format!("{p}.public_key"), e))
                        .ok()
                });
            let preshared_key =
                self.get_str(table, s, "preshared_key", &p)
                    .and_then(|(text, l)| {
                        PresharedKey::from_base64(&Zeroizing::new(text))
                            .map_err(|e| self.sink.push(l, format!("{p}.preshared_key"), e))
                            .ok()
                    });
            let mut allowed_ips: Vec<IpNet> = Vec::new();
            if let Some(list) = self.get_str_array(table, s, "allowed_ips", &p) {
                for (j, (text, l)) in list.iter().enumerate() {
                    match values::allowed_ip(text) {
                        Ok(net) => allowed_ips.push(net),
                        Err(e) => self.sink.push(*l, format!("{p}.allowed_ips[{j}]"), e),
                    }
                }
            }
            let endpoint = self
                .get_str(table, s, "endpoint", &p)
                .and_then(|(text, l)| {
                    values::endpoint(&text)
                        .map_err(|e| self.sink.push(l, format!("{p}.endpoint"), e))
                        .ok()
                });
            let keepalive = self
                .get_int(table, s, "persistent_keepalive", &p, 0, 65535)
                .and_then(|n| (n > 0).then_some(n as u16));
            peers.push(PeerConfig {
                name,
                public_key: public_key.unwrap_or_else(|| PublicKey::from_bytes([0; 32])),
                preshared_key,
                allowed_ips,
                endpoint,
                persistent_keepalive: keepalive,
            });
        }
        peers
    }

    fn dataplane(&mut self, item: Option<&Item>) -> DataplaneConfig {
        let s = &schema::DATAPLANE;
        let p = "dataplane";
        let mut out = default_dataplane();
        let Some((t, line)) = self.section(item, s) else {
            return out;
        };
        let list = self.get_str_array(t, s, "interfaces", p);
        let one = self.get_str(t, s, "interface", p);
        let wan = self.get_str(t, s, "wan", p);
        let lan = self.get_str(t, s, "lan", p);
        let forms = [
            list.is_some(),
            one.is_some(),
            wan.is_some() || lan.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        let name = |r: &mut Self, text: &str, l: Option<usize>, field: &str| -> Option<String> {
            values::interface_name(text)
                .map_err(|e| r.sink.push(l, field.to_string(), e))
                .ok()
        };
        if forms > 1 {
            self.sink.push(
                line,
                "dataplane.interfaces",
                "set only one of interfaces = [...], interface = \"...\" or wan = \"...\" + lan = \"...\"",
            );
        } else if let Some(list) = list {
            let names: Vec<Option<String>> = list
                .iter()
                .enumerate()
                .map(|(i, (t, l))| name(self, t, *l, &format!("dataplane.interfaces[{i}]")))
                .collect();
            let l = self.key_line(t, "interfaces");
            match names.as_slice() {
                [Some(a)] => {
                    out.interfaces = Interfaces::OneArmed {
                        interface: a.clone(),
                    }
                }
                [Some(a), Some(b)] => {
                    out.interfaces = Interfaces::TwoArmed {
                        wan: a.clone(),
                        lan: b.clone(),
                    }
                }
                [_] | [_, _] => {}
                _ => self.sink.push(
                    l,
                    "dataplane.interfaces",
                    format!(
                        "has {} entries; {}",
                        names.len(),
                        s.field("interfaces").expect
                    ),
                ),
            }
        } else if let Some((text, l)) = one {
            if let Some(n) = name(self, &text, l, "dataplane.interface") {
                out.interfaces = Interfaces::OneArmed { interface: n };
            }
        } else {
            match (wan, lan) {
                (Some((w, wl)), Some((l, ll))) => {
                    let w = name(self, &w, wl, "dataplane.wan");
                    let l = name(self, &l, ll, "dataplane.lan");
                    if let (Some(wan), Some(lan)) = (w, l) {
                        out.interfaces = Interfaces::TwoArmed { wan, lan };
                    }
                }
                (Some((_, l)), None) | (None, Some((_, l))) => self.sink.push(
                    l,
                    "dataplane",
                    "two-armed needs both wan and lan; for one interface use interface = \"eth0\"",
                ),
                (None, None) => self.sink.push(
                    line,
                    "dataplane.interfaces",
                    format!("missing; {}", s.field("interfaces").expect),
                ),
            }
        }
        if let Some((text, l)) = self.get_str(t, s, "mode", p) {
            match XdpMode::parse(&text) {
                Some(m) => out.mode = m,
                None => self.sink.push(
                    l,
                    "dataplane.mode",
                    format!("{text:?} is not a mode; {}", s.field("mode").expect),
                ),
            }
        }
        if let Some(q) = self.get_int_array(t, s, "queues", p, u32::MAX.into()) {
            out.queues = Some(q.into_iter().map(|n| n as u32).collect());
        }
        if let Some(c) = self.get_int_array(t, s, "cpus", p, 4095) {
            out.cpus = Some(c.into_iter().map(|n| n as usize).collect());
        }
        if matches!(&out.queues, Some(v) if v.is_empty()) {
            let l = self.key_line(t, "queues");
            self.sink.push(
                l,
                "dataplane.queues",
                format!("is empty; {}", s.field("queues").expect),
            );
        }
        if matches!(&out.cpus, Some(v) if v.is_empty()) {
            let l = self.key_line(t, "cpus");
            self.sink.push(
                l,
                "dataplane.cpus",
                format!("is empty; {}", s.field("cpus").expect),
            );
        }
        if let Some(b) = self.get_int(t, s, "batch_size", p, 1, defaults::BATCH_SIZE_MAX.into()) {
            out.batch_size = b as u16;
        }
        out
    }

    fn nat(&mut self, item: Option<&Item>) -> NatConfig {
        let s = &schema::NAT;
        let p = "nat";
        let mut out = default_nat();
        let Some((t, _)) = self.section(item, s) else {
            return out;
        };
        if let Some(m) = self.get_bool(t, s, "masquerade", p) {
            out.masquerade = m;
        }
        if let Some((text, l)) = self.get_str(t, s, "address", p) {
            match text.parse::<Ipv4Addr>() {
                Ok(a) => out.address = Some(a),
                Err(_) if text.trim().parse::<Ipv6Addr>().is_ok() => self.sink.push(
                    l,
                    "nat.address",
                    format!(
                        "{text:?} is an IPv6 address, not an IPv4 address; write it as address_ipv6 (with masquerade_ipv6 = true); {}",
                        s.field("address").expect
                    ),
                ),
                Err(_) => self.sink.push(
                    l,
                    "nat.address",
                    format!(
                        "{text:?} is not an IPv4 address; {}",
                        s.field("address").expect
                    ),
                ),
            }
        }
        if let Some(m) = self.get_bool(t, s, "masquerade_ipv6", p) {
            out.masquerade_ipv6 = m;
        }
        if let Some((text, l)) = self.get_str(t, s, "address_ipv6", p) {
            match values::nat_address_ipv6(&text) {
                Ok(a) => out.address_ipv6 = Some(a),
                Err(e) => self.sink.push(l, "nat.address_ipv6", e),
            }
        }
        if let Some((text, l)) = self.get_str(t, s, "port_range", p) {
            match values::port_range(&text) {
                Ok(r) => out.port_range = r,
                Err(e) => self.sink.push(l, "nat.port_range", e),
            }
        }
        if let Some(c) = self.get_int(t, s, "capacity", p, 1, defaults::NAT_CAPACITY_MAX.into()) {
            out.capacity = c as u32;
        }
        let secs = |r: &mut Self, key: &str, min: u64| -> Option<Duration> {
            r.get_int(t, s, key, p, min as i64, i64::from(u32::MAX))
                .map(|n| Duration::from_secs(n as u64))
        };
        if let Some(d) = secs(self, "udp_timeout", defaults::UDP_TIMEOUT_S) {
            out.timeouts.udp = d;
        }
        if let Some(d) = secs(
            self,
            "tcp_established_timeout",
            defaults::TCP_ESTABLISHED_TIMEOUT_S,
        ) {
            out.timeouts.tcp_established = d;
        }
        if let Some(d) = secs(
            self,
            "tcp_transitory_timeout",
            defaults::TCP_TRANSITORY_TIMEOUT_S,
        ) {
            out.timeouts.tcp_transitory = d;
        }
        if let Some(d) = secs(self, "icmp_timeout", defaults::ICMP_TIMEOUT_S) {
            out.timeouts.icmp = d;
        }
        out
    }

    fn metrics(&mut self, item: Option<&Item>) -> MetricsConfig {
        let s = &schema::METRICS;
        let mut out = MetricsConfig::default();
        let Some((t, _)) = self.section(item, s) else {
            return out;
        };
        if let Some((text, l)) = self.get_str(t, s, "listen", "metrics") {
            match text.parse::<SocketAddr>() {
                Ok(a) => out.listen = Some(a),
                Err(_) => self.sink.push(
                    l,
                    "metrics.listen",
                    format!("{text:?} is not address:port; {}", s.field("listen").expect),
                ),
            }
        }
        out
    }

    fn control(&mut self, item: Option<&Item>, device: &str) -> ControlConfig {
        let s = &schema::CONTROL;
        let mut out = default_control(device);
        let Some((t, _)) = self.section(item, s) else {
            return out;
        };
        if let Some((text, l)) = self.get_str(t, s, "socket", "control") {
            if text.is_empty() {
                self.sink.push(
                    l,
                    "control.socket",
                    format!("is empty; {}", s.field("socket").expect),
                );
            } else {
                out.socket = PathBuf::from(text);
            }
        }
        out
    }
}

/// A hint for TOML syntax errors people make in this file: a second `[peer]` (one bracket, as
/// in wg-quick's `[Peer]`) is a "duplicate key" to TOML.
fn syntax_hint(msg: &str, line_text: &str) -> String {
    if !msg.contains("duplicate key") {
        return String::new();
    }
    let header = line_text.trim();
    let repeated = schema::SECTIONS
        .iter()
        .find(|s| s.repeated && header == format!("[{}]", s.name));
    match repeated {
        Some(s) => format!(
            " ({header} a second time); write each one as [[{0}]] (double brackets), e.g.\n  [[{0}]]\n  public_key = \"...\"",
            s.name
        ),
        None => format!(
            " ({header:?}); each key and each [section] may appear only once (a repeated section is written [[section]])"
        ),
    }
}
