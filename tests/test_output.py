"""What a user sees by default: a progress bar with the search's own figures, a CSV log with the
config as hyperparameters (TensorBoard where installed), the summary on stdout, and none of
Lightning's tips or warnings that a user cannot act on."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import ROOT
from nasframe.cli import main
from nasframe.progress import SearchRichProgressBar, SearchTQDMProgressBar
from recorded import build, trainer

QUICKSTART = str(ROOT / "examples" / "quickstart.yaml")
NOISE = ("💡 Tip", "GPU available:", "TPU available:", "tensorboardX", "LightningCLI's args parameter",
         "configure_optimizers` returned `None`", "but have no `val_dataloader`", "LeafSpec", "logging interval")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def quickstart(tmp_path, *extra):
    return ["fit", "--config", QUICKSTART, "--trainer.max_steps", "4", "--trainer.default_root_dir", str(tmp_path),
            "--model.init_args.search_space.init_args.channels", "4", "--data.init_args.limit_train", "64",
            "--model.init_args.export_dir", str(tmp_path / "export"), *extra]


def test_a_search_prints_its_progress_and_result_and_no_noise(tmp_path, capfd, recwarn):
    main(quickstart(tmp_path))
    out, err = capfd.readouterr()
    assert "Epoch 0:" in out  # the progress bar is on in the example config
    summary = out[out.index("nasframe search finished"):]
    assert "architecture:" in summary and "run record:" in summary  # the result: on stdout, as `nasframe export` prints it
    shown = err + "\n".join(str(w.message) for w in recwarn)
    assert not [n for n in NOISE if n in shown], shown


def test_the_default_logger_is_csv_with_the_config_as_hyperparameters(tmp_path, capfd):
    main(quickstart(tmp_path))
    directory = tmp_path / "lightning_logs" / "version_0"
    assert (directory / "metrics.csv").read_text().startswith("epoch,")
    hyperparameters = yaml.safe_load((directory / "hparams.yaml").read_text())
    assert hyperparameters["model"]["init_args"]["search_space"]["init_args"]["channels"] == 4
    assert {"history.csv", "summary.json", "config.yaml"} <= {p.name for p in directory.iterdir()}


def test_tensorboard_where_installed_logs_hyperparameters_with_final_metrics(tmp_path, capfd):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    main(quickstart(tmp_path))
    events = next((tmp_path / "lightning_logs" / "version_0").glob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert "model/init_args/search_space/init_args/channels" in start.hparams
    assert "export/val_accuracy" in {m.name.tag for m in experiment.metric_infos}


def test_a_sample_based_search_shows_queries_against_its_budget_and_warns_of_nothing(tmp_path, recwarn):
    nas, data = build("sample_based", tmp_path)
    fit = trainer(tmp_path, enable_progress_bar=True)
    bar = fit.progress_bar_callback
    assert isinstance(bar, (SearchRichProgressBar, SearchTQDMProgressBar))
    fit.fit(nas, datamodule=data)
    metrics = bar.get_metrics(fit, nas)
    assert metrics["search/evaluated"] == "24/24" and metrics["search/best_score"] == max(s for _, s in nas.strategy.history)
    noise = [str(w.message) for w in recwarn if any(n in str(w.message) for n in NOISE)]
    assert not noise


def test_rich_progress_bar_where_rich_is_installed():
    import importlib.util

    from nasframe.progress import search_progress_bar

    expected = SearchTQDMProgressBar if importlib.util.find_spec("rich") is None else SearchRichProgressBar
    assert type(search_progress_bar()) is expected


def test_an_explicit_progress_bar_or_logger_setting_is_kept(tmp_path):
    from lightning.pytorch.callbacks import TQDMProgressBar

    own = TQDMProgressBar(refresh_rate=5)
    fit = trainer(tmp_path, enable_progress_bar=True, callbacks=[own], logger=False, log_every_n_steps=7)
    assert fit.progress_bar_callback is own and not fit.loggers and fit.log_every_n_steps == 7
    assert re.fullmatch(r"\d+", str(trainer(tmp_path).log_every_n_steps)) and trainer(tmp_path).log_every_n_steps == 1
