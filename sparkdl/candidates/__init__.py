"""Nodule candidate generation for scans that come without a candidate list: the lung mask
and the multi-scale blob detector, in NumPy and SciPy, one volume at a time (no Spark)::

    from sparkdl.candidates import CandidateOptions, generate_candidates
    found = generate_candidates(hu, spacing, origin, direction, CandidateOptions())
    # [Candidate(coord_x=..., coord_y=..., coord_z=..., diameter_mm=..., score=..., ...)]

Modules: :mod:`.lungs` (lungs in, juxtapleural nodules in, airways and the outside
out), :mod:`.blobs` (the multi-scale Hessian response and its peaks), :mod:`.generate` (the
working grid, the search, merging, world coordinates). A leaf: it imports only
:mod:`sparkdl.geometry` and :mod:`sparkdl.errors`.
"""

from sparkdl.candidates.generate import Candidate, CandidateOptions, generate_candidates
from sparkdl.candidates.lungs import lung_mask

__all__ = ["Candidate", "CandidateOptions", "generate_candidates", "lung_mask"]
