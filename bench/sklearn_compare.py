#!/usr/bin/env python3
"""Outrider's isolation forest against scikit-learn's on the same data.

Both train on the same rows with the same number of trees and subsample size, and score
the same rows. Outrider runs as a Rust program (models/examples/iforest_bench.rs) that
writes its scores and timings; this script times scikit-learn itself and computes the
AUCs of both from the scores, so the two are judged by one implementation of the metrics.

Data sets:
  traffic  Outrider's benchmark traffic as a feature table (outrider features), label =
           the row belongs to an attack campaign; a seeded 60/40 train/test split.
  wbc      scikit-learn's bundled breast-cancer set, ODDS "wbc" recipe: all 357 benign
           rows plus 21 malignant ones drawn with the seed; trained and scored on all 378
           rows, as ODDS does.

Throughput per core is rows per CPU-second of the scoring process (scikit-learn with
n_jobs=1) or thread (Outrider, single-threaded), so a shared machine distorts it less;
"all" figures are wall-clock rows per second of the best call with every core
(scikit-learn n_jobs=-1, Outrider's rayon pool). AUCs are means over several forest
seeds (the spread between seeds is larger than most differences between the models).
Training time is the best wall-clock time of one fit on one thread (scikit-learn
n_jobs=1), preprocessing included.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score

NON_FEATURES = {"key", "window_start", "window_end", "campaign", "attack"}


def traffic(path, seed):
    df = pd.read_parquet(path)
    features = [c for c in df.columns if c not in NON_FEATURES]
    x = df[features].to_numpy(dtype=np.float32)
    y = df["attack"].notna().to_numpy()
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(len(x) * 0.6)
    train, test = order[:cut], order[cut:]
    return features, x[train], x[test], y[test]


def wbc(seed):
    data = load_breast_cancer()
    x = data.data.astype(np.float32)
    malignant = np.flatnonzero(data.target == 0)  # target 0 = malignant
    benign = np.flatnonzero(data.target == 1)
    chosen = np.random.default_rng(seed).choice(malignant, size=21, replace=False)
    rows = np.concatenate([benign, np.sort(chosen)])
    y = np.isin(rows, chosen)
    names = [n.replace(" ", "_") for n in data.feature_names]
    return names, x[rows], x[rows], y


def write_csv(path, names, x):
    # %.9g round-trips every float32 exactly, so both sides see the same numbers.
    np.savetxt(path, x, delimiter=",", fmt="%.9g", header=",".join(names), comments="")


def timed_calls(min_seconds, fn):
    """Repeats fn for min_seconds (at least twice): best wall time, mean CPU time per call."""
    start, cpu0, calls, best = time.perf_counter(), time.process_time(), 0, float("inf")
    result = None
    while calls < 2 or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
        calls += 1
    return result, best, (time.process_time() - cpu0) / calls


def log1p(x):
    """Outrider's default transform, ln(1 + max(x, 0))."""
    return np.log1p(np.maximum(x, 0)).astype(np.float32)


def run_sklearn(x_train, x_test, args, seed, n_jobs, min_seconds):
    model = IsolationForest(
        n_estimators=args.trees, max_samples=args.samples, random_state=seed, n_jobs=n_jobs
    )
    _, fit_wall, _ = timed_calls(min(min_seconds, 1.0), lambda: model.fit(x_train))
    scores, wall, cpu = timed_calls(min_seconds, lambda: -model.score_samples(x_test))
    return scores, fit_wall, wall, cpu


def run_outrider(bench, train_csv, test_csv, workdir, flags, args, seed, min_seconds):
    scores_path = os.path.join(workdir, "scores.txt")
    cmd = [
        bench, "--train", train_csv, "--test", test_csv, "--scores", scores_path,
        "--trees", str(args.trees), "--samples", str(args.samples), "--seed", str(seed),
        "--min-seconds", str(min_seconds), *flags,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    return np.loadtxt(scores_path, dtype=np.float64, ndmin=1), report


# (name, flags) of the Rust side: the default forest (range check on), the plain
# algorithm scikit-learn implements, Outrider's model preprocessing (log1p; timings
# include it), and extended forests: on raw features, and scaled (fully extended, and
# with 4-feature hyperplanes, extension level 3).
OUTRIDER_VARIANTS = [
    ("outrider IF", []),
    ("outrider IF, no range check", ["--no-range-check"]),
    ("outrider IF + log1p", ["--transform", "log1p"]),
    ("outrider EIF", ["--algorithm", "extended"]),
    ("outrider EIF + log1p + robust", ["--algorithm", "extended", "--transform", "log1p", "--scaling", "robust"]),
    ("outrider EIF-3 + log1p + robust", ["--algorithm", "extended", "--extension-level", "3",
                                         "--transform", "log1p", "--scaling", "robust"]),
]


def metrics(y, runs):
    """Mean and spread of ROC-AUC and PR-AUC over the seeds' score vectors."""
    roc = [roc_auc_score(y, s) for s in runs]
    pr = [average_precision_score(y, s) for s in runs]
    return {"roc_auc": float(np.mean(roc)), "roc_auc_sd": float(np.std(roc)),
            "pr_auc": float(np.mean(pr)), "pr_auc_sd": float(np.std(pr))}


def compare(dataset, names, x_train, x_test, y_test, args, workdir):
    train_csv = os.path.join(workdir, f"{dataset}-train.csv")
    test_csv = os.path.join(workdir, f"{dataset}-test.csv")
    write_csv(train_csv, names, x_train)
    write_csv(test_csv, names, x_test)
    n = len(x_test)
    seeds = [args.seed + i for i in range(args.seeds)]
    rows = []

    for name, transform in [("sklearn IsolationForest", None), ("sklearn IF + log1p", log1p)]:
        xtr, xte = (x_train, x_test) if transform is None else (transform(x_train), transform(x_test))
        runs, timing = [], None
        for i, seed in enumerate(seeds):
            # Time the first seed only (scoring n_jobs=1 per core, n_jobs=-1 for all cores).
            secs = args.min_seconds if i == 0 else 0
            scores, fit_wall, _, cpu = run_sklearn(xtr, xte, args, seed, 1, secs)
            runs.append(scores)
            if i == 0:
                _, _, wall_all, _ = run_sklearn(xtr, xte, args, seed, -1, secs)
                timing = (fit_wall, n / cpu, n / wall_all)
        rows.append({"dataset": dataset, "model": name, **metrics(y_test, runs),
                     "train_s": timing[0], "rows_per_s_core": timing[1], "rows_per_s_all": timing[2]})
    for name, flags in OUTRIDER_VARIANTS:
        runs, timing = [], None
        for i, seed in enumerate(seeds):
            secs = args.min_seconds if i == 0 else 0
            scores, r = run_outrider(args.bench, train_csv, test_csv, workdir, flags, args, seed, secs)
            runs.append(scores)
            if i == 0:
                timing = (r["train_single_thread_s"],
                          r["score_rows_per_s_per_core"], r["score_rows_per_s_multi_thread_wall"])
        rows.append({"dataset": dataset, "model": name, **metrics(y_test, runs),
                     "train_s": timing[0], "rows_per_s_core": timing[1], "rows_per_s_all": timing[2]})
    base = rows[0]
    for row in rows:
        row["speedup_core"] = row["rows_per_s_core"] / base["rows_per_s_core"]
        row["speedup_all"] = row["rows_per_s_all"] / base["rows_per_s_all"]
        row["train_speedup"] = base["train_s"] / row["train_s"] if row["train_s"] else float("nan")
    return rows, {"train_rows": len(x_train), "test_rows": n, "features": len(names),
                  "anomalies_in_test": int(y_test.sum()), "seeds": seeds}


def print_table(rows):
    head = (f"{'dataset':8} {'model':32} {'ROC-AUC':>15} {'PR-AUC':>15} {'train s':>8} "
            f"{'rows/s/core':>12} {'x core':>7} {'rows/s all':>11} {'x all':>7} {'x train':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        train = f"{r['train_s']:8.4f}"
        xtrain = f"{r['train_speedup']:7.1f}x"
        print(f"{r['dataset']:8} {r['model']:32} {r['roc_auc']:7.4f}+-{r['roc_auc_sd']:.4f} "
              f"{r['pr_auc']:7.4f}+-{r['pr_auc_sd']:.4f} {train} "
              f"{r['rows_per_s_core']:12,.0f} {r['speedup_core']:6.1f}x "
              f"{r['rows_per_s_all']:11,.0f} {r['speedup_all']:6.1f}x {xtrain}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", required=True, help="the built iforest_bench example")
    p.add_argument("--features", help="Parquet feature table from `outrider features` (traffic set)")
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--seed", type=int, default=42, help="first seed (data split and forests)")
    p.add_argument("--seeds", type=int, default=5, help="forests per model; AUCs are their mean")
    p.add_argument("--min-seconds", type=float, default=2.0, help="time spent per measurement")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()

    all_rows, sets = [], {}
    with tempfile.TemporaryDirectory() as workdir:
        if args.features:
            r, info = compare("traffic", *traffic(args.features, args.seed), args, workdir)
            all_rows += r
            sets["traffic"] = info
        r, info = compare("wbc", *wbc(args.seed), args, workdir)
        all_rows += r
        sets["wbc"] = info
    import sklearn
    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.trees} trees x "
          f"{args.samples} samples; AUCs: mean+-sd over {args.seeds} seeds from {args.seed}")
    for name, info in sets.items():
        print(f"{name}: {info}")
    print_table(all_rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sets": sets, "rows": all_rows}, f, indent=2)


if __name__ == "__main__":
    main()
