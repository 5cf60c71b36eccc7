#!/bin/sh
# The runs behind docs/RESULTS.md, exactly as run, one CPU thread each, on a 2-core CPU shared
# with other jobs (at most two jobs at a time; jobs split into parts are merged at the end). Full Fashion-MNIST training sets (60,000 images per
# permuted task, 12,000 per split task); the permuted runs evaluate on 2,000 random test images
# per task (--test-per-task 2000), the split runs on the full test sets (2,000 per task).
set -x
C=".venv/bin/avalanche-adahat compare"
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
# (a) Split Fashion-MNIST (Avalanche's SplitFMNIST), 5 tasks, 1 epoch/task, 3 seeds
time $C --benchmark split_fmnist --n-experiences 5 --strategies adahat,hat,hat_random,hat_const_alpha,hat_const_1,adahat_no_sum,adahat_no_reg,naive,ewc,si,lwf,mas --epochs 1 --batch-size 128 --seeds 0,1,2 --threads 1 --progress lines --output docs/results/split_fmnist
# (c, continued) the first 10 tasks of (c) again, AdaHAT with protect=update (the rate scales the
#     optimizer's update instead of the gradient, which Adam would largely divide out)
time $C --benchmark permuted_fmnist --n-experiences 10 --strategies adahat --model mlp --set 'model.hidden_sizes=[256,100,64]' --set adahat.adjustment_intensity=1e-6 --set adahat.mask_sparsity_reg_factor=0.1 --set adahat.s_max=400 --set adahat.protect=update --epochs 2 --batch-size 128 --optimizer adam --lr 1e-3 --test-per-task 2000 --seeds 0 --threads 1 --progress lines --output docs/results/permuted_fmnist_10_exp1_update
# (a, continued) baselines whose data go partly through Avalanche's per-sample loaders: 1 seed
time $C --benchmark split_fmnist --n-experiences 5 --strategies replay,cumulative,agem --epochs 1 --batch-size 128 --seeds 0 --threads 1 --progress lines --output docs/results/split_fmnist_replay
# (a, continued) seeds 1 and 2 of the Replay/Cumulative/A-GEM job, merged with seed 0 below
time $C --benchmark split_fmnist --n-experiences 5 --strategies replay,cumulative,agem --epochs 1 --batch-size 128 --seeds 1,2 --threads 1 --progress lines --output docs/results/split_fmnist_replay_seeds12
# (a, continued) PackNet, which needs 2 epochs/task (1 to train, 1 after pruning), with AdaHAT and
#     HAT at the same budget
time $C --benchmark split_fmnist --n-experiences 5 --strategies packnet,adahat,hat --epochs 2 --batch-size 128 --seeds 0,1,2 --threads 1 --progress lines --output docs/results/split_fmnist_2epochs
# the parts merged (same settings, versions and hyperparameters checked)
M=".venv/bin/avalanche-adahat merge"
$M docs/results/permuted_fmnist_50_exp1 docs/results/permuted_fmnist_50_exp1_seed1 -o docs/results/permuted_fmnist_50_exp1_all
$M docs/results/split_fmnist_replay docs/results/split_fmnist_replay_seeds12 -o docs/results/split_fmnist_replay_all
$M docs/results/permuted_fmnist_20 docs/results/permuted_fmnist_20_seed1 docs/results/permuted_fmnist_20_seed2 docs/results/permuted_fmnist_20_variants -o docs/results/permuted_fmnist_20_all
.venv/bin/avalanche-adahat report docs/results/permuted_fmnist_50_exp1_all docs/results/permuted_fmnist_10_exp1_update docs/results/permuted_fmnist_20_all docs/results/split_fmnist docs/results/split_fmnist_2epochs docs/results/split_fmnist_replay_all --preamble docs/results/PREAMBLE.md -o docs/RESULTS.md
