"""Shared fixtures: a tiny seeded cohort from the simulator."""

from __future__ import annotations

import pytest
from anndata import AnnData

from gexcore.data.simulate import SimulationConfig, simulate_cohort


@pytest.fixture(autouse=True, scope="session")
def _own_workspace_base(tmp_path_factory):
    """The CLI queues its jobs in GEX_WORKSPACE (else ./workspace): never the developer's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEX_WORKSPACE", str(tmp_path_factory.mktemp("gex_workspace")))
        yield


@pytest.fixture(scope="session")
def _tiny() -> AnnData:
    return simulate_cohort(SimulationConfig(n_samples=60, n_genes=40, n_cancer_types=3,
                                            n_shared_modules=2, module_size=8, n_batches=2,
                                            n_prognostic_modules=1, seed=0))


@pytest.fixture
def tiny_cohort(_tiny) -> AnnData:
    """60 x 40 simulated cohort (3 types, survival, missing values); a fresh copy per test."""
    return _tiny.copy()
