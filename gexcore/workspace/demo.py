"""Put the demo cohort, the shipped demo encoders and the shipped evaluation report into the
server's reserved `demo` workspace, once for every user, in about a second.

The app opens on them, so a clinician demo shows a map, predictions, label-fraction curves and
survival curves with no clicks. The encoders, embeddings and UMAPs come from
`scripts/build_demo_model.py`; the report from `benchmarks/quality.sh` (sim_classification).
"""

from __future__ import annotations

import fcntl
import json
import shutil
import time
from pathlib import Path

import numpy as np

from gexcore.data.demo import assets_dir, load_demo
from gexcore.tasks.projection import ProjectionParams
from gexcore.workspace.evaluate_job import REPORT_DIR
from gexcore.workspace.runs import insert_run, update_run
from gexcore.workspace.sharing import DEMO_OWNER, qualify
from gexcore.workspace.store import Workspace, embedding_name, map_name

__all__ = ["DEMO_COHORT", "demo_model_dir", "demo_report_dir", "ensure_demo"]

DEMO_COHORT = "simulated_pancancer"
_SOURCE = f"demo:{DEMO_COHORT}"


DEMO_METHODS = ("transformer", "vime")   # registered in this order: the newest (VIME) shows first


def demo_model_dir(method: str = "transformer") -> Path:
    return assets_dir() / "models" / f"demo_{method}"


def ensure_demo(ws: Workspace) -> tuple[str, list[str]]:
    """(cohort id, demo run ids) as `ws` sees them (read-only, qualified ids), adding what is
    missing to the shared demo workspace; models not shipped are skipped."""
    demo = Workspace(ws.root.parent / DEMO_OWNER)
    with (demo.root / ".demo.lock").open("a") as lock:     # one writer when sessions race
        fcntl.flock(lock, fcntl.LOCK_EX)
        cohort_id, run_ids = _ensure_in(demo)
    return qualify(DEMO_OWNER, cohort_id), [qualify(DEMO_OWNER, r) for r in run_ids]


def _ensure_in(ws: Workspace) -> tuple[str, list[str]]:
    cohort_id = next((c.id for c in ws.cohorts() if c.source == _SOURCE), None)
    if cohort_id is None:
        cohort_id = ws.add_cohort(load_demo(DEMO_COHORT), "Simulated pan-cancer (demo)",
                                  source=_SOURCE)
    present = {r.params.get("method"): r.id for r in ws.runs(kind="pretrain", status="done")
               if r.params.get("demo") and r.params.get("cohort") == cohort_id}
    run_ids = []
    for method in DEMO_METHODS:
        model = demo_model_dir(method)
        if method in present:
            run_ids.append(present[method])
        elif (model / "model.safetensors").exists():
            run_ids.append(_add_demo_run(ws, cohort_id, model))
    report = demo_report_dir()
    if (report / "results.json").exists() and not any(
            r.params.get("demo") for r in ws.runs(kind="evaluate")):
        _add_demo_report(ws, cohort_id, report)
    return cohort_id, run_ids


def demo_report_dir() -> Path:
    return assets_dir() / "reports" / f"{DEMO_COHORT}_classification"


def _add_demo_report(ws: Workspace, cohort_id: str, report: Path) -> str:
    """Register the shipped evaluation report as a finished evaluate run."""
    results = json.loads((report / "results.json").read_text())
    with ws.connect() as conn:
        run_id = insert_run(conn, "evaluate", "cancer-type evaluation (shipped with the demo)",
                            {"cohort": cohort_id, "task": results["task"],
                             "label": results["info"].get("label"), "demo": True})
    tmp = ws.run_dir(run_id).with_name(f".{run_id}.demo.tmp")
    shutil.copytree(report, tmp / REPORT_DIR)
    tmp.rename(ws.run_dir(run_id))
    _mark_done(ws, run_id, {"task": results["task"], "demo": True})
    return run_id


def _mark_done(ws: Workspace, run_id: str, metrics: dict) -> None:
    now = time.time()
    with ws.connect() as conn:
        update_run(conn, run_id, status="done", started=now, finished=now, metrics=metrics,
                   progress={"fraction": 1.0, "message": "shipped with GexScope"})


def _add_demo_run(ws: Workspace, cohort_id: str, model: Path) -> str:
    """Register the shipped checkpoint as a finished pretrain run, with its arrays."""
    info = json.loads((model / "demo.json").read_text())
    meta = json.loads((model / "metadata.json").read_text())
    with ws.connect() as conn:
        run_id = insert_run(conn, "pretrain", f"{info['method']} (shipped demo model)",
                            {"cohort": cohort_id, "method": info["method"], "demo": True})
    tmp = ws.run_dir(run_id).with_name(f".{run_id}.demo.tmp")
    shutil.copytree(model, tmp, ignore=shutil.ignore_patterns("*.npy", "demo.json"))
    tmp.rename(ws.run_dir(run_id))
    ws.save_array(run_id, embedding_name(cohort_id), np.load(model / "embedding.npy"))
    ws.save_array(run_id, map_name(cohort_id, ProjectionParams(**info["umap_params"])),
                  np.load(model / "umap.npy"))
    history = meta.get("history", {})
    _mark_done(ws, run_id, {"method": info["method"], "epochs": info.get("epochs"),
                            "best_val_loss": history.get("best_val_loss"), "demo": True})
    return run_id
