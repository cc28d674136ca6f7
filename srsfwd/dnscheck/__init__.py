"""DNS: the one resolver every srsfwd feature asks, and record checks."""
