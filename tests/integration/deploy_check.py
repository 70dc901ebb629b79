#!/usr/bin/env python3
"""Static checks of deploy/: the Kubernetes manifests parse and reference only objects,
keys, ports and images that exist; the Containerfile's stages and copied paths exist; the
Grafana dashboard parses and queries only metric families that a live gateway or engine
serves. Used by deploy_files.sh, which runs the processes.

  deploy_check.py ROOT static                  -> one line per check: PASS|FAIL \\t name [\\t diag]
  deploy_check.py ROOT configmap OUT           -> writes the ConfigMap's sluice.yaml to OUT
  deploy_check.py ROOT secret-env              -> KEY=VALUE lines of the Secret's stringData
  deploy_check.py ROOT grafana GW.txt ENG.txt  -> the dashboard checks against two scrapes
"""
import glob
import json
import os
import re
import sys
from urllib.parse import urlparse

import yaml

ROOT = sys.argv[1]
K8S = os.path.join(ROOT, 'deploy', 'k8s')
CONTAINERFILE = os.path.join(ROOT, 'deploy', 'container', 'Containerfile')
DASHBOARD = os.path.join(ROOT, 'deploy', 'grafana', 'sluice.json')


def report(name, ok, diag=''):
    diag = ' | '.join(str(diag).splitlines())[:1500]
    print('PASS\t%s' % name if ok else 'FAIL\t%s\t%s' % (name, diag))


def load_docs():
    """{file: [documents]}, and the parse errors."""
    docs, errors = {}, []
    for f in sorted(glob.glob(os.path.join(K8S, '*.yaml'))):
        try:
            docs[os.path.basename(f)] = [d for d in yaml.safe_load_all(open(f)) if d is not None]
        except yaml.YAMLError as e:
            errors.append('%s: %s' % (f, e))
    return docs, errors


def objects(docs):
    return [(f, d) for f, ds in docs.items() for d in ds if d.get('kind') != 'Kustomization']


def find(docs, kind, name):
    for _, d in objects(docs):
        if d.get('kind') == kind and d.get('metadata', {}).get('name') == name:
            return d
    return None


def pod_specs(docs):
    """(object name, pod spec, pod labels) of every workload."""
    for _, d in objects(docs):
        if d.get('kind') in ('Deployment', 'StatefulSet', 'DaemonSet', 'Job'):
            t = d['spec']['template']
            yield d['metadata']['name'], t['spec'], t.get('metadata', {}).get('labels', {})


def configmap_yaml(docs):
    cm = find(docs, 'ConfigMap', 'sluice-config')
    return cm['data']['sluice.yaml'] if cm else None


def kustomization(docs):
    return docs.get('kustomization.yaml', [{}])[0]


def check_static():
    docs, errors = load_docs()
    report('every manifest in deploy/k8s parses as YAML', not errors and docs, '\n'.join(errors) or 'no files')
    if errors or not docs:
        return
    bad = [f'{f}: {d.get("kind")}' for f, d in objects(docs)
           if not (d.get('apiVersion') and d.get('kind') and d.get('metadata', {}).get('name'))]
    report('every object has apiVersion, kind and metadata.name', not bad, bad)
    bad = [f'{f}: {d["kind"]} {d["metadata"]["name"]}' for f, d in objects(docs)
           if d['kind'] != 'Namespace' and d['metadata'].get('namespace') != 'sluice']
    report('every namespaced object is in the sluice namespace', not bad, bad)

    k = kustomization(docs)
    listed = set(k.get('resources', []))
    on_disk = set(docs) - {'kustomization.yaml'}
    report('kustomization lists exactly the manifest files', listed == on_disk,
           'listed only: %s; on disk only: %s' % (sorted(listed - on_disk), sorted(on_disk - listed)))

    # ---- references between objects ----
    bad = []
    for name, spec, _ in pod_specs(docs):
        vols = {v['name']: v for v in spec.get('volumes', [])}
        for c in spec.get('containers', []) + spec.get('initContainers', []):
            for m in c.get('volumeMounts', []):
                if m['name'] not in vols and not any(t['metadata']['name'] == m['name'] for t in
                                                     find_sts_claims(docs, name)):
                    bad.append(f'{name}/{c["name"]}: mount {m["name"]} is no volume')
            for e in c.get('env', []):
                ref = e.get('valueFrom', {})
                for kind, key in (('Secret', 'secretKeyRef'), ('ConfigMap', 'configMapKeyRef')):
                    if key in ref:
                        r = ref[key]
                        obj = find(docs, kind, r['name'])
                        data = {} if not obj else {**obj.get('data', {}), **obj.get('stringData', {})}
                        if r['key'] not in data:
                            bad.append(f'{name}/{c["name"]}: env {e["name"]}: {kind} {r["name"]} has no key {r["key"]}')
            for ef in c.get('envFrom', []):
                for kind, key in (('Secret', 'secretRef'), ('ConfigMap', 'configMapRef')):
                    if key in ef and not find(docs, kind, ef[key]['name']):
                        bad.append(f'{name}/{c["name"]}: envFrom {kind} {ef[key]["name"]} does not exist')
        for v in vols.values():
            if 'configMap' in v:
                obj = find(docs, 'ConfigMap', v['configMap']['name'])
                if not obj:
                    bad.append(f'{name}: volume {v["name"]}: no ConfigMap {v["configMap"]["name"]}')
                for it in v['configMap'].get('items', []):
                    if obj and it['key'] not in obj.get('data', {}):
                        bad.append(f'{name}: volume {v["name"]}: ConfigMap has no key {it["key"]}')
            if 'secret' in v and not find(docs, 'Secret', v['secret']['secretName']):
                bad.append(f'{name}: volume {v["name"]}: no Secret {v["secret"]["secretName"]}')
            if 'persistentVolumeClaim' in v and not find(docs, 'PersistentVolumeClaim',
                                                         v['persistentVolumeClaim']['claimName']):
                bad.append(f'{name}: volume {v["name"]}: no PersistentVolumeClaim '
                           f'{v["persistentVolumeClaim"]["claimName"]}')
    report('every secretKeyRef, configMapKeyRef, envFrom and volume names an object and key that exist',
           not bad, bad)

    bad = []
    pods = list(pod_specs(docs))
    for _, d in objects(docs):
        if d['kind'] not in ('Service', 'PodDisruptionBudget'):
            continue
        sel = d['spec'].get('selector', {})
        sel = sel.get('matchLabels', sel)
        match = [(n, s) for n, s, labels in pods if all(labels.get(k) == v for k, v in sel.items())]
        if not match:
            bad.append(f'{d["kind"]} {d["metadata"]["name"]}: selector {sel} matches no pod template')
            continue
        for p in d['spec'].get('ports', []) if d['kind'] == 'Service' else []:
            tp = p.get('targetPort', p['port'])
            ports = [cp for _, s in match for c in s['containers'] for cp in c.get('ports', [])]
            if not any(cp.get('name') == tp or cp['containerPort'] == tp for cp in ports):
                bad.append(f'Service {d["metadata"]["name"]}: targetPort {tp} is no container port')
    report('every Service and PodDisruptionBudget selects a pod template, on ports it has', not bad, bad)

    # ---- the gateway against its config ----
    text = configmap_yaml(docs)
    report('the ConfigMap sluice-config holds sluice.yaml', text is not None)
    if text is None:
        return
    conf = yaml.safe_load(text)
    gw = next((s for n, s, _ in pods if n == 'sluice-gateway'), None)
    report('a Deployment sluice-gateway exists', gw is not None)
    if gw is None:
        return
    c = gw['containers'][0]
    ports = {p.get('name'): p['containerPort'] for p in c.get('ports', [])}
    admin_port = int(conf['admin']['listen'].rsplit(':', 1)[1])
    listen_ports = {int(l['address'].rsplit(':', 1)[1]) for l in conf['listen']}
    report('gateway container ports match the config (http = listen, admin = admin.listen)',
           ports.get('admin') == admin_port and ports.get('http') in listen_ports, f'{ports} vs {conf["listen"]}, {conf["admin"]}')
    rp, lp = c.get('readinessProbe', {}).get('httpGet', {}), c.get('livenessProbe', {}).get('httpGet', {})
    report('gateway readiness probe: GET /readyz on the admin port', rp.get('path') == '/readyz' and rp.get('port') in ('admin', admin_port), rp)
    report('gateway liveness probe: GET /healthz on the admin port', lp.get('path') == '/healthz' and lp.get('port') in ('admin', admin_port), lp)
    args = c.get('args', [])
    cpath = args[args.index('-c') + 1] if '-c' in args else '/etc/sluice/sluice.yaml'
    mounted = set()
    vols = {v['name']: v for v in gw.get('volumes', [])}
    for m in c.get('volumeMounts', []):
        v = vols.get(m['name'], {})
        for it in v.get('configMap', {}).get('items', []):
            if it['key'] == 'sluice.yaml':
                mounted.add(os.path.join(m['mountPath'], it['path']))
    report('the gateway reads the ConfigMap\'s sluice.yaml where it is mounted', cpath in mounted, f'-c {cpath}, mounted {mounted}')
    def seconds(v):
        m = re.fullmatch(r'(\d+)(ms|s|m)?', str(v))
        return int(m.group(1)) * {'ms': 0.001, 's': 1, 'm': 60, None: 1}[m.group(2)] if m else None
    drain = seconds((conf.get('server') or {}).get('shutdown_timeout', '30s'))
    pre = c.get('lifecycle', {}).get('preStop', {}).get('exec', {}).get('command', [])
    pre_s = seconds(pre[-1]) if pre and 'sleep' in pre[0] else 0
    grace = gw.get('terminationGracePeriodSeconds', 30)
    report('terminationGracePeriodSeconds covers preStop + server.shutdown_timeout',
           drain is not None and grace > pre_s + drain, f'grace {grace}, preStop {pre_s}, drain {drain}')
    env = {e['name'] for e in c.get('env', [])}
    wanted = set()

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k.endswith('_env') and isinstance(v, str):
                    wanted.add(v)
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(conf)
    wanted.add((conf.get('store') or {}).get('secret_env', 'SLUICE_SECRET'))
    report('every *_env variable of sluice.yaml is set in the gateway container', wanted <= env,
           f'missing: {sorted(wanted - env)}')

    bad = []
    for name, u in conf.get('upstreams', {}).items():
        host = urlparse(u.get('base_url', '')).hostname or ''
        port = urlparse(u.get('base_url', '')).port
        if '.' in host or not host:
            continue  # outside the cluster
        svc = find(docs, 'Service', host)
        if not svc or not any(p['port'] == port for p in svc['spec']['ports']):
            bad.append(f'upstream {name}: no Service {host} on port {port}')
    redis = (conf.get('store') or {}).get('redis', {}).get('url')
    if redis:
        r = urlparse(redis)
        svc = find(docs, 'Service', r.hostname)
        if not svc or not any(p['port'] == (r.port or 6379) for p in svc['spec']['ports']):
            bad.append(f'store.redis.url {redis}: no such Service and port')
    report('in-cluster upstreams and the Redis URL name Services and ports that exist', not bad, bad)

    eng = [s for n, s, _ in pods if n.startswith('sluice-engine')]
    ok = bool(eng) and all(
        s.get('nodeSelector') and any('nvidia.com/gpu' in c.get('resources', {}).get('limits', {}) for c in s['containers'])
        for s in eng)
    report('engine workers run on GPU nodes (nodeSelector and an nvidia.com/gpu limit)', ok)

    # ---- images ----
    check_images(docs)


def find_sts_claims(docs, name):
    d = find(docs, 'StatefulSet', name)
    return d['spec'].get('volumeClaimTemplates', []) if d else []


def containerfile():
    text = open(CONTAINERFILE).read()
    # join continuation lines
    text = re.sub(r'\\\n', ' ', text)
    return text


def check_images(docs):
    text = containerfile()
    stages = re.findall(r'^FROM\s+(\S+)\s+AS\s+(\S+)', text, re.M | re.I)
    names = [s[1] for s in stages]
    seen, froms, bad = [], [], []
    for line in text.splitlines():
        m = re.match(r'FROM\s+\S+\s+AS\s+(\S+)', line, re.I)
        if m:
            seen.append(m.group(1))
        for f in re.findall(r'--from=(\S+)', line):
            froms.append(f)
            if f not in seen[:-1]:
                bad.append(f)
    report('Containerfile: every COPY --from names an earlier stage', froms and not bad, bad or 'none')
    bad = []
    for src in re.findall(r'^COPY\s+(?!--from)(.+)$', text, re.M):
        parts = src.split()
        for p in parts[:-1]:
            if not os.path.exists(os.path.join(ROOT, p)):
                bad.append(p)
    report('Containerfile: every path it copies from the repository exists', not bad, bad)
    built = dict(re.findall(r'--target\s+(\S+)\s+-t\s+(\S+)', text))
    report('Containerfile: its build lines name a tag for each final stage (gateway, engine)',
           {'gateway', 'engine'} <= set(built) and all(t in names for t in built), built)
    users = re.findall(r'^USER\s+(\S+)', text, re.M)
    report('Containerfile: the images run as a non-root user', users and all(u.split(':')[0] not in ('0', 'root') for u in users), users)
    uid = int(users[0].split(':')[0]) if users and users[0].split(':')[0].isdigit() else None

    version = re.search(r"version\s*:\s*'([^']+)'", open(os.path.join(ROOT, 'meson.build')).read()).group(1)
    k = kustomization(docs)
    mapped = {i['name']: i for i in k.get('images', [])}
    tags = {t.split(':')[0]: t.split(':')[1] for t in built.values()}
    bad = []
    for name, spec, _ in pod_specs(docs):
        for c in spec['containers'] + spec.get('initContainers', []):
            img = c['image']
            if img in mapped:
                m = mapped[img]
                if img not in tags:
                    bad.append(f'{name}: image {img} is not built by the Containerfile ({sorted(tags)})')
                elif m.get('newTag') != tags[img] or tags[img] != version:
                    bad.append(f'{name}: {img}: kustomization tag {m.get("newTag")}, Containerfile tag {tags[img]}, '
                               f'version {version}')
            elif img.split('/')[0].startswith('sluice') or ':' not in img.rsplit('/', 1)[-1] or img.endswith(':latest'):
                bad.append(f'{name}: image {img}: not a built image, and not a pinned public one')
            sc = spec.get('securityContext', {})
            if img in mapped and uid is not None and sc.get('runAsUser') != uid:
                bad.append(f'{name}: runAsUser {sc.get("runAsUser")}, the image\'s user is {uid}')
    report('every image is built by the Containerfile (same name, tag = version) or a pinned public image',
           not bad, bad)


def check_grafana(gw_scrape, engine_scrape):
    try:
        dash = json.load(open(DASHBOARD))
        report('the Grafana dashboard parses as JSON', True)
    except ValueError as e:
        report('the Grafana dashboard parses as JSON', False, e)
        return
    exprs = []

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ('expr', 'definition') and isinstance(v, str):
                    exprs.append(v)
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(dash)
    report('the dashboard has panels with queries', len(exprs) >= 10, len(exprs))

    def families(path):
        fams = {}
        for line in open(path):
            m = re.match(r'# TYPE (\S+) (\S+)', line)
            if m:
                fams[m.group(1)] = m.group(2)
        return fams
    gw, eng = families(gw_scrape), families(engine_scrape)
    report('the gateway scrape has metric families', len(gw) >= 10, len(gw))
    report('the engine scrape has metric families', len(eng) >= 3, len(eng))
    used, missing = set(), []
    for e in exprs:
        for name in re.findall(r'\b(sluice_[a-z0-9_]+)\b', e):
            base = re.sub(r'_(bucket|sum|count)$', '', name)
            fam = name if name in gw or name in eng else base
            kind = gw.get(fam) or eng.get(fam)
            if kind is None or (fam != name and kind != 'histogram'):
                missing.append(name)
            used.add(fam)
    report('every metric the dashboard queries is served (gateway /metrics, or the engine\'s for sluice_engine_*)',
           not missing, sorted(set(missing)))
    eng_only = {f for f in used if f not in gw}
    report('metrics not on the gateway are the engine\'s own (sluice_engine_*)',
           all(f.startswith('sluice_engine_') for f in eng_only), sorted(eng_only))
    for f in ('sluice_requests_total', 'sluice_request_duration_seconds', 'sluice_gateway_overhead_seconds',
              'sluice_time_to_first_token_seconds',
              'sluice_inter_token_latency_seconds', 'sluice_cache_hits_total', 'sluice_fallbacks_total',
              'sluice_guard_blocks_total', 'sluice_upstream_circuit_state', 'sluice_engine_workers',
              'sluice_engine_kv_cache_usage_ratio'):
        report(f'the dashboard shows {f}', f in used)


def main():
    what = sys.argv[2]
    if what == 'static':
        check_static()
    elif what == 'configmap':
        docs, _ = load_docs()
        open(sys.argv[3], 'w').write(configmap_yaml(docs))
    elif what == 'secret-env':
        docs, _ = load_docs()
        s = find(docs, 'Secret', 'sluice-secrets')
        for k, v in {**s.get('stringData', {})}.items():
            print(f'{k}={v}')
    elif what == 'grafana':
        check_grafana(sys.argv[3], sys.argv[4])


if __name__ == '__main__':
    main()
