"""Reading transcripts, streamed: which inputs a run reads (:mod:`.sources`) and how each
file's records are read (:mod:`.reader`)."""

from harness.inputs.formats import InputFormat
from harness.inputs.reader import decode, iter_raw, parse_record, read_transcripts
from harness.inputs.sources import (
    InputSpecError,
    Source,
    describe_sources,
    first_seqs,
    iter_entries,
    resolve_inputs,
    same_inputs,
)

__all__ = ["InputFormat", "InputSpecError", "Source", "decode", "describe_sources",
           "first_seqs", "iter_entries", "iter_raw", "parse_record", "read_transcripts",
           "resolve_inputs", "same_inputs"]
