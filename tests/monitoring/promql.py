"""Just enough PromQL reading for the monitoring tests: which metrics an expression selects, with
which label matchers, and which labels it groups or joins by. Not a PromQL parser: promtool checks
the syntax (test_prometheus_rules.py, test_grafana.py); this only finds the names.

Also reads the Prometheus text exposition format into {metric: {label: {values}}}.
"""

import re

# Functions are recognised by the '(' that follows them; these words are operators or modifiers.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "Inf", "NaN", "inf", "nan"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Aggregation operators may be followed by `by (...)` before their '(' ("sum by (x) (...)").
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')\s*,?')


class Selector:
    def __init__(self, metric, matchers):
        self.metric = metric
        self.matchers = matchers  # [(label, op, value)]

    def __repr__(self):
        return "%s{%s}" % (self.metric, ",".join("%s%s%r" % m for m in self.matchers))


class Expr:
    def __init__(self, text):
        self.text = text
        self.selectors = []
        self.grouping = []          # (keyword, [labels]) in order of appearance
        self._read(text)

    def _read(self, s):
        i, n = 0, len(s)
        while i < n:
            c = s[i]
            if c in "\"'`":
                j = i + 1
                while j < n and s[j] != c:
                    j += 2 if s[j] == "\\" and c != "`" else 1
                if j >= n:
                    raise ValueError("unterminated string in %r" % s)
                i = j + 1
                continue
            if c == "[":  # a range or subquery duration
                j = s.index("]", i)
                i = j + 1
                continue
            if c == "{":  # a selector without a metric name
                raise ValueError("selector without a metric name at %d in %r" % (i, s))
            if c.isdigit() or (c == "." and i + 1 < n and s[i + 1].isdigit()):
                j = i
                while j < n and (s[j].isalnum() or s[j] in "._"):
                    j += 1
                i = j
                continue
            m = IDENT.match(s, i)
            if not m:
                i += 1
                continue
            word = m.group(0)
            j = m.end()
            k = j
            while k < n and s[k].isspace():
                k += 1
            if word in GROUPING:
                if k < n and s[k] == "(":
                    end = s.index(")", k)
                    labels = [l.strip() for l in s[k + 1:end].split(",") if l.strip()]
                    self.grouping.append((word, labels))
                    i = end + 1
                else:
                    i = j
                continue
            if word in KEYWORDS or word in AGGREGATIONS or (k < n and s[k] == "("):
                i = j  # an operator or a function / aggregation name
                continue
            matchers = []
            if k < n and s[k] == "{":
                end = k + 1
                while True:
                    while end < n and s[end].isspace():
                        end += 1
                    if end < n and s[end] == "}":
                        break
                    mm = MATCHER.match(s, end)
                    if not mm:
                        raise ValueError("cannot read the matchers of %s in %r" % (word, s))
                    value = mm.group(3)[1:-1].encode().decode("unicode_escape")
                    matchers.append((mm.group(1), mm.group(2), value))
                    end = mm.end()
                i = end + 1
            else:
                i = j
            self.selectors.append(Selector(word, matchers))

    def metrics(self):
        return {s.metric for s in self.selectors}

    def outer_by(self):
        """The labels of the outermost `by (...)` when the expression is one aggregation, else None."""
        m = re.match(r"\s*(sum|min|max|avg|count|group|stddev|stdvar|topk|bottomk|quantile)\s+by\s*\(([^)]*)\)",
                     self.text)
        if m:
            return {l.strip() for l in m.group(2).split(",") if l.strip()}
        m = re.match(r"\s*(sum|min|max|avg|count|group)\s*\(", self.text)
        if m and self.text.rstrip().endswith(")"):
            tail = re.search(r"\)\s*by\s*\(([^)]*)\)\s*$", self.text)
            if tail:
                return {l.strip() for l in tail.group(1).split(",") if l.strip()}
        return None


def literal_alternatives(regex):
    """['a', 'b'] for a regex that is only 'a|b' of plain words; None otherwise."""
    parts = regex.split("|")
    if all(re.fullmatch(r"[A-Za-z0-9_./-]+", p) for p in parts):
        return parts
    return None


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_exposition(text, into=None):
    """{metric: {label: {values}}} from Prometheus text exposition format. A metric with no labels
    maps to {}. Families are keyed by sample name (histograms/summaries are not used here)."""
    out = into if into is not None else {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError("not a sample line: %r" % line)
        labels = out.setdefault(m.group(1), {})
        body = m.group(2) or ""
        pos = 0
        while pos < len(body):
            lm = LABEL.match(body, pos)
            if not lm:
                raise ValueError("bad labels in %r" % line)
            labels.setdefault(lm.group(1), set()).add(lm.group(2))
            pos = lm.end()
    return out


# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}


def check(expr, exported, pending, where):
    """Problems (a list of strings) with one PromQL expression against the exported metrics.

    exported: {metric: {label: {values}}} from real ?metrics output. pending: {metric: {labels}} for
    metrics another change is adding: allowed to be missing, with only those labels used on them.
    Checks: every selected metric is exported (or pending); every matcher's label is one the metric
    has; an = or =~ matcher's literal values occur in the output; every by/on/without/ignoring/group
    label is on one of the expression's metrics.
    """
    problems = []
    try:
        e = expr if isinstance(expr, Expr) else Expr(expr)
    except ValueError as err:
        return ["%s: %s" % (where, err)]
    known = set(TARGET_LABELS)
    for sel in e.selectors:
        if sel.metric in exported:
            labels = set(exported[sel.metric])
        elif sel.metric in pending:
            labels = set(pending[sel.metric])
        else:
            problems.append("%s: metric %s is not exported by ?metrics" % (where, sel.metric))
            continue
        known |= labels
        for label, op, value in sel.matchers:
            if label in TARGET_LABELS:
                continue
            if label not in labels:
                problems.append("%s: %s has no label %r (it has: %s)"
                                % (where, sel.metric, label, ", ".join(sorted(labels)) or "none"))
                continue
            if sel.metric not in exported or op not in ("=", "=~") or "$" in value:
                continue
            values = [value] if op == "=" else literal_alternatives(value)
            for v in values or []:
                if v not in exported[sel.metric][label]:
                    problems.append("%s: %s{%s} never takes the value %r (seen: %s)"
                                    % (where, sel.metric, label, v,
                                       ", ".join(sorted(exported[sel.metric][label]))))
    for word, labels in e.grouping:
        for l in labels:
            if l not in known:
                problems.append("%s: %s (%s): no metric of the expression has label %r"
                                % (where, word, ", ".join(labels), l))
    return problems


def result_labels(expr):
    """Labels a result series of the expression may carry (for legends and $labels): the outer
    `by` labels of an aggregation, else None (meaning: the metrics' labels)."""
    return Expr(expr).outer_by()
