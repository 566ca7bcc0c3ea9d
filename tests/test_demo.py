"""The README's first command, end to end: ``equinas demo --quick`` (table, reports, plots)."""

from __future__ import annotations

import csv
import json

from conftest import needs_data
from equinas.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
RUNS = ("fixed-C1", "fixed-C4", "fixed-D4", "equinas_g", "equinas_e", "equinas_d")


@needs_data
def test_quick_demo_writes_a_table_reports_and_plots(tmp_path, capsys) -> None:
    run_dir = tmp_path / "demo"
    assert main(["demo", "--quick", "--run-dir", str(run_dir), "--workers", "2"]) == 0
    table = capsys.readouterr().out
    # EquiNAS_G's decision is printed as it is taken; one line per run says what it found, at what cost
    assert "== equinas_g: relaxations at epoch 0.5: " in table
    found = {line.split(":")[0].strip(): line for line in table.splitlines() if line.endswith(" networks")}
    assert sorted(found) == sorted(RUNS)
    assert found["fixed-D4"].endswith(
        "trained D4 D4 D4 D4, " + found["fixed-D4"].split(", ")[1] + ", cost 1.00 networks"
    )
    assert " found " in found["equinas_g"] and " found " in found["equinas_e"]
    rows = [line for line in table.splitlines() if line.startswith("| rotmnist |")]
    assert sorted(row.split(" | ")[1] for row in rows) == sorted(RUNS)
    assert (run_dir / "summary.md").read_text().count("| rotmnist |") == len(RUNS)
    assert (run_dir / "cost_vs_accuracy.png").read_bytes().startswith(PNG)
    for name in RUNS:
        run = run_dir / name
        result = json.loads((run / "result.json").read_text())
        records = [json.loads(line) for line in (run / "candidates.jsonl").read_text().splitlines()]
        with open(run / "candidates.csv", newline="") as handle:
            assert len(list(csv.DictReader(handle))) == len(records) == result["num_candidates"]
        assert result["total_cost"]["total_flops"] == sum(r["cost"]["total_flops"] for r in records)
        assert "## Candidates" in (run / "report.md").read_text()
        for plot in (run / "plots").glob("*.png"):
            assert plot.read_bytes().startswith(PNG)
    assert (run_dir / "equinas_e" / "plots" / "groups_per_generation.png").exists()
    assert (run_dir / "equinas_d" / "plots" / "alpha_trajectories.png").exists()
    assert (run_dir / "equinas_g" / "plots" / "groups_over_training.png").exists()

    # the full demo does not reuse the quick demo's results
    assert main(["demo", "--quiet", "--run-dir", str(run_dir)]) == 2
    assert "quick demo" in capsys.readouterr().err
