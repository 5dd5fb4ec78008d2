"""Time every op's GPU backends against each other and against the card's measured ceilings.

    python3 benchmarks/gpu/bench_ops.py [--out PATH] [--ops newton_schulz,...] [--budget-s 170]

Run by benchmarks/gpu/run_all.sh on a lent GPU. Each op in ``OPS`` is imported by name
(``kernels.ops.<op>``) and described by an :class:`OpBench`: newton_schulz's is below, every other
op's is ``bench()`` in ``benchmarks/gpu/spec_<op>.py`` (one file per op, like the rest of the repo).
For every (op, shape, dtype) it times the backends triton, cuda and reference — each forced with
``kernels.use_backend`` — and the op's anchors, with ``triton.testing.do_bench`` (CUDA events,
median of the timed repetitions, L2 flushed between them). Columns: the achieved rate — TFLOP/s
for compute-bound ops (standard flop count, see each op) as % of the torch.matmul 8192³ ceiling, or
GB/s for memory-bound ones (bytes the op must move, see each op) as % of the device-to-device copy
bandwidth — both ceilings measured in this same run; speedup vs the reference backend; and
max |out − reference| / max |reference| as a sanity check (tests/ does the real correctness checks).
Every candidate gets fresh inputs from the same seed, so in-place ops (optimizer steps) are compared
on their first call from identical state.

The table is printed last and also written to ``--out``, else ``$PYKERNELS_GPU_RESULTS``, else
``$OUT/gpu_results.txt`` when OUT is set. Without a CUDA device it exits with status 2.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # spec_<op>.py
# After the installed package: only used when `pip install -e .` failed (triton/reference still run).
sys.path.append(str(REPO_ROOT))

from flops import newton_schulz_flops  # noqa: E402
from machine_tag import git_commit, machine_tag  # noqa: E402

BACKENDS = ("triton", "cuda", "reference")
DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32", torch.float64: "fp64"}
CEILING_SIZE = 8192
HBM = "hbm"  # key of the memory-bandwidth ceiling (GB/s) among the ceilings
DEVICE = "cuda"


@dataclass
class OpBench:
    """How to benchmark one op. ``run(inputs)`` calls the public ``kernels.<op>``."""

    name: str
    cases: list[tuple[tuple[int, ...], torch.dtype]]
    make_inputs: Callable[[tuple[int, ...], torch.dtype], tuple]
    run: Callable[..., torch.Tensor]
    # Exactly one of flops (compute-bound: TFLOP/s) and bytes (memory-bound: GB/s).
    flops: Callable[[tuple[int, ...]], float] | None = None
    flop_note: str = ""
    bytes: Callable[[tuple[int, ...], torch.dtype], float] | None = None
    # Small cases of the same meaning: tests/benchmarks/test_gpu_bench_ops.py runs them on CPU so that
    # a plumbing error shows up in CI, not in a GPU machine's few minutes.
    smoke_cases: list[tuple[tuple, torch.dtype]] = field(default_factory=list)
    # name -> factory(inputs) returning a zero-arg callable, or a string saying why it is skipped.
    anchors: dict[str, Callable[[tuple], Callable[[], torch.Tensor] | str]] = field(default_factory=dict)


# ---- newton_schulz ------------------------------------------------------------------------------

NS_STEPS = 5


def _ns_torch_loop(inputs: tuple) -> Callable[[], torch.Tensor]:
    # Keller Jordan's form: one plain-torch NS5 per matrix in a Python loop (the CPU suite's anchor).
    from kernels.reference.newton_schulz import newton_schulz as reference

    (G,) = inputs
    return lambda: torch.stack([reference(X, NS_STEPS) for X in G.unbind(0)])


def _ns_flash_muon(inputs: tuple) -> Callable[[], torch.Tensor] | str:
    try:
        from flash_muon import fast_newtonschulz
    except ImportError as exc:
        return f"skipped: flash-muon is not installed here ({exc.__class__.__name__})"
    (G,) = inputs
    return lambda: torch.stack([fast_newtonschulz(X, NS_STEPS) for X in G.unbind(0)])


def _newton_schulz_bench() -> OpBench:
    import kernels

    shapes = [(8, 1024, 1024), (4, 2048, 2048), (16, 768, 3072)]
    return OpBench(
        name="newton_schulz",
        cases=[(s, d) for d in (torch.bfloat16, torch.float32) for s in shapes],
        make_inputs=lambda shape, dtype: (torch.randn(shape, device=DEVICE, dtype=dtype),),
        run=lambda G: kernels.newton_schulz(G, NS_STEPS),
        flops=lambda shape: newton_schulz_flops(shape, NS_STEPS),
        flop_note=(
            "newton_schulz flops: 5 steps x batch x (2m²n [X Xᵀ, counted in full] + 2m³ [A·A] "
            "+ 2m²n [B·X]), m = min dim. The standard count: symmetric savings are NOT subtracted, "
            "so a kernel that computes only half of X Xᵀ / A·A can exceed the matmul ceiling."
        ),
        anchors={"torch loop": _ns_torch_loop, "flash-muon": _ns_flash_muon},
        smoke_cases=[((2, 32, 48), torch.float32)],
    )


def _from_spec_module(op: str) -> Callable[[], OpBench]:
    def build() -> OpBench:
        return importlib.import_module(f"spec_{op}").bench()

    return build


# Ops benchmarked, by their kernels.ops module name; each maps to the function building its OpBench.
OPS: dict[str, Callable[[], OpBench]] = {
    "newton_schulz": _newton_schulz_bench,
    **{
        op: _from_spec_module(op)
        for op in (
            "adamw_step", "aggregate", "clip_and_noise", "hash_grid_encode", "nufft", "rotate_filter_bank"
        )
    },
}


# ---- measurement --------------------------------------------------------------------------------


@dataclass
class Row:
    op: str
    shape: str
    dtype: str
    backend: str
    ms: float | None = None
    rate: str = ""  # "123.4 TF/s" or "4321 GB/s"
    pct_ceiling: float | None = None
    speedup: float | None = None
    rel_err: float | None = None
    note: str = ""


class Report:
    """Prints as it goes; keeps the lines for the file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def header(self, title: str) -> None:
        self("")
        self(f"===== {title} " + "=" * max(0, 80 - len(title)))


def _do_bench(fn: Callable[[], object], rep: int = 100) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=rep, return_mode="median"))


def measure_ceilings(report: Report) -> dict[torch.dtype | str, float]:
    """TFLOP/s of torch.matmul on 8192³ in bf16, fp32 with TF32 off, and (for information) TF32."""
    n = CEILING_SIZE
    flops = 2.0 * n**3
    ceilings: dict[torch.dtype, float] = {}
    tf32_before = torch.backends.cuda.matmul.allow_tf32
    try:
        for label, dtype, tf32 in (("bf16", torch.bfloat16, False), ("fp32", torch.float32, False),
                                   ("tf32", torch.float32, True)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            a = torch.randn(n, n, device=DEVICE, dtype=dtype)
            b = torch.randn(n, n, device=DEVICE, dtype=dtype)
            ms = _do_bench(lambda a=a, b=b: torch.matmul(a, b), rep=200)
            tflops = flops / (ms * 1e-3) / 1e12
            report(f"torch.matmul {n}x{n}x{n} {label:5s} {ms:8.3f} ms  {tflops:7.1f} TFLOP/s")
            if not tf32:
                ceilings[dtype] = tflops
            del a, b
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32_before
    ceilings[torch.float16] = ceilings[torch.bfloat16]
    # Memory ceiling: a device-to-device copy of 2 GiB (reads + writes 2 GiB each).
    src = torch.empty(2**29, device=DEVICE, dtype=torch.float32).normal_()
    dst = torch.empty_like(src)
    ms = _do_bench(lambda src=src, dst=dst: dst.copy_(src), rep=200)
    ceilings[HBM] = 2 * src.numel() * 4 / (ms * 1e-3) / 1e9
    report(f"copy 2 GiB -> 2 GiB        {ms:8.3f} ms  {ceilings[HBM]:7.0f} GB/s (read + write)")
    del src, dst
    report("(torch matmuls below run with TF32 off; a Triton fp32 kernel using tf32 dots can exceed "
           "the fp32 ceiling — compare it with the tf32 line)")
    return ceilings


def _rel_err(out: torch.Tensor, expected: torch.Tensor) -> float:
    # complex outputs (nufft) compare in complex128: .float() would drop the imaginary part
    wide = torch.complex128 if out.is_complex() or expected.is_complex() else torch.float64
    out, expected = out.to(wide), expected.to(wide)
    return ((out - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item()


def bench_op(
    spec: OpBench, ceilings: dict[torch.dtype | str, float], deadline: float, report: Report
) -> list[Row]:
    import kernels
    from kernels.backend import why_unavailable

    rows: list[Row] = []
    for shape, dtype in spec.cases:
        shape_text, dtype_text = "x".join(map(str, shape)), DTYPE_NAMES.get(dtype, str(dtype))

        def row(backend: str, shape_text=shape_text, dtype_text=dtype_text, **kw) -> Row:
            r = Row(spec.name, shape_text, dtype_text, backend, **kw)
            rows.append(r)
            return r

        if time.monotonic() > deadline:
            row("-", note="skipped: time budget spent")
            report(f"{spec.name} {shape_text} {dtype_text}: skipped, time budget spent")
            continue
        def fresh_inputs(shape=shape, dtype=dtype) -> tuple:
            torch.manual_seed(0)
            return spec.make_inputs(shape, dtype)

        with kernels.use_backend("reference"):
            expected = spec.run(*fresh_inputs())
        torch.cuda.synchronize()

        candidates: list[tuple[str, Callable[[], torch.Tensor] | str]] = []
        for backend in BACKENDS:
            reason = why_unavailable(spec.name, backend, DEVICE)
            if reason is not None:
                candidates.append((backend, f"unavailable: {reason}"))
            else:
                candidates.append((backend, lambda backend=backend: _forced(spec, backend, fresh_inputs())))
        candidates += [
            (f"anchor: {name}", lambda factory=factory: factory(fresh_inputs()))
            for name, factory in spec.anchors.items()
        ]

        case_rows = []
        for name, fn in candidates:
            if isinstance(fn, str):
                case_rows.append(row(name, note=fn))
                continue
            if time.monotonic() > deadline:
                case_rows.append(row(name, note="skipped: time budget spent"))
                continue
            try:
                fn = fn()  # fresh inputs for this candidate
                if isinstance(fn, str):  # an anchor that cannot run here says why
                    case_rows.append(row(name, note=fn))
                    continue
                out = fn()  # first call outside the timing: compiles / autotunes, and is checked
                torch.cuda.synchronize()
                err = _rel_err(out, expected)
                del out
                ms = _do_bench(fn)
            except Exception as exc:  # one broken backend must not hide the others' numbers
                message = f"{exc.__class__.__name__}: {exc}".splitlines()[0][:160]
                case_rows.append(row(name, note=f"error: {message}"))
                continue
            if spec.flops is not None:
                achieved, ceiling = spec.flops(shape) / (ms * 1e-3) / 1e12, ceilings.get(dtype)
                rate = f"{achieved:.1f} TF/s"
            else:
                achieved, ceiling = spec.bytes(shape, dtype) / (ms * 1e-3) / 1e9, ceilings.get(HBM)
                rate = f"{achieved:.0f} GB/s"
            case_rows.append(row(
                name, ms=ms, rate=rate, rel_err=err,
                pct_ceiling=100.0 * achieved / ceiling if ceiling else None,
            ))
        reference_ms = next((r.ms for r in case_rows if r.backend == "reference"), None)
        for r in case_rows:
            if r.ms is not None and reference_ms is not None:
                r.speedup = reference_ms / r.ms
            report(_format_row(r))
        del expected
        torch.cuda.empty_cache()
    return rows


def _forced(spec: OpBench, backend: str, inputs: tuple) -> Callable[[], torch.Tensor]:
    import kernels

    def call() -> torch.Tensor:
        with kernels.use_backend(backend):
            return spec.run(*inputs)

    return call


# (title, width, align) of each table column; the note is last and unpadded.
COLUMNS = (
    ("op", 14, "<"), ("shape", 14, "<"), ("dtype", 5, "<"), ("backend", 20, "<"), ("ms", 9, ">"),
    ("rate", 11, ">"), ("% ceil", 6, ">"), ("vs ref", 7, ">"), ("rel err", 8, ">"), ("note", 0, "<"),
)


def _format_cells(cells: tuple[str, ...]) -> str:
    return "  ".join(format(c, f"{a}{w}") for c, (_, w, a) in zip(cells, COLUMNS, strict=True)).rstrip()


def _format_row(r: Row) -> str:
    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    return _format_cells((
        r.op, r.shape, r.dtype, r.backend, num(r.ms, ".3f"), r.rate or "-",
        num(r.pct_ceiling, ".1f"), "-" if r.speedup is None else f"{r.speedup:.2f}x",
        num(r.rel_err, ".1e"), r.note,
    ))


def _format_row_header() -> str:
    return _format_cells(tuple(title for title, _, _ in COLUMNS))


def _results_path(cli: str | None) -> Path | None:
    if cli:
        return Path(cli)
    if os.environ.get("PYKERNELS_GPU_RESULTS"):
        return Path(os.environ["PYKERNELS_GPU_RESULTS"])
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / "gpu_results.txt"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="also write the report here (default: $PYKERNELS_GPU_RESULTS, "
                        "else $OUT/gpu_results.txt when OUT is set)")
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma-separated subset of {list(OPS)}")
    parser.add_argument("--budget-s", type=float, default=170.0,
                        help="stop starting new measurements after this many seconds (default 170)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.ops.split(",") if name not in OPS]
    if unknown:
        parser.error(f"unknown ops {unknown}; known: {list(OPS)}")
    if not torch.cuda.is_available():
        print("bench_ops.py: no CUDA device is visible to torch; run it on a GPU machine "
              "(benchmarks/gpu/run_all.sh)", file=sys.stderr)
        return 2
    try:
        import triton
    except ImportError as exc:
        print(f"bench_ops.py: triton is required for do_bench ({exc})", file=sys.stderr)
        return 2
    import kernels

    start = time.monotonic()
    deadline = start + args.budget_s
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    report = Report()
    props = torch.cuda.get_device_properties(0)
    now = datetime.datetime.now(datetime.timezone.utc)
    report.header("pykernels GPU benchmark")
    report(f"date (UTC)   {now:%Y-%m-%d %H:%M}")
    report(f"gpu          {props.name}  ({props.multi_processor_count} SMs, "
           f"{props.total_memory / 2**30:.0f} GiB, sm_{props.major}{props.minor})")
    report(f"machine tag  {machine_tag()}")
    report(f"versions     torch {torch.__version__} (CUDA {torch.version.cuda})  "
           f"triton {triton.__version__}  pykernels {kernels.__version__}  commit {git_commit()}")
    report("timing       triton.testing.do_bench, median ms; 'vs ref' = reference ms / this ms")

    report.header("dense matmul ceiling (measured now)")
    ceilings = measure_ceilings(report)

    rows: list[Row] = []
    notes = []
    for name in args.ops.split(","):
        importlib.import_module(f"kernels.ops.{name}")
        spec = OPS[name]()
        if spec.flop_note:
            notes.append(spec.flop_note)
        report.header(f"{name}")
        rows += bench_op(spec, ceilings, deadline, report)

    report.header("results table")
    report(_format_row_header())
    for r in rows:
        report(_format_row(r))
    for note in notes:
        report(note)
    report(f"% ceil: TF/s rows, of the torch.matmul {CEILING_SIZE}³ TFLOP/s measured above for the same "
           "dtype (fp32: TF32 off); GB/s rows, of the 2 GiB copy bandwidth measured above.  "
           "total time {:.0f} s".format(time.monotonic() - start))

    path = _results_path(args.out)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(report.lines) + "\n", encoding="utf-8")
        print(f"\nwritten to {path}; record it as benchmarks/results/{machine_tag()}/"
              f"{now:%Y-%m-%d}_{machine_tag()}.txt (see benchmarks/results/README.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
