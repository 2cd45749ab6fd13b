"""monitoring/prometheus/shmguard.rules.yml: promtool check + the promtool unit tests, the unit tests
can fail for every alert both ways, and every metric and label a rule uses is one the real ?metrics
exports (conftest.exported).
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import promql

REPO = Path(__file__).resolve().parents[2]
DIR = REPO / "monitoring" / "prometheus"
RULES = DIR / "shmguard.rules.yml"
TESTS = DIR / "shmguard.rules.test.yml"
PROMTOOL = "/usr/bin/promtool"


def alerts():
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def promtool(*args, cwd=DIR):
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_promtool_check_rules():
    r = promtool("check", "rules", RULES)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: %d rules found" % len(alerts()) in r.stdout, r.stdout


def test_promtool_unit_tests_pass():
    r = promtool("test", "rules", TESTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def _with_expr(tmp_path, alertname, expr):
    """A copy of the rules and their tests in tmp_path with one alert's expression replaced."""
    doc = yaml.safe_load(RULES.read_text())
    hit = 0
    for g in doc["groups"]:
        for r in g["rules"]:
            if r.get("alert") == alertname:
                r["expr"] = expr
                hit += 1
    assert hit == 1
    (tmp_path / RULES.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    return promtool("test", "rules", tmp_path / TESTS.name, cwd=tmp_path)


@pytest.mark.parametrize("alertname", [a["alert"] for a in alerts()])
def test_unit_tests_catch_an_alert_that_always_fires(tmp_path, alertname):
    r = _with_expr(tmp_path, alertname, "vector(1)")
    assert r.returncode != 0, "no promtool test expects %s NOT to fire" % alertname
    assert "alertname: %s" % alertname in r.stdout + r.stderr


@pytest.mark.parametrize("alertname", [a["alert"] for a in alerts()])
def test_unit_tests_catch_an_alert_that_never_fires(tmp_path, alertname):
    r = _with_expr(tmp_path, alertname, "vector(1) unless vector(1)")
    assert r.returncode != 0, "no promtool test expects %s to fire" % alertname
    assert "alertname: %s" % alertname in r.stdout + r.stderr


def test_every_alert_has_a_severity_and_texts():
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    for a in alerts():
        assert a["labels"]["severity"] in ("warning", "critical"), a["alert"]
        assert a["annotations"]["summary"] and a["annotations"]["description"], a["alert"]


@pytest.mark.parametrize("alertname", [a["alert"] for a in alerts()])
def test_rule_uses_only_exported_metrics_and_labels(alertname, exported, pending):
    (a,) = [a for a in alerts() if a["alert"] == alertname]
    problems = promql.check(a["expr"], exported, pending, alertname)
    # Labels the annotations use must be on the alert: the aggregation's `by` labels, else the
    # labels of the expression's metrics.
    e = promql.Expr(a["expr"])
    have = e.outer_by()
    if have is None:
        have = set(promql.TARGET_LABELS)
        for m in e.metrics():
            have |= set(exported.get(m, pending.get(m, {})))
    text = " ".join(a["annotations"].values())
    for label in re.findall(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)", text):
        if label not in have:
            problems.append("%s: annotations use $labels.%s, which the alert does not carry" % (alertname, label))
    # Metrics queried from the annotation templates (`query`).
    for q in re.findall(r"`([^`]*)`", text):
        problems += promql.check(re.sub(r"%s", "x", q), exported, pending, alertname + " (annotation query)")
    assert problems == []
