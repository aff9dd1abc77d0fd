"""Isolation and read-only sharing between workspaces: nothing of alice's reaches bob by any id
unless she shares it; shared items are read-only; revoking removes them; the demo is stored
once for everyone."""

from __future__ import annotations

import numpy as np
import pytest

from gexcore.errors import InputError
from gexcore.workspace import audit, open_workspace
from gexcore.workspace.demo import ensure_demo
from gexcore.workspace.runs import insert_run, update_run
from gexcore.workspace.sharing import LAB, qualify


@pytest.fixture
def two(tmp_path, tiny_cohort):
    alice, bob = open_workspace(tmp_path, "alice"), open_workspace(tmp_path, "bob")
    cohort = alice.add_cohort(tiny_cohort, "alice's tumours")
    with alice.connect() as conn:
        run = insert_run(conn, "pretrain", "alice's encoder", {"cohort": cohort,
                                                               "method": "vime"})
        update_run(conn, run, status="done")
    alice.run_dir(run).mkdir(parents=True)
    (alice.run_dir(run) / "config.json").write_text("{}")
    alice.save_array(run, f"embedding-{cohort}", np.ones((tiny_cohort.n_obs, 4), np.float32))
    return alice, bob, cohort, run


def _every_read(ws, cohort: str, run: str) -> list:
    """Each read a page or job can make of a cohort and a run id."""
    return [lambda: ws.cohort(cohort), lambda: ws.load_cohort(cohort),
            lambda: ws.cohort_path(cohort), lambda: ws.run(run), lambda: ws.run_dir(run),
            lambda: ws.embedding(cohort, run)]


def test_nothing_of_alice_reaches_bob_by_any_id(two):
    alice, bob, cohort, run = two
    assert bob.cohorts() == [] and bob.runs() == []
    for read in _every_read(bob, qualify("alice", cohort), qualify("alice", run))[:5]:
        with pytest.raises(InputError, match="has no"):
            read()
    for read in (lambda: bob.cohort(cohort), lambda: bob.load_cohort(cohort),
                 lambda: bob.run(run)):                  # alice's bare ids mean nothing here
        with pytest.raises(InputError, match="has no"):
            read()
    assert not bob.cohort_path(cohort).exists() and not bob.run_dir(run).exists()
    assert bob.embedding(qualify("alice", cohort), run) is None
    with pytest.raises(InputError, match="has no"):
        bob.embedding(qualify("alice", cohort), qualify("alice", run))
    for bad in ("../alice", "alice/x", "..", "demo"):
        with pytest.raises(InputError):
            open_workspace(alice.root.parent, bad)


def test_a_shared_cohort_and_run_are_readable_never_writable(two):
    alice, bob, cohort, run = two
    alice.share("cohort", cohort, ["bob"])
    alice.share("run", run, ["bob"])
    q_cohort, q_run = qualify("alice", cohort), qualify("alice", run)
    (info,) = bob.cohorts()
    assert info.id == q_cohort and info.owner == "alice" and "shared by alice" in info.label
    assert bob.load_cohort(q_cohort).n_obs == alice.load_cohort(cohort).n_obs
    (shared_run,) = bob.runs(kind="pretrain", status="done")
    assert shared_run.id == q_run and shared_run.params["cohort"] == q_cohort
    assert bob.run_dir(q_run) == alice.run_dir(run)
    np.testing.assert_array_equal(bob.embedding(q_cohort, q_run), alice.embedding(cohort, run))
    with pytest.raises(InputError, match="read-only by alice"):
        bob.delete_cohort(q_cohort)
    with pytest.raises(InputError, match="read-only by alice"):
        bob.delete_run(q_run)
    with pytest.raises(InputError, match="read-only by alice"):
        bob.share("cohort", q_cohort, ["carol"])
    bob.save_array(q_run, "map-x", np.zeros(3))             # bob's own cache, not alice's
    assert alice.load_array(run, "map-x") is None
    assert alice.load_cohort(cohort).n_obs > 0                # alice's data untouched


def test_revoking_removes_the_item_and_lab_shares_reach_everyone(two, tmp_path):
    alice, bob, cohort, _ = two
    carol = open_workspace(tmp_path, "carol")
    alice.share("cohort", cohort, [LAB])
    assert [c.owner for c in bob.cohorts()] == ["alice"] == [c.owner for c in carol.cohorts()]
    assert alice.shares.granted("alice", "cohort", cohort) == [LAB]
    assert alice.unshare("cohort", cohort) == 1
    assert bob.cohorts() == [] and carol.cohorts() == []
    with pytest.raises(InputError, match="has no"):
        bob.load_cohort(qualify("alice", cohort))


def test_sharing_checks_what_is_shared(two):
    alice, _, cohort, run = two
    with pytest.raises(InputError, match="at least one user"):
        alice.share("cohort", cohort, [])
    with pytest.raises(InputError, match="has no cohort"):
        alice.share("cohort", "20250101-000000-abcdef", ["bob"])
    with pytest.raises(InputError, match="not allowed"):
        alice.share("cohort", cohort, ["../bob"])
    with alice.connect() as conn:
        running = insert_run(conn, "pretrain", "running", {"cohort": cohort})
    with pytest.raises(InputError, match="not finished"):
        alice.share("run", running, ["bob"])


def test_the_demo_is_stored_once_and_read_only_for_everyone(tmp_path):
    alice, bob = open_workspace(tmp_path, "alice"), open_workspace(tmp_path, "bob")
    a_cohort, a_runs = ensure_demo(alice)
    b_cohort, b_runs = ensure_demo(bob)
    assert (a_cohort, a_runs) == (b_cohort, b_runs) and a_cohort.startswith("demo.")
    assert len(list(tmp_path.glob("*/cohorts/*.h5ad"))) == 1     # one copy on disk
    assert alice.load_cohort(a_cohort).n_obs == 3000
    assert {r.id for r in bob.runs(kind="pretrain")} >= set(b_runs)
    assert all(bob.embedding(b_cohort, r) is not None for r in b_runs)
    with pytest.raises(InputError, match="read-only"):
        bob.delete_cohort(b_cohort)


def test_shares_revocations_and_deletions_are_audited(tmp_path, tiny_cohort):
    alice = open_workspace(tmp_path, "alice")
    cohort = alice.add_cohort(tiny_cohort, "mine")
    alice.share("cohort", cohort, ["bob", LAB])
    alice.unshare("cohort", cohort, "bob")
    alice.unshare("cohort", cohort, "nobody")                  # nothing removed: no event
    alice.delete_cohort(cohort)
    events = [(e["event"], e["user"], e.get("item") or e.get("cohort"), e.get("to"))
              for e in audit.read(tmp_path)]
    assert events == [("share", "alice", cohort, ["bob", LAB]),
                      ("unshare", "alice", cohort, "bob"),
                      ("cohort_deleted", "alice", cohort, None)]
