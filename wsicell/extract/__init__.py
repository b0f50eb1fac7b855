"""`extract`: slides -> nuclei (crops, geometry, morphology) in the Zarr cell store."""

from wsicell.extract.config import ExtractConfig
from wsicell.extract.pipeline import (
    ExtractReport,
    SlideReport,
    extract_slide,
    extract_slides,
    stored_config,
)

__all__ = ["ExtractConfig", "ExtractReport", "SlideReport", "extract_slide", "extract_slides", "stored_config"]
