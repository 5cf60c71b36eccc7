"""benchmarks/class_incremental_table.py: the table from fabricated compare results."""

import json

import class_incremental_table as script


def test_table_rows_from_results_json(tmp_path, capsys):
    run = {"avg_acc": 0.8, "forgetting": 0.1, "task_id_acc": 0.9, "memory_bytes": 1000,
           "stored_samples": 0}  # fmt: skip
    data = {
        "config": {"benchmark": "split_fmnist", "model": "mlp",
                   "model_params": {"hidden_sizes": [400, 400]}, "class_order": "1",
                   "params": {"hat": {"cov_rank": 64}}},  # fmt: skip
        "versions": {"avalanche_adahat_commit": "abc"},
        "strategies": {"hat": {"per_seed": {"0": {**run, "seed": 0},
                                            "1": {**run, "seed": 1, "avg_acc": 0.9}}}},
    }  # fmt: skip
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps(data))
    script.main([str(tmp_path / "a")])
    row = capsys.readouterr().out.splitlines()[2]
    # mean 0.85, sample std of (0.8, 0.9) = 0.0707
    assert row == (
        "| split_fmnist, MLP 400-400, order 1 | `hat` (cov_rank=64) | 0,1 | 0.850 ± 0.071 "
        "| 0.900 ± 0.000 | 0.100 ± 0.000 | 0 | 1,000 | abc | a |"
    )
