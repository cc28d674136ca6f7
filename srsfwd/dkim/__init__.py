"""DKIM and ARC: keys, signing, verifying and sealing."""
