#!/usr/bin/env python3
"""json2vec with defaults against tree ensembles on every bench table, on the same splits.

For each task of ../shared/datasets/bench/tasks.json (and the shared wa_churn and diamonds):
  - R repeated random 80/20 splits (seed = repeat index), rows with a null target dropped;
  - json2vec: `json2vec fit` with a schema only (numbers -> number, true/false -> boolean,
    other values -> category; the target as category or number by the task's kind), every
    other setting its default, on the 80% (it holds out its own validation share for early
    stopping), then `json2vec test --ckpt_path best` on the 20%;
  - scikit-learn RandomForest (300 trees) and HistGradientBoosting (500 rounds, its default
    early stopping) on the same 80%, strings one-hot encoded (baseline.py's Featurizer).
Prints one markdown row per task: mean metric of each over the repeats, fit seconds, and
whether json2vec beats the better tree model (AUC and accuracy: higher; RMSE: lower), plus
its gap to it in percent. JSON per run goes to stderr.

Usage: bench/accuracy/tables.py [--repeats 3] [--tasks a,b] [--json2vec build/json2vec]
Runs one command at a time: the machine's cores are the measurement's.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import mean_squared_error, roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baseline import Featurizer, read_jsonl, targets  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

SHARED = {
    "wa_churn": {"file": "../wa_churn.jsonl", "target": "churn", "kind": "binary", "positive": "Yes", "metric": "auc"},
    "diamonds": {"file": "../diamonds.jsonl", "target": "price", "kind": "regression", "metric": "rmse"},
}


def field_type(values):
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "boolean"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "number"
    return "category"


def schema_yaml(rows, target, kind):
    columns = []
    for r in rows:
        for k in r:
            if k not in columns:
                columns.append(k)
    lines = ["model:", "  fields:"]
    for c in columns:
        if c == target:
            t = "number" if kind == "regression" else "category"
            lines.append(f"    {json.dumps(c)}: {{type: {t}, target: true}}")
        else:
            lines.append(f"    {json.dumps(c)}: {field_type([r.get(c) for r in rows])}")
    return "\n".join(lines) + "\n"


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def tree_scores(train, test, task):
    target, kind, positive = task["target"], task["kind"], task.get("positive")
    train, y_train = targets(train, target, "regression" if kind == "regression" else "classification", positive)
    test, y_test = targets(test, target, "regression" if kind == "regression" else "classification", positive)
    feats = Featurizer().fit(train, target)
    x_train, x_test = feats.transform(train), feats.transform(test)
    out = {}
    models = {
        "random_forest": (RandomForestRegressor if kind == "regression" else RandomForestClassifier)(
            n_estimators=300, random_state=0, n_jobs=2),
        "hist_gbdt": (HistGradientBoostingRegressor if kind == "regression" else HistGradientBoostingClassifier)(
            max_iter=500, random_state=0),
    }
    for name, model in models.items():
        start = time.time()
        model.fit(x_train, y_train)
        seconds = time.time() - start
        if kind == "regression":
            value = math.sqrt(mean_squared_error(y_test, model.predict(x_test)))
        elif kind == "binary":
            classes = list(model.classes_)
            p = model.predict_proba(x_test)[:, classes.index(positive)]
            value = roc_auc_score((y_test == positive).astype(int), p)
        else:
            value = float(np.mean(model.predict(x_test) == y_test))
        out[name] = {"value": float(value), "seconds": seconds}
    return out


def json2vec_score(binary, train, test, task, work, extra=()):
    target, kind = task["target"], task["kind"]
    os.makedirs(work, exist_ok=True)
    write_jsonl(os.path.join(work, "train.jsonl"), train)
    write_jsonl(os.path.join(work, "test.jsonl"), test)
    config = os.path.join(work, "config.yaml")
    with open(config, "w") as f:
        f.write(schema_yaml(train + test, target, kind))
    runs = os.path.join(work, "runs")
    common = ["--config", config, "--trainer.default_root_dir=" + runs, "--trainer.enable_progress_bar=false"]
    start = time.time()
    fit = subprocess.run([binary, "fit", *common, *extra, "--data.train=" + os.path.join(work, "train.jsonl")],
                         capture_output=True, text=True)
    seconds = time.time() - start
    if fit.returncode != 0:
        raise RuntimeError(f"json2vec fit failed: {fit.stderr[-2000:]}")
    tested = subprocess.run([binary, "test", *common, "--data.test=" + os.path.join(work, "test.jsonl"),
                             "--ckpt_path", "best"], capture_output=True, text=True)
    if tested.returncode != 0:
        raise RuntimeError(f"json2vec test failed: {tested.stderr[-2000:]}")
    metrics = json.loads(tested.stdout.strip().splitlines()[-1])
    name = {"binary": "auc", "multiclass": "accuracy", "regression": "rmse"}[kind]
    key = f"record.{target}/test:{name}:content"
    if key not in metrics:
        raise RuntimeError(f"json2vec test printed no {key}: {sorted(metrics)}")
    steps = json.loads(fit.stdout.strip().splitlines()[-1]).get("global_step")
    return {"value": float(metrics[key]), "seconds": seconds, "steps": steps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tasks", default="")
    ap.add_argument("--extra", default="", help="json2vec fit overrides to try, space-separated (not defaults!)")
    ap.add_argument("--json2vec", default=os.path.join(ROOT, "build", "json2vec"))
    ap.add_argument("--datasets", default=os.environ.get("J2V_DATASETS", os.path.join(ROOT, "..", "shared", "datasets")))
    args = ap.parse_args()
    bench_dir = os.path.join(args.datasets, "bench")
    if not os.path.exists(os.path.join(bench_dir, "tasks.json")):
        print(f"no bench tables at {bench_dir} (set J2V_DATASETS); skipping", file=sys.stderr)
        return 0
    with open(os.path.join(bench_dir, "tasks.json")) as f:
        tasks = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    tasks.update(SHARED)
    wanted = [t for t in args.tasks.split(",") if t] or list(tasks)
    print("| table | rows | metric | json2vec | random forest | hist GBDT | json2vec wins? | gap to best tree |"
          " json2vec fit s | trees fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    wins = 0
    for name in wanted:
        task = tasks[name]
        path = os.path.join(bench_dir, task["file"])
        if not os.path.exists(path):
            print(f"{name}: {path} is missing; skipped", file=sys.stderr)
            continue
        rows = read_jsonl(path)
        rows = [r for r in rows if r.get(task["target"]) is not None]
        results = {"json2vec": [], "random_forest": [], "hist_gbdt": []}
        with tempfile.TemporaryDirectory(prefix=f"j2v-{name}-") as tmp:
            for repeat in range(args.repeats):
                order = list(range(len(rows)))
                random.Random(repeat).shuffle(order)
                cut = int(len(rows) * 0.8)
                train = [rows[i] for i in order[:cut]]
                test = [rows[i] for i in order[cut:]]
                trees = tree_scores(train, test, task)
                mine = json2vec_score(args.json2vec, train, test, task, os.path.join(tmp, str(repeat)),
                                      args.extra.split())
                for k, v in trees.items():
                    results[k].append(v)
                results["json2vec"].append(mine)
                print(json.dumps({"task": name, "repeat": repeat, "json2vec": mine, **trees}), file=sys.stderr)
        mean = {k: float(np.mean([r["value"] for r in v])) for k, v in results.items()}
        secs = {k: float(np.mean([r["seconds"] for r in v])) for k, v in results.items()}
        lower = task["metric"] == "rmse"
        best_tree = min(mean["random_forest"], mean["hist_gbdt"]) if lower else max(mean["random_forest"],
                                                                                    mean["hist_gbdt"])
        win = mean["json2vec"] < best_tree if lower else mean["json2vec"] > best_tree
        gap = 100 * ((best_tree - mean["json2vec"]) / best_tree if lower else (mean["json2vec"] - best_tree) / best_tree)
        wins += int(win)
        print(f"| {name} | {len(rows)} | {task['metric']} | {mean['json2vec']:.4f} | {mean['random_forest']:.4f} | "
              f"{mean['hist_gbdt']:.4f} | {'yes' if win else 'no'} | {gap:+.2f}% | {secs['json2vec']:.1f} | "
              f"{secs['random_forest'] + secs['hist_gbdt']:.1f} |", flush=True)
    print(f"\njson2vec beats the better tree model on {wins} of {len(wanted)} tables "
          f"({args.repeats} repeated 80/20 splits).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
