"""samples.jsonl: written row by row, read back whole, by tail, or followed."""

from __future__ import annotations

from pathlib import Path

from connstorm.samples import (
    SampleFollower,
    SampleWriter,
    latest_by_collector,
    read_samples,
    tail_samples,
)


def test_samples_round_trip_with_elapsed_time(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    with SampleWriter(path, started_at=100.0) as writer:
        writer.write("postgres", {"ok": True, "db_total": 3}, t=101.5)
        writer.write("locust", {"ok": False, "error": "boom"}, t=102.0)
    rows = read_samples(path)
    assert rows == [
        {"t": 101.5, "elapsed_s": 1.5, "collector": "postgres", "ok": True, "db_total": 3},
        {"t": 102.0, "elapsed_s": 2.0, "collector": "locust", "ok": False, "error": "boom"},
    ]
    assert read_samples(path, since_t=101.5) == rows[1:]


def test_samples_reader_skips_a_half_written_last_line(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_text('{"t": 1, "collector": "postgres", "ok": true}\n{"t": 2, "coll')
    assert [r["t"] for r in read_samples(path)] == [1]
    assert [r["t"] for r in tail_samples(path)] == [1]


def test_samples_missing_file_is_an_empty_series(tmp_path: Path) -> None:
    assert read_samples(tmp_path / "nope.jsonl") == []
    assert tail_samples(tmp_path / "nope.jsonl") == []


def test_samples_tail_reads_only_the_end(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    with SampleWriter(path, started_at=0) as writer:
        for i in range(2000):
            writer.write("postgres" if i % 2 else "locust", {"ok": True, "i": i}, t=float(i))
    rows = tail_samples(path, max_bytes=4096)
    assert 0 < len(rows) < 100
    assert rows[-1]["i"] == 1999
    latest = latest_by_collector(rows)
    assert latest["postgres"]["i"] == 1999
    assert latest["locust"]["i"] == 1998


def test_follower_reads_only_new_rows_and_waits_for_a_half_written_line(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    follower = SampleFollower(path)
    assert follower.poll() == {}  # no file yet
    with SampleWriter(path) as writer:
        writer.write("postgres", {"ok": True, "db_total": 1}, t=1.0)
        writer.write("emulator", {"ok": True, "env_total": 2}, t=1.0)
        assert {k: r["t"] for k, r in follower.poll().items()} == {"postgres": 1.0,
                                                                    "emulator": 1.0}
        writer.write("postgres", {"ok": False, "error": "gone"}, t=2.0)
    # a row cut in the middle of its write is not seen until its end arrives
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"t": 3.0, "collector": "postgres", "ok": tr')
    latest = follower.poll()
    assert latest["postgres"] == {"t": 2.0, "elapsed_s": latest["postgres"]["elapsed_s"],
                                  "collector": "postgres", "ok": False, "error": "gone"}
    with path.open("a", encoding="utf-8") as handle:
        handle.write('ue, "db_total": 5}\n')
    assert follower.poll()["postgres"]["db_total"] == 5
    assert follower.poll()["emulator"]["env_total"] == 2  # kept while nothing new arrives
    # a new, shorter file under the same name starts over
    path.write_text('{"t": 9.0, "collector": "locust", "ok": true}\n', encoding="utf-8")
    assert list(follower.poll()) == ["locust"]
