"""--export DIR / sanitycheck.run(export=...): every flagged sample as CSV, while the JSON report keeps its
1000-per-split lists and says when they are cut."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch
from torch.utils.data import TensorDataset
from typer.testing import CliRunner

import sanitycheck
from sanitycheck.engine.models import Finding, Report
from sanitycheck.faces.cli import app

from conftest import ROOT

BUGGY = ROOT / "examples" / "digits" / "buggy" / "sanitycheck.yaml"


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_long_list_is_cut_in_the_report_and_whole_in_the_export():
    f = Finding(check="x", code="XX1", severity="warning", title="t", message="m",
                samples={"train": list(range(2500)), "val": [1, 2]})
    assert len(f.samples["train"]) == 1000 and f.samples["val"] == [1, 2]
    assert f.evidence["truncated"] is True and f.evidence["samples_total"] == {"train": 2500, "val": 2}
    assert len(f.export["XX1"]) == 2502 and f.export["XX1"][-1] == {"split": "val", "index": 2}
    doc = json.loads(f.model_dump_json())
    assert "export" not in doc  # the JSON report stays small
    short = Finding(check="x", code="XX1", severity="info", title="t", message="m", samples={"val": [3]})
    assert "truncated" not in short.evidence


def test_run_export_writes_every_flagged_sample_and_the_drop_list(tmp_path):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(1600, 12)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, 1600))
    train = TensorDataset(x[:1400], y[:1400])
    # 1200 validation samples copy training samples: more than the report lists
    val = TensorDataset(torch.cat([x[:1200], x[1400:]]), torch.cat([y[:1200], y[1400:]]))
    out = tmp_path / "exported"
    report = sanitycheck.run(train=train, val=val, model=lambda: torch.nn.Linear(12, 3), loss=torch.nn.CrossEntropyLoss(),
                             only=["leakage"], export=out)
    sc101 = next(f for f in report.findings if f.code == "SC101")
    assert len(sc101.samples["val"]) == 1000 and sc101.evidence["truncated"] is True
    assert sc101.evidence["samples_total"]["val"] == 1200 and sc101.evidence["pairs_total"] == 1200
    table = rows(out / "leakage" / "SC101.csv")
    assert len(table) == 1200
    assert {"split", "index", "partner_split", "partner", "kind", "distance", "score"} <= set(table[0])
    assert {(int(r["index"]), int(r["partner"])) for r in table} == {(i, i) for i in range(1200)}
    drop = rows(out / "leakage" / "drop.csv")
    dropped = {(r["split"], int(r["index"])): (r["keep_split"], int(r["keep_index"])) for r in drop}
    # every validation copy goes and a training sample of its group stays (its original, unless a chance near pair
    # inside train joined that to a lower index)
    assert all(dropped.get(("val", i), ("", -1))[0] == "train" for i in range(1200))
    assert sum(dropped[("val", i)] == ("train", i) for i in range(1200)) >= 1190
    assert sum(split == "train" for split, _ in dropped) <= 5
    index = rows(out / "index.csv")
    assert {"leakage/SC101.csv", "leakage/drop.csv"} <= {r["file"] for r in index}
    # the JSON report round-trips without the tables
    again = Report.model_validate_json(report.model_dump_json())
    assert next(f for f in again.findings if f.code == "SC101").export.get("drop") is None


def test_cli_export_and_an_unwritable_folder(tmp_path):
    out = tmp_path / "csv"
    result = CliRunner().invoke(app, ["run", str(BUGGY), "--only", "data-integrity", "--quiet", "--export", str(out)])
    assert result.exit_code == 1, result.output
    index = rows(out / "index.csv")
    assert index and all((out / r["file"]).is_file() for r in index)
    nan = next(r for r in index if r["code"] == "SC801")
    assert [int(r["index"]) for r in rows(out / nan["file"])] == [100, 200, 300, 400, 500]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = CliRunner().invoke(app, ["run", str(BUGGY), "--only", "data-integrity", "--export", str(blocker / "sub")])
    assert bad.exit_code == 2 and "--export" in bad.output
