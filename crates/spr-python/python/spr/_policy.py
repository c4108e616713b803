"""`RunnerPolicy`: what a run may import, call and use, and its limits."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Union

from . import _native
from ._compat import slotted

_DEFAULTS: Dict[str, Any] = json.loads(_native.default_policy())

#: The original's policy keys, in its positional order (what its engines were sent).
ORIGINAL_FIELDS = (
    "mode",
    "timeout_seconds",
    "memory_limit_mb",
    "max_output_kb",
    "allowed_imports",
    "blocked_imports",
    "allowed_builtins",
    "blocked_builtins",
    "allowed_globals",
    "blocked_globals",
    "extra_globals",
)
#: Every key of a policy: the original's, then `config_path`, then spr's own.
FIELDS = ORIGINAL_FIELDS + ("config_path", "sandbox")


def _default(name: str):
    value = _DEFAULTS[name]
    if isinstance(value, (list, dict)):
        return dataclasses.field(default_factory=lambda: json.loads(json.dumps(value)))
    return value


@slotted
class RunnerPolicy:
    """The policy of a run, with the original safe-py-runner's fields and defaults.

    ``mode`` is checked at once; everything else is checked, strictly and naming the
    key, when a run uses the policy (``ValueError``). ``config_path``, when set, names a
    TOML policy file that is read again for every run and wins over the other fields.
    ``sandbox`` is spr's ``[policy.sandbox]`` table (kernel limits and requirements).
    """

    mode: str = _default("mode")
    timeout_seconds: int = _default("timeout_seconds")
    memory_limit_mb: int = _default("memory_limit_mb")
    max_output_kb: int = _default("max_output_kb")
    allowed_imports: List[str] = _default("allowed_imports")
    blocked_imports: List[str] = _default("blocked_imports")
    allowed_builtins: List[str] = _default("allowed_builtins")
    blocked_builtins: List[str] = _default("blocked_builtins")
    allowed_globals: List[str] = _default("allowed_globals")
    blocked_globals: List[str] = _default("blocked_globals")
    extra_globals: Dict[str, Any] = _default("extra_globals")
    config_path: Optional[str] = None
    sandbox: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("allow", "restrict"):
            raise ValueError("mode must be 'allow' or 'restrict'")

    @classmethod
    def from_file(cls, config_path: Union[str, "os.PathLike[str]"]) -> "RunnerPolicy":
        """Load a TOML policy file (its ``[policy]`` table). Unlike the original, a
        missing file raises ``FileNotFoundError`` and a bad key or value ``ValueError``."""
        path = os.fspath(config_path)
        data = json.loads(_native.load_policy_file(path))
        data["config_path"] = path
        return cls(**{k: v for k, v in data.items() if k in FIELDS})

    def to_dict(self) -> Dict[str, Any]:
        """The policy as the keys of a TOML ``[policy]`` table (what ``spr serve`` takes)."""
        if self.config_path is not None:
            # The file wins over every other field, as in the original: they are not
            # even looked at.
            return {"config_path": os.fspath(self.config_path)}
        out: Dict[str, Any] = {}
        for name in FIELDS:
            value = getattr(self, name)
            if name == "config_path":
                continue
            if name == "sandbox" and not value:
                continue
            _check_type(name, value)
            out[name] = value
        return out

    def to_json(self) -> str:
        """JSON of :meth:`to_dict`; ``TypeError`` for an ``extra_globals`` value JSON cannot hold."""
        data = self.to_dict()
        try:
            return json.dumps(data, allow_nan=False)
        except ValueError as exc:
            raise ValueError(f"invalid policy: extra_globals: {exc}") from None

    def check(self) -> "RunnerPolicy":
        """Check every field now (``ValueError`` naming the key; ``FileNotFoundError`` for a
        ``config_path`` that is not there) rather than at the first run."""
        if self.config_path is not None:
            _native.load_policy_file(os.fspath(self.config_path))
        else:
            _native.check_policy(self.to_json())
        return self


_INTS = ("timeout_seconds", "memory_limit_mb", "max_output_kb")
_LISTS = tuple(n for n in FIELDS if n.endswith(("_imports", "_builtins", "_globals")) and n != "extra_globals")


def _check_type(name: str, value: Any) -> None:
    """Types, named by key, before the value reaches spr (which checks the ranges)."""
    if name in _INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(
                f"invalid policy: {name} must be an integer, got {type(value).__name__} {value!r}"
            )
        if value < 0:
            raise ValueError(f"invalid policy: {name} must not be negative, got {value}")
        if value > 2**63 - 1:
            raise ValueError(f"invalid policy: {name} is far too large, got {value}")
    elif name in _LISTS:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ValueError(f"invalid policy: {name} must be a list of strings")
        for item in value:
            if not isinstance(item, str):
                raise ValueError(
                    f"invalid policy: {name} must contain only strings, got {item!r}"
                )
            _check_text(name, item)
    elif name in ("extra_globals", "sandbox"):
        if not isinstance(value, dict):
            raise ValueError(f"invalid policy: {name} must be a dict")
        if name == "extra_globals":
            _check_values(name, value, 0)


#: What spr's policy values hold exactly: 64-bit integers (signed, or unsigned above).
_INT_RANGE = (-(2**63), 2**64 - 1)


#: How deep `extra_globals` may nest (spr's JSON reader stops at 128).
_MAX_DEPTH = 100


def _check_text(path: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"invalid policy: {path} holds a character UTF-8 cannot carry "
            f"({exc.object[exc.start]!r} at index {exc.start})"
        ) from None


def _check_values(path: str, value: Any, depth: int) -> None:
    """Refuse values a policy cannot hold, naming where they are: an integer past 64
    bits would otherwise arrive as a float, NaN and infinities not at all."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"invalid policy: {path} is nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, bool):
        return
    if isinstance(value, str):
        _check_text(path, value)
        return
    if isinstance(value, int):
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            raise ValueError(
                f"invalid policy: {path}: {value} does not fit in 64 bits (pass it in input_data, "
                "where integers of any size stay exact)"
            )
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"invalid policy: {path}: {value} is not a JSON number")
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                _check_text(f"{path} key {key!r}", key)
            _check_values(f"{path}.{key}", item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_values(f"{path}[{index}]", item, depth + 1)
