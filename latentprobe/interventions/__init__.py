"""Interventions on latents: small serialisable objects, plus any callable ``(z, step, example) -> z``.

An intervention receives one latent vector at a time (``z``: ``[d]``), the latent step index and
the example's :class:`~latentprobe.trace.ExampleTrace` (its ``index``, ``example_id``, recorded
``z`` and ``hidden``), and returns the vector to use instead. When the runner patches a residual
layer other than the fed vector it also passes ``layer=`` (0 = the fed vector, ``i`` = output of
decoder layer ``i-1``); built-ins use it to read the matching recorded values.

Noise is scaled to the norm of the latent it replaces: latents are post-norm vectors whose norm is
far from a token embedding's, so a fixed sigma would mean different things in different models.
Random draws are seeded per (seed, example_id, step, layer), so batched and one-by-one runs agree.

Every intervention class is registered by name with :func:`register_intervention` (the built-ins
too), so a configuration written by :meth:`Intervention.to_config` can be rebuilt with
:func:`intervention_from_config`. Register your own the same way::

    @register_intervention
    @dataclass(frozen=True)
    class Halve(Intervention):
        def apply(self, z, step, example, layer=0):
            return z / 2

Examples
--------
On the shipped ``mediated`` toy: zero every latent and decode the answers again.

>>> import torch
>>> from latentprobe import Scale, Zero, intervention_from_config, toy
>>> tm = toy.load("mediated")
>>> runner = tm.runner()
>>> trace = tm.run(tm.examples("test", 4))
>>> zeroed = runner.intervene(trace, Zero(), mode="redecode", progress=False)
>>> bool(torch.equal(zeroed[0].z, torch.zeros_like(trace[0].z)))
True
>>> control = runner.intervene(trace, None, mode="redecode", progress=False)
>>> control.answers == trace.answers
True
>>> Scale(0.5).to_config()
{'type': 'Scale', 'factor': 0.5}
>>> intervention_from_config({'type': 'Scale', 'factor': 0.5})
Scale(factor=0.5)
"""

from latentprobe.interventions.base import (Intervention, intervention_from_config, register_intervention,
                                            registered_interventions)
from latentprobe.interventions.builtin import (AddNoise, GaussianReplace, Lambda, MatchedDisplacement, MeanAblate,
                                               NoLatents, RepeatFirst, Replace, ReplaceNoise, Scale, Swap, Zero,
                                               as_intervention)
from latentprobe.interventions.rewrite import RewriteSpan, read_rewrites

__all__ = [
    "Intervention", "Replace", "Zero", "Scale", "AddNoise", "ReplaceNoise", "MeanAblate", "Swap",
    "RepeatFirst", "Lambda", "GaussianReplace", "MatchedDisplacement", "NoLatents", "RewriteSpan", "read_rewrites", "as_intervention",
    "intervention_from_config", "register_intervention", "registered_interventions",
]
