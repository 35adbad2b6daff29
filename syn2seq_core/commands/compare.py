"""``syn2seq compare LABEL=REPORT.json ...``: paired per-take differences between eval reports (ablations)."""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("reports", nargs="+", metavar="LABEL=REPORT.json",
                        help="reports written by `syn2seq eval --out` on the same takes (label optional)")
    parser.add_argument("--method", default="sample",
                        help="what to compare: sample (default), mean (needs eval --mean) or a baseline name")
    parser.add_argument("--reference", default=None,
                        help="compare every report against this label only (default: all pairs)")
    parser.add_argument("--out", default=None, help="write the comparison JSON here")


def run(args) -> int:
    from ..base.errors import Syn2SeqInputError
    from ..evaluation.run import compare_reports, format_comparison
    from ..generation.takes import write_json

    reports = {}
    for item in args.reports:
        label, _, path = item.rpartition("=")
        path = Path(path)
        label = label or path.stem
        if not path.is_file():
            raise Syn2SeqInputError(f"report '{label}'", "an existing JSON file from syn2seq eval --out", str(path))
        try:
            data = json.loads(path.read_text())
            data["per_take"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise Syn2SeqInputError(str(path), "a report of syn2seq eval --out", f"unreadable ({e!r})") from None
        if label in reports:
            raise Syn2SeqInputError("reports", "distinct labels", f"'{label}' twice")
        reports[label] = data
    comparison = compare_reports(reports, args.method, args.reference)
    print(format_comparison(comparison))
    if args.out:
        write_json(Path(args.out), comparison)
        print(f"comparison: {args.out}")
    return 0
