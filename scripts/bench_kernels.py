"""Benchmark paperlab.kernels: every impl of linear_attention and delta_rule against causal softmax.

  python scripts/bench_kernels.py [--device auto|cpu|gpu|tpu] [--seq-lens 512,1024,...,16384]
      [--batch 1] [--heads 2] [--head-dim 64] [--chunk-size 64] [--dtype float32|bfloat16]
      [--impls reference,xla,pallas,auto] [--ops linear,delta] [--softmax-max-len 8192]
      [--train-shapes 64x64x2x32,16x256x4x32,4x1024x4x64] [--repeats 5] [--budget-ms 1000]
      [--write kernels/BENCHMARKS.md]

Sweep: for each op, impl and sequence length it times the forward and the forward+backward
(gradients w.r.t. q, k, v and beta; jitted, compile excluded, median of at least `--repeats`
runs, more for fast calls; the impls of one op timed round-robin so that load from other jobs
hits them alike) and
reports tokens/s and achieved GFLOP/s against this machine's measured f32 matmul rate. Causal
softmax attention is `jax.nn.dot_product_attention(is_causal=True)` (XLA on CPU; cuDNN where JAX
picks it on GPU). On CPU, a second table times "reference" and "xla" at training-like shapes
BxTxHxD (many short sequences), the regime of the CPU `auto` table in kernels/api.py.
Then it checks the goals of issue 4:
  CPU: linear attention fwd+bwd time per token at T=16384 <= 1.2x that at T=1024;
       linear attention >= 10x faster than softmax at T=8192; `auto` is the fastest impl per op.
  GPU: Pallas linear attention fwd+bwd beats softmax (cuDNN) from T >= 4096 (run with
       --head-dim 128); Pallas delta rule <= 2x Pallas linear attention.
With --write, the tables replace this device's section of the markdown file (other sections,
e.g. the other device's, are kept). An impl whose fwd+bwd exceeds --budget-ms at some T is not
run at longer T (marked "skipped").

FLOP model per token per head (d = Dk = Dv, C = chunk size; matmul FLOPs = 2 M N K), from
../shared/research/kernels.md 5.1, not from a profiler:
  linear, chunked (xla, pallas, auto): fwd 2C(dk+dv) + 4 dk dv,   bwd 2C(3dk+2dv) + 10 dk dv
  linear, recurrent (reference):       fwd 4 dk dv,                bwd 8 dk dv
  delta, chunked:                      fwd 2C(3dk+2dv) + 6 dk dv + C^2/3,  bwd 16 dk dv + 13 C d + 4 C^2
  delta, recurrent:                    fwd 6 dk dv,                bwd 12 dk dv
  softmax (full T x T, as XLA runs it): fwd 4 T d,                 bwd 8 T d
("auto" is counted as chunked; on CPU it runs the impls of kernels.CPU_AUTO, e.g. the recurrent
forward and the chunked gradient.)
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu", "tpu"))
  p.add_argument("--seq-lens", default="512,1024,2048,4096,8192,16384")
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--heads", type=int, default=2)
  p.add_argument("--head-dim", type=int, default=64)
  p.add_argument("--chunk-size", type=int, default=64)
  p.add_argument("--dtype", default=None, help="default: float32 on CPU, bfloat16 on GPU/TPU")
  p.add_argument("--impls", default="reference,xla,pallas,auto")
  p.add_argument("--ops", default="linear,delta")
  p.add_argument("--no-decay", action="store_true", help="linear attention without decay")
  p.add_argument("--softmax-max-len", type=int, default=None,
                 help="longest T for softmax (default: 8192 on CPU, all on GPU/TPU)")
  p.add_argument("--train-shapes", default="64x64x2x32,16x256x4x32,4x1024x4x64",
                 help="BxTxHxD shapes of the CPU auto table ('' to skip)")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--budget-ms", type=float, default=1000.0)
  p.add_argument("--write", default=None, help="markdown file whose device section is replaced")
  return p.parse_args(argv)


ARGS = parse_args()
if ARGS.device != "auto":
  os.environ["JAX_PLATFORMS"] = {"cpu": "cpu", "gpu": "cuda", "tpu": "tpu"}[ARGS.device]

import jax  # noqa: E402  (after JAX_PLATFORMS)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from paperlab import kernels  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Timing and FLOPs.

def median_ms(fn, args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))                       # compile + warm-up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(1e3 * (time.perf_counter() - start))
  return statistics.median(times)


def interleaved_medians_ms(fns: dict, args, repeats: int, min_seconds: float = 1.0,
                           max_repeats: int = 50) -> dict:
  """Median ms of each fn, timed round-robin so that a shared machine's load hits all alike.

  At least `repeats` rounds, more (up to max_repeats) while a round is short, so that the
  medians of fast calls rest on enough samples. The order rotates every round, so no fn always
  runs right after the same other one (a big allocator like Pallas's interpreter leaves page
  faults behind for whoever runs next).
  """
  if not fns:
    return {}
  for fn in fns.values():
    jax.block_until_ready(fn(*args))                     # compile + warm-up
  times = {name: [] for name in fns}
  names = list(fns)
  rounds, spent = 0, 0.0
  while rounds < repeats or (spent < min_seconds and rounds < max_repeats):
    for name in names[rounds % len(names):] + names[:rounds % len(names)]:
      fn = fns[name]
      start = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[name].append(1e3 * (time.perf_counter() - start))
    rounds, spent = rounds + 1, spent + sum(t[-1] for t in times.values()) / 1e3
  return {name: statistics.median(t) for name, t in times.items()}


def matmul_gflops() -> float:
  n = 2048 if jax.default_backend() == "cpu" else 8192
  a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
  ms = median_ms(jax.jit(lambda a: a @ a), (a,), 7)
  return 2 * n ** 3 / (ms * 1e-3) / 1e9


def flops_per_token_head(op: str, impl: str, seq_len: int, d: int, c: int) -> tuple[float, float]:
  if op == "softmax":
    return 4 * seq_len * d, 8 * seq_len * d
  recurrent = impl == "reference"
  if op == "linear":
    if recurrent:
      return 4 * d * d, 8 * d * d
    return 2 * c * 2 * d + 4 * d * d, 2 * c * 5 * d + 10 * d * d
  if recurrent:
    return 6 * d * d, 12 * d * d
  return 2 * c * 5 * d + 6 * d * d + c * c / 3, 16 * d * d + 13 * c * d + 4 * c * c


# ---------------------------------------------------------------------------------------------
# The functions under test.

def make_inputs(op: str, shape: tuple[int, int, int, int], dtype):
  rng = np.random.default_rng(shape[1])
  q, k, v = (jnp.asarray(rng.normal(size=shape), dtype) for _ in range(3))
  if op == "delta":
    k = (k / jnp.linalg.norm(k.astype(jnp.float32), axis=-1, keepdims=True)).astype(dtype)
    beta = jax.nn.sigmoid(jnp.asarray(rng.normal(size=shape[:3]), jnp.float32)).astype(dtype)
    return q, k, v, beta
  return q, k, v


def make_fn(op: str, impl: str, heads: int, args):
  if op == "softmax":
    return lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True)
  if op == "linear":
    g = None if args.no_decay else kernels.alibi_log_decay(heads)
    return lambda q, k, v: kernels.linear_attention(q, k, v, g=g, chunk_size=args.chunk_size,
                                                    impl=impl)[0]
  return lambda q, k, v, beta: kernels.delta_rule(q, k, v, beta, chunk_size=args.chunk_size,
                                                  impl=impl)[0]


def fwd_bwd(fn):
  """Gradient of sum(o) w.r.t. every input (q, k, v and beta)."""
  return jax.grad(lambda inputs: jnp.sum(fn(*inputs).astype(jnp.float32)))


def measure(op: str, impls, shape, args, dtype) -> dict:
  """{impl: (fwd ms, fwd+bwd ms)} for the impls of one op at one shape, timed interleaved.

  Except the reference's fwd+bwd, timed on its own: its autodiff keeps all T states (0.5 GB at
  T = 16K), and interleaving it would make the others pay its page faults.
  """
  inputs = make_inputs(op, shape, dtype)
  fns = {impl: make_fn(op, impl, shape[2], args) for impl in impls}
  fwd = interleaved_medians_ms({i: jax.jit(f) for i, f in fns.items()}, inputs, args.repeats)
  both = {}
  for group in ([i for i in impls if i != "reference"], [i for i in impls if i == "reference"]):
    grads = {i: jax.jit(fwd_bwd(fns[i])) for i in group}
    both.update(interleaved_medians_ms({i: (lambda g: lambda *x: g(x))(g) for i, g in grads.items()},
                                       inputs, args.repeats))
  return {impl: (fwd[impl], both[impl]) for impl in impls}


# ---------------------------------------------------------------------------------------------
# Report.

def machine() -> str:
  dev = jax.devices()[0]
  mem = ""
  if os.path.exists("/proc/meminfo"):
    kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
    mem = f", {kb / 2 ** 20:.0f} GiB RAM"
  cpu = platform.processor() or platform.machine()
  if os.path.exists("/proc/cpuinfo"):
    found = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
    cpu = found.group(1) if found else cpu
  return (f"{dev.platform} ({dev.device_kind}); host {os.cpu_count()}-core {cpu}{mem}; "
          f"jax {jax.__version__}, Python {platform.python_version()}")


def load() -> str:
  return "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def goals(results, train, args, device: str) -> list[str]:
  """One line per goal of issue 4 for this device, with its measured ratio."""
  def get(op, impl, t, col=1):
    r = results.get((op, impl, t))
    return None if r is None else r[col]

  lines = []
  if device != "cpu":
    for t in sorted({k[2] for k in results if k[0] == "linear"}):
      lin, soft, dl = get("linear", "pallas", t), get("softmax", "xla", t), get("delta", "pallas", t)
      if lin and soft and t >= 4096:
        lines.append(f"- T={t}: softmax / Pallas linear attention, fwd+bwd: **{soft / lin:.2f}x** "
                     f"(goal > 1 from T >= 4096 at D=128; this run D={args.head_dim}).")
      if lin and dl:
        lines.append(f"- T={t}: Pallas delta / Pallas linear, fwd+bwd: **{dl / lin:.2f}x** "
                     f"(goal <= 2x).")
    return lines
  a, b = get("linear", "auto", 1024), get("linear", "auto", 16384)
  if a and b:
    ratio = (b / 16384) / (a / 1024)
    lines.append(f"- Linear attention (auto) fwd+bwd time per token, T=16384 vs T=1024: "
                 f"**{ratio:.2f}x** (goal <= 1.2x): {'met' if ratio <= 1.2 else 'MISSED'}.")
  for col, name in ((1, "fwd+bwd"), (0, "fwd")):
    lin, soft = get("linear", "auto", 8192, col), get("softmax", "xla", 8192, col)
    if lin and soft:
      ratio = soft / lin
      lines.append(f"- At T=8192, softmax / linear attention (auto), {name}: **{ratio:.1f}x** "
                   f"(goal >= 10x): {'met' if ratio >= 10 else 'MISSED'}.")
  ops = {"linear": "linear_attention", "delta": "delta_rule"}
  tables = [("sweep", results, lambda shape: f"T={shape}", args.batch * args.heads)]
  tables += [("training shapes", train, lambda shape: "x".join(map(str, shape)), None)] if train else []
  for label, table, where, num_sequences in tables:
    worst = {}
    for (op, impl, shape), r in table.items():
      if impl != "auto" or r is None:
        continue
      sequences = num_sequences or shape[0] * shape[2]
      for col in (0, 1):
        chosen = kernels.cpu_auto_impls(ops[op], sequences)[col]
        others = {i: x[col] for (o, i, s), x in table.items()
                  if o == op and s == shape and i != "auto" and x is not None}
        if chosen not in others:
          continue
        fastest = min(others, key=others.get)
        ratio = others[chosen] / others[fastest]
        if (op, col) not in worst or ratio > worst[(op, col)][0]:
          worst[(op, col)] = (ratio, where(shape), chosen, fastest)
    for (op, col), (ratio, at, chosen, fastest) in sorted(worst.items()):
      verdict = ("auto's choice is the fastest (within 10%)" if ratio <= 1.1
                 else f"auto's choice is NOT the fastest ({fastest} is)")
      lines.append(f"- {label}, {op} {'fwd+bwd' if col else 'fwd'}: time of auto's choice / fastest "
                   f"impl, worst case {ratio:.2f}x ({chosen} vs {fastest} at {at}): {verdict}.")
  return lines


def row(op, impl, t, r, args, peak) -> str:
  if r is None:
    return f"| {op} | {impl} | {t} | skipped | skipped | | | |"
  fwd, both = r
  f_fwd, f_bwd = flops_per_token_head(op, impl, t, args.head_dim, args.chunk_size)
  gflops = (f_fwd + f_bwd) * args.batch * t * args.heads / (both * 1e-3) / 1e9
  tokens = args.batch * t / (both * 1e-3)
  return (f"| {op} | {impl} | {t} | {fwd:.2f} | {both:.2f} | {tokens:,.0f} | {gflops:.1f} "
          f"| {100 * gflops / peak:.1f} |")


def markdown(results, train, args, device, dtype, peak, seconds, loads) -> str:
  out = [f"Machine: {machine()}. Load average (1/5/15 min) at start {loads[0]}, at end {loads[1]}"
         " (the machine is shared; timings are medians).",
         f"Measured f32 matmul rate ({'2048' if device == 'cpu' else '8192'}^2, jnp.dot): "
         f"**{peak:.0f} GFLOP/s**.",
         f"Shapes: B={args.batch}, H={args.heads}, D={args.head_dim}, chunk={args.chunk_size}, "
         f"dtype={dtype}, linear-attention decay: {'none' if args.no_decay else 'ALiBi slopes'}; "
         f"medians of at least {args.repeats} interleaved runs (more for fast calls, up to 1 s); "
         f"everything took {seconds / 60:.1f} min.",
         f"Command: `python scripts/bench_kernels.py {' '.join(sys.argv[1:])}`", "",
         "| op | impl | T | fwd ms | fwd+bwd ms | fwd+bwd tokens/s | fwd+bwd GFLOP/s | % of matmul |",
         "|---|---|---:|---:|---:|---:|---:|---:|"]
  for (op, impl, t), r in sorted(results.items(), key=lambda x: (x[0][0], x[0][1], x[0][2])):
    out.append(row(op, impl, t, r, args, peak))
  if train:
    out += ["", "Training-like shapes (B x T x H x D, chunk as above): the regime of the CPU "
            "`auto` table.", "",
            "| op | impl | shape | fwd ms | fwd+bwd ms |", "|---|---|---|---:|---:|"]
    for (op, impl, shape), (fwd, both) in sorted(train.items()):
      out.append(f"| {op} | {impl} | {'x'.join(map(str, shape))} | {fwd:.2f} | {both:.2f} |")
  out += ["", "Goals:"] + goals(results, train, args, device)
  if device == "cpu":
    out.append(f"- `auto` on CPU, (forward impl for B*H <= {kernels.CPU_FEW_SEQUENCES}, forward impl "
               f"for more, gradient impl): {kernels.CPU_AUTO}.")
  return "\n".join(out)


def write_section(path: str, device: str, body: str):
  start, end = f"<!-- bench:{device}:start -->", f"<!-- bench:{device}:end -->"
  text = open(path).read() if os.path.exists(path) else ""
  block = f"{start}\n{body}\n{end}"
  if start in text and end in text:
    text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
  else:
    text = text.rstrip() + f"\n\n## Measured on {device}\n\n{block}\n"
  with open(path, "w") as f:
    f.write(text)


def main():
  args = ARGS
  device = "cpu" if jax.default_backend() == "cpu" else jax.default_backend()
  device = "gpu" if device in ("cuda", "rocm") else device
  dtype = jnp.dtype(args.dtype or ("float32" if device == "cpu" else "bfloat16"))
  seq_lens = [int(s) for s in args.seq_lens.split(",")]
  soft_max = args.softmax_max_len or (8192 if device == "cpu" else max(seq_lens))
  print(machine(), flush=True)
  loads = [load()]
  peak = matmul_gflops()
  print(f"matmul: {peak:.0f} GFLOP/s; load {loads[0]}", flush=True)
  results, over_budget = {}, set()
  start = time.time()
  for t in seq_lens:
    shape = (args.batch, t, args.heads, args.head_dim)
    for op in args.ops.split(",") + ["softmax"]:
      impls = args.impls.split(",") if op != "softmax" else ["xla"]
      skipped = [i for i in impls if (op, i) in over_budget or (op == "softmax" and t > soft_max)]
      for impl in skipped:
        results[(op, impl, t)] = None
      timed = measure(op, [i for i in impls if i not in skipped], shape, args, dtype)
      for impl, (fwd, both) in timed.items():
        results[(op, impl, t)] = (fwd, both)
        print(f"{op:8s} {impl:10s} T={t:6d} fwd {fwd:9.2f} ms  fwd+bwd {both:9.2f} ms", flush=True)
        if both > args.budget_ms:
          over_budget.add((op, impl))
  train = {}
  if device == "cpu" and args.train_shapes:
    for spec in args.train_shapes.split(","):
      shape = tuple(int(x) for x in spec.split("x"))
      for op in args.ops.split(","):
        for impl, r in measure(op, ["reference", "xla", "auto"], shape, args, dtype).items():
          train[(op, impl, shape)] = r
          print(f"{op:8s} {impl:10s} {spec:14s} fwd {r[0]:9.2f} ms  fwd+bwd {r[1]:9.2f} ms",
                flush=True)
  loads.append(load())
  body = markdown(results, train, args, device, dtype, peak, time.time() - start, loads)
  print("\n" + body)
  if args.write:
    write_section(os.path.join(ROOT, args.write) if not os.path.isabs(args.write) else args.write,
                  device, body)


if __name__ == "__main__":
  main()
