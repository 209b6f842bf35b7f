"""Column names of every table an analysis returns, defined once.

Each table is a small class whose attributes are the table's columns, in the order the analysis
writes them. A column is a :class:`Column`: a plain ``str`` (use it anywhere pandas takes a
column name) that also carries a one-line ``meaning``. ``Table.COLUMNS`` lists the columns that
are always present, ``Table.OPTIONAL`` those that appear only with some arguments.

Columns shared by several tables (``estimate``, ``ci_low``, ...) are defined once at module level
and reused, so one name means one thing everywhere. The analyses are the source of truth: a test
runs each of them on small real input and checks that its columns equal these.

>>> from latentprobe.schema import ZY_SUMMARY
>>> ZY_SUMMARY.ESTIMATE
'estimate'
>>> ZY_SUMMARY.ESTIMATE.meaning
'point estimate on the full sample'
>>> ZY_SUMMARY.COLUMNS[:3]
('intervention', 'mode', 'metric')
"""

from __future__ import annotations

from typing import ClassVar

from latentprobe.errors import InputError

__all__ = [
    "Column", "Table",
    "XZ_ROWS", "XZ_SUMMARY", "XZ_ACROSS", "STATUS",
    "ZY_ROWS", "ZY_SUMMARY", "MEDIATION_ROWS", "MEDIATION_SUMMARY", "EFFECTS",
    "PROBE_SCORES", "PROBE_COMPARISON",
    "CONSECUTIVE", "ACROSS_SUMMARY", "ACROSS_BY_GROUP", "CKA_AGAINST", "NORM_TABLE", "COLLAPSE_TABLE",
    "XZ_METRICS", "ZY_METRICS", "EFFECT_NAMES", "EFFECT_KINDS", "SOURCES", "CENTERINGS",
    "CONTROL_INTERVENTION", "RUN_MODE", "KEPT", "NO_GOLD",
]


class Column(str):
    """A column name (a ``str``) with a one-line ``meaning``; ``optional`` when not always present."""

    meaning: str
    optional: bool

    def __new__(cls, name: str, meaning: str, *, optional: bool = False) -> Column:
        self = super().__new__(cls, name)
        self.meaning = meaning
        self.optional = optional
        return self

    def __repr__(self) -> str:
        return str.__repr__(self)

    def __reduce__(self):  # pickles (and deep-copies) as a plain str
        return (str, (str(self),))


class Table:
    """Base class of a table's column namespace; subclasses declare :class:`Column` attributes."""

    COLUMNS: ClassVar[tuple[Column, ...]] = ()
    OPTIONAL: ClassVar[tuple[Column, ...]] = ()

    def __init_subclass__(cls) -> None:
        cols = [v for k, v in vars(cls).items() if isinstance(v, Column) and k.isupper()]
        cls.COLUMNS = tuple(c for c in cols if not c.optional)
        cls.OPTIONAL = tuple(c for c in cols if c.optional)

    def __init__(self) -> None:
        raise InputError(f"{type(self).__name__} is a namespace of column names; use its attributes, not an instance.")


# --------------------------------------------------------------------------- shared columns
EXAMPLE_ID = Column("example_id", "id of the example (InputSet / trace)")
CHUNK = Column("chunk", "index of the chunk of examples the row was computed in")
STEP = Column("step", "latent step (0-based; -1 for prompt-token baselines)")
LAYER = Column("layer", "residual layer (0 = the fed input embedding)")
SOURCE = Column("source", "what the vectors are: 'latent' or a baseline name")
METRIC = Column("metric", "name of the summarised quantity (long format: one row per metric)")
ESTIMATE = Column("estimate", "point estimate on the full sample")
MEAN = Column("mean", "mean over instances")
CI_LOW = Column("ci_low", "lower bound of the confidence interval")
CI_HIGH = Column("ci_high", "upper bound of the confidence interval")
N = Column("n", "number of examples (instances) behind the estimate")
P_VALUE = Column("p_value", "p-value of the accompanying exact test (NaN when none was run)")
METHOD = Column("method", "how the interval (and p-value) were computed")
NOTE = Column("note", "caveats, e.g. a small-sample warning; empty when none")
CONDITION = Column("condition", "the condition of the row (perturbation, treatment or mediation condition)")
ANSWER = Column("answer", "decoded answer text of the run")
GOLD = Column("gold", "gold answer (None when unknown)")
CORRECT = Column("correct", "1.0 when the scorer reads the gold answer, 0.0 when it reads another, NaN without gold "
                 "or when the answer cannot be read (see parse_method)")
PARSED = Column("parsed", "what the scorer read from the answer (a letter, a number, normalised text); empty when nothing")
PARSE_METHOD = Column("parse_method", "how the scorer read the answer ('answer_is', 'option_text', 'exact', ...; "
                      "'empty', 'refusal', 'ambiguous', 'none' when it could not; 'no_gold' when not scored)")
N_UNPARSEABLE = Column("n_unparseable", "answers behind the row that had a gold but could not be read (counted as "
                       "wrong in accuracy metrics and effects on correctness)")
GOLD_LOGPROB = Column("gold_logprob", "log-probability of the gold answer's first token at the first answer position")
N_LATENTS = Column("n_latents", "number of latent steps of the run")
MEAN_OFFDIAG = Column("mean_offdiag", "mean cosine over pairs of distinct instances")
CENTERING = Column("centering", "'raw' or 'centered' (grand mean of the source subtracted)")
MEAN_NORM = Column("mean_norm", "mean L2 norm of the vectors")
WITHIN_GROUP_MEAN = Column("within_group_mean", "mean cosine over pairs of instances in the same group")
BETWEEN_GROUP_MEAN = Column("between_group_mean", "mean cosine over pairs of instances in different groups")
TARGET = Column("target", "name of the probed target")
TASK = Column("task", "'classification' or 'regression'")
SCORE = Column("score", "mean held-out probe score over outer folds (accuracy or R^2)")


# --------------------------------------------------------------------------- causal analyses
class XZ_ROWS(Table):
    """``XZResult.rows`` (:func:`latentprobe.causal.x_to_z`): example x perturbation x source x step x layer."""

    EXAMPLE_ID = EXAMPLE_ID
    PERTURBATION = Column("perturbation", "name of the input perturbation")
    SOURCE = SOURCE
    STEP = STEP
    LAYER = LAYER
    COSINE = Column("cosine", "cosine similarity of the clean and perturbed vectors")
    REL_L2 = Column("rel_l2", "relative L2 change ||z' - z|| / ||z||")
    CHUNK = CHUNK


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


class XZ_ACROSS(Table):
    """``XZResult.across``: inter-instance cosine of clean latents per layer x centring x step."""

    LAYER = LAYER
    CENTER = Column("center", "whether the grand mean latent was subtracted first")
    STEP = STEP
    MEAN_OFFDIAG = MEAN_OFFDIAG
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N


class STATUS(Table):
    """``dropped`` of every causal result (and ``XZResult.status``): why an example was left out."""

    EXAMPLE_ID = EXAMPLE_ID
    CONDITION = CONDITION
    REASON = Column("reason", "why the example was left out ('kept' in XZResult.status when it was not)")
    N_LATENTS_CLEAN = Column("n_latents_clean", "latent steps of the clean run (-1 when not applicable)")
    N_LATENTS_OTHER = Column("n_latents_other", "latent steps of the other run (-1 when not applicable)")
    CHUNK = CHUNK


class ZY_ROWS(Table):
    """``ZYResult.rows`` (:func:`latentprobe.causal.z_to_y`): example x intervention x mode."""

    EXAMPLE_ID = EXAMPLE_ID
    CHUNK = CHUNK
    INTERVENTION = Column("intervention", "name of the latent intervention ('none' = the mode's no-op control)")
    MODE = Column("mode", "'replay', 'propagate' or 'redecode' ('run' in the summary: the original run)")
    ANSWER = ANSWER
    REF_ANSWER = Column("ref_answer", "answer of the same mode's no-op control")
    CLEAN_ANSWER = Column("clean_answer", "answer of the original run")
    GOLD = GOLD
    CORRECT = CORRECT
    REF_CORRECT = Column("ref_correct", "correctness of the control's answer")
    PARSED = PARSED
    PARSE_METHOD = PARSE_METHOD
    REF_PARSED = Column("ref_parsed", "what the scorer read from the control's answer")
    REF_PARSE_METHOD = Column("ref_parse_method", "how the scorer read the control's answer")
    FLIP = Column("flip", "the answer differs from the control's")
    CHANGED_VS_CLEAN = Column("changed_vs_clean", "the answer differs from the original run's")
    GOLD_LOGPROB = GOLD_LOGPROB
    REF_GOLD_LOGPROB = Column("ref_gold_logprob", "gold first-token log-probability under the control")
    KL = Column("kl", "KL(control first-token distribution || intervened), nats")
    RECORDED_LOGPROB = Column("recorded_logprob", "replay only: log-probability of the recorded answer")
    REF_RECORDED_LOGPROB = Column("ref_recorded_logprob", "replay only: the same under the control")
    N_LATENTS = N_LATENTS


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


class MEDIATION_ROWS(Table):
    """``MediationResult.rows`` (:func:`latentprobe.causal.decompose`): example x condition."""

    EXAMPLE_ID = EXAMPLE_ID
    CHUNK = CHUNK
    CONDITION = CONDITION
    X = Column("x", "which input the condition uses ('clean' or 'treated')")
    Z = Column("z", "which latents the condition uses ('clean' or 'treated')")
    ANSWER = ANSWER
    GOLD = GOLD
    CORRECT = CORRECT
    PARSED = PARSED
    PARSE_METHOD = PARSE_METHOD
    GOLD_LOGPROB = GOLD_LOGPROB
    N_LATENTS = N_LATENTS


class MEDIATION_SUMMARY(Table):
    """``MediationResult.summary``: TE, NDE, NIE, interaction, proportion mediated, condition means."""

    EFFECT = Column("effect", "effect name (see EFFECT_NAMES, 'proportion_mediated', 'mean_<condition>')")
    KIND = Column("kind", "'effect', 'ratio' or 'level' (see EFFECT_KINDS)")
    ESTIMATE = ESTIMATE
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N
    P_VALUE = P_VALUE
    METHOD = METHOD
    NOTE = NOTE
    OUTCOME = Column("outcome", "per-example outcome: 'correct' or 'gold_logprob'")
    TREATMENT = Column("treatment", "name of the input change x -> x'")
    N_UNPARSEABLE = N_UNPARSEABLE


class EFFECTS(Table):
    """:func:`latentprobe.stats.effects_frame`: one row per :class:`~latentprobe.stats.Effect`."""

    NAME = Column("name", "label of the effect")
    ESTIMATE = ESTIMATE
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N
    P_VALUE = P_VALUE
    METHOD = METHOD
    NOTE = NOTE
    CONFIDENCE = Column("confidence", "nominal coverage of the interval")
    EXCLUDES_ZERO = Column("excludes_zero", "whether the interval excludes 0")


# --------------------------------------------------------------------------- probing
class PROBE_SCORES(Table):
    """``ProbeSweepResult.scores`` (:func:`latentprobe.probing.probe_sweep`): target x layer x step."""

    TARGET = TARGET
    LAYER = Column("layer", "layer of the probed hidden states (axis index or key)")
    STEP = Column("step", "latent step of the probed hidden states (axis index or key)")
    TASK = TASK
    SCORE = SCORE
    CI_LOW = Column("ci_low", "lower bound of the Student-t interval over outer folds")
    CI_HIGH = Column("ci_high", "upper bound of the Student-t interval over outer folds")
    N = N
    N_GROUPS = Column("n_groups", "number of distinct groups (folds never split one)")
    MAJORITY = Column("majority", "most-frequent-class accuracy (R^2 of the mean for regression)")
    SHUFFLE = Column("shuffle", "score with permuted training labels (NaN without controls)")
    CONTROL = Column("control", "control-task score (Hewitt & Liang; NaN without controls)")
    SELECTIVITY = Column("selectivity", "score - control")
    CHANCE = Column("chance", "1 / number of classes (0 for regression)")


class PROBE_COMPARISON(Table):
    """:func:`latentprobe.probing.compare_representations`: one row per named representation."""

    REPRESENTATION = Column("representation", "name of the representation")
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
    CHANCE = PROBE_SCORES.CHANCE


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
    N_WITHIN_PAIRS = Column("n_within_pairs", "unordered pairs of instances in the same group")
    N_BETWEEN_PAIRS = Column("n_between_pairs", "unordered pairs of instances in different groups")


class CKA_AGAINST(Table):
    """:func:`latentprobe.geometry.cka_against`: CKA of each step's latents with a feature set."""

    STEP = STEP
    CKA = Column("cka", "linear CKA between the step's latents and the features")


class NORM_TABLE(Table):
    """:func:`latentprobe.geometry.norm_table`: latent norms per step and the token-embedding norm."""

    SOURCE = Column("source", "'latent' or 'token_embedding'")
    STEP = Column("step", "latent step (<NA> on the token_embedding row)")
    MEAN_NORM = MEAN_NORM
    STD_NORM = Column("std_norm", "standard deviation of the L2 norms")
    RATIO_TO_EMBEDDING = Column("ratio_to_embedding", "mean_norm / mean token-embedding norm")


class COLLAPSE_TABLE(Table):
    """:func:`latentprobe.geometry.collapse_table`: collapse statistics per source x centring."""

    SOURCE = SOURCE
    CENTERING = CENTERING
    WITHIN_INSTANCE_MEAN = Column("within_instance_mean", "mean off-diagonal of the step x step cosine matrix")
    CONSECUTIVE_MEAN = Column("consecutive_mean", "mean cosine of consecutive steps")
    ACROSS_INSTANCE_MEAN = Column("across_instance_mean", "mean over steps of the cosine between distinct instances")
    EFFECTIVE_RANK = Column("effective_rank", "effective rank of all n*K vectors pooled")
    PARTICIPATION_RATIO = Column("participation_ratio", "participation ratio of all n*K vectors pooled")
    MEAN_NORM = MEAN_NORM
    WITHIN_GROUP_MEAN = Column(WITHIN_GROUP_MEAN, WITHIN_GROUP_MEAN.meaning + " (with groups)", optional=True)
    BETWEEN_GROUP_MEAN = Column(BETWEEN_GROUP_MEAN, BETWEEN_GROUP_MEAN.meaning + " (with groups)", optional=True)


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
#: ``intervention`` of the no-op control in :class:`ZY_ROWS` / :class:`ZY_SUMMARY`.
CONTROL_INTERVENTION = "none"
#: ``mode`` of the original run's accuracy row in :class:`ZY_SUMMARY`.
RUN_MODE = "run"
#: ``reason`` of a kept example in ``XZResult.status``.
KEPT = "kept"
#: ``parse_method`` of a row whose example has no gold answer (not scored, not unparseable).
NO_GOLD = "no_gold"
