from .fixtures import qwen_tokenizer, qwen_tokenizer_dir, replica_dir, replica_root, smollm2  # noqa: F401
