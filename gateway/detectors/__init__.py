"""Built-in PII and secret detectors for policy rules (``match: {detector: …}``).

The policy compiler calls ``build_detector``; the sluice scans ``Detector.pattern`` and calls
``Detector.validate`` on each complete candidate. See docs/detectors.md for each detector's
behaviour, options, measured precision and recall, and limitations.
"""

from gateway.detectors.base import Detector, DetectorError, Validator
from gateway.detectors.registry import KNOWN_DETECTORS, build_detector, detector_options_schema

__all__ = [
    "KNOWN_DETECTORS",
    "Detector",
    "DetectorError",
    "Validator",
    "build_detector",
    "detector_options_schema",
]
