// Two small services of a test host for the morph tests, each a sysvinit service as Debian
// ships them (an init script in /etc/init.d, start-stop-daemon and a pid file in /run) serving
// HTTP from a configuration file it reads at start: `port` and `delay_ms` (how long it waits
// before each answer, which is how a morph makes the host slower). Their pid files are what
// capture reads as running, and what the tests read to tell a restart.
import type { TestHost } from '../hosts/harness.js';

export const MORPH_WEB_CONF = '/etc/morph-web.conf';

const DAEMON = `#!/usr/bin/perl
# A one-page HTTP server: port and delay_ms from the file named by its first argument.
use strict;
use warnings;
use IO::Socket::INET;
my %conf = (port => 8080, delay_ms => 0);
open(my $fh, '<', $ARGV[0]) or die "no $ARGV[0]";
while (<$fh>) { chomp; my ($k, $v) = split /=/, $_, 2; $conf{$k} = $v if defined $v; }
close $fh;
my $server = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => $conf{port}, Listen => 64, ReuseAddr => 1, Proto => 'tcp') or die "listen: $!";
$SIG{PIPE} = 'IGNORE';
while (my $c = $server->accept) {
  while (my $line = <$c>) { last if $line =~ /^\\r?\\n$/; }
  select(undef, undef, undef, $conf{delay_ms} / 1000) if $conf{delay_ms} > 0;
  print $c "HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n";
  close $c;
}
`;

const initScript = (name: string, port: number) => `#!/bin/sh
### BEGIN INIT INFO
# Provides:          ${name}
# Required-Start:    $network
# Required-Stop:     $network
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: ${name} test service
### END INIT INFO
PIDFILE=/run/${name}.pid
CONF=/etc/${name}.conf
case "$1" in
  start)
    start-stop-daemon --start --quiet --background --make-pidfile --pidfile "$PIDFILE" \\
      --startas /usr/local/sbin/morph-httpd -- "$CONF"
    # Up once it answers, as an init script that waits for its daemon is.
    i=0; while [ $i -lt 100 ]; do
      curl -s -o /dev/null --max-time 1 http://127.0.0.1:${port}/ && exit 0
      i=$((i + 1)); sleep 0.05
    done; exit 1 ;;
  stop)
    start-stop-daemon --stop --quiet --oknodo --retry 5 --pidfile "$PIDFILE"; rm -f "$PIDFILE" ;;
  restart) "$0" stop; "$0" start ;;
  status) [ -r "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null ;;
  *) echo "usage: $0 start|stop|restart|status"; exit 2 ;;
esac
`;

export async function installMorphServices(host: TestHost): Promise<void> {
  await host.writeFile('/usr/local/sbin/morph-httpd', DAEMON, 0o755);
  await host.writeFile(MORPH_WEB_CONF, 'port=8080\ndelay_ms=0\n', 0o644);
  await host.writeFile('/etc/morph-aux.conf', 'port=8081\ndelay_ms=0\n', 0o644);
  await host.writeFile('/etc/init.d/morph-web', initScript('morph-web', 8080), 0o755);
  await host.writeFile('/etc/init.d/morph-aux', initScript('morph-aux', 8081), 0o755);
  await host.run('service morph-web start && service morph-aux start');
}

/** The service's pid as its pid file says, checked alive. */
export async function pidOf(host: TestHost, service: string): Promise<number> {
  const pid = Number((await host.run(`cat /run/${service}.pid`)).trim());
  await host.run(`kill -0 ${pid}`);
  return pid;
}
