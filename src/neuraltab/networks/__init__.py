"""Network modules (torch only, never pandas), the factory that builds them from a spec, and the inference path.

Every network maps ``x_num`` float32[B, n_num] and ``x_cat`` int64[B, n_cat] to float32[B, k, n_out]: k ensemble
members' logits (classification) or standardised values (regression); the plain MLP has k = 1.
"""

from .bag import Bag
from .build import bag_spec, build, network_for, spec_for
from .mlp import MLP
from .predict import predict_output, temper
from .tabm import TabM

__all__ = ["MLP", "Bag", "TabM", "bag_spec", "build", "network_for", "spec_for", "predict_output", "temper"]
