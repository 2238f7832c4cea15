//! Where the machine's cores went during a load point: each CPU's share in user, system and
//! softirq time (`/proc/stat`) and the busiest threads by name (`/proc/*/task/*/stat`), between
//! two snapshots taken around the sending.
//!
//! On veth in AF_XDP copy mode a packet's receive work runs in the *sender's* context (the
//! peer's NAPI is scheduled on the CPU that transmitted), so a gateway's core also carries the
//! sink's receive and the generator's core the gateway's: the split says whose core was full
//! when a `max` point stopped rising, the gateway's or the load rig's.

use std::collections::HashMap;
use std::time::Duration;

/// Threads listed per point: the gateway's worker(s), the generator, the sink, and what else
/// took a core.
const TOP_THREADS: usize = 4;
/// Threads below this share of one core are not listed.
const MIN_THREAD_SHARE: f64 = 0.02;

/// One CPU's counters from a `cpuN` line of `/proc/stat`, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub user: u64,
    pub system: u64,
    pub idle: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub total: u64,
}

/// Everything read at one instant.
#[derive(Clone, Debug, Default)]
pub struct CpuSnapshot {
    cpus: Vec<CpuTicks>,
    /// Per thread (pid/tid): its name, user+system ticks, and the CPU it last ran on.
    threads: HashMap<(u32, u32), (String, u64, u32)>,
}

/// One CPU's shares of the interval, 0..=1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuShare {
    pub user: f64,
    /// System time and hard interrupts (`sys` in the report).
    pub system: f64,
    pub softirq: f64,
    pub idle: f64,
    pub steal: f64,
}

/// Threads of one name over the interval.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadShare {
    pub name: String,
    /// In cores (1.0 = one core the whole interval).
    pub cores: f64,
    /// The CPUs the threads were last seen on.
    pub cpus: Vec<u32>,
}

/// What [`CpuSnapshot::split`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CpuSplit {
    pub cpus: Vec<CpuShare>,
    pub threads: Vec<ThreadShare>,
}

impl CpuSnapshot {
    /// Reads `/proc/stat` and every thread's stat file. A thread that ends meanwhile is
    /// skipped; an unreadable `/proc/stat` gives an empty snapshot (and an empty split).
    pub fn take() -> Self {
        let cpus = std::fs::read_to_string("/proc/stat")
            .map(|s| parse_proc_stat(&s))
            .unwrap_or_default();
        let mut threads = HashMap::new();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return CpuSnapshot { cpus, threads };
        };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else {
                continue;
            };
            for t in tasks.flatten() {
                let Some(tid) = t.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                if let Some(stat) = std::fs::read_to_string(t.path().join("stat"))
                    .ok()
                    .as_deref()
                    .and_then(parse_task_stat)
                {
                    threads.insert((pid, tid), stat);
                }
            }
        }
        CpuSnapshot { cpus, threads }
    }

    /// From `self` (earlier) to `later`, `elapsed` apart.
    pub fn split(&self, later: &CpuSnapshot, elapsed: Duration) -> CpuSplit {
        let cpus = self
            .cpus
            .iter()
            .zip(&later.cpus)
            .map(|(a, b)| {
                let total = b.total.saturating_sub(a.total).max(1) as f64;
                let d = |x: u64, y: u64| y.saturating_sub(x) as f64 / total;
                CpuShare {
                    user: d(a.user, b.user),
                    system: d(a.system, b.system) + d(a.irq, b.irq),
                    softirq: d(a.softirq, b.softirq),
                    idle: d(a.idle, b.idle),
                    steal: d(a.steal, b.steal),
                }
            })
            .collect();
        // Ticks per core-second: the kernel's USER_HZ, 100 on every Linux this runs on.
        let ticks = TICKS_PER_SECOND * elapsed.as_secs_f64().max(1e-3);
        let mut by_name: HashMap<&str, (f64, Vec<u32>)> = HashMap::new();
        for (key, (name, used, cpu)) in &later.threads {
            let before = self.threads.get(key).map_or(0, |t| t.1);
            let delta = used.saturating_sub(before);
            if delta == 0 {
                continue;
            }
            let e = by_name.entry(name).or_default();
            e.0 += delta as f64 / ticks;
            if !e.1.contains(cpu) {
                e.1.push(*cpu);
            }
        }
        let mut threads: Vec<ThreadShare> = by_name
            .into_iter()
            .filter(|(_, (cores, _))| *cores >= MIN_THREAD_SHARE)
            .map(|(name, (cores, mut cpus))| {
                cpus.sort_unstable();
                ThreadShare {
                    name: name.to_owned(),
                    cores,
                    cpus,
                }
            })
            .collect();
        threads.sort_by(|a, b| b.cores.total_cmp(&a.cores).then(a.name.cmp(&b.name)));
        threads.truncate(TOP_THREADS);
        CpuSplit { cpus, threads }
    }
}

/// `USER_HZ`: the unit of `/proc/stat` and of a task's `utime`/`stime`.
const TICKS_PER_SECOND: f64 = 100.0;

/// The `cpuN` lines of `/proc/stat` in order (the aggregate `cpu` line is skipped).
fn parse_proc_stat(text: &str) -> Vec<CpuTicks> {
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            let at = |i: usize| v.get(i).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            CpuTicks {
                user: at(0) + at(1),
                system: at(2),
                idle: at(3) + at(4),
                irq: at(5),
                softirq: at(6),
                steal: at(7),
                total: (0..8).map(at).sum(),
            }
        })
        .collect()
}

/// A task's name, utime + stime and last CPU from its `stat` line. The name is inside
/// parentheses and may hold spaces and parentheses itself, so fields are counted from the last
/// `)`.
fn parse_task_stat(line: &str) -> Option<(String, u64, u32)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_owned();
    // After the name: state (field 3) ... utime is field 14, stime 15, processor 39.
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some((name, field(14)? + field(15)?, field(39)? as u32))
}

impl CpuSplit {
    /// `cpu0 user 22 % sys 26 % softirq 51 %; cpu1 ...` (idle and steal when above 1 %).
    pub fn cpus_line(&self) -> String {
        let pct = |x: f64| (x * 100.0).round();
        self.cpus
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut s = format!(
                    "cpu{i} user {} % sys {} % softirq {} %",
                    pct(c.user),
                    pct(c.system),
                    pct(c.softirq)
                );
                if c.idle >= 0.01 {
                    s.push_str(&format!(" idle {} %", pct(c.idle)));
                }
                if c.steal >= 0.01 {
                    s.push_str(&format!(" steal {} %", pct(c.steal)));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `worker0 0.98 (cpu0), latency 0.53 (cpu1)`: cores used per thread name.
    pub fn threads_line(&self) -> String {
        self.threads
            .iter()
            .map(|t| {
                let cpus: Vec<String> = t.cpus.iter().map(|c| format!("cpu{c}")).collect();
                format!("{} {:.2} ({})", t.name, t.cores, cpus.join(","))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_A: &str = "cpu  300 0 200 1000 0 0 100 0 0 0\n\
        cpu0 100 0 100 500 0 0 0 0 0 0\n\
        cpu1 200 0 100 500 0 0 100 0 0 0\n\
        intr 1 2 3\n";
    const STAT_B: &str = "cpu  300 0 200 1000 0 0 100 0 0 0\n\
        cpu0 122 0 126 500 0 0 51 1 0 0\n\
        cpu1 204 0 135 500 0 0 161 0 0 0\n";

    #[test]
    fn proc_stat_lines_are_read_per_cpu_and_the_aggregate_skipped() {
        let cpus = parse_proc_stat(STAT_A);
        assert_eq!(cpus.len(), 2);
        assert_eq!(cpus[1].user, 200);
        assert_eq!(cpus[1].softirq, 100);
        assert_eq!(cpus[1].total, 900);
    }

    #[test]
    fn a_task_name_with_spaces_and_parentheses_is_kept_whole() {
        // 52 fields as in Linux 6.x; utime 14 = 7, stime 15 = 5, processor 39 = 1.
        let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        fields[14 - 3] = "7".into();
        fields[15 - 3] = "5".into();
        fields[39 - 3] = "1".into();
        fields[0] = "R".into();
        let line = format!("1234 (a (b) c) {}", fields.join(" "));
        assert_eq!(parse_task_stat(&line), Some(("a (b) c".into(), 12, 1)));
        assert_eq!(parse_task_stat("1234 (short) R 1 2"), None);
    }

    #[test]
    fn the_split_gives_shares_per_cpu_and_cores_per_thread_name() {
        let a = CpuSnapshot {
            cpus: parse_proc_stat(STAT_A),
            threads: HashMap::from([
                ((1, 1), ("worker0".to_string(), 1000, 0)),
                ((2, 2), ("wireguard-go".to_string(), 10, 0)),
                ((2, 3), ("wireguard-go".to_string(), 10, 1)),
                ((3, 3), ("idle".to_string(), 5, 1)),
            ]),
        };
        let b = CpuSnapshot {
            cpus: parse_proc_stat(STAT_B),
            threads: HashMap::from([
                ((1, 1), ("worker0".to_string(), 1098, 0)),
                ((2, 2), ("wireguard-go".to_string(), 60, 0)),
                ((2, 3), ("wireguard-go".to_string(), 70, 1)),
                ((3, 3), ("idle".to_string(), 5, 1)),
                // Born during the interval: all its time counts.
                ((4, 4), ("latency".to_string(), 40, 1)),
            ]),
        };
        let s = a.split(&b, Duration::from_secs(1));
        assert_eq!(s.cpus.len(), 2);
        // cpu0: 100 ticks in all: user 22, system 26, softirq 51, steal 1.
        assert!((s.cpus[0].user - 0.22).abs() < 1e-9, "{:?}", s.cpus[0]);
        assert!((s.cpus[0].softirq - 0.51).abs() < 1e-9);
        assert!((s.cpus[0].steal - 0.01).abs() < 1e-9);
        assert_eq!(s.cpus[0].idle, 0.0);
        let names: Vec<&str> = s.threads.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["wireguard-go", "worker0", "latency"]);
        assert!((s.threads[0].cores - 1.1).abs() < 1e-9);
        assert_eq!(s.threads[0].cpus, [0, 1]);
        assert_eq!(
            s.cpus_line(),
            "cpu0 user 22 % sys 26 % softirq 51 % steal 1 %; cpu1 user 4 % sys 35 % softirq 61 %"
        );
        assert_eq!(
            s.threads_line(),
            "wireguard-go 1.10 (cpu0,cpu1), worker0 0.98 (cpu0), latency 0.40 (cpu1)"
        );
    }
}
