"""Columns and dtypes of every table an analysis returns, defined once.

Each table is a small class whose attributes are the table's columns, in the order the analysis
writes them. A column is a :class:`Column`: a plain ``str`` (use it anywhere pandas takes a
column name) that also carries its pandas ``dtype`` and a one-line ``meaning``. ``Table.COLUMNS``
lists the columns that are always present, ``Table.OPTIONAL`` those that appear only with some
arguments, ``Table.DTYPES`` maps every column to its dtype.

The analyses build their tables with :meth:`Table.frame` (exactly the declared columns, in order,
with the declared dtypes) and :meth:`Table.empty`; :meth:`Table.check` refuses a frame that differs
from its declaration. Shared columns (``estimate``, ``ci_low``, ...) are defined once and reused;
a test checks every analysis's real output with :meth:`Table.check`.

>>> from latentprobe.schema import ZY_SUMMARY, CKA_AGAINST
>>> ZY_SUMMARY.ESTIMATE
'estimate'
>>> ZY_SUMMARY.ESTIMATE.meaning, ZY_SUMMARY.ESTIMATE.dtype
('point estimate on the full sample', 'float64')
>>> ZY_SUMMARY.COLUMNS[:3]
('intervention', 'mode', 'metric')
>>> table = CKA_AGAINST.frame([{"step": 0, "cka": 0.5}, {"step": 1, "cka": 0.75}])
>>> table.dtypes.astype(str).tolist()
['int64', 'float64']
>>> CKA_AGAINST.check(table)  # passes silently
>>> CKA_AGAINST.check(table.astype({"step": "float64"}))
Traceback (most recent call last):
...
latentprobe.errors.SchemaError: CKA_AGAINST: column 'step' has dtype float64, declared int64; build the table with CKA_AGAINST.frame(...) or fix the analysis (or the declaration in latentprobe/schema.py).
"""

from __future__ import annotations

from latentprobe.columns import EXAMPLE_ID, LAYER, STEP
from latentprobe.schema_attribution import ATTRIBUTION, ATTRIBUTION_SUMMARY
from latentprobe.table import DTYPES, Column, Table

__all__ = [
    "Column", "Table", "DTYPES",
    "XZ_ROWS", "XZ_SUMMARY", "XZ_BY_PREFIX", "XZ_ACROSS", "STATUS",
    "ZY_ROWS", "ZY_SUMMARY", "MEDIATION_ROWS", "MEDIATION_SUMMARY", "EFFECTS",
    "PROBE_SCORES", "PROBE_COMPARISON", "PROBES_SKIPPED",
    "CONSECUTIVE", "ACROSS_SUMMARY", "ACROSS_BY_GROUP", "CKA_AGAINST", "NORM_TABLE", "COLLAPSE_TABLE", "STEP_MATRIX",
    "LATENT_SELECTION", "BEHAVIOURAL_SUMMARY", "BEHAVIOURAL_ROWS",
    "XZ_METRICS", "ZY_METRICS", "EFFECT_NAMES", "EFFECT_KINDS", "SOURCES", "CENTERINGS", "BEHAVIOURAL_CONDITIONS",
    "ANSWERS", "ANSWER_ROWS", "ANSWER_SUMMARY", "ATTRIBUTION", "ATTRIBUTION_SUMMARY", "CONTROL_INTERVENTION", "RUN_MODE", "KEPT", "NO_GOLD",
]

_KEYS = ("object", "str")  # probe cells keyed by names (a dict of features) instead of axis indices


# --------------------------------------------------------------------------- shared columns
CHUNK = Column("chunk", "int64", "index of the chunk of examples the row was computed in")
SOURCE = Column("source", "str", "what the vectors are: 'latent' or a baseline name")
METRIC = Column("metric", "str", "name of the summarised quantity (long format: one row per metric)")
ESTIMATE = Column("estimate", "float64", "point estimate on the full sample")
MEAN = Column("mean", "float64", "mean over instances")
CI_LOW = Column("ci_low", "float64", "lower bound of the confidence interval")
CI_HIGH = Column("ci_high", "float64", "upper bound of the confidence interval")
N = Column("n", "int64", "number of examples (instances) behind the estimate")
P_VALUE = Column("p_value", "float64", "p-value of the accompanying exact test (NaN when none was run)")
METHOD = Column("method", "str", "how the interval (and p-value) were computed")
_FAMILY = "over the table's family (sweep cells, compared representations, a metric's intervened cells); NaN: no test"
P_HOLM = Column("p_holm", "float64", f"p_value adjusted by Holm (family-wise error) {_FAMILY}")
P_BH = Column("p_bh", "float64", f"p_value adjusted by Benjamini-Hochberg (false discovery rate) {_FAMILY}")
NOTE = Column("note", "str", "caveats, e.g. a small-sample warning; empty when none")
CONDITION = Column("condition", "str", "the condition of the row (perturbation, treatment or mediation condition)")
ANSWER = Column("answer", "str", "decoded answer text of the run")
GOLD = Column("gold", "str", "gold answer (None when unknown)")
CORRECT = Column("correct", "float64", "1.0 when the scorer reads the gold answer, 0.0 when it reads another, NaN without gold "
                 "or when the answer cannot be read (see parse_method)")
PARSED = Column("parsed", "str", "what the scorer read from the answer (a letter, a number, normalised text); empty when nothing")
PARSE_METHOD = Column("parse_method", "str", "how the scorer read the answer ('answer_is', 'option_text', 'exact', ...; "
                      "'empty', 'refusal', 'ambiguous', 'none' when it could not; 'no_gold' when not scored)")
N_UNPARSEABLE = Column("n_unparseable", "int64", "answers behind the row that had a gold but could not be read (counted as "
                       "wrong in accuracy metrics and effects on correctness)")
GOLD_LOGPROB = Column("gold_logprob", "float64", "log-probability of the gold answer's first token at the first answer position")
N_LATENTS = Column("n_latents", "int64", "number of latent steps of the run")
MEAN_OFFDIAG = Column("mean_offdiag", "float64", "mean cosine over pairs of distinct instances")
CENTERING = Column("centering", "str", "'raw' or 'centered' (grand mean of the source subtracted)")
MEAN_NORM = Column("mean_norm", "float64", "mean L2 norm of the vectors")
WITHIN_GROUP_MEAN = Column("within_group_mean", "float64", "mean cosine over pairs of instances in the same group")
BETWEEN_GROUP_MEAN = Column("between_group_mean", "float64", "mean cosine over pairs of instances in different groups")
TARGET = Column("target", "str", "name of the probed target")
TASK = Column("task", "str", "'classification' or 'regression'")
SCORE = Column("score", "float64", "mean held-out probe score over outer folds (accuracy or R^2)")


# --------------------------------------------------------------------------- causal analyses
class XZ_ROWS(Table):
    """``XZResult.rows`` (:func:`latentprobe.causal.x_to_z`): example x perturbation x source x step x layer."""

    EXAMPLE_ID = EXAMPLE_ID
    PERTURBATION = Column("perturbation", "str", "name of the input perturbation")
    SOURCE = SOURCE
    STEP = STEP
    LAYER = LAYER
    COSINE = Column("cosine", "float64", "cosine similarity of the clean and perturbed vectors")
    REL_L2 = Column("rel_l2", "float64", "relative L2 change ||z' - z|| / ||z||")
    CHUNK = CHUNK
    PREFIX_CHANGED = Column("prefix_changed", "bool", "the text generated before the first open marker differs between "
                            "the clean and perturbed runs (latents then follow different prefixes)")


class XZ_SUMMARY(Table):
    """``XZResult.summary``: bootstrap mean of each metric per perturbation x source x step x layer."""

    PERTURBATION = XZ_ROWS.PERTURBATION
    SOURCE = SOURCE
    STEP = STEP
    LAYER = LAYER
    METRIC = METRIC
    ESTIMATE = ESTIMATE
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N
    NOTE = NOTE


class XZ_BY_PREFIX(Table):
    """``XZResult.by_prefix``: :class:`XZ_SUMMARY`'s latent rows computed separately for the examples whose
    pre-latent text changed under the perturbation and for those whose did not."""

    PERTURBATION = XZ_ROWS.PERTURBATION
    PREFIX_CHANGED = XZ_ROWS.PREFIX_CHANGED
    SOURCE = SOURCE
    STEP = STEP
    LAYER = LAYER
    METRIC = METRIC
    ESTIMATE = ESTIMATE
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N
    NOTE = NOTE


class XZ_ACROSS(Table):
    """``XZResult.across``: inter-instance cosine of clean latents per layer x centring x step."""

    LAYER = LAYER
    CENTER = Column("center", "bool", "whether the grand mean latent was subtracted first")
    STEP = STEP
    MEAN_OFFDIAG = MEAN_OFFDIAG
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N


class STATUS(Table):
    """``dropped`` of every causal result (and ``XZResult.status``): why an example was left out."""

    EXAMPLE_ID = EXAMPLE_ID
    CONDITION = CONDITION
    REASON = Column("reason", "str", "why the example was left out ('kept' in XZResult.status when it was not)")
    N_LATENTS_CLEAN = Column("n_latents_clean", "int64", "latent steps of the clean run (-1 when not applicable)")
    N_LATENTS_OTHER = Column("n_latents_other", "int64", "latent steps of the other run (-1 when not applicable)")
    CHUNK = CHUNK


class ZY_ROWS(Table):
    """``ZYResult.rows`` (:func:`latentprobe.causal.z_to_y`): example x intervention x mode."""

    EXAMPLE_ID = EXAMPLE_ID
    CHUNK = CHUNK
    INTERVENTION = Column("intervention", "str", "name of the latent intervention ('none' = the mode's no-op control)")
    MODE = Column("mode", "str", "'replay', 'propagate' or 'redecode' ('run' in the summary: the original run)")
    ANSWER = ANSWER
    REF_ANSWER = Column("ref_answer", "str", "answer of the same mode's no-op control")
    CLEAN_ANSWER = Column("clean_answer", "str", "answer of the original run")
    GOLD = GOLD
    CORRECT = CORRECT
    REF_CORRECT = Column("ref_correct", "float64", "correctness of the control's answer")
    PARSED = PARSED
    PARSE_METHOD = PARSE_METHOD
    REF_PARSED = Column("ref_parsed", "str", "what the scorer read from the control's answer")
    REF_PARSE_METHOD = Column("ref_parse_method", "str", "how the scorer read the control's answer")
    FLIP = Column("flip", "bool", "the answer differs from the control's")
    CHANGED_VS_CLEAN = Column("changed_vs_clean", "bool", "the answer differs from the original run's")
    GOLD_LOGPROB = GOLD_LOGPROB
    REF_GOLD_LOGPROB = Column("ref_gold_logprob", "float64", "gold first-token log-probability under the control")
    KL = Column("kl", "float64", "KL(control first-token distribution || intervened), nats")
    RECORDED_LOGPROB = Column("recorded_logprob", "float64", "replay only: log-probability of the recorded answer")
    REF_RECORDED_LOGPROB = Column("ref_recorded_logprob", "float64", "replay only: the same under the control")
    N_LATENTS = N_LATENTS
    OOD_NN_RATIO = Column("ood_nn_ratio", "float64", "median over the changed steps of the distance from the fed latent to "
                          "the nearest clean latent of another example (same step), over the clean leave-one-out median "
                          "(latentprobe.causal.ood; NaN without latents)")
    OOD_NORM_RATIO = Column("ood_norm_ratio", "float64", "median over the changed steps of ||fed latent|| / the clean "
                            "latents' median norm at that step (NaN without latents)")


class ZY_SUMMARY(Table):
    """``ZYResult.summary``: one row per intervention x mode x metric (metrics: :data:`ZY_METRICS`)."""

    INTERVENTION = ZY_ROWS.INTERVENTION
    MODE = ZY_ROWS.MODE
    METRIC = METRIC
    ESTIMATE = ESTIMATE
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N
    P_VALUE = P_VALUE
    METHOD = METHOD
    NOTE = NOTE
    N_UNPARSEABLE = N_UNPARSEABLE
    OOD_NN_RATIO = ZY_ROWS.OOD_NN_RATIO.but(meaning="median over the condition's examples of ood_nn_ratio (1 = as far "
                                             "as clean latents are from each other; NaN for mode 'run')")
    OOD_NORM_RATIO = ZY_ROWS.OOD_NORM_RATIO.but(meaning="median over the condition's examples of ood_norm_ratio")
    OOD = Column("ood", "bool", "the condition is out of distribution: ood_nn_ratio above latentprobe.causal.ood.NN_THRESHOLD, "
                 "ood_norm_ratio outside NORM_BAND, or no latent positions at all (no_latents)")
    P_HOLM, P_BH = P_HOLM, P_BH


class MEDIATION_ROWS(Table):
    """``MediationResult.rows`` (:func:`latentprobe.causal.decompose`): example x condition."""

    EXAMPLE_ID = EXAMPLE_ID
    CHUNK = CHUNK
    CONDITION = CONDITION
    X = Column("x", "str", "which input the condition uses ('clean' or 'treated')")
    Z = Column("z", "str", "which latents the condition uses ('clean' or 'treated')")
    ANSWER = ANSWER
    GOLD = GOLD
    CORRECT = CORRECT
    PARSED = PARSED
    PARSE_METHOD = PARSE_METHOD
    GOLD_LOGPROB = GOLD_LOGPROB
    N_LATENTS = N_LATENTS


class MEDIATION_SUMMARY(Table):
    """``MediationResult.summary``: TE, NDE, NIE, interaction, proportion mediated, condition means."""

    EFFECT = Column("effect", "str", "effect name (see EFFECT_NAMES, 'proportion_mediated', 'mean_<condition>')")
    KIND = Column("kind", "str", "'effect', 'ratio' or 'level' (see EFFECT_KINDS)")
    ESTIMATE = ESTIMATE
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N
    P_VALUE = P_VALUE
    METHOD = METHOD
    NOTE = NOTE
    OUTCOME = Column("outcome", "str", "per-example outcome: 'correct' or 'gold_logprob'")
    TREATMENT = Column("treatment", "str", "name of the input change x -> x'")
    N_UNPARSEABLE = N_UNPARSEABLE


class EFFECTS(Table):
    """:func:`latentprobe.stats.effects_frame`: one row per :class:`~latentprobe.stats.Effect`."""

    NAME = Column("name", "str", "label of the effect")
    ESTIMATE = ESTIMATE
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N
    P_VALUE = P_VALUE
    METHOD = METHOD
    NOTE = NOTE
    CONFIDENCE = Column("confidence", "float64", "nominal coverage of the interval")
    EXCLUDES_ZERO = Column("excludes_zero", "bool", "whether the interval excludes 0")


# --------------------------------------------------------------------------- probing
class PROBE_SCORES(Table):
    """``ProbeSweepResult.scores`` (:func:`latentprobe.probing.probe_sweep`): target x layer x step."""

    TARGET = TARGET
    LAYER = Column("layer", "int64", "layer of the probed hidden states (axis index or key)", also=_KEYS)
    STEP = Column("step", "int64", "latent step of the probed hidden states (axis index or key)", also=_KEYS)
    TASK = TASK
    SCORE = SCORE
    CI_LOW = Column("ci_low", "float64", "lower bound of the Student-t interval over outer folds")
    CI_HIGH = Column("ci_high", "float64", "upper bound of the Student-t interval over outer folds")
    N = N
    N_GROUPS = Column("n_groups", "int64", "number of distinct groups (folds never split one)")
    MAJORITY = Column("majority", "float64", "most-frequent-class accuracy (R^2 of the mean for regression)")
    SHUFFLE = Column("shuffle", "float64", "score with permuted training labels (NaN without controls)")
    CONTROL = Column("control", "float64", "control-task score: the target shuffled within each control type (Hewitt & "
                     "Liang's control task with 'per_type' labels); NaN without controls or control types")
    SELECTIVITY = Column("selectivity", "float64", "score - control")
    SELECTIVITY_LOW = Column("selectivity_ci_low", "float64", "lower bound of the 95% paired group-bootstrap interval of "
                             "selectivity (held-out groups resampled within each fold; fitted probes held fixed)")
    SELECTIVITY_HIGH = Column("selectivity_ci_high", "float64", "upper bound of that interval")
    CONTROL_RECUR = Column("control_recur", "float64", "share of held-out examples whose control type also occurs in "
                           "their fold's training part (0: the control cannot be learned, selectivity cannot fail)")
    CHANCE = Column("chance", "float64", "1 / number of classes (0 for regression)")
    P_VALUE = Column("p_value", "float64", "permutation p of the held-out score (labels permuted across a fold's groups)")
    P_HOLM, P_BH = P_HOLM, P_BH
    CI_LOW_SIMULTANEOUS = Column("ci_low_simultaneous", "float64", "lower bound of the fold t interval at 1 - 0.05/m (m cells "
                                 "or representations; Bonferroni); as optimistic as the fold interval: call cells by p_holm")
    CI_HIGH_SIMULTANEOUS = Column("ci_high_simultaneous", "float64", "upper bound of the simultaneous interval")


class PROBE_COMPARISON(Table):
    """:func:`latentprobe.probing.compare_representations`: one row per named representation."""

    REPRESENTATION = Column("representation", "str", "name of the representation")
    TARGET = TARGET
    TASK = TASK
    SCORE = SCORE
    CI_LOW = PROBE_SCORES.CI_LOW
    CI_HIGH = PROBE_SCORES.CI_HIGH
    N = N
    N_GROUPS = PROBE_SCORES.N_GROUPS
    MAJORITY = PROBE_SCORES.MAJORITY
    SHUFFLE = PROBE_SCORES.SHUFFLE
    CONTROL = PROBE_SCORES.CONTROL
    SELECTIVITY = PROBE_SCORES.SELECTIVITY
    SELECTIVITY_LOW = PROBE_SCORES.SELECTIVITY_LOW
    SELECTIVITY_HIGH = PROBE_SCORES.SELECTIVITY_HIGH
    CONTROL_RECUR = PROBE_SCORES.CONTROL_RECUR
    CHANCE = PROBE_SCORES.CHANCE
    P_VALUE, P_HOLM, P_BH = PROBE_SCORES.P_VALUE, P_HOLM, P_BH
    CI_LOW_SIMULTANEOUS, CI_HIGH_SIMULTANEOUS = PROBE_SCORES.CI_LOW_SIMULTANEOUS, PROBE_SCORES.CI_HIGH_SIMULTANEOUS


class PROBES_SKIPPED(Table):
    """Probe targets a study could not probe (too few examples or classes), and why."""

    TARGET = TARGET
    REASON = Column("reason", "str", "the error that stopped the probe, on one line")


# --------------------------------------------------------------------------- geometry
class CONSECUTIVE(Table):
    """``WithinInstanceResult.consecutive``: cosine of steps k-1 and k, per step k >= 1."""

    STEP = STEP
    MEAN = MEAN
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N


class ACROSS_SUMMARY(Table):
    """``AcrossInstancesResult.summary``: mean cosine between distinct instances per step."""

    STEP = STEP
    MEAN_OFFDIAG = MEAN_OFFDIAG
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N


class ACROSS_BY_GROUP(Table):
    """``AcrossInstancesResult.by_group`` (with ``groups``): same- vs different-group cosine per step."""

    STEP = STEP
    WITHIN_GROUP_MEAN = WITHIN_GROUP_MEAN
    BETWEEN_GROUP_MEAN = BETWEEN_GROUP_MEAN
    N_WITHIN_PAIRS = Column("n_within_pairs", "int64", "unordered pairs of instances in the same group")
    N_BETWEEN_PAIRS = Column("n_between_pairs", "int64", "unordered pairs of instances in different groups")


class CKA_AGAINST(Table):
    """:func:`latentprobe.geometry.cka_against`: CKA of each step's latents with a feature set."""

    STEP = STEP
    CKA = Column("cka", "float64", "linear CKA between the step's latents and the features")


class NORM_TABLE(Table):
    """:func:`latentprobe.geometry.norm_table`: latent norms per step and the token-embedding norm."""

    SOURCE = Column("source", "str", "'latent' or 'token_embedding'")
    STEP = Column("step", "Int64", "latent step (<NA> on the token_embedding row)")
    MEAN_NORM = MEAN_NORM
    STD_NORM = Column("std_norm", "float64", "standard deviation of the L2 norms")
    RATIO_TO_EMBEDDING = Column("ratio_to_embedding", "float64", "mean_norm / mean token-embedding norm")


class COLLAPSE_TABLE(Table):
    """:func:`latentprobe.geometry.collapse_table`: collapse statistics per source x centring."""

    SOURCE = SOURCE
    CENTERING = CENTERING
    WITHIN_INSTANCE_MEAN = Column("within_instance_mean", "float64", "mean off-diagonal of the step x step cosine matrix")
    CONSECUTIVE_MEAN = Column("consecutive_mean", "float64", "mean cosine of consecutive steps")
    ACROSS_INSTANCE_MEAN = Column("across_instance_mean", "float64", "mean over steps of the cosine between distinct instances")
    EFFECTIVE_RANK = Column("effective_rank", "float64", "effective rank of all n*K vectors pooled")
    PARTICIPATION_RATIO = Column("participation_ratio", "float64", "participation ratio of all n*K vectors pooled")
    MEAN_NORM = MEAN_NORM
    WITHIN_GROUP_MEAN = WITHIN_GROUP_MEAN.but(meaning=WITHIN_GROUP_MEAN.meaning + " (with groups)", optional=True)
    BETWEEN_GROUP_MEAN = BETWEEN_GROUP_MEAN.but(meaning=BETWEEN_GROUP_MEAN.meaning + " (with groups)", optional=True)


class STEP_MATRIX(Table):
    """:meth:`latentprobe.geometry.WithinInstanceResult.step_table`: the K x K step matrix in long format."""

    STEP_A = Column("step_a", "int64", "row step of the step x step matrix")
    STEP_B = Column("step_b", "int64", "column step of the step x step matrix")
    COSINE = Column("cosine", "float64", "mean over instances of the cosine of steps step_a and step_b")


# --------------------------------------------------------------------------- selections and the behavioural probe
class LATENT_SELECTION(Table):
    """:meth:`latentprobe.trace.LatentSelection.frame`: which examples an analysis keeps (one row)."""

    NUM_LATENTS = Column("num_latents", "Int64", "latent count kept (<NA> when no example has latents)")
    N_EXAMPLES = Column("n_examples", "int64", "examples in the trace")
    N_KEPT = Column("n_kept", "int64", "examples kept (those with num_latents latents)")
    N_NO_LATENTS = Column("n_no_latents", "int64", "examples left out because they have no latents")
    N_OTHER_COUNT = Column("n_other_count", "int64", "examples left out because they have another latent count")
    RULE = Column("rule", "str", "'modal' (most common non-zero count, ties to the largest) or 'given'")


class BEHAVIOURAL_SUMMARY(Table):
    """``BehaviouralProbeResult.summary`` (:func:`latentprobe.behavioural_probe`): one row per condition."""

    CONDITION = Column("condition", "str", "'image', 'blank' or 'latents_only' (see BEHAVIOURAL_CONDITIONS)")
    ACCURACY = Column("accuracy", "float64", "accuracy on the derived questions (unreadable answers count as wrong)")
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N
    NOTE = NOTE
    N_UNPARSEABLE = N_UNPARSEABLE


class BEHAVIOURAL_ROWS(Table):
    """``BehaviouralProbeResult.rows``: one row per kept example."""

    EXAMPLE_ID = EXAMPLE_ID
    GOLD = GOLD
    CORRECT_IMAGE = Column("correct_image", "bool", "the answer with the image is correct")
    CORRECT_BLANK = Column("correct_blank", "bool", "the answer with a blank image is correct")
    CORRECT_LATENTS_ONLY = Column("correct_latents_only", "bool", "the answer from the original latents alone is correct")
    PARSE_METHOD_IMAGE = Column("parse_method_image", "str", "how the scorer read the answer with the image")
    PARSE_METHOD_BLANK = Column("parse_method_blank", "str", "how the scorer read the answer with a blank image")
    PARSE_METHOD_LATENTS_ONLY = Column("parse_method_latents_only", "str", "how the scorer read the latents-only answer")
    ANSWER_LATENTS_ONLY = Column("answer_latents_only", "str", "the answer from the original latents alone")


# --------------------------------------------------------------------------- a study's clean run
class ANSWERS(Table):
    """The clean run's answers (:meth:`latentprobe.analyses.Context.answers`), one row per example: the first
    columns of a study's ``answers.csv``, whose further columns hold each condition's answer and parse
    (``<condition>: answer``, ``<condition>: parsed``; :mod:`latentprobe.study.answers`)."""

    EXAMPLE_ID = EXAMPLE_ID
    QUESTION = Column("question", "str", "the question as the data give it (the prompt when there is none)")
    ANSWER = ANSWER
    GOLD = GOLD
    CORRECT = CORRECT
    PARSED = PARSED
    PARSE_METHOD = PARSE_METHOD
    N_LATENTS = N_LATENTS
    ENTERED = Column("entered", "bool", "whether the example entered latent mode at least once")


class ANSWER_ROWS(Table):
    """One answer of one condition (:meth:`latentprobe.analyses.Analysis.answers`): the long form behind a
    study's answer browser and its per-condition counts."""

    EXAMPLE_ID = EXAMPLE_ID
    CONDITION = Column("condition", "str", "'clean', or the analysis and its condition (e.g. 'z_to_y: zero (redecode)')")
    ANSWER = ANSWER
    PARSED = PARSED
    PARSE_METHOD = PARSE_METHOD
    CORRECT = CORRECT
    N_LATENTS = N_LATENTS


class ANSWER_SUMMARY(Table):
    """Per condition: how many answers there are, how many could not be read or are empty, and how many runs
    entered latent mode (the report's "Answers" section)."""

    CONDITION = ANSWER_ROWS.CONDITION
    N = N
    N_UNPARSEABLE = N_UNPARSEABLE
    N_EMPTY = Column("n_empty", "int64", "answers that are empty (nothing generated before the stop)")
    SHARE_UNPARSEABLE = Column("share_unparseable", "float64", "n_unparseable / answers with a gold (NaN without gold)")
    SHARE_LATENT = Column("share_latent_mode", "float64", "share of the runs that entered latent mode")
    ACCURACY = Column("accuracy", "float64", "share correct among answers with a gold (unreadable count as wrong)")


# --------------------------------------------------------------------------- values with a fixed meaning
#: ``metric`` values of :class:`XZ_SUMMARY`, in display order.
XZ_METRICS: tuple[str, ...] = (XZ_ROWS.COSINE, XZ_ROWS.REL_L2)
#: ``metric`` values of :class:`ZY_SUMMARY`, in display order.
ZY_METRICS: tuple[str, ...] = ("accuracy", "accuracy_change", "flip_rate", "gold_logprob_change", "kl",
                               "recorded_logprob_change")
#: The additive effects of :class:`MEDIATION_SUMMARY` (kind ``"effect"``), in display order.
EFFECT_NAMES: tuple[str, ...] = ("TE", "NDE", "NIE", "interaction")
#: ``kind`` values of :class:`MEDIATION_SUMMARY`: additive effects, the proportion mediated, condition means.
EFFECT_KINDS: tuple[str, ...] = ("effect", "ratio", "level")
#: ``source`` values with a fixed meaning: the latents, the random baseline, the token embeddings.
SOURCES: tuple[str, ...] = ("latent", "random_matched_norm", "token_embedding")
#: ``centering`` values of :class:`COLLAPSE_TABLE`.
CENTERINGS: tuple[str, ...] = ("raw", "centered")
#: ``condition`` values of :class:`BEHAVIOURAL_SUMMARY`, in order.
BEHAVIOURAL_CONDITIONS: tuple[str, ...] = ("image", "blank", "latents_only")
#: ``intervention`` of the no-op control in :class:`ZY_ROWS` / :class:`ZY_SUMMARY`.
CONTROL_INTERVENTION = "none"
#: ``mode`` of the original run's accuracy row in :class:`ZY_SUMMARY`.
RUN_MODE = "run"
#: ``reason`` of a kept example in ``XZResult.status``.
KEPT = "kept"
#: ``parse_method`` of a row whose example has no gold answer (not scored, not unparseable).
NO_GOLD = "no_gold"
