"""A UDP blaster for bench/blocked-record.ts, run in a lab namespace:

    python3 blast.py PREFIX FIRST-LAST PORT-PORT SECONDS

Sends small datagrams round-robin to every PREFIX.N:PORT (N in FIRST..LAST, PORT in the
range) for SECONDS, then prints {"sent":N,"errors":N,"seconds":S,"cpuSeconds":C} and exits
(C: its user and system time, which holds the softirq work of the packets it sent).
Bounded: it stops by itself.

Python's standard library and Debian's python3, so the bench needs no compiler. A sendto
here costs the interpreter about 2 µs against the 8-10 µs the forwarded packet costs the
kernel in the same call (measured in the lab beside a C sendmmsg blaster, which the first
version of this bench compiled: Python reached 75-90 % of its rate), so the rate follows
the packet path; the bench's "added per dropped packet" is a difference of inverse rates,
which the sender's own share cancels out of.
Node's dgram, at about 15,000 datagrams a second, is the sender, not the path.
"""
import json
import socket
import sys
import time

# Sends between two looks at the clock: the clock costs as much as a send.
BATCH = 256


def span(text):
    first, last = text.split('-')
    return range(int(first), int(last) + 1)


def main():
    if len(sys.argv) != 5:
        sys.exit('usage: blast.py PREFIX FIRST-LAST PORT-PORT SECONDS')
    prefix, hosts, ports, seconds = sys.argv[1:]
    targets = [(f'{prefix}.{host}', port) for port in span(ports) for host in span(hosts)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    send = sock.sendto
    payload = b'blocked-record...'
    count = len(targets)
    sent = errors = 0
    i = 0
    start = time.monotonic()
    cpu = time.process_time()
    end = start + float(seconds)
    while time.monotonic() < end:
        for _ in range(BATCH):
            try:
                send(payload, targets[i])
                sent += 1
            except OSError:
                errors += 1
            i += 1
            if i == count:
                i = 0
    print(json.dumps({'sent': sent, 'errors': errors, 'seconds': round(time.monotonic() - start, 3), 'cpuSeconds': round(time.process_time() - cpu, 3)}))


main()
