"""pytest-benchmark setup shared by every ``benchmarks/bench_<op>.py``.

- Collects ``bench_*.py`` (pytest's default pattern is only ``test_*.py``).
- Records the machine identity (CPU/GPU name, cores, torch/triton versions) in the saved run's
  ``machine_info`` and, with the git commit, in every benchmark's ``extra_info``.
- After the usual table, prints per group the speedup of each provider over the anchor measured in
  the same run: anchor median / provider median (and GFLOP/s when ``extra_info["gflop"]`` is set).
  A benchmark names its provider with ``benchmark.extra_info["provider"]``; the one called
  ``"anchor"`` is the baseline.
"""

from __future__ import annotations

import fnmatch
import functools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_tag import git_commit, machine_identity  # noqa: E402

ANCHOR = "anchor"
# benchmarks/gpu/bench_ops.py is a script for GPU machines (run_all.sh), not a pytest module.
collect_ignore = ["gpu"]


@functools.cache
def _identity() -> dict[str, object]:
    return machine_identity()


@functools.cache
def _commit() -> str:
    return git_commit()


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    # Only when the configured python_files does not already collect bench_*.py (no duplicates).
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    if any(fnmatch.fnmatch(file_path.name, pattern) for pattern in parent.config.getini("python_files")):
        return None
    # A file named on the command line is already collected by pytest's python plugin.
    if parent.session.isinitpath(file_path):
        return None
    return pytest.Module.from_parent(parent, path=file_path)


def pytest_benchmark_update_machine_info(config, machine_info: dict) -> None:
    # The commit is left out here on purpose: pytest-benchmark warns whenever machine_info differs
    # from the compared run, and a new commit is exactly what bench-check compares. It is saved in
    # the run's commit_info and in each benchmark's extra_info.
    machine_info.update(_identity())


@pytest.fixture(autouse=True)
def _machine_extra_info(request: pytest.FixtureRequest) -> None:
    """Put the machine identity and commit into ``extra_info`` of every benchmark that runs."""
    if "benchmark" not in request.fixturenames:
        return
    benchmark = request.getfixturevalue("benchmark")
    benchmark.extra_info.update(_identity())
    benchmark.extra_info["commit"] = _commit()


def _speedup_lines(benchmarks) -> list[str]:
    groups: dict[str, list] = {}
    for bench in benchmarks:
        if bench and bench.stats is not None:
            groups.setdefault(bench.group or "(no group)", []).append(bench)
    lines = []
    for group, members in groups.items():
        medians = {b.extra_info.get("provider", b.name): b.stats.median for b in members}
        gflop = {b.extra_info.get("provider", b.name): b.extra_info.get("gflop") for b in members}
        anchor = medians.get(ANCHOR)
        lines.append(f"{group}")
        for provider, median in medians.items():
            if provider == ANCHOR:
                note = "(baseline)"
            elif anchor is None:
                note = "no anchor in this run"
            else:
                note = f"{anchor / median:6.2f}x"
            rate = f"{gflop[provider] / median:7.1f} GFLOP/s" if gflop[provider] else ""
            lines.append(f"    {provider:12s} median {1e3 * median:10.2f} ms  {rate}  speedup {note}")
    return lines


@pytest.hookimpl(hookwrapper=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # A wrapper so the ratios print after pytest-benchmark's table, even when its regression check
    # raises (a regression is when they are most wanted).
    outcome = yield
    session = getattr(config, "_benchmarksession", None)
    lines = _speedup_lines(session.benchmarks) if session is not None else []
    if lines:
        terminalreporter.write_sep("-", "speedup vs anchor (anchor median / provider median, same run)")
        for line in lines:
            terminalreporter.write_line(line)
    del outcome  # its exception, if any, propagates after this wrapper returns
