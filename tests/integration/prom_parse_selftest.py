#!/usr/bin/env python3
"""The strict Prometheus text parser (prom_parse.py) refuses what it must: prints TAP."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prom_parse  # noqa: E402

GOOD = '''# HELP sluice_requests_total Requests.
# TYPE sluice_requests_total counter
sluice_requests_total{consumer="a\\\\b\\"c",status="200"} 3
# TYPE sluice_d_seconds histogram
sluice_d_seconds_bucket{model="m",le="0.1"} 1
sluice_d_seconds_bucket{model="m",le="+Inf"} 2
sluice_d_seconds_sum{model="m"} 0.5
sluice_d_seconds_count{model="m"} 2
# TYPE sluice_g gauge
sluice_g 1
'''

BAD = {
    'no TYPE for a sample': 'sluice_x_total 1\n',
    'a counter not named _total': '# TYPE sluice_x counter\nsluice_x 1\n',
    'a negative counter': '# TYPE sluice_x_total counter\nsluice_x_total -1\n',
    'an unquoted label': '# TYPE sluice_g gauge\nsluice_g{a=b} 1\n',
    'a bad escape': '# TYPE sluice_g gauge\nsluice_g{a="\\q"} 1\n',
    'a label twice': '# TYPE sluice_g gauge\nsluice_g{a="1",a="2"} 1\n',
    'a series twice': '# TYPE sluice_g gauge\nsluice_g{a="1"} 1\nsluice_g{a="1"} 2\n',
    'no final newline': '# TYPE sluice_g gauge\nsluice_g 1',
    'two spaces before the value': '# TYPE sluice_g gauge\nsluice_g  1\n',
    'a bad value': '# TYPE sluice_g gauge\nsluice_g one\n',
    'an empty line': '# TYPE sluice_g gauge\n\nsluice_g 1\n',
    'a free comment': '# hello\n',
    'TYPE twice': '# TYPE sluice_g gauge\n# TYPE sluice_g gauge\n',
    'a family split in two': '# TYPE sluice_g gauge\n# TYPE sluice_h gauge\nsluice_h 1\nsluice_g 1\n',
    'no sluice_ prefix': '# TYPE other gauge\nother 1\n',
    'buckets not cumulative': '# TYPE sluice_d histogram\nsluice_d_bucket{le="1"} 2\nsluice_d_bucket{le="+Inf"} 1\n'
                              'sluice_d_sum 1\nsluice_d_count 1\n',
    'no +Inf bucket': '# TYPE sluice_d histogram\nsluice_d_bucket{le="1"} 1\nsluice_d_sum 1\nsluice_d_count 1\n',
    '+Inf bucket != _count': '# TYPE sluice_d histogram\nsluice_d_bucket{le="+Inf"} 1\nsluice_d_sum 1\n'
                             'sluice_d_count 2\n',
    'no _sum': '# TYPE sluice_d histogram\nsluice_d_bucket{le="+Inf"} 1\nsluice_d_count 1\n',
}

n = 0
failed = 0


def tap(ok, name, diag=''):
    global n, failed
    n += 1
    failed += not ok
    print('%s %d - %s' % ('ok' if ok else 'not ok', n, name))
    if diag and not ok:
        print('# ' + diag)


try:
    samples = prom_parse.parse(GOOD)
    tap(len(samples) == 6, 'a well-formed exposition parses into its 6 samples', repr(samples))
    tap(samples[0][1]['consumer'] == 'a\\b"c', 'escapes in label values are decoded', repr(samples[0]))
except prom_parse.Bad as e:
    tap(False, 'a well-formed exposition parses', str(e))
for name, text in BAD.items():
    try:
        prom_parse.parse(text)
        tap(False, 'refused: ' + name, 'accepted')
    except prom_parse.Bad:
        tap(True, 'refused: ' + name)
print('1..%d' % n)
sys.exit(1 if failed else 0)
