"""Plain-text views of a model repository for ``kubetune models list`` / ``models show``.

They return strings (aligned columns, no colour) so the CLI can print them as they are and
tests can compare them; errors are :class:`~kubetune.errors.RepositoryError` from the repo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubetune.repository.diff import VersionDiff
from kubetune.repository.manifest import Manifest
from kubetune.repository.repository import ModelRepository

__all__ = ["render_model_diff", "render_model_show", "render_models_list", "render_promotion"]

_SHORT_HASH = 12


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    ]
    return "\n".join(lines)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in values.items()) or "-"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size = n / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _aliases_by_version(aliases: Mapping[str, int]) -> dict[int, list[str]]:
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    return by_version


def render_models_list(repo: ModelRepository, name: str | None = None) -> str:
    """All models (one line each), or the versions of ``name`` when given."""
    if name is None:
        rows = []
        for model in repo.models():
            versions = repo.versions(model, skip_malformed=True)
            if not versions:  # one broken model must not hide the others
                rows.append([model, "0", "-", "-", "no readable manifest"])
                continue
            latest = versions[-1]
            aliases = repo.aliases(model)
            rows.append(
                [
                    model,
                    str(len(versions)),
                    str(latest.version),
                    ", ".join(f"{a}={v}" for a, v in aliases.items()) or "-",
                    latest.created_at,
                ]
            )
        if not rows:
            return f"No models in {repo.uri}."
        return _table(["NAME", "VERSIONS", "LATEST", "ALIASES", "UPDATED"], rows)

    versions = repo.versions(name)
    if not versions:
        return f"Model {name!r} in {repo.uri} has no complete version yet."
    by_version = _aliases_by_version(repo.aliases(name))
    rows = [
        [
            str(m.version),
            m.created_at,
            ", ".join(by_version.get(m.version, [])) or "-",
            m.trainer or "-",
            m.study or "-",
            _pairs(m.metrics),
        ]
        for m in versions
    ]
    return _table(["VERSION", "CREATED", "ALIASES", "TRAINER", "STUDY", "METRICS"], rows)


def _flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings (e.g. ``extra.provenance.data``) as dotted keys, one line each."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _section(title: str, values: Mapping[str, Any]) -> list[str]:
    if not values:
        return [f"{title}: -"]
    values = _flat(values)
    width = max(len(k) for k in values)
    return [f"{title}:", *(f"  {k.ljust(width)}  {_value(v)}" for k, v in values.items())]


def render_model_show(repo: ModelRepository, name: str, ref: int | str = "latest") -> str:
    """One version's manifest: identity, aliases, provenance, params, metrics and files."""
    manifest: Manifest = repo.get(name, ref)
    aliases = _aliases_by_version(repo.aliases(name)).get(manifest.version, [])
    header = {
        "model": manifest.name,
        "version": manifest.version,
        "aliases": ", ".join(aliases) or "-",
        "created": manifest.created_at,
        "trainer": manifest.trainer or "-",
        "study": manifest.study or "-",
        "data": manifest.data_fingerprint[:_SHORT_HASH] or "-",
        "kubetune": manifest.kubetune_version or "-",
        "repository": repo.uri,
    }
    width = max(len(k) for k in header)
    lines = [f"{k.ljust(width)}  {v}" for k, v in header.items()]
    lines += _section("params", manifest.params)
    lines += _section("metrics", manifest.metrics)
    if manifest.extra:
        lines += _section("extra", manifest.extra)
    lines.append(f"files ({len(manifest.files)}, {_size(manifest.total_size)}):")
    files = _table(
        ["PATH", "SIZE", "SHA256"],
        [[f.path, _size(f.size), f.sha256[:_SHORT_HASH]] for f in manifest.files],
    )
    lines += [f"  {line}" for line in files.splitlines()]
    return "\n".join(lines)


def render_promotion(name: str, alias: str, previous: int | None, version: int) -> str:
    """``iris: production 3 -> 5`` (``none`` when the alias is new)."""
    before = "none" if previous is None else str(previous)
    note = " (unchanged)" if previous == version else ""
    return f"{name}: {alias} {before} -> {version}{note}"


def _delta(a: object, b: object) -> str:
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return f"  ({b - a:+.6g})" if numbers else ""  # type: ignore[operator]


def _changes(title: str, changes: Mapping[str, tuple[object, object]], deltas: bool) -> list[str]:
    if not changes:
        return [f"{title}: same"]
    rows = [
        [
            f"  {key}",
            "-" if a is None else _value(a),
            "->",
            ("-" if b is None else _value(b)) + (_delta(a, b) if deltas else ""),
        ]
        for key, (a, b) in changes.items()
    ]
    return [f"{title}:", *_table(["", "", "", ""], rows).splitlines()[1:]]


def render_model_diff(diff: VersionDiff) -> str:
    """Params, metrics, data fingerprint and files that differ between two versions."""
    a, b = diff.a, diff.b

    def label(ref: str, version: int) -> str:
        return f"v{version}" + ("" if ref == str(version) else f" ({ref})")

    lines = [f"{diff.name}: {label(diff.a_ref, a.version)} -> {label(diff.b_ref, b.version)}"]
    if diff.identical:
        lines.append("identical: same params, metrics, data and files")
    lines += _changes("params", diff.params, deltas=False)
    lines += _changes("metrics", diff.metrics, deltas=True)
    if diff.same_data:
        lines.append(f"data: same ({a.data_fingerprint[:_SHORT_HASH] or '-'})")
    else:
        lines.append(
            f"data: changed ({a.data_fingerprint[:_SHORT_HASH] or '-'}"
            f" -> {b.data_fingerprint[:_SHORT_HASH] or '-'})"
        )
    if a.trainer != b.trainer:
        lines.append(f"trainer: {a.trainer or '-'} -> {b.trainer or '-'}")
    lines.append(
        f"files: {len(diff.files_changed)} changed, {len(diff.files_added)} added,"
        f" {len(diff.files_removed)} removed, {diff.files_same} same"
    )
    for what, paths in (
        ("changed", diff.files_changed),
        ("added", diff.files_added),
        ("removed", diff.files_removed),
    ):
        lines += [f"  {what.ljust(7)}  {path}" for path in paths]
    return "\n".join(lines)
