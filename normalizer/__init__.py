"""normalizer: restore spun (synonym-swapped) news text to its original wording.

>>> from normalizer import normalize
>>> normalize("The firm mentioned final 12 months that income rose.")  # doctest: +SKIP
"""

from normalizer.api import load, normalize
from normalizer.edits import Edit
from normalizer.restorer import Rejection, Restoration, Restorer

__all__ = ["Edit", "Rejection", "Restoration", "Restorer", "load", "normalize"]
__version__ = "0.1.0"
