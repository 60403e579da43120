"""``nasframe report RUN_DIR``: figures and one self-contained ``report.html`` from a run record.

Reads ``history.csv`` and ``summary.json`` (``nasframe.record``) and writes PNG figures and
``report.html`` (the figures embedded, so the file can be mailed on its own; each links to its PNG):

* ``progress.png``: the best score so far against queries (sample-based; with the true accuracy
  of the best-scored architecture when a tabular benchmark is known), the sampled paths' batch
  accuracy against steps (single-path) with the board's best per epoch (Cream), or the mean
  probability of each edge's leading operation per epoch (differentiable);
* ``score_vs_true.png``: the search's scores against the benchmark's accuracy, with Spearman's
  rho and Kendall's tau (torchmetrics), when the history has a ``true_accuracy`` that is not the
  score itself;
* ``pareto.png``: accuracy against FLOPs and against parameters, with the Pareto front (the
  sample-based candidates, or the architectures Cream's board held);
* ``distribution.png``: the probability of each operation per edge at the end (differentiable);
* ``cell.png``: the final cell as a graph (NAS-Bench-201, DARTS, NAS-Bench-101), or the chosen
  block of every MBConv layer.

matplotlib is needed (``pip install -e ".[report]"``); nothing else beyond nasframe's own dependencies.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nasframe.errors import NASFrameError
from nasframe.record import HISTORY, SUMMARY, read_history

REPORT = "report.html"
FIGURE_SIZE = (7.0, 4.2)


def main(argv: Sequence[str]) -> int:
    """``nasframe report RUN_DIR [--out DIR]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="nasframe report", description="Draw a search's run record (history.csv, "
                                     "summary.json) as PNG figures and one self-contained report.html.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the log directory holding history.csv and summary.json "
                        "(or a default_root_dir: its newest lightning_logs/version_N that has one)")
    parser.add_argument("--out", metavar="DIR", default=None, help="where to write the figures and report.html "
                        "(default: RUN_DIR/report)")
    args = parser.parse_args(list(argv))
    run_dir = find_run_dir(Path(args.run_dir))
    out = Path(args.out) if args.out is not None else run_dir / "report"
    written = write_report(run_dir, out)
    for path in written:
        print(path)
    return 0


def find_run_dir(path: Path) -> Path:
    """``path`` if it holds a run record, else its newest ``lightning_logs/version_N`` that does."""
    if not path.is_dir():
        raise NASFrameError(f"run directory {str(path)!r} does not exist")
    if (path / HISTORY).is_file() or (path / SUMMARY).is_file():
        return path
    versions = [p.parent for p in path.glob(f"*/version_*/{HISTORY}")] + [p.parent for p in path.glob(f"version_*/{HISTORY}")]
    if not versions:
        raise NASFrameError(f"no run record ({HISTORY}, {SUMMARY}) in {str(path)!r} or its lightning_logs/version_N "
                            "directories; give the log directory a search printed as 'run record:'")
    return max(versions, key=lambda p: (p / HISTORY).stat().st_mtime)


def write_report(run_dir: Path, out: Path) -> list[Path]:
    """Write the figures that the record allows and ``report.html`` into ``out``; returns their paths."""
    new_figure = _matplotlib()
    summary = _read_summary(run_dir)
    rows = read_history(run_dir / HISTORY) if (run_dir / HISTORY).is_file() else []
    if not rows and summary is None:
        raise NASFrameError(f"{str(run_dir)!r} holds neither {HISTORY} nor {SUMMARY}")
    out.mkdir(parents=True, exist_ok=True)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)

    figures: list[tuple[str, str, str]] = []  # (file name, title, caption)
    for name, title, draw in _FIGURES:
        result = draw(new_figure, by_kind, summary)
        if result is None:
            continue
        figure, caption = result
        _save(figure, out / name)
        figures.append((name, title, caption))
    page = _html(run_dir, out, summary, by_kind, figures)
    _write_atomically(out / REPORT, page.encode())
    return [out / name for name, _, _ in figures] + [out / REPORT]


# ---- figures ----------------------------------------------------------------------------------------------
def _progress(new_figure: Callable[..., Any], by_kind: dict[str, list], summary: dict | None) -> tuple[Any, str] | None:
    candidates, paths, board = by_kind.get("candidate", []), by_kind.get("path", []), by_kind.get("board", [])
    distribution = by_kind.get("distribution", [])
    figure, axes = new_figure()
    if candidates:
        scores = [_value(r.get("score")) for r in candidates]
        queries = list(range(1, len(scores) + 1))
        best, incumbent_true, best_so_far = -math.inf, [], []
        incumbent = None
        for row, score in zip(candidates, scores):
            if not math.isnan(score) and score > best:
                best, incumbent = score, row
            best_so_far.append(best if best > -math.inf else math.nan)
            incumbent_true.append(_value(incumbent.get("true_accuracy")) if incumbent else math.nan)
        axes.scatter(queries, scores, s=8, color="#9bb7d4", label="score of each query")
        axes.step(queries, best_so_far, where="post", color="#1f4e79", linewidth=2, label="best score so far")
        axes.set_xlabel("queries")
        axes.set_ylabel("score")
        lines, labels = axes.get_legend_handles_labels()
        if _has_true_accuracy(candidates):
            twin = axes.twinx()
            twin.step(queries, incumbent_true, where="post", color="#c0504d", linewidth=1.5,
                      label="true accuracy of the best-scored")
            twin.set_ylabel("true accuracy (%)")
            more = twin.get_legend_handles_labels()
            lines, labels = lines + more[0], labels + more[1]
        axes.legend(lines, labels, loc="lower right", fontsize=8)
        axes.set_title(f"{len(candidates)} queries: best score so far")
        return figure, ("Each query's score (dots) and the best so far (line)"
                        + (", with the benchmark accuracy of the architecture that had the best score (red)"
                           if _has_true_accuracy(candidates) else "") + ".")
    if paths:
        steps = [r["step"] for r in paths]
        accuracy = [_value(r.get("score")) for r in paths]
        axes.scatter(steps, accuracy, s=6, color="#9bb7d4", label="batch accuracy of the sampled path")
        window = min(len(accuracy), max(5, len(accuracy) // 15))
        axes.plot(steps, _running_mean(accuracy, window), color="#1f4e79", linewidth=2, label=f"running mean ({window} steps)")
        caption = "The batch accuracy of the path trained at each step, and its running mean"
        if board:  # a board record is taken at the end of its epoch: drawn at the step it was taken
            epochs = sorted({r["epoch"] for r in board})
            best = [(max(r["step"] for r in board if r["epoch"] == e), max(_value(r.get("score")) for r in board if r["epoch"] == e))
                    for e in epochs]
            if best:
                axes.plot(*zip(*best), "o-", color="#c0504d", label="board's best at the end of each epoch")
                caption += "; the best path on the prioritized board after each epoch (red)"
        axes.set_xlabel("step")
        axes.set_ylabel("accuracy (%)")
        axes.legend(loc="lower right", fontsize=8)
        axes.set_title(f"{len(paths)} sampled paths")
        return figure, caption + "."
    if distribution:
        epochs = sorted({r["epoch"] for r in distribution})
        confidence = []
        for epoch in epochs:
            leading: dict[str, float] = {}
            for r in distribution:
                if r["epoch"] == epoch:
                    leading[r["edge"]] = max(leading.get(r["edge"], 0.0), _value(r["probability"]))
            confidence.append(sum(leading.values()) / len(leading))
        axes.plot(epochs, confidence, "o-", color="#1f4e79")
        axes.set_xlabel("epoch")
        axes.set_ylabel("mean probability of the leading op")
        axes.set_ylim(0, 1.02)
        axes.set_title("how decided the architecture parameters are")
        return figure, ("Per epoch, the probability of each edge's most likely operation, averaged over the edges "
                        "(1: every edge has decided).")
    return None


def _score_vs_true(new_figure: Callable[..., Any], by_kind: dict[str, list], summary: dict | None) -> tuple[Any, str] | None:
    rows = by_kind.get("candidate") or by_kind.get("path") or []
    pairs = [(_value(r.get("score")), _value(r.get("true_accuracy"))) for r in rows]
    pairs = list({(s, t) for s, t in pairs if not (math.isnan(s) or math.isnan(t))})
    if len(pairs) < 3 or all(s == t for s, t in pairs):  # no benchmark, or the score *is* the benchmark
        return None
    spearman, kendall = rank_correlations([s for s, _ in pairs], [t for _, t in pairs])
    figure, axes = new_figure()
    axes.scatter([s for s, _ in pairs], [t for _, t in pairs], s=10, color="#1f4e79", alpha=0.7)
    axes.set_xlabel("score (the search's)")
    axes.set_ylabel("true accuracy (%)")
    axes.set_title(f"Spearman {spearman:.3f}, Kendall {kendall:.3f} ({len(pairs)} architectures)")
    return figure, (f"The search's score against the benchmark's accuracy for the {len(pairs)} distinct architectures "
                    f"with both (NaN scores left out): Spearman's rho {spearman:.3f}, Kendall's tau {kendall:.3f}.")


def _pareto(new_figure: Callable[..., Any], by_kind: dict[str, list], summary: dict | None) -> tuple[Any, str] | None:
    source = "candidate" if by_kind.get("candidate") else "board"
    latest: dict[str, dict[str, Any]] = {}
    for row in by_kind.get(source, []):  # the board: every architecture it held, at its latest score
        if row.get("architecture"):
            latest[row["architecture"]] = row
    rows = list(latest.values())
    use_true = _has_true_accuracy(rows)
    key = "true_accuracy" if use_true else "score"
    costs = [c for c in ("flops", "params") if any(r.get(c) is not None for r in rows)]
    if len(rows) < 2 or not costs:
        return None
    figure, panels = new_figure(ncols=len(costs))
    panels = panels if isinstance(panels, list) else [panels]
    final = summary.get("architecture") if summary else None
    for axes, cost in zip(panels, costs):
        points = [(_value(r.get(cost)), _value(r.get(key)), r["architecture"]) for r in rows]
        points = [p for p in points if not (math.isnan(p[0]) or math.isnan(p[1]))]
        front = pareto_front([(c, a) for c, a, _ in points])
        axes.scatter([c for c, _, _ in points], [a for _, a, _ in points], s=10, color="#9bb7d4",
                     label="candidates" if source == "candidate" else "board paths")
        axes.step([c for c, _ in front], [a for _, a in front], where="post", color="#c0504d", marker="o", markersize=3,
                  label="Pareto front")
        chosen = [(c, a) for c, a, arch in points if arch == final]
        if chosen:
            axes.scatter(*zip(*chosen), s=60, marker="*", color="#2e7d32", zorder=3, label="final architecture")
        if points and max(c for c, _, _ in points) > 20 * max(min(c for c, _, _ in points), 1e-9):
            axes.set_xscale("log")
        axes.set_xlabel("FLOPs" if cost == "flops" else "parameters")
        axes.set_ylabel("true accuracy (%)" if use_true else "score" if source == "candidate" else "board accuracy (%)")
        axes.legend(loc="lower right", fontsize=7)
    what = "sample-based candidates" if source == "candidate" else "architectures the prioritized board held"
    return figure, (f"{'Benchmark accuracy' if use_true else 'Score'} of the {len(rows)} {what} against their cost; "
                    "the line is the Pareto front (no other architecture is both cheaper and better).")


def _distribution(new_figure: Callable[..., Any], by_kind: dict[str, list], summary: dict | None) -> tuple[Any, str] | None:
    rows = by_kind.get("distribution", [])
    if not rows:
        return None
    epoch = max(r["epoch"] for r in rows)
    last = [r for r in rows if r["epoch"] == epoch]
    edges = list(dict.fromkeys(r["edge"] for r in last))
    ops = list(dict.fromkeys(r["op"] for r in last))
    value = {(r["edge"], r["op"]): _value(r["probability"]) for r in last}
    matrix = [[value.get((e, o), math.nan) for o in ops] for e in edges]
    figure, axes = new_figure(size=(1.2 + 0.9 * len(ops), 1.4 + 0.28 * len(edges)))
    image = axes.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(ops)), ops, rotation=35, ha="right", fontsize=8)
    axes.set_yticks(range(len(edges)), edges, fontsize=7 if len(edges) > 20 else 8)
    if len(edges) * len(ops) <= 120:
        for i, row in enumerate(matrix):
            for j, p in enumerate(row):
                axes.text(j, i, f"{p:.2f}", ha="center", va="center", fontsize=7, color="white" if p > 0.6 else "black")
    axes.set_xlabel("operation")
    axes.set_ylabel("edge")
    figure.colorbar(image, ax=axes, fraction=0.05)
    axes.set_title(f"operation probabilities per edge, epoch {epoch}")
    return figure, f"The probability of each operation on each edge after epoch {epoch} (softmax of the architecture parameters)."


def _cell(new_figure: Callable[..., Any], by_kind: dict[str, list], summary: dict | None) -> tuple[Any, str] | None:
    value = (summary or {}).get("architecture_value")
    if not value:
        return None
    draw = _CELL_DRAWINGS.get(value.get("space"))
    return draw(new_figure, value["choices"]) if draw is not None else None


# ---- the final cell ---------------------------------------------------------------------------------------
NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def _nb201_cell(new_figure: Callable[..., Any], ops: list[str]) -> tuple[Any, str]:
    positions = {n: (2.0 * n, 0.0) for n in range(4)}
    edges = [(src, to, op) for (to, src), op in zip(NB201_EDGES, ops)]
    figure, axes = new_figure(size=(7.0, 3.6))
    _draw_graph(axes, positions, {n: str(n) for n in positions}, edges, muted={"none"})
    axes.set_title("final NAS-Bench-201 cell")
    return figure, "The final cell: nodes 0 (input) to 3 (output), each edge labelled with its operation ('none' edges, dashed, carry nothing)."


DARTS_SHORT = {"skip_connect": "skip", "max_pool_3x3": "max3", "avg_pool_3x3": "avg3", "sep_conv_3x3": "sep3",
               "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3", "dil_conv_5x5": "dil5"}
MAX_DARTS_PANELS = 8


def _darts_cell(new_figure: Callable[..., Any], cells: list[list[list[Any]]]) -> tuple[Any, str]:
    distinct: dict[str, list[int]] = {}
    for index, genes in enumerate(cells):
        distinct.setdefault(json.dumps(genes), []).append(index)
    shown = list(distinct.items())[:MAX_DARTS_PANELS]
    columns = 1 if len(shown) == 1 else 2
    rows = math.ceil(len(shown) / columns)
    figure, panels = new_figure(nrows=rows, ncols=columns, size=(5.2 * columns, 2.7 * rows))
    panels = panels if isinstance(panels, list) else [panels]
    # inputs on the left, the four nodes in a zigzag (fewer crossing edges), the output on the right
    positions = {0: (0.0, 1.3), 1: (0.0, -1.3), 2: (2.0, 0.7), 3: (3.6, -0.7), 4: (5.2, 0.7), 5: (6.8, -0.7), "out": (8.6, 0.0)}
    labels = {0: "c[k-2]", 1: "c[k-1]", **{n: str(n) for n in range(2, 6)}, "out": "c[k]"}
    for axes, (genes_json, indices) in zip(panels, shown):
        edges = [(source, 2 + g // 2, DARTS_SHORT.get(op, op)) for g, (op, source) in enumerate(json.loads(genes_json))]
        edges += [(n, "out", "") for n in range(2, 6)]
        _draw_graph(axes, positions, labels, edges, muted={""}, box=True)
        axes.set_title(f"cell{'s' if len(indices) > 1 else ''} {_ranges(indices)}", fontsize=9)
    for axes in panels[len(shown):]:
        axes.axis("off")
    names = ", ".join(f"{short} = {op}" for op, short in DARTS_SHORT.items())
    caption = (f"The final DARTS cells ({len(distinct)} distinct of {len(cells)}"
               f"{f'; the first {MAX_DARTS_PANELS} shown' if len(distinct) > MAX_DARTS_PANELS else ''}): inputs c[k-2] "
               f"and c[k-1], nodes 2-5 with two input edges each, labelled with the operation ({names}); the output "
               "c[k] concatenates nodes 2-5 (dashed).")
    return figure, caption


def _nb101_cell(new_figure: Callable[..., Any], choices: list[Any]) -> tuple[Any, str]:
    matrix, ops = choices
    labels_all = ["input", *ops, "output"]
    vertices = len(matrix)
    # only what computes: vertices on a path from the input to the output (as the benchmark prunes)
    reached, reaching = {0}, {vertices - 1}
    for j in range(vertices):
        if any(matrix[i][j] and i in reached for i in range(j)):
            reached.add(j)
    for i in reversed(range(vertices)):
        if any(matrix[i][j] and j in reaching for j in range(i + 1, vertices)):
            reaching.add(i)
    kept = sorted(reached & reaching)
    depth = {v: 0 for v in kept}
    for j in kept:  # upper triangular: index order is a topological order
        for i in kept:
            if i < j and matrix[i][j]:
                depth[j] = max(depth[j], depth[i] + 1)
    layers: dict[int, list[int]] = {}
    for v in kept:
        layers.setdefault(depth[v], []).append(v)
    positions = {v: (2.4 * depth[v], 1.2 * (k - (len(layers[depth[v]]) - 1) / 2)) for d in layers for k, v in enumerate(layers[d])}
    edges = [(i, j, "") for i in kept for j in kept if matrix[i][j]]
    figure, axes = new_figure(size=(7.5, 3.6))
    _draw_graph(axes, positions, {v: labels_all[v].replace("-bn-relu", "") for v in kept}, edges, box=True)
    axes.set_title("final NAS-Bench-101 cell")
    return figure, ("The final cell, as the benchmark prunes it (vertices on a path from input to output), each vertex "
                    "labelled with its operation and placed by its longest distance from the input.")


def _mbconv_blocks(new_figure: Callable[..., Any], blocks: list[str]) -> tuple[Any, str]:
    kernels = sorted({int(b[1:].split("_")[0]) for b in blocks if b != "skip"})
    colours = dict(zip(kernels, ("#9bb7d4", "#1f4e79", "#c0504d", "#2e7d32", "#8064a2")))
    figure, axes = new_figure(size=(max(5.0, 0.45 * len(blocks) + 2), 3.6))
    for index, block in enumerate(blocks):
        if block == "skip":
            axes.bar(index, 0.15, color="#dddddd", edgecolor="#999999")
            axes.text(index, 0.25, "skip", ha="center", va="bottom", fontsize=7, rotation=90)
            continue
        kernel, expansion = (int(v) for v in block[1:].replace("_e", " ").split())
        axes.bar(index, expansion, color=colours.get(kernel, "#777777"))
        axes.text(index, expansion + 0.1, f"{kernel}x{kernel}", ha="center", va="bottom", fontsize=7)
    for kernel, colour in colours.items():
        axes.bar(0, 0, color=colour, label=f"kernel {kernel}x{kernel}")
    axes.set_xticks(range(len(blocks)), [str(i) for i in range(len(blocks))], fontsize=8)
    axes.set_ylim(0, 1.4 * max([1.0] + [float(b.split("_e")[1]) for b in blocks if b != "skip"]))
    axes.set_xlabel("searchable block")
    axes.set_ylabel("expansion ratio")
    axes.legend(fontsize=8, loc="upper center", ncol=max(1, len(colours)))
    axes.set_title("final MBConv blocks")
    return figure, "The block chosen for each searchable layer: bar height the expansion ratio, colour the kernel size (grey: skipped)."


_CELL_DRAWINGS: dict[str, Callable[..., tuple[Any, str]]] = {
    "nb201": _nb201_cell, "darts": _darts_cell, "nb101": _nb101_cell, "mbconv": _mbconv_blocks,
}


def _draw_graph(axes: Any, positions: dict[Any, tuple[float, float]], labels: dict[Any, str],
                edges: list[tuple[Any, Any, str]], muted: set[str] = frozenset(), box: bool = False) -> None:
    """Nodes at ``positions`` and labelled directed edges; an edge that would pass through another
    node bends, alternately above and below, and its label sits at the middle of its curve."""
    from matplotlib.patches import FancyArrowPatch

    bends: dict[tuple[Any, Any], float] = {}
    side = 1
    for source, target, _ in edges:
        (x1, y1), (x2, y2) = positions[source], positions[target]
        blocked = any(_on_segment(positions[n], (x1, y1), (x2, y2)) for n in positions if n not in (source, target))
        if blocked:
            bends[(source, target)] = side * (0.28 + 0.04 * len([b for b in bends.values() if b * side > 0]))
            side = -side
    nodes = {node: axes.text(x, y, labels[node], ha="center", va="center", fontsize=8.5, zorder=3,
                             bbox=dict(boxstyle="round,pad=0.35" if box else "circle,pad=0.3", facecolor="#eef3f8",
                                       edgecolor="#1f4e79"))
             for node, (x, y) in positions.items()}
    for source, target, label in edges:
        (x1, y1), (x2, y2) = positions[source], positions[target]
        rad = bends.get((source, target), 0.0)
        style = dict(color="#aaaaaa", linestyle="--") if label in muted else dict(color="#1f4e79")
        # clipped at the nodes' boxes, so that arrowheads stop at the box whatever its width
        axes.add_patch(FancyArrowPatch((x1, y1), (x2, y2), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                       patchA=nodes[source].get_bbox_patch(), patchB=nodes[target].get_bbox_patch(),
                                       mutation_scale=12, shrinkA=1, shrinkB=1, linewidth=1.3, **style))
        if label:
            # the midpoint of matplotlib's arc3 curve: halfway to its control point
            dx, dy = x2 - x1, y2 - y1
            mx, my = (x1 + x2) / 2 + 0.5 * rad * dy, (y1 + y2) / 2 - 0.5 * rad * dx
            axes.text(mx, my, label, ha="center", va="center", fontsize=7.5, color="#333333" if label not in muted else "#999999",
                      bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.9))
    xs, ys = [p[0] for p in positions.values()], [p[1] for p in positions.values()]
    span = max(xs) - min(xs)
    axes.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    bend = max([abs(b) for b in bends.values()] + [0.0]) * span / 2  # how far the widest arc leaves the nodes' row
    axes.set_ylim(min(ys) - bend - 0.7, max(ys) + bend + 0.7)
    axes.set_aspect("equal")
    axes.axis("off")


def _on_segment(point: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> bool:
    (px, py), (ax, ay), (bx, by) = point, a, b
    cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    if abs(cross) > 1e-6 * max(1.0, abs(bx - ax) + abs(by - ay)):
        return False
    return min(ax, bx) - 1e-9 <= px <= max(ax, bx) + 1e-9 and min(ay, by) - 1e-9 <= py <= max(ay, by) + 1e-9


_FIGURES: list[tuple[str, str, Callable[..., tuple[Any, str] | None]]] = [
    ("progress.png", "Search progress", _progress),
    ("score_vs_true.png", "Score against true accuracy", _score_vs_true),
    ("pareto.png", "Accuracy against cost", _pareto),
    ("distribution.png", "Operation distribution", _distribution),
    ("cell.png", "Final architecture", _cell),
]


# ---- numbers ----------------------------------------------------------------------------------------------
def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points (cost, accuracy) that no other point beats on both (lower cost, higher accuracy),
    by increasing cost."""
    front: list[tuple[float, float]] = []
    for cost, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or accuracy > front[-1][1]:
            front.append((cost, accuracy))
    return front


def rank_correlations(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's rho and Kendall's tau (tau-b, ties handled) of ``x`` against ``y``."""
    import torch
    from torchmetrics.functional import kendall_rank_corrcoef, spearman_corrcoef

    a, b = torch.tensor(list(x), dtype=torch.float64), torch.tensor(list(y), dtype=torch.float64)
    return float(spearman_corrcoef(a, b)), float(kendall_rank_corrcoef(a, b))


def _running_mean(values: list[float], window: int) -> list[float]:
    means, kept = [], []
    for value in values:
        kept.append(value)
        recent = [v for v in kept[-window:] if not math.isnan(v)]
        means.append(sum(recent) / len(recent) if recent else math.nan)
    return means


def _value(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def _has_true_accuracy(rows: list[dict[str, Any]]) -> bool:
    return any(isinstance(r.get("true_accuracy"), float) and not math.isnan(r["true_accuracy"]) for r in rows)


def _ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 5]`` as ``"0-2, 5"``."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


# ---- files ------------------------------------------------------------------------------------------------
def _matplotlib() -> Callable[..., Any]:
    """A figure factory on matplotlib's Agg canvas (no pyplot: no display, no global state)."""
    try:
        from matplotlib.figure import Figure
    except ModuleNotFoundError:
        raise NASFrameError('nasframe report needs matplotlib: pip install -e ".[report]"') from None

    def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] | None = None) -> tuple[Any, Any]:
        width, height = size or (FIGURE_SIZE[0] * (1 if ncols == 1 else 0.62 * ncols), FIGURE_SIZE[1])
        figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
        axes = figure.subplots(nrows, ncols, squeeze=False).ravel().tolist()
        return figure, axes if len(axes) > 1 else axes[0]

    return new_figure


def _save(figure: Any, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    _write_atomically(path, buffer.getvalue())


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / SUMMARY
    if not path.is_file():
        return None  # a search still running, or killed: the history alone
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise NASFrameError(f"{str(path)!r} is not valid JSON ({exc})") from None


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_bytes(data)
    os.replace(temporary, path)


# ---- the page ---------------------------------------------------------------------------------------------
def _html(run_dir: Path, out: Path, summary: dict | None, by_kind: dict[str, list], figures: list[tuple[str, str, str]]) -> str:
    e = html.escape

    def relative(name: str) -> str:  # the run's files, as seen from the report's directory
        return Path(os.path.relpath(run_dir / name, out)).as_posix()

    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>nasframe report: {e(str(run_dir))}</title>",
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>nasframe search report</h1><p class='dim'>{e(str(run_dir))}</p>"]
    if summary is not None:
        parts.append("<h2>Result</h2>" + _table(_summary_rows(summary)))
    else:
        parts.append("<p><b>No summary.json</b>: the search has not finished (or was killed); the history so far is shown.</p>")
    for name, title, caption in figures:
        data = base64.b64encode((out / name).read_bytes()).decode()
        parts.append(f"<h2>{e(title)}</h2><figure><img alt='{e(title)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{e(caption)} <a href='{e(name)}'>{e(name)}</a></figcaption></figure>")
    top = _top_rows(by_kind)
    if top:
        parts.append(f"<h2>{e(top[0])}</h2>" + _table(top[1], header=True))
    files = [name for name in (SUMMARY, HISTORY, "config.yaml", "hparams.yaml", "metrics.csv") if (run_dir / name).is_file()]
    if files:
        parts.append("<h2>Files</h2><p>" + " &middot; ".join(f"<a href='{e(relative(n))}'>{e(n)}</a>" for n in files) + "</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _summary_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = [["strategy", summary.get("strategy", "")], ["architecture", summary.get("architecture", "")]]
    cost = summary.get("cost") or {}
    if cost:
        rows.append(["cost", ", ".join(f"{k} {_number(v)}" for k, v in cost.items())])
    if summary.get("true_accuracy") is not None:
        rows.append(["true accuracy", _number(summary["true_accuracy"])])
    for group in ("metrics", "evaluation", "search_report"):
        for name, value in (summary.get(group) or {}).items():
            rows.append([name, _number(value)])
    rows += [["exported to", summary.get("export_dir") or "(nothing exported)"],
             ["seed", f"{summary.get('seed')} (strategy {summary.get('strategy_seed')})"],
             ["wall time", f"{summary.get('wall_time_s', 0):.1f} s (steps: {summary.get('global_step')}, "
                           f"epochs: {summary.get('epochs')})"],
             ["versions", ", ".join(f"{k} {v}" for k, v in (summary.get("versions") or {}).items() if v)],
             ["finished", summary.get("finished", "")]]
    return [[str(k), str(v)] for k, v in rows]


def _top_rows(by_kind: dict[str, list]) -> tuple[str, list[list[str]]] | None:
    candidates = [r for r in by_kind.get("candidate", []) if not math.isnan(_value(r.get("score")))]
    if candidates:
        best = sorted(candidates, key=lambda r: -_value(r["score"]))[:10]
        title = f"Best {len(best)} of {len(by_kind['candidate'])} candidates"
    elif by_kind.get("board"):
        epoch = max(r["epoch"] for r in by_kind["board"])
        best = [r for r in by_kind["board"] if r["epoch"] == epoch]
        title = f"The prioritized board after epoch {epoch}"
    else:
        return None
    columns = [c for c in ("architecture", "score", "true_accuracy", "params", "flops", "step") if any(r.get(c) is not None for r in best)]
    return title, [columns] + [[_number(r.get(c)) if c != "architecture" else str(r.get(c)) for c in columns] for r in best]


def _table(rows: list[list[str]], header: bool = False) -> str:
    e = html.escape
    body = []
    for i, row in enumerate(rows):
        tag = "th" if header and i == 0 else "td"
        body.append("<tr>" + "".join(f"<{tag}>{e(str(cell))}</{tag}>" for cell in row) + "</tr>")
    return "<table>" + "".join(body) + "</table>"


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value.is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:.4g}"
    return str(value)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.dim { color: #777; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f6f9; } td:first-child { white-space: nowrap; } td { word-break: break-all; }
figure { margin: 0.5em 0; } img { max-width: 100%; border: 1px solid #eee; } figcaption { color: #555; font-size: 0.9em; }
"""
