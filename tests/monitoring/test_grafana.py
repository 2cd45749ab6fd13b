"""monitoring/grafana/shmguard.json: a well-formed dashboard (unique ids, panels that do not overlap,
every variable it uses defined, every query valid PromQL by promtool) whose every query selects
metrics, labels and label values that the real ?metrics exports (conftest.exported), and whose legends
name labels the query's result carries.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

import promql

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "monitoring" / "grafana" / "shmguard.json"
# What Grafana puts in for its variables, for promtool.
SUBSTITUTE = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def dashboard():
    return json.loads(DASHBOARD.read_text())


def panels(d=None):
    d = d or dashboard()
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def targets():
    return [(p["title"], t) for p in panels() if p["type"] != "row" for t in p["targets"]]


def variables(d=None):
    return {v["name"]: v for v in (d or dashboard())["templating"]["list"]}


def concrete(expr):
    for k, v in SUBSTITUTE.items():
        expr = expr.replace(k, v)
    for name in variables():
        expr = expr.replace("$" + name, ".*")
    return expr


def test_structure():
    d = dashboard()
    assert d["title"] and d["uid"] and d["schemaVersion"] >= 36
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    cells = {}
    for p in panels(d):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, "%r overlaps %r" % (p["title"], cells[(x, y)])
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip(), p["title"]


def test_every_variable_used_is_defined():
    d = dashboard()
    defined = set(variables(d))
    assert {"datasource", "instance", "vhost"} <= defined
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", json.dumps(d)))
    used -= {k[1:] for k in SUBSTITUTE}
    assert used <= defined, used - defined


def test_every_query_is_valid_promql(tmp_path):
    exprs = [concrete(t["expr"]) for _, t in targets()]
    for v in variables().values():
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.*),\s*([A-Za-z_]+)\)", v["definition"])
            assert m, v["definition"]
            exprs.append(concrete(m.group(1)))
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": "dashboard:query_%d" % i, "expr": e} for i, e in enumerate(exprs)]}]}
    f = tmp_path / "dashboard.rules.yml"
    f.write_text(yaml.safe_dump(rules))
    r = subprocess.run(["/usr/bin/promtool", "check", "rules", str(f)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: %d rules found" % len(exprs) in r.stdout


@pytest.mark.parametrize("title,target", targets(), ids=["%s/%s" % (p, t["refId"]) for p, t in targets()])
def test_query_uses_exported_metrics_labels_and_values(title, target, exported, pending):
    where = "%s/%s" % (title, target["refId"])
    problems = promql.check(target["expr"], exported, pending, where)
    e = promql.Expr(target["expr"])
    carried = e.outer_by()
    if carried is None:
        carried = set(promql.TARGET_LABELS)
        for m in e.metrics():
            carried |= set(exported.get(m, pending.get(m, {})))
    for label in re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", target.get("legendFormat", "")):
        if label not in carried:
            problems.append("%s: the legend names %r, which the result does not carry" % (where, label))
    assert problems == []


@pytest.mark.parametrize("name", ["instance", "vhost"])
def test_variable_queries_use_exported_labels(name, exported, pending):
    v = variables()[name]
    m = re.fullmatch(r"label_values\((.*),\s*([A-Za-z_]+)\)", v["definition"])
    expr, label = m.group(1), m.group(2)
    assert v["query"]["query"] == v["definition"]
    problems = promql.check(expr, exported, pending, "variable " + name)
    for metric in promql.Expr(expr).metrics():
        if label not in promql.TARGET_LABELS and label not in exported.get(metric, {}):
            problems.append("variable %s: %s has no label %r" % (name, metric, label))
    assert problems == []


def test_every_panel_group_of_the_issue_is_there(exported):
    """Headroom and the binding limit, failure counters, refusals/translations per vhost, workers and
    their segments, workers reclaimed between vhosts: each is queried by some panel."""
    queried = set()
    for _, t in targets():
        queried |= promql.Expr(t["expr"]).metrics()
    for metric in ("shmguard_headroom_bytes", "shmguard_limit_binding", "shmguard_beancounter_failcnt_total",
                   "shmguard_cgroup_memory_events_total", "shmguard_vhost_requests_total",
                   "shmguard_vhost_translated_total", "shmguard_fastcgi_workers", "shmguard_fastcgi_segments",
                   "shmguard_vhost_reclaims_total"):
        assert metric in queried, metric
