"""Reading run folders: grouping, masking, and one clear error for a bad folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connstorm.reports.errors import ReportError
from connstorm.reports.run_folder import combine, load_run, mask_text
from tests.reports.run_folders import PASSWORD, summary, write_run


def test_run_folder_load_groups_samples_and_masks_passwords(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "run"))
    assert set(run.samples) == {"postgres", "pgbouncer", "emulator", "locust"}
    assert len(run.series("postgres")) == 12
    assert PASSWORD not in json.dumps(run.stack) + json.dumps(run.scenario)
    assert run.stack["app_password"] == "********"
    assert run.versions["postgresql"] == "15.18"
    assert run.versions["pgbouncer"] == "1.18.0"
    assert run.name == "direct-module_level"


def test_run_folder_mask_text_handles_url_and_keyword_dsns() -> None:
    assert mask_text("postgresql://u:p%40ss@h:1/d") == "postgresql://u:********@h:1/d"
    assert mask_text("host=h password='a b' user=u") == "host=h password=******** user=u"
    assert mask_text("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080/x"


def test_run_folder_load_comparison_keeps_summary_order(tmp_path: Path) -> None:
    write_run(tmp_path / "repro" / "variants" / "b-second")
    write_run(tmp_path / "repro" / "variants" / "a-first")
    (tmp_path / "repro" / "summary.json").write_text(json.dumps(
        {"scenario": "repro", "variants": [{"name": "b-second"}, {"name": "a-first"}]}))
    run = load_run(tmp_path / "repro")
    assert [v.name for v in run.variants] == ["b-second", "a-first"]


def test_run_folder_comparison_leaves_out_a_variant_stopped_before_its_stack(
        tmp_path: Path) -> None:
    # variants told to stop as they began: Locust's log; its scenario and an empty
    # samples file too (SIGTERM as the stack started): nothing measured in either
    write_run(tmp_path / "repro" / "variants" / "a-first")
    (tmp_path / "repro" / "variants" / "b-stopped" / "logs").mkdir(parents=True)
    (tmp_path / "repro" / "variants" / "b-stopped" / "logs" / "locust.log").write_text("x\n")
    starting = tmp_path / "repro" / "variants" / "c-starting"
    (starting / "logs").mkdir(parents=True)
    (starting / "scenario.json").write_text(json.dumps({"name": "c-starting"}))
    (starting / "samples.jsonl").write_text("")
    (tmp_path / "repro" / "summary.json").write_text(json.dumps(
        {"scenario": "repro", "variants": [{"name": "a-first"}]}))
    run = load_run(tmp_path / "repro")
    assert [v.name for v in run.variants] == ["a-first"]


def test_run_folder_combine_names_duplicates_apart(tmp_path: Path) -> None:
    one = load_run(write_run(tmp_path / "one"))
    two = load_run(write_run(tmp_path / "two"))
    both = combine([one, two], tmp_path)
    assert [v.name for v in both.variants] == ["direct-module_level (1)", "direct-module_level (2)"]
    assert [e["name"] for e in (both.summary or {})["variants"]] == [v.name for v in both.variants]


def test_run_folder_a_repro_variant_folder_keeps_its_variant_name(tmp_path: Path) -> None:
    # `connstorm report runs/repro/variants/*`: each variant's own summary names it by
    # path and pattern, so PgBouncer's two modes were "pgbouncer-module_level (1)" and
    # "(2)"; the folder is the variant's name, as when the repro is rendered whole
    folders = []
    for name in ("pgbouncer-transaction", "pgbouncer-session"):
        folders.append(write_run(tmp_path / "repro" / "variants" / name,
                                 summary_doc=summary("pgbouncer-module_level")))
    both = combine([load_run(f) for f in folders], tmp_path)
    assert [v.name for v in both.variants] == ["pgbouncer-transaction", "pgbouncer-session"]
    assert [e["requests"] for e in (both.summary or {})["variants"]] == [330, 330]


@pytest.mark.parametrize(("setup", "message"), [
    ("missing", "no such run folder"),
    ("file", "not a folder"),
    ("empty", "not a run folder"),
    ("bad_json", "summary.json: invalid JSON at line 1"),
    ("bad_line", "samples.jsonl:2: invalid JSON"),
])
def test_run_folder_load_bad_folder_is_one_clear_error(tmp_path: Path, setup: str,
                                                       message: str) -> None:
    target = tmp_path / "run"
    if setup == "file":
        target.write_text("x")
    elif setup == "empty":
        target.mkdir()
    elif setup == "bad_json":
        write_run(target)
        (target / "summary.json").write_text("{nope")
    elif setup == "bad_line":
        write_run(target)
        (target / "samples.jsonl").write_text('{"collector":"postgres","elapsed_s":0}\n{x\n{}\n')
    with pytest.raises(ReportError, match=message) as caught:
        load_run(target)
    assert "\n" not in str(caught.value)


def test_run_folder_load_skips_an_unfinished_last_line(tmp_path: Path) -> None:
    target = write_run(tmp_path / "run")
    with (target / "samples.jsonl").open("a") as handle:
        handle.write('{"collector": "postgres", "elap')
    assert len(load_run(target).series("postgres")) == 12


def test_run_folder_load_adds_the_functions_error_kinds_from_samples(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "run"))
    entry = (run.summary or {})["variants"][0]
    # the last emulator sample of run_folders.samples() counted 5 refusals
    assert entry["function_errors_by_kind"] == {"too_many_connections": 5}
