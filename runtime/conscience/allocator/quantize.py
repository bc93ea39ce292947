"""Int8 weight storage with float32 compute.

onnxruntime's ``quantize_dynamic`` quantizes *activations* with one scale per tensor, so a
prompt's score depends on the other prompts in its batch (and on their padding): Python and
TypeScript, which batch differently, could then disagree by ~1e-3, above the 1e-4 parity
contract. So the shipped model stores each large weight matrix as int8 with a per-row float
scale and rebuilds it in the graph as ``Mul(Cast(W_int8), scale)``. Both inputs are
constants, so onnxruntime's constant folding turns them back into float32 weights when the
session loads: the file is ~4x smaller, compute is float32 and every row is scored
independently of its batch. (The weights lose a little precision; train.py compares the
figures against the float32 export before keeping it.)
"""
from __future__ import annotations

from pathlib import Path

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
