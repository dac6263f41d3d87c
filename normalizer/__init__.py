"""normalizer: restore spun (synonym-swapped) news text to its original wording.

>>> from normalizer import normalize
>>> normalize("The firm mentioned final 12 months that income rose.")  # doctest: +SKIP
"""

from normalizer.api import normalize
from normalizer.core import Edit, InferenceConfig, Normalizer, Rejection, Restoration

__all__ = ["Edit", "InferenceConfig", "Normalizer", "Rejection", "Restoration", "normalize"]
__version__ = "0.1.0"
