"""latentprobe: do latent reasoning tokens actually carry the reasoning?

Capture and patch latent-token states (nnsight), probe what they encode (scikit-learn), measure
how much they collapse, and run causal mediation X -> Z -> Y with confidence intervals.
"""

from latentprobe.errors import (
    ImageBatchError,
    InputError,
    InterventionError,
    InterventionShapeError,
    LatentProbeError,
    LoadError,
    ModelStructureError,
    SpecError,
    SpecTokenError,
    StepOutOfRangeError,
    TraceFormatError,
)
from latentprobe.interventions import (
    AddNoise,
    GaussianReplace,
    Intervention,
    Lambda,
    MatchedDisplacement,
    MeanAblate,
    NoLatents,
    RepeatFirst,
    Replace,
    ReplaceNoise,
    RewriteSpan,
    Scale,
    Swap,
    Zero,
    intervention_from_config,
    register_intervention,
)
from latentprobe.engine import LatentRunner, segment_attention_mask
from latentprobe.engine.heads import CodiProjection
from latentprobe.engine.loading import load
from latentprobe.presets import get_preset, list_presets, register_preset
from latentprobe.spec import LatentSpec
from latentprobe.trace import ExampleTrace, LatentTrace, Segment

__version__ = "0.1.0"

__all__ = [
    "AddNoise", "CodiProjection", "ExampleTrace", "GaussianReplace", "ImageBatchError", "InputError",
    "Intervention", "InterventionError", "InterventionShapeError", "Lambda", "LatentProbeError",
    "LatentRunner", "LatentSpec", "LatentTrace", "LoadError", "MatchedDisplacement", "MeanAblate",
    "ModelStructureError",
    "NoLatents", "RepeatFirst", "Replace", "ReplaceNoise", "RewriteSpan", "Scale", "Segment", "SpecError", "SpecTokenError",
    "StepOutOfRangeError", "Swap", "TraceFormatError", "Zero", "get_preset", "intervention_from_config",
    "list_presets", "load", "register_analysis", "register_benchmark", "register_intervention", "register_preset",
    "segment_attention_mask", "versioned", "__version__",
]

#: Subpackages reachable as attributes (``lp.causal.z_to_y``), imported on first use so that
#: ``import latentprobe`` stays light and the toy is loaded only when asked for.
SUBMODULES = ("analyses", "causal", "data", "engine", "geometry", "interventions", "lens", "perturbations", "probing",
              "readouts", "report", "schema", "scoring", "seeding", "stats", "sweep", "toy", "trace", "viz", "workers")


#: Public names defined in a subpackage, imported on first use like the subpackages.
_LAZY = {"register_analysis": "latentprobe.analyses", "register_benchmark": "latentprobe.data",
         "versioned": "latentprobe.versioning"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in SUBMODULES:
        import importlib

        module = importlib.import_module(f"latentprobe.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'latentprobe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(SUBMODULES) | set(_LAZY))
