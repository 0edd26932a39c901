//! A fake [`Vcpus`] for table tests of the stop/resume state machine ([`super::stops`]): vCPUs
//! that run only in the test's imagination. The test scripts what they report; the fake answers
//! requests from plain memory and logs what the debugger did to them.

use super::error::DebugError;
use super::vcpus::{Next, Release, Vcpus};
use crate::run_loop::{CpuState, DebugEvent, ResumeWith};
use crate::stats::VcpuStats;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes of fake guest memory (linear = physical).
const RAM: usize = 0x1000;

/// What the test and the fake share.
#[derive(Default)]
pub struct Shared {
    /// Events the vCPUs have reported, oldest first.
    pub events: VecDeque<(usize, DebugEvent)>,
    /// What the debugger did: `resume 0 step`, `pause 1`, `detach 0`, `stop 0`.
    pub log: Vec<String>,
    pub ram: Vec<u8>,
    /// Which vCPUs run (a pause request makes a running one report `Paused`).
    pub running: Vec<bool>,
    /// vCPUs that do not stop when asked (stuck where minikvm cannot interrupt them).
    pub stuck: Vec<bool>,
}

impl Shared {
    /// vCPU `id` reports `ev`; a stop means it no longer runs.
    pub fn report(&mut self, id: usize, ev: DebugEvent) {
        if let Some(r) = self.running.get_mut(id) {
            *r = false;
        }
        self.events.push_back((id, ev));
    }
}

pub struct FakeVcpus {
    pub shared: Arc<Mutex<Shared>>,
    count: usize,
}

impl FakeVcpus {
    /// `count` vCPUs, paused at their first instruction (real mode, CS base 0).
    pub fn new(count: usize) -> Self {
        let shared =
            Shared { ram: vec![0; RAM], running: vec![false; count], stuck: vec![false; count], ..Shared::default() };
        FakeVcpus { shared: Arc::new(Mutex::new(shared)), count }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
        f(&mut self.shared.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Vcpus for FakeVcpus {
    fn count(&self) -> usize {
        self.count
    }

    fn name(&self, _id: usize) -> &str {
        "fake"
    }

    fn stats(&self) -> Vec<(usize, String, VcpuStats)> {
        Vec::new()
    }

    fn state(&self, _id: usize) -> Result<CpuState, DebugError> {
        Ok(CpuState::default())
    }

    fn set_state(&self, _id: usize, _state: &CpuState) -> Result<(), DebugError> {
        Ok(())
    }

    fn read(&self, _id: usize, linear: u64, len: usize) -> Result<Vec<u8>, DebugError> {
        let bytes = self.with(|s| s.ram.get(linear as usize..).map(|r| r.iter().take(len).copied().collect()));
        bytes.ok_or_else(|| DebugError::Vcpu(format!("linear address {linear:#x} is not mapped")))
    }

    fn write(&self, _id: usize, linear: u64, data: Vec<u8>) -> Result<(), DebugError> {
        let end = linear as usize + data.len();
        self.with(|s| match s.ram.get_mut(linear as usize..end) {
            Some(dst) => {
                dst.copy_from_slice(&data);
                Ok(())
            }
            None => Err(DebugError::Vcpu(format!("linear address {linear:#x} is not mapped"))),
        })
    }

    fn translate(&self, _id: usize, linear: u64) -> Result<Option<u64>, DebugError> {
        Ok((linear < RAM as u64).then_some(linear))
    }

    fn read_physical(&self, gpa: u64, buf: &mut [u8]) -> bool {
        match self.read(0, gpa, buf.len()) {
            Ok(b) if b.len() == buf.len() => {
                buf.copy_from_slice(&b);
                true
            }
            _ => false,
        }
    }

    fn resume(&mut self, id: usize, with: ResumeWith) -> bool {
        let how = if with.step { "step" } else { "continue" };
        let hw = if with.debugreg[7] & 0xff != 0 { format!(" dr0={:#x}", with.debugreg[0]) } else { String::new() };
        self.with(|s| {
            s.log.push(format!("resume {id} {how}{hw}"));
            s.running[id] = true;
        });
        true
    }

    /// (A repeated request, as an all-stop kicks again, is logged once.)
    fn pause(&mut self, id: usize) {
        self.with(|s| {
            let line = format!("pause {id}");
            if s.log.last() != Some(&line) {
                s.log.push(line);
            }
            if s.running[id] && !s.stuck[id] {
                s.report(id, DebugEvent::Paused);
            }
        });
    }

    fn release(&mut self, id: usize, how: Release) {
        self.with(|s| {
            s.log.push(format!("{} {id}", if how == Release::Detach { "detach" } else { "stop" }));
            s.running[id] = how == Release::Detach;
        });
    }

    fn next_event(&mut self, wait: Option<Duration>) -> Next {
        match self.with(|s| s.events.pop_front()) {
            Some((id, ev)) => Next::Event(id, ev),
            None => {
                // Nothing comes from the test while the debugger waits: wait as a real one would.
                std::thread::sleep(wait.unwrap_or_default());
                Next::Nothing
            }
        }
    }
}
