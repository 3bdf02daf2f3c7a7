"""Re-runs skip, redo and delete as Pachyderm's incremental processing does (doc section 4)."""

from __future__ import annotations

import shutil

from runner_sandbox import job, pfs, pipeline, sh

# One folder per exam, named after the content, so stale outputs would show.
PER_EXAM = sh(
    'n=$(basename "$sample_data"); mkdir "$PFS_ROOT/out/$n"; '
    'c=$(cat "$sample_data/x"); [ "$c" != bad ] && echo "$c" > "$PFS_ROOT/out/$n/$c.txt"'
)
LISTING = sh('cd "$first" && ls -R > "$PFS_ROOT/out/listing.txt"')


def counts(summary, name):
    result = job(summary, name)
    return result.processed, result.skipped, result.deleted


def setup(sandbox, exams: dict[str, str], **spec_fields):
    sandbox.repo("sample_data", {f"{exam}/x": content for exam, content in exams.items()})
    sandbox.specs(
        pipeline("first", pfs("sample_data", "/*"), PER_EXAM, **spec_fields),
        pipeline("second", pfs("first", "/"), LISTING),
    )


def test_unchanged_changed_and_deleted_datums(sandbox):
    setup(sandbox, {"e1": "1", "e2": "2", "e3": "3"})
    first_run = sandbox.run()
    assert first_run.ok
    assert counts(first_run, "first") == (3, 0, 0)

    again = sandbox.run()
    assert counts(again, "first") == (0, 3, 0)
    assert counts(again, "second") == (0, 1, 0)  # upstream outputs did not change

    (sandbox.root / "repos/sample_data/e2/x").write_text("22")
    changed = sandbox.run()
    assert counts(changed, "first") == (1, 2, 0)
    assert counts(changed, "second") == (1, 0, 0)
    assert sandbox.files("first") == {"e1/1.txt": "1\n", "e2/22.txt": "22\n", "e3/3.txt": "3\n"}

    shutil.rmtree(sandbox.root / "repos/sample_data/e3")
    deleted = sandbox.run()
    assert counts(deleted, "first") == (0, 2, 1)
    assert sandbox.files("first") == {"e1/1.txt": "1\n", "e2/22.txt": "22\n"}
    assert "e3" not in sandbox.files("second")["listing.txt"]


def test_reprocess_redoes_everything_and_a_cmd_change_alone_does_not(sandbox):
    setup(sandbox, {"e1": "1", "e2": "2"})
    sandbox.run()
    other_cmd = pipeline("first", pfs("sample_data", "/*"), [*PER_EXAM[:2], PER_EXAM[2] + " "])
    sandbox.specs(other_cmd, pipeline("second", pfs("first", "/"), LISTING))
    assert counts(sandbox.run(), "first") == (0, 2, 0)  # as Pachyderm: use --reprocess
    reprocessed = sandbox.run(reprocess=True)
    assert counts(reprocessed, "first") == (2, 0, 0)
    assert counts(reprocessed, "second") == (1, 0, 0)
    assert counts(sandbox.run(), "first") == (0, 2, 0)  # the new salt is kept


def test_a_failed_job_is_never_the_base(sandbox):
    setup(sandbox, {"a": "1", "b": "2", "c": "3"})
    assert sandbox.run().ok
    data = sandbox.root / "repos/sample_data"
    (data / "b/x").write_text("bad")
    (data / "c/x").write_text("33")
    failed = sandbox.run()
    assert job(failed, "first").status == "failed"
    assert counts(failed, "first") == (1, 1, 0)  # c processed, b failed, a skipped
    assert job(failed, "second").status == "unrunnable"
    assert sandbox.files("first")["c/33.txt"] == "33\n"  # successful outputs are kept

    (data / "b/x").write_text("22")
    recovered = sandbox.run()
    assert recovered.ok
    # c is unchanged since the failed job, but that job is not a base: c runs again.
    assert counts(recovered, "first") == (2, 1, 0)
    assert sandbox.files("first") == {"a/1.txt": "1\n", "b/22.txt": "22\n", "c/33.txt": "33\n"}


def test_every_job_reprocess_spec_never_skips(sandbox):
    setup(sandbox, {"e1": "1"}, reprocess_spec="every_job")
    sandbox.run()
    assert counts(sandbox.run(), "first") == (1, 0, 0)


def test_deleted_output_files_make_their_datum_run_again(sandbox):
    setup(sandbox, {"e1": "1", "e2": "2"})
    sandbox.run()
    (sandbox.out / "first/e2/2.txt").unlink()
    (sandbox.out / "first/stray.txt").write_text("not made by a datum")
    rerun = sandbox.run()
    assert counts(rerun, "first") == (1, 1, 0)
    assert sandbox.files("first") == {"e1/1.txt": "1\n", "e2/2.txt": "2\n"}
