"""The grid probes' script: its compare arguments, its records, its table."""

import argparse
from pathlib import Path

import grid_probes as script
import robustness_grid as grid


def test_probe_args_set_the_probe_intensity_by_optimizer(tmp_path):
    for cell, intensity in (("sgd_s80", "400"), ("sdigits", "40")):
        cell_obj = grid.CELL_BY_NAME[cell]
        args = script.probe_args("loss_t40", cell_obj, 1, tmp_path)
        expected = grid.compare_args(cell_obj, "t20", 1, tmp_path)
        changed = [(a, b) for a, b in zip(args, expected) if a != b]
        assert changed == [(f"adahat.adjustment_intensity={intensity}", "adahat.adjustment_intensity=20")]  # fmt: skip


def test_probe_args_add_the_probes_settings():
    cell = grid.CELL_BY_NAME["sdigits"]
    args = script.probe_args("u01_t5", cell, 0, Path("out"))
    assert args[-2:] == ["--set", "adahat.task_embedding_init_mode=U01"]
    assert "adahat.adjustment_intensity=5" in args


def test_record_keeps_accuracy_bwt_and_accuracy_when_learnt():
    results = {
        "strategies": {
            "adahat": {
                "per_seed": {
                    "2": {"avg_acc": 0.7, "bwt": -0.1, "acc_matrix": [[0.9, None], [0.6, 0.8]]}
                }
            }
        }
    }
    assert script.record(results) == {"2": {"avg_acc": 0.7, "bwt": -0.1, "learnt": 0.85}}


def test_table_has_a_row_per_cell_and_a_column_per_probe(capsys):
    assert script.table(argparse.Namespace(probes="loss_t20,delay_t20", cells=None)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + len(script.CELLS)
    for line, cell in zip(lines[2:], script.CELLS):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == cell and len(cells) == 2 + 2
        assert all(c.count("±") == 1 for c in cells[1:])  # every probe ran 3 seeds
