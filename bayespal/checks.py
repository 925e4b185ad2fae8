"""Argument checks shared by every entry point: one message style, ``"field: got X;
expected Y"``, raised as ``ValueError``. Python and numpy scalars are accepted alike;
``bool`` is never taken for a number."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

SEED_MAX = 2**32 - 1


def _show(value: Any) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 80 else text[:77] + "..."


def fail(name: str, value: Any, expected: str) -> ValueError:
    """The standard error for a bad argument.

    Parameters
    ----------
    name:
        The argument's name.
    value:
        The bad value.
    expected:
        What was expected.
    """
    return ValueError(f"{name}: got {_show(value)}; expected {expected}")


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy; not a bool).

    Parameters
    ----------
    value:
        Any value.
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer in ``[minimum, maximum]`` (numpy integers accepted), as ``int``.

    Parameters
    ----------
    name:
        The argument's name.
    value:
        The value.
    minimum, maximum:
        Inclusive bounds (maximum None: none).
    """
    ok = is_int(value) and value >= minimum and (maximum is None or value <= maximum)
    if not ok:
        bound = f"an integer >= {minimum}" if maximum is None else \
            f"an integer in [{minimum}, {maximum}]"
        raise fail(name, value, bound)
    return int(value)


def check_seed(seed: Any) -> int:
    """A random seed: an integer in ``[0, 2**32 - 1]``.

    Parameters
    ----------
    seed:
        The value.
    """
    return check_int("seed", seed, 0, SEED_MAX)


def check_real(name: str, value: Any, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number (numpy floats accepted) within the given bounds, as ``float``.

    Parameters
    ----------
    name:
        The argument's name.
    value:
        The value.
    low, high:
        Bounds (None: none).
    low_open, high_open:
        Exclude the bound itself.
    """
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(
            value, (bool, np.bool_)) or not math.isfinite(float(value)):
        raise fail(name, value, "a finite number" + _range(low, high, low_open, high_open))
    x = float(value)
    bad_low = low is not None and (x <= low if low_open else x < low)
    bad_high = high is not None and (x >= high if high_open else x > high)
    if bad_low or bad_high:
        raise fail(name, value, "a number" + _range(low, high, low_open, high_open))
    return x


def _range(low, high, low_open, high_open) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f" {'<' if high_open else '<='} {high:g}"
    return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_fields(what: str, d: dict, cls: type) -> dict:
    """``d`` if all its keys are fields of the dataclass ``cls``, else an error naming the
    first unknown key.

    Parameters
    ----------
    what:
        What ``d`` describes, for the message (e.g. ``"model config"``).
    d:
        A mapping from field names to values.
    cls:
        A dataclass.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise fail(what, unknown[0], f"one of {sorted(known)}")
    return dict(d)


def check_table(name: str, table: Any, dim: int | None = None, what: str = "rows") -> np.ndarray:
    """A 2-d table of finite real embeddings ``(rows, dim)`` as float32 (float16 kept), with
    ``dim`` columns if given (the width the model was fitted on).

    Parameters
    ----------
    name:
        The argument's name.
    table:
        A 2-d array or tensor.
    dim:
        The required number of columns (None: any).
    what:
        What a row is, for messages.
    """
    if hasattr(table, "detach"):  # a torch tensor
        table = table.detach().cpu().numpy()
    arr = np.asarray(table)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise fail(name, f"array of shape {arr.shape}", f"a non-empty 2-d array ({what} x dim)")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr) or arr.dtype == bool:
        raise fail(name, f"dtype {arr.dtype}", "real numbers")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name}: got {arr.shape[1]} columns; expected {dim}, the embedding "
                         "dimension the model was fitted on")
    if arr.dtype not in (np.float16, np.float32):
        arr = arr.astype(np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise fail(f"{name}[{row}, {col}]", float(arr[row, col]), "a finite number")
    return arr
