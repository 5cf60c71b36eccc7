#!/bin/sh
# The runs behind docs/RESULTS.md, exactly as run, one CPU thread each, on a 2-core CPU shared
# with other jobs (at most two training jobs at a time; jobs split into parts are merged at the
# end: only the merged folders are kept, each recording its parts' commands; the parts' own
# folders are in the git history). Full Fashion-MNIST training sets; permuted tasks evaluated on
# 2,000 test images each.
# The jobs of 2026-12-02 ran from a snapshot of commit ac9d19f (PYTHONPATH=/tmp/snap holding
# `git archive ac9d19f avalanche_adahat`); see docs/results/PREAMBLE.md for the others' versions.
set -x
C=".venv/bin/avalanche-adahat compare"
# Long sequence: Permuted FMNIST, 50 tasks, library defaults; EWC one job per seed.
time $C --benchmark permuted_fmnist --n-experiences 50 --strategies adahat,hat,naive --epochs 1 --batch-size 128 --test-per-task 2000 --seeds 0,1,2 --threads 1 --progress lines --output docs/results/pfm50_defaults
time $C --benchmark permuted_fmnist --n-experiences 50 --strategies ewc --epochs 1 --batch-size 128 --test-per-task 2000 --seeds 0 --threads 1 --progress lines --output docs/results/pfm50_ewc_seed0
time $C --benchmark permuted_fmnist --n-experiences 50 --strategies ewc --epochs 1 --batch-size 128 --test-per-task 2000 --seeds 1 --threads 1 --progress lines --output docs/results/pfm50_ewc_seed1
# Short sequence: Split FMNIST, 5 tasks, library defaults; PackNet at 2 epochs with AdaHAT and HAT.
time $C --benchmark split_fmnist --n-experiences 5 --strategies adahat,hat,naive,ewc,si,lwf,mas --epochs 1 --batch-size 128 --seeds 0,1,2 --threads 1 --progress lines --output docs/results/sfm5_defaults
time $C --benchmark split_fmnist --n-experiences 5 --strategies packnet,adahat,hat --epochs 2 --batch-size 128 --seeds 0,1,2 --threads 1 --progress lines --output docs/results/sfm5_2epochs_defaults
# Plain SGD: Permuted FMNIST, 20 tasks.
time $C --benchmark permuted_fmnist --n-experiences 20 --strategies adahat,hat,naive --optimizer sgd --lr 0.05 --epochs 1 --batch-size 128 --test-per-task 2000 --seeds 0,1,2 --threads 1 --progress lines --output docs/results/pfm20_sgd
# compare with no options (split_digits; its defaults), 3 seeds.
time $C --progress none --seeds 0,1,2 --threads 1 --output docs/results/compare_defaults
# Permuted FMNIST 20, AdaHAT with the defaults: the study's folder (benchmarks/adahat_study.py).
time $C --benchmark permuted_fmnist --n-experiences 20 --epochs 1 --batch-size 128 --test-per-task 2000 --seeds 0,1,2 --threads 1 --progress lines --strategies adahat --set adahat.protect=update --set adahat.adjustment_intensity=1e-2 --set adahat.mask_sparsity_reg_factor=0.1 --output docs/results/study_pfm20_update_a1e-2_r0.1
# Earlier jobs (older commits; their "adahat" ran the paper configuration, compare's default then).
# (c) AdaHAT paper, Experiment 1 setting, on Permuted Fashion-MNIST (the paper: Permuted MNIST,
#     10 seeds): 50 tasks, MLP 784-256-100-64, batch 128, 2 epochs/task, Adam lr 1e-3,
#     adjustment_intensity 1e-6, mask_sparsity_reg_factor 0.1 (both methods), s_max 400.
time $C --benchmark permuted_fmnist --n-experiences 50 --strategies adahat,hat --model mlp --set 'model.hidden_sizes=[256,100,64]' --set adahat.adjustment_intensity=1e-6 --set adahat.mask_sparsity_reg_factor=0.1 --set adahat.s_max=400 --set hat.mask_sparsity_reg_factor=0.1 --set hat.s_max=400 --epochs 2 --batch-size 128 --optimizer adam --lr 1e-3 --test-per-task 2000 --seeds 0 --threads 1 --progress lines --output docs/results/permuted_fmnist_50_exp1
# (c, more seeds) seed 1 of (c), merged with seed 0 below
time $C --benchmark permuted_fmnist --n-experiences 50 --strategies adahat,hat --model mlp --set 'model.hidden_sizes=[256,100,64]' --set adahat.adjustment_intensity=1e-6 --set adahat.mask_sparsity_reg_factor=0.1 --set adahat.s_max=400 --set hat.mask_sparsity_reg_factor=0.1 --set hat.s_max=400 --epochs 2 --batch-size 128 --optimizer adam --lr 1e-3 --test-per-task 2000 --seeds 1 --threads 1 --progress lines --output docs/results/permuted_fmnist_50_exp1_seed1
# (b) Permuted Fashion-MNIST, 20 tasks, 1 epoch/task, 3 seeds, in four parts: seed 0 of AdaHAT,
#     HAT and four baselines; the five HAT-family variants (3 seeds); seeds 1 and 2 of the first set
time $C --benchmark permuted_fmnist --n-experiences 20 --strategies adahat,hat,naive,ewc,lwf,si --epochs 1 --batch-size 128 --test-per-task 2000 --seeds 0 --threads 1 --progress lines --output docs/results/permuted_fmnist_20
time $C --benchmark permuted_fmnist --n-experiences 20 --strategies hat_random,hat_const_alpha,hat_const_1,adahat_no_sum,adahat_no_reg --epochs 1 --batch-size 128 --test-per-task 2000 --seeds 0,1,2 --threads 1 --progress lines --output docs/results/permuted_fmnist_20_variants
time $C --benchmark permuted_fmnist --n-experiences 20 --strategies adahat,hat,naive,ewc,lwf,si --epochs 1 --batch-size 128 --test-per-task 2000 --seeds 1 --threads 1 --progress lines --output docs/results/permuted_fmnist_20_seed1
time $C --benchmark permuted_fmnist --n-experiences 20 --strategies adahat,hat,naive,ewc,lwf,si --epochs 1 --batch-size 128 --test-per-task 2000 --seeds 2 --threads 1 --progress lines --output docs/results/permuted_fmnist_20_seed2
# (c, continued) the first 10 tasks of (c) again, AdaHAT with protect=update (the rate scales the
#     optimizer's update instead of the gradient, which Adam would largely divide out)
time $C --benchmark permuted_fmnist --n-experiences 10 --strategies adahat --model mlp --set 'model.hidden_sizes=[256,100,64]' --set adahat.adjustment_intensity=1e-6 --set adahat.mask_sparsity_reg_factor=0.1 --set adahat.s_max=400 --set adahat.protect=update --epochs 2 --batch-size 128 --optimizer adam --lr 1e-3 --test-per-task 2000 --seeds 0 --threads 1 --progress lines --output docs/results/permuted_fmnist_10_exp1_update
# (a, continued) baselines whose data go partly through Avalanche's per-sample loaders: 1 seed
time $C --benchmark split_fmnist --n-experiences 5 --strategies replay,cumulative,agem --epochs 1 --batch-size 128 --seeds 0 --threads 1 --progress lines --output docs/results/split_fmnist_replay
# (a, continued) seeds 1 and 2 of the Replay/Cumulative/A-GEM job, merged with seed 0 below
time $C --benchmark split_fmnist --n-experiences 5 --strategies replay,cumulative,agem --epochs 1 --batch-size 128 --seeds 1,2 --threads 1 --progress lines --output docs/results/split_fmnist_replay_seeds12
# the parts merged (same settings, versions and hyperparameters checked)
M=".venv/bin/avalanche-adahat merge"
$M docs/results/pfm50_defaults docs/results/pfm50_ewc_seed0 docs/results/pfm50_ewc_seed1 -o docs/results/pfm50_all
$M docs/results/permuted_fmnist_50_exp1 docs/results/permuted_fmnist_50_exp1_seed1 -o docs/results/permuted_fmnist_50_exp1_all
$M docs/results/split_fmnist_replay docs/results/split_fmnist_replay_seeds12 -o docs/results/split_fmnist_replay_all
$M docs/results/permuted_fmnist_20 docs/results/permuted_fmnist_20_seed1 docs/results/permuted_fmnist_20_seed2 docs/results/permuted_fmnist_20_variants -o docs/results/permuted_fmnist_20_all
# AdaHAT with its per-task default intensity, for docs/REPRODUCTION.md, each run from a worktree of the commit its
# results.json records: 6bedc95 (intensity 20 under Adam) for pfm50, pfm20, sfm5 and compare_defaults; 366b05c for
# the SGD job (its default, 200 under SGD, is the same at both commits)
time $C --benchmark permuted_fmnist --n-experiences 50 --strategies adahat --epochs 1 --batch-size 128 --test-per-task 2000 --seeds 0,1,2 --threads 1 --progress lines --output docs/results/pfm50_adahat_task
time $C --benchmark permuted_fmnist --n-experiences 20 --strategies adahat --epochs 1 --batch-size 128 --test-per-task 2000 --seeds 0,1,2 --threads 1 --progress lines --output docs/results/pfm20_adahat_task
time $C --benchmark permuted_fmnist --n-experiences 20 --strategies adahat --epochs 1 --batch-size 128 --test-per-task 2000 --optimizer sgd --lr 0.05 --seeds 0,1,2 --threads 1 --progress lines --output docs/results/pfm20_sgd_adahat_task
time $C --benchmark split_fmnist --n-experiences 5 --strategies adahat --epochs 1 --batch-size 128 --seeds 0,1,2 --threads 1 --progress lines --output docs/results/sfm5_adahat_task
rm -f docs/results/*_adahat_task/*.png
.venv/bin/avalanche-adahat report docs/results/pfm50_all docs/results/study_pfm20_update_a1e-2_r0.1 docs/results/permuted_fmnist_20_all docs/results/pfm20_sgd docs/results/sfm5_defaults docs/results/sfm5_2epochs_defaults docs/results/split_fmnist_replay_all docs/results/compare_defaults docs/results/permuted_fmnist_50_exp1_all docs/results/permuted_fmnist_10_exp1_update --preamble docs/results/PREAMBLE.md -o docs/RESULTS.md
.venv/bin/python benchmarks/reproduction.py -o docs/REPRODUCTION.md
