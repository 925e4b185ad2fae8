"""Command line: ``bayespal demo`` (the README's main job)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def _demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import bayespal
    from bayespal.analysis import diagnostics, plots
    from bayespal.analysis.evaluation import evaluate_fewshot
    from bayespal.datasets import persona_demo
    from bayespal.metrics import accuracy, expected_calibration_error, log_loss
    from bayespal.model.matching import match_prototypes

    syn = persona_demo(n_users=args.users, k=args.k, n_train=40, n_test=20, seed=args.seed)
    seen, unseen = syn.data.split_users(0.2, seed=args.seed)
    in_seen = np.isin(syn.data.user_ids[syn.data.user], seen.user_ids)
    train = syn.data.subset(in_seen & ~syn.is_test)
    test = syn.data.subset(in_seen & syn.is_test)
    print(f"Persona demo (Anthropic persona statements, CC-BY-4.0; MiniLM embeddings): "
          f"{syn.data.n_items} statements, {train.n_users} seen + {unseen.n_users} unseen "
          f"users of {args.k} preference types, {len(train)} training comparisons")
    t0 = time.perf_counter()
    fit = bayespal.fit(train, k=args.k, pref_dim=8, seed=args.seed, progress=not args.quiet)
    print(f"fitted {fit!r} in {time.perf_counter() - t0:.1f} s")
    p = fit.predict_proba(test)
    bayes = syn.true_prob[in_seen & syn.is_test]
    print(f"\nseen users, held-out comparisons\n{'':<24}{'accuracy':>10}{'log-loss':>10}{'ECE':>8}")
    for name, q in (("bayespal (posterior)", p), ("Bayes-optimal (truth)", bayes)):
        print(f"{name:<24}{accuracy(q, test.label):>10.4f}{log_loss(q, test.label):>10.4f}"
              f"{expected_calibration_error(q, test.label):>8.4f}")
    table = evaluate_fewshot(fit, unseen, shots=(1, 5, 10, 20), n_test=10, seed=args.seed)
    print("\nunseen users placed from n answers (population fixed, no refit)")
    print(table[["n_shots", "users", "accuracy", "log_loss", "ece"]].round(4).to_string(index=False))
    w = fit.user_weights(ci=0.9)["mean"].values
    perm = match_prototypes(syn.true_weights[train.user_ids].T, w.T)
    part = syn.group[train.user_ids] >= 0
    assigned = (w[:, perm][part].argmax(1) == syn.group[train.user_ids][part]).mean()
    print(f"\nsingle-type users assigned to their true type: {assigned:.1%}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plots.plot_loss(fit).savefig(out / "loss.png", dpi=100)
    plots.plot_users_simplex(fit).savefig(out / "users.png", dpi=100)
    plots.plot_calibration(p, test.label).savefig(out / "calibration.png", dpi=100)
    diagnostics.to_datatree(fit, num_samples=200, seed=args.seed).to_netcdf(out / "posterior.nc")
    print(f"wrote plots and the posterior DataTree to {out}/")
    return 0


def _read_table(path: str, what: str):
    """A CSV, JSONL or Parquet file as a DataFrame; a clear error otherwise."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise ValueError(f"{what}: got {path!r}; expected an existing file")
    try:
        if p.suffix in (".csv", ".tsv"):
            return pd.read_csv(p, sep="\t" if p.suffix == ".tsv" else ",")
        if p.suffix in (".jsonl", ".json"):
            return pd.read_json(p, lines=p.suffix == ".jsonl")
        if p.suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
    except ImportError as err:
        raise ValueError(f"{what}: got a Parquet file; expected pyarrow installed ({err})") from err
    except Exception as err:  # noqa: BLE001 - any parse failure is a bad file for the user
        raise ValueError(f"{what}: got {path!r}, which could not be read ({err})") from err
    raise ValueError(f"{what}: got {path!r}; expected a .csv, .tsv, .jsonl or .parquet file")


def _items(args, fit=None) -> tuple:
    """Item ids and embeddings from --items: an ``id`` column plus either a ``text``
    column (embedded with --model, or with the embedder a saved ``fit`` records) or
    numeric embedding columns."""
    frame = _read_table(args.items, "--items")
    if "id" not in frame.columns:
        raise ValueError(f"--items: got columns {list(frame.columns)[:8]}; expected an 'id' column")
    if "text" in frame.columns:
        from bayespal.embed import TextEmbedder

        options = dict(progress=not args.quiet, cache_dir=_cache_dir(args))
        if args.model:
            embedder = TextEmbedder(args.model, **options)
        elif fit is not None and fit.embedding:
            embedder = TextEmbedder.from_config(fit.embedding, **options)  # as it was fitted
        else:
            raise ValueError("--model: got nothing; expected a transformers model name or folder "
                             "to embed the items' 'text' column" + (
                                 "" if fit is None else " (the model file records none)"))
        return frame["id"].to_numpy(), embedder(frame["text"].astype(str).tolist()), embedder
    columns = frame.drop(columns=["id"])
    if columns.shape[1] == 0:
        raise ValueError("--items: got no embedding columns and no 'text' column; expected "
                         "embedding columns or texts")
    import pandas as pd

    for col in columns.columns:  # every column is an embedding dimension: none is dropped
        missing = columns[col].isna().to_numpy()
        if missing.any():
            bad = int(np.flatnonzero(missing)[0])
            raise ValueError(f"--items: got a missing value in column {col!r}, row {bad} (id "
                             f"{frame['id'].iloc[bad]!r}); expected a number in every "
                             "embedding column")
        if not pd.api.types.is_numeric_dtype(columns[col]) or columns[col].dtype == bool:
            values = pd.to_numeric(columns[col], errors="coerce")
            bad = int(np.flatnonzero(values.isna().to_numpy())[0]) if values.isna().any() else 0
            raise ValueError(f"--items: got {columns[col].iloc[bad]!r} in column {col!r}, row "
                             f"{bad} (id {frame['id'].iloc[bad]!r}); expected a number in every "
                             "embedding column")
    return frame["id"].to_numpy(), columns.to_numpy(np.float32), None


def _comparisons(args, ids, embeddings, embedder, levels: int = 2):
    data = _as_data(_read_table(args.data, "data"), embeddings, ids, levels)
    if embedder is not None:
        data.meta["embedding"] = embedder.config()
    return data


def _as_data(frame, embeddings, ids, levels: int = 2, **prompts):
    """Comparisons (one row each: user, item_a, item_b, label) or, in the long format (one
    row per item shown: user, question, item, rank), rankings and best-of-n choices."""
    import bayespal

    if {"question", "item", "rank"} <= set(frame.columns) and "item_a" not in frame.columns:
        return bayespal.PreferenceData.from_long_frame(frame, embeddings, ids, **prompts)
    return bayespal.PreferenceData.from_frame(frame, embeddings, ids, levels=levels, **prompts)


def _refuse_overwrite(path: str | Path, force: bool, what: str) -> None:
    """An existing file is never replaced unless the user says ``--force``."""
    if Path(path).is_file() and not force:  # a folder is check_writable's to refuse
        raise ValueError(f"{what}: got {str(path)!r}, which exists; expected a new file name "
                         "(or --force to replace it)")


def _report(args: argparse.Namespace, text: str, **values) -> None:
    """Print ``text``, or with ``--json`` the values as one JSON object."""
    if getattr(args, "json", False):
        import json

        print(json.dumps(values, default=_json_default))
    else:
        print(text)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _fit_options(args: argparse.Namespace) -> dict:
    """The library options the user gave; the others keep the library's defaults."""
    options = {"inference": args.inference, "seed": args.seed}
    for name in ("pref_dim", "epochs", "batch_size", "validation_fraction", "concentration",
                 "weight_prior", "device"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.item_effects:
        options["item_effects"] = True
    if args.user_cutpoints:
        options["user_cutpoints"] = True
    if args.hidden is not None:
        try:
            options["hidden"] = tuple(int(h) for h in args.hidden.split(",") if h.strip())
        except ValueError:
            raise ValueError(f"--hidden: got {args.hidden!r}; expected layer widths such as "
                             "'64' or '64,64' (or '' for a linear map)") from None
    return options


def _k(value: str):
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {value!r}; expected a number of prototypes or "
                                         "'auto'") from None


def _fit(args: argparse.Namespace) -> int:
    import bayespal
    from bayespal.files import FileWriteError, check_writable

    _refuse_overwrite(args.out, args.force, "--out")
    check_writable(args.out)  # before the work: a bad --out must not cost a finished fit
    ids, emb, embedder = _items(args)
    data = _comparisons(args, ids, emb, embedder, args.levels)
    t0 = time.perf_counter()
    options = _fit_options(args)
    if args.checkpoint is not None:
        if args.k == "auto":
            raise ValueError("--checkpoint: got a file with --k auto; expected a given K "
                             "(the choice of K fits several models: checkpoint a fit of one K)")
        options["checkpoint"] = args.checkpoint
    fit = bayespal.fit(data, k=args.k, progress=not args.quiet, **options)
    seconds = time.perf_counter() - t0
    try:
        fit.save(args.out)
    except FileWriteError as err:  # the place went bad during the fit: keep the fit anyway
        fallback = _fallback_path(args.out)
        fit.save(fallback)
        print(f"bayespal: error: {err}; the fitted model was saved to {fallback} instead",
              file=sys.stderr)
        return 1
    _report(args, f"fitted {fit!r}; wrote {args.out}", out=str(args.out), k=fit.k,
            comparisons=data.n_comparisons, users=data.n_users, items=data.n_items,
            seconds=round(seconds, 3), hidden=list(fit.model_config.hidden),
            epochs=len(fit.loss_history), final_loss=float(fit.loss_history[-1]))
    return 0


def _fallback_path(out: str) -> Path:
    """Where a finished fit goes when ``--out`` fails: the working folder, else the
    system's temporary folder, under a new name."""
    import tempfile

    name = f"{Path(out).name or 'model'}.{time.strftime('%Y%m%d-%H%M%S')}.{os.getpid()}.bayespal"
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        if os.access(folder, os.W_OK):
            return folder / name
    return Path(tempfile.gettempdir()) / name


def _evaluate(args: argparse.Namespace) -> int:
    import bayespal
    from bayespal.analysis.evaluation import answer_metrics, predict_answers

    fit = bayespal.load(args.model_file)
    ids, emb, embedder = _items(args, fit)
    data = _comparisons(args, ids, emb, embedder, fit.levels)
    scores = answer_metrics(predict_answers(fit, data), data)
    known = (fit.user_index(data.user_ids[data.user]) >= 0).mean()
    acc, ll, ece = scores["accuracy"], scores["log_loss"], scores["ece"]
    _report(args, f"{len(data)} comparisons, {known:.0%} from users the model knows "
            "(others: population average)\n"
            f"accuracy {acc:.4f}  log-loss {ll:.4f}  ECE {ece:.4f}",
            comparisons=len(data), known_users_share=float(known), accuracy=acc,
            log_loss=ll, ece=ece)
    return 0


def _embed(args: argparse.Namespace) -> int:
    import pandas as pd

    from bayespal.embed import TextEmbedder

    target = Path(args.out) if args.out else Path(args.texts).with_suffix(".embeddings.csv")
    if target.exists() and target.resolve() == Path(args.texts).resolve():
        raise ValueError(f"--out: got {str(target)!r}, the texts file itself; expected another "
                         "file (the texts would be lost)")
    _refuse_overwrite(target, args.force, "--out")
    frame = _read_table(args.texts, "texts")
    if args.column not in frame.columns:
        raise ValueError(f"--column: got {args.column!r}; expected one of {list(frame.columns)}")
    emb = TextEmbedder(args.model, layer=args.layer, pooling=args.pooling,
                       progress=not args.quiet, cache_dir=_cache_dir(args))
    vectors = emb(frame[args.column].astype(str).tolist()).astype(np.float32)
    out = pd.DataFrame(vectors, columns=[f"e{i}" for i in range(vectors.shape[1])])
    out.insert(0, "id", frame["id"] if "id" in frame.columns else np.arange(len(frame)))
    _write_csv_atomic(out, target)
    _report(args, f"embedded {len(out)} texts ({vectors.shape[1]} dims); wrote {target}",
            out=str(target), texts=len(out), dims=int(vectors.shape[1]))
    return 0


def _write_csv_atomic(frame, path: Path) -> None:
    """Write a CSV atomically: a failed write leaves nothing (``bayespal.files``)."""
    from bayespal.files import write_bytes_atomic

    write_bytes_atomic(path, frame.to_csv(index=False).encode())


def _cache_dir(args: argparse.Namespace):
    return None if getattr(args, "no_cache", False) else args.cache_dir


def _cache(args: argparse.Namespace) -> int:
    from bayespal.embed.cache import cache_usage, clear_cache

    if args.action == "info":
        u = cache_usage(args.cache_dir)
        _report(args, f"embedding cache {u['folder']}: {u['bytes'] / 2**20:.1f} MiB in "
                f"{u['shards']} files, {u['configurations']} embedding configurations", **u)
    else:
        u = clear_cache(args.cache_dir)
        _report(args, f"cleared the embedding cache {u['folder']}: removed "
                f"{u['bytes'] / 2**20:.1f} MiB in {u['shards']} files", **u)
    return 0


def _suggest(args: argparse.Namespace) -> int:
    import pandas as pd

    import bayespal
    from bayespal.users import NewUser, suggest

    fit = bayespal.load(args.model_file)
    if fit.items is None:
        raise ValueError(f"model: got {args.model_file!r} saved without its item table; "
                         "expected a model saved with include_items=True")
    known = set(fit.item_ids.tolist())

    def ids(values, what):
        """The model's item ids (a CSV may give an integer id as text)."""
        out = []
        for v in values:
            key = v if v in known else (int(v) if str(v).lstrip("-").isdigit() else v)
            if key not in known:
                raise ValueError(f"{what}: got item id {v!r}; expected an item of the model")
            out.append(key)
        return np.asarray(out, dtype=fit.item_ids.dtype)

    user = NewUser(fit, seed=args.seed)
    if args.answers:
        ans = _read_table(args.answers, "--answers")
        if {"question", "item", "rank"} <= set(ans.columns) and "item_a" not in ans.columns:
            # the long format: one row per item shown (rankings, best-of-n choices)
            for _, q in ans.groupby("question", sort=False):
                user.observe_ranking(ids(q["item"], "--answers"),
                                     [None if pd.isna(r) else r for r in q["rank"]],
                                     seed=args.seed)
        else:
            for col in ("item_a", "item_b", "label"):
                if col not in ans.columns:
                    raise ValueError(f"--answers: got columns {list(ans.columns)}; expected "
                                     f"{col!r} (or question, item, rank: the long format)")
            # grades as they are: a tie is 0.5 of a fit with levels=3 (never truncated)
            user.observe(ids(ans.item_a, "--answers"), ids(ans.item_b, "--answers"),
                         ans.label.to_numpy(dtype=np.float64))
    cand = _read_table(args.candidates, "--candidates")
    if args.kind == "pair":
        for col in ("item_a", "item_b"):
            if col not in cand.columns:
                raise ValueError(f"--candidates: got columns {list(cand.columns)}; expected "
                                 f"{col!r} (pairs; --kind best_of/ranking take an item column)")
        pool = np.stack([ids(cand.item_a, "--candidates"), ids(cand.item_b, "--candidates")], 1)
    else:
        if "item" not in cand.columns:
            raise ValueError(f"--candidates: got columns {list(cand.columns)}; expected 'item' "
                             f"(the pool of items a --kind {args.kind} question is built from)")
        pool = ids(cand["item"], "--candidates")
    best = suggest(user, pool, n=args.n, strategy=args.strategy, seed=args.seed,
                   kind=args.kind, size=args.size)
    weights = user.weights()[["mean", "lower", "upper"]].to_dataframe()
    _report(args, weights.round(3).to_string() + "\n" + best.to_string(),
            weights=weights.reset_index().to_dict(orient="records"),
            questions=best.reset_index().to_dict(orient="records"))
    return 0


def _report_cmd(args: argparse.Namespace) -> int:
    import bayespal
    from bayespal.analysis.report import pluralism_report
    from bayespal.files import check_writable

    target = Path(args.out) if args.out else Path(args.model_file).with_suffix(".report.html")
    _refuse_overwrite(target, args.force, "--out")
    check_writable(target)
    fit = bayespal.load(args.model_file)
    if fit.items is None and args.items is None:
        raise ValueError(f"model: got {args.model_file!r} saved without its item table; "
                         "expected a model saved with include_items=True (or --items)")
    ids, emb = (fit.items.ids, fit.items.embeddings) if args.items is None else _items(args, fit)[:2]
    prompts = {}
    if fit.prompts is not None:
        prompts = dict(prompt="prompt", prompts=fit.prompts.embeddings, prompt_ids=fit.prompts.ids)

    def comparisons(path, what):
        if path is None:
            return None
        return _as_data(_read_table(path, what), emb, ids, fit.levels, **prompts)

    test, unseen = comparisons(args.test, "--test"), comparisons(args.unseen, "--unseen")
    items = None if args.items is None else bayespal.EmbeddingTable(ids, emb)
    report = pluralism_report(fit, test, unseen, items=items, seed=args.seed)
    report.save(target, overwrite=True)  # --force was checked above
    numbers = {k: v for k, v in report.numbers.items() if not k.endswith("_text")}
    _report(args, f"wrote {target}: " + "; ".join(
        f"{label} {report.numbers[key]}" for key, label in (
            ("effective_prototypes_text", "effective prototypes"),
            ("calibration_text", "calibration"), ("placement_text", "new people"))
        if key in report.numbers), out=str(target), **numbers)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``bayespal`` command's argument parser (subcommands demo, fit, evaluate, embed,
    suggest, report, cache)."""
    parser = argparse.ArgumentParser(
        prog="bayespal", description="Bayesian pluralistic preference modeling (PAL)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="fit the built-in Persona demo data; print seen and unseen accuracy and calibration",
        description="Fit PAL-A to the built-in Persona demo (semi-synthetic preferences over "
        "real statements, known truth); compare with the Bayes-optimal predictor, place "
        "unseen users from a few answers, and write plots and the DataTree.",
    )
    demo.add_argument("--users", type=int, default=250, help="number of users (default 250)")
    demo.add_argument("--out", default="bayespal-demo", help="output folder (default bayespal-demo)")
    demo.add_argument("--k", type=int, default=3, help="number of prototypes (default 3)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)

    def cache_args(p):
        p.add_argument("--cache-dir", default="auto",
                       help="embedding cache folder (default: the user's cache folder, or "
                       "$BAYESPAL_CACHE_DIR; see 'bayespal cache')")
        p.add_argument("--no-cache", action="store_true", help="embed without the cache")

    def data_args(p, data_help):
        p.add_argument("data", help=data_help)
        p.add_argument("--items", required=True,
                       help="items file (.csv/.jsonl/.parquet): an 'id' column and either "
                       "numeric embedding columns or a 'text' column (then give --model)")
        p.add_argument("--model", help="transformers model name or folder to embed item texts "
                   "(evaluate: default, the embedder the model file records)")
        cache_args(p)
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    fit_cmd = sub.add_parser("fit", help="fit PAL-A to comparisons and save the model",
                         description="Fit PAL-A to a comparisons file (columns user, item_a, "
                         "item_b, label; label 1 = item_a preferred, with --levels 3 0.5 = a "
                         "tie; or rankings and best-of-n choices in long format, one row per "
                         "item shown: user, question, item, rank with 1 = best and empty = not "
                         "ranked) and save the model.")
    data_args(fit_cmd, "comparisons file (.csv/.jsonl/.parquet): user, item_a, item_b, label "
              "(or user, question, item, rank)")
    fit_cmd.add_argument("--k", type=_k, default=3,
                         help="number of prototypes, or 'auto' to choose it from the data "
                         "(default 3)")
    fit_cmd.add_argument("--pref-dim", type=int, help="preference-space dimension "
                         "(default: the library's, 16)")
    fit_cmd.add_argument("--hidden", help="the mapping's hidden widths, e.g. '64' or '64,64' "
                         "(default: chosen on the validation split)")
    fit_cmd.add_argument("--epochs", type=int, help="maximum epochs (default: the library's)")
    fit_cmd.add_argument("--batch-size", type=int, help="comparisons per step")
    fit_cmd.add_argument("--validation-fraction", type=float,
                         help="share of each user's comparisons held out to tune and stop the "
                         "fit (default 0.1; 0 switches validation off)")
    fit_cmd.add_argument("--concentration", type=float,
                         help="a fixed Dirichlet prior alpha for the users' weights (default: "
                         "learned from the data)")
    fit_cmd.add_argument("--weight-prior", choices=["mixture", "dirichlet"],
                         help="the learned population prior of the users' weights: one "
                         "Dirichlet (default) or a mixture of Dirichlets")
    fit_cmd.add_argument("--item-effects", action="store_true",
                         help="a residual reward per item that its embedding does not explain "
                         "(SVI only)")
    fit_cmd.add_argument("--levels", type=int, default=2,
                         help="ordered outcomes of an answer: 2 (default) a or b, 3 with ties "
                         "(label 0.5), more graded (label = grade / (levels - 1))")
    fit_cmd.add_argument("--user-cutpoints", action="store_true",
                         help="with --levels > 2: each user's own cutpoints (how readily they "
                         "tie or grade weakly), SVI only")
    fit_cmd.add_argument("--inference", choices=["svi", "map"], default="svi",
                         help="svi: Bayesian (default); map: point estimates")
    fit_cmd.add_argument("--device", help="'auto' (default), 'cpu', 'cuda', 'cuda:1', ...")
    fit_cmd.add_argument("--checkpoint", help="checkpoint file: written every epoch, resumed "
                         "from if it exists")
    fit_cmd.add_argument("--seed", type=int, default=0, help="random seed")
    fit_cmd.add_argument("--out", default="model.bayespal", help="model file to write")
    fit_cmd.add_argument("--force", action="store_true", help="replace an existing --out")
    fit_cmd.add_argument("--json", action="store_true", help="print the result as JSON")
    fit_cmd.set_defaults(func=_fit)

    ev = sub.add_parser("evaluate", help="accuracy, log-loss and calibration of a saved model",
                        description="Score a saved model on a comparisons file.")
    ev.add_argument("model_file", help="a file written by 'bayespal fit' or FittedPAL.save")
    data_args(ev, "comparisons file to evaluate on")
    ev.add_argument("--json", action="store_true", help="print the scores as JSON")
    ev.set_defaults(func=_evaluate)

    em = sub.add_parser("embed", help="embed a text column with a transformers model",
                        description="Embed texts (penultimate layer, mean pooling by default) "
                        "and write an items file with id and embedding columns.")
    em.add_argument("texts", help="file with a text column (and optionally 'id')")
    em.add_argument("--model", required=True, help="transformers model name or folder")
    em.add_argument("--column", default="text", help="the text column (default 'text')")
    em.add_argument("--layer", type=int, default=-2, help="hidden layer (default -2)")
    em.add_argument("--pooling", choices=["mean", "last", "cls"], default="mean")
    cache_args(em)
    em.add_argument("--out", help="output CSV (default: <texts>.embeddings.csv beside the "
                    "input); an existing file is never replaced without --force")
    em.add_argument("--force", action="store_true", help="replace an existing --out")
    em.add_argument("--json", action="store_true", help="print the result as JSON")
    em.add_argument("--quiet", action="store_true", help="no progress bar")
    em.set_defaults(func=_embed)

    sg = sub.add_parser("suggest", help="the next questions to ask a (new) user",
                        description="Place a new user from their answers and rank candidate "
                        "pairs (or build set questions from a pool of items) by information "
                        "gain (or uncertainty, random).")
    sg.add_argument("model_file", help="a saved model (with its item table)")
    sg.add_argument("--candidates", required=True, help="file with item_a, item_b columns "
                    "(pairs), or an item column (the pool of --kind best_of/ranking)")
    sg.add_argument("--answers", help="the user's answers so far: item_a, item_b, label; or "
                    "the long format question, item, rank (rankings, best-of-n)")
    sg.add_argument("--kind", choices=["pair", "best_of", "ranking"], default="pair",
                    help="the question: which of two (default), the best of --size items, "
                    "or their order")
    sg.add_argument("--size", type=int, default=4, help="items per set question (default 4)")
    sg.add_argument("--n", type=int, default=3, help="how many questions (default 3)")
    sg.add_argument("--strategy", choices=["information_gain", "uncertainty", "random"],
                    default="information_gain")
    sg.add_argument("--seed", type=int, default=0)
    sg.add_argument("--json", action="store_true", help="print weights and questions as JSON")
    sg.set_defaults(func=_suggest)

    rp = sub.add_parser("report", help="a pluralism report of a saved model, as one HTML page",
                        description="Write one self-contained HTML page: how many kinds of "
                        "people, who is where, what each prototype prefers, how calibrated "
                        "the predictions are, how fast a new person is placed.")
    rp.add_argument("model_file", help="a saved model (with its item table)")
    rp.add_argument("--out", help="the HTML file (default: <model>.report.html); an existing "
                    "file is never replaced without --force")
    rp.add_argument("--test", help="held-out comparisons of the training users (user, item_a, "
                    "item_b, label) for the calibration section (default: none, said so)")
    rp.add_argument("--unseen", help="comparisons of users the model never saw, for the "
                    "few-shot curve (default: people simulated from the fitted population)")
    rp.add_argument("--items", help="items file, if the model was saved without its items")
    rp.add_argument("--model", help="transformers model to embed --items texts (default: the "
                    "embedder the model file records)")
    cache_args(rp)
    rp.add_argument("--seed", type=int, default=0)
    rp.add_argument("--force", action="store_true", help="replace an existing --out")
    rp.add_argument("--json", action="store_true", help="print the headline numbers as JSON")
    rp.add_argument("--quiet", action="store_true", help="no progress bars")
    rp.set_defaults(func=_report_cmd)

    ca = sub.add_parser("cache", help="the embedding cache: where it is, its size; clear it",
                        description="The on-disk embedding cache the embedders use by default.")
    ca.add_argument("action", choices=["info", "clear"], help="info: folder and size; clear: "
                    "delete the cached embeddings")
    ca.add_argument("--cache-dir", help="the cache folder (default: the user's cache folder, "
                    "or $BAYESPAL_CACHE_DIR)")
    ca.add_argument("--json", action="store_true", help="print the result as JSON")
    ca.set_defaults(func=_cache)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``bayespal`` command; bad input or an unwritable path prints a clear message
    and returns 2 (no traceback).

    Parameters
    ----------
    argv:
        The arguments (default: ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(argv)  # before any heavy import: --help is instant
    from bayespal.files import FileWriteError

    try:
        return args.func(args)
    except (ValueError, FileWriteError) as err:  # bad input or an unwritable path: a clear
        print(f"bayespal: error: {err}", file=sys.stderr)  # message, no traceback
        return 2


if __name__ == "__main__":
    sys.exit(main())
