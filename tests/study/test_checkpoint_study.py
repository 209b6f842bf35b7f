"""A study on a checkpoint folder (not a toy): a tiny CODI checkpoint in the official layout on text
questions in GSM8k-Aug's layout read by ``latentprobe.data.load_benchmark``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from latentprobe import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
pytest.importorskip("peft")
from checkpoints import save_codi_checkpoint, save_gpt2_base  # noqa: E402

pytestmark = pytest.mark.slow
QUESTIONS = ["what is the red circle ?", "what colour is the square ?", "what is a blue circle ?",
             "what is the green square ?", "one two three ?", "four five six ?"]


def _gsm(folder: Path) -> None:
    """GSM8k-Aug in CODI's layout (``question``, ``cot``, ``answer``), read by ``load_benchmark``."""
    folder.mkdir()
    rows = [{"question": q, "cot": ["<<1+1=2>>", "<<1+2=3>>"][i % 2], "answer": ["2", "3"][i % 2]}
            for i, q in enumerate(QUESTIONS)]
    (folder / "test.json").write_text(json.dumps(rows))


def test_codi_checkpoint_study_runs_and_refuses_another_model(tmp_path):
    base = save_gpt2_base(tmp_path / "gpt2")
    save_codi_checkpoint(tmp_path / "codi", base, r=128)
    _gsm(tmp_path / "gsm")
    study = tmp_path / "codi.toml"
    text = (f'[study]\nname = "codi"\n[model]\nsource = "{tmp_path / "codi"}"\npreset = "codi"\nbase = "{base}"\n'
            '[data]\nbenchmark = "gsm8k-aug"\nroot = "gsm"\n[prompt]\ntemplate = "{question}"\n'
            '[generation]\nmax_new_tokens = 10\nn_boot = 50\nchunk_size = 3\n'
            '[analyses.z_to_y]\ninterventions = ["zero", "swap", "no_latents"]\n'
            '[analyses.probes]\ntargets = ["cot"]\nlayers = [2]\nn_splits = 2\ncontrols = false\n'
            '[analyses.collapse]\n')
    study.write_text(text)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    sample = pd.read_csv(out / "sample.csv")
    assert list(sample.example_id) == [f"gsm8k-aug/{i}" for i in range(6)] and set(sample.benchmark) == {"gsm8k-aug"}
    zy = pd.read_csv(out / "z_to_y" / "summary.csv")
    assert {"zero", "swap", "no_latents", "none"} <= set(zy.intervention)
    assert (out / "collapse" / "collapse.csv").stat().st_size and (out / "report.html").is_file()
    # the same study file against another checkpoint in the same place: refused, it is another model
    save_codi_checkpoint(tmp_path / "codi", base, r=128)  # new random LoRA and projection weights
    res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 2 and "another model" in res.output and "weights" in res.output, res.output


def test_codi_study_on_llama_tokenises_with_bos_and_matches_codis_loop(tmp_path):
    """The study's clean run goes through ``run`` with the preset's tokenisation rule: CODI's test.py tokenises
    with special tokens, so Llama's <s> comes first; the latents match CODI's own (unmerged LoRA) loop."""
    import torch

    from latentprobe import LatentTrace
    from checkpoints import save_llama_base  # noqa: E402

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "realformats"))
    from test_text_references import codi_llama_reference  # noqa: E402

    base = save_llama_base(tmp_path / "llama")
    official = save_codi_checkpoint(tmp_path / "codi", base, r=128)
    _gsm(tmp_path / "gsm")
    study = tmp_path / "codi.toml"
    study.write_text(f'[study]\nname = "codi-llama"\n[model]\nsource = "{tmp_path / "codi"}"\npreset = "codi"\n'
                     f'base = "{base}"\n[data]\nbenchmark = "gsm8k-aug"\nroot = "gsm"\n[prompt]\n'
                     'template = "{question}"\n[generation]\npublished = true\nn_boot = 20\n'
                     '[analyses.collapse]\n[output]\ntraces = true\n')
    out = tmp_path / "out"
    res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    trace = LatentTrace.load(out / "collapse" / "trace")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    tok.add_special_tokens({"pad_token": "[PAD]"})
    assert trace.config["add_special_tokens"] is True
    rec = trace.config["generation"]  # published = true: CODI's test.py settings, 256 answer tokens
    assert (rec["mode"], rec["do_sample"], rec["max_new_tokens"]) == ("published", False, 6 + 1 + 256)
    for e in trace:
        q = QUESTIONS[int(e.example_id.split("/")[-1])]
        ref = codi_llama_reference(official, tok, q, e.example_id, 6 + 1 + 256)
        assert e.answer_ids.tolist() == ref.answer
        assert int(e.input_ids[0]) == tok.bos_token_id and e.input_ids.tolist() == ref.ids
        assert torch.allclose(e.z, torch.stack(ref.latents), atol=1e-6, rtol=1e-6)
