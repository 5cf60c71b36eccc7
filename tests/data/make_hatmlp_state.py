"""Writes ``hatmlp_state_e5a13b9.pt`` (argument 1): a class-incremental HAT model on split
digits (2 tasks; feature statistics and the input space) and its routed outputs on 40 test
images. Written for the flat package of commit e5a13b9 (``avalanche_adahat.benchmarks``,
``HATModule.set_task_inference``); run it on a checkout of that commit."""

import sys
import warnings

import torch
from avalanche_adahat.benchmarks import split_digits

from avalanche_adahat import HAT
from avalanche_adahat.models import HATMLP

warnings.simplefilter("ignore")
torch.manual_seed(0)
benchmark = split_digits(5, seed=0)
model = HATMLP(64, (16, 16))
strategy = HAT(
    model=model,
    optimizer=torch.optim.Adam(model.parameters(), 1e-2),
    train_mb_size=32,
    train_epochs=1,
    evaluator=None,
    task_ids="per_experience",
)
for experience in benchmark.train_stream[:2]:
    strategy.train(experience)
x = torch.stack([benchmark.test_stream[1].dataset[i][0] for i in range(40)])
model.set_task_inference("lda_cascade")
model.eval()
with torch.no_grad():
    out = model(x, torch.zeros(40, dtype=torch.long))
torch.save(
    {"state": model.state_dict(), "x": x, "out": out, "tasks": model.last_inferred_tasks},
    sys.argv[1],
)
