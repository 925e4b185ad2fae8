"""Reddit TL;DR summary comparisons (OpenAI summarize-from-feedback), as used by PAL.

Source: ``comparisons/batch*.json`` of openai/summarize-from-feedback (modified MIT
licence; post texts from the Reddit TL;DR corpus). One JSON object a line: ``info``
(``id``, ``post``, ``title``, ``subreddit``), two ``summaries`` (``text``, ``policy``),
``choice`` (the index of the preferred summary) and ``worker``.

Items are the summaries, prompts are the posts, users are the workers. Labels:

- ``labels="workers"``: the workers' real choices (``choice == 0`` means item a, the
  first summary, was preferred; converted here, at the boundary);
- ``labels="confidence"``: the workers' graded answers, ``extra.confidence`` on the
  summarize-from-feedback 9-point scale without a middle (1 = summary 0 definitely better,
  4 = summary 0 slightly better, 6 = summary 1 slightly better, 9 = summary 1 definitely
  better): ``levels=8``, label = grade / 7 with grade 7 for a confidence of 1 and 0 for 9;
- ``labels="length"``: PAL's semi-synthetic variant on its 10 *seen* workers
  (``pal_summary_worker_ids.json``): 7 prefer the longer summary, 3 the shorter. Which
  seven is not recorded in that file; we take the first seven listed.

``pairs`` (length labels only): ``"seen"`` keeps the seen workers' own comparisons, as
PAL does (in the two shared batches: 214 comparisons by 7 of the 10, only one of them
short-preferring); ``"all"`` gives every summary pair of the batches to one of the 10 seen
workers at random (``seed``), since the labels are synthetic anyway: the same rule on
1,762 pairs, with all 10 workers (3 short-preferring) present.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayespal.data import PreferenceData

LABELS = ("workers", "length", "confidence")
CONFIDENCE = (1, 2, 3, 4, 6, 7, 8, 9)  # summarize-from-feedback's scale (no middle 5)
PAIRS = ("seen", "all")
N_LONGER = 7


@dataclass(frozen=True, eq=False)
class TLDRPreferences:
    """TL;DR summary comparisons.

    Attributes
    ----------
    data:
        The comparisons (with the posts as prompts when embedded).
    summaries, posts:
        Item and prompt texts, by id.
    prefers_longer:
        Per worker, whether the length rule says they prefer longer summaries.
    """
    data: PreferenceData
    summaries: list[str]  # item texts, by item id
    posts: list[str]  # prompt texts, by prompt id
    prefers_longer: dict | None  # worker -> True/False under labels="length"


def read_comparisons(folder: str | Path) -> pd.DataFrame:
    """All ``batch*.json`` comparisons of ``folder`` as one row each.

    Parameters
    ----------
    folder:
        The TL;DR comparisons subset (JSON lines).
    """
    rows = []
    files = sorted(Path(folder).glob("batch*.json"))
    if not files:
        raise ValueError(f"folder: got {str(folder)!r}; expected batch*.json files in it")
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                    rows.append({
                        "post_id": r["info"]["id"],
                        "post": r["info"].get("post") or r["info"].get("article") or "",
                        "summary_0": r["summaries"][0]["text"].strip(),
                        "summary_1": r["summaries"][1]["text"].strip(),
                        "choice": int(r["choice"]),
                        "worker": r["worker"],
                        "confidence": (r.get("extra") or {}).get("confidence"),
                    })
                except (KeyError, IndexError, TypeError, ValueError) as err:
                    raise ValueError(f"{path.name} line {line_no}: got a malformed comparison "
                                     f"({err!r}); expected info, summaries[2], choice, worker") from err
    return pd.DataFrame(rows)


def tldr(folder: str | Path, embed: Callable[[Sequence[str]], np.ndarray],
         labels: str = "workers", embed_prompts: bool = False, pairs: str = "seen",
         seed: int = 0) -> TLDRPreferences:
    """Load the comparisons as ``PreferenceData``; ``embed`` maps texts to an
    ``(n, D)`` array (e.g. a ``bayespal.embed.TextEmbedder``). Summaries identical in
    text are one item; comparisons of a summary with itself are dropped.

    Parameters
    ----------
    folder:
        The TL;DR comparisons subset.
    embed:
        Texts -> (n, D) embeddings.
    labels:
        'workers' (the workers' choices), 'confidence' (their graded answers, 8 levels) or
        the length rule.
    embed_prompts:
        Embed the posts as prompts (PAL-B).
    pairs:
        'seen' (the compared pairs) or 'all' pairs of a post's summaries.
    seed:
        Seeds the order.
    """
    if labels not in LABELS:
        raise ValueError(f"labels: got {labels!r}; expected one of {LABELS}")
    if pairs not in PAIRS:
        raise ValueError(f"pairs: got {pairs!r}; expected one of {PAIRS}")
    if pairs == "all" and labels != "length":
        raise ValueError("pairs: got 'all' with labels='workers'; expected 'seen' (only the "
                         "synthetic length labels can be given to other workers' pairs)")
    frame = read_comparisons(folder)
    frame = frame[frame.summary_0 != frame.summary_1].reset_index(drop=True)
    prefers_longer = None
    if labels == "length":
        ids = json.loads((Path(folder) / "pal_summary_worker_ids.json").read_text())["seen"]
        prefers_longer = {w: i < N_LONGER for i, w in enumerate(ids)}
        if pairs == "all":
            rng = np.random.default_rng(seed)
            frame = frame.assign(worker=np.asarray(ids)[rng.integers(0, len(ids), len(frame))])
        frame = frame[frame.worker.isin(ids)].reset_index(drop=True)
        len0, len1 = frame.summary_0.str.len(), frame.summary_1.str.len()
        frame = frame[len0 != len1].reset_index(drop=True)
        longer_first = (frame.summary_0.str.len() > frame.summary_1.str.len()).to_numpy()
        likes_longer = frame.worker.map(prefers_longer).to_numpy(dtype=bool)
        label = (longer_first == likes_longer).astype(int)
    elif labels == "confidence":
        conf = pd.to_numeric(frame.confidence, errors="coerce").to_numpy()
        bad = ~np.isin(conf, CONFIDENCE)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"confidence[{i}]: got {frame.confidence.iloc[i]!r}; expected one "
                             f"of {CONFIDENCE} (extra.confidence of every comparison)")
        choice = frame.choice.to_numpy()
        if ((conf < 5) != (choice == 0)).any():
            i = int(np.flatnonzero((conf < 5) != (choice == 0))[0])
            raise ValueError(f"confidence[{i}]: got {int(conf[i])} with choice {choice[i]}; "
                             "expected 1-4 for choice 0 and 6-9 for choice 1")
        label = np.where(conf < 5, 8 - conf, 9 - conf) / 7  # grade 7: summary 0 definitely
    else:
        label = (frame.choice.to_numpy() == 0).astype(int)  # y = 1: summary 0 (item a) won
    summaries = pd.unique(pd.concat([frame.summary_0, frame.summary_1]).to_numpy())
    posts = frame.drop_duplicates("post_id")
    items = embed(list(summaries))
    prompt_kw = {}
    if embed_prompts:
        prompt_kw = dict(prompt=frame.post_id.to_numpy(), prompts=embed(posts.post.tolist()),
                         prompt_ids=posts.post_id.to_numpy())
    data = PreferenceData.from_arrays(frame.worker.to_numpy(), frame.summary_0.to_numpy(),
                                      frame.summary_1.to_numpy(), label, items,
                                      item_ids=summaries, levels=8 if labels == "confidence"
                                      else 2, **prompt_kw)
    return TLDRPreferences(data, list(summaries), posts.post.tolist(), prefers_longer)
