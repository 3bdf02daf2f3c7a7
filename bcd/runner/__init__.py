"""`bcd run`: Pachyderm 2.x played on one machine, with the same specs and datum semantics.

It knows pipelines, repos and datums, nothing of what the stages compute. Modules, in the
order data flows through them:

- `spec`      read JSON spec files (one spec, a list, or several documents), snake_case or
              camelCase keys, unknown fields rejected; children sorted as Pachyderm does.
- `dag`       which folder stands in for each input repo; pipelines in upstream-first order.
- `fileset`   a local folder seen as a commit: file and directory entries, content hashes.
- `globs`     ohmyglob patterns and `$n` templates, ported quirk for quirk.
- `datums`    pfs, cross, join (outer too), group and union datums; datum ID and hash.
- `state`     per-pipeline records (hash, outcome, owned files) in a snapshot + fsynced log.
- `recovery`  after a crash: finish the last publish, drop datums with missing files,
              delete files no datum owns.
- `outputs`   the output repo: path collisions between datums, publishing by rename.
- `resources` parallel datums, GPUs per datum, threads per datum.
- `execute`   one datum: /pfs-shaped scratch folder with linked inputs, env, tries,
              timeouts, err_cmd; commands die with the runner.
- `worker_api` the Worker gRPC service (NextDatum) that a batching command talks to.
- `batch`     datum batching: datum sets, one command per set serving datum after datum
              from a worker's stable pfs root, restarted after a failed attempt.
- `job`       one pipeline's job: skip / delete / run / record / publish.
- `lock`      one run per output folder (flock, named holder).
- `summary`   per-pipeline counts, failed datums, exams with error records.
- `run`       `run_pipelines(RunOptions) -> RunSummary`, the library entry point.
- `cli`       `bcd run`.

Deliberate differences from a cluster: inputs are symlinks to the local folders (a
command must not write into its inputs); one run is one commit set, so `<name>_COMMIT`,
PACH_JOB_ID and PACH_OUTPUT_COMMIT_ID are all the run ID; a run cut short (killed, disk
full) is resumed by the next run rather than failed, so finished datums are not redone;
outputs of datums whose inputs disappeared are deleted even when the job fails; image,
working_dir and user are ignored; under datum batching there is no /pfs/.env (the
datum's environment is in the NextDatum reply and in $PFS_ROOT/.env). As on a cluster,
changing a spec's image or cmd does not make datums change: use `--reprocess`.

Test hook: `BCD_RUNNER_TEST_FAULT` (see `outputs`) simulates a full disk, a read-only
output folder or a kill in the middle of publishing.
"""

from bcd.runner.run import RunOptions, run_pipelines
from bcd.runner.summary import JobSummary, RunSummary

__all__ = ["JobSummary", "RunOptions", "RunSummary", "run_pipelines"]
