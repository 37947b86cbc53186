"""``tunecord check``, run as the installed console script, as an admin would."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.dataset.checker import check_file
from bot.dataset.lines import MAX_LINE_BYTES
from bot.dataset.pricing import PriceCatalogue

SYSTEM = "Marv is a factual chatbot that is also sarcastic."
EXE = shutil.which("tunecord", path=str(Path(sys.executable).parent)) or "tunecord"


def line(i, system=SYSTEM):
    return json.dumps({"messages": [
        {"role": "system", "content": system},
        {"role": "user", "content": f"What is {i} + {i}?"},
        {"role": "assistant", "content": f"{2 * i}. Truly the question of the century."},
    ]})


def run(*args):
    proc = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, env=os.environ.copy())
    return proc.returncode, proc.stdout, proc.stderr


def test_trainable_file_exits_zero_with_tier_tokens_and_cost(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text("\n".join(line(i) for i in range(60)) + "\n")
    code, out, _ = run("check", path, "--model", "gpt-4o-mini", "--json")
    report = json.loads(out)
    assert code == 0 and report["trainable"] is True
    assert report["examples"] == report["valid_examples"] == 60
    assert report["errors"] == [] and report["tier"] == "nominal"
    assert report["epochs"] == 3
    price = PriceCatalogue.load().get("gpt-4o-mini")
    direct = check_file(path, price)
    assert report["billed_tokens"] == direct.billed_tokens > 60 * 20
    expected = round(direct.billed_tokens * 3 * 3.00 / 1_000_000, 2)
    assert report["estimated_cost_usd"] == pytest.approx(expected)


def test_errors_are_reported_by_line_and_exit_one(tmp_path):
    lines = [line(i) for i in range(12)]
    lines[2] = "{not json"
    lines[4] = json.dumps({"messages": [{"role": "user", "content": "q"}]})
    lines[7] = lines[6]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, out, _ = run("check", path, "--model", "gpt-4o-mini", "--json")
    report = json.loads(out)
    assert code == 1 and not report["trainable"]
    got = {(e["line"], e["code"]) for e in report["errors"]}
    assert got == {(3, "invalid_json"), (5, "example_missing_assistant_message"), (8, "duplicate_example"),
                   (None, "invalid_n_examples")}
    assert report["valid_examples"] == 9
    text_code, text, _ = run("check", path, "--model", "gpt-4o-mini")
    assert text_code == 1
    assert "line 3: not valid JSON" in text and "line 8: duplicates line 7" in text


def test_usage_errors_exit_two(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(line(1) + "\n")
    assert run("check", path, "--model", "no-such-model")[0] == 2
    assert run("check", tmp_path / "missing.jsonl", "--model", "gpt-4o-mini")[0] == 2
    assert run("check", path, "--model", "gpt-4o-mini", "--epochs", "0")[0] == 2
    assert run("check", path)[0] == 2


def test_retired_model_still_estimates_and_says_so(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text("\n".join(line(i) for i in range(10)) + "\n")
    code, out, _ = run("check", path, "--model", "gpt-3.5-turbo", "--epochs", "3")
    assert code == 0
    assert "shut down on 2026-10-23" in out and "Estimated cost:  $" in out


def test_bom_crlf_blank_lines_and_warnings(tmp_path):
    lines = [line(i) for i in range(10)] + [line(99, system="Another prompt")]
    path = tmp_path / "win.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n\r\n").encode())
    report = check_file(path, PriceCatalogue.load().get("gpt-4o-mini"))
    assert report.valid_examples == 11 and not report.error_counts
    (warning,) = report.warnings
    assert warning.code == "inconsistent_system_prompt" and warning.line == 11


def test_examples_over_the_training_context_are_billed_at_the_cap(tmp_path):
    long = json.dumps({"messages": [{"role": "system", "content": SYSTEM},
                                    {"role": "user", "content": "word " * 20000},
                                    {"role": "assistant", "content": "ok"}]})
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join([long] + [line(i) for i in range(10)]) + "\n")
    price = PriceCatalogue.load().get("gpt-3.5-turbo")
    report = check_file(path, price)
    assert [w.code for w in report.warnings] == ["example_too_long"]
    short = check_file_lines(tmp_path, [line(i) for i in range(10)], price)
    assert report.billed_tokens == short.billed_tokens + price.training_context


def check_file_lines(tmp_path, lines, price):
    path = tmp_path / "short.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return check_file(path, price)


def test_a_line_over_the_cap_is_an_error_and_reading_continues(tmp_path):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as f:
        f.write(b'{"messages": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n')
        f.write(("\n".join(line(i) for i in range(10)) + "\n").encode())
    report = check_file(path, PriceCatalogue.load().get("gpt-4o-mini"))
    assert [(e.line, e.code) for e in report.errors] == [(1, "line_too_long")]
    assert report.valid_examples == 10


def test_not_utf8_is_reported(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"messages": "caf\xe9"}\n')
    report = check_file(path, PriceCatalogue.load().get("gpt-4o-mini"))
    assert (1, "invalid_encoding") in [(e.line, e.code) for e in report.errors]


def test_parallel_scan_reports_exactly_what_a_single_scan_does(tmp_path):
    lines = [line(i) for i in range(400)]
    lines[5] = "{broken"
    lines[390] = lines[3]  # a duplicate across parts
    lines[250] = line(250, system="Someone else")  # disagreement in a later part
    lines[120] = lines[121]  # a duplicate within a part
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    price = PriceCatalogue.load().get("gpt-4o-mini")
    single = check_file(path, price, workers=1)
    parallel = check_file(path, price, workers=3, parallel_min_bytes=0)
    assert parallel.to_json() == single.to_json()
    assert {(e.line, e.code) for e in single.errors} == {(6, "invalid_json"), (391, "duplicate_example"),
                                                         (122, "duplicate_example")}
    assert [(w.line, w.code) for w in single.warnings] == [(251, "inconsistent_system_prompt")]
    assert single.valid_examples == 397


def test_duplicates_name_the_first_line_when_the_index_spills_to_disk(tmp_path, monkeypatch):
    """With runs of 16 entries, 400 lines spill 25 sorted runs; the report is the same as
    with everything in memory, and with 3 processes."""
    import bot.dataset.duplicates

    lines = [line(i) for i in range(400)]
    lines[399] = lines[398] = lines[2]  # three copies of line 3, far apart
    lines[200] = lines[17]
    path = tmp_path / "dups.jsonl"
    path.write_text("\n".join(lines) + "\n")
    price = PriceCatalogue.load().get("gpt-4o-mini")
    in_memory = check_file(path, price, workers=1)
    monkeypatch.setattr(bot.dataset.duplicates, "RUN_ENTRIES", 16)
    spilled = check_file(path, price, workers=1)
    parallel = check_file(path, price, workers=3, parallel_min_bytes=0)
    assert spilled.to_json() == in_memory.to_json() == parallel.to_json()
    assert [e.message for e in spilled.errors] == [
        "line 201: duplicates line 18", "line 399: duplicates line 3", "line 400: duplicates line 3"
    ]
    assert spilled.valid_examples == 397


def test_over_a_thousand_problems_lists_the_first_thousand_by_line_in_every_mode(tmp_path):
    lines = [line(i) for i in range(3000)]
    for i in range(0, 3000, 2):
        lines[i] = "{broken"
    lines[2999] = lines[1]  # a duplicate found only when the scan ends
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(lines) + "\n")
    price = PriceCatalogue.load().get("gpt-4o-mini")
    single = check_file(path, price, workers=1)
    parallel = check_file(path, price, workers=2, parallel_min_bytes=0)
    assert single.to_json() == parallel.to_json()
    assert single.error_counts == {"invalid_json": 1500, "duplicate_example": 1}
    assert len(single.errors) == 1000
    assert [e.line for e in single.errors] == list(range(1, 2000, 2))


def test_a_file_with_invalid_n_examples_says_so_even_past_a_thousand_errors(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("{broken\n" * 1200 + line(1) + "\n")
    report = check_file(path, PriceCatalogue.load().get("gpt-4o-mini"))
    assert report.errors[-1].code == "invalid_n_examples"
    assert len(report.errors) == 1000
