"""Likelihood landscape atlas (seed B): find, certify and classify every critical point.

Chen, Song, Xi and Zhang, "Local Minima Structures in Gaussian Mixture Models" (IEEE TIT
2024) prove that, under a separation condition, every local minimum of the population
NLL of an equal-weight isotropic GMM is a non-overlapping combination of one-fits-many and
many-fit-one groups. :func:`explore` maps a landscape and returns an :class:`Atlas`;
:mod:`gmmscape.landscape.studies` holds the separation, bifurcation and random
initialization studies.
"""

from gmmscape.landscape.atlas import Atlas, CriticalPoint, wilson
from gmmscape.landscape.certify import Certificate, certify
from gmmscape.landscape.explore import explore
from gmmscape.landscape.structure import groups, is_non_overlapping, signature

__all__ = [
    "Atlas",
    "Certificate",
    "CriticalPoint",
    "certify",
    "explore",
    "groups",
    "is_non_overlapping",
    "signature",
    "wilson",
]
