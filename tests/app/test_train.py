"""Train page: a pretraining job submitted from the form runs in a worker; history, errors;
both forms start at the config dataclasses' defaults."""

from __future__ import annotations

import time

from gexcore.evaluate.config import QUICK_EVAL
from gexcore.train.config import TrainConfig
from gexcore.workspace import PretrainJob, submit
from gexcore.workspace.runs import insert_run, update_run
from tests.app.conftest import unescaped, wait_for_run

TRAIN = "views/train.py"


def _table(at):
    return at.dataframe[0].value                 # the pretrain history comes first


def test_form_shows_current_cohort_and_the_demo_run(open_page, tiny_id):
    at = open_page(TRAIN, cohort_id=tiny_id)
    assert at.title[0].value == "Train"
    assert "tiny (60 x 40) [simulated]" in unescaped(at.markdown[0].value)
    assert [t.label for t in at.tabs] == ["Pretrain an encoder", "Evaluate heads"]
    runs = _table(at).set_index("run")
    assert runs.loc["transformer (shipped demo model)", "cohort"] == "Simulated pan-cancer (demo)"
    assert any(s.value == "Evaluation runs" for s in at.subheader)
    assert "Start evaluation" in [b.label for b in at.button]       # the evaluate tab's form
    evaluations = at.dataframe[1].value                             # the evaluate history
    assert "cancer-type evaluation (shipped with the demo)" in set(evaluations["run"])


def test_forms_start_at_the_dataclass_defaults(open_page, tiny_id):
    """The Train form once started at 10 epochs while TrainConfig said 20, and the evaluate form
    at 10 pretraining epochs while EvalConfig said 20; both now read the dataclasses."""
    at = open_page(TRAIN, cohort_id=tiny_id)
    job, train = PretrainJob(cohort=tiny_id), TrainConfig()
    assert at.selectbox(key="train_method").value == job.method
    assert at.selectbox(key="train_preset").value == job.preset
    assert at.number_input(key="train_epochs").value == train.epochs
    assert at.number_input(key="train_seed").value == train.seed
    assert at.number_input(key="train_top_genes").value == job.top_genes
    key = "train_evaluate"
    assert at.multiselect(key=f"{key}_methods").value == list(QUICK_EVAL.methods)
    assert at.multiselect(key=f"{key}_fractions").value == list(QUICK_EVAL.fractions)
    assert at.number_input(key=f"{key}_seeds").value == QUICK_EVAL.seeds
    assert at.number_input(key=f"{key}_pretrain_epochs").value == QUICK_EVAL.pretrain_epochs
    assert at.number_input(key=f"{key}_finetune_epochs").value == QUICK_EVAL.finetune_epochs
    assert at.checkbox(key=f"{key}_finetune").value == QUICK_EVAL.finetune


def test_pretrain_from_the_form_runs_to_done(open_page, ws, tiny_id):
    at = open_page(TRAIN, cohort_id=tiny_id)
    at.selectbox(key="train_method").set_value("scarf")
    at.number_input(key="train_epochs").set_value(2)
    at.text_input(key="train_name").set_value("scarf smoke")
    at.button(key="FormSubmitter:pretrain_form-Start pretraining").click().run()
    assert not at.exception, at.exception
    assert "Started **scarf smoke**" in at.success[0].value
    run = next(r for r in ws.runs(kind="pretrain") if r.name == "scarf smoke")
    assert run.params["method"] == "scarf" and run.params["train"]["epochs"] == 2
    assert run.params["cohort"] == tiny_id and run.params["top_genes"] is None

    run = wait_for_run(ws, run.id)
    assert run.status == "done", run.error
    at.run()
    assert not at.exception, at.exception
    row = _table(at).set_index("run").loc["scarf smoke"]
    assert "done" in row["status"] and "best_val_loss" in row["metrics"]
    metrics = {m.label: m.value for m in at.metric}          # details: the newest run
    assert metrics["Epochs"] == "2" and metrics["Embedding size"] == "256"
    assert at.get("plotly_chart"), "the loss curve of the finished run is drawn"


def test_running_job_shows_progress_and_can_be_cancelled(open_page, ws, tiny_id):
    at = open_page(TRAIN, cohort_id=tiny_id)
    run_id = submit(ws, PretrainJob(cohort=tiny_id, method="scarf", name="long one",
                                    train=TrainConfig(epochs=100_000, patience=None,
                                                      batch_size=8)))
    deadline = time.monotonic() + 120
    while ws.run(run_id).progress.get("step", 0) < 20 and time.monotonic() < deadline:
        time.sleep(0.3)                          # the live loss curve needs whole epochs
    at.run()
    assert any("long one" in m.value for m in at.markdown)
    assert at.get("progress"), "a progress bar for the running job"
    assert at.get("plotly_chart"), "the live loss curve"
    at.button(key=f"cancel_{run_id}").click().run()
    assert not at.exception, at.exception
    assert ws.run(run_id).cancel_requested
    run = wait_for_run(ws, run_id, timeout=60)
    assert run.status == "cancelled"
    at.run()
    assert "cancelled" in _table(at).set_index("run").loc["long one", "status"]
    assert any("was cancelled" in w.value for w in at.warning)


def test_failed_run_shows_its_error(open_page, ws, tiny_id):
    with ws.connect() as conn:
        run_id = insert_run(conn, "pretrain", "broken run", {"cohort": tiny_id})
        update_run(conn, run_id, status="failed", started=time.time() - 3,
                   finished=time.time(), error="tiny: too few genes for the transformer")
    at = open_page(TRAIN, cohort_id=tiny_id)
    row = _table(at).set_index("run").loc["broken run"]
    assert "failed" in row["status"] and "too few genes" in row["error"]
    assert any("too few genes" in e.value for e in at.error)      # newest run's details
