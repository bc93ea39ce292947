"""Int8 for the allocator: static int8 compute for every weight MatMul, int8 storage for the
embedding tables.

Two steps, both keeping each prompt's scores independent of the other prompts in its batch
(the TS-Python parity contract; Python and TypeScript batch differently):

1. ``quantize_static_int8``: onnxruntime's static quantization (QDQ, activations uint8 with
   scales fixed from calibration prompts, weights 7-bit int8 per output channel) on every
   MatMul that multiplies by a weight: Q/K/V, attention output, FFN up- and down-projection.
   Fixed scales mean integer kernels (VNNI on x86) with no per-batch statistics. The
   MatMuls' *outputs* stay float32 (``OpTypesToExcludeOutputQuantization``): they feed the
   residual stream, whose few large dimensions would set one coarse scale for all the others
   (quantizing the FFN down-projection's output that way cost 2 F1 points and 12 more points
   of borderline prompts flagged). Attention's activation-by-activation products stay float32.
2. ``quantize_weights_int8``: every remaining large float matrix (the embedding tables) is
   stored as int8 with a per-row float scale and rebuilt in the graph as
   ``Mul(Cast(W_int8), scale)``. Both inputs are constants, so onnxruntime's constant folding
   turns them back into float32 weights when the session loads: ~4x smaller on disk, float32
   compute. Used alone, it is the trainer's fallback export (train.py compares each
   candidate's figures against the float32 export before keeping it).

Why not ``quantize_dynamic``: it quantizes activations with one scale per tensor computed at
run time, so a prompt's score depends on the other prompts in its batch (and on their
padding): Python and TypeScript, which batch differently, could then disagree by ~1e-3,
above the 1e-4 parity contract.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MIN_ELEMENTS = 65536


def quantize_weights_int8(src: str | Path, dst: str | Path, min_elements: int = MIN_ELEMENTS) -> dict[str, int]:
    model = onnx.load(str(src))
    g = model.graph
    new_nodes = []
    keep = []
    n_q = 0
    for init in g.initializer:
        if init.data_type != TensorProto.FLOAT or len(init.dims) != 2 or int(np.prod(init.dims)) < min_elements:
            keep.append(init)
            continue
        w = numpy_helper.to_array(init).astype(np.float32)
        scale = np.abs(w).max(axis=1, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        name = init.name
        keep.append(numpy_helper.from_array(q, name + "_int8"))
        keep.append(numpy_helper.from_array(scale.astype(np.float32), name + "_scale"))
        new_nodes.append(helper.make_node("Cast", [name + "_int8"], [name + "_f"], to=TensorProto.FLOAT, name=name + "_cast"))
        new_nodes.append(helper.make_node("Mul", [name + "_f", name + "_scale"], [name], name=name + "_dequant"))
        n_q += 1
    del g.initializer[:]
    g.initializer.extend(keep)
    old = list(g.node)
    del g.node[:]
    g.node.extend(new_nodes + old)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return {"quantized_tensors": n_q}


def static_matmuls(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """(MatMuls to quantize, MatMuls to keep float32): quantized are those whose second input
    is a weight; products of two activations (attention scores and context) stay float32."""
    weights = {i.name for i in model.graph.initializer if len(i.dims) == 2}
    quant, keep = [], []
    for n in model.graph.node:
        if n.op_type == "MatMul":
            (quant if n.input[1] in weights else keep).append(n.name)
    return quant, keep


def quantize_static_int8(src: str | Path, dst: str | Path, calibration: Iterable[dict[str, np.ndarray]]) -> dict[str, int]:
    """Static int8 (see the module doc) followed by int8 storage of what is left.
    ``calibration``: feeds {input_ids, attention_mask} of typical prompts."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(src))
    quant, keep = static_matmuls(model)
    if not quant:
        raise ValueError(f"{src}: no weight MatMuls to quantize")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calibration)

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory(prefix="allocator-quant-") as tmp:
        mid = Path(tmp) / "static.onnx"
        quantize_static(
            str(src), str(mid), Reader(),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"], nodes_to_exclude=keep,
            calibrate_method=CalibrationMethod.MinMax,
            # 7-bit weights: CPUs without VNNI multiply uint8 x int8 pairs into int16
            # (VPMADDUBSW), which saturates with full-range weights; 7 bits cannot overflow
            # there, so every x86 CPU computes the same integers (test-split figures in
            # docs/allocator.md).
            reduce_range=True,
            extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul"]},
        )
        stats = quantize_weights_int8(mid, dst)
    return {"static_matmuls": len(quant), "float_matmuls": len(keep), **stats}
