"""Names a study file may use for perturbations, interventions, modes and scorers, and how each
becomes an object: the library's registered names, or an import string ``"package.module:Name"``
for your own (its source enters the analysis fingerprint).

* a perturbation name is a registered :class:`~latentprobe.perturbations.Perturbation` class's
  ``name`` (``image_swap``, ``blank_image``, ...; the toy's ``counterfactual`` and ``occlude_target``
  once the toy is loaded); an import string names a Perturbation class (built with ``seed=`` when it
  has that field) or a factory ``f(seed) -> Perturbation``;
* an intervention name is one of :data:`latentprobe.causal.zy.SUITE`; an import string names an
  :class:`~latentprobe.interventions.Intervention` class (built by its ``from_trace(trace, seed=)``
  classmethod when it has one, else with no arguments) or a factory ``f(trace, seed) -> Intervention``;
* a scorer name is one of :data:`latentprobe.scoring.SCORER_NAMES`; an import string names a Scorer
  class (built with no arguments) or a callable ``f(answer, gold) -> bool | None``.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from latentprobe.errors import InputError

if TYPE_CHECKING:
    from latentprobe.interventions import Intervention
    from latentprobe.perturbations import Perturbation
    from latentprobe.trace import LatentTrace

__all__ = ["name_set", "is_import_string", "import_object", "make_perturbation", "make_intervention",
           "perturbation_classes"]


_IMPORT_STRING = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


def is_import_string(name: str) -> bool:
    """Whether ``name`` is ``"package.module:Name"`` (dotted identifiers on both sides of one colon).

    Parameters
    ----------
    name : str
        A study file's name.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_import_string("mypkg.perturbations:Darken"), is_import_string("z_to_y: zero (redecode)")
    (True, False)
    """
    return isinstance(name, str) and _IMPORT_STRING.fullmatch(name) is not None


def import_object(spec: str, *, what: str) -> Any:
    """The object an import string ``"package.module:Name"`` names.

    Parameters
    ----------
    spec : str
        The import string.
    what : str
        What it should name (for the error message).

    Returns
    -------
    object

    Raises
    ------
    InputError
        The module cannot be imported or has no such name.
    """
    module, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as err:
        raise InputError(f"{what} {spec!r}: module {module!r} cannot be imported ({err}); install it or fix the "
                         "import string (\"package.module:Name\").") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"{what} {spec!r}: {module!r} has no {attr!r}; fix the name after the colon.")
        obj = getattr(obj, part)
    return obj


def perturbation_classes() -> dict[str, type]:
    """Registered perturbation classes by their ``name`` (``custom`` left out: it needs a function).

    Returns
    -------
    dict of str to type
    """
    from latentprobe.perturbations import base

    return {cls.name: cls for cls in base._REGISTRY.values() if cls.name != "custom"}


def name_set(kind: str) -> tuple[str, ...]:
    """The registered names of ``kind``.

    Parameters
    ----------
    kind : str
        ``"perturbations"``, ``"interventions"``, ``"modes"`` or ``"scorers"``.

    Returns
    -------
    tuple of str

    Raises
    ------
    InputError
        ``kind`` is none of those.
    """
    if kind == "perturbations":
        return tuple(perturbation_classes())
    if kind == "interventions":
        from latentprobe.causal.zy import SUITE

        return SUITE
    if kind == "modes":
        from latentprobe.causal.common import MODES

        return MODES
    if kind == "scorers":
        from latentprobe.scoring import SCORER_NAMES

        return tuple(SCORER_NAMES)
    raise InputError(f"name_set({kind!r}): use 'perturbations', 'interventions', 'modes' or 'scorers'.")


def _with_seed(cls: type, seed: int) -> Any:
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return cls(seed=seed) if "seed" in fields else cls()


def make_perturbation(name: str, seed: int) -> Perturbation:
    """The perturbation of a study file's name or import string, seeded with ``seed``.

    Parameters
    ----------
    name : str
        A registered perturbation's ``name`` or an import string.
    seed : int
        Passed as ``seed=`` to classes with that field, or to a factory.

    Returns
    -------
    Perturbation

    Raises
    ------
    InputError
        An unknown name, or an import string that names no Perturbation (class or factory).
    """
    from latentprobe.perturbations import Perturbation

    if is_import_string(name):
        obj = import_object(name, what="perturbation")
        made = _with_seed(obj, seed) if isinstance(obj, type) else obj(seed)
    else:
        classes = perturbation_classes()
        if name not in classes:
            raise InputError(f"unknown perturbation {name!r}; use one of {', '.join(classes)} or an import string "
                             "'package.module:Class'.")
        made = _with_seed(classes[name], seed)
    if not isinstance(made, Perturbation):
        raise InputError(f"perturbation {name!r} built a {type(made).__name__}, not a Perturbation; name a "
                         "Perturbation subclass or a factory f(seed) returning one.")
    return made


def make_intervention(name: str, trace: LatentTrace, seed: int, suite: dict[str, Any]) -> Intervention:
    """The intervention of a study file's name (from ``suite``, :func:`~latentprobe.causal.default_interventions`)
    or import string.

    Parameters
    ----------
    name : str
        A suite name or an import string.
    trace : LatentTrace
        The clean run (``from_trace`` classes and factories read it).
    seed : int
        Their seed.
    suite : dict
        The built suite.

    Returns
    -------
    Intervention

    Raises
    ------
    InputError
        An import string that names no Intervention (class or factory).
    """
    from latentprobe.interventions import Intervention

    if not is_import_string(name):
        return suite[name]
    obj = import_object(name, what="intervention")
    if isinstance(obj, type):
        made = obj.from_trace(trace, seed=seed) if hasattr(obj, "from_trace") else obj()
    else:
        made = obj(trace, seed)
    if not isinstance(made, Intervention):
        raise InputError(f"intervention {name!r} built a {type(made).__name__}, not an Intervention; name an "
                         "Intervention subclass or a factory f(trace, seed) returning one.")
    return made


def check_names(names: Sequence[str], kind: str, *, where: str) -> None:
    """Import every import string in ``names`` now (before any work), so a typo fails early.

    Parameters
    ----------
    names : sequence of str
        Names and import strings.
    kind : str
        What they are (``"interventions"``, ...), for the message.
    where : str
        The study file and table, for the message.
    """
    for n in names:
        if is_import_string(n):
            import_object(n, what=f"{where}: {kind[:-1]}")


def source_of(names: Sequence[str]) -> dict[str, Any]:
    """The fingerprint of every import-string name (:func:`latentprobe.fingerprint.callable_fingerprint`:
    its code and what it reads), for the study's fingerprint.

    Parameters
    ----------
    names : sequence of str
        Names and import strings (plain names are skipped).

    Returns
    -------
    dict of str to dict
    """
    from latentprobe.fingerprint import callable_fingerprint

    out = {}
    for n in names:
        if is_import_string(n):
            obj: Callable[..., Any] = import_object(n, what="name")
            out[n] = callable_fingerprint(obj, what=n)
    return out
