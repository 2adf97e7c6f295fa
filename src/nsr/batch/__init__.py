"""Many runs from one jobs file (`nsr batch`): scenes x presets x budgets x seeds, each trained, meshed,
measured and reported in its own run folder, on Ray (optional extra `nsr[ray]`) or in a plain loop.

    from nsr.batch import load_runs, run_batch
    jobs, specs = load_runs("jobs.yaml")
    outcome = run_batch(jobs, specs, "runs/batch", address="local")

`jobs` reads and checks the jobs file; `pipeline` is one run start to finish; `runners` schedules the runs;
`results` writes the tables. Ray is imported only when a batch runs on it (`nsr.accel.probe.has_ray`).
"""

from nsr.batch.jobs import BatchJobs, JobsError, RunSpec, build_config, load_jobs, load_runs
from nsr.batch.pipeline import BatchError, RunResult, run_one
from nsr.batch.results import read_results, write_results
from nsr.batch.runners import BatchOutcome, BatchProgress, run_batch, use_ray

__all__ = [
    "BatchError",
    "BatchJobs",
    "BatchOutcome",
    "BatchProgress",
    "JobsError",
    "RunResult",
    "RunSpec",
    "build_config",
    "load_jobs",
    "load_runs",
    "read_results",
    "run_batch",
    "run_one",
    "use_ray",
    "write_results",
]
