"""The scheduler of repro's variants: order, overlap, stops, errors, with real child processes.

The children here are small Python programs that behave like a variant's child
(wait for ``go``, write ``stack.json``, say ``loaded``, stop, write
``summary.json``, exit), so that
the scheduling is tested apart from the stacks; ``test_repro.py`` runs the real
variants through the command line.
"""

from __future__ import annotations

import json
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from connstorm.errors import ExitCode
from connstorm.loadtests.orchestrator.repro_jobs import Job, VariantFailedError, run_jobs

CHILD = textwrap.dedent("""
    import json, signal, sys, time
    from pathlib import Path
    run_dir, stack_s, load_s, code, stop_s, chatter = Path(sys.argv[1]), \\
        float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), \\
        int(sys.argv[6])
    log = run_dir.parent / "events.jsonl"
    def event(what):
        with log.open("a") as fh:
            row = {"name": run_dir.name, "what": what, "t": time.monotonic()}
            fh.write(json.dumps(row) + "\\n")
    signal.signal(signal.SIGTERM, lambda *_: (event("terminated"), sys.exit(143)))
    event("prepared")
    if sys.stdin.readline() != "go\\n":
        event("never went")
        sys.exit(0)
    event("go")
    run_dir.mkdir(parents=True, exist_ok=True)
    time.sleep(stack_s)
    (run_dir / "stack.json").write_text("{}")
    event("stack up")
    sys.stdout.write("x" * chatter + "\\n")  # more than a pipe holds, if asked
    sys.stdout.flush()
    time.sleep(load_s)
    if code:
        sys.stderr.write("connstorm: error: postgres failed to start: it broke\\n")
        sys.exit(code)
    event("loaded")
    sys.stdout.write("loaded\\n")
    sys.stdout.flush()
    time.sleep(stop_s)
    event("stopped")
    (run_dir / "summary.json").write_text("{}")
""")


def job(tmp_path: Path, index: int, stack_s: float = 0.3, load_s: float = 1.0,
        code: int = 0, stop_s: float = 0.0, chatter: int = 0) -> Job:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    run_dir = tmp_path / "variants" / f"v{index}"
    return Job(index, f"v{index}", [sys.executable, str(script), str(run_dir), str(stack_s),
                                    str(load_s), str(code), str(stop_s), str(chatter)],
               run_dir)


def events(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "variants" / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return sorted((json.loads(line) for line in lines), key=lambda e: float(e["t"]))


def at(found: list[dict[str, object]], name: str, what: str) -> float:
    return next(float(e["t"]) for e in found if e["name"] == name and e["what"] == what)


def test_variants_go_in_order_each_after_the_last_stack_at_most_limit_at_a_time(
        tmp_path: Path) -> None:
    jobs = [job(tmp_path, i) for i in range(4)]
    (tmp_path / "variants").mkdir()
    started: list[int] = []
    done: list[int] = []
    run_jobs(jobs, 2, lambda i, _: started.append(i), lambda i, _: done.append(i))
    found = events(tmp_path)
    # every variant ran to its summary, in order of going, and was reported done
    assert started == [0, 1, 2, 3]
    assert sorted(done) == [0, 1, 2, 3]
    assert all(j.code == 0 for j in jobs)
    goes = [at(found, f"v{i}", "go") for i in range(4)]
    assert goes == sorted(goes)
    # each went only once the one before had its stack up (stacks never start together)
    for i in range(1, 4):
        assert goes[i] >= at(found, f"v{i - 1}", "stack up")
    # never more than two under load (between go and loaded) at once
    for i in range(2, 4):
        assert goes[i] >= min(at(found, f"v{k}", "loaded") for k in range(i))
    # each child was started before its turn (its start-up overlaps the one before)
    for i in range(1, 4):
        assert at(found, f"v{i}", "prepared") <= goes[i]


def test_one_job_at_a_time_runs_them_one_after_another(tmp_path: Path) -> None:
    jobs = [job(tmp_path, i, load_s=0.3) for i in range(3)]
    (tmp_path / "variants").mkdir()
    run_jobs(jobs, 1, lambda i, _: None, lambda i, _: None)
    found = events(tmp_path)
    for i in range(1, 3):
        assert at(found, f"v{i}", "go") >= at(found, f"v{i - 1}", "loaded")


def test_the_next_variant_goes_while_the_last_ones_stack_stops(tmp_path: Path) -> None:
    # v0's stack takes 3 s to stop after its load: v1 must not wait for that
    jobs = [job(tmp_path, 0, load_s=0.3, stop_s=3.0), job(tmp_path, 1, load_s=0.3)]
    (tmp_path / "variants").mkdir()
    done: list[int] = []
    run_jobs(jobs, 1, lambda i, _: None, lambda i, _: done.append(i))
    found = events(tmp_path)
    assert at(found, "v0", "loaded") <= at(found, "v1", "go") < at(found, "v0", "stopped")
    # and the comparison still waited for both to end
    assert sorted(done) == [0, 1]
    assert all(j.code == 0 for j in jobs)


def test_a_child_writing_more_than_a_pipe_holds_is_not_held_up(tmp_path: Path) -> None:
    jobs = [job(tmp_path, 0, load_s=0.3, chatter=1 << 20), job(tmp_path, 1, load_s=0.3)]
    (tmp_path / "variants").mkdir()
    run_jobs(jobs, 1, lambda i, _: None, lambda i, _: None)
    found = events(tmp_path)
    assert all(j.code == 0 for j in jobs)
    assert at(found, "v1", "go") >= at(found, "v0", "loaded")


def test_a_failing_variant_stops_the_others_and_its_error_is_passed_on(tmp_path: Path) -> None:
    jobs = [job(tmp_path, 0, load_s=30.0), job(tmp_path, 1, load_s=0.5, code=5),
            job(tmp_path, 2)]
    (tmp_path / "variants").mkdir()
    with pytest.raises(VariantFailedError) as failed:
        run_jobs(jobs, 2, lambda i, _: None, lambda i, _: None)
    # the child's one line, named after its variant, with its exit code
    assert str(failed.value) == "v1: postgres failed to start: it broke"
    assert failed.value.exit_code == ExitCode.STACK
    found = events(tmp_path)
    # the one still running was told to stop; the one never told to go never went
    assert any(e["name"] == "v0" and e["what"] == "terminated" for e in found)
    assert jobs[0].code == 143
    assert any(e["name"] == "v2" and e["what"] == "never went" for e in found)
    assert all(j.proc is not None and j.proc.poll() is not None for j in jobs)


def test_sigterm_reaches_every_running_variant_once_and_is_raised(tmp_path: Path) -> None:
    from connstorm.signals import Terminated, exit_on_sigterm

    jobs = [job(tmp_path, i, load_s=30.0) for i in range(2)]
    (tmp_path / "variants").mkdir()

    def terminate_once_both_are_up() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
                (j.run_dir / "stack.json").exists() for j in jobs):
            time.sleep(0.05)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)

    killer = threading.Thread(target=terminate_once_both_are_up, daemon=True)
    killer.start()
    with pytest.raises(Terminated), exit_on_sigterm():
        run_jobs(jobs, 2, lambda i, _: None, lambda i, _: None)
    killer.join()
    found = events(tmp_path)
    assert [e["name"] for e in found if e["what"] == "terminated"].count("v0") == 1
    assert [e["name"] for e in found if e["what"] == "terminated"].count("v1") == 1
    assert [j.code for j in jobs] == [143, 143]


def test_sigterm_leaves_a_variant_whose_load_is_over_to_write_its_summary(
        tmp_path: Path) -> None:
    from connstorm.signals import Terminated, exit_on_sigterm

    # GIVEN v0 loaded and still stopping its stack (5 s) when v1's stack is up
    jobs = [job(tmp_path, 0, load_s=0.3, stop_s=5.0), job(tmp_path, 1, load_s=30.0)]
    (tmp_path / "variants").mkdir()

    def terminate_once_the_second_is_up() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (jobs[1].run_dir / "stack.json").exists():
            time.sleep(0.05)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)

    killer = threading.Thread(target=terminate_once_the_second_is_up, daemon=True)
    killer.start()
    done: list[int] = []
    # WHEN SIGTERM arrives
    with pytest.raises(Terminated), exit_on_sigterm():
        run_jobs(jobs, 1, lambda i, _: None, lambda i, _: done.append(i))
    killer.join()
    found = events(tmp_path)
    # THEN only the variant under load was told to stop ...
    assert [e["name"] for e in found if e["what"] == "terminated"] == ["v1"]
    # ... and the one measured in full finished its summary and counts as done
    assert at(found, "v0", "stopped") > at(found, "v1", "stack up")
    assert (jobs[0].run_dir / "summary.json").exists()
    assert [j.code for j in jobs] == [0, 143]
    assert done == [0]


def test_jobs_must_be_a_whole_number_of_at_least_one(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "connstorm", "repro", "--quick", "--jobs", "0",
                           "--out", str(tmp_path / "repro")], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(
        "argument --jobs: '0': give a whole number of at least 1")
    assert not (tmp_path / "repro").exists()
