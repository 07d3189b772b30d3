"""The balanced 10k preset at growing N: clips/s, wall time and peak memory.

Each N runs ``mesynth generate +preset=balanced10k mesynth.plan.n_per_class=N/7`` (16 key
frames at 112², every realism effect, templates mined from CASME II and SAMM annotation
tables plus the expert tables) in a fresh process, into a fresh store, and reports the wall
time of the generation (faces and templates loaded before the timer starts, as a user's
run spends them once), clips/s, the CPU time of the generation (user + system of the process
and any worker processes it waited for, ``getrusage``) per clip, the 1-minute load average
when each N started, and the process's peak resident memory (``ru_maxrss``). Flat memory and a
constant CPU time per clip mean the preset scales to 10,000 clips and beyond; on a shared
machine clips/s also measures the other users (CPU time per clip much less so).

The annotation tables are written by ``mer annotations`` from releases given with
``--casme2``/``--samm``; without them, from the small fake releases of the test suite (the
real xlsx layouts, a handful of rows: fewer distinct mined templates than the real sheets,
the same rendering cost).

    PYTHONPATH=. python benchmarks/bench_balanced10k.py                      # 1k,2k,5k,10k
    PYTHONPATH=. python benchmarks/bench_balanced10k.py --sizes 140,280,700  # a quick slice
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLASSES = 7


def tables(root: Path, casme2: Path | None, samm: Path | None) -> list[Path]:
    """The annotation CSVs of CASME II and SAMM (``mer annotations``), under ``root``."""
    from recognizer.cli import main as mer_main

    if casme2 is None or samm is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.recognizer.fake_releases import fake_casme2, fake_samm

        casme2 = casme2 or fake_casme2(root / "casme2")
        samm = samm or fake_samm(root / "samm")
    out = []
    for name, release in (("casme2", casme2), ("samm", samm)):
        csv = root / f"{name}_aus.csv"
        argv = ["annotations", f"data={name}", f"data.loader.root={release}", f"out={csv}"]
        if mer_main(argv) != 0:
            raise SystemExit(f"mer annotations failed for {release}")
        out.append(csv)
    return out


def child(n_per_class: int, out: Path, annotation_tables: list[str], device: str) -> None:
    """Generate one store with the preset; print a JSON line of its timings."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from mesynth.cli.app import config_dir
    from mesynth.cli.main import _plan
    from mesynth.generation.recipe import run_recipe

    overrides = [
        "+preset=balanced10k", f"mesynth.plan.n_per_class={n_per_class}",
        f"recipe.templates.annotation_tables=[{','.join(annotation_tables)}]",
        f"recipe.device={device}", f"out_dir={out}",
    ]  # fmt: skip
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose(config_name="generate", overrides=overrides)
    recipe = instantiate(cfg.recipe, _convert_="all")
    plan = _plan(cfg, recipe.scheme, recipe.seed)
    parts = recipe.build()
    load = os.getloadavg()[0]
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    summary = run_recipe(recipe, plan, out, parts=parts, progress=False)
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"clips": plan.total, "seconds": seconds, "cpu_seconds": cpu, "load": load,
                      "peak_mib": peak_mib, "summary": str(summary)}))  # fmt: skip


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                          resource.RUSAGE_CHILDREN))  # fmt: skip
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,5000,10000", help="clips, comma-separated")
    parser.add_argument("--casme2", type=Path, help="a CASME II release (default: a fake one)")
    parser.add_argument("--samm", type=Path, help="a SAMM release (default: a fake one)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        n, out, csvs = args.child
        child(int(n), Path(out), csvs.split(","), args.device)
        return
    print(f"load average before: {os.getloadavg()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_10k_") as tmp:
        csvs = ",".join(str(p) for p in tables(Path(tmp), args.casme2, args.samm))
        for size in (int(s) for s in args.sizes.split(",")):
            n_per_class = -(-size // CLASSES)
            out = Path(tmp) / f"store_{size}"
            command = [sys.executable, __file__, "--device", args.device,
                       "--child", str(n_per_class), str(out), csvs]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"N={size}: generation failed:\n{done.stderr[-2000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(result)
            print(f"N={result['clips']}: {result['seconds']:.0f} s, "
                  f"{result['clips'] / result['seconds']:.2f} clips/s, "
                  f"{1000 * result['cpu_seconds'] / result['clips']:.0f} CPU ms/clip, "
                  f"load {result['load']:.1f}, peak {result['peak_mib']:.0f} MiB",
                  flush=True)  # fmt: skip
            subprocess.run(["rm", "-rf", str(out)], check=False)
    print("\n| clips | load at start | wall s | clips/s | CPU ms per clip | peak RSS MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['clips']} | {r['load']:.1f} | {r['seconds']:.0f} | "
              f"{r['clips'] / r['seconds']:.2f} | {1000 * r['cpu_seconds'] / r['clips']:.0f} | "
              f"{r['peak_mib']:.0f} |")  # fmt: skip
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
