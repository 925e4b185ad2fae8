"""The pluralism report: every section on the page, its numbers those of the library's own
metrics, the page self-contained, the simulated new people drawn from the model, and the
command that writes it."""

import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import bayespal
from bayespal.analysis.report import SECTIONS, pluralism_report, simulate_new_users
from bayespal.cli import main
from bayespal.datasets import synthetic, synthetic_prompted
from bayespal.metrics import expected_calibration_error

FAST = dict(pref_dim=4, hidden=(16,), epochs=60, validation_fraction=0, progress=False, seed=0)


@pytest.fixture(scope="module")
def setup():
    syn = synthetic(n_users=90, k=3, n_train=30, n_test=10, n_items=300, seed=1)
    seen, unseen = syn.data.split_users(0.25, seed=0)
    in_seen = np.isin(syn.data.user_ids[syn.data.user], seen.user_ids)
    train = syn.data.subset(in_seen & ~syn.is_test)
    train.meta["texts"] = [f"statement number {i}" for i in range(train.n_items)]
    test = syn.data.subset(in_seen & syn.is_test)
    fit = bayespal.fit(train, k=3, **FAST)
    return fit, test, unseen


def test_the_page_answers_each_question(setup):
    fit, test, unseen = setup
    report = fit.report(test, unseen)
    page = report.to_html()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
        assert f'href="#{section}"' in page  # the contents link to it
    for heading in ("How many kinds of people?", "Who is where?",
                    "What does each prototype prefer?", "Can the probabilities be trusted?",
                    "How fast is a new person placed?"):
        assert heading in page
    # one figure per section at least, all embedded: nothing outside the page
    assert page.count('src="data:image/png;base64,') >= 4
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "http://" not in page and "https://" not in page
    # what each prototype prefers, by the items' texts
    assert page.count("statement number") >= 2 * 5 * fit.k
    assert report._repr_html_() == page


def test_the_numbers_are_the_library_metrics(setup):
    fit, test, unseen = setup
    report = pluralism_report(fit, test, unseen, shots=(1, 5, 20))
    n = report.numbers
    p = fit.predict_proba(test)
    assert n["ece"] == pytest.approx(expected_calibration_error(p, test.label))
    assert n["calibration_on"] == "held-out comparisons"
    assert 1.0 <= n["effective_prototypes"] <= fit.k
    assert n["users"] == fit.user_weights()["mean"].shape[0]
    curve = pd.DataFrame(n["fewshot"])
    assert list(curve["n_shots"]) == [1, 5, 20]
    assert curve["users"].iloc[0] == unseen.n_users
    # more answers place people better (20 answers vs 1, 600 held-out comparisons each)
    assert curve["accuracy"].iloc[-1] > curve["accuracy"].iloc[0] + 0.03
    shares = report.sections["kinds"].tables[0][1]
    assert shares["share"].sum() == pytest.approx(1.0, abs=1e-6)
    assert (shares["lower"] <= shares["share"]).all() and (shares["share"] <= shares["upper"]).all()


def test_without_held_out_data_it_says_so(setup):
    fit, _, _ = setup
    report = pluralism_report(fit, shots=(1, 10), simulated_users=60)
    page = report.to_html()
    assert "in-sample" in page and "simulated" in page
    assert report.numbers["calibration_on"].startswith("the training comparisons")
    loaded_like = replace(fit, training_data=None)
    assert "No comparisons to score" in pluralism_report(
        loaded_like, shots=(1,), simulated_users=20).to_html()


def test_simulated_people_answer_as_the_model_says(setup):
    fit, _, _ = setup
    data, bayes = simulate_new_users(fit, n_users=300, n_answers=30, seed=3)
    prob = data.meta["true_prob"]
    assert len(data) == 9000 and data.n_users == 300
    assert (data.item_a != data.item_b).all()
    # the answers are draws of the model's probabilities: calibrated by construction
    assert expected_calibration_error(prob, data.label) < 0.03
    assert bayes == pytest.approx(np.maximum(prob, 1 - prob).mean())
    # the people's weights come from the population prior: their mean is the prior's
    mean = fit.population_prior()["mean"].values
    assert np.abs(data.meta["true_weights"].mean(0) - mean).max() < 0.05
    again, _ = simulate_new_users(fit, n_users=300, n_answers=30, seed=3)
    assert (again.label == data.label).all()


def test_the_evidence_per_k_is_shown_and_saved(setup, tmp_path):
    fit, _, _ = setup
    table = pd.DataFrame({
        "k": [1, 2, 3], "seen_log_loss": [0.60, 0.50, 0.49],
        "unseen_log_loss": [0.62, 0.53, 0.52], "criterion": [1.22, 1.03, 1.01],
        "se_vs_best": [0.05, 0.01, 0.0],
        "weight_share": [[1.0], [0.6, 0.4], [0.5, 0.3, 0.2]],
        "smallest_share": [1.0, 0.4, 0.2], "effective_prototypes": [1.0, 1.96, 2.8],
        "seconds": [1.0, 2.0, 3.0], "chosen": [False, False, True]})
    with_k = replace(fit, k_selection=table)
    path = tmp_path / "m.bayespal"
    with_k.save(path)
    loaded = bayespal.load(path)
    pd.testing.assert_frame_equal(loaded.k_selection, table, check_dtype=False)
    assert list(loaded.items.texts[:2]) == ["statement number 0", "statement number 1"]
    report = pluralism_report(loaded, shots=(1,), simulated_users=20)
    assert report.numbers["chosen_k"] == 3
    page = report.to_html()
    assert "The evidence per K" in page and "statement number" in page


def test_pal_b_and_ensembles_have_reports():
    syn = synthetic_prompted(n_users=40, n_train=20, n_test=5, n_items=100, n_prompts=6, seed=0)
    fit = bayespal.fit(syn.data.subset(~syn.is_test), k=2, prompt_dim=2, **FAST)
    report = pluralism_report(fit, shots=(1, 5), simulated_users=30)
    assert set(report.sections) == set(SECTIONS)
    assert "averaged over 6" in report.to_html()
    ens = bayespal.fit(syn.data.subset(~syn.is_test), k=2, prompt_dim=2, ensemble=2,
                       **{**FAST, "epochs": 20})
    assert "How fast is a new person placed?" in ens.report(shots=(1,), simulated_users=20
                                                             ).to_html()


def test_report_command(setup, tmp_path, capsys):
    fit, test, _ = setup
    model = tmp_path / "m.bayespal"
    fit.save(model)
    frame = pd.DataFrame({"user": test.user_ids[test.user], "item_a": test.item_ids[test.item_a],
                          "item_b": test.item_ids[test.item_b], "label": test.label.astype(int)})
    frame.to_csv(tmp_path / "test.csv", index=False)
    assert main(["report", str(model), "--test", str(tmp_path / "test.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    page = (tmp_path / "m.report.html").read_text()
    assert out["out"] == str(tmp_path / "m.report.html")
    assert out["ece"] == pytest.approx(expected_calibration_error(fit.predict_proba(test),
                                                                  test.label))
    assert '<section id="calibration">' in page and "held-out comparisons" in page
    # never replaced without --force
    assert main(["report", str(model)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["report", str(model), "--force", "--quiet"]) == 0


def test_bad_input_is_named(setup, tmp_path):
    fit, _, _ = setup
    with pytest.raises(ValueError, match="test"):
        pluralism_report(fit, test="comparisons.csv")
    with pytest.raises(ValueError, match="top"):
        pluralism_report(fit, top=0)
    report = pluralism_report(fit, shots=(1,), simulated_users=20)
    path = report.save(tmp_path / "r.html")
    with pytest.raises(ValueError, match="exists"):
        report.save(path)


def test_texts_that_do_not_name_the_items_are_an_error():
    """Texts go with the items, one string each; a wrong table is refused, not ignored."""
    syn = synthetic(n_users=5, k=2, n_train=4, n_test=0, n_items=20, seed=0)
    data = syn.data
    data.meta["texts"] = ["too few"] * 3
    with pytest.raises(ValueError, match="texts"):
        _ = data.item_table
    with pytest.raises(ValueError, match="a string"):
        bayespal.PreferenceData.from_texts(
            pd.DataFrame({"user": [0], "item_a": [1], "item_b": [2], "label": [1]}),
            {1: "one", 2: 2.0}, lambda texts: np.eye(len(texts), 3))
