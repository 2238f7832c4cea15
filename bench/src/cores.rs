//! Which cores the load generator and the sink run on: off the cores of the gateway's workers,
//! and off each other's, so that a `max` point measures the gateway and not a generator
//! preempting its worker or the sink.
//!
//! The dataplane pins worker i to core i (without `[dataplane] cpus`, as in the lab, which runs
//! one worker); wireguard-go and boringtun are not pinned. The generator's threads (sending,
//! and receiving the reverse direction) take the first core after the workers', the sink's
//! threads (receiving, and sending the reverse direction) the ones after that, when the machine
//! has them; the plan's note says which share when it has not (on 2 cores the generator and the
//! sink share the one core left).

use anyhow::{Context, Result};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Workers of the gateway under test in the lab (one queue).
pub const GATEWAY_WORKERS: usize = 1;

/// The cores for the load threads, and what the plan could not give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadCores {
    /// The generator's cores; empty: not pinned.
    pub generator: Vec<usize>,
    /// The sink's cores; empty: not pinned.
    pub sink: Vec<usize>,
    /// One line for the run's notes.
    pub note: String,
}

impl LoadCores {
    /// The plan for a machine of `cpus` cores whose gateway runs `workers` workers on cores
    /// `0..workers`.
    pub fn plan(cpus: usize, workers: usize) -> LoadCores {
        let w = workers;
        match cpus.saturating_sub(workers) {
            0 => LoadCores {
                generator: Vec::new(),
                sink: Vec::new(),
                note: format!(
                    "{cpus} cores, {w} gateway worker(s): generator, sink and gateway share \
                     every core (not pinned)"
                ),
            },
            1 => LoadCores {
                generator: vec![w],
                sink: vec![w],
                note: format!(
                    "{cpus} cores: gateway worker(s) on cores 0..{w}, generator and sink share \
                     core {w} (the machine has no core each for them)"
                ),
            },
            _ => LoadCores {
                generator: vec![w],
                sink: (w + 1..cpus).collect(),
                note: format!(
                    "{cpus} cores: gateway worker(s) on cores 0..{w}, generator on core {w}, \
                     sink on cores {}..{cpus}",
                    w + 1
                ),
            },
        }
    }

    /// The plan for this machine.
    pub fn for_this_machine() -> LoadCores {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        LoadCores::plan(cpus, GATEWAY_WORKERS)
    }

    /// Pins the calling thread (and the threads it spawns meanwhile, which inherit its mask) to
    /// the generator's cores until the guard is dropped, which restores the previous mask: the
    /// gateways the bench starts later must not inherit it.
    pub fn pin_generator(&self) -> Result<Pinned> {
        pin(&self.generator)
    }

    /// As [`pin_generator`](Self::pin_generator), to the sink's cores.
    pub fn pin_sink(&self) -> Result<Pinned> {
        pin(&self.sink)
    }
}

fn pin(cores: &[usize]) -> Result<Pinned> {
    if cores.is_empty() {
        return Ok(Pinned { previous: None });
    }
    let me = Pid::from_raw(0);
    let previous = sched_getaffinity(me).context("sched_getaffinity")?;
    let mut set = CpuSet::new();
    for &c in cores {
        set.set(c).context("core number")?;
    }
    sched_setaffinity(me, &set).context("sched_setaffinity")?;
    Ok(Pinned {
        previous: Some(previous),
    })
}

/// Restores the thread's previous CPU mask when dropped.
#[must_use]
pub struct Pinned {
    previous: Option<CpuSet>,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(set) = self.previous.take() {
            // Best effort: a failure leaves the thread pinned, which only narrows it.
            let _ = sched_setaffinity(Pid::from_raw(0), &set);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_say_what_they_cannot_give() {
        let two = LoadCores::plan(2, 1);
        assert_eq!((&two.generator[..], &two.sink[..]), (&[1][..], &[1][..]));
        assert!(two.note.contains("share core 1"), "{}", two.note);
        let one = LoadCores::plan(1, 1);
        assert!(one.generator.is_empty() && one.sink.is_empty());
        assert!(one.note.contains("not pinned"), "{}", one.note);
        let three = LoadCores::plan(3, 1);
        assert_eq!(
            (&three.generator[..], &three.sink[..]),
            (&[1][..], &[2][..])
        );
        assert!(three.note.contains("generator on core 1"), "{}", three.note);
        let eight = LoadCores::plan(8, 2);
        assert_eq!(eight.generator, [2]);
        assert_eq!(eight.sink, [3, 4, 5, 6, 7]);
    }

    #[test]
    fn pinning_is_undone_by_the_guard() {
        let me = Pid::from_raw(0);
        let before = sched_getaffinity(me).unwrap();
        let plan = LoadCores {
            generator: vec![0],
            sink: Vec::new(),
            note: String::new(),
        };
        {
            let _unpinned = plan.pin_sink().unwrap();
            assert_eq!(sched_getaffinity(me).unwrap(), before);
            let _pinned = plan.pin_generator().unwrap();
            let now = sched_getaffinity(me).unwrap();
            assert!(now.is_set(0).unwrap());
            assert_eq!(
                (0..CpuSet::count())
                    .filter(|&c| now.is_set(c).unwrap())
                    .count(),
                1
            );
        }
        assert_eq!(sched_getaffinity(me).unwrap(), before);
    }
}
