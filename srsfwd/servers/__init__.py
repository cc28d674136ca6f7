"""The daemon: asyncio servers around the pure codecs and the SRS maps (the only sockets)."""
