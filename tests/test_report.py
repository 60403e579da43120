"""`nasframe report`: every figure a strategy kind allows, a self-contained HTML page that links only
to files that exist, the cell drawings of every built-in space, and the errors a user can act on."""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch

from nasframe.cli import main
from nasframe.record import HISTORY, SUMMARY
from nasframe.report import REPORT, pareto_front, rank_correlations, write_report
from recorded import run

FIGURES = {
    "sample_based": {"progress.png", "score_vs_true.png", "pareto.png", "cell.png"},
    "single_path": {"progress.png", "cell.png"},
    "differentiable": {"progress.png", "distribution.png", "cell.png"},
    "cream": {"progress.png", "pareto.png", "cell.png"},
}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def check_page(out, figures):
    """report.html embeds every figure and links only to files that exist."""
    page = (out / REPORT).read_text()
    references = re.findall(r"""(?:href|src)=['"]([^'"]+)['"]""", page)
    files = [r for r in references if not r.startswith("data:")]
    assert files and all((out / r).resolve().is_file() for r in files), [r for r in files if not (out / r).resolve().is_file()]
    embedded = [r for r in references if r.startswith("data:image/png;base64,")]
    assert len(embedded) == len(figures)
    for name in figures:
        assert (out / name).read_bytes().startswith(PNG) and name in files


@pytest.mark.parametrize("kind", sorted(FIGURES))
def test_every_figure_is_written_for_each_strategy_kind(tmp_path, kind, capsys):
    _, directory = run(kind, tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path)])  # the default_root_dir: its newest version_N with a record
    assert exit_info.value.code == 0
    out = directory / "report"
    written = {p.name for p in out.iterdir()}
    assert written == FIGURES[kind] | {REPORT}
    assert capsys.readouterr().out.split() == [str(out / name) for name in sorted(written, key=_order)]
    check_page(out, FIGURES[kind])
    assert "Spearman" in (out / REPORT).read_text() or kind != "sample_based"


def _order(name):
    return [*["progress.png", "score_vs_true.png", "pareto.png", "distribution.png", "cell.png"], REPORT].index(name)


@pytest.mark.parametrize("space_name", ["nb201", "darts", "nb101", "mbconv"])
def test_the_final_cell_of_every_built_in_space_is_drawn(tmp_path, space_name):
    from nasframe.spaces.darts import DARTSSpace
    from nasframe.spaces.mbconv import MBConvSpace
    from nasframe.spaces.nb101 import NB101Space
    from nasframe.spaces.nb201 import NB201Space

    space = {"nb201": NB201Space, "darts": lambda: DARTSSpace(cells=5), "nb101": NB101Space, "mbconv": MBConvSpace}[space_name]()
    architecture = space.sample(torch.Generator().manual_seed(1))
    (tmp_path / SUMMARY).write_text(json.dumps({"strategy": "X", "architecture": space.format(architecture),
                                                "architecture_value": architecture.to_dict()}))
    written = write_report(tmp_path, tmp_path / "out")
    assert [p.name for p in written] == ["cell.png", REPORT]
    check_page(tmp_path / "out", ["cell.png"])


def test_a_killed_search_is_reported_from_its_history_alone(tmp_path):
    (tmp_path / HISTORY).write_text("kind,step,epoch,architecture,score,wall_time\n"
                                    + "".join(f"candidate,{i},0,a{i},{i % 5},{i}\n" for i in range(1, 9)))
    written = write_report(tmp_path, tmp_path / "out")
    assert [p.name for p in written] == ["progress.png", REPORT]
    page = (tmp_path / "out" / REPORT).read_text()
    assert "No summary.json" in page
    check_page(tmp_path / "out", ["progress.png"])


def test_errors_are_one_line_naming_what_to_do(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path)])
    assert exit_info.value.code == 1
    assert f"no run record (history.csv, summary.json) in {str(tmp_path)!r}" in capsys.readouterr().err
    (tmp_path / HISTORY).write_text("kind,step\n")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.strip().splitlines() == ['nasframe: error: nasframe report needs matplotlib: '
                                                                      'pip install -e ".[report]"']


def test_pareto_front_and_rank_correlations():
    points = [(3.0, 70.0), (1.0, 60.0), (2.0, 60.0), (2.0, 65.0), (4.0, 69.0), (5.0, 90.0)]
    assert pareto_front(points) == [(1.0, 60.0), (2.0, 65.0), (3.0, 70.0), (5.0, 90.0)]
    assert rank_correlations([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx((1.0, 1.0))
    assert rank_correlations([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx((-1.0, -1.0))
    spearman, kendall = rank_correlations([1, 2, 3, 4, 5], [1, 3, 2, 5, 4])
    assert spearman == pytest.approx(0.8) and kendall == pytest.approx(0.6)
