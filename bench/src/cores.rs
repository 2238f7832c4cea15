//! Which cores the load generator and the sink run on: off the cores of the gateway's workers,
//! so that a `max` point measures the gateway and not a generator preempting its worker.
//!
//! The dataplane pins worker i to core i (without `[dataplane] cpus`, as in the lab, which runs
//! one worker); wireguard-go and boringtun are not pinned. The generator's and sink's threads
//! take the cores after the workers' when the machine has them, and say when it has not (on 2
//! cores the generator and the sink share the one core left).

use anyhow::{Context, Result};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Workers of the gateway under test in the lab (one queue).
pub const GATEWAY_WORKERS: usize = 1;

/// The cores for the load threads, and what the plan could not give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadCores {
    /// Empty: not pinned.
    pub cores: Vec<usize>,
    /// One line for the run's notes.
    pub note: String,
}

impl LoadCores {
    /// The plan for a machine of `cpus` cores whose gateway runs `workers` workers on cores
    /// `0..workers`.
    pub fn plan(cpus: usize, workers: usize) -> LoadCores {
        if cpus <= workers {
            return LoadCores {
                cores: Vec::new(),
                note: format!(
                    "{cpus} cores, {workers} gateway worker(s): generator, sink and gateway share \
                     every core (not pinned)"
                ),
            };
        }
        let cores: Vec<usize> = (workers..cpus).collect();
        let note = if cores.len() < 2 {
            format!(
                "{cpus} cores: gateway worker(s) on 0..{workers}, generator and sink share core \
                 {workers} (no core each: the machine has too few)"
            )
        } else {
            format!(
                "{cpus} cores: gateway worker(s) on 0..{workers}, generator and sink on cores \
                 {workers}..{cpus}"
            )
        };
        LoadCores { cores, note }
    }

    /// The plan for this machine.
    pub fn for_this_machine() -> LoadCores {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        LoadCores::plan(cpus, GATEWAY_WORKERS)
    }

    /// Pins the calling thread (and the threads it spawns meanwhile, which inherit its mask) to
    /// the plan's cores until the guard is dropped, which restores the previous mask: the
    /// gateways the bench starts later must not inherit it.
    pub fn pin_current_thread(&self) -> Result<Pinned> {
        if self.cores.is_empty() {
            return Ok(Pinned { previous: None });
        }
        let me = Pid::from_raw(0);
        let previous = sched_getaffinity(me).context("sched_getaffinity")?;
        let mut set = CpuSet::new();
        for &c in &self.cores {
            set.set(c).context("core number")?;
        }
        sched_setaffinity(me, &set).context("sched_setaffinity")?;
        Ok(Pinned {
            previous: Some(previous),
        })
    }
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
        assert_eq!(two.cores, [1]);
        assert!(two.note.contains("share core 1"), "{}", two.note);
        let one = LoadCores::plan(1, 1);
        assert!(one.cores.is_empty() && one.note.contains("not pinned"));
        let eight = LoadCores::plan(8, 2);
        assert_eq!(eight.cores, [2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn pinning_is_undone_by_the_guard() {
        let me = Pid::from_raw(0);
        let before = sched_getaffinity(me).unwrap();
        let plan = LoadCores {
            cores: vec![0],
            note: String::new(),
        };
        {
            let _pinned = plan.pin_current_thread().unwrap();
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
