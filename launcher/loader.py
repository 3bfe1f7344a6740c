"""Reading a job spec: path → text → mapping → :class:`~bevlaunch.spec.JobSpec`.

Each layer is usable on its own: :func:`load_spec` (the only function here that touches the file
system), :func:`parse_spec_text` (YAML text → mapping; duplicate keys, several documents and
non-mappings rejected) and :func:`bevlaunch.spec.spec_from_dict` (mapping → validated spec).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from bevlaunch.errors import SpecError
from bevlaunch.labels import sanitize_k8s_name
from bevlaunch.spec import MAX_NAME_LENGTH, JobSpec, dotted, spec_from_dict


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a spec file.

    A spec without ``name`` is named after its file (``my_run.yaml`` → ``my-run``).

    Raises:
        SpecError: unreadable file, invalid YAML or an invalid spec; every line names the file.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"cannot read the spec: {e.strerror or e}", source=source) from e
    except UnicodeDecodeError as e:
        raise SpecError("the spec is not UTF-8 text", source=source) from e
    data = parse_spec_text(text, source=source)
    if "name" not in data:
        # No usable file name (say "__.yaml"): spec_from_dict reports the missing name.
        with contextlib.suppress(ValueError):
            data = {"name": sanitize_k8s_name(Path(path).stem, MAX_NAME_LENGTH), **data}
    return spec_from_dict(data, source=source)


def parse_spec_text(text: str, *, source: str | None = None) -> dict[str, Any]:
    """YAML text → mapping. An empty document is ``{}``.

    Raises:
        SpecError: invalid YAML, a duplicate key (with both line numbers), several documents, or
            a document that is not a mapping.
    """
    import yaml

    try:
        for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
            _reject_duplicate_keys(node, (), source)
        documents = list(yaml.safe_load_all(text))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(f"{where}invalid YAML: {e.problem}", source=source) from e
    except yaml.YAMLError as e:
        raise SpecError(f"invalid YAML: {e}", source=source) from e
    documents = [d for d in documents if d is not None]
    if len(documents) > 1:
        raise SpecError(
            f"expected one YAML document with the job spec, found {len(documents)}", source=source
        )
    data = documents[0] if documents else {}
    if not isinstance(data, dict):
        raise SpecError(
            f"the spec must be a mapping (key: value), got {type(data).__name__}", source=source
        )
    return data


def _reject_duplicate_keys(node: Any, path: tuple[Any, ...], source: str | None) -> None:
    """Walk a composed YAML node tree; a repeated mapping key is an error naming its path."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key is not None and key in seen:
                raise SpecError(
                    f"{dotted((*path, key))}: duplicate key (lines {seen[key]} and {line}); "
                    "keep one",
                    source=source,
                )
            if key is not None:
                seen[key] = line
            _reject_duplicate_keys(value_node, (*path, key if key is not None else "?"), source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _reject_duplicate_keys(item, (*path, index), source)
