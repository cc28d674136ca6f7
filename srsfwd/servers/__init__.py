"""The daemon: asyncio servers around the pure codecs and handlers (the only sockets)."""
