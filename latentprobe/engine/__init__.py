"""The engine: the latent-reasoning protocol, its decode loop over a Hugging Face model, and interventions.

* :mod:`~latentprobe.engine.protocol`: the protocol as a pure state machine driven by the spec;
* :mod:`~latentprobe.engine.parts`, :mod:`~latentprobe.engine.masks`: the model's parts, attention masks;
* :mod:`~latentprobe.engine.inputs`: tokenising, images, the rows a run starts from;
* :mod:`~latentprobe.engine.forward`: the one nnsight-traced forward;
* :mod:`~latentprobe.engine.sampling`: how a token is chosen (settings, top-k/top-p, keyed draws), and
  :class:`ForceOpen`, the logits processor that opens latent mode;
* :mod:`~latentprobe.engine.loop`: the batched decode loop;
* :mod:`~latentprobe.engine.lvr`: LVR's latent head;
* :mod:`~latentprobe.engine.patching`: the one function that applies an intervention;
* :mod:`~latentprobe.engine.modes`: replay / propagate / redecode;
* :mod:`~latentprobe.engine.fork`: shared-prefix prefills, the KV cache copied per row;
* :mod:`~latentprobe.engine.many`: sweeps of many interventions on shared prefixes (``intervene_many``);
* :mod:`~latentprobe.engine.runner`: :class:`LatentRunner`, the public entry point;
* :mod:`~latentprobe.engine.heads`: latent heads in their authors' layouts (:class:`CodiProjection`);
* :mod:`~latentprobe.engine.loading`: :func:`load` (published checkpoints), :func:`load_codi`, :func:`load_coconut`;
* :mod:`~latentprobe.engine.detect`: which family a checkpoint is (:func:`detect_family`), and the typed errors
  of a preset that does not fit it.
"""

from latentprobe.engine.detect import (Detection, FamilyDetectionError, FamilyMismatchError, HeadMismatchError,
                                       UnmappedWeightsError, detect_family)
from latentprobe.engine.heads import CodiProjection
from latentprobe.engine.inputs import PromptConvention, VideoNotSupportedError
from latentprobe.engine.lvr import LvrHead
from latentprobe.engine.sampling import (ForceOpen, GenerationConfig, LogitsProcessor, choose, end_distance,
                                         sampling_probs)
from latentprobe.engine.masks import MaskRule, segment_attention_mask
from latentprobe.engine.parts import ModelParts, get_path, locate_parts
from latentprobe.engine.patching import InterventionMode, apply_intervention
from latentprobe.engine.protocol import (Action, Decision, End, EndReason, FeedLatent, FeedTextLatent, FeedToken,
                                         ProtocolMode, ProtocolStart, ProtocolState, initial_state, needs_sample,
                                         resume_at_answer, resume_at_latent, step)
from latentprobe.engine.runner import LatentRunner
from latentprobe.engine.loading import (FAMILY_CONVENTIONS, MissingDependencyError, check_spec_tokens, coconut_prompt,
                                         convention_for, load, load_codi, load_coconut)

__all__ = [
    "LatentRunner", "load", "load_codi", "load_coconut", "coconut_prompt", "check_spec_tokens", "FAMILY_CONVENTIONS", "convention_for",
    "MissingDependencyError", "detect_family", "Detection", "FamilyDetectionError", "FamilyMismatchError",
    "HeadMismatchError", "UnmappedWeightsError", "CodiProjection", "LvrHead", "PromptConvention", "VideoNotSupportedError",
    "GenerationConfig", "LogitsProcessor", "ForceOpen", "choose", "sampling_probs", "end_distance", "MaskRule",
    "segment_attention_mask", "ModelParts",
    "locate_parts", "get_path", "InterventionMode", "apply_intervention",
    "Action", "Decision", "End", "EndReason", "FeedLatent", "FeedTextLatent", "FeedToken", "ProtocolMode",
    "ProtocolStart", "ProtocolState", "initial_state", "needs_sample", "resume_at_answer", "resume_at_latent", "step",
]
