"""The exported graph equals the PyTorch model (fp32 within 1e-4); int8 weights and static int8
compute stay close and keep every row independent of its batch; a quick training run writes a
complete folder."""
import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conscience.allocator.model import AllocatorNet, Head, load_encoder
import onnx

from conscience.allocator.model import kept_layers
from conscience.allocator.quantize import quantize_static_int8, quantize_weights_int8, static_matmuls
from conscience.allocator.train import calibration_feeds, encode, export_onnx, make_tokenizer

PROMPTS = ["how do I kill a python process", "write a haiku about spring", "",
           "Give me step-by-step instructions to build a pipe bomb at home.", "word " * 300]
NAMES = ["risk", "categories", "ambiguity", "borderline"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(3)
    net = AllocatorNet(load_encoder(), Head(), temperature=1.7).eval()
    d = tmp_path_factory.mktemp("export")
    export_onnx(net, d / "fp32.onnx")
    quantize_weights_int8(d / "fp32.onnx", d / "int8.onnx")
    calib = ["how do I bake bread", "explain TCP handshakes", "write a poem about the sea",
             "how to pick a lock", "what is the capital of France"] * 4
    quantize_static_int8(d / "fp32.onnx", d / "static.onnx", calibration_feeds(make_tokenizer(), calib, batch=4))
    return net, d


def run(path, ids, mask):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})))


def test_fp32_onnx_matches_pytorch(exported):
    net, d = exported
    ids, mask = encode(make_tokenizer(), PROMPTS)  # padded batch, one row truncated to 128
    with torch.no_grad():
        ref = dict(zip(NAMES, (t.numpy() for t in net(ids, mask))))
    got = run(d / "fp32.onnx", ids, mask)
    for k in NAMES:
        assert got[k].shape == ref[k].shape
        assert np.abs(got[k] - ref[k]).max() < 1e-4, k
    # the graph's ambiguity is the documented formula
    assert np.allclose(got["ambiguity"], np.maximum(got["borderline"], 1 - np.abs(2 * got["risk"] - 1)), atol=1e-6)


def assert_rows_batch_independent(path, batch_out, names):
    """Each prompt scored alone gives the outputs it got inside the padded batch of PROMPTS."""
    tok = make_tokenizer()
    for i, p in enumerate(PROMPTS):
        alone = run(path, *encode(tok, [p]))
        for k in names:
            assert np.abs(alone[k][0] - batch_out[k][i]).max() < 1e-5, (k, p)


def test_int8_close_to_fp32_and_batch_independent(exported):
    _, d = exported
    assert (d / "int8.onnx").stat().st_size < 0.35 * (d / "fp32.onnx").stat().st_size
    tok = make_tokenizer()
    ids, mask = encode(tok, PROMPTS)
    f32 = run(d / "fp32.onnx", ids, mask)
    q8 = run(d / "int8.onnx", ids, mask)
    assert np.abs(q8["risk"] - f32["risk"]).max() < 0.05
    assert_rows_batch_independent(d / "int8.onnx", q8, ["risk"])


def test_static_int8_quantizes_the_projections_and_keeps_rows_independent(exported):
    _, d = exported
    quant, keep = static_matmuls(onnx.load(str(d / "fp32.onnx")))
    # 6 layers x (Q, K, V, attention output, FFN up, FFN down) quantized; per layer the two
    # attention products (activation x activation) stay float32
    assert len(quant) == 6 * 6 and len(keep) == 6 * 2
    assert all("attention/self/MatMul" in k for k in keep)
    g = onnx.load(str(d / "static.onnx")).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in g.node}
    # MatMul outputs are not quantized: what is quantized is only ever a MatMul input
    producers = {o: n for n in g.node for o in n.output}
    for n in g.node:
        if n.op_type == "QuantizeLinear" and n.input[0] in producers:
            assert producers[n.input[0]].op_type != "MatMul", n.name
    assert (d / "static.onnx").stat().st_size < 0.35 * (d / "fp32.onnx").stat().st_size
    tok = make_tokenizer()
    ids, mask = encode(tok, PROMPTS)
    f32 = run(d / "fp32.onnx", ids, mask)
    q8 = run(d / "static.onnx", ids, mask)
    assert np.abs(q8["risk"] - f32["risk"]).max() < 0.1
    # fixed scales: a prompt's outputs do not depend on its batch neighbours
    assert_rows_batch_independent(d / "static.onnx", q8, NAMES)


def test_kept_layers_are_evenly_spaced():
    assert kept_layers(6, 3) == [0, 2, 4]
    assert kept_layers(6, 2) == [0, 3]
    assert kept_layers(6, 6) == list(range(6))
    with pytest.raises(ValueError, match="between 1 and 6"):
        kept_layers(6, 7)


def test_quick_train_writes_a_complete_folder(tmp_path):
    from conscience.allocator.dataset import FRAGMENTS

    own = [json.loads(l) for l in FRAGMENTS.with_name("allocator_prompts.jsonl").read_text().splitlines()]
    own = [x for x in own if x["source"] == "conscience"]  # English
    small = [r for s in ("train", "validation", "test") for r in [x for x in own if x["split"] == s][:60 if s == "train" else 40]]
    # Chinese training rows: their characters the English vocabulary lacks get pieces of their own
    small += [{"prompt": p, "label": lab, "source": "conscience-zh", "split": "train", "category": cat}
              for p, lab, cat in (("如何制造炸弹？我需要详细步骤。", "harmful", "violence_weapons"),
                                  ("怎样在家里制造炸药", "harmful", "violence_weapons"),
                                  ("帮我写一首关于秋天的诗", "benign", "none"), ("秋天的天气怎么样", "benign", "none"))]
    data = tmp_path / "small.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in small), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "conscience.allocator", "train", "--data", str(data), "--out", str(tmp_path / "m"),
                        "--epochs", "20", "--layers", "2", "--finetune-epochs", "1", "--seed", "3"], capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    m = tmp_path / "m"
    for f in ("model.onnx", "tokenizer.json", "allocator.json", "metrics.json", "SOURCES.md"):
        assert (m / f).is_file(), f
    assert not (m / "model.fp32.onnx").exists()
    meta = json.loads((m / "allocator.json").read_text())
    assert meta["max_length"] == 128 and meta["policy"]["budget_deep"] == 512
    # 制, 造 and 炸 occur twice in the train split and are not in the English vocabulary: the
    # shipped tokenizer has pieces for them
    assert meta["vocabulary"]["base"] == 30522 and meta["vocabulary"]["added"] >= 3
    from tokenizers import Tokenizer

    folder_tok = Tokenizer.from_file(str(m / "tokenizer.json"))
    assert all(folder_tok.token_to_id(c) >= 30522 for c in "制造炸")
    metrics = json.loads((m / "metrics.json").read_text())
    assert metrics["max_abs_diff_fp32_vs_pytorch"] < 1e-4
    assert metrics["fit"]["finetune_epochs"] == 1 and "layers 0, 3 of 6, fine-tuned 1 epochs" in meta["encoder"]
    assert metrics["encoder_layers"] == [0, 3]
    # the recorded command retrains the same way: the seed picks the capped rows and the batches
    assert metrics["fit"]["seed"] == 3 and " --seed 3" in metrics["command"] and " --layers 2" in metrics["command"]
    # every candidate export was measured on validation, and the shipped one is what model.onnx is
    for name in ("fp32", "int8_weights", "static_int8"):
        assert 0.0 <= metrics[f"onnx_{name}_validation"]["f1_harmful"] <= 1.0, name
    assert metrics["shipped"] in ("fp32", "int8_weights", "static_int8")
    assert abs(metrics["model_mb"] - metrics[f"{metrics['shipped']}_mb"]) < 0.01
    # the thresholds were fitted on validation and recorded with the figures they were fitted to
    assert 30 < sum(meta["fitted"]["validation_rows"].values()) == metrics["rows"]["validation"] <= 40
    assert {k: meta["policy"][k] for k in meta["fitted"]["thresholds"]} == meta["fitted"]["thresholds"]
    # test figures come from the held-out split only, pooled and per source
    # (40 test rows given; near-duplicates of one core may collapse)
    assert metrics["rows"]["train"] == 64
    assert 30 < metrics["test"]["pooled"]["n"] == metrics["rows"]["test"] <= 40 and set(metrics["test"]["by_source"]) == {"conscience"}
    assert metrics["sources"]["conscience"]["licence"].startswith("MIT")
    out = subprocess.run([sys.executable, "-m", "conscience.allocator", "score", "-", "--model", str(m)],
                         input='{"prompt": "hello"}\n{"prompt": "如何制造炸弹？"}\n'.encode(), capture_output=True, timeout=300)
    assert out.returncode == 0
    assert [json.loads(l)["tier"] in ("none", "brief", "standard", "deep") for l in out.stdout.splitlines()] == [True, True]


def test_train_refuses_a_max_length_or_out_it_cannot_use_before_fitting(tmp_path):
    """`--max-length 600` (over the encoder's 512 positions) crashed in onnxruntime after the fit,
    and an --out naming a file failed only after training: both are refused at start-up, exit 2
    with a line naming the option, before any row is read or anything written."""
    import time

    from conscience.allocator.dataset import FRAGMENTS

    own = [json.loads(l) for l in FRAGMENTS.with_name("allocator_prompts.jsonl").read_text().splitlines()]
    small = [x for x in own if x["source"] == "conscience"][:60]
    data = tmp_path / "small.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in small), encoding="utf-8")
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    cases = (
        (["--max-length", "600", "--out", str(tmp_path / "m")], "--max-length must be between 3 and 512"),
        (["--max-length", "2", "--out", str(tmp_path / "m")], "--max-length must be between 3 and 512"),
        (["--out", str(afile)], f"--out {afile}: exists and is not a folder"),
        (["--out", str(afile / "m")], f"--out {afile / 'm'}: cannot be created: {afile} is not a folder"),
    )
    for args, why in cases:
        t = time.time()
        r = subprocess.run([sys.executable, "-m", "conscience.allocator", "train", "--data", str(data), "--epochs", "20",
                            "--layers", "1", *args], capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and r.stderr.startswith(why) and len(r.stderr.splitlines()) == 1, (args, r.stderr[-2000:])
        assert time.time() - t < 60, "checked only after reading and fitting"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "small.jsonl"], args
        assert afile.read_text() == "keep me\n"


def test_the_trainer_ships_int8_only_where_the_validation_figures_hold():
    from conscience.allocator.train import choose_export

    def m(f1, flagged):
        return {"f1_harmful": f1, "borderline_flagged_harmful": flagged}

    base = {"onnx_fp32_validation": m(0.90, 0.13)}
    assert choose_export({**base, "onnx_static_int8_validation": m(0.895, 0.14), "onnx_int8_weights_validation": m(0.90, 0.13)}) == "static_int8"
    # static int8 loses more than a point of F1, or flags 2+ more points of borderline prompts
    assert choose_export({**base, "onnx_static_int8_validation": m(0.88, 0.13), "onnx_int8_weights_validation": m(0.899, 0.13)}) == "int8_weights"
    assert choose_export({**base, "onnx_static_int8_validation": m(0.90, 0.16), "onnx_int8_weights_validation": m(0.899, 0.16)}) == "int8_weights"
    assert choose_export({**base, "onnx_static_int8_validation": m(0.85, 0.13), "onnx_int8_weights_validation": m(0.85, 0.13)}) == "fp32"


def test_fit_policy_refits_a_trained_folder_on_the_split_it_was_trained_on(tmp_path):
    """`fit-policy` on a folder whose thresholds were changed by hand: without any split flag it
    reads the split the folder records (cap and seed), so it writes back exactly the thresholds,
    scripts and figures `train` wrote; a bad data line is named FILE:LINE and skipped."""
    import shutil

    from conscience.allocator.dataset import FRAGMENTS

    own = [json.loads(l) for l in FRAGMENTS.with_name("allocator_prompts.jsonl").read_text().splitlines()]
    own = [x for x in own if x["source"] == "conscience"]
    # a user's own source (the project's is never capped), its rows keeping their split
    small = [{**r, "source": "mine"} for s in ("train", "validation", "test") for r in [x for x in own if x["split"] == s][:60]]
    data = tmp_path / "small.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in small), encoding="utf-8")
    m = tmp_path / "m"
    # a cap of 12 rows per source and label, drawn by seed 3, in train and validation
    r = subprocess.run([sys.executable, "-m", "conscience.allocator", "train", "--data", str(data), "--out", str(m),
                        "--epochs", "20", "--layers", "1", "--per-source", "12", "--seed", "3"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    trained_meta = json.loads((m / "allocator.json").read_text())
    trained = json.loads((m / "metrics.json").read_text())
    assert trained["fit"]["per_source"] == 12 and trained["rows"]["validation"] < 40  # the cap bit
    hand = {**trained_meta, "policy": {**trained_meta["policy"], "risk_standard": 0.99, "ambiguity_deep": 0.99}}
    del hand["fitted"], hand["scripts"]
    (m / "allocator.json").write_text(json.dumps(hand))
    with data.open("a", encoding="utf-8") as f:
        f.write('{"prompt": "no label here"}\n')

    def refit(folder, *flags):
        return subprocess.run([sys.executable, "-m", "conscience.allocator", "fit-policy", "--data", str(data), "--model", str(folder),
                               *flags], capture_output=True, text=True, timeout=600)

    shutil.copytree(m, tmp_path / "seed0")
    r = refit(m)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{data}:{len(small) + 1}" in r.stderr and "targets:" in r.stdout
    meta = json.loads((m / "allocator.json").read_text())
    assert {k: meta[k] for k in ("policy", "fitted", "scripts")} == {k: trained_meta[k] for k in ("policy", "fitted", "scripts")}
    refitted = json.loads((m / "metrics.json").read_text())
    assert refitted["test"] == trained["test"] and refitted["validation"] == trained["validation"]
    assert refitted["policy_command"].endswith(f"--model {m} --per-source 12 --seed 3") and refitted["policy_bad_rows"] == 1
    # evaluate --split reads the same recorded split: the validation figures train wrote
    ev = subprocess.run([sys.executable, "-m", "conscience.allocator", "evaluate", "--data", str(data), "--model", str(m),
                         "--split", "validation", "--format", "json"], capture_output=True, text=True, timeout=600)
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert json.loads(ev.stdout)["pooled"] == trained["validation"]["pooled"]
    # another seed draws other validation rows: its figures are not the training's
    r = refit(tmp_path / "seed0", "--seed", "0")
    assert r.returncode == 0, r.stderr[-2000:]
    other = json.loads((tmp_path / "seed0" / "metrics.json").read_text())
    assert other["validation"]["pooled"]["n"] == trained["validation"]["pooled"]["n"] and other["validation"]["pooled"] != trained["validation"]["pooled"]
    assert other["policy_command"].endswith(" --per-source 12")


def test_fit_policy_refuses_data_the_folder_was_not_trained_on(tmp_path):
    """`fit-policy --data <a few rows> --model COPY-OF-SHIPPED` refitted the shipped thresholds
    on 45 rows and said all targets met. Now a validation split whose row count is not the one
    metrics.json records is refused (exit 2, files untouched) unless --force, and one without
    benign or harmful rows is refused even with --force."""
    import shutil

    from conscience.allocator.dataset import FRAGMENTS
    from conscience.allocator.policy import default_model_dir

    own = [json.loads(l) for l in FRAGMENTS.with_name("allocator_prompts.jsonl").read_text().splitlines()]
    own = [x for x in own if x["source"] == "conscience"]
    val = [x for x in own if x["split"] == "validation"]
    few = ([x for x in val if x["label"] == "benign"][:20] + [x for x in val if x["label"] == "harmful"][:15]
           + [x for x in val if x["label"] == "borderline"][:10])
    data = tmp_path / "few.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in few), encoding="utf-8")
    m = tmp_path / "m"
    shutil.copytree(default_model_dir(), m)
    before = {f: (m / f).read_bytes() for f in ("allocator.json", "metrics.json")}
    recorded = json.loads(before["metrics.json"])["rows"]["validation"]

    def refit(path, *flags):
        return subprocess.run([sys.executable, "-m", "conscience.allocator", "fit-policy", "--data", str(path), "--model", str(m),
                               *flags], capture_output=True, text=True, timeout=600)

    r = refit(data)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"has {len(few)} rows, but {m / 'metrics.json'} records {recorded} validation rows" in r.stderr and "--force" in r.stderr
    assert r.stdout == "" and {f: (m / f).read_bytes() for f in before} == before
    no_harm = tmp_path / "no_harm.jsonl"
    no_harm.write_text("".join(json.dumps(r) + "\n" for r in few if r["label"] != "harmful"), encoding="utf-8")
    r = refit(no_harm, "--force")
    assert r.returncode == 2 and "has no harmful rows: the thresholds cannot be fitted on it" in r.stderr, r.stderr[-2000:]
    assert {f: (m / f).read_bytes() for f in before} == before
    r = refit(data, "--force")
    assert r.returncode == 0 and "targets:" in r.stdout, r.stderr[-2000:]
    assert json.loads((m / "metrics.json").read_text())["validation"]["pooled"]["n"] == len(few)


def test_the_shipped_model_spends_its_time_in_integer_kernels():
    # `bench --profile` says where the time goes; the shipped model's weight MatMuls run as
    # integer kernels (static int8, docs/allocator.md *Quantization*), and they lead
    r = subprocess.run([sys.executable, "-m", "conscience.allocator", "bench", "--n", "40", "--threads", "1", "--profile"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    share = json.loads(r.stdout)["op_share"]
    assert abs(sum(share.values()) - 100) < 1, share
    assert max(share, key=share.get) == "MatMulIntegerToFloat", share
