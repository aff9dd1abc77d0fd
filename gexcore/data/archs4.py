"""ARCHS4 gene-count files (HDF5): pick samples from the metadata, then read only those.

Layout, as archs4py (MaayanLab) reads it: `data/expression` holds the counts, genes x samples
(archs4py reads sample i as `data/expression[:, i]`); `meta/genes/` has `symbol` (older files:
`gene_symbol`) and `ensembl_gene_id`; `meta/samples/` has one 1-D dataset per field:
`geo_accession` (the sample ids), `series_id`, `singlecellprobability`, `title`,
`characteristics_ch1`, ... Strings are UTF-8 bytes. A samples x genes matrix is accepted too,
told apart by the lengths of the gene and sample metadata (genes x samples when square).

Selection reads the metadata fields it needs in slabs, and the matrix is read block by block at
the selected (sorted) samples, so memory follows the selection, never the file's size.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gexcore import keys
from gexcore.data._h5probe import probe_failure
from gexcore.data._limits import FOOTPRINTS, memory_budget
from gexcore.data._source import ParsedMatrix
from gexcore.errors import InputError

__all__ = ["Archs4Summary", "SampleSelection", "archs4_summary", "is_archs4", "load_archs4",
           "read_archs4"]

EXPRESSION = "data/expression"
SAMPLE_ID, SERIES, SINGLECELL = "geo_accession", "series_id", "singlecellprobability"
_SYMBOL_FIELDS = ("symbol", "gene_symbol")
_ENSEMBL_FIELDS = ("ensembl_gene_id", "ensembl_gene", "ensembl_id")
_FOOTPRINT = FOOTPRINTS["archs4"]
_META_ROWS = 65_536                 # metadata entries decoded at a time while selecting
_BLOCK_BYTES = 32 * 2**20           # matrix bytes per block read
_PROBE_BYTES = 256 * 2**20          # what the damage probe reads of each dataset at most
_REDOWNLOAD = "re-download it from ARCHS4 (https://maayanlab.cloud/archs4/download.html)"
_NARROW = ("select fewer samples (--series, --meta-regex, --max-singlecell-prob, "
           "--max-samples) or give the read more memory")


@dataclass(frozen=True)
class SampleSelection:
    """Which samples of an ARCHS4 file to read; every given filter must hold (AND).

    `series`: GEO series ids (a sample listing several series matches any of them);
    `meta_regex`: `{field: regex}`, case-insensitive `re.search` on that `meta/samples` field
    (`"title,characteristics_ch1"` matches in either field, as archs4py's `meta` searches
    several); `max_singlecell_prob`: keep samples with `singlecellprobability` below it
    (archs4py's `remove_sc` is 0.5); `max_samples`: then a random subset of that many, drawn
    with `seed`. Plain values only, so `asdict` of it crosses a process boundary as JSON.
    """

    series: tuple[str, ...] = ()
    meta_regex: Mapping[str, str] = field(default_factory=dict)
    max_singlecell_prob: float | None = None
    max_samples: int | None = None
    seed: int = 0

    @classmethod
    def coerce(cls, value: SampleSelection | Mapping | None) -> SampleSelection:
        """A selection from itself, its `asdict` form, or None (every sample)."""
        if value is None:
            return cls()
        if isinstance(value, SampleSelection):
            return value
        given = dict(value)
        given["series"] = tuple(given.get("series") or ())
        given["meta_regex"] = dict(given.get("meta_regex") or {})
        return cls(**given)

    @classmethod
    def from_options(cls, *, series=None, meta_regex=None, max_singlecell_prob=None,
                     max_samples=None, seed: int = 0) -> SampleSelection | None:
        """From command-line values (`meta_regex` as "FIELD=REGEX" strings); None when no
        filter is given, so other formats are read as before."""
        if not (series or meta_regex or max_singlecell_prob is not None
                or max_samples is not None):
            return None
        pairs = {}
        for item in meta_regex or ():
            name, sep, regex = item.partition("=")
            if not sep or not name.strip():
                raise InputError(f"--meta-regex {item!r}: write FIELD=REGEX, e.g. "
                                 "title=liver or title,characteristics_ch1=liver.")
            pairs[name.strip()] = regex
        return cls(series=tuple(series or ()), meta_regex=pairs,
                   max_singlecell_prob=max_singlecell_prob, max_samples=max_samples, seed=seed)

    def describe(self) -> str:
        parts = [f"series {', '.join(self.series)}"] if self.series else []
        parts += [f"{f} ~ /{r}/" for f, r in self.meta_regex.items()]
        if self.max_singlecell_prob is not None:
            parts.append(f"{SINGLECELL} < {self.max_singlecell_prob:g}")
        if self.max_samples is not None:
            parts.append(f"at most {self.max_samples:,} samples (seed {self.seed})")
        return "; ".join(parts) or "every sample"


@dataclass(frozen=True)
class Archs4Summary:
    """What an ARCHS4 file holds, read without the matrix."""

    n_samples: int
    n_genes: int
    n_series: int
    orientation: str
    dtype: str
    sample_fields: tuple[str, ...]
    gene_fields: tuple[str, ...]


def is_archs4(path: str | Path) -> bool:
    """True for an HDF5 file with ARCHS4's layout, or a damaged HDF5 file (its reader then
    says so); False for any other file (.h5ad included)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != b"\x89HDF\r\n\x1a\n":
                return False
    except OSError:
        return False
    if _probe(path):
        return True
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return (isinstance(f.get(EXPRESSION), h5py.Dataset)
                    and isinstance(f.get("meta/samples"), h5py.Group)
                    and isinstance(f.get("meta/genes"), h5py.Group))
    except (OSError, KeyError, ValueError, RuntimeError, TypeError):
        return False


def read_archs4(path: str | Path, *, select: SampleSelection | Mapping | None = None,
                max_bytes: int | None = None) -> ParsedMatrix:
    """The selected samples x all genes (float32 counts), gene ids, and sample metadata.

    `max_bytes` is the memory the read may use; a selection that would need more is refused
    before the matrix is read. Every failure is an `InputError` naming the file and the fix.
    """
    path = Path(path)
    selection = SampleSelection.coerce(select)
    budget = memory_budget(max_bytes)
    _refuse_damaged(path)
    with _opened(path) as f:
        layout = _Layout.of(f, path)
        idx = _select(layout, selection, path)
        info_fields = [n for n in layout.sample_fields if n != SAMPLE_ID]
        need = _FOOTPRINT.estimate(n_cells=len(idx) * layout.n_genes,
                                   n_text_cells=len(idx) * len(info_fields))
        if need > budget:
            raise InputError(
                f"{path.name}: reading {len(idx):,} samples x {layout.n_genes:,} genes needs "
                f"about {need / 2**20:,.0f} MiB of memory, more than the "
                f"{budget / 2**20:,.0f} MiB allowed; {_NARROW}.")
        values = _read_samples(layout, idx)
        samples = pd.Index(_strings(layout.samples[SAMPLE_ID], idx), dtype=object)
        _check_unique(samples, path)
        info = pd.DataFrame({n: _column(layout.samples[n], idx) for n in info_fields},
                            index=samples)
        genes = _gene_table(layout)
    notes = [f"ARCHS4: {len(idx):,} of {layout.n_samples:,} samples ({selection.describe()})"]
    return ParsedMatrix(values=values, samples=samples, genes=genes, format="archs4",
                        sample_info=info, notes=notes,
                        count_based=layout.expression.dtype.kind in "iu",
                        orientation=layout.orientation)


def load_archs4(path: str | Path, select: SampleSelection | Mapping | None = None,
                **options):
    """`read_cohort` on an ARCHS4 file: AnnData of the selected samples (obs: their metadata;
    var: symbols and Ensembl ids without versions; duplicated symbols summed, as counts are).
    `options` are `read_cohort`'s (gene_id, duplicates, max_memory, ...)."""
    from gexcore.data.read import read_cohort

    return read_cohort(path, format="archs4", select=select, **options)


def archs4_summary(path: str | Path) -> Archs4Summary:
    """Sample, gene and series counts of an ARCHS4 file; reads metadata only."""
    path = Path(path)
    _refuse_damaged(path)
    with _opened(path) as f:
        layout = _Layout.of(f, path)
        series: set[str] = set()
        if SERIES in layout.sample_fields:
            for slab in _slabs(layout.samples[SERIES]):
                series.update(t for s in slab for t in re.split(r"[,;\s]+", s) if t)
        return Archs4Summary(layout.n_samples, layout.n_genes, len(series), layout.orientation,
                             str(layout.expression.dtype), tuple(layout.sample_fields),
                             tuple(layout.gene_fields))


# ----------------------------------------------------------------------------- layout

@dataclass
class _Layout:
    expression: object                  # the h5py Dataset
    samples: object                     # meta/samples group
    genes: object                       # meta/genes group
    n_samples: int
    n_genes: int
    genes_by_samples: bool
    sample_fields: list[str]            # 1-D fields with one entry per sample
    gene_fields: list[str]

    @property
    def orientation(self) -> str:
        return "genes x samples" if self.genes_by_samples else "samples x genes"

    @classmethod
    def of(cls, f, path: Path) -> _Layout:
        import h5py

        ds, samples, genes = f.get(EXPRESSION), f.get("meta/samples"), f.get("meta/genes")
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 2:
            raise InputError(f"{path.name}: has no 2-D '{EXPRESSION}' matrix, so it is not an "
                             f"ARCHS4 gene-count file; {_REDOWNLOAD}.")
        if ds.dtype.kind not in "biuf":
            raise InputError(f"{path.name}: '{EXPRESSION}' holds {ds.dtype} values, not counts; "
                             f"{_REDOWNLOAD}.")
        if not isinstance(samples, h5py.Group) or not isinstance(samples.get(SAMPLE_ID),
                                                                 h5py.Dataset):
            raise InputError(f"{path.name}: has no 'meta/samples/{SAMPLE_ID}' (the sample ids); "
                             f"{_REDOWNLOAD}.")
        id_field = next((n for n in (*_ENSEMBL_FIELDS, *_SYMBOL_FIELDS)
                         if isinstance(genes, h5py.Group) and n in genes), None)
        if id_field is None:
            raise InputError(f"{path.name}: 'meta/genes' has none of "
                             f"{', '.join(_SYMBOL_FIELDS + _ENSEMBL_FIELDS)} (the gene ids); "
                             f"{_REDOWNLOAD}.")
        n_samples, n_genes = _length(samples[SAMPLE_ID]), _length(genes[id_field])
        if ds.shape not in ((n_genes, n_samples), (n_samples, n_genes)):
            raise InputError(
                f"{path.name}: '{EXPRESSION}' has shape {ds.shape} but the metadata lists "
                f"{n_genes:,} genes and {n_samples:,} samples; the file is truncated or "
                f"damaged: {_REDOWNLOAD}.")
        return cls(ds, samples, genes, n_samples, n_genes, ds.shape == (n_genes, n_samples),
                   _fields(samples, n_samples), _fields(genes, n_genes))


def _length(ds) -> int:
    return int(ds.shape[0]) if ds.ndim == 1 else -1


def _fields(group, n: int) -> list[str]:
    """The datasets of `group` with one entry per row (others are not per-sample data)."""
    import h5py

    return [name for name, obj in group.items()
            if isinstance(obj, h5py.Dataset) and obj.ndim == 1 and obj.shape[0] == n
            and obj.dtype.kind in "biufSOU"]


@functools.lru_cache(maxsize=32)
def _probe_cached(path: str, size: int, mtime_ns: int) -> str:
    # Every dataset up to _PROBE_BYTES: a small file in full; of a multi-GB file the metadata
    # and the matrix's first rows (reading every count would take minutes), so a damaged
    # later chunk of a large file is not probed.
    return probe_failure(path, keys=("data", "meta"), max_dataset_bytes=_PROBE_BYTES)


def _refuse_damaged(path: Path) -> None:
    if failure := _probe(path):
        raise InputError(f"{path.name}: the HDF5 library failed on this file in a test read "
                         f"({failure}), so it is damaged; {_REDOWNLOAD}.")


def _probe(path: Path) -> str:
    """'' when a child process read what this reader will read (once per file version)."""
    try:
        st = os.stat(path)
    except OSError as err:
        raise InputError(f"{path.name}: could not be read ({err.strerror or err}).") from err
    return _probe_cached(str(path), st.st_size, st.st_mtime_ns)


class _opened:
    """`h5py.File` whose HDF5 and decoding failures become one `InputError` naming the file."""

    def __init__(self, path: Path):
        self.path, self.file = path, None

    def __enter__(self):
        import h5py

        try:
            self.file = h5py.File(self.path, "r")
        except OSError as err:
            raise self._error(err) from err
        return self.file

    def __exit__(self, kind, err, tb):
        self.file.close()
        if err is None or isinstance(err, InputError):
            return False
        if isinstance(err, OSError | KeyError | ValueError | TypeError | RuntimeError
                      | IndexError | AttributeError | UnicodeError):
            raise self._error(err) from err
        return False

    def _error(self, err: BaseException) -> InputError:
        detail = str(err).split("\n")[0][:200]
        return InputError(f"{self.path.name}: not a readable ARCHS4 file "
                          f"({type(err).__name__}: {detail}); the file is truncated or "
                          f"damaged: {_REDOWNLOAD}.")


# -------------------------------------------------------------------------- selection

def _select(layout: _Layout, selection: SampleSelection, path: Path) -> np.ndarray:
    """Sorted indices of the samples that pass every filter, then the random subset."""
    keep = np.ones(layout.n_samples, dtype=bool)
    passed = []
    if selection.series:
        tokens = "|".join(re.escape(s.strip()) for s in selection.series)
        pattern = re.compile(rf"(?:^|[,;\s])(?:{tokens})(?:$|[,;\s])", re.IGNORECASE)
        keep &= _match(layout, SERIES, pattern, path)
        passed.append(f"series: {int(keep.sum()):,}")
    for spec, regex in selection.meta_regex.items():
        try:
            pattern = re.compile(regex, re.IGNORECASE)
        except re.error as err:
            raise InputError(f"{path.name}: --meta-regex {spec}={regex!r} is not a valid "
                             f"regular expression ({err}).") from err
        hit = np.zeros(layout.n_samples, dtype=bool)
        for name in (s.strip() for s in spec.split(",")):
            hit |= _match(layout, name, pattern, path)
        keep &= hit
        passed.append(f"{spec}: {int(keep.sum()):,}")
    if selection.max_singlecell_prob is not None:
        keep &= _singlecell(layout, path) < float(selection.max_singlecell_prob)
        passed.append(f"{SINGLECELL}: {int(keep.sum()):,}")
    idx = np.flatnonzero(keep)
    if not len(idx):
        raise InputError(f"{path.name}: no sample of {layout.n_samples:,} passes the selection "
                         f"({selection.describe()}; left after each filter: "
                         f"{', '.join(passed)}); widen it (archs4_summary lists the fields).")
    if selection.max_samples is not None and len(idx) > selection.max_samples:
        if selection.max_samples < 1:
            raise InputError(f"{path.name}: --max-samples must be at least 1.")
        rng = np.random.default_rng(selection.seed)
        idx = np.sort(rng.choice(idx, size=int(selection.max_samples), replace=False))
    return idx


def _match(layout: _Layout, name: str, pattern: re.Pattern, path: Path) -> np.ndarray:
    """Which samples' `name` field `pattern` finds something in, decoded slab by slab."""
    ds = _sample_field(layout, name, path)
    return np.concatenate([np.fromiter((pattern.search(s) is not None for s in slab),
                                       dtype=bool, count=len(slab))
                           for slab in _slabs(ds)] or [np.zeros(0, dtype=bool)])


def _singlecell(layout: _Layout, path: Path) -> np.ndarray:
    """`singlecellprobability` as floats (older files store text); unreadable ones are NaN,
    so no cut keeps them."""
    ds = _sample_field(layout, SINGLECELL, path)
    if ds.dtype.kind in "biuf":
        return ds[()].astype(float)             # 8 bytes a sample: small next to the counts
    return np.concatenate([pd.to_numeric(pd.Series(slab), errors="coerce").to_numpy(float)
                           for slab in _slabs(ds)] or [np.zeros(0)])


def _sample_field(layout: _Layout, name: str, path: Path):
    if name not in layout.sample_fields:
        shown = ", ".join(layout.sample_fields[:12])
        raise InputError(f"{path.name}: has no per-sample field 'meta/samples/{name}' to select "
                         f"on; the fields are {shown}{' ...' if len(layout.sample_fields) > 12 else ''}.")
    return layout.samples[name]


def _slabs(ds):
    """The field's entries as lists of str (numbers as text), `_META_ROWS` at a time."""
    for start in range(0, ds.shape[0], _META_ROWS):
        part = ds[start:start + _META_ROWS]
        yield [_text(v) for v in part]


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# ------------------------------------------------------------------------------ reading

def _read_samples(layout: _Layout, idx: np.ndarray) -> np.ndarray:
    """(len(idx), n_genes) float32, read in blocks of sorted samples."""
    ds, n_genes = layout.expression, layout.n_genes
    out = np.empty((len(idx), n_genes), dtype=np.float32)
    per_block = max(1, _BLOCK_BYTES // max(n_genes * ds.dtype.itemsize, 1))
    for start in range(0, len(idx), per_block):
        block = idx[start:start + per_block]
        contiguous = block[-1] - block[0] + 1 == len(block)
        where = slice(int(block[0]), int(block[-1]) + 1) if contiguous else block
        part = ds[:, where].T if layout.genes_by_samples else ds[where, :]
        with np.errstate(over="ignore", invalid="ignore"):      # inf is refused later
            out[start:start + len(block)] = part
    return out


def _check_unique(samples: pd.Index, path: Path) -> None:
    """Duplicated sample ids would multiply rows when the metadata is joined on them."""
    if samples.has_duplicates:
        dup = samples[samples.duplicated()]
        raise InputError(f"{path.name}: sample id '{dup[0]}' appears "
                         f"{int((samples == dup[0]).sum())} times in meta/samples/{SAMPLE_ID} "
                         f"({len(dup)} duplicated id(s)); {_REDOWNLOAD}, or select samples "
                         "that leave them out.")


def _strings(ds, idx: np.ndarray) -> list[str]:
    return [_text(v) for v in _take(ds, idx)]


def _column(ds, idx: np.ndarray):
    """One metadata field at the selected samples: numbers stay numbers, text becomes str."""
    values = _take(ds, idx)
    return values if values.dtype.kind in "biuf" else [_text(v) for v in values]


def _take(ds, idx: np.ndarray) -> np.ndarray:
    """`ds[idx]` for sorted `idx`, a slab of the file at a time (h5py's point selections
    slow down with thousands of indices; a slab read and a numpy take do not)."""
    parts = []
    for start in range(0, ds.shape[0], _META_ROWS):
        lo, hi = np.searchsorted(idx, [start, start + _META_ROWS])
        if hi > lo:
            parts.append(ds[start:start + _META_ROWS][idx[lo:hi] - start])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=ds.dtype)


def _gene_table(layout: _Layout) -> pd.DataFrame:
    """Gene ids as written (Ensembl where given) with `gene_symbol` / `ensembl_id` columns;
    `harmonize_genes` strips versions and merges duplicated symbols."""
    everyone = np.arange(layout.n_genes)
    symbol = next((n for n in _SYMBOL_FIELDS if n in layout.gene_fields), None)
    ensembl = next((n for n in _ENSEMBL_FIELDS if n in layout.gene_fields), None)
    table = {}
    if symbol:
        table[keys.VAR_SYMBOL] = _strings(layout.genes[symbol], everyone)
    if ensembl:
        table[keys.VAR_ENSEMBL] = _strings(layout.genes[ensembl], everyone)
    for name in layout.gene_fields:
        if name not in (symbol, ensembl):
            table[name] = _column(layout.genes[name], everyone)
    frame = pd.DataFrame(table)
    frame.index = pd.Index(frame[keys.VAR_ENSEMBL if ensembl else keys.VAR_SYMBOL], dtype=object)
    return frame
