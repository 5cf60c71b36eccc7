#!/bin/sh
# The runs behind docs/RESULTS.md, one after another, one CPU thread each
# (2 shared CPU cores: the data are subsampled per task to fit the time budget).
set -x
C=".venv/bin/avalanche-adahat compare"
time $C --benchmark split_fmnist --n-experiences 5 --strategies adahat,hat,hat_random,hat_const_alpha,hat_const_1,adahat_no_sum,adahat_no_reg,naive,ewc,lwf --epochs 1 --batch-size 64 --train-per-task 1000 --test-per-task 500 --seeds 0,1,2 --threads 1 --progress lines --output docs/results/split_fmnist
time $C --benchmark permuted_fmnist --n-experiences 10 --strategies adahat,hat,naive --epochs 1 --batch-size 128 --train-per-task 2000 --test-per-task 300 --seeds 0 --threads 1 --progress lines --output docs/results/permuted_fmnist_10
# Not run yet (did not fit the CPU budget): AdaHAT Exp. 1 setting, 50 tasks
# avalanche-adahat compare --benchmark permuted_fmnist --n-experiences 50 --strategies adahat,hat --set hat.mask_sparsity_reg_factor=0.1 --set adahat.adjustment_intensity=1e-6 --set model.hidden_sizes=[256,100,64] --epochs 2 --batch-size 128 --optimizer adam --lr 1e-3 --train-per-task 500 --test-per-task 100 --seeds 0 --threads 1 --progress lines --output docs/results/permuted_fmnist_50_exp1
.venv/bin/avalanche-adahat report docs/results/split_fmnist docs/results/permuted_fmnist_10 --preamble docs/results/PREAMBLE.md -o docs/RESULTS.md
