"""Size limits shared by every way a message comes in (command line, milter, pipeline)."""

from __future__ import annotations

#: Largest message taken: bigger ones are a clear refusal, never a memory problem.
MAX_MESSAGE = 64 * 1024 * 1024
