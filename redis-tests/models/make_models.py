#!/usr/bin/env python3
"""Generates the ONNX models the tests and benchmarks use, with deterministic weights.

Built with the `onnx` package's helpers only, so CI needs no ML toolkit; the small files are
committed and this script regenerates them byte for byte (`python3 make_models.py [outdir]`).
`--big` also writes mlp_big.onnx (42 MB, benchmarks only, not committed).
"""
import sys
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def save(model, path):
    # IR 9 (ONNX 1.14 era): readable by every ONNX Runtime release Locus supports.
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def gemm_relu_stack(name, inputs, input_dim, layers, seed):
    """A chain of Gemm (+Relu except last) layers; returns nodes, initializers, last output."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    prev, dim = inputs, input_dim
    for i, (width, relu) in enumerate(layers):
        w = (rng.standard_normal((dim, width)) / np.sqrt(dim)).astype(np.float32)
        b = (rng.standard_normal(width) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"{name}_w{i}"), numpy_helper.from_array(b, f"{name}_b{i}")]
        out = f"{name}_h{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"{name}_w{i}", f"{name}_b{i}"], [out]))
        prev = out
        if relu:
            nodes.append(helper.make_node("Relu", [prev], [out + "_relu"]))
            prev = out + "_relu"
        dim = width
    return nodes, inits, prev


def fraud(path):
    """The reference workload: transaction [N,30] + reference [N,256] -> probabilities [N,2]."""
    concat = helper.make_node("Concat", ["transaction", "reference"], ["features"], axis=1)
    nodes, inits, last = gemm_relu_stack("fc", "features", 286, [(128, True), (64, True), (2, False)], seed=7)
    soft = helper.make_node("Softmax", [last], ["probabilities"], axis=1)
    graph = helper.make_graph(
        [concat] + nodes + [soft], "fraud",
        [helper.make_tensor_value_info("transaction", TensorProto.FLOAT, ["N", 30]),
         helper.make_tensor_value_info("reference", TensorProto.FLOAT, ["N", 256])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])],
        inits)
    save(helper.make_model(graph, opset_imports=OPSET, producer_name="locus-tests"), path)


def txn30(path):
    """The fraud model's transaction branch alone: transaction [N,30] -> probabilities [N,2],
    the same depth (Gemm 128 + Relu, Gemm 64 + Relu, Gemm 2, Softmax): batch scoring's model."""
    nodes, inits, last = gemm_relu_stack("tx", "transaction", 30, [(128, True), (64, True), (2, False)], seed=9)
    soft = helper.make_node("Softmax", [last], ["probabilities"], axis=1)
    graph = helper.make_graph(
        nodes + [soft], "txn30",
        [helper.make_tensor_value_info("transaction", TensorProto.FLOAT, ["N", 30])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])],
        inits)
    save(helper.make_model(graph, opset_imports=OPSET, producer_name="locus-tests"), path)


def mlp_big(path):
    nodes, inits, last = gemm_relu_stack("big", "input", 1024, [(2048, True), (2048, True), (2048, True), (10, False)], seed=11)
    graph = helper.make_graph(
        nodes + [helper.make_node("Identity", [last], ["output"])], "mlp_big",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1024])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
        inits)
    save(helper.make_model(graph, opset_imports=OPSET, producer_name="locus-tests"), path)


def add(path):
    """c = a + b, float [N, 2]: the smallest two-input model."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])], "add",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", 2])])
    save(helper.make_model(graph, opset_imports=OPSET, producer_name="locus-tests"), path)


def sum_all(path):
    """Sums everything: its output drops the batch dimension (batching must refuse it)."""
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0)], "sum_all",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [])])
    save(helper.make_model(graph, opset_imports=OPSET, producer_name="locus-tests"), path)


def int_identity(path):
    """INT64 [N, 3] -> same, doubled: checks integer dtypes end to end."""
    two = numpy_helper.from_array(np.array(2, dtype=np.int64), "two")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])], "int_double",
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["N", 3])],
        [two])
    save(helper.make_model(graph, opset_imports=OPSET, producer_name="locus-tests"), path)


def string_label(path):
    """STRING [N] -> INT64 [N] label ids (ONNX-ML LabelEncoder), plus the strings echoed back."""
    enc = helper.make_node("LabelEncoder", ["s"], ["label"], domain="ai.onnx.ml",
                           keys_strings=["cat", "dog", "bird"], values_int64s=[0, 1, 2], default_int64=-1)
    echo = helper.make_node("Identity", ["s"], ["echo"])
    graph = helper.make_graph(
        [enc, echo], "string_label",
        [helper.make_tensor_value_info("s", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("echo", TensorProto.STRING, ["N"])])
    save(helper.make_model(graph, opset_imports=OPSET + [helper.make_opsetid("ai.onnx.ml", 2)], producer_name="locus-tests"), path)


def counting_body():
    """A Loop body that adds one to its float state and keeps its condition as it is."""
    return helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one")])


def spin(path):
    """A model that never finishes: a Loop with no trip limit whose condition stays true.
    The kill switch (MODEL_EXECUTION_TIMEOUT) must stop it."""
    body = counting_body()
    loop = helper.make_node("Loop", ["", "cond"], ["v_final"], body=body)
    loop.input.append("x")
    graph = helper.make_graph(
        [loop], "spin",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("v_final", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.array(True), "cond")])
    save(helper.make_model(graph, opset_imports=OPSET, producer_name="locus-tests"), path)


def slow(path):
    """y = x + n after n loop iterations: a model whose run time the caller chooses (INT64 n [1]),
    for measuring overlap and queueing."""
    body = counting_body()
    squeeze = helper.make_node("Squeeze", ["n"], ["trips"])
    loop = helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)
    graph = helper.make_graph(
        [squeeze, loop], "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("n", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.array(True), "cond")])
    save(helper.make_model(graph, opset_imports=OPSET, producer_name="locus-tests"), path)


def cnn(path):
    """A small image classifier: [N,3,8,8] -> Conv 3x3 (4) + Relu -> global average pool ->
    Gemm (10 classes) -> logits [N,10]. For the image-style DAG pipeline."""
    rng = np.random.default_rng(5)
    w = numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32), "conv_w")
    b = numpy_helper.from_array((rng.standard_normal(4) * 0.1).astype(np.float32), "conv_b")
    fw = numpy_helper.from_array((rng.standard_normal((4, 10)) * 0.5).astype(np.float32), "fc_w")
    fb = numpy_helper.from_array((rng.standard_normal(10) * 0.1).astype(np.float32), "fc_b")
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [w, b, fw, fb])
    save(helper.make_model(graph, opset_imports=OPSET, producer_name="locus-tests"), path)


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else pathlib.Path(__file__).parent)
    out.mkdir(parents=True, exist_ok=True)
    for f in (fraud, txn30, add, sum_all, int_identity, string_label, spin, slow, cnn):
        f(out / f"{f.__name__}.onnx")
    if "--big" in sys.argv:
        mlp_big(out / "mlp_big.onnx")


if __name__ == "__main__":
    main()
