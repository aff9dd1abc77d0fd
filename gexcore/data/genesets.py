"""Gene sets from GMT files (MSigDB's format): one set per line, `name<TAB>description<TAB>genes`.

The text is parsed, never executed or unpickled; a file over `MAX_GMT_BYTES`, NUL bytes, a line
without genes, a name over `MAX_LABEL_CHARS` or a repeated set name (a set never silently
changes) is refused with its line number.
"""

from __future__ import annotations

from gexcore.data._limits import MAX_LABEL_CHARS
from gexcore.errors import InputError

__all__ = ["MAX_GMT_BYTES", "MAX_SETS", "parse_gmt"]

MAX_GMT_BYTES = 20 * 2**20       # MSigDB's full collection is ~15 MB
MAX_SETS = 50_000
MAX_SET_GENES = 5_000            # larger "sets" are whole genomes, not pathways


def parse_gmt(data: bytes | str, *, source: str = "gene set file") -> dict[str, list[str]]:
    """Set name -> its genes (in file order, duplicates dropped) from GMT text.

    Blank lines and lines starting with `#` are skipped. InputError (naming `source` and the
    line) for anything else that is not a set: a binary or oversized file, a line with a name
    but no genes, a repeated set name, a set of more than 5,000 genes.
    """
    text = _decode(data, source)
    sets: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, genes = _parse_line(line, number, source)
        if name in sets:
            raise InputError(f"{source}, line {number}: gene set {name!r} appears twice.")
        sets[name] = genes
        if len(sets) > MAX_SETS:
            raise InputError(f"{source}: more than {MAX_SETS:,} gene sets; split the file.")
    if not sets:
        raise InputError(f"{source}: no gene sets found; a GMT line is the set's name, a tab, "
                         "a description, a tab, then its genes separated by tabs.")
    return sets


def _decode(data: bytes | str, source: str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_GMT_BYTES:
        raise InputError(f"{source} is {len(raw) / 2**20:.1f} MB; gene set files over "
                         f"{MAX_GMT_BYTES // 2**20} MB are refused.")
    if b"\x00" in raw:
        raise InputError(f"{source} holds NUL bytes; it is not a text GMT file.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{source} is not UTF-8 text (byte {err.start}); save it as UTF-8 "
                         "GMT.") from None


def _parse_line(line: str, number: int, source: str) -> tuple[str, list[str]]:
    fields = [f.strip() for f in line.split("\t")]
    name, genes = fields[0], [g for g in fields[2:] if g]
    where = f"{source}, line {number}"
    if not name:
        raise InputError(f"{where}: the gene set has no name (the first tab-separated field).")
    if len(fields) < 3 or not genes:
        raise InputError(f"{where}: set {name[:80]!r} lists no genes; expected name, tab, "
                         "description, tab, genes separated by tabs.")
    if max(len(name), *map(len, genes)) > MAX_LABEL_CHARS:
        raise InputError(f"{where}: a name or gene is over {MAX_LABEL_CHARS:,} characters.")
    unique = list(dict.fromkeys(genes))
    if len(unique) > MAX_SET_GENES:
        raise InputError(f"{where}: set {name[:80]!r} has {len(unique):,} genes; at most "
                         f"{MAX_SET_GENES:,} are scored.")
    return name, unique
