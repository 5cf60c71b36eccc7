"""benchmarks/results_index.py: the index rows from fabricated results.json files."""

import gzip
import json

import results_index as script


def test_index_rows_from_results_json(tmp_path):
    merged = {
        "config": {"benchmark": "permuted_fmnist", "scenario": "task", "n_experiences": 20,
                   "seeds": [0, 1], "strategies": ["adahat"],
                   "command": "avalanche-adahat compare --seeds 0 --output a\n"
                              "avalanche-adahat compare --seeds 1 --output b\n"
                              "avalanche-adahat merge a b -o merged"},
        "versions": {"avalanche_adahat_commit": "abc1234-dirty"},
        "strategies": {"adahat": {}, "ewc": {}},
    }  # fmt: skip
    old = {
        "config": {"benchmark": "split_digits", "n_experiences": None, "seeds": [0],
                   "command": "avalanche-adahat compare --seeds 0 --output x|y"},
        "versions": {"avalanche_adahat": "0.1.0.dev0"},
        "strategies": {"hat": {"acc_matrix": [[1.0], [0.9, 0.8], [0.7, 0.6, 0.5]]}},
    }  # fmt: skip
    (tmp_path / "merged").mkdir()
    (tmp_path / "merged" / "results.json").write_text(json.dumps(merged))
    (tmp_path / "merged" / "results.md").write_text("table")
    (tmp_path / "study" / "old").mkdir(parents=True)
    (tmp_path / "study" / "old" / "results.json.gz").write_bytes(
        gzip.compress(json.dumps(old).encode())
    )
    (tmp_path / "empty").mkdir()  # no results file: no row

    lines = script.index_lines(tmp_path)
    assert lines[: len(script.HEADER)] == script.HEADER
    assert lines[len(script.HEADER) :] == [
        "| [merged](merged/results.md) | permuted_fmnist | task | 20 | adahat, ewc | 0,1 "
        "| `abc1234-dirty` | `avalanche-adahat compare --seeds 0 --output a`"
        "<br>`avalanche-adahat compare --seeds 1 --output b`"
        "<br>`avalanche-adahat merge a b -o merged` |",
        "| [study/old](study/old/) | split_digits | task | 3 | hat | 0 | – "
        "| `avalanche-adahat compare --seeds 0 --output x\\|y` |",
    ]
