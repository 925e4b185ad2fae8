"""The inference layer: how a model is fitted.

``config`` (``TrainConfig``), ``guides`` (the variational families, which hand out
population draws and user weights), ``elbo`` (the training loss: the ELBO site by site,
equal to Pyro's ``Trace_ELBO``, and its compiled form), ``trainer`` (the minibatched SVI loop and its
checkpoint state), ``distributed`` (ranks of a ``torchrun`` launch), ``train`` (one fit,
from data and the two configurations to the trained state) and ``tuning`` (the self-tuning
fit: a validation split, and the candidates' comparison on it); ``callbacks`` (what a fit
reports every epoch, and a TensorBoard logger).
"""

from bayespal.inference.callbacks import EpochInfo, TensorBoard
from bayespal.inference.config import TrainConfig
from bayespal.inference.guides import PALGuide
from bayespal.inference.train import Trained, build, train
from bayespal.inference.tuning import Selection, tuned_train

__all__ = ["EpochInfo", "PALGuide", "Selection", "TensorBoard", "TrainConfig", "Trained", "build",
           "train", "tuned_train"]
