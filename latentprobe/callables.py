"""What a user callable reads, for the fingerprints of resumable work; and explicit versions.

A resumed sweep or study returns the rows it stored only when everything that decided them is unchanged.
For a user callable (an intervention, a perturbation, a scorer, a mask rule, a logits processor) that is
more than its source text. :func:`describe` (behind :func:`latentprobe.fingerprint.callable_fingerprint`)
covers:

- its **code**: the bytecode, constants and names of the function and of every code object nested in it
  (``"code"``), and the dedented source text where it is available (``"source"``);
- its **bound values**: closure cells, defaults and keyword defaults (``"values"``);
- the **module globals it reads** (``"globals"``): plain data by value (numbers, strings, bytes, tuples,
  lists, dicts, sets, enums, numpy arrays, tensors and DataFrames by a hash of their bytes), torch modules
  by their weights, and the attributes it reads of a user module (``cfg.SCALE``);
- the **functions and classes it calls** (transitively, each once: cycles are cut) when they are user
  code: defined in the callable's own module or in a module that is not part of Python or of an
  installed package. Library functions (numpy, torch, latentprobe) are named, not read;
- for a **callable object**, its class (every method, as above) and its state (``"state"``: a dataclass's
  fields, ``__dict__`` and ``__slots__``, or what ``__reduce_ex__`` returns); for a bound method, its
  object; for a :func:`functools.partial`, the function and its arguments.

Where a value cannot be read (a lock, a file handle, a generator, a C object that cannot be pickled), the
fingerprint cannot tell whether it changed. It then lists the value under ``"needs_version"`` with a
token that holds within one process (the same object resumes) and differs in the next, so a resumed run
is refused with the value named in the diff, and :class:`~latentprobe.errors.FingerprintWarning` says so
when the run starts. An explicit version lifts that: :func:`latentprobe.versioned` (or a
``__latentprobe_version__`` attribute, :mod:`latentprobe.versioning`) stands for what it is given to, and
the fingerprint records the version instead of reading the callable. Change the version whenever the
callable's behaviour changes.

Bytecode differs between Python minor versions, so a run resumed under another Python is refused (give
the callable a version to resume it). Within one process an object that cannot be read counts as
unchanged while it is the same object.
"""

from __future__ import annotations

import dataclasses
import dis
import enum
import functools
import hashlib
import inspect
import itertools
import json
import linecache
import os
import secrets
import sys
import sysconfig
import textwrap
import types
import weakref
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from latentprobe.versioning import VERSION_ATTR, Versioned, version_of

__all__ = ["describe", "source_digest", "is_user_code"]

_MAX_DEPTH = 12  # nesting of values read
_MAX_NODES = 20000  # values read per fingerprint
_BIG = 64  # containers longer than this are recorded by a hash of their values
_GLOBAL_OPS = {"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"}
_ATTR_OPS = {"LOAD_ATTR", "LOAD_METHOD"}
_SKIP_MEMBERS = {"_abc_impl", "__dict__", "__weakref__", "__module__", "__doc__", "__qualname__", "__slots__",
                 "__annotations__", "__dataclass_fields__", "__dataclass_params__", "__match_args__", VERSION_ATTR}
_PROCESS = secrets.token_hex(4)  # tells one process's unreadable objects from another's
_TOKENS: dict[int, tuple[Any, str]] = {}
_COUNTER = itertools.count(1)


# --------------------------------------------------------------------------- names and sources
def _qualname(obj: Any) -> str:
    mod = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{mod}.{name}" if mod and mod != "builtins" else name


def _lambda_text(fn: Callable[..., Any]) -> str | None:
    """A lambda's own text, ``lambda args: body``, cut from its line by the body's column offsets
    (``inspect.getsource`` returns the whole statement, neighbours included)."""
    code = fn.__code__
    spans = [p for p in code.co_positions() if None not in p and (p[2], p[3]) != (0, 0)]
    lines = linecache.getlines(code.co_filename)
    if not spans or not lines:
        return None
    (l0, c0), (l1, c1) = min((p[0], p[2]) for p in spans), max((p[1], p[3]) for p in spans)
    if l1 > len(lines):
        return None
    raw = [line.encode("utf-8") for line in lines[l0 - 1:l1]]  # offsets are in UTF-8 bytes
    body = raw[0][c0:] if l0 != l1 else raw[0][c0:c1]
    if l0 != l1:
        body += b"".join(raw[1:-1]) + raw[-1][:c1]
    names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    return f"lambda {', '.join(names)}: {body.decode('utf-8', 'replace')}"


def source_digest(obj: object) -> str | None:
    """``"sha256:<16 hex>"`` of ``obj``'s dedented source code (a lambda's own text), or ``None`` if it
    is unavailable.

    Parameters
    ----------
    obj : object
        A function, class or module.
    """
    src = _lambda_text(obj) if inspect.isfunction(obj) and obj.__name__ == "<lambda>" else None
    if src is None:
        try:
            src = inspect.getsource(obj)
        except (OSError, TypeError):
            return None
    return "sha256:" + hashlib.sha256(textwrap.dedent(src).encode()).hexdigest()[:16]


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {os.path.dirname(os.path.abspath(__file__))}  # latentprobe itself
    return tuple(sorted(os.path.abspath(r) + os.sep for r in roots if r))


_LIBRARY = _library_roots()


def is_user_code(obj: Any) -> bool:
    """Whether ``obj`` (a function, class or module) is defined outside Python's library, the installed
    packages and latentprobe: in a script, a notebook, or a module of the user's own.

    Parameters
    ----------
    obj : object
        A function, class or module.
    """
    name = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None)
    if name == "builtins":
        return False
    mod = obj if inspect.ismodule(obj) else sys.modules.get(name or "")
    if mod is None:
        return True  # exec'd code (no module), or a module no longer imported
    path = getattr(mod, "__file__", None)
    if not path:  # a notebook or a REPL (__main__), or a module built into Python
        return mod.__name__ == "__main__"
    return not os.path.abspath(path).startswith(_LIBRARY)


# --------------------------------------------------------------------------- code
def _const(c: Any) -> Any:
    if inspect.iscode(c):
        return _code_parts(c)
    if isinstance(c, (tuple, frozenset)):
        items = [_const(x) for x in c]
        return items if isinstance(c, tuple) else sorted(items, key=repr)
    if isinstance(c, bytes):
        return c.hex()
    return c if c is None or isinstance(c, (bool, int, str)) else repr(c)


def _code_parts(code: types.CodeType) -> list[Any]:
    return [code.co_name, code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags,
            code.co_code.hex(), [_const(c) for c in code.co_consts], code.co_names, code.co_varnames,
            code.co_freevars, code.co_cellvars]


def _code_digest(code: types.CodeType) -> str:
    text = json.dumps(_code_parts(code), default=repr)
    return f"py{sys.version_info[0]}.{sys.version_info[1]}:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _globals_read(code: types.CodeType) -> tuple[set[str], dict[str, set[str]]]:
    """The global names a code object (and the code nested in it) reads, and the attributes read right
    after a global (``cfg.SCALE`` -> ``{"cfg": {"SCALE"}}``)."""
    names: set[str] = set()
    attrs: dict[str, set[str]] = {}
    todo = [code]
    while todo:
        c = todo.pop()
        todo.extend(x for x in c.co_consts if inspect.iscode(x))
        last = None
        for ins in dis.get_instructions(c):
            if ins.opname in _GLOBAL_OPS:
                names.add(ins.argval)
                last = ins.argval
            elif ins.opname in _ATTR_OPS and last is not None:
                attrs.setdefault(last, set()).add(ins.argval)
                last = None
            elif ins.opname not in ("CACHE", "PRECALL", "PUSH_NULL", "EXTENDED_ARG"):
                last = None
    return names, attrs


def _token(obj: Any) -> str:
    """A token for an object that cannot be read: the same for the same object in this process."""
    held = _TOKENS.get(id(obj))
    if held is not None:
        ref, tok = held
        if (ref() if isinstance(ref, weakref.ref) else ref) is obj:
            return tok
    tok = f"{_PROCESS}-{next(_COUNTER)}"
    try:
        ref: Any = weakref.ref(obj)
    except TypeError:
        ref = obj  # kept alive so that its id is not reused
    _TOKENS[id(obj)] = (ref, tok)
    return tok


# --------------------------------------------------------------------------- the walk
class _Walk:
    """One fingerprint's walk over what a callable reads (cycles cut, unreadable values collected)."""

    def __init__(self, module_hash: Callable[[torch.nn.Module], str], root_module: str | None) -> None:
        self.module_hash = module_hash
        self.root_module = root_module
        self.active: set[int] = set()
        self.opaque: list[str] = []
        self.nodes = 0

    def _user(self, obj: Any) -> bool:
        return getattr(obj, "__module__", None) == self.root_module or is_user_code(obj)

    def _unreadable(self, obj: Any, where: str, why: str) -> dict[str, str]:
        self.opaque.append(f"{where}: {why} [{_token(obj)}]")
        return {"unreadable": type(obj).__qualname__}

    # callables -------------------------------------------------------------
    def function(self, fn: types.FunctionType, where: str) -> Any:
        version = version_of(fn)
        if version is not None:
            return {"name": _qualname(fn), "version": version}
        if id(fn) in self.active:
            return {"ref": _qualname(fn)}
        self.active.add(id(fn))
        here = _qualname(fn)
        out: dict[str, Any] = {"name": here, "source": source_digest(fn), "code": _code_digest(fn.__code__)}
        values: dict[str, Any] = {}
        if fn.__closure__:
            cells = {}
            for name, cell in zip(fn.__code__.co_freevars, fn.__closure__):
                try:
                    cells[name] = self.value(cell.cell_contents, f"{here} (closure {name})")
                except ValueError:  # an empty cell
                    cells[name] = "<empty>"
            values["closure"] = cells
        if fn.__defaults__:
            values["defaults"] = [self.value(v, f"{here} (defaults)") for v in fn.__defaults__]
        if fn.__kwdefaults__:
            values["kwdefaults"] = self.value(fn.__kwdefaults__, f"{here} (kwdefaults)")
        if values:
            out["values"] = values
        if not self._user(fn):  # library code: its own code and values, not the library's globals
            self.active.discard(id(fn))
            return out
        names, attrs = _globals_read(fn.__code__)
        found = {}
        for name in sorted(names):
            if name not in fn.__globals__:
                continue  # a builtin, or not defined yet
            v = fn.__globals__[name]
            if inspect.ismodule(v) and is_user_code(v) and name in attrs:
                read = {a: self.value(getattr(v, a), f"{here} (global {name}.{a})")
                        for a in sorted(attrs[name]) if hasattr(v, a)}
                found[name] = {"module": v.__name__, "attrs": read}
            else:
                found[name] = self.value(v, f"{here} (global {name})")
        if found:
            out["globals"] = found
        self.active.discard(id(fn))
        return out

    def klass(self, cls: type, where: str) -> Any:
        if not self._user(cls):
            return _qualname(cls)
        version = version_of(cls)
        if version is not None:
            return {"name": _qualname(cls), "version": version}
        if id(cls) in self.active:
            return {"ref": _qualname(cls)}
        self.active.add(id(cls))
        here = _qualname(cls)
        members = {}
        for name, member in sorted(vars(cls).items()):
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property):
                members[name] = [self.value(f, f"{here}.{name}") for f in (member.fget, member.fset, member.fdel)]
            elif inspect.isfunction(member):
                members[name] = self.function(member, f"{here}.{name}")
            elif name not in _SKIP_MEMBERS and not (name.startswith("__") and name.endswith("__")):
                members[name] = self.value(member, f"{here}.{name}")
        bases = [self.klass(b, here) for b in cls.__bases__ if b is not object]
        self.active.discard(id(cls))
        return {"name": here, "source": source_digest(cls), "bases": bases, "members": members}

    def callable(self, fn: Any, where: str) -> dict[str, Any]:
        """A root callable (the form :func:`describe` returns)."""
        version = version_of(fn)
        if version is not None:
            return {"name": _qualname(fn.fn if isinstance(fn, Versioned) else fn), "version": version}
        if isinstance(fn, functools.partial):
            return {"name": "functools.partial", "partial": self.callable(fn.func, where),
                    "args": self.value(list(fn.args), f"{where} (partial args)"),
                    "keywords": self.value(dict(fn.keywords), f"{where} (partial keywords)")}
        if isinstance(fn, torch.nn.Module):
            return {"name": _qualname(type(fn)), "source": source_digest(type(fn)), "weights": self.module_hash(fn),
                    "state": self.value(_module_settings(fn), f"{_qualname(type(fn))} (attributes)")}
        if inspect.ismethod(fn):
            out = self.callable(fn.__func__, where)
            out["self"] = self.value(fn.__self__, f"{_qualname(fn.__func__)} (its object)")
            return out
        if inspect.isbuiltin(fn) or inspect.ismethoddescriptor(fn) or isinstance(fn, types.MethodWrapperType):
            out = {"name": _qualname(fn), "source": None}  # compiled code: named
            owner = getattr(fn, "__self__", None)
            if owner is not None and not inspect.ismodule(owner):
                out["self"] = self.value(owner, f"{_qualname(fn)} (its object)")
            return out
        if inspect.isfunction(fn):
            return self.function(fn, where)
        if inspect.isclass(fn):
            if self._user(fn):
                return self.klass(fn, where)
            return {"name": _qualname(fn), "source": source_digest(fn)}
        cls = type(fn)
        out = {"name": _qualname(cls), "source": source_digest(cls)}
        if out["source"] is None and not any(inspect.isfunction(v) for v in vars(cls).values()):
            if isinstance(getattr(fn, "__name__", None), str):  # np.tanh and np.sin are both numpy.ufunc objects
                out["name"] += f":{fn.__name__}"
            return out  # a compiled class (a numpy ufunc, a torch op): library code
        state = self.state(fn, f"{_qualname(cls)} (its state)", 0)
        if isinstance(state, dict) and "class" in state:
            cls_fp = state.pop("class")
            if isinstance(cls_fp, dict):  # a user class: its methods and what they read
                out["class"] = cls_fp
        out["state"] = state
        return out

    # values ----------------------------------------------------------------
    def value(self, v: Any, where: str, depth: int = 0) -> Any:
        """A JSON-ready, deterministic stand-in for a value a callable reads."""
        self.nodes += 1
        if v is None or isinstance(v, (bool, int, str)):
            return v
        if isinstance(v, (float, complex)):
            return repr(v)
        if self.nodes > _MAX_NODES or depth > _MAX_DEPTH:
            return self._unreadable(v, where, "too large or too deeply nested to read")
        if isinstance(v, enum.Enum):
            return f"{_qualname(type(v))}.{v.name}"
        if isinstance(v, (bytes, bytearray, memoryview)):
            return {"bytes": len(bytes(v)), "sha256": hashlib.sha256(bytes(v)).hexdigest()[:16]}
        if isinstance(v, torch.nn.Module):
            return {"module": _qualname(type(v)), "weights": self.module_hash(v),
                    "state": self.value(_module_settings(v), where, depth + 1)}
        if isinstance(v, torch.Tensor):
            return {"tensor": list(v.shape), "dtype": str(v.dtype), "sha256": _tensor_hash(v)}
        if isinstance(v, np.ndarray) and v.dtype != object:
            return {"array": list(v.shape), "dtype": str(v.dtype),
                    "sha256": hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()[:16]}
        if isinstance(v, np.generic):
            return {"scalar": str(v.dtype), "value": repr(v.item())}
        if isinstance(v, (pd.DataFrame, pd.Series)):
            return {"frame": list(v.shape), "columns": repr(list(getattr(v, "columns", [v.name]))),
                    "dtypes": repr(list(getattr(v, "dtypes", [v.dtype]))),
                    "sha256": hashlib.sha256(pd.util.hash_pandas_object(v).to_numpy().tobytes()).hexdigest()[:16]}
        if inspect.ismodule(v):
            return {"module": v.__name__}
        if inspect.isfunction(v):
            return self.function(v, where) if self._user(v) or version_of(v) is not None else _qualname(v)
        if inspect.isclass(v):
            return self.klass(v, where)
        if callable(v) and (isinstance(v, (functools.partial, Versioned)) or inspect.ismethod(v)
                            or inspect.isbuiltin(v)):
            return self.callable(v, where)
        if isinstance(v, (list, tuple, dict)) and len(v) > _BIG:  # plain data in bulk: hashed whole
            try:
                text = json.dumps(v, sort_keys=True)
            except (TypeError, ValueError):
                text = None
            if text is not None:
                return {"items": len(v), "sha256": hashlib.sha256(text.encode()).hexdigest()[:16]}
        if id(v) in self.active:
            return {"ref": type(v).__qualname__}
        self.active.add(id(v))
        try:
            if isinstance(v, (list, tuple)) or (isinstance(v, np.ndarray)):
                out: Any = [self.value(x, where, depth + 1) for x in v]
            elif isinstance(v, dict):
                pairs = [(self.value(k, where, depth + 1), self.value(x, where, depth + 1)) for k, x in v.items()]
                if all(isinstance(k, str) for k, _ in pairs):
                    out = dict(sorted(pairs))
                else:
                    out = {"pairs": sorted(([k, x] for k, x in pairs), key=_canonical)}
            elif isinstance(v, (set, frozenset)):
                out = sorted((self.value(x, where, depth + 1) for x in v), key=_canonical)
            else:
                out = self.state(v, where, depth)
        finally:
            self.active.discard(id(v))
        if isinstance(out, list) and len(out) > _BIG:
            return {"items": len(out), "sha256": hashlib.sha256(_canonical(out).encode()).hexdigest()[:16]}
        return out

    def state(self, obj: Any, where: str, depth: int) -> Any:
        """An object's class and state: a dataclass's fields, ``__dict__`` and ``__slots__``, or its
        ``__reduce_ex__``; unreadable when none of those can be read."""
        version = version_of(obj)
        if version is not None:
            return {"name": _qualname(type(obj)), "version": version}
        cls = type(obj)
        head = {"class": self.klass(cls, where)}
        if dataclasses.is_dataclass(obj):
            return {**head, "fields": {f.name: self.value(getattr(obj, f.name), f"{where}.{f.name}", depth + 1)
                                       for f in dataclasses.fields(obj)}}
        if not self._user(cls) and (cls.__reduce_ex__ is not object.__reduce_ex__
                                    or cls.__reduce__ is not object.__reduce__):
            return self._reduced(obj, head, where, depth)  # a library's own pickling (a logger by its name)
        attrs: dict[str, Any] = {}
        if hasattr(obj, "__dict__"):
            attrs.update(vars(obj))
        for c in cls.__mro__:
            for s in ([c.__dict__["__slots__"]] if isinstance(c.__dict__.get("__slots__"), str)
                      else c.__dict__.get("__slots__", ())):
                if s not in ("__dict__", "__weakref__") and hasattr(obj, s):
                    attrs[s] = getattr(obj, s)
        if attrs or hasattr(obj, "__dict__"):
            return {**head, "attrs": {k: self.value(x, f"{where}.{k}", depth + 1) for k, x in sorted(attrs.items())}}
        return self._reduced(obj, head, where, depth)

    def _reduced(self, obj: Any, head: dict[str, Any], where: str, depth: int) -> Any:
        """An object as pickle would rebuild it (``__reduce_ex__``), or unreadable."""
        try:
            reduced = obj.__reduce_ex__(4)
        except Exception:  # noqa: BLE001 - whatever refuses to be pickled cannot be read either
            return self._unreadable(obj, where, f"a {type(obj).__qualname__} object, which cannot be read")
        if isinstance(reduced, str) or not isinstance(reduced, tuple):
            return {**head, "global": str(reduced)}
        return {**head, "reduce": [self.value(x, where, depth + 1) for x in reduced[1:3]]}


def _module_settings(m: torch.nn.Module) -> dict[str, Any]:
    """A module's plain attributes (its weights are hashed apart; torch's own bookkeeping is left out)."""
    return {k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training"}


def _tensor_hash(t: torch.Tensor) -> str:
    flat = t.detach().cpu().contiguous().reshape(-1)
    try:
        data = flat.view(torch.uint8).numpy().tobytes() if flat.dtype != torch.uint8 else flat.numpy().tobytes()
    except (RuntimeError, TypeError):
        data = repr(flat.tolist()).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=repr)


def describe(fn: Any, *, module_hash: Callable[[torch.nn.Module], str]) -> tuple[dict[str, Any], list[str]]:
    """A callable's fingerprint (see the module docstring) and what it reads that cannot be read.

    Parameters
    ----------
    fn : callable
        The callable (not ``None``).
    module_hash : callable
        ``torch.nn.Module -> str``, the hash of a module's weights.

    Returns
    -------
    (dict, list of str)
        The JSON-ready fingerprint (with ``"needs_version"`` listing the unreadable values, tokens
        included) and those values' descriptions without the tokens, for a warning.
    """
    root = fn.fn if isinstance(fn, Versioned) else fn
    home = getattr(root, "__module__", None) or getattr(type(root), "__module__", None)
    walk = _Walk(module_hash, home if is_user_code(sys.modules.get(home or "") or root) else None)
    out = walk.callable(fn, _qualname(fn))
    if walk.opaque:
        out["needs_version"] = sorted(walk.opaque)
    return out, [o.rsplit(" [", 1)[0] for o in sorted(walk.opaque)]
