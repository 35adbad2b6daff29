"""Evaluation reports as papers need them: tables (CSV, Markdown, LaTeX) per category and plots (matplotlib).

:func:`table_rows` flattens a :func:`syn2seq_core.evaluation.summarize_categories` result into one row per
(category, method): the number of takes and, per metric, the mean over takes with its 95% CI (or the
"unavailable: ..." text of a metric that could not be computed; never a number). :func:`write_tables` writes
them as ``<stem>.csv`` / ``.md`` / ``.tex``; :func:`write_plots` draws quality along the generated view
(:func:`syn2seq_core.evaluation.frame_curves`) and a grid of example frames per category. matplotlib is an
optional dependency (``pip install syn2seq[eval]``): without it the plots are skipped with the reason.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from .atomic import write_bytes_atomic

METRICS = (("psnr", "PSNR (dB)", 2, True), ("ssim", "SSIM", 4, True), ("lpips_alex", "LPIPS (Alex)", 4, False),
           ("lpips_vgg", "LPIPS (VGG)", 4, False), ("fvd", "FVD", 1, False))  # name, title, digits, higher better


def _metric_names(rows_source: dict) -> list[str]:
    """The metrics present in a summary, in the order of :data:`METRICS`."""
    present = {k for entry in rows_source["methods"].values() for k in entry}
    return [m for m, *_ in METRICS if m in present]


def table_rows(summaries: dict) -> list[dict]:
    """Rows of a ``summarize_categories`` result: category ("all" first, then each category), method, takes,
    and ``<metric>`` / ``<metric>_ci_low`` / ``<metric>_ci_high`` per metric (or ``<metric>`` = the reason it is
    unavailable)."""
    parts = [("all", summaries["overall"])] + list(summaries.get("categories", {}).items())
    metrics = _metric_names(summaries["overall"])
    rows = []
    for category, summary in parts:
        for method, entry in summary["methods"].items():
            row = {"category": category, "method": method, "takes": summary["takes"]}
            for metric in metrics:
                value = entry.get(metric)
                if isinstance(value, dict):
                    row[metric], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = (
                        value["mean"], value["ci_low"], value["ci_high"])
                else:
                    row[metric] = value if value is not None else "unavailable: not computed"
            rows.append(row)
    return rows


def _number(value, digits: int) -> str:
    if isinstance(value, str):
        return value
    return "nan" if value is None or not math.isfinite(float(value)) else f"{float(value):.{digits}f}"


def _cell(row: dict, metric: str, digits: int, pm: str) -> str:
    """``mean ± half-width`` (``pm`` the plus-minus sign of the format), ``mean`` alone without a CI, or
    "n/a" for an unavailable metric (its reason is in the CSV and the JSON)."""
    value = row.get(metric)
    if isinstance(value, str):
        return "n/a"
    lo, hi = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if value is None:
        return "n/a"
    if lo is None or hi is None or not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        return _number(value, digits)
    return f"{_number(value, digits)} {pm} {_number((float(hi) - float(lo)) / 2, digits)}"


def to_csv(rows: list[dict]) -> str:
    fields = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _columns(rows: list[dict]) -> list[tuple[str, str, int]]:
    present = {k for row in rows for k in row}
    return [(m, title, digits) for m, title, digits, _ in METRICS if m in present]


def to_markdown(rows: list[dict], title: str = "") -> str:
    """A Markdown table: category, method, takes, then ``mean ± 95% CI half-width`` per metric."""
    cols = _columns(rows)
    lines = [f"{title}\n" if title else "",
             "| category | method | takes | " + " | ".join(t for _, t, _ in cols) + " |",
             "|---|---|---:|" + "---:|" * len(cols)]
    for row in rows:
        cells = [_escape_md(str(row["category"])), _escape_md(str(row["method"])), str(row["takes"])]
        cells += [_cell(row, m, d, "±") for m, _, d in cols]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("\nMean over takes ± half-width of the 95% Student-t interval; n/a: unavailable (see the CSV).")
    return "\n".join(line for line in lines if line != "") + "\n"


def _escape_md(text: str) -> str:
    return text.replace("|", "\\|")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def to_latex(rows: list[dict], caption: str = "", label: str = "tab:syn2seq-eval") -> str:
    """A booktabs LaTeX table (``\\usepackage{booktabs}``), one block of rows per category."""
    cols = _columns(rows)
    arrows = {m: (r"$\uparrow$" if up else r"$\downarrow$") for m, _, _, up in METRICS}
    head = " & ".join(["Category", "Method", "Takes"] + [f"{latex_escape(t)} {arrows[m]}" for m, t, _ in cols])
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{ll r" + " r" * len(cols) + "}", r"\toprule",
             head + r" \\", r"\midrule"]
    previous = None
    for row in rows:
        if previous is not None and row["category"] != previous:
            lines.append(r"\midrule")
        category = latex_escape(str(row["category"])) if row["category"] != previous else ""
        cells = [category, latex_escape(str(row["method"])), str(row["takes"])]
        cells += [_cell(row, m, d, r"$\pm$") for m, _, d in cols]
        lines.append(" & ".join(cells) + r" \\")
        previous = row["category"]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    lines += [r"\label{" + label + "}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(stem: Path, summaries: dict, caption: str = "") -> dict[str, Path]:
    """``<stem>.csv``, ``<stem>.md`` and ``<stem>.tex`` of ``summaries`` (each written atomically)."""
    rows = table_rows(summaries)
    stem = Path(stem)
    paths = {"csv": stem.with_suffix(".csv"), "markdown": stem.with_suffix(".md"), "latex": stem.with_suffix(".tex")}
    write_bytes_atomic(paths["csv"], to_csv(rows).encode("utf-8"))
    write_bytes_atomic(paths["markdown"], to_markdown(rows, caption).encode("utf-8"))
    write_bytes_atomic(paths["latex"], to_latex(rows, caption).encode("utf-8"))
    return paths


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or the reason it is unavailable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, "matplotlib is not installed (pip install 'syn2seq[eval]' or pip install matplotlib)"
    return plt, None


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())


def plot_frame_curves(curves: dict, path: Path, metrics=("psnr", "ssim")) -> Path:
    """Metric per frame index along the generated view, one line (and its 95% CI band) per method."""
    plt, reason = _pyplot()
    if plt is None:
        raise RuntimeError(reason)
    titles = {m: t for m, t, *_ in METRICS}
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for method, entry in curves.items():
            if metric not in entry:
                continue
            e = entry[metric]
            line, = ax.plot(e["index"], e["mean"], label=method, linewidth=1.5)
            lo = [v if math.isfinite(v) else m for v, m in zip(e["ci_low"], e["mean"])]
            hi = [v if math.isfinite(v) else m for v, m in zip(e["ci_high"], e["mean"])]
            ax.fill_between(e["index"], lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("generated frame (0 = next to the source view)")
        ax.set_ylabel(titles.get(metric, metric))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Quality along the generated view (mean over takes, 95% CI)", fontsize=10)
    _save(fig, path)
    plt.close(fig)
    return path


def plot_examples(scores, path: Path, per_category: int = 3) -> Path:
    """A grid of example frames: for up to ``per_category`` takes of each category, the last source frame, each
    method's middle generated frame and the ground truth at that frame."""
    plt, reason = _pyplot()
    if plt is None:
        raise RuntimeError(reason)
    chosen: dict[str, list] = {}
    for s in scores:
        if s.example and len(chosen.setdefault(s.category or "(none)", [])) < per_category:
            chosen[s.category or "(none)"].append(s)
    picked = [s for group in chosen.values() for s in group]
    columns = list(dict.fromkeys(k for s in picked for k in s.example))
    columns = ["source", *[c for c in columns if c not in ("source", "target")], "target"]
    fig, axes = plt.subplots(len(picked), len(columns), figsize=(1.6 * len(columns), 1.7 * len(picked)),
                             squeeze=False)
    for r, s in enumerate(picked):
        for c, key in enumerate(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if key in s.example:
                ax.imshow(s.example[key].permute(1, 2, 0).clamp(0, 1).numpy())
            if r == 0:
                ax.set_title(key, fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{s.category or '(none)'}\n{s.name}", fontsize=7)
    _save(fig, path)
    plt.close(fig)
    return path


def write_plots(stem: Path, scores, curves: dict) -> tuple[dict[str, Path], str | None]:
    """``<stem>_frames.png`` (:func:`plot_frame_curves`) and ``<stem>_examples.png`` (:func:`plot_examples`);
    returns the paths and None, or {} and the reason the plots were skipped."""
    plt, reason = _pyplot()
    if plt is None:
        return {}, reason
    stem = Path(stem)
    return {"frames": plot_frame_curves(curves, stem.with_name(stem.name + "_frames.png")),
            "examples": plot_examples(scores, stem.with_name(stem.name + "_examples.png"))}, None
