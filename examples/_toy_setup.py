"""Shared set-up of the example scripts: a toy runner (shipped weights, or untrained with --random-init)."""

from latentprobe.engine import ForceOpen, LatentRunner


def setup(args):
    """(runner, toy examples, logits processor) for the chosen variant."""
    if args.random_init:
        from latentprobe.toy.model import build_model, mask_rule, toy_spec
        from latentprobe.toy.shapes import make_dataset
        from latentprobe.toy.vocab import build_tokenizer

        tok = build_tokenizer()
        runner = LatentRunner(build_model(tok.get_vocab(), seed=args.seed), tok, toy_spec(args.variant),
                              mask_rule=mask_rule(args.variant))
        examples = make_dataset((args.n + 1) // 2, 2, seed=12345)[: args.n]
        return runner, examples, ForceOpen.for_runner(runner)  # untrained: open at the first free token
    from latentprobe.toy import load

    tm = load(args.variant)
    return tm.runner(), tm.examples(split="test", n=args.n), None


def example_parser(doc):
    """The argument parser of an example script: its docstring's first paragraph, every default in ``--help``."""
    import argparse

    return argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def parse_common(ap, argv=None, *, n_boot=1000):
    """Add the options every example takes, parse, and set torch's thread count."""
    import torch

    ap.add_argument("--seed", type=int, default=0, help="seed of the perturbations, interventions and bootstrap")
    ap.add_argument("--n-boot", type=int, default=n_boot, help="bootstrap resamples per confidence interval")
    ap.add_argument("--max-new-tokens", type=int, default=16, help="answer tokens generated per example")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest for the toy)")
    ap.add_argument("--random-init", action="store_true", help="untrained weights (no shipped weights needed)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args

