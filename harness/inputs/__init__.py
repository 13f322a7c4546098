"""Reading transcripts from files, streamed."""

from harness.inputs.formats import InputFormat
from harness.inputs.reader import decode, iter_raw, parse_record, read_transcripts

__all__ = ["InputFormat", "decode", "iter_raw", "parse_record", "read_transcripts"]
