//! What MPI launchers put in each process's environment, read without linking MPI.

/// This process's place in a launched job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub rank: usize,
    pub size: usize,
    /// Rank among the processes on this node: the GPU a rank uses by default.
    pub local_rank: usize,
    /// Processes on this node, when the launcher says (they share its cores).
    pub local_size: Option<usize>,
    /// "mpirun (Open MPI)", "srun (Slurm)", …, for messages.
    pub launcher: &'static str,
}

/// (launcher, rank, size, local-rank and local-size variables), most specific first. Slurm's
/// step variables are set only inside `srun`, not merely inside an allocation (`SLURM_NTASKS`
/// is set by `sbatch` for the batch script too, which is one process).
const LAUNCHERS: [(&str, &str, &str, &str, &str); 4] = [
    (
        "mpirun (Open MPI)",
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "OMPI_COMM_WORLD_LOCAL_SIZE",
    ),
    (
        "mpiexec (PMIx)",
        "PMIX_RANK",
        "PMIX_SIZE",
        "PMIX_LOCAL_RANK",
        "PMIX_LOCAL_SIZE",
    ),
    (
        "mpiexec (MPICH/PMI)",
        "PMI_RANK",
        "PMI_SIZE",
        "MPI_LOCALRANKID",
        "MPI_LOCALNRANKS",
    ),
    (
        "srun (Slurm)",
        "SLURM_PROCID",
        "SLURM_STEP_NUM_TASKS",
        "SLURM_LOCALID",
        "SLURM_NTASKS_PER_NODE",
    ),
];

impl Launch {
    /// The launch this process is part of, or `None` when it was started on its own.
    pub fn from_env() -> Option<Launch> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// As [`Launch::from_env`], reading variables through `var` (tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Launch> {
        let num = |k: &str| var(k).and_then(|v| v.trim().parse::<usize>().ok());
        LAUNCHERS.iter().find_map(|&(launcher, r, s, l, ls)| {
            let (rank, size) = (num(r)?, num(s)?);
            (size >= 1 && rank < size).then_some(Launch {
                rank,
                size,
                local_rank: num(l).unwrap_or(0),
                local_size: num(ls).filter(|&n| n >= 1),
                launcher,
            })
        })
    }
}

/// Threads for a CPU backend's pool when several ranks share this node's cores and the user set
/// none (`RAYON_NUM_THREADS`): the cores divided among the local ranks, so that N ranks do not
/// run N × cores threads.
pub fn cpu_threads_per_rank() -> Option<usize> {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return None;
    }
    let local = Launch::from_env()?.local_size.filter(|&n| n > 1)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some((cores / local).max(1))
}

/// The GPU index this process should use: `--device-index` when given, else the local rank
/// under a launcher (one rank per GPU), else the default device.
pub fn device_index(explicit: Option<usize>) -> Option<usize> {
    explicit.or_else(|| {
        Launch::from_env()
            .filter(|l| l.size > 1)
            .map(|l| l.local_rank)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn launch(vars: &[(&str, &str)]) -> Option<Launch> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Launch::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn launchers_are_recognized_by_their_variables() {
        let l = launch(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
        ])
        .unwrap();
        assert_eq!((l.rank, l.size, l.local_rank), (1, 4, 1));
        assert_eq!(l.local_size, None);
        assert_eq!(l.launcher, "mpirun (Open MPI)");
        let s = launch(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_STEP_NUM_TASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NTASKS", "8"),
        ])
        .unwrap();
        assert_eq!((s.rank, s.size, s.local_rank), (5, 8, 1));
        // An sbatch script (one process) has SLURM_NTASKS but no step variables.
        assert_eq!(
            launch(&[("SLURM_NTASKS", "8"), ("SLURM_PROCID", "0")]),
            None
        );
        assert_eq!(launch(&[]), None);
        // Nonsense is ignored rather than trusted.
        assert_eq!(
            launch(&[("PMI_RANK", "3"), ("PMI_SIZE", "2")]),
            None,
            "rank beyond size"
        );
    }
}
