"""Evaluation reports as papers need them: tables (CSV, Markdown, LaTeX) per category and plots (matplotlib).

:func:`table_rows` flattens a :func:`syn2seq_core.evaluation.run.summarize_categories` result into one row per
(category, method): the number of takes and, per metric, the mean over takes with its 95% CI (or the
"unavailable: ..." text of a metric that could not be computed; never a number). :func:`write_tables` writes
them as ``<stem>.csv`` / ``.md`` / ``.tex`` and in the paper's layout (one row per method, the metrics of each
category side by side) as ``<stem>_by_category.md`` / ``.tex``; every table carries its notes: the evaluation
settings the caller states (size, filter, PSNR cap) and what its marks mean (``†`` a mean without CI: one take;
``*`` an FVD / FID below its stable set size). :func:`write_plots` draws quality along the generated view
(:func:`syn2seq_core.evaluation.run.frame_curves`; every method in the legend has its line) and a grid of example
frames per category. :func:`render_tables` / :func:`render_plots` return the bytes without writing, so that a run
writes its outputs only once all of them exist. matplotlib is an optional dependency (``pip install
syn2seq[eval]``): without it the plots are skipped with the reason.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ..io.atomic import write_bytes_atomic

METRICS = (("psnr", "PSNR (dB)", 2, True), ("ssim", "SSIM", 4, True), ("lpips_alex", "LPIPS (Alex)", 4, False),
           ("lpips_vgg", "LPIPS (VGG)", 4, False), ("fvd", "FVD", 1, False),
           ("fid", "FID", 1, False), ("rot_err", "RotErr (rad)", 3, False),
           ("trans_err", "TransErr", 3, False))  # name, title, digits, higher better
SET_METRICS = ("fvd", "fid")  # set-level: no CI; marked when the set is below the size where bias dominates
NO_CI_MARK = "†"  # a per-take metric without a CI (one take)
UNSTABLE_MARK = "*"  # FVD / FID below their stable set size
_LATEX_MARKS = {NO_CI_MARK: r"$^\dagger$", UNSTABLE_MARK: r"$^{*}$"}


def _metric_names(rows_source: dict) -> list[str]:
    """The metrics present in a summary, in the order of :data:`METRICS`."""
    present = {k for entry in rows_source["methods"].values() for k in entry}
    return [m for m, *_ in METRICS if m in present]


def table_rows(summaries: dict) -> list[dict]:
    """Rows of a ``summarize_categories`` result: category ("all" first, then each category), method, takes,
    and ``<metric>`` / ``<metric>_ci_low`` / ``<metric>_ci_high`` per metric (or ``<metric>`` = the reason it is
    unavailable); FVD / FID add ``<metric>_n`` (videos or frames per set) and ``<metric>_stable``."""
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
                    if metric in SET_METRICS:
                        row[f"{metric}_n"], row[f"{metric}_stable"] = value.get("n"), value.get("stable")
                else:
                    row[metric] = value if value is not None else "unavailable: not computed"
            rows.append(row)
    return rows


def _number(value, digits: int) -> str:
    if isinstance(value, str):
        return value
    return "nan" if value is None or not math.isfinite(float(value)) else f"{float(value):.{digits}f}"


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _cell_parts(row: dict, metric: str, digits: int) -> tuple[str, str | None, str]:
    """(mean, half-width or None, mark) of a cell; ("n/a", None, "") for an unavailable metric (its reason is in
    the CSV and the JSON). The mark is :data:`UNSTABLE_MARK` for an FVD / FID below its stable set size and
    :data:`NO_CI_MARK` for a per-take metric without a CI."""
    value = row.get(metric)
    if value is None or isinstance(value, str):
        return "n/a", None, ""
    if metric in SET_METRICS:
        return _number(value, digits), None, "" if row.get(f"{metric}_stable", True) else UNSTABLE_MARK
    lo, hi = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if not (_finite(lo) and _finite(hi)):
        return _number(value, digits), None, NO_CI_MARK
    return _number(value, digits), _number((float(hi) - float(lo)) / 2, digits), ""


def _cell(row: dict, metric: str, digits: int, pm: str, latex: bool = False) -> str:
    """``mean ± half-width`` (``pm`` the plus-minus sign of the format), ``mean`` and a mark without a CI, or
    "n/a" for an unavailable metric."""
    mean, half, mark = _cell_parts(row, metric, digits)
    text = mean if half is None else f"{mean} {pm} {half}"
    return text + (_LATEX_MARKS.get(mark, mark) if latex else mark)


def table_notes(rows: list[dict], settings: list[str] | None = None) -> list[str]:
    """The notes under a table: ``settings`` (evaluation size, PSNR cap, ...), how cells read, and what each mark
    that occurs in ``rows`` means."""
    notes = list(settings or [])
    notes.append("Mean over takes ± half-width of the 95% Student-t interval; n/a: unavailable (reason in the CSV "
                 "and JSON).")
    cols = _columns(rows)
    marks = {_cell_parts(row, m, d)[2] for row in rows for m, _, d in cols}
    if NO_CI_MARK in marks:
        notes.append(f"{NO_CI_MARK} one take: the mean has no confidence interval.")
    if any(isinstance(row.get(m), (int, float)) for row in rows for m in SET_METRICS):
        notes.append("FVD and FID are set-level (one number per method and category, no CI).")
    if UNSTABLE_MARK in marks:
        from ..metrics.fid import MINIMUM_FRAMES
        from ..metrics.fvd import MINIMUM_VIDEOS

        notes.append(f"{UNSTABLE_MARK} unstable: fewer than {MINIMUM_VIDEOS} videos (FVD) or {MINIMUM_FRAMES} frames "
                     "(FID) per set, where the set-size bias dominates (docs/fvd.md); compare only at equal N.")
    return notes


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


def to_markdown(rows: list[dict], title: str = "", notes: list[str] | None = None) -> str:
    """A Markdown table: category, method, takes, then ``mean ± 95% CI half-width`` per metric, and its notes
    (:func:`table_notes`)."""
    cols = _columns(rows)
    lines = [f"{title}\n" if title else "",
             "| category | method | takes | " + " | ".join(t for _, t, _ in cols) + " |",
             "|---|---|---:|" + "---:|" * len(cols)]
    for row in rows:
        cells = [_escape_md(str(row["category"])), _escape_md(str(row["method"])), str(row["takes"])]
        cells += [_cell(row, m, d, "±") for m, _, d in cols]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("\n" + "\n".join(table_notes(rows) if notes is None else notes))
    return "\n".join(line for line in lines if line != "") + "\n"


def _escape_md(text: str) -> str:
    return text.replace("|", "\\|")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "†": r"$^\dagger$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def _latex_caption(caption: str, notes: list[str]) -> str:
    return r"\caption{" + latex_escape(" ".join(p for p in [caption + ("." if caption else "")] + notes if p)) + "}"


def to_latex(rows: list[dict], caption: str = "", label: str = "tab:syn2seq-eval",
             notes: list[str] | None = None) -> str:
    """A booktabs LaTeX table (``\\usepackage{booktabs}``), one block of rows per category; the caption carries
    the notes (:func:`table_notes`)."""
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
        cells += [_cell(row, m, d, r"$\pm$", latex=True) for m, _, d in cols]
        lines.append(" & ".join(cells) + r" \\")
        previous = row["category"]
    lines += [r"\bottomrule", r"\end{tabular}", _latex_caption(caption, table_notes(rows) if notes is None
                                                                 else notes)]
    lines += [r"\label{" + label + "}", r"\end{table}"]
    return "\n".join(lines) + "\n"


# --- the paper's layout: one row per method, a group of metric columns per category --------------
def _paper_groups(rows: list[dict]) -> tuple[list[str], list[str], list[tuple[str, str, int]], dict]:
    """Categories (each category, then "all"), methods, metric columns (those computed for some row: a metric
    unavailable everywhere is left out, :func:`_omitted` names it) and (category, method) -> row."""
    cols = [c for c in _columns(rows) if c[0] not in _omitted(rows)]
    categories = list(dict.fromkeys(r["category"] for r in rows if r["category"] != "all")) + ["all"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    return categories, methods, cols, {(r["category"], r["method"]): r for r in rows}


def _omitted(rows: list[dict]) -> dict[str, str]:
    """metric -> title of the metrics unavailable in every row."""
    return {m: t for m, t, _ in _columns(rows) if all(isinstance(r.get(m), str) or r.get(m) is None for r in rows)}


def _omitted_note(rows: list[dict]) -> list[str]:
    left = _omitted(rows)
    return [f"Not computed (reason in the CSV and JSON): {', '.join(left.values())}."] if left else []


def to_paper_markdown(rows: list[dict], title: str = "", notes: list[str] | None = None) -> str:
    """The paper's table layout in Markdown: methods x (metrics per category), each category's takes in its
    header, then "all"."""
    categories, methods, cols, by = _paper_groups(rows)
    takes = {c: next(r["takes"] for r in rows if r["category"] == c) for c in categories}
    head = ["method"] + [f"{_escape_md(str(c))} ({takes[c]}) {t}" for c in categories for _, t, _ in cols]
    lines = [f"{title}\n" if title else "", "| " + " | ".join(head) + " |",
             "|---|" + "---:|" * (len(head) - 1)]
    for m in methods:
        cells = [_escape_md(str(m))] + [_cell(by[(c, m)], k, d, "±") if (c, m) in by else "-"
                                        for c in categories for k, _, d in cols]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("\nColumns: category (takes) metric. " + " ".join((table_notes(rows) if notes is None else notes)
                                                                + _omitted_note(rows)))
    return "\n".join(line for line in lines if line != "") + "\n"


def to_paper_latex(rows: list[dict], caption: str = "", label: str = "tab:syn2seq-eval-categories",
                   notes: list[str] | None = None) -> str:
    """The paper's table layout in booktabs LaTeX: a multicolumn header per category over its metrics, one row per
    method."""
    categories, methods, cols, by = _paper_groups(rows)
    arrows = {m: (r"$\uparrow$" if up else r"$\downarrow$") for m, _, _, up in METRICS}
    n = len(cols)
    groups = " & ".join(r"\multicolumn{" + str(n) + "}{c}{" + latex_escape(str(c).title() if c == "all" else str(c))
                        + "}" for c in categories)
    rules = " ".join(r"\cmidrule(lr){" + f"{2 + i * n}-{1 + (i + 1) * n}" + "}" for i in range(len(categories)))
    metric_head = " & ".join(f"{latex_escape(t)} {arrows[m]}" for _ in categories for m, t, _ in cols)
    lines = [r"\begin{table*}[t]", r"\centering", r"\begin{tabular}{l" + " r" * (n * len(categories)) + "}",
             r"\toprule", " & " + groups + r" \\", rules, "Method & " + metric_head + r" \\", r"\midrule"]
    for m in methods:
        cells = [latex_escape(str(m))] + [_cell(by[(c, m)], k, d, r"$\pm$", latex=True) if (c, m) in by else "-"
                                          for c in categories for k, _, d in cols]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", _latex_caption(caption, (table_notes(rows) if notes is None
                                                                  else notes) + _omitted_note(rows))]
    lines += [r"\label{" + label + "}", r"\end{table*}"]
    return "\n".join(lines) + "\n"


def table_paths(stem: Path) -> dict[str, Path]:
    """Where :func:`write_tables` writes: ``<stem>.csv`` / ``.md`` / ``.tex`` and the paper layout
    ``<stem>_by_category.md`` / ``.tex``."""
    stem = Path(stem)
    return {"csv": stem.with_suffix(".csv"), "markdown": stem.with_suffix(".md"), "latex": stem.with_suffix(".tex"),
            "paper_markdown": stem.with_name(stem.name + "_by_category.md"),
            "paper_latex": stem.with_name(stem.name + "_by_category.tex")}


def render_tables(stem: Path, summaries: dict, caption: str = "", settings: list[str] | None = None
                  ) -> dict[Path, bytes]:
    """The table files of ``summaries`` (path -> contents, :func:`table_paths`), nothing written: the CSV, the
    Markdown and LaTeX tables (category, method rows) and the paper layout (methods x metrics per category), each
    with ``settings`` and the notes of its marks."""
    rows = table_rows(summaries)
    notes = table_notes(rows, settings)
    paths = table_paths(stem)
    text = {"csv": to_csv(rows), "markdown": to_markdown(rows, caption, notes),
            "latex": to_latex(rows, caption, notes=notes), "paper_markdown": to_paper_markdown(rows, caption, notes),
            "paper_latex": to_paper_latex(rows, caption, notes=notes)}
    return {paths[k]: v.encode("utf-8") for k, v in text.items()}


def write_tables(stem: Path, summaries: dict, caption: str = "", settings: list[str] | None = None
                 ) -> dict[str, Path]:
    """Write :func:`render_tables` (each file atomically); returns kind -> path."""
    files = render_tables(stem, summaries, caption, settings)
    for path, data in files.items():
        write_bytes_atomic(path, data)
    return table_paths(stem)


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or the reason it is unavailable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, "matplotlib is not installed (pip install 'syn2seq[eval]' or pip install matplotlib)"
    return plt, None


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return buffer.getvalue()


def _floats(values) -> list[float]:
    """Report values (numbers or the strings "nan"/"inf") as floats."""
    return [float(v) for v in values]


def frame_curves_figure(curves: dict, metrics=("psnr", "ssim"), note: str = ""):
    """The matplotlib figure of :func:`frame_curves_png` (the caller closes it)."""
    plt, reason = _pyplot()
    if plt is None:
        raise RuntimeError(reason)
    titles = {m: t for m, t, *_ in METRICS}
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        drawn: list[list[float]] = []
        for method, entry in curves.items():
            if metric not in entry:
                continue
            e = entry[metric]
            mean = _floats(e["mean"])
            style = styles[sum(1 for d in drawn if d == mean) % len(styles)]  # a curve equal to one drawn: dashed
            drawn.append(mean)
            line, = ax.plot(e["index"], mean, style, label=method, linewidth=1.5, marker="." if len(mean) < 3 else None)
            lo = [v if math.isfinite(v) else m for v, m in zip(_floats(e["ci_low"]), mean)]
            hi = [v if math.isfinite(v) else m for v, m in zip(_floats(e["ci_high"]), mean)]
            ax.fill_between(e["index"], lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("generated frame (0 = next to the source view)")
        ax.set_ylabel(titles.get(metric, metric))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Quality along the generated view (mean over takes, 95% CI)" + (f"\n{note}" if note else ""),
                 fontsize=9)
    return fig


def frame_curves_png(curves: dict, metrics=("psnr", "ssim"), note: str = "") -> bytes:
    """Metric per frame index along the generated view, one line (and its 95% CI band) per method: every method
    in the legend has its line (methods with equal values overlap: the later ones are dashed)."""
    import matplotlib.pyplot as plt

    fig = frame_curves_figure(curves, metrics, note)
    data = _png(fig)
    plt.close(fig)
    return data


def plot_frame_curves(curves: dict, path: Path, metrics=("psnr", "ssim"), note: str = "") -> Path:
    """:func:`frame_curves_png` written to ``path`` (atomically)."""
    return write_bytes_atomic(path, frame_curves_png(curves, metrics, note))


def examples_png(scores, per_category: int = 3) -> bytes:
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
    data = _png(fig)
    plt.close(fig)
    return data


def plot_examples(scores, path: Path, per_category: int = 3) -> Path:
    """:func:`examples_png` written to ``path`` (atomically)."""
    return write_bytes_atomic(path, examples_png(scores, per_category))


def plot_paths(stem: Path) -> dict[str, Path]:
    stem = Path(stem)
    return {"frames": stem.with_name(stem.name + "_frames.png"),
            "examples": stem.with_name(stem.name + "_examples.png")}


def render_plots(stem: Path, scores, curves: dict, note: str = "") -> tuple[dict[Path, bytes], str | None]:
    """``<stem>_frames.png`` (:func:`frame_curves_png`) and ``<stem>_examples.png`` (:func:`examples_png`) as path ->
    PNG bytes (nothing written) and None, or {} and the reason the plots were skipped."""
    plt, reason = _pyplot()
    if plt is None:
        return {}, reason
    paths = plot_paths(stem)
    return {paths["frames"]: frame_curves_png(curves, note=note), paths["examples"]: examples_png(scores)}, None


def write_plots(stem: Path, scores, curves: dict, note: str = "") -> tuple[dict[str, Path], str | None]:
    """Write :func:`render_plots`; returns the paths and None, or {} and the reason the plots were skipped."""
    files, reason = render_plots(stem, scores, curves, note)
    for path, data in files.items():
        write_bytes_atomic(path, data)
    return ({} if reason else plot_paths(stem)), reason


NO_CI = "one take: no confidence interval"


UNCATEGORISED = "(none)"


def format_ci(d: dict | None, digits: int, sign: str = "") -> str:
    """``mean [low, high]`` of a MeanCI dict (``sign="+"`` for differences); "-" for None."""
    if d is None:
        return "-"
    mean, low, high = (float(d[k]) for k in ("mean", "ci_low", "ci_high"))  # JSON keeps NaN / inf as text
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{mean:{sign}.{digits}f} (n={d.get('n', '?')}, no CI)"
    return f"{mean:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"
