"""A model ``state_dict`` written before the layered redesign (commit e5a13b9, the flat
package) loads into today's backbone and routes its samples to the same bits.

``tests/data/hatmlp_state_e5a13b9.pt`` was written by ``tests/data/make_hatmlp_state.py``
run on a checkout of e5a13b9: HAT, class-incremental split digits (2 tasks), the
``lda_cascade`` router with its input space, and its outputs on 40 test images."""

from pathlib import Path

import torch
from avalanche.models.utils import avalanche_model_adaptation

from avalanche_adahat.data import split_digits
from avalanche_adahat.inference import set_task_inference
from avalanche_adahat.models import HATMLP

DATA = Path(__file__).resolve().parents[1] / "data" / "hatmlp_state_e5a13b9.pt"


def test_a_state_dict_from_before_the_redesign_loads_and_routes_bitwise():
    saved = torch.load(DATA)
    model = HATMLP(64, (16, 16))
    for exp in split_digits(5, seed=0).train_stream[:2]:
        avalanche_model_adaptation(model, exp)  # the heads the stream makes
    assert str(model.load_state_dict(saved["state"])) == "<All keys matched successfully>"
    for key, value in saved["state"].items():
        assert torch.equal(model.state_dict()[key], value), key
    set_task_inference(model, "lda_cascade")
    model.eval()
    with torch.no_grad():
        out = model(saved["x"], torch.zeros(len(saved["x"]), dtype=torch.long))
    assert torch.equal(out, saved["out"])
    assert torch.equal(model.router.last_tasks, saved["tasks"])
