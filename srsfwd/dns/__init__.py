"""DNS: the one resolver every srsfwd feature asks (``resolver``) and SPF over it (``spf``)."""
