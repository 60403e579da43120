"""SemiNAS ("Semi-Supervised Neural Architecture Search", Luo et al., NeurIPS 2020) as a nasframe plugin.

A predictor-based, sample-based strategy on any search space with a token view (NAS-Bench-201,
NAS-Bench-101, DARTS): an LSTM encoder, an MLP predictor and an attention LSTM decoder constrained
to valid tokens, trained on evaluated plus pseudo-labelled architectures; new candidates decode
from embeddings moved along the predictor's gradient. Works with any evaluator. Registered under
the ``nasframe`` entry-point group as ``seminas``.
"""

from nasframe_seminas.decoder import AttentionDecoder, position_mask
from nasframe_seminas.encoder import SequenceEncoder
from nasframe_seminas.loop import SearchContext, run_search
from nasframe_seminas.model import SemiNASModel, semi_supervised_fit, train_steps
from nasframe_seminas.predictor import Predictor
from nasframe_seminas.strategy import SemiNAS

__all__ = ["AttentionDecoder", "Predictor", "SearchContext", "SemiNAS", "SemiNASModel", "SequenceEncoder", "position_mask",
           "run_search", "semi_supervised_fit", "train_steps"]


def nasframe_components() -> dict[str, list[type]]:
    """What this plugin adds (shown by ``nasframe list``)."""
    return {"strategies": [SemiNAS]}
