"""Dataset loaders: a JSONL file with an image folder, or a Hugging Face dataset saved on local disk.

Both return a :class:`latentprobe.perturbations.InputSet` (ids, prompts, images, gold answers,
metadata), the input of every experiment. Nothing is downloaded.
"""

from latentprobe.data.loaders import DataError, load_hf_disk, load_jsonl

__all__ = ["DataError", "load_jsonl", "load_hf_disk"]
