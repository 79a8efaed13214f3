//! [`Collective`] over MPI (rsmpi). MPI is initialized with `MPI_THREAD_SERIALIZED` and every
//! call goes through one mutex, so any thread may call (sweeps run cells on worker threads).

use crate::DistError;
use ebdiff_core::Collective;
use mpi::Threading;
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::sync::Mutex;

pub struct MpiGroup {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    version: String,
    lock: Mutex<()>,
    // Last: finalizes MPI when dropped, after the communicator.
    _universe: Universe,
}

// SAFETY: MPI was initialized for serialized use from any thread, and every MPI call made
// through this type holds `lock`, so no two threads are ever inside MPI at once.
unsafe impl Send for MpiGroup {}
unsafe impl Sync for MpiGroup {}

impl MpiGroup {
    pub fn init() -> Result<MpiGroup, DistError> {
        let (universe, _level) =
            mpi::initialize_with_threading(Threading::Serialized).ok_or(DistError::InitFailed)?;
        let world = universe.world();
        let version = mpi::environment::library_version()
            .map(|v| v.split([',', '\n']).next().unwrap_or("").trim().to_string())
            .unwrap_or_else(|_| "MPI".into());
        Ok(MpiGroup {
            rank: world.rank() as usize,
            size: world.size() as usize,
            world,
            version,
            lock: Mutex::new(()),
            _universe: universe,
        })
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Byte counts of every rank (MPI counts are `i32`).
    fn counts(&self, mine: usize) -> Vec<i32> {
        let mine = i32::try_from(mine).unwrap_or_else(|_| {
            panic!("a collective message of {mine} bytes exceeds MPI's 2 GiB count limit")
        });
        let mut counts = vec![0i32; self.size];
        self.world.all_gather_into(&mine, &mut counts[..]);
        counts
    }
}

fn displacements(counts: &[i32]) -> Vec<i32> {
    counts
        .iter()
        .scan(0i64, |acc, &c| {
            let d = *acc;
            *acc += c as i64;
            Some(i32::try_from(d).expect("gathered bytes exceed MPI's 2 GiB count limit"))
        })
        .collect()
}

/// Open MPI 4.1 refuses a (all)gatherv in which a rank sends zero bytes (MPI_ERR_ARG, seen
/// here), so every message travels behind one marker byte that [`split`] drops.
fn framed(mine: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(mine.len() + 1);
    v.push(0xEB);
    v.extend_from_slice(mine);
    v
}

/// The ranks' messages in `buf`, without their marker bytes.
fn split(buf: &[u8], counts: &[i32]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(counts.len());
    let mut at = 0usize;
    for &c in counts {
        out.push(buf[at + 1..at + c as usize].to_vec());
        at += c as usize;
    }
    out
}

impl Collective for MpiGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_reduce_sum_f32(&self, values: &mut [f32]) {
        let _g = self.guard();
        let send = values.to_vec();
        self.world
            .all_reduce_into(&send[..], values, SystemOperation::sum());
    }
    fn all_reduce_sum_f64(&self, values: &mut [f64]) {
        let _g = self.guard();
        let send = values.to_vec();
        self.world
            .all_reduce_into(&send[..], values, SystemOperation::sum());
    }
    fn gather_bytes(&self, mine: &[u8]) -> Option<Vec<Vec<u8>>> {
        let _g = self.guard();
        let mine = &framed(mine);
        let counts = self.counts(mine.len());
        let root = self.world.process_at_rank(0);
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if self.rank == 0 {
            let mut buf = vec![0u8; total];
            let displs = displacements(&counts);
            let mut partition = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
            root.gather_varcount_into_root(mine, &mut partition);
            Some(split(&buf, &counts))
        } else {
            root.gather_varcount_into(mine);
            None
        }
    }
    fn all_gather_bytes(&self, mine: &[u8]) -> Vec<Vec<u8>> {
        let _g = self.guard();
        let mine = &framed(mine);
        let counts = self.counts(mine.len());
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let mut buf = vec![0u8; total];
        let displs = displacements(&counts);
        let mut partition = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
        self.world.all_gather_varcount_into(mine, &mut partition);
        split(&buf, &counts)
    }
    fn barrier(&self) {
        let _g = self.guard();
        self.world.barrier();
    }
    fn describe(&self) -> String {
        format!("{} ranks, {}", self.size, self.version)
    }
}
