#!/usr/bin/env python3
"""How long `json2vec fit` takes, with every default, on a 10,000-row table of 20 fields and a target.

The table is synthetic, so the figure does not depend on data outside the repo: 10 numbers
(normal, log-normal with a heavy tail, integer counts), 8 categories of 3 to 40 levels and 2
booleans, and a binary target `label` from a noisy logistic function of a few of them
(interactions and a non-linear term included). `--rows` records train, 2,000 more are the
test set. Prints one JSON line: fit seconds (the whole process: reading, statistics,
training with early stopping, checkpoints), epochs, steps, test AUC, and the same for
scikit-learn's HistGradientBoosting for scale.

Usage: bench/accuracy/fit_time.py [--rows 10000] [--json2vec build/json2vec] [--extra "..."]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def make_table(n, seed):
    rng = np.random.default_rng(seed)
    levels = [3, 5, 8, 12, 20, 40, 4, 6]
    cats = [rng.integers(0, k, n) for k in levels]
    nums = [rng.normal(0, 1, n), rng.normal(5, 2, n), rng.lognormal(0, 1, n), rng.lognormal(2, 1.5, n),
            rng.poisson(3, n).astype(float), rng.uniform(-1, 1, n), rng.normal(0, 1, n), rng.normal(0, 1, n),
            rng.exponential(1, n), rng.integers(18, 80, n).astype(float)]
    bools = [rng.random(n) < 0.3, rng.random(n) < 0.6]
    effect0 = np.linspace(-1, 1, levels[0])
    effect4 = np.sin(np.arange(levels[4]))
    logit = (nums[0] - 0.5 * nums[5] ** 2 * 3 + effect0[cats[0]] + effect4[cats[4]] + 0.8 * bools[0] * nums[6]
             + 0.4 * np.log1p(nums[3]) - 0.05 * (nums[9] - 50) / 10 + rng.normal(0, 1, n))
    label = rng.random(n) < 1 / (1 + np.exp(-logit))
    rows = []
    for i in range(n):
        r = {f"n{j}": round(float(v[i]), 4) for j, v in enumerate(nums)}
        r.update({f"c{j}": f"v{int(v[i])}" for j, v in enumerate(cats)})
        r.update({f"b{j}": bool(v[i]) for j, v in enumerate(bools)})
        r["label"] = "yes" if label[i] else "no"
        rows.append(r)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--json2vec", default=os.path.join(ROOT, "build", "json2vec"))
    ap.add_argument("--extra", default="", help="json2vec fit overrides (not defaults!)")
    args = ap.parse_args()
    rows = make_table(args.rows + 2000, seed=7)
    train, test = rows[:args.rows], rows[args.rows:]
    with tempfile.TemporaryDirectory(prefix="j2v-fit-time-") as tmp:
        for name, part in (("train", train), ("test", test)):
            with open(os.path.join(tmp, name + ".jsonl"), "w") as f:
                for r in part:
                    f.write(json.dumps(r) + "\n")
        config = os.path.join(tmp, "config.yaml")
        with open(config, "w") as f:
            f.write("model:\n  fields:\n")
            for k, v in train[0].items():
                kind = "boolean" if isinstance(v, bool) else "number" if isinstance(v, float) else "category"
                f.write(f"    {k}: {{type: {kind}, target: true}}\n" if k == "label" else f"    {k}: {kind}\n")
        common = ["--config", config, "--trainer.default_root_dir=" + os.path.join(tmp, "runs"),
                  "--trainer.enable_progress_bar=false"]
        start = time.time()
        fit = subprocess.run([args.json2vec, "fit", *common, *args.extra.split(), "--data.train=" + os.path.join(tmp, "train.jsonl")],
                             capture_output=True, text=True)
        seconds = time.time() - start
        if fit.returncode != 0:
            sys.exit(f"json2vec fit failed: {fit.stderr[-2000:]}")
        last = json.loads(fit.stdout.strip().splitlines()[-1])
        tested = subprocess.run([args.json2vec, "test", *common, "--data.test=" + os.path.join(tmp, "test.jsonl"),
                                 "--ckpt_path", "best"], capture_output=True, text=True)
        if tested.returncode != 0:
            sys.exit(f"json2vec test failed: {tested.stderr[-2000:]}")
        auc = json.loads(tested.stdout.strip().splitlines()[-1])["record.label/test:auc:content"]

    def matrix(part):
        cols = [k for k in part[0] if k != "label"]
        x = np.array([[float(r[c][1:]) if isinstance(r[c], str) else float(r[c]) for c in cols] for r in part])
        return x, np.array([r["label"] == "yes" for r in part])

    (x_train, y_train), (x_test, y_test) = matrix(train), matrix(test)
    cat_mask = [k.startswith("c") for k in train[0] if k != "label"]
    start = time.time()
    gbdt = HistGradientBoostingClassifier(max_iter=500, random_state=0, categorical_features=cat_mask).fit(x_train, y_train)
    gbdt_seconds = time.time() - start
    print(json.dumps({"rows": args.rows, "fields": len(train[0]), "json2vec_fit_seconds": round(seconds, 1),
                      "epochs": last.get("epoch"), "steps": last.get("global_step"),
                      "json2vec_test_auc": round(auc, 4), "hist_gbdt_fit_seconds": round(gbdt_seconds, 1),
                      "hist_gbdt_test_auc": round(roc_auc_score(y_test, gbdt.predict_proba(x_test)[:, 1]), 4)}))


if __name__ == "__main__":
    main()
