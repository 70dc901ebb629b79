#!/usr/bin/env python3
"""A strict parser of the Prometheus text exposition format (0.0.4), as sluice serves it.

    prom_parse.py FILE        print the samples as JSON [[name, {labels}, value], ...], or
                              print "LINE: problem" on stderr and exit 1

Refuses: lines that are neither a sample nor a HELP/TYPE comment, bad metric or label names,
bad escapes, unquoted or duplicated labels, a TYPE after its family's samples or twice, a
family whose samples are not contiguous, a sample of no declared family, a duplicated series,
a counter that is negative or not named *_total, histograms whose buckets are not cumulative,
lack +Inf, or whose +Inf bucket is not _count, and names without the sluice_ prefix.
"""
import json
import math
import re
import sys

NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*')
LABEL = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*')
TYPES = {'counter', 'gauge', 'histogram', 'summary', 'untyped'}


class Bad(Exception):
    pass


def parse_value(s):
    if s in ('+Inf', 'Inf'):
        return math.inf
    if s == '-Inf':
        return -math.inf
    if s == 'NaN':
        return math.nan
    if not re.fullmatch(r'[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?', s):
        raise Bad('bad value %r' % s)
    return float(s)


def parse_labels(s, i):
    """s[i] == '{'; returns (labels, index after '}')."""
    labels = {}
    i += 1
    while True:
        if s[i:i + 1] == '}':
            return labels, i + 1
        m = LABEL.match(s, i)
        if not m:
            raise Bad('bad label name at column %d' % (i + 1))
        name = m.group(0)
        if name.startswith('__'):
            raise Bad('reserved label name %s' % name)
        i = m.end()
        if s[i:i + 2] != '="':
            raise Bad('label %s: expected ="' % name)
        i += 2
        v = []
        while True:
            if i >= len(s):
                raise Bad('unterminated label value')
            c = s[i]
            if c == '\\':
                e = s[i + 1:i + 2]
                if e not in ('\\', '"', 'n'):
                    raise Bad('bad escape \\%s' % e)
                v.append('\n' if e == 'n' else e)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == '\n':
                raise Bad('newline in label value')
            else:
                v.append(c)
                i += 1
        if name in labels:
            raise Bad('label %s twice' % name)
        labels[name] = ''.join(v)
        if s[i:i + 1] == ',':
            i += 1
        elif s[i:i + 1] != '}':
            raise Bad('expected , or } after label %s' % name)


def family_of(name, types):
    if name in types:
        return name
    for suffix in ('_bucket', '_sum', '_count'):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) == 'histogram':
            return name[:-len(suffix)]
    raise Bad('sample %s of no declared family (TYPE missing)' % name)


def parse(text):
    if text and not text.endswith('\n'):
        raise Bad('the last line has no newline')
    types, helps, samples, seen, done = {}, {}, [], set(), set()
    current = None
    for n, line in enumerate(text.split('\n')[:-1], 1):
        try:
            if line.startswith('#'):
                m = re.fullmatch(r'# (HELP|TYPE) (\S+) ?(.*)', line)
                if not m:
                    raise Bad('a comment that is not HELP or TYPE')
                kind, name, rest = m.groups()
                if not NAME.fullmatch(name):
                    raise Bad('bad metric name %r' % name)
                if name in done:
                    raise Bad('%s declared again after its samples' % name)
                if current != name:
                    if current is not None:
                        done.add(current)
                    current = name
                target = helps if kind == 'HELP' else types
                if name in target:
                    raise Bad('%s for %s twice' % (kind, name))
                if kind == 'TYPE':
                    if rest not in TYPES:
                        raise Bad('unknown type %r' % rest)
                    if any(s[3] == name for s in samples):
                        raise Bad('TYPE of %s after its samples' % name)
                target[name] = rest
                continue
            if not line:
                raise Bad('empty line')
            m = NAME.match(line)
            if not m:
                raise Bad('bad metric name')
            name, i = m.group(0), m.end()
            labels = {}
            if line[i:i + 1] == '{':
                labels, i = parse_labels(line, i)
            parts = line[i:].split(' ')
            if parts[0] != '' or len(parts) not in (2, 3):
                raise Bad('expected one space, a value and an optional timestamp')
            value = parse_value(parts[1])
            if len(parts) == 3 and not re.fullmatch(r'-?\d+', parts[2]):
                raise Bad('bad timestamp')
            fam = family_of(name, types)
            if fam in done:
                raise Bad('samples of %s are not contiguous' % fam)
            if current != fam:
                if current is not None:
                    done.add(current)
                current = fam
            if not name.startswith('sluice_'):
                raise Bad('%s lacks the sluice_ prefix' % name)
            key = (name, tuple(sorted(labels.items())))
            if key in seen:
                raise Bad('series %s%s twice' % key)
            seen.add(key)
            if types[fam] == 'counter':
                if not name.endswith('_total'):
                    raise Bad('counter %s not named *_total' % name)
                if not value >= 0:
                    raise Bad('counter %s is negative' % name)
            if name.endswith('_bucket') and types[fam] == 'histogram' and 'le' not in labels:
                raise Bad('bucket without le')
            samples.append((name, labels, value, fam))
        except Bad as e:
            raise Bad('%d: %s' % (n, e)) from None
    check_histograms(samples, types)
    return [[s[0], s[1], s[2]] for s in samples]


def check_histograms(samples, types):
    groups = {}
    for name, labels, value, fam in samples:
        if types[fam] != 'histogram':
            continue
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != 'le'))
        g = groups.setdefault((fam, rest), {'buckets': [], 'sum': None, 'count': None})
        if name == fam + '_bucket':
            g['buckets'].append((parse_value(labels['le']), value))
        elif name == fam + '_sum':
            g['sum'] = value
        elif name == fam + '_count':
            g['count'] = value
    for (fam, rest), g in groups.items():
        where = '%s%s' % (fam, dict(rest))
        b = g['buckets']
        if g['sum'] is None or g['count'] is None:
            raise Bad('%s: _sum or _count missing' % where)
        if not b or b[-1][0] != math.inf:
            raise Bad('%s: the last bucket is not le="+Inf"' % where)
        for (l1, c1), (l2, c2) in zip(b, b[1:]):
            if not l1 < l2:
                raise Bad('%s: le not ascending' % where)
            if c2 < c1:
                raise Bad('%s: buckets not cumulative' % where)
        if b[-1][1] != g['count']:
            raise Bad('%s: +Inf bucket %g != _count %g' % (where, b[-1][1], g['count']))


def main():
    text = open(sys.argv[1], encoding='utf-8').read()
    try:
        samples = parse(text)
    except Bad as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    json.dump(samples, sys.stdout)
    print()


if __name__ == '__main__':
    main()
