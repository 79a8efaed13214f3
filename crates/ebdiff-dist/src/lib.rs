//! Several processes as one job. `mpirun -np N` (or `srun`) starts N copies of a command; this
//! crate tells each copy who it is and how to reach the others:
//!
//! - [`launch`]: what the launcher says in the environment (rank, size, local rank), read
//!   without MPI, so that a binary built without MPI can refuse to run as N copies;
//! - [`init`]: the group of this process: [`ebdiff_core::Solo`] when launched alone, the MPI
//!   world (cargo feature `mpi`) when launched by an MPI launcher;
//! - `mpi_group` (feature `mpi`): [`ebdiff_core::Collective`] over rsmpi.

pub mod launch;
#[cfg(feature = "mpi")]
mod mpi_group;

use ebdiff_core::{Collective, Solo};
use launch::Launch;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error(
        "this process is rank {rank} of {size} started by {launcher}, but this binary was built \
         without MPI, so the {size} copies cannot work together (each would train the same run \
         into the same directory). Rebuild with MPI: install it (Debian: `apt-get install \
         openmpi-bin libopenmpi-dev libclang-dev`) and run `cargo build --release --workspace \
         --features xtask/mpi`, then launch target/release/xtask under {launcher}; or start a \
         single process, without the launcher"
    )]
    NoMpi {
        rank: usize,
        size: usize,
        launcher: &'static str,
    },
    #[error(
        "{launcher} started {expected} processes, but MPI reports a world of {found}: the launcher \
         and the MPI library this binary links do not match (e.g. Slurm's srun without \
         `--mpi=pmix`, or an mpirun of another MPI installation)"
    )]
    WorldMismatch {
        launcher: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("MPI could not be initialized (was it initialized already in this process?)")]
    InitFailed,
}

/// The group this process belongs to, decided once at start-up: alone unless an MPI launcher
/// started several copies. Keep the returned object alive until the end of `main` (dropping the
/// MPI group finalizes MPI).
pub fn init() -> Result<Arc<dyn Collective>, DistError> {
    let launch = Launch::from_env();
    match launch {
        None => Ok(Arc::new(Solo)),
        Some(l) => group(l),
    }
}

#[cfg(feature = "mpi")]
fn group(launch: Launch) -> Result<Arc<dyn Collective>, DistError> {
    let g = mpi_group::MpiGroup::init()?;
    if g.size() != launch.size {
        return Err(DistError::WorldMismatch {
            launcher: launch.launcher,
            expected: launch.size,
            found: g.size(),
        });
    }
    tracing::info!(rank = g.rank(), size = g.size(), mpi = %g.describe(), "joined the MPI world");
    Ok(Arc::new(g))
}

#[cfg(not(feature = "mpi"))]
fn group(launch: Launch) -> Result<Arc<dyn Collective>, DistError> {
    if launch.size == 1 {
        return Ok(Arc::new(Solo));
    }
    Err(DistError::NoMpi {
        rank: launch.rank,
        size: launch.size,
        launcher: launch.launcher,
    })
}

/// Whether this binary can join an MPI world.
pub const MPI_COMPILED: bool = cfg!(feature = "mpi");
