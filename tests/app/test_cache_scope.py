"""Where the pages' cached results are computed: a shared cohort with its owner's runs (the
demo) in the owner's workspace, once for every user; anything of one's own in one's own."""

from __future__ import annotations

import pytest

from gexcore.errors import InputError
from gexcore.explore.features import EXPRESSION
from gexcore.workspace import open_workspace
from gexcore.workspace.demo import ensure_demo
from gexcore.workspace.runs import insert_run
from ui.common import cache_scope, cohort_key


def test_the_demo_is_computed_in_the_demo_workspace_for_every_user(tmp_path):
    alice, bob = open_workspace(tmp_path, "alice"), open_workspace(tmp_path, "bob")
    cohort, runs = ensure_demo(alice)
    assert ensure_demo(bob) == (cohort, runs)
    demo_root = str(tmp_path / "demo")
    for ws in (alice, bob):
        root, local, sources = cache_scope(ws, cohort, runs[0], EXPRESSION)
        assert root == demo_root and cohort.endswith(f".{local}")
        assert sources == (runs[0].split(".", 1)[1], EXPRESSION)
    assert cohort_key(alice, cohort) == cohort_key(bob, cohort)


def test_own_items_and_mixed_owners_stay_in_the_users_workspace(tmp_path, tiny_cohort):
    alice = open_workspace(tmp_path, "alice")
    cohort, _ = ensure_demo(alice)
    with alice.connect() as conn:                    # alice's own run on the demo cohort
        own_run = insert_run(conn, "pretrain", "mine", {"cohort": cohort})
    assert cache_scope(alice, cohort, own_run) == (str(alice.root), cohort, (own_run,))
    own = alice.add_cohort(tiny_cohort, "mine")
    assert cache_scope(alice, own, EXPRESSION) == (str(alice.root), own, (EXPRESSION,))


def test_a_cohort_not_shared_has_no_scope_and_no_key(tmp_path, tiny_cohort):
    alice, bob = open_workspace(tmp_path, "alice"), open_workspace(tmp_path, "bob")
    private = alice.add_cohort(tiny_cohort, "private")
    for call in (lambda: cache_scope(bob, f"alice.{private}"),
                 lambda: cohort_key(bob, f"alice.{private}")):
        with pytest.raises(InputError, match="has no cohort"):
            call()
