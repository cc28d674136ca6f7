# Verify every DKIM signature of the message on standard input with Mail::DKIM,
# asking the DNS server at 127.0.0.1:PORT. Prints "RESULT DOMAIN SELECTOR DETAIL" per line.
use strict; use warnings;
use Mail::DKIM::Verifier; use Net::DNS::Resolver;
my ($port) = @ARGV;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(nameservers => ['127.0.0.1'], port => $port, tcp_timeout=>3, udp_timeout=>3, recurse => 1));
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (<STDIN>) { s/\r?\n\z/\015\012/; $dkim->PRINT($_); }
$dkim->CLOSE;
foreach my $sig ($dkim->signatures) { printf "%s %s %s %s\n", $sig->result, $sig->domain, $sig->selector, ($sig->result_detail // ''); }
