#!/usr/bin/perl
# Mail::SRS 0.31 as a peer in srsfwd's interoperability tests.
# One request per line on standard input, tab-separated:
#   F|R  unix-time  separator  hash-length  secret[,secret...]  address  [alias]
# One answer per line: "OK<tab>result" or "ERR<tab>message".
use strict;
use warnings;

our $NOW;
# Mail::SRS reads the clock with time(): pin it to the time each request names.
BEGIN { *CORE::GLOBAL::time = sub () { defined $main::NOW ? $main::NOW : CORE::time() } }
use Mail::SRS;

$| = 1;
$SIG{__WARN__} = sub { };    # Mail::SRS warns on case-smashed hashes; the answer is enough
while (my $line = <STDIN>) {
    chomp $line;
    my ($op, $now, $separator, $hash_length, $secrets, $address, $alias) = split /\t/, $line, -1;
    $NOW = $now;
    my $srs = Mail::SRS->new(
        Secret     => [ split /,/, $secrets ],
        Separator  => $separator,
        HashLength => $hash_length,
        HashMin    => 4,
        MaxAge     => 21,
    );
    my $result = eval { $op eq 'F' ? $srs->forward($address, $alias) : $srs->reverse($address) };
    if (defined $result) {
        print "OK\t$result\n";
    } else {
        my $error = $@ || 'no result';
        $error =~ s/\s+/ /g;
        print "ERR\t$error\n";
    }
}
