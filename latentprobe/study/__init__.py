"""Studies: a whole analysis described by one TOML file, run into one resumable output folder.

``latentprobe run STUDY.toml --out DIR`` validates the file (:func:`load_study`), loads the model
(:func:`build_model`) and the sampled data (:func:`load_data`), runs every ``[analyses.*]`` into
its own sub-folder of ``DIR`` (:func:`run_study`; a killed run resumes when re-run) and writes
``DIR/report.html``; ``latentprobe report DIR`` rebuilds the report from the folder alone
(:func:`build_report`); :func:`load_result` reads an analysis's result object back. One run owns a folder at a
time (:mod:`latentprobe.study.owner`), and a resumed run checks that its examples are those the folder was run on
(:mod:`latentprobe.study.datafp`). The schema is documented in :mod:`latentprobe.study.config` and
``examples/studies/README.md``.

Its one module :mod:`latentprobe.study.toys` reads :mod:`latentprobe.toy` (``source = "toy:<variant>"``,
``benchmark = "toy"``); the rest of the package, like every core module, never imports the toy.
"""

from latentprobe.errors import StudyError
from latentprobe.study.config import BENCHMARK_NAMES, SCORERS, Study, load_study
from latentprobe.study.datasets import StudyData, load_data
from latentprobe.study.models import StudyModel, build_model
from latentprobe.study.report import build_report
from latentprobe.study.results import load_result
from latentprobe.study.run import StudyRun, config_fingerprint, run_study

__all__ = ["StudyError", "Study", "load_study", "StudyModel", "build_model", "StudyData", "load_data", "StudyRun",
           "run_study", "config_fingerprint", "build_report", "load_result", "BENCHMARK_NAMES", "SCORERS"]
