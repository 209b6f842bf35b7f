"""Explicit versions for user callables: :func:`versioned` and the ``__latentprobe_version__`` attribute.

A fingerprint (:func:`latentprobe.fingerprint.callable_fingerprint`) reads what a callable depends on
(:mod:`latentprobe.callables`). Where it cannot (a global that is a lock, a file, a C object), or where
it reads too much (a counter the callable updates as it runs), an explicit version stands for the
callable instead: the fingerprint records the version, and a resumed run with the same version returns
the rows it stored. Change the version whenever the callable's behaviour changes.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable

from latentprobe.errors import InputError

__all__ = ["versioned", "Versioned", "VERSION_ATTR", "version_of"]

#: The attribute that carries an explicit version (on a function, a class or an instance).
VERSION_ATTR = "__latentprobe_version__"


@dataclasses.dataclass(frozen=True)
class Versioned:
    """A callable with an explicit version (made by :func:`versioned` for callables that take no attribute).

    Attributes
    ----------
    fn : callable
        The callable; calls are passed to it.
    version : str
        The version that stands for it in fingerprints.
    """

    fn: Callable[..., Any]
    version: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # __name__, __qualname__ and the callable's own attributes
        if name == "fn" or (name.startswith("__") and name not in ("__name__", "__qualname__")):
            raise AttributeError(name)
        return getattr(self.fn, name)


def versioned(fn: Any = None, *, version: str | int) -> Any:
    """Give a callable an explicit version: its fingerprint records the version instead of reading it.

    Needed where a fingerprint cannot read what the callable depends on (it then warns with
    :class:`~latentprobe.errors.FingerprintWarning`, and a resumed run is refused until a version is
    given), and useful where it reads too much (a counter that changes as the callable runs). Change the
    version whenever the callable's behaviour changes: a resumed run with the same version returns the
    rows stored before.

    What the version stands for: on a function, its code and everything it reads; on a class, the class's
    code (its instances' state is still read); on any other callable (an instance, a bound method, a
    partial), the whole callable, state included.

    Parameters
    ----------
    fn : callable, optional
        The callable. A function or a class gets the attribute ``__latentprobe_version__`` and is returned
        itself; anything else is wrapped in a :class:`Versioned`. Leave it out to use ``versioned`` as a
        decorator: ``@versioned(version="2")``.
    version : str or int
        The version (not empty).

    Returns
    -------
    callable
        ``fn`` (a function or class) or ``Versioned(fn, version)``.

    Raises
    ------
    InputError
        If ``version`` is empty or not a string or integer, or ``fn`` is not callable.

    Examples
    --------
    >>> import latentprobe
    >>> from latentprobe.fingerprint import callable_fingerprint
    >>> @latentprobe.versioned(version="2")
    ... def halve(z, step, example):
    ...     return z / 2
    >>> callable_fingerprint(halve)["version"]
    '2'
    >>> callable_fingerprint(latentprobe.versioned(max, version=1))
    {'name': 'max', 'version': '1'}
    """
    if isinstance(version, bool) or not isinstance(version, (str, int)) or not str(version).strip():
        raise InputError(f"versioned: version={version!r}; give a non-empty string or an integer, e.g. "
                         "versioned(fn, version='2').")
    v = str(version).strip()
    if fn is None:
        return functools.partial(versioned, version=v)
    if not callable(fn):
        raise InputError(f"versioned: {fn!r} is not callable; give the function, class or callable object "
                         "whose version it is.")
    if inspect.isfunction(fn) or inspect.isclass(fn):
        setattr(fn, VERSION_ATTR, v)
        return fn
    return Versioned(fn, v)


def version_of(obj: Any) -> str | None:
    """The explicit version given to ``obj`` itself (not one it inherits from its class), or ``None``.

    Parameters
    ----------
    obj : object
        A callable.
    """
    if isinstance(obj, Versioned):
        return obj.version
    try:
        own = vars(obj)
    except TypeError:
        return None
    v = own.get(VERSION_ATTR)
    return None if v is None else str(v)
