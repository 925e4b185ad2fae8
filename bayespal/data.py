"""`PreferenceData`: validated pairwise comparisons plus the item-embedding table.

Label convention (everywhere in bayespal): ``label = 1`` means item ``a`` was
preferred over item ``b``. Any other convention is converted here, at the
boundary, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from bayespal.checks import check_table


class DataError(ValueError):
    """Bad input data. The message names the field, the bad value and what was expected."""


def _py(value: Any) -> Any:
    """numpy scalars as plain Python values, so messages read ``'x'`` not ``np.str_('x')``."""
    return value.item() if isinstance(value, np.generic) else value


def _fail(field_name: str, value: Any, expected: str) -> DataError:
    text = repr(_py(value))
    if len(text) > 80:
        text = text[:77] + "..."
    return DataError(f"{field_name}: got {text}; expected {expected}")


def _as_id_array(values: Any, field_name: str) -> np.ndarray:
    """Ids as a 1-d array, all of one kind: integers or strings (what a saved model stores
    and round-trips exactly). Mixed kinds, floats and booleans are refused here, before any
    work is done, rather than when the finished model is saved."""
    if isinstance(values, (list, tuple)):  # np.asarray would silently turn [1, "a"] into strings
        values = np.asarray(values, dtype=object) if values else np.asarray(values)
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise _fail(field_name, f"array of shape {arr.shape}", "a 1-d sequence of ids")
    if len(arr) == 0 or arr.dtype.kind in "iu":
        return arr
    kind = pd.api.types.infer_dtype(arr, skipna=False)
    if kind == "string":
        return arr
    if kind == "integer":  # ints in an object array: store them as int64
        return arr.astype(np.int64)
    is_str = np.fromiter((isinstance(v, str) for v in arr), bool, len(arr))
    odd = np.flatnonzero(~is_str) if is_str.any() else np.flatnonzero(
        [not (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)))
         for v in arr])
    i = int(odd[0]) if len(odd) else 0
    raise _fail(f"{field_name}[{i}]", arr[i], f"integer or string ids, one kind for all "
                f"(got {kind} ids)")


def _encode(ids: np.ndarray, table: np.ndarray, field_name: str, table_name: str) -> np.ndarray:
    """Map ids to positions in ``table`` (unique ids); error on the first missing id."""
    index = pd.Index(table)
    codes = index.get_indexer(ids)
    missing = codes < 0
    if missing.any():
        bad = ids[np.flatnonzero(missing)[0]]
        raise _fail(field_name, bad, f"an id present in {table_name} ({len(table)} ids)")
    return codes.astype(np.int64)


def _as_frame(frame: Any) -> pd.DataFrame:
    """A DataFrame from a DataFrame or a Hugging Face ``datasets.Dataset`` (``to_pandas``)."""
    if isinstance(frame, pd.DataFrame):
        return frame
    if hasattr(frame, "to_pandas") and hasattr(frame, "column_names"):
        return frame.to_pandas()
    raise _fail("frame", f"a {type(frame).__name__}", "a pandas DataFrame or a "
                "datasets.Dataset")


def _texts(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The non-empty strings of a text column; an error names the first other value."""
    values = frame[column].to_numpy(dtype=object)
    bad = np.flatnonzero([not isinstance(v, str) or not v.strip() for v in values])
    if len(bad):
        raise _fail(f"{column}[{bad[0]}]", values[bad[0]], "a non-empty text")
    return values


def _record_embedder(data: PreferenceData, embedder: Any) -> None:
    """Record the embedder's configuration in ``data.meta`` (for reward export), if it has one."""
    if hasattr(embedder, "config"):
        try:
            data.meta["embedding"] = embedder.config()
        except ValueError:
            pass  # an embedder built from a model object has no name to record


def _check_embeddings(values: Any, field_name: str) -> np.ndarray:
    try:
        return check_table(field_name, values)
    except ValueError as err:
        raise DataError(str(err)) from None


def check_labels(values: Any, n: int, levels: int = 2) -> np.ndarray:
    """Labels on the grid ``g / (levels - 1)``: 0/1 (or bool) for binary answers; for
    ``levels = 3`` also 0.5, a tie; for more levels the grade divided by ``levels - 1``."""
    if not (isinstance(levels, (int, np.integer)) and not isinstance(levels, bool)
            and levels >= 2):
        raise _fail("levels", levels, "an integer >= 2 (2: binary answers, 3: with ties)")
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise _fail("label", f"array of shape {arr.shape}", f"shape ({n},), one per comparison")
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if not np.issubdtype(arr.dtype, np.number):
        raise _fail("label", f"dtype {arr.dtype}", "0/1 or bool (1 = item_a preferred)")
    grade = np.asarray(arr, dtype=np.float64) * (levels - 1)
    bad = ~(np.isfinite(grade) & (np.abs(grade - np.round(grade)) < 1e-6) & (grade > -0.5)
            & (grade < levels - 0.5))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if levels == 2:
            hint = "; a tie (0.5) needs levels=3" if arr[i] == 0.5 else ""
            expected = f"0 or 1 (1 = item_a preferred){hint}"
        else:
            grid = ", ".join(f"{g / (levels - 1):.4g}" for g in range(levels))
            expected = (f"one of {grid} (grade / {levels - 1} of levels={levels}: 0 = item_b "
                        "preferred, 1 = item_a" + (", 0.5 = a tie)" if levels % 2 else ")"))
        raise _fail(f"label[{i}]", arr[i].item(), expected)
    return (np.round(grade) / (levels - 1)).astype(np.float32)


def _ragged(values: Any, n: int | None, field_name: str) -> list[list]:
    """A sequence of ``n`` sequences (of ids or ranks) as lists; a bare string or scalar in
    place of a sequence is refused by position."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray,
                                                                     pd.Series)):
        raise _fail(field_name, values, "a sequence with one list per answer")
    rows = list(values)
    if n is not None and len(rows) != n:
        raise _fail(field_name, f"length {len(rows)}", f"length {n}, one list per answer")
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not isinstance(row, (Sequence, np.ndarray,
                                                                 pd.Series)):
            raise _fail(f"{field_name}[{i}]", row, "a list (of the items shown together)")
        out.append(list(row))
    return out


def pad_lists(rows: list[list], fill: Any = -1) -> tuple[np.ndarray, np.ndarray]:
    """Ragged lists as ``(values (R, n_max) object, valid (R, n_max) bool)``, ``fill`` where
    a list is shorter.

    Parameters
    ----------
    rows:
        The lists.
    fill:
        The padding value.
    """
    width = max((len(r) for r in rows), default=0)
    values = np.full((len(rows), width), fill, dtype=object)
    valid = np.zeros((len(rows), width), dtype=bool)
    for i, r in enumerate(rows):
        values[i, : len(r)] = r
        valid[i, : len(r)] = True
    return values, valid


def _encode_others(others: Any, n: int, item_ids: np.ndarray, a: np.ndarray, b: np.ndarray,
                   levels: int) -> np.ndarray | None:
    """The further items of choice answers as rows ``(n, m)`` of the item table, -1 where a
    comparison has fewer; None where no answer has any."""
    rows = _ragged(others, n, "others")
    if levels != 2 and any(rows):
        i = next(i for i, r in enumerate(rows) if r)
        raise _fail(f"others[{i}]", rows[i], f"no further items with levels={levels} (ties "
                    "and grades are answers about two items; a choice from a larger set is "
                    "binary: label 1 = item_a chosen, 0 = item_b)")
    values, valid = pad_lists(rows)
    if values.shape[1] == 0 or not valid.any():
        return None
    flat = _as_id_array(values[valid].tolist(), "others")
    codes = np.full(values.shape, -1, dtype=np.int64)
    codes[valid] = _encode(flat, item_ids, "others", "item_ids")
    full = np.concatenate([a[:, None], b[:, None], codes], 1)
    srt = np.sort(full, 1)
    dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    if dup.any():
        i = int(np.flatnonzero(dup.any(1))[0])
        item = item_ids[srt[i, 1:][dup[i]][0]]
        raise _fail(f"others[{i}]", _py(item), "items other than item_a, item_b and each "
                    "other (each item of a choice once)")
    return codes


def _encode_questions(question: Any, n: int, user: np.ndarray, prompt: np.ndarray | None
                      ) -> np.ndarray:
    """``question`` ids as codes ``(N,)``, each question's comparisons of one user (and
    prompt)."""
    ids = _as_id_array(question, "question")
    if len(ids) != n:
        raise _fail("question", f"length {len(ids)}", f"length {n}, one per comparison")
    if pd.isna(ids).any():
        raise _fail(f"question[{int(np.flatnonzero(pd.isna(ids))[0])}]", None, "a question id")
    codes = pd.factorize(ids, sort=False)[0].astype(np.int64)
    for name, owner in (("user", user), ("prompt", prompt)):
        if owner is None:
            continue
        first = np.full(codes.max() + 1, -1, dtype=np.int64)
        first[codes[::-1]] = owner[::-1]  # the owner of each question's first comparison
        bad = first[codes] != owner
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(f"question[{i}]", _py(ids[i]), f"one {name} per question (its "
                        "comparisons have several)")
    return codes


def encode_rankings(sets: Any, ranks: Any, item_ids: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Rankings given by item id, checked, as ``(rows (R, n), rank (R, n))`` for
    ``ranking_stages``: item rows of ``item_ids`` (-1 padding) and ranks (``inf``: not
    ranked or padding).

    Parameters
    ----------
    sets:
        ``R`` lists of item ids, at least two each, no repeats.
    ranks:
        ``R`` lists of ranks, one per item (1 = best; equal ranks tie; None or NaN: not
        ranked), or None: each set is listed best first.
    item_ids:
        The item table's ids.
    """
    rows = _ragged(sets, None, "sets")
    for i, row in enumerate(rows):
        if len(row) < 2:
            raise _fail(f"sets[{i}]", row, "at least 2 items to choose from")
    if ranks is None:
        rank_rows = [list(range(1, len(r) + 1)) for r in rows]
    else:
        rank_rows = _ragged(ranks, len(rows), "ranks")
    values, valid = pad_lists(rows)
    for i, (row, rk) in enumerate(zip(rows, rank_rows, strict=True)):
        if len(rk) != len(row):
            raise _fail(f"ranks[{i}]", rk, f"{len(row)} ranks, one per item of sets[{i}] "
                        "(1 = best, equal ranks tie, None = not ranked)")
    flat = _as_id_array(values[valid].tolist(), "sets")
    codes = np.full(values.shape, -1, dtype=np.int64)
    codes[valid] = _encode(flat, item_ids, "sets", "item_ids")
    srt = np.sort(np.where(valid, codes, -1 - np.arange(values.shape[1])), 1)
    dup = srt[:, 1:] == srt[:, :-1]
    if dup.any():
        i = int(np.flatnonzero(dup.any(1))[0])
        raise _fail(f"sets[{i}]", rows[i], "distinct items (an item ranked twice)")
    rank = np.full(values.shape, np.inf)
    for i, rk in enumerate(rank_rows):  # numbers, None/NaN = not ranked
        for j, v in enumerate(rk):
            if v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
                raise _fail(f"ranks[{i}][{j}]", v, "a number (1 = best) or None")
            rank[i, j] = float(v)
    unranked = ~np.isfinite(rank).any(1)
    if unranked.any():
        i = int(np.flatnonzero(unranked)[0])
        raise _fail(f"ranks[{i}]", rank_rows[i], "at least one ranked item (1 = best)")
    return codes, rank


def ranking_stages(sets: np.ndarray, ranks: np.ndarray, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rankings as the choices that make them (Plackett-Luce): the best item is chosen from
    all the items shown, the next from the rest, and so on; unranked items (partial, top-m
    rankings) stay among the alternatives of every choice; items of equal rank are each
    chosen from the set that still holds all of them (Breslow's treatment of ties).

    Parameters
    ----------
    sets:
        ``(R, n)`` item rows shown in each answer, -1 padding.
    ranks:
        ``(R, n)`` each item's rank (lower is better; equal ranks tie; ``inf``: not ranked).
    rng:
        Picks which alternative is ``item_b`` and which of the two comes first.

    Returns
    -------
    tuple
        Per choice: ``answer`` (the ranking it comes from), ``item_a``, ``item_b``,
        ``label`` (1: item_a chosen) and ``others (S, n - 2)`` (-1 padding).
    """
    valid = sets >= 0
    ranked = valid & np.isfinite(ranks)
    r_idx, i_idx = np.nonzero(ranked)
    risk = valid[r_idx] & (ranks[r_idx] >= ranks[r_idx, i_idx][:, None])  # (S, n)
    keep = risk.sum(1) >= 2  # the last of a full ranking is chosen from itself alone
    r_idx, i_idx, risk = r_idx[keep], i_idx[keep], risk[keep]
    n_stage, width = risk.shape
    rows = np.arange(n_stage)
    alt = risk.copy()
    alt[rows, i_idx] = False
    keys = np.where(alt, rng.random(alt.shape), -1.0)
    j_idx = keys.argmax(1)  # item_b: a random alternative
    alt[rows, j_idx] = False
    order = np.argsort(~alt, axis=1, kind="stable")[:, : max(width - 2, 0)]
    others = np.where(np.take_along_axis(alt, order, 1),
                      np.take_along_axis(sets[r_idx], order, 1), -1)
    chosen, other = sets[r_idx, i_idx], sets[r_idx, j_idx]
    swap = rng.random(n_stage) < 0.5  # the chosen item is item_b half of the time
    a, b = np.where(swap, other, chosen), np.where(swap, chosen, other)
    return r_idx, a, b, np.where(swap, 0, 1), others


@dataclass(frozen=True, eq=False)
class EmbeddingTable:
    """A table of embeddings with the ids of its rows: the items (or prompts) a model scores.

    Parameters
    ----------
    ids:
        One id per row (unique; all integers or all strings).
    embeddings:
        ``(n, D)`` finite numbers, one row per id.
    texts:
        The rows' texts, where they are texts (``PreferenceData.from_texts`` and
        ``from_pairs`` record them): one string per row, or None.
    """

    ids: np.ndarray
    embeddings: np.ndarray
    texts: np.ndarray | None = None

    def __post_init__(self) -> None:
        ids = _as_id_array(self.ids, "ids")
        emb = _check_embeddings(self.embeddings, "embeddings")
        if len(ids) != len(emb):
            raise _fail("ids", f"{len(ids)} ids", f"{len(emb)}, one per embedding row")
        if pd.Index(ids).has_duplicates:
            raise _fail("ids", ids[pd.Index(ids).duplicated()][0], "unique ids")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "embeddings", emb)
        if self.texts is not None:
            texts = np.asarray(self.texts, dtype=object).reshape(-1)
            if len(texts) != len(ids):
                raise _fail("texts", f"{len(texts)} texts", f"{len(ids)}, one per row")
            bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
            if bad:
                raise _fail(f"texts[{bad[0]}]", texts[bad[0]], "a string")
            object.__setattr__(self, "texts", texts)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        """The embeddings' width ``D``."""
        return int(self.embeddings.shape[1])

    def rows(self, ids: Any, field_name: str = "ids") -> np.ndarray:
        """Row numbers of ``ids``; an unknown id is an error naming ``field_name``.

        Parameters
        ----------
        ids:
            Ids of the table's rows.
        field_name:
            The name an error reports.
        """
        ids = np.asarray(ids).reshape(-1)
        if len(ids) == 0:
            return np.zeros(0, dtype=np.int64)
        rows = pd.Index(self.ids).get_indexer(ids)
        if (rows < 0).any():
            bad = ids[np.flatnonzero(rows < 0)[0]]
            shown = ", ".join(repr(_py(i)) for i in self.ids[:3])
            raise _fail(field_name, bad, f"an id of the table ({len(self)} ids: {shown}, ...)"
                        " or, with rows=True, a row number")
        return rows.astype(np.int64)

    def match(self, ids: Any, embeddings: np.ndarray) -> np.ndarray:
        """Rows of this table holding the same items as ``(ids, embeddings)``: the same id
        *and* the same embedding; -1 where this table has no such item (an unknown id, or a
        known id with another embedding, i.e. another item under a reused name). With
        ``ids=None`` items are matched by their embedding alone (the first row holding it).
        Vectorised.

        Parameters
        ----------
        ids:
            ``(n,)`` item ids, or None.
        embeddings:
            ``(n, D)`` the items' embeddings.
        """
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.size == 0:
            return np.zeros(0, dtype=np.int64)
        emb = emb.reshape(len(emb), -1)
        if emb.shape[1] != self.dim:
            return np.full(len(emb), -1, dtype=np.int64)
        if ids is None:
            def key(x: np.ndarray) -> np.ndarray:
                x = np.ascontiguousarray(x, dtype=np.float32) + np.float32(0)  # -0.0 == 0.0
                return x.view(np.dtype((np.void, x.shape[1] * 4))).ravel()

            table = pd.Index(key(self.embeddings))
            first = ~table.duplicated()
            found = pd.Index(table[first]).get_indexer(key(emb))  # -1: none
            return np.append(np.flatnonzero(first), -1)[found].astype(np.int64)
        ids = np.asarray(ids).reshape(-1)
        try:
            rows = pd.Index(self.ids).get_indexer(ids)
        except TypeError:  # ids of another kind (strings vs integers): none match
            return np.full(len(ids), -1, dtype=np.int64)
        known = rows >= 0
        known[known] = (self.embeddings[rows[known]] == emb[known]).all(1)
        return np.where(known, rows, -1).astype(np.int64)

    def locate(self, values: Any, field_name: str, rows: bool = False) -> np.ndarray:
        """Row numbers of items named by id (default) or, with ``rows``, given as rows.

        Parameters
        ----------
        values:
            Ids of the table's rows, or (``rows=True``) row numbers in ``[0, len)``.
        field_name:
            The name an error reports.
        rows:
            ``values`` are row numbers, not ids.
        """
        if not rows:
            return self.rows(values, field_name)
        arr = np.asarray(values).reshape(-1)
        if len(arr) and not np.issubdtype(arr.dtype, np.integer):
            raise _fail(field_name, f"dtype {arr.dtype}", "integer row numbers (rows=True)")
        if len(arr) and (arr.min() < 0 or arr.max() >= len(self)):
            raise _fail(field_name, arr[(arr < 0) | (arr >= len(self))][0],
                        f"a row number in [0, {len(self)}) (rows=True)")
        return arr.astype(np.int64)

    @classmethod
    def of(cls, table: Any, default: EmbeddingTable | None = None, *, name: str = "items",
           dim: int | None = None) -> EmbeddingTable:
        """An item (or prompt) table from what a caller passed.

        Parameters
        ----------
        table:
            An ``EmbeddingTable`` (its ids name the rows); a DataFrame of embeddings
            indexed by id (as ``PreferenceData.from_arrays`` reads one); a bare
            ``(M, D)`` array or tensor, whose rows have no other name than their numbers
            (ids ``0..M-1``); or None for ``default``.
        default:
            The table meant by None (a fit's own); None: a table must be passed.
        name:
            The argument's name, for errors.
        dim:
            The required embedding width (the one the model was fitted on).
        """
        if table is None:
            if default is None:
                raise DataError(f"{name}: got None; expected an embedding table (none is "
                                "held here to default to: pass one)")
            table = default
        elif isinstance(table, pd.DataFrame):
            table = cls(table.index.to_numpy(), _check_embeddings(table.to_numpy(), name))
        elif not isinstance(table, EmbeddingTable):
            emb = check_table(name, table, dim, name)
            table = cls(np.arange(len(emb)), emb)
        if dim is not None and table.dim != dim:
            raise DataError(f"{name}: got {table.dim} columns; expected {dim}, the embedding "
                            "dimension the model was fitted on")
        return table


@dataclass(frozen=True, eq=False)
class PreferenceData:
    """Pairwise comparisons ``(user, item_a, item_b, label)`` over an item-embedding table.

    Attributes are index arrays into ``user_ids`` / ``item_ids``; the original ids are kept
    so results can be reported (and new data matched) by id. Build it with
    ``from_arrays`` or ``from_frame``, which validate everything.

    An answer is one of ``levels`` ordered outcomes and its label is the outcome's grade
    divided by ``levels - 1``: with ``levels=2`` (default) 1 means item_a was preferred and
    0 item_b; with ``levels=3`` 0.5 is a tie ("equal"); with more levels the grade says
    how strongly (``levels=5``: 0, 0.25, 0.5, 0.75, 1 from "b much better" to "a much
    better").

    A comparison may also be a *choice from a larger set*: ``others[n]`` lists the items
    shown beside ``item_a`` and ``item_b`` (``-1`` pads), and the label says which of the two
    was chosen (1: item_a) over all of them. A ranking is a sequence of such choices (the
    best of all, then the best of the rest, ...: Plackett-Luce); ``from_rankings`` and
    ``from_choices`` build them.

    ``question[n]`` says which answer (one question put to one user: a ranking, a best-of-n)
    comparison ``n`` is part of; the choices of one ranking share it. Splits hold out and
    rank whole answers, so a ranking's choices never fall on both sides of a split; None
    (pairs): every comparison is its own answer.
    """

    user: np.ndarray  # (N,) int64 index into user_ids
    item_a: np.ndarray  # (N,) int64 index into item_ids
    item_b: np.ndarray  # (N,) int64
    label: np.ndarray  # (N,) float32 grade / (levels - 1); 1 = item_a preferred
    items: np.ndarray  # (M, D) float32/float16 item embeddings
    user_ids: np.ndarray  # (U,) original user ids
    item_ids: np.ndarray  # (M,) original item ids
    prompt: np.ndarray | None = None  # (N,) int64 index into prompt_ids
    prompts: np.ndarray | None = None  # (P, Dp) prompt embeddings
    prompt_ids: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    levels: int = 2  # ordered outcomes of an answer: 2 binary, 3 with ties, more graded
    others: np.ndarray | None = None  # (N, m) int64 further items of a choice; -1: none
    question: np.ndarray | None = None  # (N,) int64 the answer each comparison is part of

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        user: Sequence,
        item_a: Sequence,
        item_b: Sequence,
        label: Sequence,
        items: Any,
        item_ids: Sequence | None = None,
        *,
        prompt: Sequence | None = None,
        prompts: Any = None,
        prompt_ids: Sequence | None = None,
        user_ids: Sequence | None = None,
        levels: int = 2,
        others: Sequence | None = None,
        question: Sequence | None = None,
    ) -> PreferenceData:
        """Validate comparisons given by id and build the container.

        ``items`` is an (M, D) array whose rows are the embeddings of ``item_ids``
        (default ``0..M-1``), or a DataFrame indexed by item id. ``user_ids`` fixes the
        user table's order (default: order of first appearance). ``levels`` is the number
        of ordered outcomes an answer has and ``label`` each answer's grade divided by
        ``levels - 1`` (see the class docstring; ``levels=3``: 0.5 is a tie). ``others``
        (one list of item ids per comparison, possibly empty) makes comparisons choices
        from larger sets: item_a (label 1) or item_b (label 0) was chosen over the others
        too. ``question`` (one id per comparison) groups the comparisons that make one answer
        (the choices of one ranking; ``from_rankings`` sets it): they must share their user
        and prompt.
        """
        if isinstance(items, pd.DataFrame):
            if item_ids is None:
                item_ids = items.index.to_numpy()
            items = items.to_numpy()
        table = _check_embeddings(items, "items")
        item_ids = np.arange(len(table)) if item_ids is None else _as_id_array(item_ids, "item_ids")
        if len(item_ids) != len(table):
            raise _fail("item_ids", f"{len(item_ids)} ids", f"{len(table)}, one per row of items")
        if pd.Index(item_ids).has_duplicates:
            dup = pd.Index(item_ids)[pd.Index(item_ids).duplicated()][0]
            raise _fail("item_ids", dup, "unique item ids")

        user = _as_id_array(user, "user")
        n = len(user)
        if n == 0:
            raise _fail("user", "0 comparisons", "at least one comparison")
        ids_a, ids_b = _as_id_array(item_a, "item_a"), _as_id_array(item_b, "item_b")
        for name, arr in (("item_a", ids_a), ("item_b", ids_b)):
            if len(arr) != n:
                raise _fail(name, f"length {len(arr)}", f"length {n}, the length of user")
        y = check_labels(label, n, levels)
        if pd.isna(user).any():
            raise _fail(f"user[{int(np.flatnonzero(pd.isna(user))[0])}]", None, "a user id")

        a = _encode(ids_a, item_ids, "item_a", "item_ids")
        b = _encode(ids_b, item_ids, "item_b", "item_ids")
        same = a == b
        if same.any():
            i = int(np.flatnonzero(same)[0])
            raise _fail(f"item_b[{i}]", ids_b[i], f"an item other than item_a[{i}] = {_py(ids_a[i])!r}")

        if user_ids is None:
            codes, uniques = pd.factorize(user, sort=False)
            u, user_table = codes.astype(np.int64), np.asarray(uniques)
        else:
            user_table = _as_id_array(user_ids, "user_ids")
            u = _encode(user, user_table, "user", "user_ids")

        p_idx, p_table, p_ids = None, None, None
        if prompt is not None or prompts is not None:
            if prompt is None or prompts is None:
                raise _fail("prompt", "only one of prompt/prompts", "both or neither")
            if isinstance(prompts, pd.DataFrame):
                if prompt_ids is None:
                    prompt_ids = prompts.index.to_numpy()
                prompts = prompts.to_numpy()
            p_table = _check_embeddings(prompts, "prompts")
            p_ids = (
                np.arange(len(p_table))
                if prompt_ids is None
                else _as_id_array(prompt_ids, "prompt_ids")
            )
            if len(p_ids) != len(p_table):
                raise _fail("prompt_ids", f"{len(p_ids)} ids", f"{len(p_table)}, one per prompt")
            p_arr = _as_id_array(prompt, "prompt")
            if len(p_arr) != n:
                raise _fail("prompt", f"length {len(p_arr)}", f"length {n}, the length of user")
            p_idx = _encode(p_arr, p_ids, "prompt", "prompt_ids")

        more = None if others is None else _encode_others(others, n, item_ids, a, b, levels)
        q = None if question is None else _encode_questions(question, n, u, p_idx)
        return cls(u, a, b, y, table, user_table, item_ids, p_idx, p_table, p_ids,
                   levels=int(levels), others=more, question=q)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        items: Any,
        item_ids: Sequence | None = None,
        *,
        user: str = "user",
        item_a: str = "item_a",
        item_b: str = "item_b",
        label: str = "label",
        prompt: str | None = None,
        prompts: Any = None,
        prompt_ids: Sequence | None = None,
        levels: int = 2,
        others: str | None = None,
        question: str | None = None,
    ) -> PreferenceData:
        """Build from a DataFrame (or a Hugging Face ``datasets.Dataset``) with one comparison
        per row (column names configurable; ``levels`` as for ``from_arrays``; ``others`` a
        column of lists of further items, for choices from larger sets; ``question`` a
        column of the answer each comparison is part of, as ``to_frame`` writes them)."""
        frame = _as_frame(frame)
        needed = [user, item_a, item_b, label] + ([prompt] if prompt else []) + (
            [others] if others else []) + ([question] if question else [])
        for col in needed:
            if col not in frame.columns:
                raise _fail("frame", f"columns {list(frame.columns)}", f"a column named {col!r}")
        return cls.from_arrays(
            frame[user].to_numpy(),
            frame[item_a].to_numpy(),
            frame[item_b].to_numpy(),
            frame[label].to_numpy(),
            items,
            item_ids,
            prompt=frame[prompt].to_numpy() if prompt else None,
            prompts=prompts,
            prompt_ids=prompt_ids,
            levels=levels,
            others=frame[others].tolist() if others else None,
            question=frame[question].to_numpy() if question else None,
        )

    @classmethod
    def from_rankings(
        cls,
        user: Sequence,
        sets: Sequence,
        ranks: Sequence | None,
        items: Any,
        item_ids: Sequence | None = None,
        *,
        prompt: Sequence | None = None,
        prompts: Any = None,
        prompt_ids: Sequence | None = None,
        user_ids: Sequence | None = None,
        seed: int = 0,
    ) -> PreferenceData:
        """Build from rankings: ``user[r]`` was shown the items ``sets[r]`` and ranked them
        ``ranks[r]`` (one per item: 1 = best; equal ranks are ties; None or NaN = not ranked,
        e.g. a top-2 of five). ``ranks=None``: each set is listed best first (a full
        ranking). Each ranking becomes the choices that make it (``ranking_stages``:
        Plackett-Luce, ties as Breslow), one comparison each, with the alternatives in
        ``others``; which alternative is ``item_b`` and whether the chosen item comes first
        is drawn (``seed``), so a position term is not confounded with the choices.

        Parameters
        ----------
        user:
            ``(R,)`` who answered.
        sets:
            ``R`` lists of item ids, at least two each, no repeats.
        ranks:
            ``R`` lists of ranks, one per item shown, or None.
        items, item_ids, prompt, prompts, prompt_ids, user_ids:
            As for ``from_arrays`` (``prompt``: one per ranking).
        seed:
            Seeds the layout of each choice.
        """
        if isinstance(items, pd.DataFrame):
            if item_ids is None:
                item_ids = items.index.to_numpy()
            items = items.to_numpy()
        item_ids = (np.arange(len(np.asarray(items))) if item_ids is None
                    else _as_id_array(item_ids, "item_ids"))
        user = _as_id_array(user, "user")
        codes, rank = encode_rankings(sets, ranks, item_ids)
        if len(user) != len(codes):
            raise _fail("user", f"length {len(user)}", f"length {len(codes)}, one per ranking")
        answer, a, b, label, more = ranking_stages(codes, rank, np.random.default_rng(seed))
        extra = {}
        if prompt is not None:
            extra["prompt"] = _as_id_array(prompt, "prompt")[answer]
        return cls.from_arrays(user[answer], item_ids[a], item_ids[b], label, items, item_ids,
                               prompt=extra.get("prompt"), prompts=prompts,
                               prompt_ids=prompt_ids, user_ids=user_ids,
                               others=[item_ids[r[r >= 0]].tolist() for r in more],
                               question=answer)

    @classmethod
    def from_long_frame(
        cls,
        frame: Any,
        items: Any,
        item_ids: Sequence | None = None,
        *,
        user: str = "user",
        question: str = "question",
        item: str = "item",
        rank: str = "rank",
        prompt: str | None = None,
        prompts: Any = None,
        prompt_ids: Sequence | None = None,
        seed: int = 0,
    ) -> PreferenceData:
        """Build from rankings in long format: one row per item shown, with the ``question``
        it was shown in (a question is one user's ranking of one set), the ``user``, the
        ``item`` and its ``rank`` (1 = best; equal ranks tie; empty/NaN = not ranked, so a
        best-of-n question has one ranked row). Ratings become rankings this way: one
        question per user (and prompt), the rating's negative as the rank.

        Parameters
        ----------
        frame:
            A DataFrame or a ``datasets.Dataset``.
        items, item_ids, prompts, prompt_ids:
            As for ``from_arrays``.
        user, question, item, rank, prompt:
            Column names (``prompt``: each question's prompt, the same on all its rows).
        seed:
            As for ``from_rankings``.
        """
        frame = _as_frame(frame)
        cols = [user, question, item, rank] + ([prompt] if prompt else [])
        for col in cols:
            if col not in frame.columns:
                raise _fail("frame", f"columns {list(frame.columns)}", f"a column named {col!r}")
        groups = frame.groupby(question, sort=False)
        for col in [user] + ([prompt] if prompt else []):
            varies = groups[col].nunique(dropna=False) > 1
            if varies.any():
                raise _fail(f"{col} of question {_py(varies.index[varies][0])!r}", "several values",
                            f"one {col} per question")
        first = groups.head(1)
        ranks = groups[rank].agg(lambda r: [None if pd.isna(v) else v for v in r])
        return cls.from_rankings(
            first[user].to_numpy(), groups[item].agg(list).tolist(), ranks.tolist(), items,
            item_ids, prompt=first[prompt].to_numpy() if prompt else None, prompts=prompts,
            prompt_ids=prompt_ids, seed=seed)

    @classmethod
    def from_choices(
        cls,
        user: Sequence,
        sets: Sequence,
        chosen: Sequence,
        items: Any,
        item_ids: Sequence | None = None,
        **kwargs: Any,
    ) -> PreferenceData:
        """Build from best-of-n answers: ``user[r]`` chose ``chosen[r]`` from the items
        ``sets[r]`` (a ranking of one; the other arguments as for ``from_rankings``).

        Parameters
        ----------
        user, sets:
            As for ``from_rankings``.
        chosen:
            ``(R,)`` the item id chosen from each set.
        items, item_ids, kwargs:
            As for ``from_rankings``.
        """
        rows = _ragged(sets, None, "sets")
        picked = list(chosen)
        if len(picked) != len(rows):
            raise _fail("chosen", f"length {len(picked)}", f"length {len(rows)}, one per set")
        ranks = []
        for i, (row, c) in enumerate(zip(rows, picked, strict=True)):
            hits = [j for j, x in enumerate(row) if x == c]
            if not hits:
                raise _fail(f"chosen[{i}]", c, f"one of the items of sets[{i}]")
            ranks.append([1 if j == hits[0] else None for j in range(len(row))])
        return cls.from_rankings(user, rows, ranks, items, item_ids, **kwargs)

    @classmethod
    def from_texts(
        cls,
        frame: pd.DataFrame,
        texts: Any,
        embedder: Any,
        **columns: str,
    ) -> PreferenceData:
        """Build from comparisons whose items are texts: ``texts`` maps item id -> text (a
        dict or Series); ``embedder`` (e.g. ``bayespal.embed.TextEmbedder``) embeds
        them. The embedder's configuration is recorded for reward export."""
        frame = _as_frame(frame)
        texts = pd.Series(texts)
        if texts.index.has_duplicates:
            raise _fail("texts", texts.index[texts.index.duplicated()][0], "unique item ids")
        bad = [i for i, t in zip(texts.index, texts, strict=True) if not isinstance(t, str)]
        if bad:
            raise _fail(f"texts[{bad[0]!r}]", texts[bad[0]], "a string")
        data = cls.from_frame(frame, embedder(texts.tolist()), texts.index.to_numpy(), **columns)
        data.meta["texts"] = texts.tolist()
        _record_embedder(data, embedder)
        return data

    @classmethod
    def from_pairs(
        cls,
        frame: Any,
        embedder: Any,
        *,
        chosen: str = "chosen",
        rejected: str = "rejected",
        user: str = "user",
        prompt: str | None = None,
        prompt_embedder: Any = None,
        seed: int = 0,
    ) -> PreferenceData:
        """Build from preference data in the Hugging Face / TRL shape: one row per judgement
        with the ``chosen`` and ``rejected`` response texts, the ``user`` who judged and,
        optionally, the ``prompt`` text.

        Responses are deduplicated by text and embedded once by ``embedder``; their item ids
        are ``0..M-1`` in order of first appearance, and ``meta["texts"]`` holds the text of
        each. With ``prompt`` the data are prompt-conditioned (PAL-B): prompts are
        deduplicated and embedded the same way (by ``prompt_embedder``, default
        ``embedder``), with ids ``0..P-1`` and ``meta["prompt_texts"]``. The chosen response
        is ``item_a`` of a random half of the comparisons (``seed``) and ``item_b`` of the
        rest, so that a position term, if fitted, is not confounded with the preference.

        Parameters
        ----------
        frame:
            A DataFrame or a ``datasets.Dataset``.
        embedder:
            A callable mapping a list of texts to an ``(n, D)`` array (e.g.
            ``bayespal.embed.TextEmbedder``); its configuration is recorded.
        chosen, rejected, user, prompt:
            Column names (``prompt`` None: no prompts).
        prompt_embedder:
            Embeds the prompts (default: ``embedder``).
        seed:
            Seeds which comparisons show the chosen response first.
        """
        frame = _as_frame(frame)
        for col in [chosen, rejected, user] + ([prompt] if prompt else []):
            if col not in frame.columns:
                raise _fail("frame", f"columns {list(frame.columns)}", f"a column named {col!r}")
        good = _texts(frame, chosen), _texts(frame, rejected)
        responses = pd.Index(pd.unique(np.concatenate(good)))
        a, b = responses.get_indexer(good[0]), responses.get_indexer(good[1])
        swap = np.random.default_rng(seed).random(len(frame)) < 0.5
        label = np.where(swap, 0, 1)
        a, b = np.where(swap, b, a), np.where(swap, a, b)
        extra: dict[str, Any] = {}
        prompt_texts = None
        if prompt:
            asked = _texts(frame, prompt)
            prompt_texts = pd.Index(pd.unique(asked))
            extra = dict(prompt=prompt_texts.get_indexer(asked),
                         prompts=(prompt_embedder or embedder)(prompt_texts.tolist()))
        data = cls.from_arrays(frame[user].to_numpy(), a, b, label,
                               embedder(responses.tolist()), np.arange(len(responses)), **extra)
        data.meta["texts"] = responses.tolist()
        if prompt_texts is not None:
            data.meta["prompt_texts"] = prompt_texts.tolist()
        _record_embedder(data, embedder)
        return data

    # ------------------------------------------------------------------ views
    @property
    def n_comparisons(self) -> int:
        return len(self.user)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def embed_dim(self) -> int:
        return self.items.shape[1]

    @cached_property
    def item_table(self) -> EmbeddingTable:
        """The items as an ``EmbeddingTable`` (ids, embeddings and, where the data were
        built from texts, the texts)."""
        return EmbeddingTable(self.item_ids, self.items, self._texts("texts"))

    @cached_property
    def prompt_table(self) -> EmbeddingTable | None:
        """The prompts as an ``EmbeddingTable``; None without prompts."""
        if self.prompts is None:
            return None
        return EmbeddingTable(self.prompt_ids, self.prompts,
                              self._texts("prompt_texts"))

    def _texts(self, key: str) -> list | None:
        """``meta[key]``'s texts (None where none are recorded); ``EmbeddingTable`` checks
        there is one string per row, so a wrong ``meta`` is an error, not ignored."""
        texts = self.meta.get(key)
        return None if texts is None else list(texts)

    @property
    def set_size(self) -> int:
        """The most items any answer chose from (2: pairs only)."""
        return 2 if self.others is None else 2 + self.others.shape[1]

    def require_pairs(self, what: str) -> None:
        """Raise if any comparison is a choice from a larger set (``others``): for what
        handles answers about two items only.

        Parameters
        ----------
        what:
            What refuses them (named in the message).
        """
        if self.others is not None:
            raise _fail("data", f"choices from sets of up to {self.set_size} items (others)",
                        f"comparisons of two items only: {what} handles pairs (choices and "
                        "rankings are scored by predict_outcomes, to_datatree and loo)")

    def other_rows(self) -> np.ndarray | None:
        """``others`` with each padding slot filled by the comparison's ``item_b`` (a valid
        row to look embeddings up by; ``others >= 0`` says which slots are real); None
        without choices from larger sets."""
        if self.others is None:
            return None
        return np.where(self.others >= 0, self.others, self.item_b[:, None])

    def comparisons_per_user(self) -> np.ndarray:
        """How many comparisons each user (in ``user_ids`` order) has."""
        return np.bincount(self.user, minlength=self.n_users)

    @property
    def answers(self) -> np.ndarray:
        """Each comparison's answer ``(N,)``: ``question``, or (None) its own index."""
        return np.arange(self.n_comparisons) if self.question is None else self.question

    def answers_per_user(self) -> np.ndarray:
        """How many answers (questions: a ranking counts once) each user has; with
        ``question=None`` the same as ``comparisons_per_user``."""
        if self.question is None:
            return self.comparisons_per_user()
        _, first = np.unique(self.question, return_index=True)
        return np.bincount(self.user[first], minlength=self.n_users)

    def to_frame(self) -> pd.DataFrame:
        """Comparisons with their original ids, one row each."""
        cols = {
            "user": self.user_ids[self.user],
            "item_a": self.item_ids[self.item_a],
            "item_b": self.item_ids[self.item_b],
            "label": self.label.astype(np.int64) if self.levels == 2 else self.label,
        }
        if self.prompt is not None:
            cols["prompt"] = self.prompt_ids[self.prompt]
        if self.others is not None:
            cols["others"] = [self.item_ids[row[row >= 0]].tolist() for row in self.others]
        if self.question is not None:
            cols["question"] = self.question
        return pd.DataFrame(cols)

    def __len__(self) -> int:
        return self.n_comparisons

    def __repr__(self) -> str:
        return (
            f"PreferenceData({self.n_comparisons} comparisons, {self.n_users} users, "
            f"{self.n_items} items x {self.embed_dim} dims"
            + (", prompted" if self.prompt is not None else "")
            + (f", {self.levels} levels" if self.levels > 2 else "")
            + (f", {int((self.others >= 0).any(1).sum())} choices from up to "
               f"{self.set_size} items" if self.others is not None else "")
            + ")"
        )

    # ------------------------------------------------------------------ subsets and splits
    def subset(self, mask: np.ndarray) -> PreferenceData:
        """The comparisons selected by a boolean mask or index array.

        The user table is compacted to the users that keep at least one comparison
        (ids are preserved, so results still match by id); the item table is kept whole.

        Parameters
        ----------
        mask:
            A boolean mask or an index array over the comparisons.
        """
        idx = np.arange(self.n_comparisons)[np.asarray(mask)]
        if len(idx) == 0:
            raise _fail("mask", "a selection of 0 comparisons", "at least one comparison")
        kept, user = np.unique(self.user[idx], return_inverse=True)
        return PreferenceData(
            user.astype(np.int64),
            self.item_a[idx],
            self.item_b[idx],
            self.label[idx],
            self.items,
            self.user_ids[kept],
            self.item_ids,
            None if self.prompt is None else self.prompt[idx],
            self.prompts,
            self.prompt_ids,
            dict(self.meta),
            self.levels,
            None if self.others is None else self.others[idx],
            None if self.question is None else self.question[idx],
        )

    def split_comparisons(
        self, test_per_user: int | None = None, test_fraction: float | None = None, seed: int = 0
    ) -> tuple[PreferenceData, PreferenceData]:
        """Hold out answers within users: ``(train, test)``.

        Give either a number of test answers per user or a fraction. Every user keeps at
        least one training answer; a user with too few answers raises. An answer is a
        comparison, or all the choices of one ranking (``question``): they stay together.

        Parameters
        ----------
        test_per_user:
            Test answers per user.
        test_fraction:
            Or: a fraction of every user's answers.
        seed:
            Seeds the choice.
        """
        if (test_per_user is None) == (test_fraction is None):
            raise _fail("test_per_user/test_fraction", (test_per_user, test_fraction), "exactly one")
        counts = self.answers_per_user()
        if test_fraction is not None:
            if not 0 < test_fraction < 1:
                raise _fail("test_fraction", test_fraction, "a number in (0, 1)")
            n_test = np.floor(counts * test_fraction).astype(np.int64)
        else:
            if test_per_user < 1:
                raise _fail("test_per_user", test_per_user, "a positive integer")
            n_test = np.full(self.n_users, test_per_user)
        short = counts <= n_test
        if test_per_user is not None and short.any():
            i = int(np.flatnonzero(short)[0])
            raise _fail(
                f"user {_py(self.user_ids[i])!r}",
                f"{counts[i]} answers",
                f"more than test_per_user={test_per_user} so one is left for training",
            )
        rank = self.rank_within_users(np.random.default_rng(seed))
        is_test = rank < n_test[self.user]
        return self.subset(~is_test), self.subset(is_test)

    def rank_within_users(self, rng: np.random.Generator) -> np.ndarray:
        """Each comparison's answer's position ``0, 1, ...`` among its user's answers in a
        random order (``rank < n`` selects ``n`` random answers of every user, all the
        choices of a ranking together).

        Parameters
        ----------
        rng:
            Draws the order (one uniform per answer).
        """
        if self.question is None:
            owner, inverse = self.user, None
        else:
            _, first, inverse = np.unique(self.question, return_index=True, return_inverse=True)
            owner = self.user[first]  # each answer's user
        counts = np.bincount(owner, minlength=self.n_users)
        order = np.lexsort((rng.random(len(owner)), owner))  # shuffled within user
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(len(owner), dtype=np.int64)
        rank[order] = np.arange(len(owner)) - starts[owner[order]]
        return rank if inverse is None else rank[inverse.reshape(-1)]

    def split_users(
        self, unseen_fraction: float = 0.2, seed: int = 0
    ) -> tuple[PreferenceData, PreferenceData]:
        """Split users into ``(seen, unseen)`` data sets, all comparisons of a user together.

        Parameters
        ----------
        unseen_fraction:
            The share of users held out, in (0, 1).
        seed:
            Seeds the choice.
        """
        if not 0 < unseen_fraction < 1:
            raise _fail("unseen_fraction", unseen_fraction, "a number in (0, 1)")
        n_unseen = int(round(self.n_users * unseen_fraction))
        if n_unseen < 1 or n_unseen >= self.n_users:
            raise _fail("unseen_fraction", unseen_fraction, f"a split of {self.n_users} users "
                        "leaving at least one on each side")
        rng = np.random.default_rng(seed)
        unseen = np.zeros(self.n_users, dtype=bool)
        unseen[rng.choice(self.n_users, n_unseen, replace=False)] = True
        mask = unseen[self.user]
        return self.subset(~mask), self.subset(mask)

    def require_users(self, user_ids: Sequence) -> None:
        """Raise if any of ``user_ids`` has no comparison here.

        Parameters
        ----------
        user_ids:
            Ids that must have comparisons.
        """
        have = set(self.user_ids[np.unique(self.user)].tolist())
        for uid in user_ids:
            if uid not in have:
                raise _fail("user", uid, "a user with at least one comparison in this data")
