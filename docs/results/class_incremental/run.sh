#!/bin/sh
# The class-incremental runs behind docs/CLASS_INCREMENTAL.md, exactly as run: one CPU thread each,
# from a clean checkout of the commit noted per line (PYTHONPATH pointing at it; the folders without
# a commit in results.json carry it in a COMMIT file), on a 2-core machine shared with other jobs.
# Per-strategy matrix plots were deleted afterwards (results.json holds every matrix).
set -x
C="python -m avalanche_adahat compare --scenario class --threads 1 --progress none --seeds 0,1,2"
R=docs/results/class_incremental
FM="--benchmark split_fmnist --n-experiences 5 --set model.hidden_sizes=[400,400] --optimizer adam --lr 1e-3 --batch-size 128 --epochs 1"
# 6dc8bed: Split FMNIST, MLP 400-400, natural class order, HAT's two feature rules
$C $FM --strategies hat,hat_mahalanobis --output $R/split_fmnist_mlp_hat
# 1fbe91d: two seeded random class orders (Avalanche's order for seed 1 and seed 2, the same for every run)
$C $FM --class-order 1 --strategies hat,replay_2000,streaming_lda --output $R/split_fmnist_mlp_order1
$C $FM --class-order 2 --strategies hat,replay_2000,streaming_lda --output $R/split_fmnist_mlp_order2
# 1fbe91d: split digits (compare's training settings for it: 10 epochs, batch 16, Adam 3e-3)
$C --benchmark split_digits --strategies hat,hat_mahalanobis,hat_entropy_cal,naive,replay_200,streaming_lda,cumulative --output $R/split_digits
# 31ade6a: the feature router with cov_rank=64
$C $FM --strategies hat_lda_cascade --set hat_lda_cascade.cov_rank=64 --output $R/split_fmnist_mlp_rank64
# 31ade6a: the AlexNet-like CNN (HAT; the baselines train the MLP in this scenario)
$C --benchmark split_fmnist --n-experiences 5 --model alexnet --optimizer adam --lr 1e-3 --batch-size 128 --epochs 1 --strategies hat --output $R/split_fmnist_alexnet_hat
# 6dc8bed: AdaHAT's drift (stored vs recomputed statistics)
python benchmarks/cil_drift.py --seeds 0,1,2 --rule lda_cascade --output $R/drift_lda_cascade.md
# 2b2a198 (run to /tmp/cil/<name> from a worktree of that commit, folders copied here): the default router with the input space fused (input_space), three class orders, digits, the CNN
$C $FM --strategies hat --output $R/split_fmnist_mlp_fused_natural
$C $FM --class-order 1 --strategies hat --output $R/split_fmnist_mlp_fused_order1
$C $FM --class-order 2 --strategies hat --output $R/split_fmnist_mlp_fused_order2
$C --benchmark split_digits --strategies hat --output $R/split_digits_fused
$C --benchmark split_fmnist --n-experiences 5 --model alexnet --optimizer adam --lr 1e-3 --batch-size 128 --epochs 1 --strategies hat --output $R/split_fmnist_alexnet_fused
rm -f $R/*/acc_matrix_*.png
