"""Writes tests/data/hatmlp_state_e5a13b9.pt: a class-incremental HAT model on split digits
(2 tasks, feature statistics and input space) and its routed outputs on 40 test images."""
import sys, warnings, torch
from avalanche_adahat import HAT
from avalanche_adahat.models import HATMLP
from avalanche_adahat.benchmarks import split_digits
warnings.simplefilter("ignore")
torch.manual_seed(0)
bm = split_digits(5, seed=0, return_task_id=False) if False else split_digits(5, seed=0)
model = HATMLP(64, (16, 16))
s = HAT(model=model, optimizer=torch.optim.Adam(model.parameters(), 1e-2), train_mb_size=32,
        train_epochs=1, evaluator=None, task_ids="per_experience")
for e in bm.train_stream[:2]:
    s.train(e)
x = torch.stack([bm.test_stream[1].dataset[i][0] for i in range(40)])
model.set_task_inference("lda_cascade")
model.eval()
with torch.no_grad():
    out = model(x, torch.zeros(40, dtype=torch.long))
torch.save({"state": model.state_dict(), "x": x, "out": out, "tasks": model.last_inferred_tasks}, sys.argv[1])
print(sorted(k for k in model.state_dict() if "statistics" in k)[:4], len(model.state_dict()))
