"""Masks (docs/ALGORITHM.md §1): embeddings, stored, cumulative and summative masks."""

import pytest
import torch

from avalanche_adahat import HATMask
from avalanche_adahat.models import HATMLP
from avalanche_adahat.nn import init_embedding


def test_store_cumulative_and_summative_after_three_tasks():
    mask = HATMask(4)
    values = {0: [1.0, -1.0, 2.0, -3.0], 1: [0.5, 0.5, -1.0, -1.0], 2: [2.0, -0.1, -0.2, 0.0]}
    for t, v in values.items():
        mask.add_task(t, "N01")
        with torch.no_grad():
            mask.embeddings[str(t)].copy_(torch.tensor(v))
        mask.store(t)
    assert torch.equal(mask.stored_mask(0), torch.tensor([1.0, 0, 1, 0]))
    assert torch.equal(mask.stored_mask(1), torch.tensor([1.0, 1, 0, 0]))
    assert torch.equal(mask.stored_mask(2), torch.tensor([1.0, 0, 0, 0]))  # e = 0 is not > 0
    assert torch.equal(mask.cumulative, torch.tensor([1.0, 1, 1, 0]))
    assert torch.equal(mask.summative, torch.tensor([3.0, 1, 1, 0]))


def test_stored_mask_equals_rounded_gate_at_s_max():
    torch.manual_seed(0)
    mask = HATMask(100)
    mask.add_task(0, "N01")
    stored = mask.store(0)
    assert torch.equal(stored, torch.round(mask.soft(0, 400.0)).detach())


@pytest.mark.parametrize(
    "mode, low, high", [("N01", None, None), ("U-11", -1, 1), ("U01", 0, 1), ("U-10", -1, 0)]
)
def test_init_modes(mode, low, high):
    torch.manual_seed(0)
    e = init_embedding(torch.empty(5000), mode)
    if low is None:
        assert abs(e.mean().item()) < 0.05 and abs(e.std().item() - 1) < 0.05
    else:
        assert e.min().item() >= low and e.max().item() <= high
        assert abs(e.mean().item() - (low + high) / 2) < 0.05


def test_init_mode_last_copies_previous_task():
    mask = HATMask(6)
    mask.add_task(0, "N01")
    mask.add_task(1, "last")
    assert torch.equal(mask.embeddings["1"], mask.embeddings["0"])
    assert mask.embeddings["1"] is not mask.embeddings["0"]


def test_init_mode_rejects_unknown():
    with pytest.raises(ValueError, match="task_embedding_init_mode.*'normal'"):
        init_embedding(torch.empty(3), "normal")


def test_gates_follow_training_state():
    torch.manual_seed(0)
    model = HATMLP(4, (3,), 2)
    for mask in model.hat_masks():
        mask.add_task(0, "N01")
    e = model.masks[0].embeddings["0"]
    model.train()
    model.set_step_gates(0, torch.sigmoid(2.0 * e))
    torch.testing.assert_close(model.task_gates(0)[0], torch.sigmoid(2.0 * e))
    model.eval()  # the task being trained, evaluated before it is stored: s_max
    torch.testing.assert_close(model.task_gates(0)[0], torch.sigmoid(400.0 * e))
    model.store_task_masks(0)
    model.train()  # once stored: the binary mask, whatever the mode
    assert torch.equal(model.task_gates(0)[0], (e > 0).float())
    assert model.task_gates(7) is None  # never trained: no gate


def test_training_forward_uses_the_step_gates_it_is_given():
    """The plugin hands each step's gates (one vector over all masks, with their graph) to
    the model; training forwards of that task use views of it, nothing flows back, and a
    model holding them still copies and pickles."""
    import copy
    import pickle

    torch.manual_seed(0)
    model = HATMLP(4, (3, 5), 2)
    for mask in model.hat_masks():
        mask.add_task(0, "N01")
    embeddings = model.task_embeddings(0)
    expected = torch.cat([m.embeddings["0"] for m in model.hat_masks()])
    assert torch.equal(embeddings, expected) and embeddings.requires_grad
    gates = torch.sigmoid(2.0 * embeddings)  # HAT Eq. 1 on all masks at once
    model.train()
    model.set_step_gates(0, gates)
    per_layer = model.task_gates(0)
    assert [g.shape[0] for g in per_layer] == [3, 5]
    assert all(g._base is gates for g in per_layer)  # views of the step's vector
    model(torch.randn(6, 4), 0).sum().backward()
    assert model.masks[0].embeddings["0"].grad is not None  # through the given gates
    assert copy.deepcopy(model)._step_gates is None
    assert pickle.loads(pickle.dumps(model))._step_gates is None
    model.eval()  # evaluation: s_max, whatever was handed in
    torch.testing.assert_close(
        model.task_gates(0)[1], torch.sigmoid(400.0 * model.masks[1].embeddings["0"])
    )
    model.train()
    model.set_step_gates(None, None)  # no step gates: s_max
    torch.testing.assert_close(
        model.task_gates(0)[0], torch.sigmoid(400.0 * model.masks[0].embeddings["0"])
    )


def test_masks_travel_in_state_dict():
    torch.manual_seed(0)
    model = HATMLP(4, (3, 2), 2)
    for t in (0, 1):
        for mask in model.hat_masks():
            mask.add_task(t, "N01")
        model.store_task_masks(t)
    state = model.state_dict()
    assert "masks.0.mask_T1" in state and "masks.1.summative" in state
    fresh = HATMLP(4, (3, 2), 2)
    fresh.load_state_dict(state, strict=False)  # heads differ; masks are created on load
    for a, b in zip(model.hat_masks(), fresh.hat_masks()):
        assert torch.equal(a.stored_mask(1), b.stored_mask(1))
        assert torch.equal(a.summative, b.summative)
        assert torch.equal(a.embeddings["0"], b.embeddings["0"])


def test_mlp_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="hidden_sizes"):
        HATMLP(4, (), 2)
    with pytest.raises(ValueError, match="dropout"):
        HATMLP(4, (3,), 2, dropout=1.5)
    model = HATMLP(4, (3,), 2)
    with pytest.raises(ValueError, match="input_size"):
        model(torch.zeros(2, 5), 0)


def test_covered_parameters_of_mlp():
    model = HATMLP(4, (3, 2), 2)
    covered = {c.name: c for c in model.covered_parameters()}
    assert set(covered) == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"}
    assert covered["layers.0.weight"].in_mask is None  # data input: never masked
    assert covered["layers.1.weight"].in_mask is model.masks[0]
    assert covered["layers.1.bias"].in_mask is None


def test_frozen_entries_by_hand():
    """HAT Eq. 2: an entry is frozen (rate 0) where an earlier task uses both its output
    unit and its input unit; each input unit covers ``in_repeat`` features."""
    from avalanche_adahat.nn.mask import CoveredParameter

    out_mask, in_mask = HATMask(3), HATMask(2)
    out_mask.cumulative.copy_(torch.tensor([1.0, 0.0, 1.0]))
    in_mask.cumulative.copy_(torch.tensor([0.0, 1.0]))
    weight = torch.nn.Parameter(torch.zeros(3, 4))
    cp = CoveredParameter("w", weight, out_mask, in_mask, in_repeat=2)
    expected = torch.tensor(
        [[False, False, True, True], [False, False, False, False], [False, False, True, True]]
    )
    assert torch.equal(cp.frozen_entries(), expected)
    bias = CoveredParameter("b", torch.nn.Parameter(torch.zeros(3)), out_mask)
    assert torch.equal(bias.frozen_entries(), torch.tensor([True, False, True]))
