"""The reproduction table script: its rules on hand-made runs, and a table from folders."""

import reproduction as script


def _run(name, avg, diagonal=None):
    diagonal = diagonal or [[0.9] * 20 for _ in avg]
    return script.Run("f", name, avg, [0.0] * len(avg), diagonal, f"cmd {name}")


def test_rules_use_the_seed_spread():
    a = _run("a", [0.70, 0.72, 0.74])  # mean 0.72, std 0.02
    b = _run("b", [0.71, 0.71, 0.71])
    c = _run("c", [0.66, 0.67, 0.68])
    # 0.01 apart: within the spread, 0.02
    assert not script.beats(a, b) and script.within_noise(b, a)
    assert script.beats(a, c) and not script.within_noise(c, a)  # 0.05 apart
    assert a.text() == "0.720 ± 0.020 (BWT +0.000, 3 seeds)"
    drop = _run("h", [0.6], [[0.9] * 10 + [0.6] * 10])
    assert abs(script.plasticity_drop(drop) - 0.3) < 1e-12


def test_table_marks_missing_folders_and_lists_commands(tmp_path, monkeypatch):
    monkeypatch.setattr(script, "RESULTS", tmp_path)  # no folder at all: every row "not run"
    table = script.rows()
    assert table and all(r["verdict"] == "not run" and not r["commands"] for r in table)
    text = script.markdown(table)
    assert "| benchmark | strategy | setting | ours | paper's claim | reproduced | why |" in text
    assert text.count("**not run**") == len(table)
