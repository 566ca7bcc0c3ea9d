"""Accuracy parity of bf16 autocast and float32 training: the verdict over a compare_methods run.

The runs (the cpu-medium budget, fixed C4 and D4 on RotMNIST, 3 seeds, both precisions
interleaved in one process, one thread):

    python benchmarks/compare_methods.py --task rotmnist --widths 4,4,8,8 --pools-after 0,1 \\
        --hidden none --lr 0.002 --train-size 4000 --val-size 1000 --test-size 2000 --epochs 12 \\
        --eval-every 100 --device cpu --threads 1 --workers 1 --seeds 0 1 2 \\
        --methods fixed@f32:C4 fixed@bf16:C4 fixed@f32:D4 fixed@bf16:D4 \\
        --settings '{"fixed@bf16": {"train": {"amp": true}}}' --out benchmarks/results/amp_parity
    python benchmarks/amp_parity.py benchmarks/results/amp_parity

Per group: test accuracy of every seed in both precisions, means, sample standard deviations,
the pooled standard deviation ``sqrt((s_f32^2 + s_bf16^2) / 2)`` and whether the means differ by
at most one pooled standard deviation; training seconds per network (the machine is shared:
indicative only). Adds ``parity`` to ``summary.json`` and a section to ``summary.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

PRECISIONS = ("f32", "bf16")


def run_result(path: Path) -> dict:
    result = json.loads((path / "result.json").read_text())
    search = json.loads((path / "search.json").read_text())
    best = result["best"]
    return {
        "seed": search["seed"],
        "test_acc": 100 * best["test_acc"],
        "val_acc": 100 * best["val_acc"],
        "train_seconds": best["cost"]["train_seconds"],
        "autocast": best["extra"].get("autocast"),
    }


def parity(out: Path, groups: list[str]) -> dict:
    """``{group: {precision: per-seed results and stats, pooled_std, difference, within}}``."""
    verdict = {}
    for group in groups:
        entry: dict = {}
        for precision in PRECISIONS:
            paths = [p for p in out.glob(f"fixed-{precision}-{group}-seed*") if (p / "result.json").exists()]
            runs = sorted((run_result(p) for p in paths), key=lambda r: r["seed"])
            tests = [r["test_acc"] for r in runs]
            entry[precision] = {
                "runs": runs,
                "test_acc_mean": statistics.fmean(tests),
                "test_acc_std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
                "train_seconds_mean": statistics.fmean(r["train_seconds"] for r in runs),
            }
        low, full = entry["bf16"], entry["f32"]
        pooled = math.sqrt((low["test_acc_std"] ** 2 + full["test_acc_std"] ** 2) / 2)
        difference = low["test_acc_mean"] - full["test_acc_mean"]
        entry.update(pooled_std=pooled, difference=difference, within_pooled_std=abs(difference) <= pooled)
        verdict[group] = entry
    return verdict


def markdown(verdict: dict) -> str:
    lines = [
        "## bf16 autocast vs float32 (test accuracy %, mean ± std over seeds)",
        "",
        "| group | float32 | bf16 | bf16 - float32 | pooled std | within | train s f32 / bf16 |",
        "|---|---|---|---|---|---|---|",
    ]
    for group, e in verdict.items():
        f32, bf16 = e["f32"], e["bf16"]
        seconds = f"{f32['train_seconds_mean']:.0f} / {bf16['train_seconds_mean']:.0f}"
        lines.append(
            f"| {group} | {f32['test_acc_mean']:.2f} ± {f32['test_acc_std']:.2f} "
            f"| {bf16['test_acc_mean']:.2f} ± {bf16['test_acc_std']:.2f} | {e['difference']:+.2f} "
            f"| {e['pooled_std']:.2f} | {'yes' if e['within_pooled_std'] else 'no'} | {seconds} |"
        )
    lines.append("")
    lines.append(
        "Per seed (test %, float32 / bf16): "
        + "; ".join(
            f"{group} seed {a['seed']}: {a['test_acc']:.2f} / {b['test_acc']:.2f}"
            for group, e in verdict.items()
            for a, b in zip(e["f32"]["runs"], e["bf16"]["runs"], strict=True)
        )
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="the compare_methods output folder")
    parser.add_argument("--groups", nargs="+", default=["C4", "D4"])
    args = parser.parse_args()
    verdict = parity(args.out, args.groups)
    summary_json = args.out / "summary.json"
    summary = json.loads(summary_json.read_text()) if summary_json.exists() else {}
    summary["parity"] = verdict
    summary_json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    summary_md = args.out / "summary.md"
    text = summary_md.read_text() if summary_md.exists() else ""
    text = text.split("\n## bf16 autocast vs float32")[0].rstrip() + "\n\n" + markdown(verdict)
    summary_md.write_text(text)
    print(markdown(verdict))


if __name__ == "__main__":
    main()
