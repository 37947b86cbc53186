"""The bounded-memory duplicate finder against a dict, across spilled and cascaded runs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.dataset.duplicates import Duplicate, DuplicateLog, find_duplicates

fingerprints = st.integers(min_value=0, max_value=2**64 - 1) | st.integers(0, 20)
entries = st.lists(st.tuples(fingerprints, st.integers(0, 2**32 - 1)), max_size=400)


def reference(values: list[tuple[int, int]]) -> list[Duplicate]:
    first: dict[int, int] = {}
    found = []
    for line, (fp, billed) in enumerate(values, start=1):
        if fp in first:
            found.append(Duplicate(line, first[fp], billed))
        else:
            first[fp] = line
    return sorted(found)


@settings(max_examples=60, deadline=None)
@given(values=entries, run_entries=st.integers(1, 50))
def test_a_log_finds_what_a_dict_finds(tmp_path_factory, values, run_entries):
    log = DuplicateLog(tmp_path_factory.mktemp("spill"), run_entries=run_entries)
    for line, (fp, billed) in enumerate(values, start=1):
        log.add(fp, line, billed)
    assert sorted(log.duplicates()) == reference(values)


@settings(max_examples=40, deadline=None)
@given(values=entries, parts=st.integers(1, 6), run_entries=st.integers(1, 20), fan_in=st.integers(2, 4))
def test_sealed_runs_of_split_streams_merge_to_the_same_answer(
    tmp_path_factory, values, parts, run_entries, fan_in
):
    """Workers each seal their part; merging their runs (with cascades when there are more
    runs than ``fan_in``) names the first line of the whole stream."""
    spill = tmp_path_factory.mktemp("spill")
    runs = []
    size = -(-len(values) // parts) or 1
    for start in range(0, len(values), size):
        log = DuplicateLog(spill, run_entries=run_entries)
        for line, (fp, billed) in enumerate(values[start : start + size], start=start + 1):
            log.add(fp, line, billed)
        runs += log.seal()
    assert sorted(find_duplicates(runs, spill, fan_in=fan_in)) == reference(values)


def test_spilled_runs_live_in_the_given_folder(tmp_path):
    log = DuplicateLog(tmp_path, run_entries=4)
    for line in range(1, 11):
        log.add(line % 3, line, 7)
    assert len(list(tmp_path.iterdir())) == 1  # one file holds every run
    assert sorted(log.duplicates())[:2] == [Duplicate(4, 1, 7), Duplicate(5, 2, 7)]
