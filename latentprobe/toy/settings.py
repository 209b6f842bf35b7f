"""The toy trainer's settings: everything that determines a trained toy model besides the seed and the variant."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrainArgs", "DEFAULT_ARGS"]


@dataclass(frozen=True)
class TrainArgs:
    """Everything that determines a trained toy model (with the seed and the variant).

    Parameters
    ----------
    n_images, questions_per_image, test_fraction
        The data set: scenes, questions per scene, and the fraction of scenes held out for test.
    vision_steps, vision_lr
        Stage 0a: steps and learning rate in which the vision tower learns the cell contents.
    vision_word_weight, vision_norm_weight, vision_feature_norm
        Stage 0a's losses: weight of naming each cell's object through the LM head, weight of the feature-
        norm penalty, and the norm it pulls the features towards.
    pretrain_steps, pretrain_lr, pretrain_qa_fraction
        Stage 0b (the base VLM, shared by all variants): steps, learning rate, and the fraction of each
        batch that is direct question answering (the rest scene captions).
    freeze_vision : bool
        Keep the vision tower fixed after stage 0a (like a pretrained encoder).
    steps, recurrent_steps
        Stage 1 (teacher-forced latents; all fine-tuning steps for ``text``) and stage 2 (latents computed
        by the model).
    batch_size, lr, recurrent_lr, weight_decay, warmup, grad_clip
        AdamW settings: batch size, peak learning rates of stages 1 and 2, weight decay, warmup steps and
        gradient-norm clip.
    targets : str
        Alignment targets of the latents: ``"evidence"`` or ``"rows"`` (see
        :func:`~latentprobe.toy.forward.alignment_targets`).
    align_weight, recurrent_align_weight
        Weight of the alignment loss in stages 1 and 2.
    eval_batch_size : int
        Examples per batch when measuring accuracy.
    n_first : int
        Also record the accuracy on the first ``n_first`` test examples.
    max_new_tokens : int
        The runner's budget when measuring accuracy (every position after the prompt counts).
    """

    n_images: int = 2000
    questions_per_image: int = 2
    test_fraction: float = 0.2
    vision_steps: int = 150  # stage 0a: the vision tower learns the cell contents
    vision_lr: float = 3e-3
    vision_word_weight: float = 1.0
    vision_norm_weight: float = 1.0
    vision_feature_norm: float = 1.0
    pretrain_steps: int = 1500  # stage 0b: the base VLM (scene captions + direct answers), shared by all variants
    pretrain_lr: float = 2e-3
    pretrain_qa_fraction: float = 0.5  # fraction of each pretraining batch that is direct question answering
    freeze_vision: bool = True  # after stage 0a the vision tower stays fixed (like a pretrained encoder)
    steps: int = 600  # stage 1 (teacher-forced latents; all fine-tuning steps for ``text``)
    recurrent_steps: int = 600  # stage 2 (latents computed by the model)
    batch_size: int = 32
    lr: float = 2e-3
    recurrent_lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: int = 50
    targets: str = "evidence"  # alignment targets: "evidence" or "rows" (see alignment_targets)
    align_weight: float = 1.0
    recurrent_align_weight: float = 0.1
    grad_clip: float = 1.0
    eval_batch_size: int = 100
    n_first: int = 100  # also record the accuracy on the first ``n_first`` test examples
    max_new_tokens: int = 16  # the runner's budget counts every position after the prompt


DEFAULT_ARGS: dict[str, TrainArgs] = {
    "mediated": TrainArgs(),
    "bypass": TrainArgs(),
    "blind": TrainArgs(steps=0, recurrent_steps=1200),
    "free": TrainArgs(),
    "text": TrainArgs(steps=1200, recurrent_steps=0),
}
