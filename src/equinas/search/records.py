"""The import path of earlier versions (``from equinas.search.records import RunDirectory``):
the record format now lives in ``search.record``, the run directory in
``search.run_directory``; ``equinas.search`` exports both."""

from equinas.search.record import CandidateRecord
from equinas.search.run_directory import RunDirectory

__all__ = ["CandidateRecord", "RunDirectory"]
