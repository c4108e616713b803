"""Turning ``files=`` and ``collect=`` arguments into what the native module takes."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

FileData = Union[str, bytes, bytearray, memoryview]
Files = Optional[Mapping[str, FileData]]


def files_arg(files: Files) -> List[Tuple[str, bytes]]:
    """``{"relative/path": str | bytes}`` as ``(path, bytes)`` pairs (text as UTF-8)."""
    if files is None:
        return []
    if not isinstance(files, Mapping):
        raise TypeError("files must be a mapping of relative paths to str or bytes")
    out = []
    for path, data in files.items():
        path = os.fspath(path)
        if not isinstance(path, str):
            raise TypeError(f"files: a path must be a str, got {type(path).__name__}")
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data)
        else:
            raise TypeError(
                f"files[{path!r}] must be str or bytes, got {type(data).__name__}"
            )
        out.append((path, data))
    return out


def collect_arg(collect: Optional[Iterable[str]]) -> List[str]:
    if collect is None:
        return []
    if isinstance(collect, str):
        # A lone string would otherwise be read as one glob per character.
        return [collect]
    out = list(collect)
    for glob in out:
        if not isinstance(glob, str):
            raise TypeError(f"collect: a glob must be a str, got {type(glob).__name__}")
    return out


def input_arg(input_data: Any) -> Optional[str]:
    """The original's rule: a falsy ``input_data`` is ``{}``; the rest goes through JSON
    (``TypeError`` for what JSON cannot hold, as in the original)."""
    if not input_data:
        return None
    try:
        return json.dumps(input_data, allow_nan=False)
    except ValueError as exc:
        # NaN and infinities: JSON has no such numbers.
        raise ValueError(f"input_data: {exc}") from None
    except RecursionError:
        raise ValueError("input_data is nested too deeply to send") from None


def call_args(code: Any, input_data: Any, files: Files, collect: Optional[Iterable[str]]) -> Dict[str, Any]:
    """What every run and cell sends: its code (checked) and its input, files and globs,
    as the native module takes them."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, got {type(code).__name__}")
    return {"input_json": input_arg(input_data), "files": files_arg(files), "collect": collect_arg(collect)}


def send(method: Callable[..., Any], *args: Any, code: str, **kwargs: Any) -> Any:
    """``method(*args, code, **kwargs)``; a text UTF-8 cannot carry (a lone surrogate),
    which the native module refuses without saying where, is named by argument."""
    try:
        return method(*args, code, **kwargs)
    except UnicodeEncodeError:
        texts = {"code": code, "files": [p for p, _ in kwargs["files"]], "collect": kwargs["collect"]}
    for name, value in texts.items():
        for text in value if isinstance(value, list) else [value]:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(
                    f"{name} holds a character UTF-8 cannot carry "
                    f"({exc.object[exc.start]!r} at index {exc.start})"
                ) from None
    raise ValueError("an argument holds a character UTF-8 cannot carry")
