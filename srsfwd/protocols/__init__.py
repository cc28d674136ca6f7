"""Pure wire codecs: bytes in, requests out; replies in, bytes out. No sockets here."""
