#!/usr/bin/env python3
# Toolkits this script needs (PyPI names; CI does not run it, the outputs are committed):
#   pip install numpy onnx onnxruntime scikit-learn skl2onnx onnxmltools xgboost lightgbm statsmodels torch
# Versions the committed files were made with: scikit-learn 1.9.1, skl2onnx 1.20.0,
# onnxmltools 1.16.0, xgboost 3.2.0, lightgbm 4.7.0, statsmodels 0.15.0, torch 2.15.0 (PyPI
# wheel; its TorchScript exporter, dynamo=False, needs no onnxscript), onnx 1.23.2, numpy 2.4.6.
"""Trains small models from common ML toolkits on deterministic synthetic data and exports
them to ONNX, for Locus's model tests (test_models.py::test_toolkit_*).

For every model NAME it writes, next to this file (or into argv[1]):
  tk_NAME.onnx  the exported model (IR 9 like make_models.py, so any supported runtime reads it)
  tk_NAME.npz   X: the test inputs (float32), outputs: the graph's output names in order,
                expect_<output>: the toolkit's OWN predictions for X (not ONNX Runtime's),
                exact: names of the outputs that must match exactly (class labels).

Every seed is fixed and every trainer runs single-threaded, so reruns give the same weights.
Toolkits that are not installed are skipped with a message (their committed files are kept).
"""
import pathlib
import sys
import warnings

import numpy as np
import onnx
import onnx.helper

OUT = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).parent
OPSET = 17
ML_OPSET = 3
MLTOOLS_OPSET = 15  # the highest main-domain opset onnxmltools 1.16's converters accept
N_TEST = 16
made = []


def tabular(seed, n=400, d=6):
    """Synthetic tabular data: features, a regression target and a 3-class target."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal(d)
    y_reg = X @ w + 0.5 * np.sin(3 * X[:, 0]) + 0.1 * rng.standard_normal(n)
    score = X[:, 0] + X[:, 1] * X[:, 2]
    y_cls = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3])).astype(np.int64)
    return X, y_reg.astype(np.float64), y_cls


def finish(model, name, X, outputs, exact=()):
    """Saves tk_NAME.onnx (IR 9, checked) and tk_NAME.npz with the toolkit's predictions."""
    model.ir_version = 9
    # onnxmltools names the graph with a random uuid; a fixed name keeps reruns byte-identical.
    model.graph.name = f"tk_{name}"
    # skl2onnx can list the default domain twice, in varying order; one entry per domain, sorted.
    opsets = {}
    for o in model.opset_import:
        opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in sorted(opsets.items()))
    graph_outputs = [o.name for o in model.graph.output]
    assert list(outputs) == graph_outputs, (name, list(outputs), graph_outputs)
    onnx.checker.check_model(model)
    path = OUT / f"tk_{name}.onnx"
    onnx.save(model, str(path))
    arrays = {"X": np.ascontiguousarray(X), "outputs": np.array(list(outputs)),
              "exact": np.array(list(exact), dtype=str)}
    for k, v in outputs.items():
        arrays[f"expect_{k}"] = np.asarray(v)
    np.savez_compressed(OUT / f"tk_{name}.npz", **arrays)
    made.append(name)


def sklearn_models():
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from skl2onnx import to_onnx

    X, y_reg, y_cls = tabular(1)
    Xt = X[:N_TEST]
    ops = {"": OPSET, "ai.onnx.ml": ML_OPSET}
    nozip = {"zipmap": False}

    m = LinearRegression().fit(X, y_reg)
    onx = to_onnx(m, X[:1], target_opset=ops)
    finish(onx, "sk_linreg", Xt, {"variable": m.predict(Xt).reshape(-1, 1)})

    m = LogisticRegression(max_iter=500).fit(X, y_cls)
    onx = to_onnx(m, X[:1], target_opset=ops, options={id(m): nozip})
    finish(onx, "sk_logreg", Xt,
           {"label": m.predict(Xt), "probabilities": m.predict_proba(Xt)}, exact=["label"])

    # The same classifier with skl2onnx's default ZipMap: its probabilities output is a
    # sequence of maps, not a tensor, so Locus must refuse to store it as a tensor.
    onx = to_onnx(m, X[:1], target_opset=ops)
    finish(onx, "sk_logreg_zipmap", Xt,
           {"output_label": m.predict(Xt), "output_probability": m.predict_proba(Xt)},
           exact=["output_label"])

    m = RandomForestClassifier(n_estimators=12, max_depth=5, random_state=0, n_jobs=1).fit(X, y_cls)
    onx = to_onnx(m, X[:1], target_opset=ops, options={id(m): nozip})
    finish(onx, "sk_rf", Xt,
           {"label": m.predict(Xt), "probabilities": m.predict_proba(Xt)}, exact=["label"])

    m = GradientBoostingRegressor(n_estimators=25, max_depth=3, random_state=0).fit(X, y_reg)
    onx = to_onnx(m, X[:1], target_opset=ops)
    finish(onx, "sk_gbr", Xt, {"variable": m.predict(Xt).reshape(-1, 1)})


def xgboost_model():
    import xgboost as xgb
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    X, _, y_cls = tabular(2)
    Xt = X[:N_TEST]
    m = xgb.XGBClassifier(n_estimators=15, max_depth=3, learning_rate=0.3, random_state=0,
                          n_jobs=1, tree_method="exact").fit(X, y_cls)
    onx = convert_xgboost(m, initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
                          target_opset=MLTOOLS_OPSET)
    finish(onx, "xgb_clf", Xt,
           {"label": m.predict(Xt).astype(np.int64), "probabilities": m.predict_proba(Xt)},
           exact=["label"])


def lightgbm_model():
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    X, y_reg, _ = tabular(3)
    Xt = X[:N_TEST]
    m = lgb.LGBMRegressor(n_estimators=20, num_leaves=8, learning_rate=0.2, random_state=0,
                          n_jobs=1, deterministic=True, verbose=-1).fit(X, y_reg)
    onx = convert_lightgbm(m, initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
                           target_opset=MLTOOLS_OPSET)
    out = onx.graph.output[0].name
    finish(onx, "lgbm_reg", Xt, {out: m.predict(Xt).reshape(-1, 1)})


def statsmodels_model():
    """An OLS fit written as an ONNX graph by hand: y = x @ coef + intercept."""
    import statsmodels.api as sm
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 3))
    y = 1.5 + X @ np.array([2.0, -1.0, 0.5]) + 0.05 * rng.standard_normal(200)
    res = sm.OLS(y, sm.add_constant(X)).fit()
    intercept, coef = res.params[0], res.params[1:]
    Xt = X[:N_TEST].astype(np.float32)
    expect = res.predict(sm.add_constant(X[:N_TEST].astype(np.float32).astype(np.float64), has_constant="add"))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "coef"], ["xw"]),
         helper.make_node("Add", ["xw", "intercept"], ["y"])],
        "statsmodels_ols",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(coef.reshape(3, 1).astype(np.float32), "coef"),
         numpy_helper.from_array(np.array([intercept], dtype=np.float32), "intercept")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="statsmodels-ols")
    finish(model, "sm_ols", Xt, {"y": np.asarray(expect).reshape(-1, 1)})


def torch_models():
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    def train(net, X, y, steps=200):
        opt = torch.optim.Adam(net.parameters(), lr=0.02)
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(net(X), y).backward()
            opt.step()
        return net.eval()

    def export(net, example, name, in_name, out_name):
        path = OUT / f"tk_{name}.onnx"
        kw = dict(input_names=[in_name], output_names=[out_name], opset_version=OPSET,
                  dynamic_axes={in_name: {0: "N"}, out_name: {0: "N"}})
        try:
            # The TorchScript-based exporter: self-contained small files, no onnxscript needed.
            torch.onnx.export(net, (example,), str(path), dynamo=False, **kw)
        except TypeError:
            torch.onnx.export(net, (example,), str(path), **kw)
        model = onnx.load(str(path), load_external_data=True)
        return model

    X, _, y_cls = tabular(5, d=8)
    Xtr, ytr = torch.from_numpy(X), torch.from_numpy(y_cls)
    mlp = train(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), Xtr, ytr)
    Xt = X[:N_TEST]
    with torch.no_grad():
        expect = mlp(torch.from_numpy(Xt)).numpy()
    finish(export(mlp, torch.from_numpy(Xt[:2]), "torch_mlp", "features", "logits"),
           "torch_mlp", Xt, {"logits": expect})

    # 1x8x8 "images": a bright horizontal bar, vertical bar or diagonal, plus noise.
    rng = np.random.default_rng(6)
    n = 300
    labels = rng.integers(0, 3, n)
    imgs = 0.3 * rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    for i, c in enumerate(labels):
        p = rng.integers(1, 7)
        if c == 0:
            imgs[i, 0, p, :] += 1.0
        elif c == 1:
            imgs[i, 0, :, p] += 1.0
        else:
            imgs[i, 0, np.arange(8), np.arange(8)] += 1.0
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    cnn = train(cnn, torch.from_numpy(imgs), torch.from_numpy(labels.astype(np.int64)), steps=150)
    It = imgs[:N_TEST]
    with torch.no_grad():
        expect = cnn(torch.from_numpy(It)).numpy()
    finish(export(cnn, torch.from_numpy(It[:2]), "torch_cnn", "image", "logits"),
           "torch_cnn", It, {"logits": expect})
    print(f"torch {torch.__version__}")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore")
    for fn in (sklearn_models, xgboost_model, lightgbm_model, statsmodels_model, torch_models):
        try:
            fn()
        except ImportError as e:
            print(f"skipping {fn.__name__}: {e}", file=sys.stderr)
    for name in made:
        for ext in ("onnx", "npz"):
            p = OUT / f"tk_{name}.{ext}"
            size = p.stat().st_size
            assert size < 1 << 20, f"{p} is {size} bytes"
            print(f"{p.name:28s} {size:8d} bytes")


if __name__ == "__main__":
    main()
