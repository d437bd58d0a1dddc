"""Check that the ServiceMonitors and PodMonitors of a render scrape something in that render: each selects, in its
namespaces, a Service (ServiceMonitor) or a Deployment/DaemonSet pod template (PodMonitor) with a port of the
endpoint's name, and a Service's selector reaches a pod template with that target port. Prints one line per monitor.

usage: monitors.py RENDER.yaml
"""

import sys

import yaml


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def main(path):
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    ns = lambda d: d["metadata"].get("namespace", "")
    workloads = [d for d in docs if d["kind"] in ("Deployment", "DaemonSet")]
    errors, found = [], 0

    def pod_ports(workload):
        return {p.get("name") for c in workload["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}

    for m in docs:
        if m["kind"] not in ("ServiceMonitor", "PodMonitor"):
            continue
        found += 1
        name = f'{m["kind"]} {ns(m)}/{m["metadata"]["name"]}'
        namespaces = (m["spec"].get("namespaceSelector") or {}).get("matchNames") or [ns(m)]
        if m["kind"] == "ServiceMonitor":
            ports = [e["port"] for e in m["spec"]["endpoints"]]
            services = [s for s in docs if s["kind"] == "Service" and ns(s) in namespaces
                        and matches(m["spec"]["selector"], s["metadata"].get("labels") or {})
                        and any(p.get("name") in ports for p in s["spec"]["ports"])]
            if not services:
                errors.append(f"{name}: no Service in {namespaces} with its labels and a port named {ports}")
                continue
            for s in services:
                targets = {p.get("targetPort") for p in s["spec"]["ports"] if p.get("name") in ports}
                pods = [w for w in workloads if ns(w) == ns(s)
                        and all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in s["spec"]["selector"].items())]
                if not any(targets & pod_ports(w) for w in pods):
                    errors.append(f"{name}: Service {s['metadata']['name']} reaches no pod with port {targets}")
                else:
                    print(f"{name} -> Service {s['metadata']['name']} -> {', '.join(w['kind'] + ' ' + w['metadata']['name'] for w in pods)} port {', '.join(sorted(targets))}")
        else:
            ports = [e["port"] for e in m["spec"]["podMetricsEndpoints"]]
            pods = [w for w in workloads if ns(w) in namespaces
                    and matches(m["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
                    and set(ports) & pod_ports(w)]
            if not pods:
                errors.append(f"{name}: no pod template in {namespaces} with its labels and a port named {ports}")
            else:
                print(f"{name} -> {', '.join(w['kind'] + ' ' + w['metadata']['name'] for w in pods)} port {', '.join(ports)}")
    if found == 0:
        errors.append("no ServiceMonitor or PodMonitor in the render")
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
