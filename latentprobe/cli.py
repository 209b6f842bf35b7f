"""The ``latentprobe`` command.

Errors: a usage error (an option out of range, an unknown variant) and a bad study file or output
folder (:class:`~latentprobe.errors.StudyError`) print one line and exit 2; any other typed failure
(a :class:`~latentprobe.errors.LatentProbeError`) prints one line and exits 1; so does an operating-system
error (permission denied, a read-only or full disk, ``/dev/null`` given as a folder: the line names the path and
what to do; a study stopped by a full disk resumes when the same command is run again) and, as a last resort,
any other error (``internal error``). Pass ``--debug`` (before the command) for the full traceback.

Offline use: the shipped toy models need no download. To keep Hugging Face libraries offline, set
``HF_HUB_OFFLINE=1`` in the environment *before* starting the command (``HF_HUB_OFFLINE=1 latentprobe
...``): ``huggingface_hub`` reads it once, when first imported, so setting it from here (after
``latentprobe`` and ``transformers`` are imported) would have no effect.
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Any, Sequence

import click

from latentprobe.errors import CLIUsageError, LatentProbeError, StudyError

USAGE_EXIT, FAILURE_EXIT = 2, 1


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


_ERRNO_FIX = {
    errno.ENOSPC: "the disk is full: free space and run the same command again (it resumes from what was written)",
    errno.EDQUOT: "the disk quota is exceeded: free space and run the same command again (it resumes from what was "
                  "written)",
    errno.EACCES: "permission denied: choose a folder you can write (--out) or change its permissions",
    errno.EPERM: "operation not permitted: choose a folder you can write (--out) or change its permissions",
    errno.EROFS: "a read-only file system: choose a folder on a writable disk (--out)",
    errno.ENOTDIR: "a file stands where a folder is needed: choose a folder path (--out)",
    errno.EEXIST: "a file (or a special file such as /dev/null) stands where a folder is needed: choose a folder "
                  "path (--out)",
    errno.EISDIR: "a folder stands where a file is needed",
    errno.ENOENT: "no such file or folder (its parent folder is missing, or the file system cannot create it)",
}


def os_error_line(ex: OSError) -> str:
    """One line for an operating-system error: the path, what happened and what to do.

    Parameters
    ----------
    ex : OSError
        The error (its ``filename`` names the path, when the system gave one).

    Returns
    -------
    str
    """
    paths = " -> ".join(str(p) for p in (ex.filename, ex.filename2) if p is not None) or "(no path given)"
    what = ex.strerror or _one_line(str(ex))
    fix = _ERRNO_FIX.get(ex.errno or -1, "check that the path exists and can be written")
    name = errno.errorcode.get(ex.errno or -1, type(ex).__name__)
    return f"{paths}: {what} [{name}]; {fix}."


class _Main(click.Group):
    """The command group: typed errors become one line on stderr and an exit code (2 usage, 1 failure)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv[: argv.index("--") if "--" in argv else len(argv)]
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as ex:  # --help, --version
            rv = ex.exit_code
        except click.Abort:
            click.echo("latentprobe: aborted.", err=True)
            rv = FAILURE_EXIT
        except click.UsageError as ex:
            if debug:
                raise
            click.echo(f"latentprobe: usage error: {_one_line(ex.format_message())} (see --help)", err=True)
            rv = USAGE_EXIT
        except CLIUsageError as ex:
            if debug:
                raise
            click.echo(f"latentprobe: usage error: {_one_line(str(ex))} (see --help)", err=True)
            rv = USAGE_EXIT
        except LatentProbeError as ex:
            if debug:
                raise
            click.echo(f"latentprobe: error: {type(ex).__name__}: {_one_line(str(ex))}", err=True)
            rv = USAGE_EXIT if isinstance(ex, StudyError) else FAILURE_EXIT
        except OSError as ex:  # permissions, a read-only or full disk, a special file where a folder should be
            if debug:
                raise
            click.echo(f"latentprobe: error: {os_error_line(ex)}", err=True)
            rv = FAILURE_EXIT
        except Exception as ex:  # a bug, or a library error nothing above typed: one line, the traceback on --debug
            if debug:
                raise
            click.echo(f"latentprobe: internal error: {type(ex).__name__}: {_one_line(str(ex))[:500]} (run again with "
                       "--debug for the traceback, and report it)", err=True)
            rv = FAILURE_EXIT
        rv = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(rv)
        return rv


def _variant_names(value: str | Sequence[str], option: str) -> list[str]:
    """Variant names from a comma-separated string (or repeated option values), checked against the toy's."""
    from latentprobe.toy.model import VARIANTS

    raw = value.split(",") if isinstance(value, str) else list(value)
    names = [v.strip() for v in raw if v.strip()]
    if not names:
        raise click.BadParameter(f"no variant given; choose from {', '.join(VARIANTS)}.", param_hint=option)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        hint = (" (a checkpoint or hub id is studied with `latentprobe run STUDY.toml`: see examples/studies/)"
                if any("/" in v for v in unknown) else "")
        raise click.BadParameter(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}{hint}.",
                                 param_hint=option)
    return list(dict.fromkeys(names))


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="latentprobe")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
def main(debug: bool) -> None:
    """latentprobe: do latent reasoning tokens actually carry the reasoning?"""


@main.command()
def presets() -> None:
    """List the latent-reasoning protocols (LatentSpec presets)."""
    from latentprobe.presets import get_preset, list_presets

    for name in list_presets():
        s = get_preset(name)
        click.echo(f"{name:10s} {s.base:28s} open={s.open_mode:9s} K={s.num_latents:<3d} offset={s.first_offset} "
                   f"stop={s.stop:9s} slots={s.slot_policy:11s} f={s.projection} mediator={s.mediator}")


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("latentprobe-demo"),
              show_default=True, help="Folder for the HTML report, tables and traces.")
@click.option("--n", "n_examples", type=click.IntRange(min=1, max=100_000), default=200, show_default=True,
              help="Held-out examples per variant (1..100000).")
@click.option("--variants", default="mediated,bypass,blind,free,text", show_default=True,
              help="Comma-separated toy variants (at least one).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed (>= 0).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out_dir: Path, n_examples: int, variants: str, seed: int, quiet: bool) -> None:
    """Run the whole analysis on the shipped toy models and write an HTML report (no downloads)."""
    from latentprobe.demo import run_demo

    names = _variant_names(variants, "'--variants'")
    result = run_demo(out_dir, n_examples=n_examples, variants=names, seed=seed, progress=not quiet,
                      echo=click.echo)
    click.echo(f"\nreport: {result.report_path}")


@main.group()
def toy() -> None:
    """The embedded toy models."""


@toy.command("train")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the trained weights ({variant}.safetensors + {variant}.json).")
@click.option("--variant", "variants", multiple=True, help="Variant(s) to train (default: all).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed (>= 0).")
def toy_train(out_dir: Path, variants: tuple[str, ...], seed: int) -> None:
    """Retrain the shipped toy variants (deterministic for a seed on CPU)."""
    from latentprobe.toy.model import VARIANTS
    from latentprobe.toy.training import train_all

    chosen = tuple(_variant_names(variants, "'--variant'")) if variants else VARIANTS
    metrics = train_all(out_dir, seed=seed, variants=chosen)
    for v, m in metrics.items():
        click.echo(f"{v:9s} test accuracy {m.get('test_accuracy', float('nan')):.3f}")


@main.command("trace")
@click.argument("variant")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--n", "n_examples", type=click.IntRange(min=1, max=100_000), default=32, show_default=True,
              help="Held-out examples (1..100000).")
def trace_cmd(variant: str, out_dir: Path, n_examples: int) -> None:
    """Run a shipped toy variant on held-out examples and save the LatentTrace (safetensors + JSON)."""
    from latentprobe.toy import load

    (name,) = _variant_names([variant], "'VARIANT'")
    tm = load(name)
    ex = tm.examples("test", n=n_examples)
    tr = tm.runner().run(tm.prompts(ex), tm.images(ex), example_ids=[e.example_id for e in ex], max_new_tokens=12)
    tr.save(out_dir)
    click.echo(f"{len(tr)} examples, accuracy {tm.accuracy(tr, ex):.3f}; saved to {out_dir}")


@main.command("run")
@click.argument("study_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (re-run the same command to resume a killed run).")
@click.option("--overwrite", is_flag=True, help="Discard what an earlier study wrote in --out and start again.")
@click.option("--no-report", is_flag=True, help="Do not write report.html (build it later with `latentprobe report`).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Run N workers on this machine through torch.distributed.run (as torchrun would); leave it out "
                   "under torchrun or srun.")
@click.option("--hang-timeout", type=click.FloatRange(min=1), default=None,
              help="Seconds a worker may be missing at a barrier before the run stops naming it (default "
                   "LATENTPROBE_HANG_TIMEOUT or 3600).")
def run_cmd(study_file: Path, out_dir: Path, overwrite: bool, no_report: bool, quiet: bool, workers: int | None,
            hang_timeout: float | None) -> None:
    """Run a study file (TOML; see examples/studies/) into --out: tables per analysis and an HTML report.

    Under torchrun (or srun with MASTER_ADDR exported) every worker runs this same command; --workers N starts N
    of them here.
    """
    from latentprobe.workers import Workers, launch_from_env
    from latentprobe.workers.group import gpu_group

    launch = launch_from_env()
    if launch is not None:
        gpu_group(launch)  # before CUDA starts: this worker's GPUs when LATENTPROBE_GPUS_PER_WORKER is set
    from latentprobe.study import run_study

    if workers is not None:
        if launch is not None:
            raise CLIUsageError("--workers starts its own workers through torch.distributed.run; under torchrun or "
                                "srun leave it out (each worker finds its rank in the environment).")
        from latentprobe.workers.launch import launch_workers

        command = ["run", str(study_file), "--out", str(out_dir)]
        command += [flag for flag, on in (("--overwrite", overwrite), ("--no-report", no_report), ("--quiet", quiet))
                    if on]
        command += [] if hang_timeout is None else ["--hang-timeout", str(hang_timeout)]
        raise click.exceptions.Exit(launch_workers(workers, command))
    group = None if launch is None else Workers(launch, out_dir, timeout_s=hang_timeout, progress=not quiet)
    try:
        res = run_study(study_file, out_dir, overwrite=overwrite, report=not no_report, progress=not quiet,
                        echo=click.echo, workers=group)
    except BaseException as err:
        if group is not None:
            group.log(f"stopped: {type(err).__name__}: {_one_line(str(err))}")
        raise
    finally:
        if group is not None:
            group.close()
    if group is not None and not group.is_main:
        return
    done = f"ran {', '.join(res.ran) or 'nothing'}" + (f"; already finished: {', '.join(res.skipped)}"
                                                        if res.skipped else "")
    for key, lines in res.headlines.items():
        for label, value in lines.items():
            click.echo(f"{key}: {label}: {value}")
    click.echo(f"entered latent mode: {res.n_entered} of {res.n_examples} examples ({100 * res.entered_share:.0f}%)")
    click.echo(f"{done} [{res.seconds:.0f} s]; results in {res.out_dir}")
    if res.report_path is not None:
        click.echo(f"report: {res.report_path}")


@main.command("analyses")
def analyses_cmd() -> None:
    """List the registered analyses: their study-file tables, tables written and options."""
    import dataclasses

    from latentprobe.analyses import SHARED_OPTIONS, registered_analyses

    for key, record in registered_analyses().items():
        click.echo(f"[analyses.{key}]  {record.title}")
        click.echo(f"    tables: {', '.join(f'{t}.csv' for t in record.tables)}")
        for f in dataclasses.fields(record.Options):
            if f.name in SHARED_OPTIONS:
                continue
            required = f.default is dataclasses.MISSING
            default = "(required)" if required else f"= {f.default!r}"
            click.echo(f"    {f.name} {default}  {f.metadata.get('doc', '')}")
    click.echo(f"every analysis also takes: {', '.join(SHARED_OPTIONS)} (default: [study] / [generation])")


@main.command("report")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
def report_cmd(out_dir: Path) -> None:
    """Rebuild OUT_DIR/report.html from a study's output folder alone."""
    from latentprobe.study import build_report

    click.echo(f"report: {build_report(out_dir)}")


if __name__ == "__main__":  # pragma: no cover
    main()
