# Verify the ARC chain of the message on standard input with Mail::DKIM::ARC::Verifier,
# asking the DNS server at 127.0.0.1:PORT. Prints "RESULT DETAIL".
use strict;
use warnings;
use Mail::DKIM::ARC::Verifier;
use Net::DNS::Resolver;

my ($port) = @ARGV;
Mail::DKIM::DNS::resolver(
    Net::DNS::Resolver->new(
        nameservers => ['127.0.0.1'], port => $port,
        tcp_timeout => 5, udp_timeout => 5,
    )
);
my $arc = Mail::DKIM::ARC::Verifier->new();
binmode STDIN;
while (<STDIN>) { s/\r?\n\z/\015\012/; $arc->PRINT($_); }
$arc->CLOSE;
printf "%s %s\n", $arc->result, ($arc->result_detail // '');
