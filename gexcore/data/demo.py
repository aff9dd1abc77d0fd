"""Demo cohorts that work offline: two real public datasets shipped in `assets/` and the simulator."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from anndata import AnnData

from gexcore import keys
from gexcore.errors import InputError

__all__ = ["DEMOS", "DemoCohort", "assets_dir", "list_demos", "load_demo"]


def assets_dir() -> Path:
    """The shipped `assets/` folder (override with $GEX_ASSETS)."""
    return Path(os.environ.get("GEX_ASSETS", Path(__file__).resolve().parents[2] / "assets"))


@dataclass(frozen=True)
class DemoCohort:
    """A named demo cohort; `simulated` cohorts are labelled as such wherever they are shown."""

    name: str
    label: str
    description: str
    simulated: bool
    load: Callable[[], AnnData]


def _load_shipped(folder: str, *, label: str) -> Callable[[], AnnData]:
    def load() -> AnnData:
        from gexcore.data.read import read_cohort

        root = assets_dir() / "data" / folder
        adata = read_cohort(root / "expression.csv.gz", root / "clinical.csv")
        adata.uns[keys.UNS_PROVENANCE].update(
            label=label, attribution=(root / "SOURCE.txt").read_text(encoding="utf-8").strip())
        return adata

    return load


def _load_simulated() -> AnnData:
    from gexcore.data.simulate import simulate_cohort
    from gexcore.data.validate import describe

    adata = simulate_cohort()
    report = describe(adata, source="simulate_cohort(seed=0)", format="simulated")
    adata.uns[keys.UNS_VALIDATION] = report.to_dict()
    return adata


DEMOS: dict[str, DemoCohort] = {
    d.name: d
    for d in (
        DemoCohort("simulated_pancancer", "Simulated pan-cancer cohort (simulated data)",
                   "3,000 simulated tumour and matched-normal samples x 2,000 genes: 12 cancer "
                   "types, co-expression modules, batches, censored survival driven by planted "
                   "modules, missing values. Not real patients.",
                   True, _load_simulated),
        DemoCohort("tissue", "Human tissues (GEO, via dslabs)",
                   "189 real samples x 500 genes, 7 tissues; log-scale microarray.",
                   False, _load_shipped("tissue_gene_expression",
                                        label="Human tissues (GEO, via dslabs)")),
        DemoCohort("gse7390", "GSE7390 breast cancer (TRANSBIG)",
                   "198 real node-negative breast tumours x 76 prognostic probes; time to distant "
                   "metastasis.",
                   False, _load_shipped("gse7390_breast", label="GSE7390 breast cancer (TRANSBIG)")),
    )
}


def list_demos() -> list[DemoCohort]:
    """The demo cohorts, simulated first (it is the app's default)."""
    return list(DEMOS.values())


def load_demo(name: str) -> AnnData:
    """Load a demo cohort by name; see `list_demos()`."""
    if name not in DEMOS:
        raise InputError(f"unknown demo cohort {name!r}; choose one of: {', '.join(DEMOS)}.")
    return DEMOS[name].load()
