#!/usr/bin/env python3
"""Tree-ensemble baselines for the json2vec accuracy benchmark.

Fits on train+validate (concatenated), scores on test, prints one JSON line per
model:

  {"model":"random_forest","metric":"auc","value":...,"seconds":...}
  {"model":"hist_gradient_boosting","metric":"auc","value":...,"seconds":...}

Preprocessing: a column is categorical if any non-null value in the fit set is
a string (booleans count as numbers); categorical columns are one-hot encoded
(encoder fit on train+validate, unknown categories ignored, null is its own
category); numeric nulls are imputed with the median of the fit set
(train+validate). "seconds" covers preprocessing + fit + predict of that model.

Usage:
  baseline.py --train T --validate V --test S --target NAME \
              --task classification|regression [--positive Yes]
"""
import argparse
import json
import math
import sys
import time

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import mean_squared_error, roc_auc_score
from sklearn.preprocessing import OneHotEncoder

NULL_CATEGORY = "\x00null"


def read_jsonl(path):
    rows = []
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def to_number(v):
    if v is None:
        return math.nan
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def to_category(v):
    if v is None:
        return NULL_CATEGORY
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


class Featurizer:
    def fit(self, rows, target):
        cols = []
        seen = set()
        for r in rows:
            for k in r:
                if k != target and k not in seen:
                    seen.add(k)
                    cols.append(k)
        self.cat_cols, self.num_cols = [], []
        for c in cols:
            is_cat = any(isinstance(r.get(c), (str, dict, list)) for r in rows)
            (self.cat_cols if is_cat else self.num_cols).append(c)
        num = self._numeric(rows)
        with np.errstate(all="ignore"):
            med = np.nanmedian(num, axis=0) if num.shape[1] else np.zeros(0)
        self.medians = np.where(np.isnan(med), 0.0, med)
        self.encoder = None
        if self.cat_cols:
            try:
                self.encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
            except TypeError:  # sklearn < 1.2
                self.encoder = OneHotEncoder(handle_unknown="ignore", sparse=False)
            self.encoder.fit(self._categorical(rows))
        return self

    def _numeric(self, rows):
        return np.array([[to_number(r.get(c)) for c in self.num_cols] for r in rows],
                        dtype=np.float64).reshape(len(rows), len(self.num_cols))

    def _categorical(self, rows):
        return np.array([[to_category(r.get(c)) for c in self.cat_cols] for r in rows],
                        dtype=object).reshape(len(rows), len(self.cat_cols))

    def transform(self, rows):
        num = self._numeric(rows)
        nan = np.isnan(num)
        if nan.any():
            num[nan] = np.take(self.medians, np.nonzero(nan)[1])
        parts = [num]
        if self.encoder is not None:
            parts.append(self.encoder.transform(self._categorical(rows)))
        return np.hstack(parts).astype(np.float32)


def targets(rows, target, task, positive):
    """Returns (kept_rows, y). Rows with a null/missing target are dropped."""
    kept = [r for r in rows if r.get(target) is not None]
    if task == "regression":
        y = np.array([to_number(r[target]) for r in kept], dtype=np.float64)
        ok = ~np.isnan(y)
        return [r for r, o in zip(kept, ok) if o], y[ok]
    return kept, np.array([to_category(r[target]) for r in kept], dtype=object)


def score(task, model, x_test, y_test, positive):
    if task == "regression":
        pred = model.predict(x_test)
        return "rmse", float(math.sqrt(mean_squared_error(y_test, pred)))
    proba = model.predict_proba(x_test)
    classes = list(model.classes_)
    if positive is not None or len(classes) <= 2:
        pos = positive if positive is not None else sorted(classes)[-1]
        yb = (y_test == pos).astype(int)
        p = proba[:, classes.index(pos)] if pos in classes else np.zeros(len(y_test))
        return "auc", float(roc_auc_score(yb, p))
    # Multi-class: macro one-vs-rest AUC over classes present in the fit set.
    mask = np.isin(y_test, classes)
    return "auc", float(roc_auc_score(y_test[mask], proba[mask], multi_class="ovr",
                                      average="macro", labels=classes))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--validate", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--task", required=True, choices=["classification", "regression"])
    ap.add_argument("--positive", default=None,
                    help="positive class label for binary AUC (classification)")
    ap.add_argument("--models", default="random_forest,hist_gradient_boosting",
                    help="comma-separated subset of models to run")
    args = ap.parse_args()

    fit_rows = read_jsonl(args.train) + read_jsonl(args.validate)
    test_rows = read_jsonl(args.test)
    fit_rows, y_fit = targets(fit_rows, args.target, args.task, args.positive)
    test_rows, y_test = targets(test_rows, args.target, args.task, args.positive)
    if not fit_rows or not test_rows:
        sys.exit("baseline.py: no rows with target %r" % args.target)

    cls = args.task == "classification"
    makers = {
        "random_forest": lambda: (RandomForestClassifier if cls else RandomForestRegressor)(
            n_estimators=500, n_jobs=2, random_state=0),
        "hist_gradient_boosting": lambda: (HistGradientBoostingClassifier if cls
                                           else HistGradientBoostingRegressor)(random_state=0),
    }
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if name not in makers:
            sys.exit("baseline.py: unknown model %r" % name)
        t0 = time.perf_counter()
        feat = Featurizer().fit(fit_rows, args.target)
        x_fit = feat.transform(fit_rows)
        x_test = feat.transform(test_rows)
        model = makers[name]()
        model.fit(x_fit, y_fit)
        metric, value = score(args.task, model, x_test, y_test, args.positive)
        seconds = time.perf_counter() - t0
        print(json.dumps({"model": name, "metric": metric, "value": value,
                          "seconds": round(seconds, 3)}, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
