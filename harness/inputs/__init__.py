"""Reading transcripts from files, streamed."""

from harness.inputs.formats import InputFormat
from harness.inputs.reader import parse_record, read_transcripts

__all__ = ["InputFormat", "parse_record", "read_transcripts"]
