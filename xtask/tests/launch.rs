//! A binary built without MPI that finds itself launched as one of several ranks refuses to run:
//! otherwise N copies would train the same run into the same directory.
#![cfg(not(feature = "mpi"))]

use std::process::Command;

fn xtask_as(vars: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["train", "--config", "does-not-matter.toml"]);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn several_ranks_without_mpi_are_refused_with_the_fix_named() {
    for vars in [
        [("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "2")],
        [("SLURM_PROCID", "0"), ("SLURM_STEP_NUM_TASKS", "4")],
    ] {
        let out = xtask_as(&vars);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("built without MPI") && stderr.contains("--features xtask/mpi"),
            "{stderr}"
        );
    }
    // One rank of one (e.g. `srun -n 1`) is an ordinary run: it gets as far as the config.
    let out = xtask_as(&[("OMPI_COMM_WORLD_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "1")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does-not-matter.toml"), "{stderr}");
}
