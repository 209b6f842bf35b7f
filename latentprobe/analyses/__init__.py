"""Analyses as records: one object per analysis declares its options, work units, tables, figures,
report section and study-file key (:class:`Analysis`); the study runner, the report and the CLI read
everything from the registry (:func:`register_analysis`, :func:`registered_analyses`).

Built in, in running order: ``x_to_z``, ``z_to_y``, ``decompose`` (:mod:`latentprobe.analyses.causal`),
``probes``, ``representations``, ``collapse`` (:mod:`latentprobe.analyses.readouts`), ``latent_similarity``
(:mod:`latentprobe.analyses.similarity`), ``behavioural`` (:mod:`latentprobe.analyses.behavioural`), ``attention``
(:mod:`latentprobe.analyses.attention`), ``lens`` (:mod:`latentprobe.analyses.lens`), ``steps``
(:mod:`latentprobe.analyses.steps`), ``patching``, ``attribution`` and ``efficiency``
(:mod:`latentprobe.analyses.efficiency`).

Examples
--------
>>> import latentprobe as lp
>>> list(lp.analyses.registered_analyses())[:3]
['x_to_z', 'z_to_y', 'decompose']
>>> lp.analyses.get_analysis("probes").Options(targets=("category",)).n_splits
4
"""

from latentprobe.analyses.attention import Attention
from latentprobe.analyses.attribution import Attribution
from latentprobe.analyses.base import Analysis, ReportSink, Unit, example_units
from latentprobe.analyses.options import (SHARED_OPTIONS, AnalysisOptions, OptionError, document_options, option,
                                          options_from_mapping)
from latentprobe.analyses.behavioural import Behavioural
from latentprobe.analyses.causal import Decompose, XToZ, ZToY
from latentprobe.analyses.context import Context
from latentprobe.analyses.lens import Lens
from latentprobe.analyses.readouts import Collapse, Probes, Representations
from latentprobe.analyses.registry import (ENTRY_POINT_GROUP, analysis_for_result, get_analysis, register_analysis,
                                           registered_analyses)
from latentprobe.analyses.similarity import Similarity
from latentprobe.analyses.patching import Patching
from latentprobe.analyses.steps import Steps
from latentprobe.analyses.efficiency import Efficiency

for _record in (XToZ, ZToY, Decompose, Probes, Representations, Collapse, Similarity, Behavioural, Attention, Lens,
                Steps, Patching, Attribution, Efficiency):
    register_analysis(_record)
del _record

__all__ = ["Analysis", "AnalysisOptions", "OptionError", "ReportSink", "Unit", "example_units", "Context", "option",
           "options_from_mapping", "SHARED_OPTIONS", "register_analysis", "get_analysis", "registered_analyses",
           "analysis_for_result", "ENTRY_POINT_GROUP"]
