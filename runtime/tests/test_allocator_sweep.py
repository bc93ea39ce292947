"""scripts/gpu/allocator_sweep.py: the parts of the GPU sweep that run anywhere (the configs it
accepts, how it ranks them, the weights it cuts into parts for the trip back, the encoder it
widens, a fit stopped at the deadline)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conscience.allocator.pool import prepare, read_all

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu" / "allocator_sweep.py"


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("allocator_sweep", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_config_names_layers_cap_seed_and_epochs(sweep):
    assert sweep.parse_config("c600s1:3:600:1:5") == {"name": "c600s1", "layers": 3, "per_source": 600, "seed": 1,
                                                       "finetune_epochs": 5}
    for bad, why in (("c600:3:600:1", "NAME:LAYERS"), ("c600:3:six:1:5", "whole numbers"), ("a b:3:600:1:5", "NAME:LAYERS")):
        with pytest.raises(SystemExit, match=why) as e:
            sweep.parse_config(bad)
        assert repr(bad) in str(e.value)


def test_the_ranking_sums_how_far_each_target_is_missed(sweep):
    meets = {"f1": 0.95, "look_risky_flagged": 0.05, "ordinary_budget0": 0.93, "harmful_budget0": 0.01,
             "traffic_mix_budget_share": 0.09}
    assert sweep.shortfall(meets) == 0.0
    # F1 0.1 short, flagged 0.1 over, ordinary 0.3 short; the other two met
    assert sweep.shortfall({**meets, "f1": 0.82, "look_risky_flagged": 0.18, "ordinary_budget0": 0.60}) == pytest.approx(0.5)
    # a figure a split cannot give (no borderline rows) counts as met, not as a miss
    assert sweep.shortfall({k: v for k, v in meets.items() if k != "look_risky_flagged"}) == 0.0


def test_weights_come_back_in_parts_that_cat_joins(sweep, tmp_path):
    w = tmp_path / "c600s1.pt"
    blob = bytes(range(256)) * 3 + b"tail"
    w.write_bytes(blob)
    parts = sweep.write_parts(w, 300)
    assert [p.name for p in parts] == ["c600s1.pt.part-aa", "c600s1.pt.part-ab", "c600s1.pt.part-ac"]
    assert all(p.stat().st_size <= 300 for p in parts)
    assert b"".join(p.read_bytes() for p in sorted(tmp_path.glob("c600s1.pt.part-*"))) == blob
    with pytest.raises(ValueError, match="676 parts"):
        sweep.write_parts(w, 1)


def test_a_float16_encoder_is_widened_to_float32(sweep, tmp_path):
    from safetensors.torch import load_file, save_file

    src = tmp_path / "enc"
    src.mkdir()
    save_file({"w": torch.tensor([0.1, -2.5], dtype=torch.float16), "position_ids": torch.arange(4)}, str(src / "model.safetensors"))
    (src / "config.json").write_text('{"num_hidden_layers": 3}')
    out = sweep.widen(src, tmp_path / "wide")
    sd = load_file(str(out / "model.safetensors"))
    assert sd["w"].dtype == torch.float32 and sd["w"].tolist() == pytest.approx([0.1, -2.5], abs=1e-3)
    assert sd["position_ids"].dtype == torch.int64
    assert json.loads((out / "config.json").read_text()) == {"num_hidden_layers": 3}


def test_a_fit_still_running_at_the_deadline_is_stopped_and_cannot_win(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "knit a scarf", "label": "benign"}) + "\n")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(SCRIPT), "--data", str(data), "--out", str(out), "--device", "cpu",
                        "--deadline", "0", "--config", "a:3:600:0:1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "fit a: rc stopped at the deadline" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["configs"]["a"]["rc"] == "stopped at the deadline" and "best" not in summary
    assert not list(out.glob("*.part-*"))


@pytest.fixture(scope="module")
def pack():
    spec = importlib.util.spec_from_file_location("allocator_pack", ROOT / "scripts" / "gpu" / "allocator_pack.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_packed_encoder_is_the_layers_train_keeps(sweep, pack, tmp_path, monkeypatch):
    """What travels to the GPU host is the same network `train --layers 3` builds here, in
    float16: same embeddings within float16's rounding, and it says which layers it holds."""
    from conscience.allocator.model import load_encoder, mean_pool

    enc = pack.pack_encoder(tmp_path, 3)
    cfg = json.loads((enc / "config.json").read_text())
    assert cfg["conscience_kept_layers"] == [0, 2, 4] and cfg["num_hidden_layers"] == 3
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 102]])
    mask = torch.ones_like(ids)

    def embed(encoder):
        with torch.no_grad():
            out = encoder(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
        return mean_pool(out.last_hidden_state, mask)

    here = embed(load_encoder(3))
    monkeypatch.setenv("CONSCIENCE_ENCODER_DIR", str(sweep.widen(enc, tmp_path / "wide")))
    there = load_encoder(3)
    assert there.kept_layers == [0, 1, 2] and there.pretrained_layers == 3
    assert torch.allclose(embed(there), here, atol=2e-2)
    # the sweep refuses a config that would keep other layers than train does from the whole encoder
    with pytest.raises(SystemExit, match=r"--config b: 2 layers, .* \[0, 2, 4\]"):
        sweep.check_layers(enc, [sweep.parse_config("a:3:600:0:5"), sweep.parse_config("b:2:600:0:5")])
    sweep.check_layers(enc, [sweep.parse_config("a:3:600:0:5")])


def test_the_data_pack_holds_what_train_reads_of_the_folder(pack, tmp_path):
    import tarfile

    data = tmp_path / "prompt-risk"
    (data / "noisy").mkdir(parents=True)
    (data / "a.jsonl").write_text('{"prompt": "hi", "label": "benign"}\n')
    (data / "noisy" / "b.jsonl").write_text('{"prompt": "x", "label": "harmful"}\n')
    (data / "SOURCES.md").write_text("# sources\n")
    tar = pack.pack_data(data, tmp_path)
    with tarfile.open(tar) as t:
        assert sorted(t.getnames()) == ["prompt-risk/SOURCES.md", "prompt-risk/a.jsonl"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no \\*.jsonl files"):
        pack.pack_data(tmp_path / "empty", tmp_path)


def test_a_fitted_network_is_measured_as_train_would_and_a_stranger_refused(sweep, tmp_path):
    """The sweep's scoring of one fitted network: thresholds fitted on validation, figures on
    test, its shortfall; weights fitted on other rows (another vocabulary) are refused."""
    from conscience.allocator.dataset import FRAGMENTS

    own = [json.loads(l) for l in FRAGMENTS.with_name("allocator_prompts.jsonl").read_text().splitlines()]
    own = [x for x in own if x["source"] == "conscience"]
    small = [r for s in ("train", "validation", "test") for r in [x for x in own if x["split"] == s][:40]]
    data = tmp_path / "small.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in small), encoding="utf-8")
    w = tmp_path / "a.pt"
    r = subprocess.run([sys.executable, "-m", "conscience.allocator", "train", "--data", str(data), "--out", str(tmp_path / "m"),
                        "--epochs", "20", "--layers", "1", "--save-weights", str(w), "--fit-only"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT / "runtime")
    assert r.returncode == 0, r.stderr[-2000:]
    c = sweep.parse_config("a:1:600:0:0")
    m = sweep.measure(c, w, prepare(read_all([data], lambda m: None)), "cpu")
    assert m["rows"]["validation"] == m["validation"]["n"] and m["rows"]["test"] == m["test"]["n"] > 30
    assert set(m["thresholds"]) == {"risk_standard", "ambiguity_standard", "ambiguity_deep", "risk_harmful"}
    assert m["validation_shortfall"] == sweep.shortfall(m["validation"]) > 0
    # the finish where the shipped toolchain is: train --weights exports, fits and measures the same network
    r = subprocess.run([sys.executable, "-m", "conscience.allocator", "train", "--data", str(data), "--out", str(tmp_path / "m"),
                        "--layers", "1", "--weights", str(w)], capture_output=True, text=True, timeout=600, cwd=ROOT / "runtime")
    assert r.returncode == 0, r.stderr[-2000:]
    import hashlib

    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["fit"]["weights"]["sha256"] == hashlib.sha256(w.read_bytes()).hexdigest()
    assert f" --weights {w}" in metrics["command"] and (tmp_path / "m" / "model.onnx").is_file()
    assert metrics["rows"] == m["rows"] and metrics["temperature"] == pytest.approx(m["temperature"], abs=1e-4)
    # the same weights against rows whose train split adds word pieces (Chinese): refused, by name
    zh = tmp_path / "zh.jsonl"
    zh.write_text(data.read_text() + "".join(
        json.dumps({"prompt": p, "label": "benign", "source": "conscience-zh", "split": "train"}, ensure_ascii=False) + "\n"
        for p in ("秋天的天气怎么样", "秋天的诗怎么写")), encoding="utf-8")
    with pytest.raises(ValueError, match=r"a\.pt: its vocabulary has \d+ rows"):
        sweep.measure(c, w, prepare(read_all([zh], lambda m: None)), "cpu")
