"""The report of ``benchmarks/gpu_check.sh``: joins throughput.py's and quality.py's JSON into ``gpu_check.json`` and
writes ``gpu_check.md`` (a throughput table, the quality table and its targets).

    python benchmarks/gpu_report.py --throughput T.json --quality Q.json --out DIR [--dry-run 1] [--seconds S]

A missing input (a phase that failed or ran out of time) is reported as such; the other tables are still written.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any


def _quality_module():
    spec = importlib.util.spec_from_file_location("bench_quality_report", Path(__file__).with_name("quality.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > 4:
        return f"{len(value)} values"
    return str(value)


def throughput_table(data: dict[str, Any]) -> list[str]:
    """Every result row of throughput.py's JSON with its scalar (and short list) fields, whatever its schema."""
    rows = data.get("results")
    if not isinstance(rows, list) or not rows:
        scalars = {k: v for k, v in data.items() if isinstance(v, (int, float, str))}
        return [f"- {k}: {_cell(v)}" for k, v in scalars.items()] or ["(no results in throughput.json)"]
    keys = [k for k in dict.fromkeys(k for r in rows for k in r)
            if all(not isinstance(r.get(k), dict) for r in rows)]  # fmt: skip
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(r.get(k, "")) for k in keys) + " |" for r in rows]
    extra = {k: v for k, v in data.items() if isinstance(v, (int, float)) and k != "results"}
    lines += [""] + [f"- {k}: {_cell(v)}" for k, v in extra.items()] if extra else []
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--throughput", type=Path, required=True)
    p.add_argument("--quality", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dry-run", type=int, choices=[0, 1], default=0)
    p.add_argument("--seconds", type=float, default=None, help="wall time of the whole check")
    args = p.parse_args(argv)
    throughput, quality = _read(args.throughput), _read(args.quality)
    report = {"dry_run": bool(args.dry_run), "seconds": args.seconds, "throughput": throughput, "quality": quality}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["# GPU check" + (" (dry run on the CPU: tiny sizes, numbers mean nothing)" if args.dry_run else ""), ""]
    if args.seconds is not None:
        lines += [f"Wall time {args.seconds:.0f} s.", ""]
    lines += ["## Throughput (`benchmarks/throughput.py`)", ""]
    if throughput is None:
        lines += ["Not measured: throughput.py failed or ran out of time (see gpu_check.log).", ""]
    else:
        settings = throughput.get("settings", {})
        if settings:
            lines += ["Settings: " + ", ".join(f"{k} {_cell(v)}" for k, v in settings.items()
                                               if not isinstance(v, dict)), ""]  # fmt: skip
        lines += [*throughput_table(throughput), ""]
    lines += ["## Quality (`benchmarks/quality.py --preset gpu`)", ""]
    if quality is None:
        lines += ["Not measured: every quality run failed or ran out of time (see gpu_check.log).", ""]
    else:
        q = _quality_module()
        aggregates = quality["aggregates"]
        s = quality["settings"]
        where = s["hardware"].get("gpu") or s["hardware"].get("cpu")
        lines += [f"Seeds {', '.join(map(str, s['seeds']))}, {s['eval_samples']} evaluation samples, device "
                  + f"{s['device']} ({where}).", "", q.table(aggregates), "", "### Targets", "",
                  *q.targets_section(aggregates), ""]  # fmt: skip
    (args.out / "gpu_check.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    sys.exit(main() and 0)
