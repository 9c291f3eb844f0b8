"""Analyses of binarized features: capture, uniqueness ratio η (Table 1), SSIM / ENDSIM (Table 2), the +1
fraction per layer (Fig. 5) and feature-map figures (Fig. 1/4)."""
from .capture import binary_layers, capture
from .similarity import ENCODINGS, endsim, layer_dissimilarity, pairwise_ssim, plus_one_fraction
from .uniqueness import count_distinct, layer_uniqueness, responses, uniqueness_ratio, uniqueness_ratio_lab
