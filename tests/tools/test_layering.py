"""Layering (DESIGN.md §2, docs/architecture.md "Layers"): no file includes a header of a layer it may not use.

Every `#include "kvbm/<layer>/..."` (public header) and `#include "<layer>/..."` (private header under src/)
in include/kvbm/<layer>/, src/<layer>/ and python/ is checked against LAYERS below, and so is every kvbm_*
target a layer's library links in src/CMakeLists.txt. A failure lists each violation as file:line.
LAYERS must match the table in docs/architecture.md (checked here too): change both together.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

# (layer, folders, CMake targets, may include) -- lowest layer first; a layer may always include itself.
LAYERS = [
    ("core", ["include/kvbm/core", "src/core"], ["kvbm_core"], []),
    ("layout", ["include/kvbm/layout", "src/layout"], ["kvbm_layout"], ["core"]),
    ("storage", ["include/kvbm/storage", "src/storage"], ["kvbm_storage"], ["core", "layout"]),
    ("pool", ["include/kvbm/pool", "src/pool"], ["kvbm_pool"], ["core", "layout", "storage"]),
    ("transfer", ["include/kvbm/transfer", "src/transfer"], ["kvbm_transfer"], ["core", "layout", "storage"]),
    ("remote", ["include/kvbm/remote", "src/remote"], ["kvbm_remote"], ["core", "layout", "storage", "transfer"]),
    ("metrics", ["include/kvbm/metrics", "src/metrics"], ["kvbm_metrics"], ["core"]),
    ("offload", ["include/kvbm/offload", "src/offload"], ["kvbm_offload"],
     ["core", "layout", "storage", "pool", "transfer", "remote", "metrics"]),
    ("manager", ["include/kvbm/manager", "src/manager"], ["kvbm_manager"],
     ["core", "layout", "storage", "pool", "transfer", "remote", "metrics", "offload"]),
    ("events", ["include/kvbm/events", "src/events"], ["kvbm_events"], ["core", "metrics"]),
    ("peer", ["include/kvbm/peer", "src/peer"], ["kvbm_peer"],
     ["core", "layout", "storage", "pool", "transfer", "remote", "metrics", "offload", "manager", "events"]),
    ("replay", ["include/kvbm/replay", "src/replay"], ["kvbm_replay"],
     ["core", "layout", "storage", "pool", "transfer", "remote", "metrics", "offload", "manager", "events", "peer"]),
    ("router", ["include/kvbm/router", "src/router"], ["kvbm_router"], ["core", "metrics", "events"]),
    ("surfaces", ["src/tools", "python"], ["kvbm", "kvbm_bench_workloads", "kvbm_bench_remote_ucx", "kvbm_python"],
     ["core", "layout", "storage", "pool", "transfer", "remote", "metrics", "offload", "manager", "events", "peer",
      "replay", "router"]),
]

# OFFLOAD_REWRITE_ALLOWED: known violations in files the offload rewrite owns (src/offload,
# include/kvbm/offload, and the manager <-> offload relation), left for that rewrite to remove. Each entry is
# "path:line: message" exactly as reported below. Delete this list (and its use in test_includes_follow_
# the_layers) once it is empty.
OFFLOAD_REWRITE_ALLOWED = set()

ORDER = [name for name, _, _, _ in LAYERS]
RANK = {name: i for i, name in enumerate(ORDER)}
ALLOWED = {name: set(may) | {name} for name, _, _, may in LAYERS}
# The first path component of a header under src/ or include/kvbm/ -> its layer ("tools" is the CLI's).
FOLDER_LAYER = {pathlib.PurePosixPath(f).name: name for name, folders, _, _ in LAYERS for f in folders}
TARGET_LAYER = {t: name for name, _, targets, _ in LAYERS for t in targets}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
SOURCE_SUFFIXES = {".h", ".cc", ".cu"}


def layer_of_file(rel):
    """The layer a file under include/kvbm/, src/ or python/ belongs to (None: not in a layer folder)."""
    for name, folders, _, _ in LAYERS:
        for folder in folders:
            if rel.is_relative_to(folder):
                return name
    return None


def layer_of_include(header):
    """The layer of an included header: kvbm/<layer>/... or a private <layer>/... under src/; else None."""
    parts = pathlib.PurePosixPath(header).parts
    if len(parts) >= 3 and parts[0] == "kvbm":
        return FOLDER_LAYER.get(parts[1], f"unknown folder kvbm/{parts[1]}")
    if len(parts) >= 2 and parts[0] in FOLDER_LAYER and (ROOT / "src" / header).is_file():
        return FOLDER_LAYER[parts[0]]
    return None


def layered_files():
    for top in ("include/kvbm", "src", "python"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in SOURCE_SUFFIXES and path.is_file():
                yield path.relative_to(ROOT)


def explain(layer, used):
    if used not in RANK:
        return used
    if RANK[used] > RANK[layer]:
        return f"{used} is a higher layer than {layer}"
    return f"{layer} may include only {', '.join(sorted(ALLOWED[layer] - {layer}, key=RANK.get)) or 'itself'}"


def include_violations():
    found = []
    for rel in layered_files():
        layer = layer_of_file(pathlib.PurePosixPath(rel.as_posix()))
        if layer is None:
            found.append(f"{rel}: in no layer's folder (add its folder to LAYERS and docs/architecture.md)")
            continue
        for number, line in enumerate((ROOT / rel).read_text(encoding="utf-8").splitlines(), start=1):
            match = INCLUDE.match(line)
            if not match:
                continue
            used = layer_of_include(match.group(1))
            if used is not None and used not in ALLOWED[layer]:
                found.append(f'{rel}:{number}: #include "{match.group(1)}": {explain(layer, used)}')
    return found


def link_violations():
    """kvbm_* targets linked by a layer's library in src/CMakeLists.txt that the layer may not use."""
    path = ROOT / "src" / "CMakeLists.txt"
    text = re.sub(r"#[^\n]*", "", path.read_text(encoding="utf-8"))  # comments may hold parentheses
    found = []
    for call in re.finditer(r"\b(kvbm_library|target_link_libraries)\(\s*(\w+)([^)]*)\)", text):
        target = call.group(2)
        layer = TARGET_LAYER.get(target)
        line = text.count("\n", 0, call.start()) + 1
        if layer is None:
            if call.group(1) == "kvbm_library":
                found.append(f"src/CMakeLists.txt:{line}: library {target} is in no layer (add it to LAYERS)")
            continue
        for dep in re.findall(r"\bkvbm_\w+", call.group(3)):
            used = TARGET_LAYER.get(dep)
            if used is not None and used not in ALLOWED[layer]:
                found.append(f"src/CMakeLists.txt:{line}: {target} links {dep}: {explain(layer, used)}")
    return found


def doc_table():
    """The rows of docs/architecture.md's "Layers" table as (layer, folders, targets, may include)."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("layer", "---"):
            continue
        may = [] if cells[3] == "—" else [m.strip() for m in cells[3].split(",")]
        rows.append((cells[0], re.findall(r"`([^`]+)`", cells[1]), re.findall(r"`([^`]+)`", cells[2]), may))
    return rows


def test_layer_table_is_ordered():
    for name, _, _, may in LAYERS:
        for used in may:
            assert used in RANK, f"{name}: unknown layer {used}"
            assert RANK[used] < RANK[name], f"{name} may include {used}, which is not below it"


def test_layer_table_matches_docs_architecture():
    assert doc_table() == LAYERS


def test_every_layer_folder_exists():
    for name, folders, _, _ in LAYERS:
        for folder in folders:
            assert (ROOT / folder).is_dir(), f"{name}: {folder} does not exist"


def test_includes_follow_the_layers():
    found = include_violations()
    stale = sorted(OFFLOAD_REWRITE_ALLOWED - set(found))
    assert not stale, "allowed violations that no longer occur (remove them):\n" + "\n".join(stale)
    violations = [v for v in found if v not in OFFLOAD_REWRITE_ALLOWED]
    assert not violations, f"{len(violations)} layering violations:\n" + "\n".join(violations)


def test_libraries_link_in_the_layer_direction():
    violations = link_violations()
    assert not violations, "\n".join(violations)


def test_checker_finds_an_upward_include(tmp_path, monkeypatch):
    """The checker itself: a storage header that includes the manager is reported with file:line."""
    for folder in ("include/kvbm/storage", "include/kvbm/manager", "src", "python"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / "include/kvbm/storage/bad.h").write_text(
        '#pragma once\n#include "kvbm/core/types.h"\n#include "kvbm/manager/kv_block_manager.h"\n')
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert include_violations() == [
        'include/kvbm/storage/bad.h:3: #include "kvbm/manager/kv_block_manager.h": '
        "manager is a higher layer than storage"
    ]
